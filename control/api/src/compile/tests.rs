//! Compilation: the documented example, defaults, and stable ids.

use crate::ids::{cluster_id, endpoint_id};
use crate::snapshot::*;

/// The TOML example in docs/config.md, so the reference cannot drift from the code.
fn docs_example() -> String {
    let doc = include_str!("../../../../docs/config.md");
    let start = doc
        .find("```toml\n")
        .map(|i| i + "```toml\n".len())
        .unwrap_or(0);
    let end = doc[start..]
        .find("```")
        .map(|i| start + i)
        .unwrap_or(doc.len());
    doc[start..end].to_string()
}

fn compile(text: &str, generation: u64) -> Snapshot {
    match crate::compile_str(text, "t.toml", generation) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn docs_example_compiles() {
    let s = compile(&docs_example(), 3);
    assert_eq!(s.generation, 3);
    assert_eq!(s.runtime.workers, Some(2));
    assert_eq!(s.runtime.admin, Some("127.0.0.1:9901".parse().unwrap()));
    let names: Vec<&str> = s.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["web", "api-v1", "api-v2", "postgres"]);
    assert_eq!(s.clusters[1].balance, Balance::P2cEwma);
    assert_eq!(s.clusters[0].endpoints[1].weight, 2);

    let ListenerKind::Http(edge) = &s.listeners[0].kind else {
        panic!("edge is http")
    };
    let routes: Vec<&str> = edge.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(routes, ["health", "api", "route2"]);
    assert_eq!(
        edge.routes[0].matcher.path,
        Some(PathMatch::Exact("/healthz".into()))
    );
    assert_eq!(
        edge.routes[1].action,
        RouteAction::Split(vec![
            WeightedCluster {
                cluster: ClusterRef(1),
                weight: 90
            },
            WeightedCluster {
                cluster: ClusterRef(2),
                weight: 10
            },
        ])
    );
    assert_eq!(
        edge.routes[1].matcher.host,
        Some(HostMatch::Suffix(".example.com".into()))
    );
    assert_eq!(edge.routes[1].timeout_ms, Some(5_000));
    assert_eq!(
        edge.routes[1].request_headers.set,
        [("x-route".to_string(), "api".to_string())]
    );
    assert_eq!(edge.routes[2].action, RouteAction::Cluster(ClusterRef(0)));
    let retry = edge.routes[1].retry.as_ref().unwrap();
    assert_eq!((retry.attempts, retry.per_try_timeout_ms), (2, Some(2_000)));
    assert_eq!(
        edge.routes[1].rate_limit,
        Some(RateLimitSpec {
            requests_per_second: 1000,
            burst: 100
        })
    );
    assert_eq!(edge.routes[2].retry, None);
    assert!(s.clusters[1].health_check.is_some());
    assert!(s.clusters[1].outlier.is_some());
    assert_eq!(s.clusters[3].balance, Balance::RingHash);
    assert_eq!(s.clusters[3].hash_key, Some(HashKey::SourceIp));
    assert_eq!(s.clusters[3].circuit_breaker.max_connections, 100);

    let ListenerKind::Tcp(db) = &s.listeners[1].kind else {
        panic!("db is tcp")
    };
    assert_eq!(db.cluster, ClusterRef(3));
}

#[test]
fn defaults_are_the_documented_ones() {
    let s = compile(
        r#"
[[listener]]
name = "edge"
bind = "127.0.0.1:8080"
protocol = "http"
[[listener.route]]
cluster = "c"

[[listener]]
name = "db"
bind = "127.0.0.1:5433"
protocol = "tcp"
cluster = "c"

[[cluster]]
name = "c"
endpoints = ["127.0.0.1:1"]
"#,
        1,
    );
    assert_eq!(
        s.runtime,
        RuntimeSettings {
            workers: None,
            drain_timeout_ms: 10_000,
            admin: None
        }
    );
    assert_eq!(s.listeners[0].max_connections, 10_000);
    let ListenerKind::Http(h) = &s.listeners[0].kind else {
        panic!("http")
    };
    assert_eq!(
        h.limits,
        HttpLimits {
            max_request_line: 8 * 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_body_bytes: 100 * 1024 * 1024,
        }
    );
    assert_eq!(
        h.forwarding,
        ForwardHeaders {
            x_forwarded_for: true,
            x_forwarded_proto: true,
            via: Some("ringmesh".into()),
            request_id: true,
        }
    );
    let r = &h.routes[0];
    assert_eq!(r.name, "route0");
    assert_eq!((r.timeout_ms, r.max_body_bytes), (None, None));
    assert_eq!(r.matcher, RouteMatch::default());
    assert_eq!(r.request_headers, HeaderOps::default());

    let ListenerKind::Tcp(t) = &s.listeners[1].kind else {
        panic!("tcp")
    };
    assert_eq!((t.idle_timeout_ms, t.splice), (3_600_000, false));

    let c = &s.clusters[0];
    assert_eq!(c.balance, Balance::RoundRobin);
    assert_eq!(c.connect_timeout_ms, 1_000);
    assert_eq!(
        c.pool,
        PoolSpec {
            max_idle_per_endpoint: 64,
            idle_timeout_ms: 30_000
        }
    );
    assert_eq!(c.endpoints[0].weight, 1);
}

#[test]
fn explicit_values_override_defaults() {
    let s = compile(
        r#"
[[listener]]
name = "edge"
bind = "127.0.0.1:8080"
protocol = "http"
idle_timeout = "500us"
via = false
x_forwarded_for = false
[[listener.route]]
direct = { status = 200 }
max_body = "1kB"
"#,
        1,
    );
    let ListenerKind::Http(h) = &s.listeners[0].kind else {
        panic!("http")
    };
    assert_eq!(h.limits.idle_timeout_ms, 1);
    assert_eq!(h.forwarding.via, None);
    assert!(!h.forwarding.x_forwarded_for);
    assert_eq!(h.routes[0].max_body_bytes, Some(1_000));
}

#[test]
fn stable_ids_are_fixed_across_builds() {
    let s = compile(&docs_example(), 1);
    let web = &s.clusters[0];
    assert_eq!(web.id, cluster_id("web"));
    assert_eq!(web.id, StableId(0x5ea0_e119_4872_1ef1));
    assert_eq!(web.endpoints[0].id, endpoint_id("web", "127.0.0.1:9000"));
    assert_eq!(web.endpoints[0].id, StableId(0x26b9_e269_cb36_4513));
    assert_ne!(s.clusters[0].id, s.clusters[1].id);
    assert_ne!(web.endpoints[0].id, web.endpoints[1].id);
    // A new generation of the same file keeps every id.
    let again = compile(&docs_example(), 2);
    assert_eq!(again.clusters, s.clusters);
}

#[test]
fn no_input_panics() {
    // Every prefix of the example and the example without each line: a cheap sweep
    // over half-written files, which are what a user saves while editing.
    let text = docs_example();
    for end in (0..=text.len()).filter(|i| text.is_char_boundary(*i)) {
        let _ = crate::compile_str(&text[..end], "t.toml", 1);
    }
    let lines: Vec<&str> = text.lines().collect();
    for skip in 0..lines.len() {
        let mut without = lines.clone();
        without.remove(skip);
        let _ = crate::compile_str(&without.join("\n"), "t.toml", 1);
    }
    for odd in [
        "\u{feff}",
        "\0",
        "[[listener]]\n[[listener.route]]\n[[listener.route.x]]",
        "a.b.c.d = 1",
    ] {
        let _ = crate::compile_str(odd, "t.toml", 1);
    }
}

#[test]
fn resilience_defaults_are_the_documented_ones() {
    let s = compile(
        r#"
[[listener]]
name = "edge"
bind = "127.0.0.1:8080"
protocol = "http"
rate_limit = { requests_per_second = 1000 }
[[listener.route]]
cluster = "c"
[[listener.route]]
cluster = "c"
retry = {}
rate_limit = { requests_per_second = 5 }
fault = { delay = "50ms" }
[[listener.route]]
cluster = "c"
retry = { attempts = 0 }

[[cluster]]
name = "c"
endpoints = ["127.0.0.1:1"]

[[cluster]]
name = "d"
balance = "least_request"
endpoints = ["127.0.0.1:2"]
health_check = { protocol = "http", path = "/healthz" }
outlier = {}
circuit_breaker = {}
retry_budget = {}

[[cluster]]
name = "e"
endpoints = ["127.0.0.1:3"]
health_check = { protocol = "tcp" }
outlier = { consecutive_5xx = 0, consecutive_connect_failure = 7 }
circuit_breaker = { max_requests = 10 }
retry_budget = { percent = 50 }
"#,
        1,
    );
    assert_eq!(
        s.listeners[0].rate_limit,
        Some(RateLimitSpec {
            requests_per_second: 1000,
            burst: 100
        })
    );
    let ListenerKind::Http(h) = &s.listeners[0].kind else {
        panic!("http")
    };
    // No retry table: None, and the dataplane retries once on connect failure.
    let plain = &h.routes[0];
    assert_eq!(
        (&plain.retry, &plain.rate_limit, &plain.fault),
        (&None, &None, &None)
    );
    assert_eq!(
        h.routes[1].retry,
        Some(RetrySpec {
            attempts: 2,
            retry_on: vec![
                "connect-failure".into(),
                "reset".into(),
                "gateway-error".into()
            ],
            statuses: vec![],
            per_try_timeout_ms: None,
            backoff_base_ms: 25,
            backoff_max_ms: 250,
            non_idempotent: false,
            max_replay_body_bytes: 64 * 1024,
        })
    );
    assert_eq!(
        h.routes[1].rate_limit,
        Some(RateLimitSpec {
            requests_per_second: 5,
            burst: 1
        })
    );
    assert_eq!(
        h.routes[1].fault,
        Some(FaultSpec {
            delay_ms: Some(50),
            delay_percent: 100.0,
            abort_status: None,
            abort_percent: 0.0,
        })
    );
    assert_eq!(h.routes[2].retry.as_ref().map(|r| r.attempts), Some(0));

    let c = &s.clusters[0];
    assert_eq!(c.hash_key, None);
    assert_eq!(c.slow_start_ms, 0);
    assert_eq!((&c.health_check, &c.outlier), (&None, &None));
    assert_eq!(c.circuit_breaker, BreakerSpec::default());
    assert_eq!(
        c.circuit_breaker,
        BreakerSpec {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
        }
    );
    assert_eq!(
        c.retry_budget,
        RetryBudgetSpec {
            percent: 20,
            min_per_second: 10
        }
    );

    let c = &s.clusters[1];
    assert_eq!(c.balance, Balance::LeastRequest);
    assert_eq!(
        c.health_check,
        Some(HealthCheckSpec {
            kind: HealthCheckKind::Http {
                path: "/healthz".into(),
                expect_status: 200
            },
            interval_ms: 5_000,
            timeout_ms: 1_000,
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            jitter_percent: 10,
        })
    );
    assert_eq!(
        c.outlier,
        Some(OutlierSpec {
            consecutive_5xx: Some(5),
            consecutive_gateway_failure: Some(5),
            consecutive_connect_failure: None,
            base_ejection_time_ms: 30_000,
            max_ejection_time_ms: 300_000,
            max_ejection_percent: 50,
            interval_ms: 10_000,
            panic_threshold_percent: 50,
        })
    );
    assert_eq!(c.circuit_breaker, BreakerSpec::default());
    assert_eq!(c.retry_budget, RetryBudgetSpec::default());

    let c = &s.clusters[2];
    assert_eq!(
        c.health_check.as_ref().map(|h| &h.kind),
        Some(&HealthCheckKind::Tcp)
    );
    let o = c.outlier.as_ref().unwrap();
    assert_eq!(
        (
            o.consecutive_5xx,
            o.consecutive_gateway_failure,
            o.consecutive_connect_failure
        ),
        (None, Some(5), Some(7))
    );
    assert_eq!(c.circuit_breaker.max_requests, 10);
    assert_eq!(c.circuit_breaker.max_connections, 1024);
    assert_eq!(
        c.retry_budget,
        RetryBudgetSpec {
            percent: 50,
            min_per_second: 10
        }
    );
}

#[test]
fn resilience_values_compile_as_written() {
    let s = compile(
        r#"
[[listener]]
name = "db"
bind = "127.0.0.1:5433"
protocol = "tcp"
cluster = "c"
rate_limit = { requests_per_second = 200, burst = 50 }

[[listener]]
name = "edge"
bind = "127.0.0.1:8080"
protocol = "http"
[[listener.route]]
cluster = "c"
timeout = "2s"
retry = { attempts = 3, on = ["5xx", "retriable-status-codes", "5xx"], statuses = [429, 503, 429], per_try_timeout = "500ms", backoff_base = "10ms", backoff_max = "1s", non_idempotent = true, max_body = "1MiB" }
fault = { abort_status = 503, abort_percent = 1.5 }

[[cluster]]
name = "c"
balance = "maglev"
hash_key = { cookie = "sid" }
slow_start = "30s"
endpoints = ["127.0.0.1:1"]
health_check = { protocol = "http", path = "/ready", expect_status = 204, interval = "10s", timeout = "2s", healthy_threshold = 1, unhealthy_threshold = 5, jitter_percent = 0 }
outlier = { consecutive_5xx = 3, consecutive_gateway_failure = 0, consecutive_connect_failure = 2, base_ejection_time = "10s", max_ejection_time = "10s", max_ejection_percent = 100, interval = "1s", panic_threshold = 0 }
circuit_breaker = { max_connections = 1, max_pending_requests = 2, max_requests = 3, max_retries = 4 }
retry_budget = { percent = 0, min_per_second = 1 }
"#,
        1,
    );
    assert_eq!(
        s.listeners[0].rate_limit,
        Some(RateLimitSpec {
            requests_per_second: 200,
            burst: 50
        })
    );
    let ListenerKind::Http(h) = &s.listeners[1].kind else {
        panic!("http")
    };
    assert_eq!(
        h.routes[0].retry,
        Some(RetrySpec {
            attempts: 3,
            retry_on: vec!["5xx".into(), "retriable-status-codes".into()],
            statuses: vec![429, 503],
            per_try_timeout_ms: Some(500),
            backoff_base_ms: 10,
            backoff_max_ms: 1_000,
            non_idempotent: true,
            max_replay_body_bytes: 1 << 20,
        })
    );
    assert_eq!(
        h.routes[0].fault,
        Some(FaultSpec {
            delay_ms: None,
            delay_percent: 0.0,
            abort_status: Some(503),
            abort_percent: 1.5,
        })
    );
    let c = &s.clusters[0];
    assert_eq!(c.balance, Balance::Maglev);
    assert_eq!(c.hash_key, Some(HashKey::Cookie("sid".into())));
    assert_eq!(c.slow_start_ms, 30_000);
    assert_eq!(
        c.health_check,
        Some(HealthCheckSpec {
            kind: HealthCheckKind::Http {
                path: "/ready".into(),
                expect_status: 204
            },
            interval_ms: 10_000,
            timeout_ms: 2_000,
            healthy_threshold: 1,
            unhealthy_threshold: 5,
            jitter_percent: 0,
        })
    );
    assert_eq!(
        c.outlier,
        Some(OutlierSpec {
            consecutive_5xx: Some(3),
            consecutive_gateway_failure: None,
            consecutive_connect_failure: Some(2),
            base_ejection_time_ms: 10_000,
            max_ejection_time_ms: 10_000,
            max_ejection_percent: 100,
            interval_ms: 1_000,
            panic_threshold_percent: 0,
        })
    );
    assert_eq!(
        c.circuit_breaker,
        BreakerSpec {
            max_connections: 1,
            max_pending_requests: 2,
            max_requests: 3,
            max_retries: 4,
        }
    );
    assert_eq!(
        c.retry_budget,
        RetryBudgetSpec {
            percent: 0,
            min_per_second: 1
        }
    );
    // The snapshot crosses the control socket: it must survive a JSON round trip.
    let json = serde_json::to_string(&s).unwrap();
    let back: Snapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
}
