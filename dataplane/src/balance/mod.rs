//! Balancing: per-worker cluster and endpoint state, and the choice of an endpoint
//! for each request. Endpoint state (EWMA, in-flight, idle pool) is keyed by stable id
//! so it survives table swaps; balancer cursors are rebuilt with the cluster.

pub mod least_request;
pub mod maglev;
mod p2c;
pub mod ring_hash;
mod round_robin;
pub mod slow_start;

use crate::forward::pool::IdlePool;
use crate::metrics::ClusterStats;
use crate::table::ClusterTable;
use ringmesh_api::snapshot::{Balance, StableId};
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

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
}

impl EndpointRuntime {
    pub fn new(id: StableId, addr: SocketAddr) -> Self {
        EndpointRuntime {
            id,
            addr,
            in_flight: Cell::new(0),
            latency: PeakEwma::default(),
            idle: IdlePool::default(),
        }
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
}

/// A cluster as this worker sees it for one table generation.
pub struct ClusterRuntime {
    pub table_index: usize,
    pub name: String,
    pub connect_timeout: Duration,
    pub max_idle_per_endpoint: usize,
    pub pool_idle_timeout: Duration,
    pub endpoints: Vec<Rc<EndpointRuntime>>,
    pub stats: Arc<ClusterStats>,
    picker: Picker,
}

impl ClusterRuntime {
    pub fn new(
        table_index: usize,
        cluster: &ClusterTable,
        endpoints: Vec<Rc<EndpointRuntime>>,
        stats: Arc<ClusterStats>,
    ) -> Self {
        let weights: Vec<u32> = cluster.endpoints.iter().map(|e| e.weight.max(1)).collect();
        let picker = match cluster.balance {
            Balance::RoundRobin => Picker::RoundRobin(RefCell::new(SmoothWeighted::new(weights))),
            Balance::P2cEwma => Picker::P2c,
        };
        ClusterRuntime {
            table_index,
            name: cluster.name.clone(),
            connect_timeout: cluster.connect_timeout,
            max_idle_per_endpoint: cluster.pool.max_idle_per_endpoint as usize,
            pool_idle_timeout: std::time::Duration::from_millis(cluster.pool.idle_timeout_ms),
            endpoints,
            stats,
            picker,
        }
    }

    /// Choose an endpoint; `roll` supplies randomness (two independent halves).
    pub fn pick(&self, roll: u64) -> Option<&Rc<EndpointRuntime>> {
        let index = match &self.picker {
            Picker::RoundRobin(state) => state.borrow_mut().pick()?,
            Picker::P2c => p2c::choose(&self.endpoints, roll)?,
        };
        self.endpoints.get(index)
    }
}
