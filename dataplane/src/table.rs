//! The runtime table: a snapshot compiled once (regexes, split weights, header values)
//! into the immutable form every worker reads on the request path.

use crate::authz::{Policies, Slots};
use crate::policy::{self, HashTable, OutlierPolicy};
use crate::resilience::breaker::Limits;
use crate::resilience::fault::FaultPolicy;
use crate::resilience::retry::{RetryBudgetConfig, RetryPolicy};
use crate::tls::setup::{self, ClusterTls, Expiries, ListenerTlsTable, LoadedIdentity};
use regex::bytes::Regex;
use ringmesh_api::snapshot::{
    Balance, ClusterSpec, DirectResponse, EndpointSpec, ForwardHeaders, HeaderMatch, HeaderOps,
    HeaderValueMatch, HostMatch, HttpLimits, ListenerKind, PathMatch, PoolSpec, RouteAction,
    RouteSpec, Snapshot, StableId, TcpProxySpec,
};
use ringmesh_api::snapshot::{HashKey, HealthCheckSpec, MeshMode, MeshSpec, RateLimitSpec};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
pub struct Table {
    pub generation: u64,
    /// Set by `Shared::publish`: the local, strictly increasing publish number.
    pub epoch: u64,
    pub listeners: Vec<ListenerTable>,
    /// Shared with the previous table for every cluster whose spec did not change
    /// (see `Table::build_reusing`), so workers can keep their runtime for it.
    pub clusters: Vec<Arc<ClusterTable>>,
    /// `[mesh]` as configured.
    pub mesh: Option<MeshSpec>,
    /// The file-based SVID read for this table, installed when it is published.
    pub mesh_identity: Option<LoadedIdentity>,
    /// Listener and client certificates loaded for this table, with expiry.
    pub cert_expiries: Expiries,
    /// (listener, policy) of every authorization counter slot.
    pub policy_slots: Vec<(String, String)>,
}

impl std::fmt::Debug for LoadedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedIdentity")
            .field("expiry", &self.expiry)
            .finish()
    }
}

impl Table {
    /// Listeners must stay as bound at start: same names, addresses and protocols.
    /// Returns what differs, for the rejection message.
    pub fn listener_changes(&self, bound: &[(String, SocketAddr, bool)]) -> Vec<String> {
        let now: Vec<(String, SocketAddr, bool)> = self
            .listeners
            .iter()
            .map(|l| {
                (
                    l.name.clone(),
                    l.bind,
                    matches!(l.mode, ListenerMode::Http(_)),
                )
            })
            .collect();
        let mut changes = Vec::new();
        for listener in &now {
            if !bound.contains(listener) {
                changes.push(format!(
                    "listener \"{}\" ({}) is new or changed",
                    listener.0, listener.1
                ));
            }
        }
        for listener in bound {
            if !now.contains(listener) {
                changes.push(format!(
                    "listener \"{}\" ({}) was removed or changed",
                    listener.0, listener.1
                ));
            }
        }
        changes
    }

    pub fn bound_listeners(&self) -> Vec<(String, SocketAddr, bool)> {
        self.listeners
            .iter()
            .map(|l| {
                (
                    l.name.clone(),
                    l.bind,
                    matches!(l.mode, ListenerMode::Http(_)),
                )
            })
            .collect()
    }
}

#[derive(Debug)]
pub struct ListenerTable {
    pub name: String,
    pub bind: SocketAddr,
    pub max_connections: u32,
    pub mode: ListenerMode,
    pub rate_limit: Option<RateLimitSpec>,
    /// Certificates of a terminating (`tls`/`https`) listener.
    pub tls: Option<ListenerTlsTable>,
    pub mesh: Option<MeshMode>,
    /// Lower-case header that carries the peer's SPIFFE ID upstream.
    pub identity_header: Option<String>,
    pub policies: Policies,
    /// `tls_passthrough`: SNI → cluster index.
    pub sni_routes: SniRouter,
}

/// Clusters by SNI for `tls_passthrough`: exact names, then `*.suffix`.
#[derive(Debug, Default)]
pub struct SniRouter {
    exact: Vec<(String, usize)>,
    /// Keyed by the suffix after `*.`.
    wildcard: Vec<(String, usize)>,
}

impl SniRouter {
    pub fn lookup(&self, sni: &str) -> Option<usize> {
        let sni = sni.trim_end_matches('.');
        if let Some((_, cluster)) = self.exact.iter().find(|(name, _)| name == sni) {
            return Some(*cluster);
        }
        let (_, suffix) = sni.split_once('.')?;
        self.wildcard
            .iter()
            .find(|(name, _)| name == suffix)
            .map(|(_, cluster)| *cluster)
    }
}

#[derive(Debug)]
pub enum ListenerMode {
    Tcp(TcpProxySpec),
    Http(HttpTable),
}

#[derive(Debug)]
pub struct HttpTable {
    pub limits: HttpLimits,
    pub codec_limits: ringmesh_http1::Limits,
    pub forwarding: ForwardHeaders,
    /// `1.1 <pseudonym>`, rendered once.
    pub via_value: Option<Vec<u8>>,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub routes: Vec<Route>,
}

#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub matcher: Matcher,
    pub action: Action,
    pub timeout: Option<Duration>,
    pub max_body: u64,
    pub request_headers: HeaderOps,
    pub response_headers: HeaderOps,
    pub retry: RetryPolicy,
    /// Request bodies up to this size are held so a retry can send them again.
    pub max_replay_body: u64,
    pub rate_limit: Option<RateLimitSpec>,
    pub fault: Option<FaultPolicy>,
    pub policies: Policies,
}

#[derive(Debug, Default)]
pub struct Matcher {
    pub host: Option<HostMatch>,
    pub path: Option<PathMatcher>,
    pub methods: Vec<String>,
    pub headers: Vec<HeaderMatcher>,
}

#[derive(Debug)]
pub enum PathMatcher {
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

#[derive(Debug)]
pub struct HeaderMatcher {
    pub name: String,
    pub value: ValueMatcher,
}

#[derive(Debug)]
pub enum ValueMatcher {
    Present,
    Exact(String),
    Regex(Regex),
}

#[derive(Debug)]
pub enum Action {
    /// Index into `Table::clusters`.
    Cluster(usize),
    Split(WeightedSplit),
    Direct(DirectResponse),
}

/// Cumulative weights so a pick is one random number and a short scan.
#[derive(Debug)]
pub struct WeightedSplit {
    /// (exclusive upper bound of the cumulative weight, cluster index)
    pub bounds: Vec<(u32, usize)>,
    pub total: u32,
}

impl WeightedSplit {
    /// `roll` is any random number; it is reduced modulo the total weight.
    pub fn pick(&self, roll: u32) -> Option<usize> {
        if self.total == 0 {
            return None;
        }
        let point = roll % self.total;
        self.bounds
            .iter()
            .find(|(upper, _)| point < *upper)
            .map(|(_, cluster)| *cluster)
    }
}

#[derive(Debug)]
pub struct ClusterTable {
    pub name: String,
    pub id: StableId,
    pub balance: Balance,
    pub connect_timeout: Duration,
    pub pool: PoolSpec,
    pub endpoints: Vec<EndpointSpec>,
    pub hash_key: Option<HashKey>,
    /// Ring hash or Maglev table, built once and shared by every worker.
    pub hash_table: Option<Arc<HashTable>>,
    pub slow_start: Duration,
    pub health_check: Option<HealthCheckSpec>,
    pub outlier: Option<OutlierPolicy>,
    /// Limits for the whole dataplane; each worker enforces its share.
    pub breaker: Limits,
    pub retry_budget: RetryBudgetConfig,
    /// TLS origination settings, when the cluster's endpoints speak TLS.
    pub tls: Option<ClusterTls>,
    /// The spec this was compiled from: a later snapshot with an equal spec reuses
    /// this cluster instead of compiling it again.
    pub spec: ClusterSpec,
}

/// Why a snapshot could not become a runtime table.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("listener[{listener}].route[{route}]: {reason}")]
    Route {
        listener: usize,
        route: usize,
        reason: String,
    },
    #[error("{0}")]
    Reference(String),
    /// A certificate, key or bundle that cannot be used (with its TOML path).
    #[error("{0}")]
    Tls(String),
}

impl Table {
    pub fn build(snapshot: &Snapshot) -> Result<Table, BuildError> {
        Table::build_reusing(snapshot, None)
    }

    /// Like `build`, but every cluster whose spec equals (same stable id, equal
    /// compiled spec) one of `previous`'s is shared with it rather than compiled
    /// again: its hash ring or Maglev table is not rebuilt, and workers see by
    /// pointer that their runtime for it still fits (`Worker::adopt`). Clusters
    /// with TLS are always rebuilt so certificate files are read again.
    pub fn build_reusing(
        snapshot: &Snapshot,
        previous: Option<&Table>,
    ) -> Result<Table, BuildError> {
        let cluster_count = snapshot.clusters.len();
        let mut listeners = Vec::with_capacity(snapshot.listeners.len());
        let mut expiries = Expiries::new();
        let mut slots = Slots::default();
        for (listener_index, spec) in snapshot.listeners.iter().enumerate() {
            let at = format!("listener[{listener_index}]");
            let tls = match &spec.tls {
                Some(tls) => Some(
                    setup::listener_tls(&spec.name, tls, &at, &mut expiries)
                        .map_err(BuildError::Tls)?,
                ),
                None => None,
            };
            let policies = Policies::compile(&spec.policies, &spec.name, &mut slots)
                .map_err(|err| BuildError::Tls(format!("{at}.policy: {err}")))?;
            let mut sni_routes = SniRouter::default();
            let mode = match &spec.kind {
                ListenerKind::Tcp(tcp) => {
                    check_cluster(tcp.cluster.0 as usize, cluster_count, listener_index)?;
                    for route in &tcp.sni_routes {
                        let cluster = route.cluster.0 as usize;
                        check_cluster(cluster, cluster_count, listener_index)?;
                        match route.sni.strip_prefix("*.") {
                            Some(suffix) => sni_routes.wildcard.push((suffix.to_string(), cluster)),
                            None => sni_routes.exact.push((route.sni.clone(), cluster)),
                        }
                    }
                    ListenerMode::Tcp(tcp.clone())
                }
                ListenerKind::Http(http) => {
                    let mut routes = Vec::with_capacity(http.routes.len());
                    for (route_index, route) in http.routes.iter().enumerate() {
                        let route_error = |reason| BuildError::Route {
                            listener: listener_index,
                            route: route_index,
                            reason,
                        };
                        let mut compiled =
                            compile_route(route, http.limits.max_body_bytes, cluster_count)
                                .map_err(route_error)?;
                        compiled.policies =
                            Policies::compile(&route.policies, &spec.name, &mut slots)
                                .map_err(route_error)?;
                        // Only the proxy may say who the peer is.
                        if let Some(header) = &spec.identity_header {
                            compiled.request_headers.remove.push(header.clone());
                        }
                        routes.push(compiled);
                    }
                    ListenerMode::Http(HttpTable {
                        codec_limits: ringmesh_http1::Limits {
                            max_request_line: http.limits.max_request_line as usize,
                            max_header_bytes: http.limits.max_header_bytes as usize,
                            max_headers: http.limits.max_headers as usize,
                        },
                        via_value: http
                            .forwarding
                            .via
                            .as_ref()
                            .map(|pseudonym| format!("1.1 {pseudonym}").into_bytes()),
                        header_read_timeout: Duration::from_millis(
                            http.limits.header_read_timeout_ms,
                        ),
                        idle_timeout: Duration::from_millis(http.limits.idle_timeout_ms),
                        limits: http.limits.clone(),
                        forwarding: http.forwarding.clone(),
                        routes,
                    })
                }
            };
            listeners.push(ListenerTable {
                name: spec.name.clone(),
                bind: spec.bind,
                max_connections: spec.max_connections,
                mode,
                rate_limit: spec.rate_limit.clone(),
                tls,
                mesh: spec.mesh,
                identity_header: spec.identity_header.clone(),
                policies,
                sni_routes,
            });
        }
        let reusable: HashMap<StableId, &Arc<ClusterTable>> = previous
            .map(|table| {
                table
                    .clusters
                    .iter()
                    .filter(|c| c.tls.is_none())
                    .map(|c| (c.id, c))
                    .collect()
            })
            .unwrap_or_default();
        let mut clusters = Vec::with_capacity(snapshot.clusters.len());
        for (index, spec) in snapshot.clusters.iter().enumerate() {
            if let Some(old) = reusable.get(&spec.id).filter(|old| old.spec == *spec) {
                clusters.push(Arc::clone(old));
                continue;
            }
            let mut cluster = compile_cluster(spec).map_err(BuildError::Reference)?;
            if let Some(tls) = &spec.tls {
                let at = format!("cluster[{index}]");
                cluster.tls =
                    Some(setup::cluster_tls(tls, &at, &mut expiries).map_err(BuildError::Tls)?);
            }
            clusters.push(Arc::new(cluster));
        }
        let mesh_identity = match snapshot.mesh.as_ref().and_then(setup::load_mesh) {
            Some(loaded) => Some(loaded.map_err(BuildError::Tls)?),
            None => None,
        };
        Ok(Table {
            generation: snapshot.generation,
            epoch: 0,
            listeners,
            clusters,
            mesh: snapshot.mesh.clone(),
            mesh_identity,
            cert_expiries: expiries,
            policy_slots: slots.names,
        })
    }
}

fn check_cluster(index: usize, count: usize, listener: usize) -> Result<(), BuildError> {
    if index < count {
        Ok(())
    } else {
        Err(BuildError::Reference(format!(
            "listener[{listener}].cluster: cluster index {index} out of range"
        )))
    }
}

fn compile_cluster(spec: &ClusterSpec) -> Result<ClusterTable, String> {
    Ok(ClusterTable {
        name: spec.name.clone(),
        id: spec.id,
        balance: spec.balance,
        connect_timeout: Duration::from_millis(spec.connect_timeout_ms),
        pool: spec.pool.clone(),
        endpoints: spec.endpoints.clone(),
        hash_key: spec.hash_key.clone(),
        hash_table: policy::hash_table(spec)?.map(Arc::new),
        slow_start: Duration::from_millis(spec.slow_start_ms),
        health_check: spec.health_check.clone(),
        outlier: policy::outlier_policy(spec.outlier.as_ref()),
        breaker: policy::breaker_limits(&spec.circuit_breaker),
        retry_budget: policy::retry_budget(&spec.retry_budget),
        tls: None,
        spec: spec.clone(),
    })
}

fn compile_route(
    route: &RouteSpec,
    default_max_body: u64,
    cluster_count: usize,
) -> Result<Route, String> {
    let in_range = |index: u32| {
        if (index as usize) < cluster_count {
            Ok(index as usize)
        } else {
            Err(format!("cluster index {index} out of range"))
        }
    };
    let action = match &route.action {
        RouteAction::Cluster(cluster) => Action::Cluster(in_range(cluster.0)?),
        RouteAction::Split(parts) => {
            let mut bounds = Vec::with_capacity(parts.len());
            let mut total: u32 = 0;
            for part in parts {
                total = total
                    .checked_add(part.weight)
                    .ok_or_else(|| "split weights overflow".to_string())?;
                bounds.push((total, in_range(part.cluster.0)?));
            }
            if total == 0 {
                return Err("split weights sum to zero".into());
            }
            Action::Split(WeightedSplit { bounds, total })
        }
        RouteAction::Direct(direct) => Action::Direct(direct.clone()),
    };
    let path = match &route.matcher.path {
        None => None,
        Some(PathMatch::Exact(path)) => Some(PathMatcher::Exact(path.clone())),
        Some(PathMatch::Prefix(prefix)) => Some(PathMatcher::Prefix(prefix.clone())),
        Some(PathMatch::Regex(pattern)) => Some(PathMatcher::Regex(anchored(pattern)?)),
    };
    let mut headers = Vec::with_capacity(route.matcher.headers.len());
    for HeaderMatch { name, value } in &route.matcher.headers {
        let value = match value {
            HeaderValueMatch::Present => ValueMatcher::Present,
            HeaderValueMatch::Exact(exact) => ValueMatcher::Exact(exact.clone()),
            HeaderValueMatch::Regex(pattern) => ValueMatcher::Regex(anchored(pattern)?),
        };
        headers.push(HeaderMatcher {
            name: name.to_ascii_lowercase(),
            value,
        });
    }
    let (retry, max_replay_body) = policy::retry_policy(route.retry.as_ref())?;
    Ok(Route {
        retry,
        max_replay_body,
        rate_limit: route.rate_limit.clone(),
        fault: policy::fault_policy(route.fault.as_ref()),
        policies: Policies::default(),
        name: route.name.clone(),
        matcher: Matcher {
            host: route.matcher.host.clone(),
            path,
            methods: route.matcher.methods.clone(),
            headers,
        },
        action,
        timeout: route.timeout_ms.map(Duration::from_millis),
        max_body: route.max_body_bytes.unwrap_or(default_max_body),
        request_headers: lower_ops(&route.request_headers),
        response_headers: lower_ops(&route.response_headers),
    })
}

/// The snapshot carries regexes already anchored (`^(?:…)$`) and known to compile.
fn anchored(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|err| format!("invalid regex: {err}"))
}

fn lower_ops(ops: &HeaderOps) -> HeaderOps {
    HeaderOps {
        remove: ops.remove.iter().map(|n| n.to_ascii_lowercase()).collect(),
        set: ops
            .set
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect(),
        add: ops
            .add
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_pick_follows_weights() {
        let split = WeightedSplit {
            bounds: vec![(90, 0), (100, 1)],
            total: 100,
        };
        let picks: Vec<_> = (0..100u32).filter_map(|roll| split.pick(roll)).collect();
        assert_eq!(picks.iter().filter(|c| **c == 0).count(), 90);
        assert_eq!(picks.iter().filter(|c| **c == 1).count(), 10);
        assert_eq!(split.pick(u32::MAX), Some(1)); // 4294967295 % 100 = 95
    }
}
