//! Active health checking, the pure part: each endpoint's healthy/unhealthy state
//! with hysteresis (consecutive results needed to flip it) and when its next probe is
//! due. The caller sends the probes and reports the results.
//!
//! Life of one endpoint:
//! `due(now)` lists it → caller calls `begin` and sends a probe → the probe's result
//! (a timeout counts as failure) goes to `record`, which may flip the state and
//! schedules the next probe `interval ± jitter` later.

use super::{later, XorShift64};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Healthy,
    Unhealthy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    pub interval: Duration,
    /// Each wait is `interval` moved by up to this percent either way, so probes from
    /// many workers and proxies do not arrive in step.
    pub jitter_percent: u8,
    /// Consecutive successes that make an unhealthy endpoint healthy.
    pub healthy_threshold: u32,
    /// Consecutive failures that make a healthy endpoint unhealthy.
    pub unhealthy_threshold: u32,
    /// The state before any probe has answered. Unhealthy is the safe choice for
    /// endpoints that may not be up yet; healthy avoids refusing traffic at start.
    pub initial: Health,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval: Duration::from_secs(5),
            jitter_percent: 10,
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            initial: Health::Healthy,
        }
    }
}

/// A state change caused by `record`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub index: usize,
    pub to: Health,
}

#[derive(Debug, Clone, Copy)]
struct EndpointHealth {
    state: Health,
    successes: u32,
    failures: u32,
    next_check: Instant,
    /// A probe was sent and has not been recorded; the endpoint is not due again
    /// until it is.
    probing: bool,
}

#[derive(Debug, Clone)]
pub struct HealthChecker {
    config: HealthConfig,
    endpoints: Vec<EndpointHealth>,
    rng: XorShift64,
}

impl HealthChecker {
    /// First probes are spread uniformly over one interval from `now`, so a restart
    /// does not probe every endpoint at the same instant.
    pub fn new(config: HealthConfig, endpoints: usize, now: Instant, seed: u64) -> Self {
        let mut rng = XorShift64::new(seed);
        let interval = config.interval.as_nanos().max(1);
        let endpoints = (0..endpoints)
            .map(|_| EndpointHealth {
                state: config.initial,
                successes: 0,
                failures: 0,
                next_check: later(now, nanos(u128::from(rng.next_u64()) % interval)),
                probing: false,
            })
            .collect();
        HealthChecker {
            config,
            endpoints,
            rng,
        }
    }

    /// The checker for a new table generation. `previous(i)` names the old index of
    /// new endpoint `i` when it was in the old table (matched by stable id), so its
    /// state and schedule carry over; new endpoints start in `config.initial` with a
    /// first probe somewhere in the next interval.
    pub fn rebuild(
        &self,
        config: HealthConfig,
        endpoints: usize,
        previous: impl Fn(usize) -> Option<usize>,
        now: Instant,
    ) -> Self {
        let mut rng = self.rng.clone();
        let interval = config.interval.as_nanos().max(1);
        let endpoints = (0..endpoints)
            .map(|index| {
                let kept = previous(index).and_then(|old| self.endpoints.get(old).copied());
                kept.unwrap_or_else(|| EndpointHealth {
                    state: config.initial,
                    successes: 0,
                    failures: 0,
                    next_check: later(now, nanos(u128::from(rng.next_u64()) % interval)),
                    probing: false,
                })
            })
            .collect();
        HealthChecker {
            config,
            endpoints,
            rng,
        }
    }

    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    pub fn state(&self, index: usize) -> Option<Health> {
        self.endpoints.get(index).map(|e| e.state)
    }

    pub fn is_healthy(&self, index: usize) -> bool {
        self.state(index) == Some(Health::Healthy)
    }

    /// Endpoints whose probe is due and not already out, in index order.
    pub fn due(&self, now: Instant) -> impl Iterator<Item = usize> + '_ {
        self.endpoints
            .iter()
            .enumerate()
            .filter(move |(_, e)| !e.probing && e.next_check <= now)
            .map(|(index, _)| index)
    }

    /// The earliest time a probe becomes due, for the caller's timer.
    pub fn next_due(&self) -> Option<Instant> {
        self.endpoints
            .iter()
            .filter(|e| !e.probing)
            .map(|e| e.next_check)
            .min()
    }

    /// A probe to `index` was sent.
    pub fn begin(&mut self, index: usize) {
        if let Some(endpoint) = self.endpoints.get_mut(index) {
            endpoint.probing = true;
        }
    }

    /// A probe's result. Returns the state change it caused, if any.
    pub fn record(&mut self, index: usize, success: bool, now: Instant) -> Option<Transition> {
        let wait = self.next_wait();
        let config = self.config;
        let endpoint = self.endpoints.get_mut(index)?;
        endpoint.probing = false;
        endpoint.next_check = later(now, wait);
        let to = if success {
            endpoint.failures = 0;
            endpoint.successes = endpoint.successes.saturating_add(1);
            (endpoint.state == Health::Unhealthy
                && endpoint.successes >= config.healthy_threshold.max(1))
            .then_some(Health::Healthy)
        } else {
            endpoint.successes = 0;
            endpoint.failures = endpoint.failures.saturating_add(1);
            (endpoint.state == Health::Healthy
                && endpoint.failures >= config.unhealthy_threshold.max(1))
            .then_some(Health::Unhealthy)
        }?;
        endpoint.state = to;
        Some(Transition { index, to })
    }

    /// `interval ± jitter_percent`, uniformly.
    fn next_wait(&mut self) -> Duration {
        let interval = self.config.interval.as_nanos();
        let jitter = interval * u128::from(self.config.jitter_percent.min(100)) / 100;
        let offset = u128::from(self.rng.next_u64()) % (2 * jitter + 1);
        nanos((interval + offset).saturating_sub(jitter))
    }
}

fn nanos(value: u128) -> Duration {
    Duration::from_nanos(u64::try_from(value).unwrap_or(u64::MAX))
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
