//! Runtime plumbing shared by `serve` and `run`: one monoio runtime per worker thread
//! (io_uring when the kernel allows it, epoll otherwise) and `SO_REUSEPORT` listeners.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Runs `fut` to completion on a fresh monoio runtime on the current thread.
///
/// `FusionDriver` picks io_uring and falls back to epoll where io_uring is not
/// allowed (e.g. Docker's default seccomp profile). The timer is enabled because
/// request timeouts and `--delay-ms` need it.
pub fn block_on<F: Future>(fut: F) -> io::Result<F::Output> {
    // The kernel may end a thread's timed sleep up to its timer slack late
    // (50 µs by default), which would be the floor of every send; 1 ns turns
    // that off for this thread. Best effort: without it sends are later.
    let _ = nix::sys::prctl::set_timerslack(1);
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .uring_builder(ring_builder())
        .enable_timer()
        .build()?;
    URING.set(matches!(rt, monoio::FusionRuntime::Uring(_)));
    Ok(rt.block_on(fut))
}

/// The ring's setup: with COOP_TASKRUN the kernel no longer interrupts the
/// worker (an inter-processor interrupt, a VM exit here) to run a completion's
/// task work, such as the receive of a response, at any instant, including in
/// the middle of the pacer's spin; the work runs at the worker's next system
/// call instead, which the spin makes at every turn it gives. SINGLE_ISSUER:
/// only this thread submits. (DEFER_TASKRUN, the dataplane's choice, would
/// hold completions until the worker sleeps, which a spinning pacer does not.)
/// SINGLE_ISSUER needs Linux 6.0 and COOP_TASKRUN 5.19: the first setup the
/// kernel accepts is used, down to the default ring.
fn ring_builder() -> io_uring::Builder {
    let mut both = io_uring::IoUring::builder();
    both.setup_coop_taskrun().setup_single_issuer();
    let mut coop = io_uring::IoUring::builder();
    coop.setup_coop_taskrun();
    [both, coop]
        .into_iter()
        .find(|ring| ring.build(8).is_ok())
        .unwrap_or_else(io_uring::IoUring::builder)
}

thread_local! {
    static URING: Cell<bool> = const { Cell::new(false) };
}

/// Whether the runtime on this thread runs on io_uring (else epoll).
pub fn is_uring() -> bool {
    URING.get()
}

/// The driver's name, for logs and reports.
pub fn driver_name() -> &'static str {
    if is_uring() {
        "io_uring"
    } else {
        "epoll"
    }
}

/// Binds a listening socket with `SO_REUSEPORT`, so each worker can own one socket
/// on the same port and the kernel spreads connections between them.
pub fn reuseport_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Splits `total` into `parts` shares that differ by at most one.
pub fn split_evenly(total: usize, parts: usize, index: usize) -> usize {
    if parts == 0 {
        return 0;
    }
    total / parts + usize::from(index < total % parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_sums_to_total() {
        for total in 0..20 {
            for parts in 1..6 {
                let sum: usize = (0..parts).map(|i| split_evenly(total, parts, i)).sum();
                assert_eq!(sum, total);
            }
        }
    }
}
