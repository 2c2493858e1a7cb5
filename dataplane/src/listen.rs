//! Binding listener sockets: one `SO_REUSEPORT` socket per listener per worker, all
//! bound on the main thread before any worker starts so a bind error is reported
//! with the listener's TOML path and nothing is left half-running.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, TcpListener};

const BACKLOG: i32 = 4096;

/// Sockets of one listener, one per worker.
#[derive(Debug)]
pub struct BoundListener {
    pub name: String,
    pub addr: SocketAddr,
    pub sockets: Vec<TcpListener>,
}

fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Bind `workers` sockets to `addr`. Port 0 is resolved by the first socket and the
/// others join it, so every worker serves the same port.
pub fn bind(name: &str, addr: SocketAddr, workers: usize) -> io::Result<BoundListener> {
    let first = bind_one(addr)?;
    let resolved = first.local_addr()?;
    let mut sockets = Vec::with_capacity(workers);
    sockets.push(first);
    for _ in 1..workers {
        sockets.push(bind_one(resolved)?);
    }
    Ok(BoundListener {
        name: name.to_string(),
        addr: resolved,
        sockets,
    })
}

/// Error text for a failed bind, in the words users search for.
pub fn describe_bind_error(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::AddrInUse => "address already in use".to_string(),
        io::ErrorKind::AddrNotAvailable => "address not available on this host".to_string(),
        io::ErrorKind::PermissionDenied => {
            "permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)".to_string()
        }
        _ => err.to_string(),
    }
}
