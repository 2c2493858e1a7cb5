//! Power of two choices over peak-EWMA latency: sample two endpoints, send to the one
//! whose latency estimate times (in-flight + 1) is lower.

use super::EndpointRuntime;
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Decay time constant: a sample's weight halves in about 7 s.
const TAU_NANOS: f64 = 10_000_000_000.0;
/// Optimistic start so a new endpoint gets traffic and a real estimate quickly.
const INITIAL_NANOS: f64 = 1_000_000.0;

/// Latency estimate that jumps up to a slow sample at once and decays back slowly,
/// so a slowing endpoint is avoided immediately.
#[derive(Debug)]
pub struct PeakEwma {
    nanos: Cell<f64>,
    updated: Cell<Option<Instant>>,
}

impl Default for PeakEwma {
    fn default() -> Self {
        PeakEwma {
            nanos: Cell::new(INITIAL_NANOS),
            updated: Cell::new(None),
        }
    }
}

impl PeakEwma {
    pub fn observe(&self, latency: Duration) {
        self.observe_at(latency, Instant::now());
    }

    pub fn observe_at(&self, latency: Duration, now: Instant) {
        let sample = latency.as_nanos() as f64;
        let previous = self.nanos.get();
        let next = if sample > previous {
            sample
        } else {
            let elapsed = self
                .updated
                .get()
                .map(|at| now.saturating_duration_since(at).as_nanos() as f64)
                .unwrap_or(TAU_NANOS);
            let keep = (-elapsed / TAU_NANOS).exp();
            previous * keep + sample * (1.0 - keep)
        };
        self.nanos.set(next);
        self.updated.set(Some(now));
    }

    pub fn estimate_nanos(&self) -> f64 {
        self.nanos.get()
    }
}

pub fn score(endpoint: &EndpointRuntime) -> f64 {
    endpoint.latency.estimate_nanos() * f64::from(endpoint.in_flight.get() + 1)
}

pub fn choose(endpoints: &[Rc<EndpointRuntime>], roll: u64) -> Option<usize> {
    choose_by(endpoints.len(), roll, |i| {
        endpoints.get(i).map_or(f64::MAX, |e| score(e))
    })
}

/// P2C over `count` candidates whose scores `score_of` gives (lower is better).
pub fn choose_by(count: usize, roll: u64, score_of: impl Fn(usize) -> f64) -> Option<usize> {
    match count {
        0 => None,
        1 => Some(0),
        len => {
            let first = (roll as u32 as usize) % len;
            // Second pick among the others so the two are always distinct.
            let offset = 1 + ((roll >> 32) as usize) % (len - 1);
            let second = (first + offset) % len;
            Some(if score_of(second) < score_of(first) {
                second
            } else {
                first
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmesh_api::snapshot::StableId;

    fn endpoint(id: u64) -> Rc<EndpointRuntime> {
        Rc::new(EndpointRuntime::new(
            StableId(id),
            ([127, 0, 0, 1], 1000 + id as u16).into(),
            std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
        ))
    }

    #[test]
    fn slow_endpoint_gets_little_traffic() {
        let endpoints = vec![endpoint(0), endpoint(1), endpoint(2)];
        let now = Instant::now();
        for (index, e) in endpoints.iter().enumerate() {
            let ms = if index == 2 { 21 } else { 1 };
            for step in 0..20u64 {
                e.latency
                    .observe_at(Duration::from_millis(ms), now + Duration::from_millis(step));
            }
        }
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut slow = 0;
        for _ in 0..10_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if choose(&endpoints, seed) == Some(2) {
                slow += 1;
            }
        }
        assert_eq!(
            slow, 0,
            "P2C never prefers the slow endpoint when both others are faster"
        );
    }

    #[test]
    fn peak_then_decay() {
        let ewma = PeakEwma::default();
        let t0 = Instant::now();
        ewma.observe_at(Duration::from_millis(50), t0);
        assert_eq!(ewma.estimate_nanos(), 50_000_000.0);
        ewma.observe_at(Duration::from_millis(1), t0 + Duration::from_secs(10));
        let after = ewma.estimate_nanos();
        assert!(after < 50_000_000.0 && after > 1_000_000.0, "{after}");
    }

    #[test]
    fn distinct_choices_and_edge_sizes() {
        assert_eq!(choose(&[], 7), None);
        let one = vec![endpoint(0)];
        assert_eq!(choose(&one, 7), Some(0));
    }
}
