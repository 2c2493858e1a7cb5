//! Timeouts and broken connections end to end: per-try, route and connect timeouts against slow, black-holed,
//! trickling and unreachable endpoints (through a [`FaultRelay`]), and resets before and after the response head.
//! (The header read timeout's 408 is in strict.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ringmesh_tests::web::{closed_loop, cluster_metric, mesh, statuses, Outcome};
use ringmesh_tests::{both_drivers, wait_until, Client, FaultMode, FaultRelay, HttpUpstream};

/// A per-try timeout of 100 ms against an upstream that takes 1 s, two retries: three tries reach the upstream,
/// then 504, long before the upstream would have answered.
fn per_try_timeout_then_504(driver: &str) {
    let up = HttpUpstream::start("sluggish");
    let (proxy, listener) = mesh(
        driver,
        2,
        r#"timeout = "5s"
retry = { attempts = 2, per_try_timeout = "100ms" }"#,
        "",
        &[up.addr],
    );
    let t = Instant::now();
    let r = Client::connect(listener).get("/delay/1000", "h");
    let took = t.elapsed();
    assert_eq!(r.status, 504, "{}", r.body_str());
    assert!(
        took >= Duration::from_millis(300),
        "504 after only {took:?}"
    );
    assert!(took < Duration::from_millis(990), "504 only after {took:?}");
    assert_eq!(up.requests(), 3, "tries that reached the upstream");
    assert!(cluster_metric(&proxy, "ringmesh_upstream_retries_total") >= 2.0);
}

/// The endpoint's connects hang (the relay's listen queue is full): 503 once `connect_timeout` passes, the
/// connect-failure counter moves, and requests go through again once it listens again.
fn connect_timeout_via_relay(driver: &str) {
    let up = HttpUpstream::start("behind");
    let relay = FaultRelay::start(up.addr);
    let (proxy, listener) = mesh(driver, 2, "", r#"connect_timeout = "200ms""#, &[relay.addr]);
    let mut c = Client::connect(listener);
    assert_eq!(c.get("/before", "h").status, 200);
    drop(c);
    relay.stall_connects();
    // Pooled connections still work: make the proxy connect afresh by failing them.
    relay.reset_all();
    let t = Instant::now();
    let r = Client::connect(listener).get("/during", "h");
    let took = t.elapsed();
    assert_eq!(r.status, 503, "{}", r.body_str());
    assert!(
        took >= Duration::from_millis(200),
        "503 after only {took:?}"
    );
    assert!(took < Duration::from_secs(3), "503 only after {took:?}");
    assert!(cluster_metric(&proxy, "ringmesh_upstream_connect_failures_total") >= 1.0);
    relay.reopen();
    wait_until(Duration::from_secs(5), "requests go through again", || {
        Client::connect(listener).get("/after", "h").status == 200
    });
}

/// Two endpoints, one whose relay resets every connection after 20 bytes of a response (inside the head): with
/// `retry = {}` (its default `on` includes `reset`) each such try is retried on the other endpoint, so every request
/// succeeds. Resetting in the middle of a body (after the
/// head went to the client) cannot be retried: the client sees its response cut short, promptly.
fn reset_mid_response(driver: &str) {
    let (good, bad) = (HttpUpstream::start("good"), HttpUpstream::start("bad"));
    let relay = FaultRelay::start(bad.addr);
    relay.set_mode(FaultMode::ResetAfter(20));
    // Nearly every request's first try meets the reset (round robin over two endpoints, and the retry takes the
    // next turn): a budget wide enough for all of them, so it is not what this checks.
    let (proxy, listener) = mesh(
        driver,
        2,
        "retry = {}",
        "retry_budget = { percent = 100, min_per_second = 100 }",
        &[good.addr, relay.addr],
    );
    let outcomes = closed_loop(listener, 2, 50, "/reset", None);
    assert_eq!(
        statuses(&outcomes),
        BTreeMap::from([(200, 100)]),
        "{:?}; retries {}, breaker overflows {}, budget exhausted {}, relay resets {}",
        outcomes
            .iter()
            .filter(|o| o.status != 200)
            .map(Outcome::describe)
            .collect::<Vec<_>>(),
        cluster_metric(&proxy, "ringmesh_upstream_retries_total"),
        cluster_metric(&proxy, "ringmesh_circuit_breaker_overflows_total"),
        cluster_metric(&proxy, "ringmesh_upstream_retries_budget_exhausted_total"),
        relay.resets(),
    );
    assert!(relay.resets() > 0, "the relay never reset a connection");
    assert!(outcomes.iter().all(|o| o.upstream == "good"));
    assert!(outcomes.iter().any(|o| o.attempts == 2));

    // Mid-body: a single endpoint behind the relay, reset after 1000 bytes of a 200,000-byte body.
    let (_proxy2, listener2) = mesh(driver, 2, "", "", &[relay.addr]);
    relay.set_mode(FaultMode::ResetAfter(1000));
    let mut c = Client::connect(listener2);
    let t = Instant::now();
    c.send(b"GET /bytes/200000 HTTP/1.1\r\nHost: h\r\n\r\n");
    match c.try_read_response("GET") {
        Ok(r) => panic!(
            "a complete response through a reset: {} {} bytes",
            r.status,
            r.body.len()
        ),
        Err(e) => assert!(
            t.elapsed() < Duration::from_secs(5),
            "the cut took {:?} to show: {e}",
            t.elapsed()
        ),
    }
}

/// Two endpoints, one behind a relay that accepts and never answers: with a per-try timeout of 100 ms every
/// request that meets it is retried on the other endpoint and succeeds, and outlier detection (timeouts count as
/// gateway failures) ejects the black hole.
fn blackholed_endpoint_per_try_timeout(driver: &str) {
    let (good, hidden) = (HttpUpstream::start("good"), HttpUpstream::start("hidden"));
    let relay = FaultRelay::start(hidden.addr);
    relay.set_mode(FaultMode::Blackhole);
    let (proxy, listener) = mesh(
        driver,
        2,
        r#"retry = { attempts = 2, per_try_timeout = "100ms" }"#,
        "outlier = { consecutive_gateway_failure = 2 }",
        &[good.addr, relay.addr],
    );
    let start = Instant::now();
    let outcomes = closed_loop(listener, 2, 40, "/bh", None);
    let took = start.elapsed();
    assert_eq!(
        statuses(&outcomes),
        BTreeMap::from([(200, 80)]),
        "{:?}",
        outcomes
            .iter()
            .filter(|o| o.status != 200)
            .map(Outcome::describe)
            .collect::<Vec<_>>()
    );
    assert_eq!(hidden.requests(), 0);
    assert!(
        relay.connections() >= 1 && relay.bytes_up() > 0,
        "the black hole saw nothing"
    );
    let timed_out = outcomes.iter().filter(|o| o.attempts > 1).count();
    assert!(timed_out >= 1, "no request met the black hole");
    // Two ejections at most (one per worker) bound the 100 ms waits.
    assert!(
        timed_out <= 4,
        "{timed_out} requests waited for the black hole: not ejected"
    );
    assert!(cluster_metric(&proxy, "ringmesh_outlier_ejections_total") >= 1.0);
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// The upstream's response head trickles in a byte every 20 ms (≈ 2.5 s for the head): the route timeout of 300 ms
/// answers 504 instead of waiting for it.
fn trickling_head_hits_route_timeout(driver: &str) {
    let up = HttpUpstream::start("trickler");
    let relay = FaultRelay::start(up.addr);
    let (_proxy, listener) = mesh(driver, 2, r#"timeout = "300ms""#, "", &[relay.addr]);
    let mut c = Client::connect(listener);
    assert_eq!(c.get("/before", "h").status, 200);
    relay.set_mode(FaultMode::Trickle(Duration::from_millis(20)));
    let t = Instant::now();
    let r = c.get("/trickled", "h");
    let took = t.elapsed();
    assert_eq!(r.status, 504, "{}", r.body_str());
    assert!(
        took >= Duration::from_millis(300),
        "504 after only {took:?}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "504 only after {took:?}"
    );
    assert!(relay.bytes_down() > 0, "nothing trickled");
}

both_drivers!(
    per_try_timeout_then_504,
    connect_timeout_via_relay,
    reset_mid_response,
    blackholed_endpoint_per_try_timeout,
    trickling_head_hits_route_timeout,
);
