//! Passive outlier detection: count each endpoint's consecutive failures as real
//! requests see them, eject an endpoint that crosses a threshold for a growing
//! time, and never eject so many that the rest of the cluster is overrun.
//!
//! Ejection ends by itself: `is_ejected` compares the deadline with `now`, so there
//! is no timer to run. Outcomes reported for an endpoint while it is ejected (requests
//! that were already in flight) are ignored; it comes back with clean counters.

use super::later;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierConfig {
    /// Consecutive 5xx answers (or local failures, which count as 5xx) to eject on.
    pub consecutive_5xx: Option<u32>,
    /// Consecutive 502/503/504 answers, connect failures, resets or timeouts.
    pub consecutive_gateway_failure: Option<u32>,
    /// Consecutive failures to connect at all.
    pub consecutive_connect_failure: Option<u32>,
    /// The first ejection lasts this long; the n-th lasts n times as long.
    pub base_ejection_time: Duration,
    /// No single ejection lasts longer than this (nor less than `base_ejection_time`).
    pub max_ejection_time: Duration,
    /// At most this share of the cluster is ejected at once, rounded down but never
    /// below one endpoint; 0 disables ejection.
    pub max_ejection_percent: u8,
    /// Each full interval an endpoint stays in service forgives one past ejection,
    /// so an endpoint that recovered is not punished for old failures forever.
    pub interval: Duration,
}

impl Default for OutlierConfig {
    /// Envoy's defaults, with the gateway-failure check enabled.
    fn default() -> Self {
        OutlierConfig {
            consecutive_5xx: Some(5),
            consecutive_gateway_failure: Some(5),
            consecutive_connect_failure: Some(5),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 10,
            interval: Duration::from_secs(10),
        }
    }
}

/// How one request to an endpoint ended, as far as the endpoint's health goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response whose status is the upstream's own answer.
    Status(u16),
    /// The TCP (or TLS) connection could not be established.
    ConnectFailure,
    /// The connection broke before a complete response.
    Reset,
    /// No response within the per-try timeout.
    Timeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EjectReason {
    Consecutive5xx,
    ConsecutiveGatewayFailure,
    ConsecutiveConnectFailure,
}

impl EjectReason {
    /// The name Envoy users know, for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            EjectReason::Consecutive5xx => "consecutive_5xx",
            EjectReason::ConsecutiveGatewayFailure => "consecutive_gateway_failure",
            EjectReason::ConsecutiveConnectFailure => "consecutive_connect_failure",
        }
    }
}

/// Returned by `record` when the outcome ejected the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ejected {
    pub index: usize,
    pub reason: EjectReason,
    pub until: Instant,
    /// How many times this endpoint has been ejected, counting this one (after
    /// forgiveness for time spent healthy).
    pub times: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct EndpointState {
    consecutive_5xx: u32,
    consecutive_gateway: u32,
    consecutive_connect: u32,
    times_ejected: u32,
    /// Deadline of the current or the last ejection.
    ejected_until: Option<Instant>,
}

impl EndpointState {
    fn is_ejected(&self, now: Instant) -> bool {
        self.ejected_until.is_some_and(|until| now < until)
    }
}

#[derive(Debug, Clone)]
pub struct OutlierDetector {
    config: OutlierConfig,
    endpoints: Vec<EndpointState>,
}

impl OutlierDetector {
    pub fn new(config: OutlierConfig, endpoints: usize) -> Self {
        OutlierDetector {
            config,
            endpoints: vec![EndpointState::default(); endpoints],
        }
    }

    /// The detector for a new table generation. `previous(i)` names the old index
    /// of new endpoint `i` when it was in the old table (matched by stable id), so
    /// its counters and any ejection carry over; new endpoints start clean.
    pub fn rebuild(
        &self,
        config: OutlierConfig,
        endpoints: usize,
        previous: impl Fn(usize) -> Option<usize>,
    ) -> Self {
        OutlierDetector {
            config,
            endpoints: (0..endpoints)
                .map(|index| {
                    previous(index)
                        .and_then(|old| self.endpoints.get(old).copied())
                        .unwrap_or_default()
                })
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// Counts one outcome. Returns the ejection it caused, if any.
    pub fn record(&mut self, index: usize, outcome: Outcome, now: Instant) -> Option<Ejected> {
        let config = self.config;
        let state = self.endpoints.get_mut(index)?;
        if state.is_ejected(now) {
            return None;
        }
        let (is_5xx, is_gateway, is_connect) = classify(outcome);
        bump(&mut state.consecutive_5xx, is_5xx);
        bump(&mut state.consecutive_gateway, is_gateway);
        bump(&mut state.consecutive_connect, is_connect);
        // The most specific reason wins the label.
        let reason = if reached(
            state.consecutive_connect,
            config.consecutive_connect_failure,
        ) {
            EjectReason::ConsecutiveConnectFailure
        } else if reached(
            state.consecutive_gateway,
            config.consecutive_gateway_failure,
        ) {
            EjectReason::ConsecutiveGatewayFailure
        } else if reached(state.consecutive_5xx, config.consecutive_5xx) {
            EjectReason::Consecutive5xx
        } else {
            return None;
        };
        if !self.may_eject(now) {
            // Counters stay at the threshold, so the next failure tries again once
            // another endpoint has come back.
            return None;
        }
        self.eject(index, reason, now)
    }

    fn may_eject(&self, now: Instant) -> bool {
        if self.config.max_ejection_percent == 0 {
            return false;
        }
        let share = self.endpoints.len() * usize::from(self.config.max_ejection_percent.min(100));
        let allowed = (share / 100).max(1);
        self.ejected_count(now) < allowed
    }

    fn eject(&mut self, index: usize, reason: EjectReason, now: Instant) -> Option<Ejected> {
        let config = self.config;
        let state = self.endpoints.get_mut(index)?;
        let forgiven = match (state.ejected_until, config.interval.as_nanos()) {
            (Some(back), interval) if interval > 0 => {
                let healthy_for = now.saturating_duration_since(back).as_nanos();
                u32::try_from(healthy_for / interval).unwrap_or(u32::MAX)
            }
            _ => 0,
        };
        let times = state
            .times_ejected
            .saturating_sub(forgiven)
            .saturating_add(1);
        let cap = config.max_ejection_time.max(config.base_ejection_time);
        let duration = config
            .base_ejection_time
            .checked_mul(times)
            .unwrap_or(cap)
            .min(cap);
        let until = later(now, duration);
        *state = EndpointState {
            times_ejected: times,
            ejected_until: Some(until),
            ..EndpointState::default()
        };
        Some(Ejected {
            index,
            reason,
            until,
            times,
        })
    }

    pub fn is_ejected(&self, index: usize, now: Instant) -> bool {
        self.endpoints
            .get(index)
            .is_some_and(|state| state.is_ejected(now))
    }

    /// Endpoints in service at `now`, in index order.
    pub fn available(&self, now: Instant) -> impl Iterator<Item = usize> + '_ {
        self.endpoints
            .iter()
            .enumerate()
            .filter(move |(_, state)| !state.is_ejected(now))
            .map(|(index, _)| index)
    }

    /// Refills `out` with `available(now)`, reusing its allocation: the balancer's
    /// candidate list is rebuilt only when ejections change (see `next_return`).
    pub fn available_into(&self, now: Instant, out: &mut Vec<usize>) {
        out.clear();
        out.extend(self.available(now));
    }

    pub fn ejected_count(&self, now: Instant) -> usize {
        self.endpoints
            .iter()
            .filter(|state| state.is_ejected(now))
            .count()
    }

    /// When the next ejected endpoint comes back, so the caller knows until when its
    /// candidate list stays valid.
    pub fn next_return(&self, now: Instant) -> Option<Instant> {
        self.endpoints
            .iter()
            .filter_map(|state| state.ejected_until)
            .filter(|until| now < *until)
            .min()
    }

    /// Whether the balancer should ignore ejections and use every endpoint (see
    /// `panic_mode`).
    pub fn in_panic(&self, now: Instant, panic_threshold_percent: u8) -> bool {
        let healthy = self.endpoints.len() - self.ejected_count(now);
        panic_mode(healthy, self.endpoints.len(), panic_threshold_percent)
    }
}

/// Envoy's panic threshold: when fewer than `threshold_percent` of the endpoints are
/// usable, spreading the load over that few would overrun them, so balance over all
/// endpoints (ejected or unhealthy included) instead.
pub fn panic_mode(healthy: usize, total: usize, threshold_percent: u8) -> bool {
    total > 0 && healthy.saturating_mul(100) < total.saturating_mul(usize::from(threshold_percent))
}

/// Which counters an outcome advances: (5xx, gateway failure, connect failure).
/// Local failures count as the status the client would get (503 or 504), as Envoy
/// does when it does not split local-origin errors.
fn classify(outcome: Outcome) -> (bool, bool, bool) {
    match outcome {
        Outcome::Status(status) => (
            (500..600).contains(&status),
            matches!(status, 502..=504),
            false,
        ),
        Outcome::ConnectFailure => (true, true, true),
        Outcome::Reset | Outcome::Timeout => (true, true, false),
    }
}

fn bump(counter: &mut u32, failed: bool) {
    *counter = if failed { counter.saturating_add(1) } else { 0 };
}

fn reached(count: u32, threshold: Option<u32>) -> bool {
    threshold.is_some_and(|threshold| threshold > 0 && count >= threshold)
}

#[cfg(test)]
#[path = "outlier_tests.rs"]
mod tests;
