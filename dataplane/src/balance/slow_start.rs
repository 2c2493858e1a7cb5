//! Slow start: an endpoint that was just added or just became healthy gets a weight
//! that ramps from a floor up to its full weight over a window, so a cold process
//! (empty caches, unwarmed JIT, fresh connection pool) is not handed its full share
//! at once.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlowStartConfig {
    /// How long the ramp lasts; zero turns slow start off.
    pub window: Duration,
    /// Shape of the ramp: the weight factor is `progress^(1 / aggression)`. 1.0 is a
    /// straight line; larger values climb faster at first.
    pub aggression: f64,
    /// The factor never goes below this, so a new endpoint gets some traffic (and so
    /// some warm-up) from the start.
    pub min_weight_percent: u8,
}

impl Default for SlowStartConfig {
    fn default() -> Self {
        SlowStartConfig {
            window: Duration::ZERO,
            aggression: 1.0,
            min_weight_percent: 10,
        }
    }
}

impl SlowStartConfig {
    /// The weight multiplier in `[min_weight_percent / 100, 1]` for an endpoint that
    /// started at `since`.
    pub fn factor(&self, since: Instant, now: Instant) -> f64 {
        if self.window.is_zero() {
            return 1.0;
        }
        let elapsed = now.saturating_duration_since(since);
        if elapsed >= self.window {
            return 1.0;
        }
        let progress = elapsed.as_secs_f64() / self.window.as_secs_f64();
        let aggression = if self.aggression > 0.0 {
            self.aggression
        } else {
            1.0
        };
        let floor = f64::from(self.min_weight_percent.min(100)) / 100.0;
        progress.powf(1.0 / aggression).max(floor)
    }
}

/// When each endpoint of a cluster entered its ramp. Endpoints present when the
/// worker started (or ramped long ago) have no start and carry full weight.
#[derive(Debug, Clone)]
pub struct SlowStart {
    config: SlowStartConfig,
    since: Vec<Option<Instant>>,
}

impl SlowStart {
    pub fn new(config: SlowStartConfig, endpoints: usize) -> Self {
        SlowStart {
            config,
            since: vec![None; endpoints],
        }
    }

    /// The ramps for a new table generation. `previous(i)` names the old index of new
    /// endpoint `i` when it was in the old table (matched by stable id); endpoints
    /// that were not are new, and start ramping at `now`.
    pub fn rebuild(
        &self,
        config: SlowStartConfig,
        endpoints: usize,
        previous: impl Fn(usize) -> Option<usize>,
        now: Instant,
    ) -> Self {
        let ramping = !config.window.is_zero();
        SlowStart {
            config,
            since: (0..endpoints)
                .map(|index| match previous(index) {
                    _ if !ramping => None,
                    Some(old) => self.since.get(old).copied().flatten(),
                    None => Some(now),
                })
                .collect(),
        }
    }

    /// The endpoint was added or became healthy (after a health check or ejection).
    pub fn start(&mut self, index: usize, now: Instant) {
        if self.config.window.is_zero() {
            return;
        }
        if let Some(since) = self.since.get_mut(index) {
            *since = Some(now);
        }
    }

    /// The weight multiplier for endpoint `index`; forgets finished ramps so later
    /// calls are a single comparison.
    pub fn factor(&mut self, index: usize, now: Instant) -> f64 {
        let Some(slot) = self.since.get_mut(index) else {
            return 1.0;
        };
        let Some(since) = *slot else {
            return 1.0;
        };
        let factor = self.config.factor(since, now);
        if factor >= 1.0 {
            *slot = None;
        }
        factor
    }

    /// `weight` scaled by the endpoint's ramp, for the balancers' `Load::weight`.
    pub fn effective_weight(&mut self, index: usize, weight: u32, now: Instant) -> f64 {
        f64::from(weight) * self.factor(index, now)
    }

    /// Whether any endpoint is still ramping (balancers may skip the work if not).
    pub fn any_ramping(&self) -> bool {
        self.since.iter().any(Option::is_some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::least_request::{choose, Load};
    use crate::resilience::XorShift64;

    fn config(aggression: f64) -> SlowStartConfig {
        SlowStartConfig {
            window: Duration::from_secs(60),
            aggression,
            min_weight_percent: 10,
        }
    }

    #[test]
    fn linear_ramp_with_floor() {
        let t0 = Instant::now();
        let c = config(1.0);
        assert_eq!(c.factor(t0, t0), 0.1);
        assert_eq!(c.factor(t0, t0 + Duration::from_secs(3)), 0.1);
        assert!((c.factor(t0, t0 + Duration::from_secs(30)) - 0.5).abs() < 1e-9);
        assert_eq!(c.factor(t0, t0 + Duration::from_secs(60)), 1.0);
        assert_eq!(c.factor(t0, t0 + Duration::from_secs(600)), 1.0);
        assert_eq!(SlowStartConfig::default().factor(t0, t0), 1.0);
    }

    #[test]
    fn aggression_climbs_faster_early() {
        let t0 = Instant::now();
        let quarter = t0 + Duration::from_secs(15);
        assert!((config(2.0).factor(t0, quarter) - 0.5).abs() < 1e-9);
        assert!(config(2.0).factor(t0, quarter) > config(1.0).factor(t0, quarter));
    }

    #[test]
    fn tracker_forgets_finished_ramps() {
        let t0 = Instant::now();
        let mut ramp = SlowStart::new(config(1.0), 3);
        assert!(!ramp.any_ramping());
        ramp.start(1, t0);
        assert!(ramp.any_ramping());
        assert_eq!(ramp.effective_weight(0, 10, t0), 10.0);
        assert_eq!(ramp.effective_weight(1, 10, t0), 1.0);
        assert_eq!(ramp.factor(1, t0 + Duration::from_secs(61)), 1.0);
        assert!(!ramp.any_ramping());
        assert_eq!(ramp.factor(99, t0), 1.0);
    }

    #[test]
    fn rebuild_ramps_only_new_endpoints() {
        let t0 = Instant::now();
        let mut old = SlowStart::new(config(1.0), 2);
        old.start(1, t0);
        let t1 = t0 + Duration::from_secs(30);
        // New table: old 1 stays (now at index 0), old 0 is gone, index 1 is new.
        let mut new = old.rebuild(config(1.0), 2, |i| (i == 0).then_some(1), t1);
        assert!((new.factor(0, t1) - 0.5).abs() < 1e-9);
        assert_eq!(new.factor(1, t1), 0.1);
        let off = old.rebuild(SlowStartConfig::default(), 3, |_| None, t1);
        assert!(!off.any_ramping());
        assert_eq!(off.since.len(), 3);
    }

    /// A fresh endpoint joining two warm ones gets little traffic at first and its
    /// fair third once the window has passed.
    #[test]
    fn new_endpoint_share_grows_with_least_request() {
        let t0 = Instant::now();
        let mut ramp = SlowStart::new(config(1.0), 3);
        ramp.start(2, t0);
        let mut rng = XorShift64::new(5);
        let mut share_at = |ramp: &mut SlowStart, now: Instant| {
            let weights: Vec<f64> = (0..3).map(|i| ramp.effective_weight(i, 1, now)).collect();
            let mut active = [0u32; 3];
            let mut sent = [0u32; 3];
            for _ in 0..3_000 {
                let loads = |i: usize| Load {
                    active: active[i],
                    weight: weights[i],
                };
                let pick = choose(3, loads, rng.next_u64()).unwrap();
                active[pick] += 1;
                sent[pick] += 1;
            }
            f64::from(sent[2]) / 3_000.0
        };
        let early = share_at(&mut ramp, t0);
        let late = share_at(&mut ramp, t0 + Duration::from_secs(120));
        assert!(early < 0.12, "{early}");
        assert!((late - 1.0 / 3.0).abs() < 0.02, "{late}");
    }
}
