//! Resilience: the pure decisions behind outlier ejection, retries, circuit breaking,
//! rate limiting, fault injection and active health checks.
//!
//! Nothing here does IO, reads the clock or draws randomness on its own: the caller
//! passes `now` and a random `roll` (or a seed), so every decision can be replayed in
//! a test. Every type is per-worker state (no locks, no atomics); tables are built
//! at construction so the per-request calls do not allocate.

pub mod breaker;
pub mod fault;
pub mod health;
pub mod outlier;
pub mod rate_limit;
pub mod retry;

#[cfg(test)]
mod sim_tests;

use std::time::{Duration, Instant};

/// `now + by`, without the panic `Instant + Duration` has on overflow: an absurd
/// configured duration lands in the far future instead.
pub(crate) fn later(now: Instant, by: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 86_400);
    now.checked_add(by)
        .or_else(|| now.checked_add(FAR))
        .unwrap_or(now)
}

/// xorshift64*: a cheap deterministic source of rolls for the types that draw more
/// than one random number per call (health-check jitter) and for simulations.
#[derive(Debug, Clone)]
pub struct XorShift64 {
    state: u64,
}

impl XorShift64 {
    /// A zero state would stay zero forever, so it is replaced by a fixed odd value.
    pub fn new(seed: u64) -> Self {
        XorShift64 {
            state: if seed == 0 {
                0x9e37_79b9_7f4a_7c15
            } else {
                seed
            },
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A roll's chance as parts per million; `1_000_000` always fires, `0` never does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Chance {
    per_million: u32,
}

impl Chance {
    pub const NEVER: Chance = Chance { per_million: 0 };
    pub const ALWAYS: Chance = Chance {
        per_million: 1_000_000,
    };

    pub fn percent(percent: u32) -> Self {
        Chance::per_million(percent.saturating_mul(10_000))
    }

    pub fn per_million(per_million: u32) -> Self {
        Chance {
            per_million: per_million.min(1_000_000),
        }
    }

    pub fn as_per_million(self) -> u32 {
        self.per_million
    }

    /// Whether 32 random bits fall inside the chance. Scaling (rather than `%`)
    /// keeps every outcome equally likely to within one part in 4 billion.
    pub fn hits(self, roll: u32) -> bool {
        let point = (u64::from(roll) * 1_000_000) >> 32;
        point < u64::from(self.per_million)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xorshift_is_deterministic_and_survives_zero_seed() {
        let mut a = XorShift64::new(7);
        let mut b = XorShift64::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut zero = XorShift64::new(0);
        assert_ne!(zero.next_u64(), 0);
    }

    #[test]
    fn chance_edges_and_rate() {
        assert!(!Chance::NEVER.hits(0));
        assert!(Chance::ALWAYS.hits(u32::MAX));
        assert_eq!(Chance::percent(250), Chance::ALWAYS);
        let mut rng = XorShift64::new(11);
        let quarter = Chance::percent(25);
        let hits = (0..100_000)
            .filter(|_| quarter.hits(rng.next_u64() as u32))
            .count();
        assert!((24_000..26_000).contains(&hits), "{hits}");
    }
}
