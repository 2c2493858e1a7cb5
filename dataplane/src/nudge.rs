//! Waking every worker when a table is published, so a swap is adopted as soon
//! as it is published instead of at the worker's next 10 ms tick.
//!
//! A monoio runtime cannot be woken from another thread (its wakers are not
//! `Send` without the `sync` feature), so each worker reads one end of a Unix
//! socket pair like any other socket, and the publishing thread writes a byte to
//! the other end. The tick stays as the fallback: a nudge that cannot be sent
//! (descriptors exhausted at start, a full socket buffer) only delays adoption.

use crate::driver::DriverKind;
use crate::state::Worker;
use monoio::io::AsyncReadRent;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::rc::Rc;

/// The publishing side's ends, one per worker.
#[derive(Default)]
pub struct Nudges {
    senders: Vec<UnixStream>,
}

impl Nudges {
    /// One pair per worker: the senders, and each worker's end in worker order.
    /// None at all if any pair cannot be made.
    pub fn new(workers: usize) -> (Self, Vec<Option<UnixStream>>) {
        let mut senders = Vec::with_capacity(workers);
        let mut receivers = Vec::with_capacity(workers);
        for _ in 0..workers {
            let pair = UnixStream::pair().and_then(|(tx, rx)| {
                // The publisher must never block on a worker.
                tx.set_nonblocking(true)?;
                Ok((tx, rx))
            });
            match pair {
                Ok((tx, rx)) => {
                    senders.push(tx);
                    receivers.push(Some(rx));
                }
                Err(err) => {
                    tracing::warn!(error = %err, "no swap nudges: workers adopt tables at their tick");
                    return (Nudges::default(), (0..workers).map(|_| None).collect());
                }
            }
        }
        (Nudges { senders }, receivers)
    }

    /// Wake every worker. A failed write (the buffer is full because earlier
    /// nudges are unread) loses nothing: those wake the worker anyway.
    pub fn nudge_all(&self) {
        for sender in &self.senders {
            let _ = (&*sender).write(&[1]);
        }
    }
}

/// Adopts the published table whenever a nudge arrives; ends when the
/// publishing side is gone or the worker drains.
pub async fn adopt_on_nudge(worker: Rc<Worker>, driver: DriverKind, socket: UnixStream) {
    // The epoll driver needs non-blocking sockets; io_uring waits by itself.
    if matches!(driver, DriverKind::Epoll) && socket.set_nonblocking(true).is_err() {
        return;
    }
    let Ok(socket) = monoio::net::UnixStream::from_std(socket) else {
        return;
    };
    let mut socket = socket;
    let mut buf = vec![0u8; 64];
    loop {
        let (read, returned) = socket.read(buf).await;
        buf = returned;
        match read {
            Ok(n) if n > 0 && !worker.draining.get() => {
                let _ = worker.table();
            }
            _ => return,
        }
    }
}
