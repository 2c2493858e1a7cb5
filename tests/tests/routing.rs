//! HTTP routing: host (exact, `*.suffix`), path (exact, prefix, regex), methods, headers (exact, regex, present),
//! declared order, direct responses, no route → 404, header rewrites, forwarding headers (and their listener
//! switches), hop-by-hop removal, per-route timeout → 504. Weighted choices are in balance.rs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringmesh_tests::{addr, both_drivers, free_port, Body, Client, HttpUpstream, Proxy, Response};

struct Env {
    _proxy: Proxy,
    listener: SocketAddr,
    a: HttpUpstream,
    b: HttpUpstream,
    c: HttpUpstream,
    d: HttpUpstream,
}

impl Env {
    fn total_requests(&self) -> usize {
        self.a.requests() + self.b.requests() + self.c.requests() + self.d.requests()
    }
}

fn env(driver: &str) -> Env {
    let (a, b, c, d) = (
        HttpUpstream::start("a"),
        HttpUpstream::start("b"),
        HttpUpstream::start("c"),
        HttpUpstream::start("d"),
    );
    let port = free_port();
    let config = format!(
        r#"
[[listener]]
name = "edge"
bind = "127.0.0.1:{port}"
protocol = "http"

[[listener.route]]
name = "direct"
path = "/direct"
direct = {{ status = 201, body = "made", content_type = "text/plain" }}

[[listener.route]]
name = "host-exact"
host = "api.example.com"
path = "/exact"
cluster = "a"

[[listener.route]]
name = "host-suffix"
host = "*.example.com"
path_prefix = "/p/"
cluster = "b"

[[listener.route]]
name = "regex"
path_regex = "/re/[0-9]+"
cluster = "c"

[[listener.route]]
name = "method"
path_prefix = "/m/"
methods = ["DELETE", "PUT"]
cluster = "d"

[[listener.route]]
name = "hdr-exact"
path_prefix = "/hdr/"
headers = [{{ name = "x-env", value = "canary" }}]
cluster = "a"

[[listener.route]]
name = "hdr-regex"
path_prefix = "/hdr/"
headers = [{{ name = "x-env", regex = "can.*" }}]
cluster = "b"

[[listener.route]]
name = "hdr-present"
path_prefix = "/hdr/"
headers = [{{ name = "x-debug", present = true }}]
cluster = "c"

[[listener.route]]
name = "order-first"
path_prefix = "/order/"
cluster = "a"

[[listener.route]]
name = "order-never"
path_prefix = "/order/deep/"
cluster = "b"

[[listener.route]]
name = "rewrites"
path_prefix = "/hdrops/"
cluster = "a"
request_headers = {{ set = {{ "x-set" = "new" }}, add = {{ "x-add" = "added" }}, remove = ["x-remove"] }}
response_headers = {{ set = {{ "x-upstream-set-me" = "proxy" }}, add = {{ "x-resp-add" = "1" }}, remove = ["x-upstream-remove-me"] }}

[[listener.route]]
name = "slow"
path_prefix = "/slow/"
timeout = "300ms"
cluster = "d"

[[listener.route]]
name = "plain"
path_prefix = "/plain/"
cluster = "a"

[[cluster]]
name = "a"
endpoints = ["{}"]

[[cluster]]
name = "b"
endpoints = ["{}"]

[[cluster]]
name = "c"
endpoints = ["{}"]

[[cluster]]
name = "d"
endpoints = ["{}"]
"#,
        a.addr, b.addr, c.addr, d.addr
    );
    let proxy = Proxy::start(driver, &config);
    Env {
        _proxy: proxy,
        listener: addr(port),
        a,
        b,
        c,
        d,
    }
}

/// Which upstream answered ("404" etc. for proxy-generated responses).
fn who(c: &mut Client, method: &str, path: &str, host: &str, headers: &[(&str, &str)]) -> String {
    let r = c.request(method, path, host, headers, Body::Empty);
    match r.status {
        200 => r.upstream().to_string(),
        s => s.to_string(),
    }
}

/// method, path, host, extra headers, expected upstream (or status).
type Case<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);

fn check(c: &mut Client, cases: &[Case<'_>]) {
    for (method, path, host, headers, want) in cases {
        let got = who(c, method, path, host, headers);
        assert_eq!(&got, want, "{method} {path} Host: {host} {headers:?}");
    }
}

fn host_matching(driver: &str) {
    let e = env(driver);
    let mut c = Client::connect(e.listener);
    check(
        &mut c,
        &[
            ("GET", "/exact", "api.example.com", &[], "a"),
            ("GET", "/exact", "API.Example.COM:8080", &[], "a"),
            ("GET", "/exact", "other.example.com", &[], "404"),
            ("GET", "/exact", "api.example.org", &[], "404"),
            ("GET", "/p/1", "x.example.com", &[], "b"),
            ("GET", "/p/1", "deep.x.example.com:81", &[], "b"),
            ("GET", "/p/1", "X.EXAMPLE.COM", &[], "b"),
            ("GET", "/p/1", "x.example.org", &[], "404"),
            ("GET", "/p/1", "xexample.com", &[], "404"),
        ],
    );
}

fn path_matching(driver: &str) {
    let e = env(driver);
    let mut c = Client::connect(e.listener);
    check(
        &mut c,
        &[
            ("GET", "/exact?q=1", "api.example.com", &[], "a"),
            ("GET", "/exact/", "api.example.com", &[], "404"),
            ("GET", "/exactly", "api.example.com", &[], "404"),
            ("GET", "/p/", "x.example.com", &[], "b"),
            ("GET", "/p", "x.example.com", &[], "404"),
            ("GET", "/re/123", "h", &[], "c"),
            ("GET", "/re/1?x=y", "h", &[], "c"),
            ("GET", "/re/12x", "h", &[], "404"),
            ("GET", "/re/", "h", &[], "404"),
            ("GET", "/x/re/1", "h", &[], "404"),
        ],
    );
    // The path reaches the upstream unchanged, query included.
    assert_eq!(e.c.last().target, "/re/1?x=y");
}

fn method_matching(driver: &str) {
    let e = env(driver);
    let mut c = Client::connect(e.listener);
    check(
        &mut c,
        &[
            ("DELETE", "/m/x", "h", &[], "d"),
            ("PUT", "/m/x", "h", &[], "d"),
            ("GET", "/m/x", "h", &[], "404"),
            ("POST", "/m/x", "h", &[], "404"),
        ],
    );
    assert_eq!(e.d.last().method, "PUT");
}

fn header_matching(driver: &str) {
    let e = env(driver);
    let mut c = Client::connect(e.listener);
    check(
        &mut c,
        &[
            ("GET", "/hdr/1", "h", &[("x-env", "canary")], "a"),
            ("GET", "/hdr/1", "h", &[("X-Env", "canary")], "a"),
            ("GET", "/hdr/1", "h", &[("x-env", "canaryish")], "b"),
            (
                "GET",
                "/hdr/1",
                "h",
                &[("x-env", "prod"), ("x-debug", "1")],
                "c",
            ),
            ("GET", "/hdr/1", "h", &[("x-debug", "")], "c"),
            ("GET", "/hdr/1", "h", &[("x-env", "prod")], "404"),
            ("GET", "/hdr/1", "h", &[], "404"),
        ],
    );
}

fn declared_order(driver: &str) {
    let e = env(driver);
    let mut c = Client::connect(e.listener);
    check(
        &mut c,
        &[
            ("GET", "/order/deep/x", "h", &[], "a"),
            ("GET", "/order/x", "h", &[], "a"),
        ],
    );
    assert_eq!(e.b.requests(), 0);
}

fn direct_response(driver: &str) {
    let e = env(driver);
    let mut c = Client::connect(e.listener);
    for _ in 0..2 {
        let r = c.get("/direct", "h");
        assert_eq!((r.status, r.body_str().as_str()), (201, "made"));
        assert!(
            r.header("content-type")
                .unwrap_or("")
                .starts_with("text/plain"),
            "{r:?}"
        );
    }
    let r = c.get("/plain/after-direct", "h");
    assert_eq!(
        r.upstream(),
        "a",
        "keep-alive request after direct responses"
    );
    assert_eq!(
        e.total_requests(),
        1,
        "direct responses must not reach any upstream"
    );
}

fn no_route_404(driver: &str) {
    let e = env(driver);
    let mut c = Client::connect(e.listener);
    let r = c.get("/nothing/here", "nomatch.org");
    assert_eq!(r.status, 404);
    assert!(!r.body.is_empty(), "404 should say why");
    assert_eq!(e.total_requests(), 0);
    let r = c.get("/plain/after-404", "h");
    assert_eq!(r.upstream(), "a", "keep-alive request after a 404");
}

fn flat<'a>(values: &[&'a str]) -> Vec<&'a str> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect()
}

fn header_rewrites(driver: &str) {
    let e = env(driver);
    let mut c = Client::connect(e.listener);
    let headers = [
        ("X-Remove", "1"),
        ("X-Set", "old"),
        ("X-Set", "older"),
        ("X-Add", "mine"),
        ("X-Keep", "k"),
    ];
    let r = c.request("GET", "/hdrops/1", "h", &headers, Body::Empty);
    assert_eq!(r.upstream(), "a");
    let seen = e.a.last().head;
    assert_eq!(
        seen.header_all("x-remove"),
        Vec::<&str>::new(),
        "removed request header reached the upstream"
    );
    assert_eq!(seen.header_all("x-set"), vec!["new"], "set request header");
    let mut added = flat(&seen.header_all("x-add"));
    added.sort();
    assert_eq!(added, vec!["added", "mine"], "added request header");
    assert_eq!(seen.header("x-keep"), Some("k"));
    assert_eq!(
        r.header_all("x-upstream-remove-me"),
        Vec::<&str>::new(),
        "removed response header"
    );
    assert_eq!(
        r.header_all("x-upstream-set-me"),
        vec!["proxy"],
        "set response header"
    );
    assert_eq!(r.header("x-resp-add"), Some("1"), "added response header");
    // `set` also applies when the header is absent.
    c.get("/hdrops/2", "h");
    assert_eq!(e.a.last().head.header_all("x-set"), vec!["new"]);
    // Other routes are untouched.
    let r = c.request("GET", "/plain/1", "h", &headers, Body::Empty);
    assert_eq!(r.header("x-upstream-remove-me"), Some("yes"));
    assert_eq!(e.a.last().head.header_all("x-set"), vec!["old", "older"]);
}

fn forwarding_headers(driver: &str) {
    let e = env(driver);
    let mut c = Client::connect(e.listener);
    let hop = [
        ("X-Forwarded-For", "10.1.2.3"),
        ("Connection", "keep-alive, x-hop"),
        ("x-hop", "1"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Trailer", "x-t"),
        ("Proxy-Connection", "keep-alive"),
        ("x-end-to-end", "stays"),
    ];
    let r = c.request("GET", "/plain/fwd", "api.example.com", &hop, Body::Empty);
    assert_eq!(r.status, 200);
    let seen = e.a.last().head;
    let text = String::from_utf8_lossy(&seen.raw).into_owned();
    assert_eq!(
        seen.header("host"),
        Some("api.example.com"),
        "Host is forwarded:\n{text}"
    );
    assert_eq!(
        flat(&seen.header_all("x-forwarded-for")),
        vec!["10.1.2.3", "127.0.0.1"],
        "XFF appended:\n{text}"
    );
    assert_eq!(seen.header_all("x-forwarded-proto"), vec!["http"], "{text}");
    assert!(
        flat(&seen.header_all("via")).contains(&"1.1 ringmesh"),
        "Via:\n{text}"
    );
    let id = seen.header("x-request-id").unwrap_or("").to_string();
    assert!(!id.is_empty(), "x-request-id generated:\n{text}");
    for name in ["x-hop", "keep-alive", "te", "trailer", "proxy-connection"] {
        assert!(
            seen.header(name).is_none(),
            "hop-by-hop {name} reached the upstream:\n{text}"
        );
    }
    assert!(
        !seen.has_token("connection", "x-hop"),
        "client's Connection header forwarded:\n{text}"
    );
    assert_eq!(seen.header("x-end-to-end"), Some("stays"));

    c.get("/plain/fwd2", "h");
    let seen = e.a.last().head;
    assert_eq!(flat(&seen.header_all("x-forwarded-for")), vec!["127.0.0.1"]);
    let id2 = seen.header("x-request-id").unwrap_or("").to_string();
    assert!(
        !id2.is_empty() && id2 != id,
        "request ids must differ per request: {id} then {id2}"
    );

    c.request(
        "GET",
        "/plain/fwd3",
        "h",
        &[("X-Request-Id", "abc-123")],
        Body::Empty,
    );
    assert_eq!(
        e.a.last().head.header_all("x-request-id"),
        vec!["abc-123"],
        "client's request id is kept"
    );
}

fn hop_by_hop_response(driver: &str) {
    let e = env(driver);
    let mut c = Client::connect(e.listener);
    let r = c.get("/plain/hop", "h");
    assert_eq!(r.status, 200);
    for name in ["x-hop-resp", "keep-alive", "proxy-connection"] {
        assert!(
            r.header(name).is_none(),
            "hop-by-hop response header {name} reached the client: {:?}",
            r.head
        );
    }
    assert!(
        !r.has_token("connection", "x-hop-resp"),
        "upstream's Connection header forwarded: {:?}",
        r.head
    );
    assert_eq!(r.upstream(), "a");
}

fn route_timeout_504(driver: &str) {
    let e = env(driver);
    let mut c = Client::connect(e.listener);
    let r = c.get("/slow/delay/0", "h");
    assert_eq!(r.status, 200, "a fast request on the timeout route");
    let start = Instant::now();
    let r: Response = Client::connect(e.listener).get("/slow/delay/3000", "h");
    let took = start.elapsed();
    assert_eq!(
        r.status,
        504,
        "slow upstream behind a 300ms route timeout: {}",
        r.body_str()
    );
    assert!(
        took >= Duration::from_millis(250),
        "504 after only {took:?}"
    );
    assert!(
        took < Duration::from_millis(2500),
        "504 only after {took:?} (timeout is 300ms)"
    );
    assert_eq!(e.d.requests(), 2);
}

/// A proxy with one listener (`listener_extra` in its table, a catch-all route to cluster `web`) and cluster
/// `web` made of `cluster` lines.
fn simple_proxy(driver: &str, listener_extra: &str, cluster: &str) -> (Proxy, SocketAddr) {
    let port = free_port();
    let proxy = Proxy::start(
        driver,
        &format!(
            r#"
[[listener]]
name = "edge"
bind = "127.0.0.1:{port}"
protocol = "http"
{listener_extra}

[[listener.route]]
cluster = "web"

[[cluster]]
name = "web"
{cluster}
"#
        ),
    );
    (proxy, addr(port))
}

/// Listener switches for the forwarding headers: off, and a custom Via name.
fn forwarding_options(driver: &str) {
    let up = HttpUpstream::start("web");
    let (_proxy, listener) = simple_proxy(
        driver,
        "x_forwarded_for = false\nx_forwarded_proto = false\nvia = \"edge-1\"\nrequest_id = false",
        &format!("endpoints = [\"{}\"]", up.addr),
    );
    let mut c = Client::connect(listener);
    c.request(
        "GET",
        "/x",
        "h",
        &[("X-Forwarded-For", "10.0.0.9")],
        Body::Empty,
    );
    let seen = up.last().head;
    assert_eq!(
        seen.header_all("x-forwarded-for"),
        vec!["10.0.0.9"],
        "x_forwarded_for = false still appended: {seen:?}"
    );
    assert!(
        seen.header("x-forwarded-proto").is_none(),
        "x_forwarded_proto = false still set: {seen:?}"
    );
    assert!(
        seen.header("x-request-id").is_none(),
        "request_id = false still generated one: {seen:?}"
    );
    assert!(
        flat(&seen.header_all("via")).contains(&"1.1 edge-1"),
        "custom via name: {seen:?}"
    );

    let up = HttpUpstream::start("web");
    let (_proxy, listener) = simple_proxy(
        driver,
        "via = false",
        &format!("endpoints = [\"{}\"]", up.addr),
    );
    Client::connect(listener).get("/x", "h");
    let seen = up.last().head;
    assert!(
        seen.header("via").is_none(),
        "via = false still added Via: {seen:?}"
    );
    assert_eq!(
        seen.header_all("x-forwarded-proto"),
        vec!["http"],
        "defaults kept: {seen:?}"
    );
}

both_drivers!(
    host_matching,
    path_matching,
    method_matching,
    header_matching,
    declared_order,
    direct_response,
    no_route_404,
    header_rewrites,
    forwarding_headers,
    hop_by_hop_response,
    route_timeout_504,
    forwarding_options,
);
