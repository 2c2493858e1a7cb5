//! The resilience settings' validation rules (hash keys, slow start, health checks, outlier detection, circuit
//! breakers, retry budgets, retries, rate limits, faults), one failing case per rule with its exact TOML path.

use super::tests::{compiles, errors, http_with_route, one, route_error, CLUSTERS};
use crate::snapshot::{Balance, FaultSpec, HashKey, ListenerKind, RateLimitSpec};

fn cluster_with(extra: &str) -> String {
    format!("[[cluster]]\nname = \"a\"\nendpoints = [\"1.2.3.4:1\"]\n{extra}\n")
}

#[test]
fn hash_key_goes_with_hashing_balancers() {
    let e = one(
        &cluster_with("balance = \"ring_hash\""),
        "cluster[0].hash_key",
    );
    assert_eq!(e.message, "balance = \"ring_hash\" needs a hash_key");
    one(&cluster_with("balance = \"maglev\""), "cluster[0].hash_key");
    one(
        &cluster_with("hash_key = { header = \"x-user\" }"),
        "cluster[0].hash_key",
    );
    one(
        &cluster_with("balance = \"least_request\"\nhash_key = { source_ip = true }"),
        "cluster[0].hash_key",
    );
    one(
        &cluster_with("balance = \"maglev\"\nhash_key = { header = \"x user\" }"),
        "cluster[0].hash_key.header",
    );
    one(
        &cluster_with("balance = \"maglev\"\nhash_key = { cookie = \"a=b\" }"),
        "cluster[0].hash_key.cookie",
    );
    one(
        &cluster_with("balance = \"maglev\"\nhash_key = { source_ip = false }"),
        "cluster[0].hash_key.source_ip",
    );
    one(
        &cluster_with("balance = \"maglev\"\nhash_key = { header = \"x\", cookie = \"y\" }"),
        "cluster[0].hash_key",
    );
    one(
        &cluster_with("balance = \"maglev\"\nhash_key = {}"),
        "cluster[0].hash_key",
    );
    let e = one(
        &cluster_with("balance = \"ring-hash\""),
        "cluster[0].balance",
    );
    assert!(e.hint.unwrap_or_default().contains("ring_hash"));
    let s = compiles(&cluster_with(
        "balance = \"ring_hash\"\nhash_key = { header = \"X-User\" }",
    ));
    assert_eq!(
        s.clusters[0].hash_key,
        Some(HashKey::Header("x-user".into()))
    );
    assert_eq!(s.clusters[0].balance, Balance::RingHash);
}

#[test]
fn slow_start_is_a_duration() {
    one(&cluster_with("slow_start = 30"), "cluster[0].slow_start");
    one(
        &cluster_with("slow_start = \"30d\""),
        "cluster[0].slow_start",
    );
    assert_eq!(
        compiles(&cluster_with("slow_start = \"0s\"")).clusters[0].slow_start_ms,
        0
    );
}

#[test]
fn health_check_rules() {
    let hc = |body: &str| cluster_with(&format!("health_check = {{ {body} }}"));
    one(&hc("interval = \"5s\""), "cluster[0].health_check.protocol");
    let e = one(&hc("protocol = \"http\""), "cluster[0].health_check.path");
    assert_eq!(e.hint.as_deref(), Some("add path = \"/healthz\""));
    let e = one(
        &hc("protocol = \"http\", path = \"healthz\""),
        "cluster[0].health_check.path",
    );
    assert_eq!(e.hint.as_deref(), Some("write \"/healthz\""));
    one(
        &hc("protocol = \"http\", path = \"/a b\""),
        "cluster[0].health_check.path",
    );
    one(
        &hc("protocol = \"http\", path = \"/\", expect_status = 99"),
        "cluster[0].health_check.expect_status",
    );
    one(
        &hc("protocol = \"tcp\", path = \"/\""),
        "cluster[0].health_check.path",
    );
    one(
        &hc("protocol = \"tcp\", expect_status = 200"),
        "cluster[0].health_check.expect_status",
    );
    one(
        &hc("protocol = \"tcp\", interval = \"0s\""),
        "cluster[0].health_check.interval",
    );
    // timeout must be shorter than interval, defaults included.
    let e = one(
        &hc("protocol = \"tcp\", interval = \"1s\", timeout = \"1s\""),
        "cluster[0].health_check.timeout",
    );
    assert_eq!(
        e.message,
        "timeout (1000ms) is not shorter than interval (1000ms)"
    );
    one(
        &hc("protocol = \"tcp\", interval = \"500ms\""),
        "cluster[0].health_check.interval",
    );
    one(
        &hc("protocol = \"tcp\", timeout = \"10s\""),
        "cluster[0].health_check.timeout",
    );
    one(
        &hc("protocol = \"tcp\", healthy_threshold = 0"),
        "cluster[0].health_check.healthy_threshold",
    );
    one(
        &hc("protocol = \"tcp\", unhealthy_threshold = 0"),
        "cluster[0].health_check.unhealthy_threshold",
    );
    one(
        &hc("protocol = \"tcp\", jitter_percent = 101"),
        "cluster[0].health_check.jitter_percent",
    );
    one(
        &hc("protocol = \"udp\""),
        "cluster[0].health_check.protocol",
    );
    one(
        &hc("protocol = \"tcp\", intervall = \"5s\""),
        "cluster[0].health_check.intervall",
    );
    compiles(&hc("protocol = \"http\", path = \"/healthz?full=1\""));
}

#[test]
fn outlier_rules() {
    let o = |body: &str| cluster_with(&format!("outlier = {{ {body} }}"));
    let e = one(
        &o("max_ejection_percent = 101"),
        "cluster[0].outlier.max_ejection_percent",
    );
    assert_eq!(e.message, "101 is out of range");
    one(
        &o("panic_threshold = -1"),
        "cluster[0].outlier.panic_threshold",
    );
    one(
        &o("consecutive_5xx = -1"),
        "cluster[0].outlier.consecutive_5xx",
    );
    one(
        &o("consecutive_gateway_failure = 1001"),
        "cluster[0].outlier.consecutive_gateway_failure",
    );
    one(
        &o("consecutive_connect_failure = -5"),
        "cluster[0].outlier.consecutive_connect_failure",
    );
    one(
        &o("base_ejection_time = \"0s\""),
        "cluster[0].outlier.base_ejection_time",
    );
    one(&o("interval = 10"), "cluster[0].outlier.interval");
    let e = one(
        &o("base_ejection_time = \"1m\", max_ejection_time = \"30s\""),
        "cluster[0].outlier.max_ejection_time",
    );
    assert!(e
        .message
        .starts_with("max_ejection_time (30000ms) is shorter"));
    // Against the default max (300s).
    one(
        &o("base_ejection_time = \"10m\""),
        "cluster[0].outlier.base_ejection_time",
    );
    one(
        &o("consecutive_5xx = 0, consecutive_gateway_failure = 0"),
        "cluster[0].outlier",
    );
    compiles(&o(
        "consecutive_5xx = 0, consecutive_gateway_failure = 0, consecutive_connect_failure = 3",
    ));
    compiles(&o("base_ejection_time = \"300s\""));
}

#[test]
fn circuit_breaker_and_retry_budget_rules() {
    for key in [
        "max_connections",
        "max_pending_requests",
        "max_requests",
        "max_retries",
    ] {
        one(
            &cluster_with(&format!("circuit_breaker = {{ {key} = 0 }}")),
            &format!("cluster[0].circuit_breaker.{key}"),
        );
    }
    one(
        &cluster_with("circuit_breaker = { max_requests = 4294967296 }"),
        "cluster[0].circuit_breaker.max_requests",
    );
    one(
        &cluster_with("retry_budget = { percent = 1001 }"),
        "cluster[0].retry_budget.percent",
    );
    one(
        &cluster_with("retry_budget = { min_per_second = -1 }"),
        "cluster[0].retry_budget.min_per_second",
    );
    compiles(&cluster_with(
        "retry_budget = { percent = 1000, min_per_second = 0 }",
    ));
}

#[test]
fn retry_rules() {
    let r = |body: &str| format!("cluster = \"web\"\nretry = {{ {body} }}");
    route_error(&r("attempts = 11"), "retry.attempts");
    route_error(&r("attempts = -1"), "retry.attempts");
    let e = route_error(&r("attempts = 0, on = [\"reset\"]"), "retry.attempts");
    assert!(e.message.contains("would do nothing"), "{e:?}");
    let e = route_error(&r("on = [\"reset\", \"5xxx\"]"), "retry.on[1]");
    assert_eq!(e.message, "unknown retry condition \"5xxx\"");
    assert!(
        e.hint
            .unwrap_or_default()
            .starts_with("did you mean \"5xx\"?"),
        "did-you-mean hint"
    );
    let e = route_error(&r("on = [\"connect-failur\"]"), "retry.on[0]");
    assert!(e
        .hint
        .unwrap_or_default()
        .starts_with("did you mean \"connect-failure\"?"));
    route_error(&r("on = []"), "retry.on");
    // gRPC status codes, as Envoy names them.
    compiles(&http_with_route(&r(
        "on = [\"cancelled\", \"deadline-exceeded\", \"internal\", \"resource-exhausted\", \"unavailable\"]",
    )));
    let e = route_error(&r("on = [\"unavailabel\"]"), "retry.on[0]");
    assert!(e
        .hint
        .unwrap_or_default()
        .starts_with("did you mean \"unavailable\"?"));
    let e = route_error(&r("statuses = [503]"), "retry.statuses");
    assert!(e
        .hint
        .unwrap_or_default()
        .contains("retriable-status-codes"));
    route_error(
        &r("on = [\"reset\", \"retriable-status-codes\"]"),
        "retry.on[1]",
    );
    route_error(
        &r("on = [\"retriable-status-codes\"], statuses = [503, 200]"),
        "retry.statuses[1]",
    );
    route_error(
        &r("on = [\"retriable-status-codes\"], statuses = []"),
        "retry.statuses",
    );
    route_error(&r("per_try_timeout = \"0s\""), "retry.per_try_timeout");
    let e = route_error(
        &format!("timeout = \"1s\"\n{}", r("per_try_timeout = \"1s\"")),
        "retry.per_try_timeout",
    );
    assert_eq!(
        e.message,
        "per_try_timeout (1000ms) is not shorter than the route's timeout (1000ms)"
    );
    route_error(
        &r("backoff_base = \"100ms\", backoff_max = \"50ms\""),
        "retry.backoff_max",
    );
    // Against the default backoff_max (250ms).
    route_error(&r("backoff_base = \"1s\""), "retry.backoff_base");
    route_error(&r("backoff_max = 5"), "retry.backoff_max");
    route_error(&r("max_body = \"64kib\""), "retry.max_body");
    route_error(&r("attemps = 2"), "retry.attemps");
}

#[test]
fn rate_limit_rules() {
    route_error(
        "cluster = \"web\"\nrate_limit = { burst = 10 }",
        "rate_limit.requests_per_second",
    );
    route_error(
        "cluster = \"web\"\nrate_limit = { requests_per_second = 0 }",
        "rate_limit.requests_per_second",
    );
    route_error(
        "cluster = \"web\"\nrate_limit = { requests_per_second = 10, burst = 0 }",
        "rate_limit.burst",
    );
    // Allowed on direct routes.
    compiles(&http_with_route(
        "direct = { status = 200 }\nrate_limit = { requests_per_second = 10 }",
    ));
    let tcp = "[[listener]]\nname = \"db\"\nbind = \"127.0.0.1:5433\"\nprotocol = \"tcp\"\ncluster = \"web\"\n";
    one(
        &format!("{tcp}rate_limit = {{ requests_per_second = -1 }}\n{CLUSTERS}"),
        "listener[0].rate_limit.requests_per_second",
    );
    let http = "[[listener]]\nname = \"e\"\nbind = \"127.0.0.1:80\"\nprotocol = \"http\"\n";
    one(
        &format!("{http}rate_limit = {{ requests_per_second = 5, burst = -1 }}"),
        "listener[0].rate_limit.burst",
    );
    let s = compiles(&format!(
        "{tcp}rate_limit = {{ requests_per_second = 5 }}\n{CLUSTERS}"
    ));
    assert_eq!(
        s.listeners[0].rate_limit,
        Some(RateLimitSpec {
            requests_per_second: 5,
            burst: 1
        })
    );
}

#[test]
fn fault_rules() {
    let f = |body: &str| format!("cluster = \"web\"\nfault = {{ {body} }}");
    route_error(&f(""), "fault");
    route_error(&f("delay = \"0s\""), "fault.delay");
    let e = route_error(&f("delay_percent = 10"), "fault.delay_percent");
    assert_eq!(e.message, "delay_percent needs delay");
    route_error(&f("abort_percent = 1"), "fault.abort_percent");
    route_error(
        &f("delay = \"5ms\", delay_percent = 100.5"),
        "fault.delay_percent",
    );
    route_error(
        &f("abort_status = 503, abort_percent = -1"),
        "fault.abort_percent",
    );
    route_error(
        &f("abort_status = 503, abort_percent = nan"),
        "fault.abort_percent",
    );
    route_error(&f("abort_status = 199"), "fault.abort_status");
    route_error(&f("abort_status = 600"), "fault.abort_status");
    let s = compiles(&http_with_route(&f(
        "delay = \"50ms\", delay_percent = 0.5, abort_status = 503",
    )));
    let ListenerKind::Http(h) = &s.listeners[0].kind else {
        panic!("not http")
    };
    assert_eq!(
        h.routes[0].fault,
        Some(FaultSpec {
            delay_ms: Some(50),
            delay_percent: 0.5,
            abort_status: Some(503),
            abort_percent: 100.0,
        })
    );
}

#[test]
fn retry_and_fault_are_not_for_direct_routes() {
    let e = route_error(
        "direct = { status = 200 }\nretry = { attempts = 1 }",
        "retry",
    );
    assert_eq!(e.message, "retry is not allowed on a direct route");
    route_error(
        "direct = { status = 200 }\nfault = { abort_status = 503 }",
        "fault",
    );
    compiles(&http_with_route(
        "split = [{ cluster = \"web\", weight = 1 }]\nretry = { attempts = 1 }\nfault = { delay = \"1ms\" }",
    ));
}

#[test]
fn resilience_errors_are_reported_together() {
    let text = r#"
[[listener]]
name = "edge"
bind = "127.0.0.1:8080"
protocol = "http"
rate_limit = { requests_per_second = 0 }

[[listener.route]]
cluster = "a"
timeout = "1s"
retry = { on = ["gateway-eror"], per_try_timeout = "2s" }
fault = { abort_percent = 5 }

[[cluster]]
name = "a"
balance = "maglev"
endpoints = ["1.2.3.4:1"]
health_check = { protocol = "http", timeout = "9s" }
outlier = { max_ejection_percent = 150 }
circuit_breaker = { max_retries = 0 }
"#;
    let paths: Vec<String> = errors(text).into_iter().map(|e| e.path).collect();
    assert_eq!(
        paths,
        [
            "listener[0].rate_limit.requests_per_second",
            "listener[0].route[0].retry.on[0]",
            "listener[0].route[0].retry.per_try_timeout",
            "listener[0].route[0].fault.abort_percent",
            "cluster[0].hash_key",
            "cluster[0].health_check.path",
            "cluster[0].health_check.timeout",
            "cluster[0].outlier.max_ejection_percent",
            "cluster[0].circuit_breaker.max_retries",
        ]
    );
}
