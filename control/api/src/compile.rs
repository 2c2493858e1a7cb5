//! Validated config → `Snapshot`: fills in the defaults of docs/config.md and
//! assigns stable ids. Nothing here can fail; every check happened in `validate`.

use crate::defaults as d;
use crate::ids::{cluster_id, endpoint_id_of};
use crate::snapshot::{
    Balance, BreakerSpec, ClusterSpec, EndpointSpec, FaultSpec, ForwardHeaders, HealthCheckKind,
    HealthCheckSpec, HttpLimits, HttpListenerSpec, ListenerKind, ListenerSpec, OutlierSpec,
    PoolSpec, RateLimitSpec, RetryBudgetSpec, RetrySpec, RouteSpec, RuntimeSettings, Snapshot,
    TcpProxySpec,
};
use crate::validated::{
    default_route_name, ValidBreaker, ValidCluster, ValidConfig, ValidFault, ValidHealthCheck,
    ValidHealthCheckKind, ValidHttp, ValidListener, ValidListenerKind, ValidOutlier,
    ValidRateLimit, ValidRetry, ValidRetryBudget,
};

pub fn compile(config: &ValidConfig, generation: u64) -> Snapshot {
    Snapshot {
        generation,
        runtime: RuntimeSettings {
            workers: config.runtime.workers,
            drain_timeout_ms: config
                .runtime
                .drain_timeout_ms
                .unwrap_or(d::DRAIN_TIMEOUT_MS),
            admin: config.runtime.admin,
        },
        listeners: config.listeners.iter().map(listener).collect(),
        clusters: config.clusters.iter().map(cluster).collect(),
        mesh: config.mesh.clone(),
    }
}

fn listener(l: &ValidListener) -> ListenerSpec {
    let kind = match &l.kind {
        ValidListenerKind::Tcp {
            cluster,
            splice,
            passthrough,
            sni_routes,
        } => ListenerKind::Tcp(TcpProxySpec {
            cluster: *cluster,
            idle_timeout_ms: l.idle_timeout_ms.unwrap_or(d::TCP_IDLE_TIMEOUT_MS),
            // Ciphertext on one side, plaintext on the other: no splice when terminating.
            splice: splice.unwrap_or(d::SPLICE) && l.tls.is_none() && l.mesh.is_none(),
            passthrough: *passthrough,
            sni_routes: sni_routes.clone(),
        }),
        ValidListenerKind::Http(h) => ListenerKind::Http(http(h, l.idle_timeout_ms)),
    };
    ListenerSpec {
        name: l.name.clone(),
        bind: l.bind,
        max_connections: l.max_connections.unwrap_or(d::MAX_CONNECTIONS),
        kind,
        rate_limit: l.rate_limit.as_ref().map(rate_limit),
        tls: l.tls.clone(),
        mesh: l.mesh,
        identity_header: l.identity_header.clone(),
        policies: l.policies.clone(),
    }
}

fn http(h: &ValidHttp, idle_timeout_ms: Option<u64>) -> HttpListenerSpec {
    HttpListenerSpec {
        limits: HttpLimits {
            max_request_line: h.max_request_line.unwrap_or(d::MAX_REQUEST_LINE),
            max_header_bytes: h.max_header_bytes.unwrap_or(d::MAX_HEADER_BYTES),
            max_headers: h.max_headers.unwrap_or(d::MAX_HEADERS),
            header_read_timeout_ms: h
                .header_read_timeout_ms
                .unwrap_or(d::HEADER_READ_TIMEOUT_MS),
            idle_timeout_ms: idle_timeout_ms.unwrap_or(d::HTTP_IDLE_TIMEOUT_MS),
            max_body_bytes: h.max_body_bytes.unwrap_or(d::MAX_BODY_BYTES),
        },
        forwarding: ForwardHeaders {
            x_forwarded_for: h.x_forwarded_for.unwrap_or(d::X_FORWARDED_FOR),
            x_forwarded_proto: h.x_forwarded_proto.unwrap_or(d::X_FORWARDED_PROTO),
            via: h.via.clone().unwrap_or_else(|| Some(d::VIA.to_string())),
            request_id: h.request_id.unwrap_or(d::REQUEST_ID),
        },
        routes: h
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| RouteSpec {
                name: r.name.clone().unwrap_or_else(|| default_route_name(i)),
                matcher: r.matcher.clone(),
                action: r.action.clone(),
                timeout_ms: r.timeout_ms,
                max_body_bytes: r.max_body_bytes,
                request_headers: r.request_headers.clone(),
                response_headers: r.response_headers.clone(),
                retry: r.retry.as_ref().map(retry),
                rate_limit: r.rate_limit.as_ref().map(rate_limit),
                fault: r.fault.as_ref().map(fault),
                policies: r.policies.clone(),
            })
            .collect(),
    }
}

fn cluster(c: &ValidCluster) -> ClusterSpec {
    // One buffer for every endpoint's address text (the id hashes it), instead of
    // one short-lived `String` per endpoint.
    let mut addr_text = String::with_capacity(48);
    ClusterSpec {
        name: c.name.clone(),
        id: cluster_id(&c.name),
        balance: c.balance.unwrap_or(Balance::RoundRobin),
        connect_timeout_ms: c.connect_timeout_ms.unwrap_or(d::CONNECT_TIMEOUT_MS),
        pool: PoolSpec {
            max_idle_per_endpoint: c.max_idle_per_endpoint.unwrap_or(d::MAX_IDLE_PER_ENDPOINT),
            idle_timeout_ms: c.pool_idle_timeout_ms.unwrap_or(d::POOL_IDLE_TIMEOUT_MS),
        },
        endpoints: c
            .endpoints
            .iter()
            .map(|e| EndpointSpec {
                id: endpoint_id_of(&c.name, &e.addr, &mut addr_text),
                addr: e.addr,
                weight: e.weight.unwrap_or(d::ENDPOINT_WEIGHT),
            })
            .collect(),
        hash_key: c.hash_key.clone(),
        slow_start_ms: c.slow_start_ms.unwrap_or(d::SLOW_START_MS),
        health_check: c.health_check.as_ref().map(health_check),
        outlier: c.outlier.as_ref().map(outlier),
        circuit_breaker: c
            .circuit_breaker
            .as_ref()
            .map(circuit_breaker)
            .unwrap_or_default(),
        retry_budget: c
            .retry_budget
            .as_ref()
            .map(retry_budget)
            .unwrap_or_default(),
        tls: c.tls.clone(),
    }
}

fn rate_limit(r: &ValidRateLimit) -> RateLimitSpec {
    RateLimitSpec {
        requests_per_second: r.requests_per_second,
        burst: r
            .burst
            .unwrap_or_else(|| d::rate_limit_burst(r.requests_per_second)),
    }
}

fn retry(r: &ValidRetry) -> RetrySpec {
    RetrySpec {
        attempts: r.attempts.unwrap_or(d::RETRY_ATTEMPTS),
        retry_on: r
            .retry_on
            .clone()
            .unwrap_or_else(|| d::RETRY_ON.iter().map(|c| c.to_string()).collect()),
        statuses: r.statuses.clone(),
        per_try_timeout_ms: r.per_try_timeout_ms,
        backoff_base_ms: r.backoff_base_ms.unwrap_or(d::RETRY_BACKOFF_BASE_MS),
        backoff_max_ms: r.backoff_max_ms.unwrap_or(d::RETRY_BACKOFF_MAX_MS),
        non_idempotent: r.non_idempotent.unwrap_or(d::RETRY_NON_IDEMPOTENT),
        max_replay_body_bytes: r.max_replay_body_bytes.unwrap_or(d::RETRY_MAX_BODY_BYTES),
    }
}

fn fault(f: &ValidFault) -> FaultSpec {
    // A percentage without its fault is rejected, so 0 here means "no such fault".
    FaultSpec {
        delay_ms: f.delay_ms,
        delay_percent: f
            .delay_ms
            .map_or(0.0, |_| f.delay_percent.unwrap_or(d::FAULT_PERCENT)),
        abort_status: f.abort_status,
        abort_percent: f
            .abort_status
            .map_or(0.0, |_| f.abort_percent.unwrap_or(d::FAULT_PERCENT)),
    }
}

fn health_check(h: &ValidHealthCheck) -> HealthCheckSpec {
    HealthCheckSpec {
        kind: match &h.kind {
            ValidHealthCheckKind::Tcp => HealthCheckKind::Tcp,
            ValidHealthCheckKind::Http {
                path,
                expect_status,
            } => HealthCheckKind::Http {
                path: path.clone(),
                expect_status: expect_status.unwrap_or(d::HEALTH_CHECK_EXPECT_STATUS),
            },
        },
        interval_ms: h.interval_ms.unwrap_or(d::HEALTH_CHECK_INTERVAL_MS),
        timeout_ms: h.timeout_ms.unwrap_or(d::HEALTH_CHECK_TIMEOUT_MS),
        healthy_threshold: h.healthy_threshold.unwrap_or(d::HEALTHY_THRESHOLD),
        unhealthy_threshold: h.unhealthy_threshold.unwrap_or(d::UNHEALTHY_THRESHOLD),
        jitter_percent: h.jitter_percent.unwrap_or(d::HEALTH_CHECK_JITTER_PERCENT),
    }
}

fn outlier(o: &ValidOutlier) -> OutlierSpec {
    // Written as 0: that check is off. Left out: on with its default, except for
    // connect failures, which are off unless written.
    let check = |written: Option<u32>, default: Option<u32>| written.or(default).filter(|n| *n > 0);
    OutlierSpec {
        consecutive_5xx: check(o.consecutive_5xx, Some(d::OUTLIER_CONSECUTIVE_5XX)),
        consecutive_gateway_failure: check(
            o.consecutive_gateway_failure,
            Some(d::OUTLIER_CONSECUTIVE_GATEWAY_FAILURE),
        ),
        consecutive_connect_failure: check(o.consecutive_connect_failure, None),
        base_ejection_time_ms: o
            .base_ejection_time_ms
            .unwrap_or(d::OUTLIER_BASE_EJECTION_TIME_MS),
        max_ejection_time_ms: o
            .max_ejection_time_ms
            .unwrap_or(d::OUTLIER_MAX_EJECTION_TIME_MS),
        max_ejection_percent: o
            .max_ejection_percent
            .unwrap_or(d::OUTLIER_MAX_EJECTION_PERCENT),
        interval_ms: o.interval_ms.unwrap_or(d::OUTLIER_INTERVAL_MS),
        panic_threshold_percent: o
            .panic_threshold_percent
            .unwrap_or(d::OUTLIER_PANIC_THRESHOLD_PERCENT),
    }
}

fn circuit_breaker(b: &ValidBreaker) -> BreakerSpec {
    let d = BreakerSpec::default();
    BreakerSpec {
        max_connections: b.max_connections.unwrap_or(d.max_connections),
        max_pending_requests: b.max_pending_requests.unwrap_or(d.max_pending_requests),
        max_requests: b.max_requests.unwrap_or(d.max_requests),
        max_retries: b.max_retries.unwrap_or(d.max_retries),
    }
}

fn retry_budget(b: &ValidRetryBudget) -> RetryBudgetSpec {
    let d = RetryBudgetSpec::default();
    RetryBudgetSpec {
        percent: b.percent.unwrap_or(d.percent),
        min_per_second: b.min_per_second.unwrap_or(d.min_per_second),
    }
}

#[cfg(test)]
mod tests;
