//! Telemetry counters: written by one worker thread only, summed by the admin thread
//! at scrape time. Workers register their counter sets once per listener/cluster
//! name over a channel, so the request path never takes a lock.

use crossbeam_channel::{Receiver, Sender};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// A monotonically increasing count with a single writer. A load and a store
/// instead of `fetch_add`: no locked instruction on the request path.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A level with a single writer.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    #[inline]
    pub fn inc(&self) {
        self.0.store(self.0.load(Relaxed) + 1, Relaxed);
    }
    #[inline]
    pub fn dec(&self) {
        self.0.store(self.0.load(Relaxed) - 1, Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Relaxed)
    }
}

/// Every label a TLS handshake failure can carry (`TlsFailure::reason`); a label
/// not listed is counted as `other`. Fixed so counters are a plain array.
pub const TLS_REASONS: &[&str] = &[
    "timeout",
    "eof",
    "io",
    "no_identity",
    "expired",
    "not_yet_valid",
    "self_signed",
    "unknown_ca",
    "incomplete_chain",
    "bad_signature",
    "bad_key_usage",
    "not_svid",
    "ca_leaf",
    "wrong_identity",
    "wrong_trust_domain",
    "wrong_name",
    "bad_encoding",
    "invalid_chain",
    "invalid_certificate",
    "no_certificate",
    "no_alpn",
    "protocol_version",
    "peer_rejected_certificate",
    "peer_requires_certificate",
    "peer_closed",
    "peer_alert",
    "protocol_error",
    "tls_error",
    "other",
];
const TLS_REASON_COUNT: usize = 29;
const _: () = assert!(TLS_REASONS.len() == TLS_REASON_COUNT);

/// Handshakes and their failures by reason, on one side (listener or cluster).
#[derive(Debug, Default)]
pub struct TlsStats {
    pub handshakes: Counter,
    /// Handshakes that resumed an earlier session (part of `handshakes`).
    pub resumed: Counter,
    pub failures: [Counter; TLS_REASON_COUNT],
}

impl TlsStats {
    pub fn failure(&self, reason: &str) {
        let index = TLS_REASONS
            .iter()
            .position(|known| *known == reason)
            .unwrap_or(TLS_REASON_COUNT - 1);
        if let Some(counter) = self.failures.get(index) {
            counter.inc();
        }
    }
}

/// Decisions of one authorization policy (or a listener's default deny).
#[derive(Debug, Default)]
pub struct PolicyStats {
    pub allowed: Counter,
    pub denied: Counter,
}

#[derive(Debug, Default)]
pub struct ListenerStats {
    pub tls: TlsStats,
    /// Plaintext connections accepted by a permissive mesh listener.
    pub mesh_plaintext: Counter,
    pub requests: Counter,
    /// Responses by status class: index 0 is 1xx … index 4 is 5xx.
    pub responses: [Counter; 5],
    pub connections_active: Gauge,
    pub connections: Counter,
    /// Connections closed at once because `max_connections` was reached.
    pub connections_rejected: Counter,
    /// Requests (or TCP connections) refused by the rate limit.
    pub rate_limited: Counter,
}

impl ListenerStats {
    #[inline]
    pub fn response(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        if let Some(counter) = self.responses.get(class) {
            counter.inc();
        }
    }
}

#[derive(Debug, Default)]
pub struct ClusterStats {
    pub tls: TlsStats,
    pub requests: Counter,
    pub connections: Counter,
    pub connect_failures: Counter,
    pub retries: Counter,
    pub retries_budget_exhausted: Counter,
    pub outlier_ejections: Counter,
    pub overflows: Counter,
    pub health_check_failures: Counter,
}

pub enum Registration {
    Listener(String, Arc<ListenerStats>),
    Cluster(String, Arc<ClusterStats>),
    /// (listener, policy name)
    Policy(String, String, Arc<PolicyStats>),
}

/// Sending side, one clone per worker.
#[derive(Clone)]
pub struct Registry {
    sender: Sender<Registration>,
}

impl Registry {
    pub fn register(&self, registration: Registration) {
        // The admin side lives as long as the process; a closed channel only means
        // we are shutting down and nobody will scrape again.
        let _ = self.sender.send(registration);
    }
}

/// Scrape side, owned by the admin thread.
pub struct Scraper {
    receiver: Receiver<Registration>,
    listeners: BTreeMap<String, Vec<Arc<ListenerStats>>>,
    clusters: BTreeMap<String, Vec<Arc<ClusterStats>>>,
    policies: BTreeMap<(String, String), Vec<Arc<PolicyStats>>>,
}

pub fn registry() -> (Registry, Scraper) {
    let (sender, receiver) = crossbeam_channel::unbounded();
    (
        Registry { sender },
        Scraper {
            receiver,
            listeners: BTreeMap::new(),
            clusters: BTreeMap::new(),
            policies: BTreeMap::new(),
        },
    )
}

impl Scraper {
    fn collect(&mut self) {
        for registration in self.receiver.try_iter() {
            match registration {
                Registration::Listener(name, stats) => {
                    self.listeners.entry(name).or_default().push(stats)
                }
                Registration::Cluster(name, stats) => {
                    self.clusters.entry(name).or_default().push(stats)
                }
                Registration::Policy(listener, policy, stats) => self
                    .policies
                    .entry((listener, policy))
                    .or_default()
                    .push(stats),
            }
        }
    }

    /// Prometheus text exposition, summed over workers.
    pub fn render(&mut self, extra: &[(&str, &str, i64)]) -> String {
        self.collect();
        let mut out = String::with_capacity(4096);
        for (name, help, value) in extra {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        type ListenerField = fn(&ListenerStats) -> i64;
        let listener_series: [(&str, &str, &str, ListenerField); 5] = [
            (
                "ringmesh_rate_limited_total",
                "counter",
                "Requests or connections refused by a rate limit.",
                |s| s.rate_limited.get() as i64,
            ),
            (
                "ringmesh_http_requests_total",
                "counter",
                "Requests received (HTTP listeners).",
                |s| s.requests.get() as i64,
            ),
            (
                "ringmesh_downstream_connections_active",
                "gauge",
                "Open client connections.",
                |s| s.connections_active.get(),
            ),
            (
                "ringmesh_downstream_connections_total",
                "counter",
                "Accepted client connections.",
                |s| s.connections.get() as i64,
            ),
            (
                "ringmesh_downstream_connections_rejected_total",
                "counter",
                "Connections closed at accept: max_connections reached.",
                |s| s.connections_rejected.get() as i64,
            ),
        ];
        for (metric, kind, help, field) in listener_series {
            let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} {kind}");
            for (listener, stats) in &self.listeners {
                let sum: i64 = stats.iter().map(|s| field(s)).sum();
                let _ = writeln!(out, "{metric}{{listener=\"{listener}\"}} {sum}");
            }
        }
        let metric = "ringmesh_http_responses_total";
        let _ = writeln!(
            out,
            "# HELP {metric} Responses sent, by status class.\n# TYPE {metric} counter"
        );
        for (listener, stats) in &self.listeners {
            for (class_index, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
                let sum: u64 = stats
                    .iter()
                    .filter_map(|s| s.responses.get(class_index))
                    .map(Counter::get)
                    .sum();
                let _ = writeln!(
                    out,
                    "{metric}{{listener=\"{listener}\",class=\"{class}\"}} {sum}"
                );
            }
        }
        type ClusterField = fn(&ClusterStats) -> u64;
        let cluster_series: [(&str, &str, ClusterField); 8] = [
            (
                "ringmesh_upstream_retries_total",
                "Retries sent upstream.",
                |s| s.retries.get(),
            ),
            (
                "ringmesh_upstream_retries_budget_exhausted_total",
                "Retries refused by the retry budget.",
                |s| s.retries_budget_exhausted.get(),
            ),
            (
                "ringmesh_outlier_ejections_total",
                "Endpoints ejected by outlier detection.",
                |s| s.outlier_ejections.get(),
            ),
            (
                "ringmesh_circuit_breaker_overflows_total",
                "Requests refused by a circuit breaker (503).",
                |s| s.overflows.get(),
            ),
            (
                "ringmesh_health_check_failures_total",
                "Failed active health checks.",
                |s| s.health_check_failures.get(),
            ),
            (
                "ringmesh_upstream_requests_total",
                "Requests sent upstream.",
                |s| s.requests.get(),
            ),
            (
                "ringmesh_upstream_connections_total",
                "Upstream connections opened.",
                |s| s.connections.get(),
            ),
            (
                "ringmesh_upstream_connect_failures_total",
                "Upstream connects that failed or timed out.",
                |s| s.connect_failures.get(),
            ),
        ];
        for (metric, help, field) in cluster_series {
            let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} counter");
            for (cluster, stats) in &self.clusters {
                let sum: u64 = stats.iter().map(|s| field(s)).sum();
                let _ = writeln!(out, "{metric}{{cluster=\"{cluster}\"}} {sum}");
            }
        }
        self.render_tls(&mut out);
        out
    }

    fn render_tls(&self, out: &mut String) {
        let listeners = self
            .listeners
            .iter()
            .map(|(name, all)| (name, all.iter().map(|s| &s.tls).collect::<Vec<_>>()));
        let clusters = self
            .clusters
            .iter()
            .map(|(name, all)| (name, all.iter().map(|s| &s.tls).collect::<Vec<_>>()));
        render_tls_side(out, "ringmesh_tls", "listener", listeners);
        render_tls_side(out, "ringmesh_upstream_tls", "cluster", clusters);
        let metric = "ringmesh_mesh_plaintext_total";
        let _ = writeln!(out, "# HELP {metric} Plaintext connections accepted by a permissive mesh listener.\n# TYPE {metric} counter");
        for (listener, stats) in &self.listeners {
            let sum: u64 = stats.iter().map(|s| s.mesh_plaintext.get()).sum();
            let _ = writeln!(out, "{metric}{{listener=\"{listener}\"}} {sum}");
        }
        let metric = "ringmesh_authz_decisions_total";
        let _ = writeln!(out, "# HELP {metric} Authorization decisions, by the policy that decided.\n# TYPE {metric} counter");
        for ((listener, policy), stats) in &self.policies {
            let allowed: u64 = stats.iter().map(|s| s.allowed.get()).sum();
            let denied: u64 = stats.iter().map(|s| s.denied.get()).sum();
            for (decision, value) in [("allow", allowed), ("deny", denied)] {
                let _ = writeln!(
                    out,
                    "{metric}{{listener=\"{listener}\",policy=\"{policy}\",decision=\"{decision}\"}} {value}"
                );
            }
        }
    }
}

fn render_tls_side<'a>(
    out: &mut String,
    prefix: &str,
    label: &str,
    sides: impl Iterator<Item = (&'a String, Vec<&'a TlsStats>)>,
) {
    let mut handshakes = String::new();
    let mut resumed = String::new();
    let mut failures = String::new();
    for (name, stats) in sides {
        let total: u64 = stats.iter().map(|s| s.handshakes.get()).sum();
        if total == 0
            && stats
                .iter()
                .all(|s| s.failures.iter().all(|c| c.get() == 0))
        {
            continue;
        }
        let _ = writeln!(
            handshakes,
            "{prefix}_handshakes_total{{{label}=\"{name}\"}} {total}"
        );
        let resumptions: u64 = stats.iter().map(|s| s.resumed.get()).sum();
        let _ = writeln!(
            resumed,
            "{prefix}_handshakes_resumed_total{{{label}=\"{name}\"}} {resumptions}"
        );
        for (index, reason) in TLS_REASONS.iter().enumerate() {
            let sum: u64 = stats
                .iter()
                .filter_map(|s| s.failures.get(index))
                .map(Counter::get)
                .sum();
            if sum > 0 {
                let _ = writeln!(
                    failures,
                    "{prefix}_handshake_failures_total{{{label}=\"{name}\",reason=\"{reason}\"}} {sum}"
                );
            }
        }
    }
    let _ = writeln!(out, "# HELP {prefix}_handshakes_total Completed TLS handshakes.\n# TYPE {prefix}_handshakes_total counter");
    out.push_str(&handshakes);
    let _ = writeln!(out, "# HELP {prefix}_handshakes_resumed_total Completed TLS handshakes that resumed a session.\n# TYPE {prefix}_handshakes_resumed_total counter");
    out.push_str(&resumed);
    let _ = writeln!(out, "# HELP {prefix}_handshake_failures_total Failed TLS handshakes, by reason.\n# TYPE {prefix}_handshake_failures_total counter");
    out.push_str(&failures);
}

/// `ringmesh_certificate_expiry_seconds{cert}`: notAfter of every loaded
/// certificate as unix time.
pub fn render_cert_expiry(out: &mut String, certs: &[(String, i64)]) {
    let metric = "ringmesh_certificate_expiry_seconds";
    let _ = writeln!(out, "# HELP {metric} Expiry (notAfter) of loaded certificates, unix seconds.\n# TYPE {metric} gauge");
    for (name, expiry) in certs {
        let name = name.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = writeln!(out, "{metric}{{cert=\"{name}\"}} {expiry}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_over_workers_and_classes() {
        let (registry, mut scraper) = registry();
        let a = Arc::new(ListenerStats::default());
        let b = Arc::new(ListenerStats::default());
        registry.register(Registration::Listener("edge".into(), a.clone()));
        registry.register(Registration::Listener("edge".into(), b.clone()));
        a.requests.add(2);
        b.requests.inc();
        a.response(204);
        b.response(503);
        b.response(599);
        let text = scraper.render(&[]);
        assert!(
            text.contains("ringmesh_http_requests_total{listener=\"edge\"} 3"),
            "{text}"
        );
        assert!(text.contains("ringmesh_http_responses_total{listener=\"edge\",class=\"2xx\"} 1"));
        assert!(text.contains("ringmesh_http_responses_total{listener=\"edge\",class=\"5xx\"} 2"));
    }
}
