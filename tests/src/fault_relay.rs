//! A user-space TCP relay between the proxy and a real upstream, with faults switchable while it runs (this kernel
//! has no `tc netem`). Point a cluster endpoint at [`FaultRelay::addr`] and flip modes from the test:
//!
//! * [`Mode`] says what happens to the bytes of every connection, old and new, from the next read on: pass them
//!   through, add latency (once per connection, or before every read from the upstream), reset the connection after
//!   N bytes of a response, swallow everything (black hole), or trickle the response a byte at a time.
//! * The listener can be closed ([`FaultRelay::refuse`]: connects are refused), made to hang connects
//!   ([`FaultRelay::stall_connects`]: SYNs go unanswered, for connect timeouts) and reopened on the same port
//!   ([`FaultRelay::reopen`]).
//! * [`FaultRelay::reset_all`] sends a RST on every open connection; [`FaultRelay::kill`] is refuse + reset, as
//!   when an upstream host dies.
//!
//! A reset is a close with `SO_LINGER` 0, so the proxy sees `ECONNRESET` rather than an orderly end. Connections,
//! bytes each way and resets are counted.
//!
//! Each relayed connection has two threads (one per direction) sharing both sockets; a thread blocked in a read is
//! woken by `shutdown(SHUT_RD)` on its socket, which sends nothing to the peer.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use crate::IO_TIMEOUT;

/// What happens to the bytes of each connection. Read before every chunk, so a switch affects open connections too
/// (except [`Mode::Delay`], which is applied once, when a connection is accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Bytes go through untouched.
    Pass,
    /// A new connection waits this long before the relay connects upstream and relays anything (the proxy's
    /// connect succeeds at once; its first response is late).
    Delay(Duration),
    /// Every read from the upstream waits this long before it is forwarded.
    DelayReads(Duration),
    /// Forwards at most this many bytes of each response (bytes from the upstream since the client last sent
    /// something), then resets both connections.
    ResetAfter(usize),
    /// Accepts, reads and discards; never answers. A connection accepted in this mode never connects upstream;
    /// open connections stop forwarding in either direction while it lasts.
    Blackhole,
    /// Forwards responses one byte at a time, each this long after the previous one.
    Trickle(Duration),
}

/// The listening side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Listening {
    /// Accepting connections.
    Open,
    /// No socket on the port: connects are refused.
    Refuse,
    /// A socket whose accept queue is full and never drained: connects hang.
    Stall,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicUsize,
    active: AtomicUsize,
    /// Client (proxy) → upstream.
    bytes_up: AtomicU64,
    /// Upstream → client (proxy).
    bytes_down: AtomicU64,
    resets: AtomicUsize,
    upstream_connect_failures: AtomicUsize,
}

/// Both sockets of one relayed connection.
struct Pair {
    down: TcpStream,
    /// `None` for a black-holed connection (never connected upstream) or while a delayed one waits.
    up: Mutex<Option<Arc<TcpStream>>>,
    /// Set once the connection is being torn down: both threads stop.
    dead: AtomicBool,
    /// Bytes forwarded downstream since the client last sent something (the current response so far).
    response_bytes: AtomicU64,
}

impl Pair {
    fn up(&self) -> Option<Arc<TcpStream>> {
        lock(&self.up).clone()
    }

    /// Resets the client side (SO_LINGER 0, so the close sends RST) and wakes both threads. The sockets close when
    /// the last thread lets go of them.
    fn reset(&self, counters: &Counters) {
        if self.dead.swap(true, Ordering::SeqCst) {
            return;
        }
        counters.resets.fetch_add(1, Ordering::SeqCst);
        let _ = socket2::SockRef::from(&self.down).set_linger(Some(Duration::ZERO));
        let _ = self.down.shutdown(Shutdown::Read);
        if let Some(up) = self.up() {
            let _ = socket2::SockRef::from(&*up).set_linger(Some(Duration::ZERO));
            let _ = up.shutdown(Shutdown::Read);
        }
    }
}

struct Shared {
    target: SocketAddr,
    mode: Mutex<Mode>,
    listening: Mutex<(Listening, u64)>,
    /// Signalled when `listening` changes (wanted or reached).
    changed: Condvar,
    stop: AtomicBool,
    counters: Counters,
    conns: Mutex<Vec<Weak<Pair>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running relay; stops and resets its connections when dropped.
pub struct FaultRelay {
    /// Where the proxy should connect.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    /// Generation of the listener the accept thread reports as in place (matches `listening.1` when settled).
    reached: Arc<(Mutex<u64>, Condvar)>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

impl FaultRelay {
    /// Listens on a fresh loopback port and relays to `target`, in [`Mode::Pass`].
    pub fn start(target: SocketAddr) -> FaultRelay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fault relay");
        let addr = listener.local_addr().expect("fault relay addr");
        let shared = Arc::new(Shared {
            target,
            mode: Mutex::new(Mode::Pass),
            listening: Mutex::new((Listening::Open, 0)),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            counters: Counters::default(),
            conns: Mutex::new(Vec::new()),
        });
        let reached = Arc::new((Mutex::new(0u64), Condvar::new()));
        let acceptor = {
            let (shared, reached) = (shared.clone(), reached.clone());
            std::thread::Builder::new()
                .name(format!("fault-relay-{}", addr.port()))
                .spawn(move || accept_loop(addr, listener, &shared, &reached))
                .expect("spawn fault relay")
        };
        FaultRelay {
            addr,
            shared,
            reached,
            acceptor: Some(acceptor),
        }
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        *lock(&self.shared.mode)
    }

    /// Switches the mode; open connections follow from their next read.
    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.shared.mode) = mode;
    }

    /// Closes the listening socket: from when this returns, connects are refused. Open connections are untouched.
    pub fn refuse(&self) {
        self.set_listening(Listening::Refuse);
    }

    /// Replaces the listening socket by one whose accept queue is full: from when this returns, connects hang
    /// (until the connecting side's own timeout). Open connections are untouched.
    pub fn stall_connects(&self) {
        self.set_listening(Listening::Stall);
    }

    /// Listens again on the same port (after [`FaultRelay::refuse`] or [`FaultRelay::stall_connects`]).
    pub fn reopen(&self) {
        self.set_listening(Listening::Open);
    }

    /// Resets (RST) every open connection; returns how many there were.
    pub fn reset_all(&self) -> usize {
        let conns: Vec<Arc<Pair>> = {
            let mut list = lock(&self.shared.conns);
            let alive = list.iter().filter_map(Weak::upgrade).collect();
            list.clear();
            alive
        };
        for pair in &conns {
            pair.reset(&self.shared.counters);
        }
        conns.len()
    }

    /// The upstream host dies: connects are refused and every open connection is reset. Returns how many were.
    pub fn kill(&self) -> usize {
        self.refuse();
        self.reset_all()
    }

    /// Connections accepted so far (black-holed ones included).
    pub fn connections(&self) -> usize {
        self.shared.counters.accepted.load(Ordering::SeqCst)
    }

    /// Connections open right now.
    pub fn active(&self) -> usize {
        self.shared.counters.active.load(Ordering::SeqCst)
    }

    /// Bytes relayed from the client (the proxy) to the upstream, or swallowed by a black hole.
    pub fn bytes_up(&self) -> u64 {
        self.shared.counters.bytes_up.load(Ordering::SeqCst)
    }

    /// Bytes relayed from the upstream to the client.
    pub fn bytes_down(&self) -> u64 {
        self.shared.counters.bytes_down.load(Ordering::SeqCst)
    }

    /// Connections this relay reset (by [`Mode::ResetAfter`], [`FaultRelay::reset_all`], or because the other side
    /// reset or could not be reached).
    pub fn resets(&self) -> usize {
        self.shared.counters.resets.load(Ordering::SeqCst)
    }

    /// Connects to the upstream that failed (the client connection was reset).
    pub fn upstream_connect_failures(&self) -> usize {
        self.shared
            .counters
            .upstream_connect_failures
            .load(Ordering::SeqCst)
    }

    fn set_listening(&self, want: Listening) {
        let generation = {
            let mut l = lock(&self.shared.listening);
            if l.0 == want {
                return;
            }
            l.0 = want;
            l.1 += 1;
            l.1
        };
        self.shared.changed.notify_all();
        // The accept thread may be blocked in accept(): wake it with a connection it will drop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        let (m, cv) = &*self.reached;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut reached = lock(m);
        while *reached < generation {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "fault relay {}: listener did not switch to {want:?} within 10s",
                self.addr
            );
            reached = cv
                .wait_timeout(reached, left.min(Duration::from_millis(50)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl Drop for FaultRelay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        self.reset_all();
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

fn accept_loop(
    addr: SocketAddr,
    first: TcpListener,
    shared: &Arc<Shared>,
    reached: &(Mutex<u64>, Condvar),
) {
    let mut listener = Some(first);
    // Keeps a stalled socket (and the connections filling its queue) alive.
    let mut stalled: Option<(socket2::Socket, Vec<TcpStream>)> = None;
    let mut current = 0u64;
    let report = |generation: u64| {
        let (m, cv) = reached;
        *lock(m) = generation;
        cv.notify_all();
    };
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let (want, generation) = *lock(&shared.listening);
        if generation != current {
            listener = None;
            stalled = None;
            match want {
                Listening::Open => listener = Some(rebind(addr)),
                Listening::Refuse => {}
                Listening::Stall => stalled = Some(stall(addr)),
            }
            current = generation;
            report(generation);
        }
        match &listener {
            Some(l) => match l.accept() {
                Ok((stream, _)) => {
                    let (now, _) = *lock(&shared.listening);
                    if shared.stop.load(Ordering::SeqCst) || now != Listening::Open {
                        // The wake-up connection of a switch (or a client racing it): dropped.
                        continue;
                    }
                    start_connection(stream, shared);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            },
            None => {
                let l = lock(&shared.listening);
                if l.1 == current && !shared.stop.load(Ordering::SeqCst) {
                    let _ = shared
                        .changed
                        .wait_timeout(l, Duration::from_millis(100))
                        .unwrap_or_else(|p| p.into_inner());
                }
            }
        }
        let _ = &stalled;
    }
}

/// A listener on `addr` again (the old socket is closed; connections it accepted may linger in TIME_WAIT, which
/// SO_REUSEADDR allows).
fn rebind(addr: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match bind_reuse(addr, 1024) {
            Ok(s) => return s.into(),
            Err(e) if Instant::now() > deadline => panic!("fault relay: rebind {addr}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn bind_reuse(addr: SocketAddr, backlog: i32) -> io::Result<socket2::Socket> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(backlog)?;
    Ok(s)
}

/// A socket on `addr` with backlog 0 that never accepts, its queue filled: further connects hang.
fn stall(addr: SocketAddr) -> (socket2::Socket, Vec<TcpStream>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let socket = loop {
        match bind_reuse(addr, 0) {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => panic!("fault relay: rebind {addr}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let mut fillers = Vec::new();
    for _ in 0..64 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => fillers.push(s),
            Err(_) => return (socket, fillers),
        }
    }
    panic!("fault relay: could not fill the accept queue of {addr}: connects never hang here");
}

fn start_connection(down: TcpStream, shared: &Arc<Shared>) {
    let counters = &shared.counters;
    counters.accepted.fetch_add(1, Ordering::SeqCst);
    counters.active.fetch_add(1, Ordering::SeqCst);
    let _ = down.set_nodelay(true);
    let _ = down.set_write_timeout(Some(IO_TIMEOUT));
    let pair = Arc::new(Pair {
        down,
        up: Mutex::new(None),
        dead: AtomicBool::new(false),
        response_bytes: AtomicU64::new(0),
    });
    {
        let mut conns = lock(&shared.conns);
        conns.retain(|w| w.strong_count() > 0);
        conns.push(Arc::downgrade(&pair));
    }
    let shared = shared.clone();
    std::thread::spawn(move || {
        let mode = *lock(&shared.mode);
        let blackholed = mode == Mode::Blackhole;
        if let Mode::Delay(d) = mode {
            sleep_unless_dead(&pair, d);
        }
        if !blackholed && !pair.dead.load(Ordering::SeqCst) {
            match TcpStream::connect_timeout(&shared.target, IO_TIMEOUT) {
                Ok(up) => {
                    let _ = up.set_nodelay(true);
                    let _ = up.set_write_timeout(Some(IO_TIMEOUT));
                    let up = Arc::new(up);
                    *lock(&pair.up) = Some(up.clone());
                    if pair.dead.load(Ordering::SeqCst) {
                        // Reset while connecting: the reset did not see this socket.
                        let _ = socket2::SockRef::from(&*up).set_linger(Some(Duration::ZERO));
                    } else {
                        let (pair2, shared2) = (pair.clone(), shared.clone());
                        std::thread::spawn(move || downstream(&pair2, &up, &shared2));
                    }
                }
                Err(_) => {
                    shared
                        .counters
                        .upstream_connect_failures
                        .fetch_add(1, Ordering::SeqCst);
                    pair.reset(&shared.counters);
                }
            }
        }
        upstream_direction(&pair, &shared, blackholed);
        shared.counters.active.fetch_sub(1, Ordering::SeqCst);
    });
}

fn sleep_unless_dead(pair: &Pair, d: Duration) {
    let until = Instant::now() + d;
    while !pair.dead.load(Ordering::SeqCst) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(10)));
    }
}

/// Client → upstream: relays until the client's EOF (then half-closes the upstream) or a teardown.
fn upstream_direction(pair: &Pair, shared: &Shared, blackholed: bool) {
    let counters = &shared.counters;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if pair.dead.load(Ordering::SeqCst) {
            return;
        }
        let n = match (&pair.down).read(&mut buf) {
            Ok(0) => {
                if let Some(up) = pair.up() {
                    let _ = up.shutdown(Shutdown::Write);
                }
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                // The client reset (or a teardown woke us): pass the reset on.
                pair.reset(counters);
                return;
            }
        };
        if pair.dead.load(Ordering::SeqCst) {
            return;
        }
        counters.bytes_up.fetch_add(n as u64, Ordering::SeqCst);
        if blackholed || *lock(&shared.mode) == Mode::Blackhole {
            continue;
        }
        pair.response_bytes.store(0, Ordering::SeqCst);
        let Some(up) = pair.up() else { continue };
        if (&*up).write_all(&buf[..n]).is_err() {
            pair.reset(counters);
            return;
        }
    }
}

/// Upstream → client, applying the mode to every chunk.
fn downstream(pair: &Pair, up: &TcpStream, shared: &Shared) {
    let counters = &shared.counters;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if pair.dead.load(Ordering::SeqCst) {
            return;
        }
        let n = match (&*up).read(&mut buf) {
            Ok(0) => {
                if !pair.dead.load(Ordering::SeqCst) {
                    let _ = pair.down.shutdown(Shutdown::Write);
                }
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                pair.reset(counters);
                return;
            }
        };
        let mode = *lock(&shared.mode);
        let mut data = &buf[..n];
        let write = |bytes: &[u8]| -> bool {
            if pair.dead.load(Ordering::SeqCst) || (&pair.down).write_all(bytes).is_err() {
                return false;
            }
            counters
                .bytes_down
                .fetch_add(bytes.len() as u64, Ordering::SeqCst);
            pair.response_bytes
                .fetch_add(bytes.len() as u64, Ordering::SeqCst);
            true
        };
        let ok = match mode {
            Mode::Pass | Mode::Delay(_) => write(data),
            Mode::Blackhole => true,
            Mode::DelayReads(d) => {
                sleep_unless_dead(pair, d);
                write(data)
            }
            Mode::Trickle(every) => {
                let mut ok = true;
                while let Some((first, rest)) = data.split_first() {
                    if !write(&[*first]) {
                        ok = false;
                        break;
                    }
                    data = rest;
                    if !data.is_empty() {
                        sleep_unless_dead(pair, every);
                    }
                }
                ok
            }
            Mode::ResetAfter(limit) => {
                let sent = pair.response_bytes.load(Ordering::SeqCst);
                let allowed = (limit as u64).saturating_sub(sent).min(data.len() as u64) as usize;
                let ok = allowed == 0 || write(&data[..allowed]);
                if allowed < data.len() || sent + allowed as u64 >= limit as u64 {
                    pair.reset(counters);
                    return;
                }
                ok
            }
        };
        if !ok {
            pair.reset(counters);
            return;
        }
    }
}

#[cfg(test)]
mod tests;
