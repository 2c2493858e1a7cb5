//! Balancing: per-worker cluster and endpoint state, and the choice of an endpoint
//! for each request. Endpoint state (EWMA, in-flight, idle pool) is keyed by stable id
//! so it survives table swaps; a cluster whose compiled spec did not change keeps its
//! whole runtime (cursors included), a changed one is rebuilt carrying its state.

pub mod carry;
pub mod least_request;
pub mod maglev;
pub mod p2c;
pub mod ring_hash;
mod round_robin;
pub mod slow_start;

use crate::forward::pool::IdlePool;
use crate::metrics::ClusterStats;
use crate::policy::HashTable;
use crate::resilience::breaker::Breaker;
use crate::resilience::outlier::{Outcome, OutlierDetector};
use crate::resilience::retry::RetryBudget;
use crate::table::ClusterTable;
use least_request::Load;
use ringmesh_api::snapshot::{Balance, HashKey, StableId};
use slow_start::{SlowStart, SlowStartConfig};
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use p2c::PeakEwma;
pub use round_robin::SmoothWeighted;

/// One upstream endpoint as this worker sees it.
#[derive(Debug)]
pub struct EndpointRuntime {
    pub id: StableId,
    pub addr: SocketAddr,
    /// Requests this worker has sent and not yet seen answered.
    pub in_flight: Cell<u32>,
    pub latency: PeakEwma,
    pub idle: IdlePool,
    /// Written by the worker that health-checks this endpoint's cluster, read by
    /// all: shared through the published state, not per request.
    pub healthy: Arc<AtomicBool>,
}

impl EndpointRuntime {
    pub fn new(id: StableId, addr: SocketAddr, healthy: Arc<AtomicBool>) -> Self {
        EndpointRuntime {
            id,
            addr,
            in_flight: Cell::new(0),
            latency: PeakEwma::default(),
            idle: IdlePool::default(),
            healthy,
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

/// Marks a request in flight to an endpoint for as long as it lives.
pub struct InFlight(Rc<EndpointRuntime>);

impl InFlight {
    pub fn start(endpoint: &Rc<EndpointRuntime>) -> Self {
        endpoint
            .in_flight
            .set(endpoint.in_flight.get().saturating_add(1));
        InFlight(endpoint.clone())
    }

    pub fn finish(self, latency: Duration) {
        self.0.latency.observe(latency);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .in_flight
            .set(self.0.in_flight.get().saturating_sub(1));
    }
}

enum Picker {
    RoundRobin(RefCell<SmoothWeighted>),
    P2c,
    LeastRequest,
    /// Ring hash or Maglev: the key's endpoint, round robin when there is no key.
    Hash(Arc<HashTable>, RefCell<SmoothWeighted>),
}

/// Outlier detection state of one cluster on one worker.
pub struct Outliers {
    pub detector: RefCell<OutlierDetector>,
    pub panic_threshold_percent: u8,
}

/// A cluster as this worker sees it for one table generation.
pub struct ClusterRuntime {
    /// The compiled cluster this runtime was built for: a later table that shares
    /// this very `Arc` (unchanged spec) at the same index keeps this runtime whole.
    pub source: Arc<ClusterTable>,
    pub table_index: usize,
    pub id: StableId,
    pub name: String,
    pub connect_timeout: Duration,
    pub max_idle_per_endpoint: usize,
    pub pool_idle_timeout: Duration,
    pub endpoints: Vec<Rc<EndpointRuntime>>,
    weights: Vec<u32>,
    pub stats: Arc<ClusterStats>,
    picker: Picker,
    pub hash_key: Option<HashKey>,
    pub outliers: Option<Outliers>,
    /// Shares its counters with the previous generation's breaker.
    pub breaker: Breaker,
    pub retry_budget: RefCell<RetryBudget>,
    slow_start: Option<RefCell<SlowStart>>,
    /// Whether any endpoint can be unavailable (health checks or outlier detection);
    /// without either, picking skips the availability scan.
    filtered: bool,
    /// Reused list of available endpoint indices (no allocation per request).
    scratch: RefCell<Vec<usize>>,
}

impl ClusterRuntime {
    /// This worker's runtime for `cluster`, carrying outlier, breaker, budget and
    /// slow-start state from `previous` (the same cluster in the last generation).
    pub fn new(
        table_index: usize,
        cluster: &Arc<ClusterTable>,
        endpoints: Vec<Rc<EndpointRuntime>>,
        stats: Arc<ClusterStats>,
        previous: Option<&ClusterRuntime>,
        workers: usize,
    ) -> Self {
        let weights: Vec<u32> = cluster.endpoints.iter().map(|e| e.weight.max(1)).collect();
        let picker = match (&cluster.hash_table, cluster.balance) {
            (Some(table), _) => Picker::Hash(
                table.clone(),
                RefCell::new(SmoothWeighted::new(weights.clone())),
            ),
            (None, Balance::P2cEwma) => Picker::P2c,
            (None, Balance::LeastRequest) => Picker::LeastRequest,
            (None, _) => Picker::RoundRobin(RefCell::new(SmoothWeighted::new(weights.clone()))),
        };
        let old_index = |index: usize| -> Option<usize> {
            let id = endpoints.get(index)?.id;
            previous?.endpoints.iter().position(|e| e.id == id)
        };
        let outliers = cluster.outlier.map(|policy| {
            let detector = match previous.and_then(|p| p.outliers.as_ref()) {
                Some(old) => {
                    old.detector
                        .borrow()
                        .rebuild(policy.config, endpoints.len(), old_index)
                }
                None => OutlierDetector::new(policy.config, endpoints.len()),
            };
            Outliers {
                detector: RefCell::new(detector),
                panic_threshold_percent: policy.panic_threshold_percent,
            }
        });
        let limits = cluster.breaker.for_worker(workers);
        let breaker = match previous {
            Some(old) => {
                let mut shared = old.breaker.clone();
                shared.set_limits(limits);
                shared
            }
            None => Breaker::new(limits),
        };
        let retry_budget = match previous {
            Some(old) => old.retry_budget.borrow().clone(),
            None => RetryBudget::new(cluster.retry_budget.for_worker(workers)),
        };
        let slow_start = (!cluster.slow_start.is_zero()).then(|| {
            let config = SlowStartConfig {
                window: cluster.slow_start,
                ..SlowStartConfig::default()
            };
            let ramps = match previous.and_then(|p| p.slow_start.as_ref()) {
                Some(old) => {
                    old.borrow()
                        .rebuild(config, endpoints.len(), old_index, Instant::now())
                }
                // A new cluster's endpoints take traffic at once: ramps are for
                // endpoints joining a cluster that already serves.
                None => SlowStart::new(config, endpoints.len()),
            };
            RefCell::new(ramps)
        });
        ClusterRuntime {
            source: Arc::clone(cluster),
            table_index,
            id: cluster.id,
            name: cluster.name.clone(),
            connect_timeout: cluster.connect_timeout,
            max_idle_per_endpoint: cluster.pool.max_idle_per_endpoint as usize,
            pool_idle_timeout: Duration::from_millis(cluster.pool.idle_timeout_ms),
            filtered: outliers.is_some() || cluster.health_check.is_some(),
            scratch: RefCell::new(Vec::with_capacity(endpoints.len())),
            endpoints,
            weights,
            stats,
            picker,
            hash_key: cluster.hash_key.clone(),
            outliers,
            breaker,
            retry_budget: RefCell::new(retry_budget),
            slow_start,
        }
    }

    fn available(&self, index: usize, now: Instant) -> bool {
        let Some(endpoint) = self.endpoints.get(index) else {
            return false;
        };
        endpoint.is_healthy()
            && !self
                .outliers
                .as_ref()
                .is_some_and(|o| o.detector.borrow().is_ejected(index, now))
    }

    /// Choose an endpoint index. `roll` supplies randomness, `hash` the affinity key's
    /// hash (ring hash / Maglev), `avoid` the endpoint a failed try used. Unavailable
    /// endpoints (unhealthy, ejected) are skipped unless too few are left (panic
    /// threshold), in which case every endpoint is a candidate again.
    pub fn pick(&self, roll: u64, hash: Option<u64>, avoid: Option<usize>) -> Option<usize> {
        let total = self.endpoints.len();
        if total == 0 {
            return None;
        }
        let now = Instant::now();
        let mut candidates = self.scratch.borrow_mut();
        candidates.clear();
        if self.filtered {
            candidates.extend((0..total).filter(|&i| self.available(i, now)));
            let threshold = self
                .outliers
                .as_ref()
                .map_or(50, |o| o.panic_threshold_percent);
            if crate::resilience::outlier::panic_mode(candidates.len(), total, threshold) {
                candidates.clear();
            }
        }
        let filtered = !candidates.is_empty();
        if filtered && avoid.is_some() && candidates.len() > 1 {
            candidates.retain(|&i| Some(i) != avoid);
        }
        let allowed =
            |i: usize| (!filtered || candidates.contains(&i)) && (Some(i) != avoid || total == 1);
        match &self.picker {
            Picker::Hash(table, fallback) => {
                if let Some(index) = hash.and_then(|h| table.pick(h)).filter(|&i| allowed(i)) {
                    return Some(index);
                }
                match avoid {
                    Some(failed) => next_after(failed, total, allowed),
                    None => rotate(fallback, total, allowed),
                }
            }
            // A retry takes the endpoint after the failed one without moving the
            // rotation: otherwise the retry would use up the next request's turn and
            // a failing endpoint would get almost every first try.
            Picker::RoundRobin(state) => match avoid {
                Some(failed) => next_after(failed, total, allowed),
                None => rotate(state, total, allowed),
            },
            Picker::P2c | Picker::LeastRequest => {
                let pool: &[usize] = if filtered { &candidates } else { &[] };
                let count = if filtered { pool.len() } else { total };
                let at = |position: usize| {
                    if filtered {
                        pool.get(position).copied()
                    } else {
                        Some(position)
                    }
                };
                let ramps = self.slow_start.as_ref();
                let position = match self.picker {
                    Picker::P2c => p2c::choose_by(count, roll, |position| {
                        at(position)
                            .and_then(|i| self.endpoints.get(i))
                            .map_or(f64::MAX, |e| p2c::score(e))
                    })?,
                    _ => least_request::choose(
                        count,
                        |position| {
                            let index = at(position).unwrap_or(0);
                            let active = self.endpoints.get(index).map_or(0, |e| e.in_flight.get());
                            let weight = self.weights.get(index).copied().unwrap_or(1);
                            let weight = match ramps {
                                Some(r) => r.borrow_mut().effective_weight(index, weight, now),
                                None => f64::from(weight),
                            };
                            Load { active, weight }
                        },
                        roll,
                    )?,
                };
                let index = at(position)?;
                if Some(index) == avoid && count > 1 {
                    // Two candidates picked the failed endpoint: take the next one.
                    return at((position + 1) % count);
                }
                Some(index)
            }
        }
    }

    /// Whether this runtime can serve `cluster` at `index` of a new table as it is:
    /// the table shares the compiled cluster (so spec and endpoints are equal).
    pub fn fits(&self, cluster: &Arc<ClusterTable>, index: usize) -> bool {
        self.table_index == index && Arc::ptr_eq(&self.source, cluster)
    }

    /// Only P2C over EWMA reads latency: other balancers skip the clock read and
    /// the decay computation per request.
    pub fn tracks_latency(&self) -> bool {
        matches!(self.picker, Picker::P2c)
    }

    pub fn endpoint(&self, index: usize) -> Option<&Rc<EndpointRuntime>> {
        self.endpoints.get(index)
    }

    /// Tell outlier detection how a try to endpoint `index` ended.
    pub fn record(&self, index: usize, outcome: Outcome) {
        let Some(outliers) = &self.outliers else {
            return;
        };
        let now = Instant::now();
        let ejected = outliers.detector.borrow_mut().record(index, outcome, now);
        if let Some(ejected) = ejected {
            self.stats.outlier_ejections.inc();
            let addr = self.endpoints.get(index).map(|e| e.addr);
            tracing::warn!(
                cluster = %self.name,
                endpoint = ?addr,
                reason = ejected.reason.as_str(),
                times = ejected.times,
                "endpoint ejected"
            );
            if let (Some(ramps), Some(until)) = (&self.slow_start, Some(ejected.until)) {
                // It will come back with a ramp rather than a full share at once.
                ramps.borrow_mut().start(index, until);
            }
        }
    }
}

/// The first allowed endpoint after `failed`, in index order.
fn next_after(failed: usize, total: usize, allowed: impl Fn(usize) -> bool) -> Option<usize> {
    (1..=total)
        .map(|step| (failed + step) % total)
        .find(|&index| allowed(index))
}

/// The next allowed endpoint in rotation order, if any within one full turn.
fn rotate(
    state: &RefCell<SmoothWeighted>,
    total: usize,
    allowed: impl Fn(usize) -> bool,
) -> Option<usize> {
    let mut state = state.borrow_mut();
    // Weighted rotation visits every endpoint within sum(weights) picks; bound the
    // search so an all-unavailable cluster cannot spin.
    for _ in 0..total.saturating_mul(4).max(8) {
        let index = state.pick()?;
        if allowed(index) {
            return Some(index);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_takes_the_next_allowed_endpoint() {
        assert_eq!(next_after(0, 3, |_| true), Some(1));
        assert_eq!(next_after(2, 3, |_| true), Some(0));
        assert_eq!(next_after(0, 3, |i| i == 2), Some(2));
        assert_eq!(next_after(0, 3, |_| false), None);
        // A single endpoint is retried on itself.
        assert_eq!(next_after(0, 1, |_| true), Some(0));
    }
}
