//! Circuit breaking: per-cluster counts of connections, pending requests, active
//! requests and active retries against their maximums. A slot is held by an RAII
//! guard, so every exit path (error, cancel, panic unwinding) gives it back.
//!
//! Like Envoy's thresholds these limit concurrency, not rates; each worker holds its
//! own counters, so a cluster-wide maximum is divided among workers by the caller.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;

/// The header that tells a client which limit turned its request away.
pub const OVERFLOW_HEADER: &str = "x-ringmesh-overflow";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Connections,
    PendingRequests,
    Requests,
    Retries,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Connections,
        Kind::PendingRequests,
        Kind::Requests,
        Kind::Retries,
    ];

    /// The limit's name as Envoy spells it, for the overflow header and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Connections => "max_connections",
            Kind::PendingRequests => "max_pending_requests",
            Kind::Requests => "max_requests",
            Kind::Retries => "max_retries",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: u32,
    /// Requests waiting for a connection from the pool.
    pub max_pending_requests: u32,
    pub max_requests: u32,
    pub max_retries: u32,
}

impl Default for Limits {
    /// Envoy's defaults.
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
        }
    }
}

impl Limits {
    pub fn max(&self, kind: Kind) -> u32 {
        match kind {
            Kind::Connections => self.max_connections,
            Kind::PendingRequests => self.max_pending_requests,
            Kind::Requests => self.max_requests,
            Kind::Retries => self.max_retries,
        }
    }

    /// This worker's share of cluster-wide limits: each maximum divided by `workers`,
    /// rounded up so a small limit still admits one on every worker.
    pub fn for_worker(&self, workers: usize) -> Limits {
        let workers = u32::try_from(workers.max(1)).unwrap_or(u32::MAX);
        let share = |max: u32| max.div_ceil(workers);
        Limits {
            max_connections: share(self.max_connections),
            max_pending_requests: share(self.max_pending_requests),
            max_requests: share(self.max_requests),
            max_retries: share(self.max_retries),
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    connections: Cell<u32>,
    pending: Cell<u32>,
    requests: Cell<u32>,
    retries: Cell<u32>,
}

impl Counts {
    fn of(&self, kind: Kind) -> &Cell<u32> {
        match kind {
            Kind::Connections => &self.connections,
            Kind::PendingRequests => &self.pending,
            Kind::Requests => &self.requests,
            Kind::Retries => &self.retries,
        }
    }
}

/// A limit was reached; the request is refused with this kind in `OVERFLOW_HEADER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow(pub Kind);

impl Overflow {
    /// `(OVERFLOW_HEADER, value)` for the local reply.
    pub fn header(self) -> (&'static str, &'static str) {
        (OVERFLOW_HEADER, self.0.name())
    }
}

impl fmt::Display for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "circuit breaker open: {}", self.0.name())
    }
}

impl std::error::Error for Overflow {}

/// One cluster's breaker on one worker. Cloning shares the counters.
#[derive(Debug, Clone)]
pub struct Breaker {
    limits: Limits,
    counts: Rc<Counts>,
}

impl Breaker {
    pub fn new(limits: Limits) -> Self {
        Breaker {
            limits,
            counts: Rc::new(Counts::default()),
        }
    }

    /// Takes one slot of `kind`, or reports the overflow without taking anything.
    pub fn try_acquire(&self, kind: Kind) -> Result<Guard, Overflow> {
        let count = self.counts.of(kind);
        if count.get() >= self.limits.max(kind) {
            return Err(Overflow(kind));
        }
        count.set(count.get() + 1);
        Ok(Guard {
            counts: self.counts.clone(),
            kind,
        })
    }

    pub fn current(&self, kind: Kind) -> u32 {
        self.counts.of(kind).get()
    }

    /// Whether the limit is reached (for a gauge or an admin page).
    pub fn is_open(&self, kind: Kind) -> bool {
        self.current(kind) >= self.limits.max(kind)
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// New limits after a table swap; slots already held stay held, and new
    /// acquisitions are refused until the count drops below the new maximum.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }
}

/// Holds one slot; dropping it gives the slot back.
#[derive(Debug)]
#[must_use = "the slot is released as soon as the guard is dropped"]
pub struct Guard {
    counts: Rc<Counts>,
    kind: Kind,
}

impl Guard {
    pub fn kind(&self) -> Kind {
        self.kind
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let count = self.counts.of(self.kind);
        count.set(count.get().saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resilience::XorShift64;

    #[test]
    fn acquire_until_full_then_release() {
        let breaker = Breaker::new(Limits {
            max_pending_requests: 2,
            ..Limits::default()
        });
        let a = breaker.try_acquire(Kind::PendingRequests).unwrap();
        let b = breaker.try_acquire(Kind::PendingRequests).unwrap();
        let overflow = breaker.try_acquire(Kind::PendingRequests).unwrap_err();
        assert_eq!(overflow, Overflow(Kind::PendingRequests));
        assert_eq!(
            overflow.header(),
            ("x-ringmesh-overflow", "max_pending_requests")
        );
        assert_eq!(
            overflow.to_string(),
            "circuit breaker open: max_pending_requests"
        );
        assert!(breaker.is_open(Kind::PendingRequests));
        // Other kinds are independent.
        let _request = breaker.try_acquire(Kind::Requests).unwrap();
        drop(a);
        assert_eq!(breaker.current(Kind::PendingRequests), 1);
        let c = breaker.try_acquire(Kind::PendingRequests).unwrap();
        assert_eq!(c.kind(), Kind::PendingRequests);
        drop((b, c));
        assert_eq!(breaker.current(Kind::PendingRequests), 0);
    }

    #[test]
    fn zero_limit_refuses_everything_and_names_are_envoys() {
        let breaker = Breaker::new(Limits {
            max_retries: 0,
            ..Limits::default()
        });
        assert_eq!(
            breaker.try_acquire(Kind::Retries).unwrap_err(),
            Overflow(Kind::Retries)
        );
        let names: Vec<_> = Kind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(
            names,
            [
                "max_connections",
                "max_pending_requests",
                "max_requests",
                "max_retries"
            ]
        );
    }

    #[test]
    fn shrinking_limits_keeps_held_slots() {
        let mut breaker = Breaker::new(Limits::default());
        let held: Vec<_> = (0..5)
            .map(|_| breaker.try_acquire(Kind::Connections).unwrap())
            .collect();
        breaker.set_limits(Limits {
            max_connections: 3,
            ..Limits::default()
        });
        assert!(breaker.try_acquire(Kind::Connections).is_err());
        drop(held);
        assert!(breaker.try_acquire(Kind::Connections).is_ok());
    }

    #[test]
    fn worker_share_rounds_up() {
        let share = Limits {
            max_connections: 10,
            max_pending_requests: 1,
            max_requests: 1024,
            max_retries: 3,
        }
        .for_worker(4);
        assert_eq!(share.max_connections, 3);
        assert_eq!(share.max_pending_requests, 1);
        assert_eq!(share.max_requests, 256);
        assert_eq!(share.max_retries, 1);
    }

    /// Random acquire/release interleavings never exceed a limit and always return
    /// to zero.
    #[test]
    fn random_interleavings_respect_limits() {
        let breaker = Breaker::new(Limits {
            max_connections: 7,
            max_pending_requests: 3,
            max_requests: 11,
            max_retries: 2,
        });
        let mut rng = XorShift64::new(21);
        let mut held: Vec<Guard> = Vec::new();
        for _ in 0..10_000 {
            let roll = rng.next_u64();
            if roll.is_multiple_of(3) && !held.is_empty() {
                let at = (roll >> 8) as usize % held.len();
                drop(held.swap_remove(at));
            } else {
                let kind = Kind::ALL[(roll >> 16) as usize % 4];
                match breaker.try_acquire(kind) {
                    Ok(guard) => held.push(guard),
                    Err(Overflow(full)) => {
                        assert_eq!(breaker.current(full), breaker.limits().max(full))
                    }
                }
            }
            for kind in Kind::ALL {
                assert!(breaker.current(kind) <= breaker.limits().max(kind));
            }
        }
        held.clear();
        assert!(Kind::ALL.iter().all(|k| breaker.current(*k) == 0));
    }
}
