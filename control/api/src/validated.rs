//! The validated config: every value parsed and checked and every cluster name
//! resolved, but defaults not yet filled in (`None` means "not written"), so this
//! stage still says what the file said. `compile` turns it into a `Snapshot`.

use crate::snapshot::{
    AuthzPolicy, Balance, ClusterRef, HashKey, HeaderOps, ListenerTls, MeshMode, MeshSpec,
    RouteAction, RouteMatch, SniRoute, UpstreamTls,
};
use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq)]
pub struct ValidConfig {
    pub runtime: ValidRuntime,
    pub listeners: Vec<ValidListener>,
    /// In file order, so a `ClusterRef` is an index here and in the snapshot.
    pub clusters: Vec<ValidCluster>,
    pub mesh: Option<MeshSpec>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValidRuntime {
    pub workers: Option<usize>,
    pub drain_timeout_ms: Option<u64>,
    pub admin: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValidListener {
    pub name: String,
    pub bind: SocketAddr,
    pub max_connections: Option<u32>,
    pub idle_timeout_ms: Option<u64>,
    pub rate_limit: Option<ValidRateLimit>,
    pub kind: ValidListenerKind,
    pub tls: Option<ListenerTls>,
    pub mesh: Option<MeshMode>,
    pub identity_header: Option<String>,
    pub policies: Vec<AuthzPolicy>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ValidListenerKind {
    Tcp {
        cluster: ClusterRef,
        splice: Option<bool>,
        passthrough: bool,
        sni_routes: Vec<SniRoute>,
    },
    Http(ValidHttp),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValidHttp {
    pub max_request_line: Option<u32>,
    pub max_header_bytes: Option<u32>,
    pub max_headers: Option<u32>,
    pub header_read_timeout_ms: Option<u64>,
    pub max_body_bytes: Option<u64>,
    pub x_forwarded_for: Option<bool>,
    pub x_forwarded_proto: Option<bool>,
    /// `Some(None)` is `via = false`.
    pub via: Option<Option<String>>,
    pub request_id: Option<bool>,
    pub routes: Vec<ValidRoute>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValidRoute {
    pub name: Option<String>,
    pub matcher: RouteMatch,
    pub action: RouteAction,
    pub timeout_ms: Option<u64>,
    pub max_body_bytes: Option<u64>,
    pub request_headers: HeaderOps,
    pub response_headers: HeaderOps,
    pub retry: Option<ValidRetry>,
    pub rate_limit: Option<ValidRateLimit>,
    pub fault: Option<ValidFault>,
    pub policies: Vec<AuthzPolicy>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValidRetry {
    pub attempts: Option<u32>,
    /// Known condition names, without duplicates, in file order.
    pub retry_on: Option<Vec<String>>,
    /// Without duplicates, in file order; only with `retriable-status-codes`.
    pub statuses: Vec<u16>,
    pub per_try_timeout_ms: Option<u64>,
    pub backoff_base_ms: Option<u64>,
    pub backoff_max_ms: Option<u64>,
    pub non_idempotent: Option<bool>,
    pub max_replay_body_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValidRateLimit {
    pub requests_per_second: u32,
    pub burst: Option<u32>,
}

/// At least one of `delay`, `abort_status` is set; a percentage is only set with
/// its fault.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValidFault {
    pub delay_ms: Option<u64>,
    pub delay_percent: Option<f64>,
    pub abort_status: Option<u16>,
    pub abort_percent: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValidCluster {
    pub name: String,
    pub balance: Option<Balance>,
    pub connect_timeout_ms: Option<u64>,
    pub max_idle_per_endpoint: Option<u32>,
    pub pool_idle_timeout_ms: Option<u64>,
    pub endpoints: Vec<ValidEndpoint>,
    /// Set exactly when `balance` is ring hash or Maglev.
    pub hash_key: Option<HashKey>,
    pub slow_start_ms: Option<u64>,
    pub health_check: Option<ValidHealthCheck>,
    pub outlier: Option<ValidOutlier>,
    pub circuit_breaker: Option<ValidBreaker>,
    pub retry_budget: Option<ValidRetryBudget>,
    pub tls: Option<UpstreamTls>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ValidHealthCheckKind {
    Tcp,
    Http {
        path: String,
        expect_status: Option<u16>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValidHealthCheck {
    pub kind: ValidHealthCheckKind,
    pub interval_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub healthy_threshold: Option<u32>,
    pub unhealthy_threshold: Option<u32>,
    pub jitter_percent: Option<u8>,
}

/// A `consecutive_*` of `Some(0)` is a check written as off; `None` is not written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValidOutlier {
    pub consecutive_5xx: Option<u32>,
    pub consecutive_gateway_failure: Option<u32>,
    pub consecutive_connect_failure: Option<u32>,
    pub base_ejection_time_ms: Option<u64>,
    pub max_ejection_time_ms: Option<u64>,
    pub max_ejection_percent: Option<u8>,
    pub interval_ms: Option<u64>,
    pub panic_threshold_percent: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValidBreaker {
    pub max_connections: Option<u32>,
    pub max_pending_requests: Option<u32>,
    pub max_requests: Option<u32>,
    pub max_retries: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValidRetryBudget {
    pub percent: Option<u32>,
    pub min_per_second: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValidEndpoint {
    pub addr: SocketAddr,
    pub weight: Option<u32>,
}

/// The name a route gets when the file gives none: its position in the listener.
pub fn default_route_name(index: usize) -> String {
    format!("route{index}")
}
