//! Local rate limiting: a token bucket per worker that refills continuously and
//! holds at most a burst's worth of tokens.
//!
//! Tokens are counted in exact integers (pico-tokens), so refilling in many tiny
//! steps gives the same balance as one big step and the rate never drifts.

use std::time::Instant;

/// One token in the bucket's units: rates are milli-tokens per second and time is in
/// nanoseconds, so `nanos × milli-rate` comes out in 10^-12 tokens.
const TOKEN: u128 = 1_000_000_000_000;

#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Refill rate in thousandths of a token per second.
    rate_milli: u64,
    capacity: u128,
    balance: u128,
    /// When the balance was last brought up to date; `None` until the first call,
    /// when the bucket starts full.
    updated: Option<Instant>,
}

impl TokenBucket {
    /// A bucket that admits `rate_per_sec` on average and `burst` at once; it starts
    /// full. A burst of 0 is raised to 1, or nothing could ever pass.
    pub fn new(rate_per_sec: u64, burst: u64) -> Self {
        TokenBucket::with_milli_rate(rate_per_sec.saturating_mul(1000), burst)
    }

    /// This worker's share of a cluster-wide limit: `total_rps / workers` (fractions
    /// kept, to a thousandth of a request per second) and `burst / workers` rounded up.
    /// Each worker only sees the connections it accepted, so a single busy client is
    /// held to one worker's share; that is the cost of sharing nothing.
    pub fn for_worker(total_rps: u64, burst: u64, workers: usize) -> Self {
        let workers = u64::try_from(workers.max(1)).unwrap_or(u64::MAX);
        TokenBucket::with_milli_rate(
            total_rps.saturating_mul(1000) / workers,
            burst.div_ceil(workers),
        )
    }

    fn with_milli_rate(rate_milli: u64, burst: u64) -> Self {
        let capacity = u128::from(burst.max(1)) * TOKEN;
        TokenBucket {
            rate_milli,
            capacity,
            balance: capacity,
            updated: None,
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.try_take_n(1, now)
    }

    /// Takes `n` tokens at once, or none.
    pub fn try_take_n(&mut self, n: u64, now: Instant) -> bool {
        self.refill(now);
        let cost = u128::from(n) * TOKEN;
        if self.balance < cost {
            return false;
        }
        self.balance -= cost;
        true
    }

    /// Whole tokens available at `now`.
    pub fn available(&mut self, now: Instant) -> u64 {
        self.refill(now);
        u64::try_from(self.balance / TOKEN).unwrap_or(u64::MAX)
    }

    fn refill(&mut self, now: Instant) {
        let Some(updated) = self.updated else {
            self.updated = Some(now);
            return;
        };
        // A clock that steps back (it should not: Instant is monotonic) adds nothing.
        let Some(elapsed) = now.checked_duration_since(updated) else {
            return;
        };
        let added = elapsed
            .as_nanos()
            .saturating_mul(u128::from(self.rate_milli));
        self.balance = self.balance.saturating_add(added).min(self.capacity);
        self.updated = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_steady_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(100, 10);
        let burst = (0..50).filter(|_| bucket.try_take(t0)).count();
        assert_eq!(burst, 10);
        // 100/s: one token every 10 ms.
        assert!(!bucket.try_take(t0 + Duration::from_millis(9)));
        assert!(bucket.try_take(t0 + Duration::from_millis(10)));
        assert!(!bucket.try_take(t0 + Duration::from_millis(10)));
    }

    #[test]
    fn long_run_rate_is_exact() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1_000, 1);
        // Offered 10,000/s for 10 s in 100 µs steps: admits the burst plus 1,000/s.
        let admitted = (0..100_000u64)
            .filter(|step| bucket.try_take(t0 + Duration::from_micros(step * 100)))
            .count();
        assert!((9_999..=10_001).contains(&admitted), "{admitted}");
    }

    #[test]
    fn idle_time_fills_only_to_capacity() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10, 5);
        assert!(bucket.try_take_n(5, t0));
        assert_eq!(bucket.available(t0 + Duration::from_secs(3600)), 5);
        assert!(!bucket.try_take_n(6, t0 + Duration::from_secs(3600)));
        assert!(bucket.try_take_n(5, t0 + Duration::from_secs(3600)));
        // Time going backwards neither refills nor panics.
        assert!(!bucket.try_take(t0));
    }

    #[test]
    fn worker_split() {
        let t0 = Instant::now();
        // 10 rps over 4 workers: 2.5 each, kept as a fraction; burst 10 → 3 each.
        let mut bucket = TokenBucket::for_worker(10, 10, 4);
        assert_eq!(bucket.available(t0), 3);
        assert!(bucket.try_take_n(3, t0));
        assert_eq!(bucket.available(t0 + Duration::from_millis(799)), 1);
        assert_eq!(bucket.available(t0 + Duration::from_millis(800)), 2);
        // A zero burst still lets one request through.
        let mut tiny = TokenBucket::new(0, 0);
        assert!(tiny.try_take(t0));
        assert!(!tiny.try_take(t0 + Duration::from_secs(100)));
    }
}
