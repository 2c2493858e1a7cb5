//! Circuit breakers, rate limits and fault injection end to end: each breaker limit (`max_requests`,
//! `max_pending_requests`, `max_connections`) answers 503 at once naming itself in `x-ringmesh-overflow` and is
//! counted; a route's token bucket answers 429; a route's fault injection aborts or delays.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ringmesh_tests::web::{closed_loop, mesh, statuses};
use ringmesh_tests::{
    addr, both_drivers, free_port, uring_only, wait_until, Client, FaultRelay, HttpUpstream, Proxy,
};

/// `max_requests = 2` (one worker, so the whole limit is on it) and a slow upstream: of 10 concurrent requests two
/// reach the upstream, the others get 503 with `x-ringmesh-overflow: max_requests`, and the overflow counter
/// matches them.
fn circuit_breaker_max_requests(driver: &str) {
    let (_proxy, listener, _up) = ten_against_a_limit_of_two(driver, "max_requests");
    // The breaker closes again: the next request goes through.
    assert_eq!(Client::connect(listener).get("/after", "h").status, 200);
}

/// A slow upstream behind `limit = 2` (one worker, so the whole limit is on it), and 10 concurrent requests: those
/// that got through reached the upstream (at least two), the others (at least six) were refused at once with 503
/// and `x-ringmesh-overflow: <limit>`, and the overflow counter matches them.
fn ten_against_a_limit_of_two(driver: &str, limit: &str) -> (Proxy, SocketAddr, HttpUpstream) {
    let up = HttpUpstream::start("slow");
    let (proxy, listener) = mesh(
        driver,
        1,
        "",
        &format!("circuit_breaker = {{ {limit} = 2 }}"),
        &[up.addr],
    );
    let results = concurrent_gets(listener, 10, "/delay/800");
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let overflowed = results
        .iter()
        .filter(|r| r.0 == 503 && r.1.as_deref() == Some(limit))
        .count();
    assert_eq!(ok + overflowed, 10, "{results:?}");
    assert!(ok >= 2, "fewer than {limit} got through: {results:?}");
    assert!(overflowed >= 6, "too few overflows: {results:?}");
    assert_eq!(
        up.requests(),
        ok,
        "overflowed requests reached the upstream"
    );
    proxy.wait_metric(
        "ringmesh_circuit_breaker_overflows_total",
        &[("cluster", "web")],
        overflowed as f64,
    );
    (proxy, listener, up)
}

/// `max_pending_requests = 2` (one worker) and an endpoint whose connects hang: two
/// requests wait for a connection, the others are refused at once with 503 and
/// `x-ringmesh-overflow: max_pending_requests`.
fn circuit_breaker_max_pending(driver: &str) {
    let up = HttpUpstream::start("behind");
    let relay = FaultRelay::start(up.addr);
    relay.stall_connects();
    let (proxy, listener) = mesh(
        driver,
        1,
        "",
        "connect_timeout = \"1500ms\"\ncircuit_breaker = { max_pending_requests = 2 }",
        &[relay.addr],
    );
    let started = Instant::now();
    let results = concurrent_gets(listener, 10, "/pending");
    let overflowed = results
        .iter()
        .filter(|r| r.0 == 503 && r.1.as_deref() == Some("max_pending_requests"))
        .count();
    assert!(results.iter().all(|r| r.0 == 503), "{results:?}");
    assert!(overflowed >= 6, "too few pending overflows: {results:?}");
    assert_eq!(up.requests(), 0, "nothing could reach the upstream");
    assert!(
        proxy.metric(
            "ringmesh_circuit_breaker_overflows_total",
            &[("cluster", "web")]
        ) >= overflowed as f64
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A route limited to 50 req/s with a burst of 10 (one worker): of 200 requests sent at once, at most the burst
/// plus what refilled meanwhile pass, the rest get 429, and `ringmesh_rate_limited_total` counts exactly them.
fn route_rate_limit(driver: &str) {
    let up = HttpUpstream::start("limited");
    let (proxy, listener) = mesh(
        driver,
        1,
        "rate_limit = { requests_per_second = 50, burst = 10 }",
        "",
        &[up.addr],
    );
    let start = Instant::now();
    let outcomes = closed_loop(listener, 4, 50, "/limited", None);
    let took = start.elapsed().as_secs_f64();
    let counts = statuses(&outcomes);
    let ok = counts.get(&200).copied().unwrap_or(0);
    let limited = counts.get(&429).copied().unwrap_or(0);
    let allowed = 10.0 + 50.0 * took + 1.0;
    eprintln!("rate limit: {counts:?} in {took:.3}s (allowed at most {allowed:.0})");
    assert_eq!(ok + limited, 200, "{counts:?}");
    assert!(ok >= 10, "not even the burst passed: {counts:?}");
    assert!(
        ok as f64 <= allowed,
        "{ok} passed in {took:.3}s, more than burst + rate allow ({allowed:.0})"
    );
    assert!(limited >= 100, "not mostly 429: {counts:?}");
    assert_eq!(up.requests(), ok, "limited requests reached the upstream");
    proxy.wait_metric(
        "ringmesh_rate_limited_total",
        &[("listener", "edge")],
        limited as f64,
    );
    // The direct route has no limit.
    assert_eq!(Client::connect(listener).get("/alive", "h").status, 200);
}

/// `fault` on routes: a 100 % abort answers 418 `fault injected` and the upstream sees nothing; a 100 % delay of
/// 200 ms holds every request that long before it is forwarded.
fn fault_injection(driver: &str) {
    let up = HttpUpstream::start("faulty");
    let port = free_port();
    let proxy = Proxy::start(
        driver,
        &format!(
            r#"
[[listener]]
name = "edge"
bind = "127.0.0.1:{port}"
protocol = "http"

[[listener.route]]
path_prefix = "/abort/"
cluster = "web"
fault = {{ abort_status = 418, abort_percent = 100 }}

[[listener.route]]
path_prefix = "/slow/"
cluster = "web"
fault = {{ delay = "200ms", delay_percent = 100 }}

[[cluster]]
name = "web"
endpoints = ["{}"]
"#,
            up.addr
        ),
    );
    let listener = addr(port);
    let mut c = Client::connect(listener);
    for i in 0..20 {
        let r = c.get(&format!("/abort/{i}"), "h");
        assert_eq!(r.status, 418, "request {i}: {}", r.body_str());
        assert_eq!(r.body_str().trim_end(), "fault injected");
    }
    assert_eq!(up.requests(), 0, "aborted requests reached the upstream");
    for i in 0..3 {
        let t = Instant::now();
        let r = c.get(&format!("/slow/{i}"), "h");
        let took = t.elapsed();
        assert_eq!(r.status, 200, "{}", r.body_str());
        assert_eq!(r.upstream(), "faulty");
        assert!(
            took >= Duration::from_millis(200),
            "delayed request took only {took:?}"
        );
    }
    assert_eq!(up.requests(), 3);
    proxy.wait_metric(
        "ringmesh_http_responses_total",
        &[("listener", "edge"), ("class", "4xx")],
        20.0,
    );
}

/// `max_connections = 2` (one worker) and a slow upstream: of 10 concurrent requests, those that got one of the two
/// upstream connections go through; the others are refused at once with 503 and `x-ringmesh-overflow:
/// max_connections`, and never more than two connections reach the upstream. Afterwards the pooled connections
/// (still holding their slots) serve new requests.
fn circuit_breaker_max_connections(driver: &str) {
    let (_proxy, listener, up) = ten_against_a_limit_of_two(driver, "max_connections");
    assert!(
        up.connections() <= 2,
        "{} upstream connections",
        up.connections()
    );
    let mut c = Client::connect(listener);
    for i in 0..5 {
        assert_eq!(c.get(&format!("/after/{i}"), "h").status, 200);
    }
    assert!(
        up.connections() <= 2,
        "{} upstream connections",
        up.connections()
    );
}

/// `max_connections = 1` (one worker) over two endpoints in round robin: the connection left idle in one endpoint's
/// pool holds the only slot, so a request for the other endpoint closes it to take the slot instead of failing.
fn idle_connection_gives_up_its_slot(driver: &str) {
    let (a, b) = (HttpUpstream::start("a"), HttpUpstream::start("b"));
    let (_proxy, listener) = mesh(
        driver,
        1,
        "",
        "circuit_breaker = { max_connections = 1 }",
        &[a.addr, b.addr],
    );
    let mut c = Client::connect(listener);
    let mut served = Vec::new();
    for i in 0..6 {
        let r = c.get(&format!("/turn/{i}"), "h");
        assert_eq!(r.status, 200, "request {i}: {}", r.body_str());
        served.push(r.upstream().to_string());
    }
    assert_eq!(served, ["a", "b", "a", "b", "a", "b"]);
    // Each turn needed a new connection, and closed the other endpoint's idle one.
    assert_eq!((a.connections(), b.connections()), (3, 3));
    wait_until(Duration::from_secs(5), "idle connections closed", || {
        a.closed() + b.closed() >= 5
    });
}

/// `clients` connections sending `GET path` at once; (status, `x-ringmesh-overflow`) of each.
fn concurrent_gets(
    listener: std::net::SocketAddr,
    clients: usize,
    path: &str,
) -> Vec<(u16, Option<String>)> {
    let barrier = Arc::new(Barrier::new(clients));
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let barrier = barrier.clone();
            let path = format!("{path}?i={i}");
            std::thread::spawn(move || {
                let mut c = Client::connect(listener);
                barrier.wait();
                let r = c.get(&path, "h");
                (r.status, r.header("x-ringmesh-overflow").map(String::from))
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

both_drivers!(
    circuit_breaker_max_requests,
    circuit_breaker_max_connections,
    idle_connection_gives_up_its_slot,
    route_rate_limit,
    fault_injection,
);

uring_only!(circuit_breaker_max_pending);
