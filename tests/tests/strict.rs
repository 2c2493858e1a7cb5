//! Strict HTTP/1 parsing and limits: malformed requests get 400 and never reach the upstream; oversized request
//! lines, heads and bodies get 414/431/413; a slow head gets 408; broken upstream responses and refused
//! connections get 502. Every error response closes the connection.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringmesh_tests::{
    addr, both_drivers, free_port, raw_exchange, Blackhole, Client, HttpUpstream, Proxy,
};

struct Env {
    _proxy: Proxy,
    _blackhole: Blackhole,
    listener: SocketAddr,
    up: HttpUpstream,
}

fn env(driver: &str) -> Env {
    let up = HttpUpstream::start("web");
    let port = free_port();
    let dead = addr(free_port());
    let blackhole = Blackhole::start();
    let proxy = Proxy::start(
        driver,
        &format!(
            r#"
[[listener]]
name = "edge"
bind = "127.0.0.1:{port}"
protocol = "http"
max_request_line = "1KiB"
max_header_bytes = "4KiB"
max_headers = 20
header_read_timeout = "500ms"

[[listener.route]]
path_prefix = "/small/"
max_body = 1024
cluster = "web"

[[listener.route]]
path_prefix = "/dead/"
cluster = "dead"

[[listener.route]]
path_prefix = "/blackhole/"
cluster = "blackhole"

[[listener.route]]
cluster = "web"

[[cluster]]
name = "web"
endpoints = ["{}"]

[[cluster]]
name = "dead"
connect_timeout = "1s"
endpoints = ["{dead}"]

[[cluster]]
name = "blackhole"
connect_timeout = "200ms"
endpoints = ["{}"]
"#,
            up.addr, blackhole.addr
        ),
    );
    Env {
        _blackhole: blackhole,
        _proxy: proxy,
        listener: addr(port),
        up,
    }
}

/// Sends `raw` on a fresh connection, expects `status`, then expects the connection to be closed.
fn expect_error(e: &Env, name: &str, raw: &[u8], status: u16) {
    let (mut c, r) = raw_exchange(e.listener, raw);
    let r = r
        .unwrap_or_else(|err| panic!("{name}: no {status} response: {err}\nsent: {:?}", show(raw)));
    assert_eq!(
        r.status,
        status,
        "{name}: sent {:?}, got {} {:?}",
        show(raw),
        r.status,
        r.body_str()
    );
    assert!(
        c.closed_within(Duration::from_secs(3)),
        "{name}: connection not closed after the {status}"
    );
}

fn show(raw: &[u8]) -> String {
    String::from_utf8_lossy(&raw[..raw.len().min(300)]).into_owned()
}

const MALFORMED: &[(&str, &[u8])] = &[
    (
        "CL and TE",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    ("duplicate differing CL", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
    ("CL list with differing values", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\nhello!"),
    ("CL with plus sign", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello"),
    ("CL not a number", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n"),
    ("TE final coding not chunked", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
    ("TE unknown coding", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"),
    ("chunked twice in one line", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"),
    (
        "chunked twice in two lines",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n  b\r\n\r\n"),
    ("space before colon", b"GET / HTTP/1.1\r\nHost: h\r\nX-Space : a\r\n\r\n"),
    ("bare LF line ending", b"GET / HTTP/1.1\r\nHost: h\nX-A: b\r\n\r\n"),
    ("bare LF everywhere", b"GET / HTTP/1.1\nHost: h\n\n"),
    ("bare CR in a value", b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n"),
    ("NUL in a value", b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n"),
    ("missing Host", b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n"),
    ("two Hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    (
        "chunk size overflow",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000000001\r\nx\r\n0\r\n\r\n",
    ),
    ("HTTP/1.0 with TE", b"POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("negative CL", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n"),
    ("space inside a header name", b"GET / HTTP/1.1\r\nHost: h\r\nX Bad: a\r\n\r\n"),
    ("empty header name", b"GET / HTTP/1.1\r\nHost: h\r\n: a\r\n\r\n"),
    ("whitespace before the first header", b"GET / HTTP/1.1\r\n Host: h\r\n\r\n"),
    ("bad method token", b"G@T / HTTP/1.1\r\nHost: h\r\n\r\n"),
    ("target not origin- or absolute-form", b"GET x HTTP/1.1\r\nHost: h\r\n\r\n"),
    ("two spaces in the request line", b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n"),
    ("space in Host", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
];

/// Unusual but valid requests that a strict parser must still accept (so strictness is not over-rejection).
const VALID: &[(&str, &[u8], &str)] = &[
    (
        "TE coding name in upper case",
        b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "abc",
    ),
    ("CL with surrounding whitespace", b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length:  3 \r\n\r\nabc", "abc"),
    ("header names in odd case", b"POST /echo HTTP/1.1\r\nhOsT: h\r\ncontent-LENGTH: 2\r\n\r\nhi", "hi"),
    ("absolute-form target", b"GET http://h/abs HTTP/1.1\r\nHost: h\r\n\r\n", "web GET /abs"),
    ("HTTP/1.0 with Content-Length", b"POST /echo HTTP/1.0\r\nHost: h\r\nContent-Length: 2\r\n\r\nok", "ok"),
    ("tab in a header value", b"GET /tab HTTP/1.1\r\nHost: h\r\nX-A: a\tb\r\n\r\n", "web GET /tab"),
    ("trailer fields after the last chunk", b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-T: 1\r\n\r\n", "hi"),
];

/// Each valid-but-unusual request is forwarded and answered by the upstream.
fn valid_unusual_requests(driver: &str) {
    let e = env(driver);
    let mut failures = Vec::new();
    for (name, raw, body) in VALID {
        let (_c, r) = raw_exchange(e.listener, raw);
        match r {
            Ok(r) if r.status == 200 && r.body_str() == *body => {}
            Ok(r) => failures.push(format!(
                "{name}: got {} {:?}, expected 200 {body:?}",
                r.status,
                r.body_str()
            )),
            Err(err) => failures.push(format!("{name}: no response: {err}")),
        }
    }
    assert!(
        failures.is_empty(),
        "valid requests rejected:\n  {}",
        failures.join("\n  ")
    );
}

/// Each malformed request gets 400, the connection is closed, and the upstream never sees a byte.
fn malformed_requests(driver: &str) {
    let e = env(driver);
    let mut failures = Vec::new();
    for (name, raw) in MALFORMED {
        let (mut c, r) = raw_exchange(e.listener, raw);
        match r {
            Ok(r) if r.status == 400 => {
                if !c.closed_within(Duration::from_secs(3)) {
                    failures.push(format!("{name}: connection not closed after 400"));
                }
            }
            Ok(r) => failures.push(format!(
                "{name}: got {} {:?} (upstream {:?})",
                r.status,
                r.body_str(),
                r.upstream()
            )),
            Err(err) => failures.push(format!("{name}: no response: {err}")),
        }
        if e.up.requests() != 0 || e.up.bytes() != 0 {
            failures.push(format!(
                "{name}: reached the upstream ({} bytes)",
                e.up.bytes()
            ));
            break;
        }
    }
    assert!(
        failures.is_empty(),
        "malformed requests not rejected with 400:\n  {}",
        failures.join("\n  ")
    );
    // A well-formed request still works, so the listener was not simply refusing everything.
    let r = Client::connect(e.listener).get("/", "h");
    assert_eq!((r.status, r.upstream()), (200, "web"));
}

fn request_line_too_long(driver: &str) {
    let e = env(driver);
    let raw = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(2000));
    expect_error(
        &e,
        "request line of 2 KB (limit 1 KiB)",
        raw.as_bytes(),
        414,
    );
    // Just under the limit is fine.
    let raw = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(900));
    let (_c, r) = raw_exchange(e.listener, raw.as_bytes());
    assert_eq!(r.expect("response").status, 200, "900-byte request line");
    assert_eq!(e.up.requests(), 1);
}

fn header_bytes_too_large(driver: &str) {
    let e = env(driver);
    let mut raw = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
    for i in 0..10 {
        raw.push_str(&format!("x-big-{i}: {}\r\n", "v".repeat(500)));
    }
    raw.push_str("\r\n");
    expect_error(
        &e,
        "5 KB head (limit 4 KiB, 12 headers)",
        raw.as_bytes(),
        431,
    );
    assert_eq!(e.up.requests(), 0);
}

fn too_many_headers(driver: &str) {
    let e = env(driver);
    let mut raw = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
    for i in 0..30 {
        raw.push_str(&format!("x-h{i}: v\r\n"));
    }
    raw.push_str("\r\n");
    expect_error(&e, "31 headers (limit 20)", raw.as_bytes(), 431);
    let mut raw = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
    for i in 0..15 {
        raw.push_str(&format!("x-h{i}: v\r\n"));
    }
    raw.push_str("\r\n");
    let (_c, r) = raw_exchange(e.listener, raw.as_bytes());
    assert_eq!(r.expect("response").status, 200, "16 headers (limit 20)");
}

fn body_too_large(driver: &str) {
    let e = env(driver);
    // Declared too large: rejected from the head alone, body never sent, upstream untouched.
    expect_error(
        &e,
        "Content-Length 2048 over max_body 1024",
        b"POST /small/x HTTP/1.1\r\nHost: h\r\nContent-Length: 2048\r\n\r\n",
        413,
    );
    assert_eq!(
        e.up.requests(),
        0,
        "a request over max_body reached the upstream"
    );
    // Same with Expect: the 413 comes instead of 100 Continue.
    let mut c = Client::connect(e.listener);
    c.send(b"POST /small/x HTTP/1.1\r\nHost: h\r\nContent-Length: 2048\r\nExpect: 100-continue\r\n\r\n");
    let first = c
        .try_read_any_response("POST")
        .expect("response to an oversized Expect request");
    assert_eq!(
        first.status, 413,
        "oversized request with Expect: 100-continue got {} first",
        first.status
    );
    assert_eq!(e.up.requests(), 0);
    // Chunked: the limit is found while streaming.
    let body = ringmesh_tests::wire::chunked(&[b'z'; 3000], 1000);
    let mut raw =
        b"POST /small/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    raw.extend_from_slice(&body);
    let (_c, r) = raw_exchange(e.listener, &raw);
    let r = r.expect("response to an oversized chunked body");
    assert_eq!(
        r.status,
        413,
        "3000-byte chunked body over max_body 1024: {}",
        r.body_str()
    );
    // At the limit is fine.
    let r = Client::connect(e.listener).request(
        "POST",
        "/small/echo",
        "h",
        &[],
        ringmesh_tests::Body::Length(&[b'y'; 1024]),
    );
    assert_eq!((r.status, r.body.len()), (200, 1024));
}

fn slow_head_408(driver: &str) {
    let e = env(driver);
    let mut c = Client::connect(e.listener);
    let start = Instant::now();
    c.send(b"GET / HTTP/1.1\r\nHost: h\r\n");
    let r = c
        .try_read_response("GET")
        .expect("408 for an incomplete head");
    let took = start.elapsed();
    assert_eq!(r.status, 408);
    assert!(
        took >= Duration::from_millis(400),
        "408 after only {took:?} (header_read_timeout 500ms)"
    );
    assert!(
        took < Duration::from_secs(5),
        "408 only after {took:?} (header_read_timeout 500ms)"
    );
    assert!(
        c.closed_within(Duration::from_secs(3)),
        "connection not closed after 408"
    );
    assert_eq!(e.up.requests(), 0);
}

fn bad_upstream_502(driver: &str) {
    let e = env(driver);
    let mut failures = Vec::new();
    for kind in [
        "garbage",
        "no-response",
        "truncated-head",
        "no-colon",
        "bad-length",
        "bad-status",
        "dup-length",
    ] {
        let r = Client::connect(e.listener).try_exchange(
            "GET",
            format!("GET /bad/{kind} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes(),
        );
        match r {
            Ok(r) if r.status == 502 => {}
            Ok(r) => failures.push(format!("/bad/{kind}: got {} {:?}", r.status, r.body_str())),
            Err(err) => failures.push(format!("/bad/{kind}: no response: {err}")),
        }
    }
    assert!(
        failures.is_empty(),
        "broken upstream responses not answered with 502:\n  {}",
        failures.join("\n  ")
    );
    // A refused connect is "no healthy upstream", as in Envoy: 503, not 502.
    let r = Client::connect(e.listener).get("/dead/x", "h");
    assert_eq!(r.status, 503, "connect refused: {}", r.body_str());
    // The proxy still serves afterwards.
    let r = Client::connect(e.listener).get("/fine", "h");
    assert_eq!(r.status, 200);
}

/// An endpoint whose connect hangs: 503 once the cluster's connect_timeout (200ms) passes.
fn connect_timeout_503(driver: &str) {
    let e = env(driver);
    let start = Instant::now();
    let r = Client::connect(e.listener).get("/blackhole/x", "h");
    let took = start.elapsed();
    assert_eq!(r.status, 503, "connect timeout: {}", r.body_str());
    assert!(
        took >= Duration::from_millis(150),
        "503 after only {took:?}: the connect did not hang?"
    );
    assert!(
        took < Duration::from_secs(3),
        "503 only after {took:?} (connect_timeout 200ms)"
    );
}

both_drivers!(
    malformed_requests,
    valid_unusual_requests,
    request_line_too_long,
    header_bytes_too_large,
    too_many_headers,
    body_too_large,
    slow_head_408,
    bad_upstream_502,
    connect_timeout_503,
);
