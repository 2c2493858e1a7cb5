//! One failing case per validation rule, each asserting the exact TOML path.

use crate::error::ConfigError;
use crate::snapshot::{
    Balance, FaultSpec, HashKey, HeaderValueMatch, HostMatch, ListenerKind, PathMatch,
    RateLimitSpec, RouteAction,
};

const CLUSTERS: &str = r#"
[[cluster]]
name = "payments"
endpoints = ["127.0.0.1:9000"]

[[cluster]]
name = "web"
endpoints = ["127.0.0.1:9100"]
"#;

fn http_with_route(route: &str) -> String {
    format!(
        "[[listener]]\nname = \"edge\"\nbind = \"127.0.0.1:8080\"\nprotocol = \"http\"\n\n\
         [[listener.route]]\n{route}\n{CLUSTERS}"
    )
}

fn errors(text: &str) -> Vec<ConfigError> {
    match crate::compile_str(text, "t.toml", 1) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.errors,
    }
}

/// Asserts exactly one error, at `path`, and returns it.
fn one(text: &str, path: &str) -> ConfigError {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].path, path, "{errs:#?}");
    errs[0].clone()
}

fn route_error(route: &str, path: &str) -> ConfigError {
    one(
        &http_with_route(route),
        &format!("listener[0].route[0].{path}"),
    )
}

fn compiles(text: &str) -> crate::Snapshot {
    match crate::compile_str(text, "t.toml", 1) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn listener_names_and_binds_are_unique() {
    let text = format!(
        "[[listener]]\nname = \"a\"\nbind = \"0.0.0.0:80\"\nprotocol = \"tcp\"\ncluster = \"web\"\n\
         [[listener]]\nname = \"a\"\nbind = \"127.0.0.1:81\"\nprotocol = \"tcp\"\ncluster = \"web\"\n\
         [[listener]]\nname = \"c\"\nbind = \"127.0.0.1:80\"\nprotocol = \"tcp\"\ncluster = \"web\"\n{CLUSTERS}"
    );
    let errs = errors(&text);
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["listener[1].name", "listener[2].bind"]);
    assert_eq!(
        errs[1].message,
        "bind address 127.0.0.1:80 overlaps listener[0] at 0.0.0.0:80"
    );
}

#[test]
fn port_zero_binds_do_not_clash() {
    let text = format!(
        "[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:0\"\nprotocol = \"tcp\"\ncluster = \"web\"\n\
         [[listener]]\nname = \"b\"\nbind = \"127.0.0.1:0\"\nprotocol = \"tcp\"\ncluster = \"web\"\n{CLUSTERS}"
    );
    assert_eq!(compiles(&text).listeners.len(), 2);
}

#[test]
fn admin_must_not_overlap_a_listener() {
    let text = format!(
        "[runtime]\nadmin = \"127.0.0.1:8080\"\n[[listener]]\nname = \"a\"\nbind = \"[::]:8080\"\n\
         protocol = \"http\"\n{CLUSTERS}"
    );
    one(&text, "runtime.admin");
}

#[test]
fn cluster_names_are_unique() {
    let text = format!("{CLUSTERS}\n[[cluster]]\nname = \"web\"\nendpoints = [\"127.0.0.1:1\"]\n");
    let e = one(&text, "cluster[2].name");
    assert_eq!(e.hint.as_deref(), Some("first defined at cluster[1]"));
}

#[test]
fn required_listener_keys() {
    let errs = errors("[[listener]]\n");
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "listener[0].name",
            "listener[0].bind",
            "listener[0].protocol"
        ]
    );
    one(
        "[[listener]]\nname = \" \"\nbind = \"127.0.0.1:1\"\nprotocol = \"http\"\n",
        "listener[0].name",
    );
}

#[test]
fn tcp_listener_rules() {
    let tcp = "[[listener]]\nname = \"db\"\nbind = \"127.0.0.1:5433\"\nprotocol = \"tcp\"\n";
    one(&format!("{tcp}{CLUSTERS}"), "listener[0].cluster");
    let errs = errors(&format!(
        "{tcp}cluster = \"web\"\nmax_headers = 10\nvia = false\n[[listener.route]]\ncluster = \"web\"\n{CLUSTERS}"
    ));
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "listener[0].max_headers",
            "listener[0].via",
            "listener[0].route"
        ]
    );
}

#[test]
fn http_listener_rejects_tcp_keys() {
    let http = "[[listener]]\nname = \"e\"\nbind = \"127.0.0.1:80\"\nprotocol = \"http\"\n";
    one(
        &format!("{http}cluster = \"web\"\n{CLUSTERS}"),
        "listener[0].cluster",
    );
    one(
        &format!("{http}splice = true\n{CLUSTERS}"),
        "listener[0].splice",
    );
}

#[test]
fn http_listener_with_no_routes_is_allowed() {
    let s = compiles("[[listener]]\nname = \"e\"\nbind = \"127.0.0.1:80\"\nprotocol = \"http\"\n");
    let ListenerKind::Http(h) = &s.listeners[0].kind else {
        panic!("not http")
    };
    assert!(h.routes.is_empty());
}

#[test]
fn route_needs_exactly_one_action() {
    let e = one(&http_with_route("path = \"/\""), "listener[0].route[0]");
    assert_eq!(e.message, "a route needs one of cluster, split, direct");
    let e = one(
        &http_with_route("cluster = \"web\"\ndirect = { status = 200 }"),
        "listener[0].route[0]",
    );
    assert!(e.message.contains("found cluster, direct"), "{e:?}");
}

#[test]
fn route_takes_at_most_one_path_matcher() {
    route_error(
        "cluster = \"web\"\npath = \"/a\"\npath_prefix = \"/b\"",
        "path_prefix",
    );
}

#[test]
fn paths_start_with_slash() {
    let e = route_error("cluster = \"web\"\npath = \"healthz\"", "path");
    assert_eq!(e.hint.as_deref(), Some("write \"/healthz\""));
    route_error("cluster = \"web\"\npath_prefix = \"api/\"", "path_prefix");
    route_error("cluster = \"web\"\npath = \"/a?b=1\"", "path");
}

#[test]
fn regexes_compile_and_are_anchored() {
    let e = route_error("cluster = \"web\"\npath_regex = \"/a(\"", "path_regex");
    assert!(e.message.starts_with("invalid regex \"/a(\": "), "{e:?}");
    route_error(
        "cluster = \"web\"\nheaders = [{ name = \"x\", regex = \"[\" }]",
        "headers[0].regex",
    );
    let s = compiles(&http_with_route(
        "cluster = \"web\"\npath_regex = \"/v[0-9]+/.*\"",
    ));
    let ListenerKind::Http(h) = &s.listeners[0].kind else {
        panic!("not http")
    };
    assert_eq!(
        h.routes[0].matcher.path,
        Some(PathMatch::Regex("^(?:/v[0-9]+/.*)$".into()))
    );
}

#[test]
fn header_matches() {
    route_error(
        "cluster = \"web\"\nheaders = [{ name = \"x env\", value = \"a\" }]",
        "headers[0].name",
    );
    route_error(
        "cluster = \"web\"\nheaders = [{ name = \"x\", value = \"a\\r\\nb\" }]",
        "headers[0].value",
    );
    route_error(
        "cluster = \"web\"\nheaders = [{ name = \"x\" }]",
        "headers[0]",
    );
    route_error(
        "cluster = \"web\"\nheaders = [{ name = \"x\", value = \"a\", present = true }]",
        "headers[0]",
    );
    route_error(
        "cluster = \"web\"\nheaders = [{ name = \"x\", present = false }]",
        "headers[0].present",
    );
    let s = compiles(&http_with_route(
        "cluster = \"web\"\nheaders = [{ name = \"X-Env\", value = \"Canary\" }, { name = \"x-debug\", present = true }]",
    ));
    let ListenerKind::Http(h) = &s.listeners[0].kind else {
        panic!("not http")
    };
    let m = &h.routes[0].matcher.headers;
    assert_eq!(m[0].name, "x-env");
    assert_eq!(m[0].value, HeaderValueMatch::Exact("Canary".into()));
    assert_eq!(m[1].value, HeaderValueMatch::Present);
}

#[test]
fn host_patterns() {
    for bad in [
        "a.*.com",
        "api.example.com:80",
        "*",
        "*.",
        "a..b",
        "bad host",
    ] {
        route_error(&format!("cluster = \"web\"\nhost = \"{bad}\""), "host");
    }
    let s = compiles(&http_with_route(
        "cluster = \"web\"\nhost = \"*.Example.COM\"",
    ));
    let ListenerKind::Http(h) = &s.listeners[0].kind else {
        panic!("not http")
    };
    assert_eq!(
        h.routes[0].matcher.host,
        Some(HostMatch::Suffix(".example.com".into()))
    );
}

#[test]
fn methods() {
    route_error(
        "cluster = \"web\"\nmethods = [\"GET\", \"GE T\"]",
        "methods[1]",
    );
    route_error("cluster = \"web\"\nmethods = []", "methods");
    let s = compiles(&http_with_route(
        "cluster = \"web\"\nmethods = [\"get\", \"HEAD\", \"GET\"]",
    ));
    let ListenerKind::Http(h) = &s.listeners[0].kind else {
        panic!("not http")
    };
    assert_eq!(h.routes[0].matcher.methods, ["GET", "HEAD"]);
}

#[test]
fn split_rules() {
    route_error("split = []", "split");
    route_error(
        "split = [{ cluster = \"web\", weight = 0 }]",
        "split[0].weight",
    );
    route_error(
        "split = [{ cluster = \"web\", weight = 4294967295 }, { cluster = \"payments\", weight = 1 }]",
        "split",
    );
    let e = route_error(
        "split = [{ cluster = \"web\", weight = 1 }, { cluster = \"paymnts\", weight = 1 }]",
        "split[1].cluster",
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean \"payments\"?"));
}

#[test]
fn direct_rules() {
    for status in [99, 150, 600, -1] {
        route_error(
            &format!("direct = {{ status = {status} }}"),
            "direct.status",
        );
    }
    route_error("direct = { status = 204, body = \"x\" }", "direct.body");
    let big = "x".repeat(70_000);
    route_error(
        &format!("direct = {{ status = 200, body = \"{big}\" }}"),
        "direct.body",
    );
    route_error(
        "direct = { status = 200, content_type = \"a\\nb\" }",
        "direct.content_type",
    );
    let s = compiles(&http_with_route("direct = { status = 200 }"));
    let ListenerKind::Http(h) = &s.listeners[0].kind else {
        panic!("not http")
    };
    let RouteAction::Direct(d) = &h.routes[0].action else {
        panic!("not direct")
    };
    assert_eq!(
        (d.status, d.body.as_str(), d.content_type.as_str()),
        (200, "", "text/plain")
    );
}

#[test]
fn unknown_cluster_suggests_a_name() {
    let e = route_error("cluster = \"paymnts\"", "cluster");
    assert_eq!(e.message, "no cluster named \"paymnts\"");
    assert_eq!(e.hint.as_deref(), Some("did you mean \"payments\"?"));
    let e = route_error("cluster = \"WEB\"", "cluster");
    assert_eq!(e.hint.as_deref(), Some("did you mean \"web\"?"));
    let e = route_error("cluster = \"zzzzzz\"", "cluster");
    assert_eq!(e.hint, None);
}

#[test]
fn route_headers_ops() {
    route_error(
        "cluster = \"web\"\nrequest_headers = { set = { \"bad name\" = \"1\" } }",
        "request_headers.set.\"bad name\"",
    );
    route_error(
        "cluster = \"web\"\nrequest_headers = { remove = [\"Content-Length\"] }",
        "request_headers.remove[0]",
    );
    route_error(
        "cluster = \"web\"\nresponse_headers = { add = { x-a = \"1\\n\" } }",
        "response_headers.add.x-a",
    );
    route_error(
        "cluster = \"web\"\nrequest_headers = { set = { X-A = \"1\", x-a = \"2\" } }",
        "request_headers.set.x-a",
    );
}

#[test]
fn route_timeouts_and_sizes() {
    route_error("cluster = \"web\"\ntimeout = \"0s\"", "timeout");
    route_error("cluster = \"web\"\ntimeout = 5", "timeout");
    route_error("cluster = \"web\"\nmax_body = -1", "max_body");
    route_error("cluster = \"web\"\nmax_body = \"1 parsec\"", "max_body");
}

#[test]
fn route_names_are_unique_within_a_listener() {
    let text = http_with_route(
        "name = \"route1\"\ncluster = \"web\"\n[[listener.route]]\ncluster = \"web\"",
    );
    one(&text, "listener[0].route[1].name");
}

#[test]
fn endpoint_rules() {
    let cluster = |endpoints: &str| format!("[[cluster]]\nname = \"a\"\nendpoints = {endpoints}\n");
    let e = one(&cluster("[\"10.0.0.1\"]"), "cluster[0].endpoints[0]");
    assert_eq!(e.hint.as_deref(), Some("write \"10.0.0.1:8080\""));
    let e = one(&cluster("[\"::1\"]"), "cluster[0].endpoints[0]");
    assert_eq!(e.hint.as_deref(), Some("write \"[::1]:8080\""));
    let e = one(&cluster("[\"localhost:80\"]"), "cluster[0].endpoints[0]");
    assert!(e.hint.unwrap_or_default().contains("not resolved"));
    one(&cluster("[\"127.0.0.1:0\"]"), "cluster[0].endpoints[0]");
    one(&cluster("[\"garbage\"]"), "cluster[0].endpoints[0]");
    one(
        &cluster("[{ addr = \"1.2.3.4\" }]"),
        "cluster[0].endpoints[0].addr",
    );
    one(
        &cluster("[\"1.2.3.4:1\", { addr = \"1.2.3.4:2\", weight = 0 }]"),
        "cluster[0].endpoints[1].weight",
    );
    one(
        &cluster("[\"1.2.3.4:1\", { addr = \"1.2.3.4:1\", weight = 2 }]"),
        "cluster[0].endpoints[1].addr",
    );
    one(
        &cluster("[\"1.2.3.4:1\", \"1.2.3.4:1\"]"),
        "cluster[0].endpoints[1]",
    );
    one(&cluster("[]"), "cluster[0].endpoints");
    one("[[cluster]]\nname = \"a\"\n", "cluster[0].endpoints");
    one(
        "[[cluster]]\nendpoints = [\"1.2.3.4:1\"]\n",
        "cluster[0].name",
    );
}

#[test]
fn cluster_settings() {
    let base = "[[cluster]]\nname = \"a\"\nendpoints = [\"1.2.3.4:1\"]\n";
    one(
        &format!("{base}connect_timeout = \"0ms\""),
        "cluster[0].connect_timeout",
    );
    one(
        &format!("{base}pool_idle_timeout = \"1d\""),
        "cluster[0].pool_idle_timeout",
    );
    one(
        &format!("{base}max_idle_per_endpoint = -1"),
        "cluster[0].max_idle_per_endpoint",
    );
}

#[test]
fn runtime_rules() {
    one("[runtime]\nworkers = 0\n", "runtime.workers");
    one("[runtime]\nworkers = 1025\n", "runtime.workers");
    let e = one("[runtime]\ndrain_timeout = 10\n", "runtime.drain_timeout");
    assert!(e.hint.unwrap_or_default().contains("\"10s\""));
    one("[runtime]\nadmin = \"localhost:9901\"\n", "runtime.admin");
    let s = compiles("[runtime]\ndrain_timeout = \"0s\"\nworkers = 1024\n");
    assert_eq!(s.runtime.drain_timeout_ms, 0);
}

#[test]
fn http_limits() {
    let http = "[[listener]]\nname = \"e\"\nbind = \"127.0.0.1:80\"\nprotocol = \"http\"\n";
    one(
        &format!("{http}max_request_line = \"16KiB\"\nmax_header_bytes = \"8KiB\""),
        "listener[0].max_request_line",
    );
    // A lowered head limit alone is checked against the default request-line limit.
    one(
        &format!("{http}max_header_bytes = \"4KiB\""),
        "listener[0].max_header_bytes",
    );
    one(
        &format!("{http}max_header_bytes = \"2MiB\""),
        "listener[0].max_header_bytes",
    );
    one(&format!("{http}max_headers = 0"), "listener[0].max_headers");
    one(
        &format!("{http}max_connections = 0"),
        "listener[0].max_connections",
    );
    one(
        &format!("{http}header_read_timeout = \"0s\""),
        "listener[0].header_read_timeout",
    );
    one(
        &format!("{http}idle_timeout = \"5parsecs\""),
        "listener[0].idle_timeout",
    );
    one(&format!("{http}via = \"two words\""), "listener[0].via");
    let s = compiles(&format!(
        "{http}max_request_line = 1024\nmax_header_bytes = \"4KiB\"\nmax_body = 0"
    ));
    let ListenerKind::Http(h) = &s.listeners[0].kind else {
        panic!("not http")
    };
    assert_eq!(
        (
            h.limits.max_request_line,
            h.limits.max_header_bytes,
            h.limits.max_body_bytes
        ),
        (1024, 4096, 0)
    );
}

#[test]
fn unreferenced_clusters_are_allowed() {
    assert_eq!(compiles(CLUSTERS).clusters.len(), 2);
}

#[test]
fn all_errors_are_reported_together() {
    let text = r#"
[runtime]
workers = 0

[[listener]]
name = "edge"
bind = "127.0.0.1:8080"
protocol = "http"

[[listener.route]]
path = "healthz"
direct = { status = 42 }

[[listener.route]]
cluster = "paymnts"

[[listener]]
name = "edge"
bind = "127.0.0.1:8080"
protocol = "tcp"

[[cluster]]
name = "payments"
endpoints = ["10.0.0.1"]
"#;
    let paths: Vec<String> = errors(text).into_iter().map(|e| e.path).collect();
    assert_eq!(
        paths,
        [
            "runtime.workers",
            "listener[0].route[0].path",
            "listener[0].route[0].direct.status",
            "listener[0].route[1].cluster",
            "listener[1].cluster",
            "listener[1].name",
            "listener[1].bind",
            "cluster[0].endpoints[0]",
        ]
    );
}

#[test]
fn documented_messages_read_as_documented() {
    let text = r#"
[[listener]]
name = "edge"
bind = "127.0.0.1:8080"
protocol = "http"
[[listener.route]]
cluster = "web"
[[listener.route]]
cluster = "web"
[[listener.route]]
cluster = "web"
[[listener.route]]
cluster = "paymnts"

[[cluster]]
name = "payments"
endpoints = ["127.0.0.1:9000"]
[[cluster]]
name = "web"
endpoints = ["10.0.0.1"]
"#;
    let err = crate::compile_str(text, "mesh.toml", 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "mesh.toml: listener[0].route[3].cluster: no cluster named \"paymnts\" (did you mean \"payments\"?)\n\
         mesh.toml: cluster[1].endpoints[0]: \"10.0.0.1\" is not an address with a port (write \"10.0.0.1:8080\")"
    );
}

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
