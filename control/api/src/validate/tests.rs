//! One failing case per validation rule, each asserting the exact TOML path.

use crate::error::ConfigError;
use crate::snapshot::{HeaderValueMatch, HostMatch, ListenerKind, PathMatch, RouteAction};

pub(super) const CLUSTERS: &str = r#"
[[cluster]]
name = "payments"
endpoints = ["127.0.0.1:9000"]

[[cluster]]
name = "web"
endpoints = ["127.0.0.1:9100"]
"#;

pub(super) fn http_with_route(route: &str) -> String {
    format!(
        "[[listener]]\nname = \"edge\"\nbind = \"127.0.0.1:8080\"\nprotocol = \"http\"\n\n\
         [[listener.route]]\n{route}\n{CLUSTERS}"
    )
}

pub(super) fn errors(text: &str) -> Vec<ConfigError> {
    match crate::compile_str(text, "t.toml", 1) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.errors,
    }
}

/// Asserts exactly one error, at `path`, and returns it.
pub(super) fn one(text: &str, path: &str) -> ConfigError {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].path, path, "{errs:#?}");
    errs[0].clone()
}

pub(super) fn route_error(route: &str, path: &str) -> ConfigError {
    one(
        &http_with_route(route),
        &format!("listener[0].route[0].{path}"),
    )
}

pub(super) fn compiles(text: &str) -> crate::Snapshot {
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
