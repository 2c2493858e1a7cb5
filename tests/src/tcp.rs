//! A real TCP upstream for L4 tests: echo, or read-until-EOF-then-reply (which proves half-close works both ways);
//! and a [`Blackhole`] address where connects hang, for connect-timeout tests.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{Checksum, IO_TIMEOUT};

/// What the server does with each connection.
#[derive(Clone, Copy, Debug)]
pub enum TcpMode {
    /// Writes back every byte as it arrives; after the client's EOF, closes its own write side.
    Echo,
    /// Reads until the client's EOF, then sends `n` bytes of [`crate::pattern`]`(n, seed)` and closes.
    SinkThenSend { n: usize, seed: u64 },
}

/// A running TCP upstream; stops accepting when dropped.
pub struct TcpUpstream {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    /// One entry per finished connection: what it received before EOF.
    received: Arc<Mutex<Vec<Checksum>>>,
    stop: Arc<AtomicBool>,
}

impl TcpUpstream {
    pub fn start(mode: TcpMode) -> TcpUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind tcp upstream");
        let addr = listener.local_addr().expect("tcp upstream addr");
        let up = TcpUpstream {
            addr,
            connections: Arc::default(),
            received: Arc::default(),
            stop: Arc::default(),
        };
        let (connections, received, stop) =
            (up.connections.clone(), up.received.clone(), up.stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                connections.fetch_add(1, Ordering::SeqCst);
                let received = received.clone();
                std::thread::spawn(move || {
                    if let Ok(sum) = serve(stream, mode) {
                        if let Ok(mut r) = received.lock() {
                            r.push(sum);
                        }
                    }
                });
            }
        });
        up
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Checksums of what each finished connection received up to the client's EOF.
    pub fn received(&self) -> Vec<Checksum> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for TcpUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn serve(mut stream: TcpStream, mode: TcpMode) -> io::Result<Checksum> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut sum = Checksum::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sum.update(&buf[..n]);
        if let TcpMode::Echo = mode {
            stream.write_all(&buf[..n])?;
        }
    }
    if let TcpMode::SinkThenSend { n, seed } = mode {
        stream.write_all(&crate::pattern(n, seed))?;
    }
    stream.shutdown(Shutdown::Write)?;
    Ok(sum)
}

/// A loopback address whose connects hang: a listener with backlog 0 that never accepts, its queue filled.
pub struct Blackhole {
    pub addr: SocketAddr,
    _listener: socket2::Socket,
    _fillers: Vec<TcpStream>,
}

impl Blackhole {
    pub fn start() -> Blackhole {
        use socket2::{Domain, Socket, Type};
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        let bind: SocketAddr = ([127, 0, 0, 1], 0).into();
        listener.bind(&bind.into()).expect("bind blackhole");
        listener.listen(0).expect("listen(0)");
        let addr = listener
            .local_addr()
            .expect("addr")
            .as_socket()
            .expect("inet addr");
        let mut fillers = Vec::new();
        for _ in 0..64 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(s) => fillers.push(s),
                Err(_) => {
                    return Blackhole {
                        addr,
                        _listener: listener,
                        _fillers: fillers,
                    }
                }
            }
        }
        panic!("could not fill the backlog of {addr}: connects never hang here");
    }
}
