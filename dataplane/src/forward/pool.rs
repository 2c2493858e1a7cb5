//! Per-worker idle pool of upstream connections for one endpoint: no locks, most
//! recently used first (its socket is the one least likely to have been closed).
//! Plain and TLS connections alike: a pool belongs to one endpoint of one cluster,
//! and a cluster either originates TLS or does not.

use crate::stream::UpstreamIo as TcpStream;
use std::cell::RefCell;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct IdlePool {
    idle: RefCell<Vec<(TcpStream, Instant)>>,
}

impl IdlePool {
    /// The freshest idle connection not older than `max_idle`; older ones are closed.
    pub fn take(&self, now: Instant, max_idle: Duration) -> Option<TcpStream> {
        let mut idle = self.idle.borrow_mut();
        let (stream, since) = idle.pop()?;
        if now.saturating_duration_since(since) <= max_idle {
            return Some(stream);
        }
        // Stale: every older entry is staler still.
        idle.clear();
        None
    }

    pub fn put(&self, stream: TcpStream, cap: usize) {
        let mut idle = self.idle.borrow_mut();
        if idle.len() < cap {
            idle.push((stream, Instant::now()));
        }
    }

    /// Close idle connections older than `max_idle` (they are stored oldest first).
    pub fn expire(&self, now: Instant, max_idle: Duration) {
        let mut idle = self.idle.borrow_mut();
        let fresh_from = idle
            .iter()
            .position(|(_, since)| now.saturating_duration_since(*since) <= max_idle)
            .unwrap_or(idle.len());
        idle.drain(..fresh_from);
    }

    /// Closes the oldest idle connection; false when there was none.
    pub fn close_oldest(&self) -> bool {
        let mut idle = self.idle.borrow_mut();
        if idle.is_empty() {
            return false;
        }
        idle.remove(0);
        true
    }

    pub fn clear(&self) {
        self.idle.borrow_mut().clear();
    }
}
