//! The compiled snapshot: the complete, validated routing table that the control
//! process (or a standalone dataplane) hands to every worker.
//!
//! Everything here is plain data with no runtime types, so it can cross the control
//! socket unchanged. References between parts are indices into `Snapshot::clusters`
//! (`ClusterRef`), resolved once at compile time; `StableId`s name clusters and
//! endpoints across generations so per-worker state (pools, EWMA) survives a swap.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Identity of a cluster or endpoint that stays the same across generations as long
/// as its name (cluster) or cluster name + address (endpoint) stays the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StableId(pub u64);

/// Index into `Snapshot::clusters`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClusterRef(pub u32);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Strictly increasing per control process; 0 is never served.
    pub generation: u64,
    pub runtime: RuntimeSettings,
    pub listeners: Vec<ListenerSpec>,
    pub clusters: Vec<ClusterSpec>,
    /// `[mesh]`: the trust domain and, for operators with their own PKI, the
    /// files holding this dataplane's SVID and the trust bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh: Option<MeshSpec>,
}

/// The mesh identity as configured. Without files the SVID comes from the control
/// process (`MeshIdentity::install`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshSpec {
    /// `example.org` in `spiffe://example.org/...`.
    pub trust_domain: String,
    /// PEM chain of this dataplane's X.509-SVID (leaf first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// PEM private key of the SVID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// PEM CA certificates peers' SVIDs must chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
}

/// Process-wide settings. Changing them needs a restart; a reload that changes them
/// is applied for everything else and the difference is logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeSettings {
    /// Worker threads; `None` means one per available core.
    pub workers: Option<usize>,
    /// How long SIGTERM waits for in-flight requests before exiting.
    pub drain_timeout_ms: u64,
    /// Admin HTTP endpoint (`/ready`, `/live`, `/metrics`).
    pub admin: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerSpec {
    pub name: String,
    pub bind: SocketAddr,
    /// Accepted connections per worker beyond which new ones are closed at once.
    pub max_connections: u32,
    pub kind: ListenerKind,
    /// Requests per second over the whole listener (HTTP: 429 beyond).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
    /// TLS termination (`https`, `tls` listeners): certificates by SNI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    /// Inbound mesh port: mTLS with this dataplane's SVID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh: Option<MeshMode>,
    /// Lower-case header that carries the peer's SPIFFE ID to the local service
    /// (any copy sent by the client is removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_header: Option<String>,
    /// Authorization policies of the whole listener.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<AuthzPolicy>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerTls {
    pub certificates: Vec<CertificateSpec>,
    /// ALPN ids offered, in server preference order.
    pub alpn: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateSpec {
    /// PEM chain file (leaf first).
    pub cert: String,
    /// PEM private key file.
    pub key: String,
    /// Names it is served for (`host` or `*.domain`); empty: the default
    /// certificate (also used when no name matches). The first certificate is the
    /// default when none has an empty list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sni: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MeshMode {
    /// Every client must present a valid SVID.
    Strict,
    /// Plaintext and certificate-less TLS are accepted too (and counted).
    Permissive,
}

/// One authorization policy. Within a field any entry may match; every field
/// given must match. An empty field matches anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthzPolicy {
    pub name: String,
    pub action: AuthzAction,
    /// SPIFFE IDs with `*` standing for one whole path segment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    /// Exact paths, or prefixes written with a trailing `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Upper-case methods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Lower-case name and exact value; all must be present.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthzAction {
    Allow,
    Deny,
}

/// `tls_passthrough`: connections whose SNI matches `sni` go to `cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SniRoute {
    /// Lower-case `host` or `*.domain`.
    pub sni: String,
    pub cluster: ClusterRef,
}

/// TLS origination to a cluster's endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamTls {
    /// CA bundle file; `None` with `mesh`: the mesh trust bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// Sent as SNI; checked against the certificate unless a SPIFFE ID is expected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// The SPIFFE ID the upstream must present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spiffe_id: Option<String>,
    /// Sidecar to sidecar: TLS 1.3, mesh bundle, our SVID as client certificate.
    #[serde(default)]
    pub mesh: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ListenerKind {
    Tcp(TcpProxySpec),
    Http(HttpListenerSpec),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TcpProxySpec {
    pub cluster: ClusterRef,
    /// Close both sides after this long with no bytes in either direction.
    pub idle_timeout_ms: u64,
    /// Relay with splice(2) through a pipe instead of copying through a buffer.
    /// Off by default: measured slower under io_uring on these kernels.
    pub splice: bool,
    /// `tls_passthrough`: route by the ClientHello's SNI (`cluster` is the default).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub passthrough: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sni_routes: Vec<SniRoute>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpListenerSpec {
    pub limits: HttpLimits,
    pub forwarding: ForwardHeaders,
    /// Tried in order; the first match wins.
    pub routes: Vec<RouteSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpLimits {
    /// Longest request line accepted (414 beyond).
    pub max_request_line: u32,
    /// Total bytes of the request head (431 beyond).
    pub max_header_bytes: u32,
    /// Number of header fields (431 beyond).
    pub max_headers: u32,
    /// Time allowed to receive a complete request head (408 and close beyond).
    pub header_read_timeout_ms: u64,
    /// Keep-alive idle time between requests on a client connection.
    pub idle_timeout_ms: u64,
    /// Default body limit for routes that do not set their own (413 beyond).
    pub max_body_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardHeaders {
    pub x_forwarded_for: bool,
    pub x_forwarded_proto: bool,
    /// Value for the `Via` pseudonym (`1.1 <via>`); `None` adds no `Via`.
    pub via: Option<String>,
    /// Generate `x-request-id` when the request has none.
    pub request_id: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteSpec {
    pub name: String,
    pub matcher: RouteMatch,
    pub action: RouteAction,
    /// Whole-request deadline, from the request head to the last response byte's
    /// first write (504 beyond if no response byte has been sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Overrides `HttpLimits::max_body_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "HeaderOps::is_empty")]
    pub request_headers: HeaderOps,
    #[serde(default, skip_serializing_if = "HeaderOps::is_empty")]
    pub response_headers: HeaderOps,
    /// `None`: retry once on connect failure only (the request never left).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultSpec>,
    /// Authorization policies of this route (checked after the listener's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<AuthzPolicy>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrySpec {
    /// Retries after the first try (0 disables retries).
    pub attempts: u32,
    /// Conditions: `connect-failure`, `reset`, `gateway-error` (502/503/504 and
    /// the above), `5xx`, `retriable-status-codes` (then `statuses`).
    pub retry_on: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout_ms: Option<u64>,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// Retry non-idempotent methods too (they may then be processed twice).
    #[serde(default)]
    pub non_idempotent: bool,
    /// Request bodies up to this size are held so they can be sent again.
    pub max_replay_body_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateLimitSpec {
    /// Across the whole dataplane; each worker gets an equal share.
    pub requests_per_second: u32,
    pub burst: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    #[serde(default)]
    pub delay_percent: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_status: Option<u16>,
    #[serde(default)]
    pub abort_percent: f64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RouteMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,
    /// Upper-case method names; empty matches any method.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// All must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatch>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum HostMatch {
    /// Lower-case host without port.
    Exact(String),
    /// `*.example.com` stored as `.example.com`: matches any host ending with it.
    Suffix(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
    /// Regex over the path (without query), already anchored as `^(?:...)$` and
    /// checked to compile with the `regex` crate: compile it as it is.
    Regex(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeaderMatch {
    /// Lower-case header name.
    pub name: String,
    pub value: HeaderValueMatch,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum HeaderValueMatch {
    Present,
    Exact(String),
    /// Already anchored as `^(?:...)$` and checked to compile: compile it as it is.
    Regex(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RouteAction {
    Cluster(ClusterRef),
    /// Weighted split; weights are positive and their sum fits in u32.
    Split(Vec<WeightedCluster>),
    Direct(DirectResponse),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightedCluster {
    pub cluster: ClusterRef,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectResponse {
    pub status: u16,
    pub body: String,
    pub content_type: String,
}

/// Header edits applied in the order remove, set, add. Names are lower-case.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HeaderOps {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<(String, String)>,
}

impl HeaderOps {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterSpec {
    pub name: String,
    pub id: StableId,
    pub balance: Balance,
    pub connect_timeout_ms: u64,
    pub pool: PoolSpec,
    pub endpoints: Vec<EndpointSpec>,
    /// What ring hash and Maglev hash on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_key: Option<HashKey>,
    /// New endpoints ramp up their weight over this window (0: off).
    #[serde(default)]
    pub slow_start_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier: Option<OutlierSpec>,
    #[serde(default)]
    pub circuit_breaker: BreakerSpec,
    #[serde(default)]
    pub retry_budget: RetryBudgetSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTls>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum HashKey {
    /// Lower-case header name.
    Header(String),
    Cookie(String),
    SourceIp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum HealthCheckKind {
    Tcp,
    Http { path: String, expect_status: u16 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheckSpec {
    pub kind: HealthCheckKind,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    pub jitter_percent: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutlierSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_5xx: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_failure: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_connect_failure: Option<u32>,
    pub base_ejection_time_ms: u64,
    pub max_ejection_time_ms: u64,
    pub max_ejection_percent: u8,
    pub interval_ms: u64,
    /// Below this share of available endpoints, balance over all of them.
    pub panic_threshold_percent: u8,
}

/// Per cluster, across the dataplane (each worker enforces an equal share).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerSpec {
    pub max_connections: u32,
    pub max_pending_requests: u32,
    pub max_requests: u32,
    pub max_retries: u32,
}

impl Default for BreakerSpec {
    fn default() -> Self {
        BreakerSpec {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
        }
    }
}

/// Retries are at most `percent` of requests plus `min_per_second`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryBudgetSpec {
    pub percent: u32,
    pub min_per_second: u32,
}

impl Default for RetryBudgetSpec {
    fn default() -> Self {
        RetryBudgetSpec {
            percent: 20,
            min_per_second: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Balance {
    RoundRobin,
    P2cEwma,
    LeastRequest,
    RingHash,
    Maglev,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolSpec {
    /// Idle upstream connections kept per endpoint per worker.
    pub max_idle_per_endpoint: u32,
    pub idle_timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointSpec {
    pub id: StableId,
    pub addr: SocketAddr,
    /// Positive relative weight.
    pub weight: u32,
}
