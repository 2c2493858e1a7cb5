//! The validated config: every value parsed and checked and every cluster name
//! resolved, but defaults not yet filled in (`None` means "not written"), so this
//! stage still says what the file said. `compile` turns it into a `Snapshot`.

use crate::snapshot::{Balance, ClusterRef, HeaderOps, RouteAction, RouteMatch};
use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq)]
pub struct ValidConfig {
    pub runtime: ValidRuntime,
    pub listeners: Vec<ValidListener>,
    /// In file order, so a `ClusterRef` is an index here and in the snapshot.
    pub clusters: Vec<ValidCluster>,
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
    pub kind: ValidListenerKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ValidListenerKind {
    Tcp {
        cluster: ClusterRef,
        splice: Option<bool>,
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
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValidCluster {
    pub name: String,
    pub balance: Option<Balance>,
    pub connect_timeout_ms: Option<u64>,
    pub max_idle_per_endpoint: Option<u32>,
    pub pool_idle_timeout_ms: Option<u64>,
    pub endpoints: Vec<ValidEndpoint>,
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
