//! Resilience end to end: retries with outlier ejection against a flaky endpoint, p2c_ewma and least_request
//! avoiding a slow one, an endpoint killed under load, a retry storm held by the retry budget, the circuit breaker,
//! ring hash and Maglev stickiness across a reload, rate limits, fault injection, per-try, route and connect
//! timeouts (black-holed, trickling and unreachable endpoints), resets mid-response, active health checks.
//! (The header read timeout's 408 is in strict.rs.)
//!
//! Upstreams are real ([`HttpUpstream`], with [`ringmesh_tests::upstream::Knobs`] for failures and delays);
//! network faults come from a [`FaultRelay`] between the proxy and an upstream. Counts are taken at the upstreams
//! (what really reached them) and compared with the proxy's `/metrics`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ringmesh_tests::load::exclusive;
use ringmesh_tests::{
    addr, both_drivers, free_port, uring_only, wait_until, Client, FaultMode, FaultRelay,
    HttpUpstream, Load, LoadSpec, Proxy,
};

/// The listener every test uses: a `/alive` direct route (to show the proxy still answers), then `route` lines on
/// a catch-all route to cluster `web`, made of `endpoints` and the `cluster` lines.
fn config(port: u16, route: &str, cluster: &str, endpoints: &[SocketAddr]) -> String {
    let endpoints: Vec<String> = endpoints.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        r#"
[[listener]]
name = "edge"
bind = "127.0.0.1:{port}"
protocol = "http"

[[listener.route]]
path = "/alive"
direct = {{ status = 200, body = "alive" }}

[[listener.route]]
name = "main"
cluster = "web"
{route}

[[cluster]]
name = "web"
endpoints = [{}]
{cluster}
"#,
        endpoints.join(", ")
    )
}

/// Starts a proxy with `workers` workers running [`config`]; returns it and its listener.
fn mesh(
    driver: &str,
    workers: usize,
    route: &str,
    cluster: &str,
    endpoints: &[SocketAddr],
) -> (Proxy, SocketAddr) {
    let port = free_port();
    let proxy = Proxy::builder(driver)
        .workers(workers)
        .start(&config(port, route, cluster, endpoints));
    (proxy, addr(port))
}

fn cluster_metric(proxy: &Proxy, name: &str) -> f64 {
    proxy.metric(name, &[("cluster", "web")])
}

/// How one request of a closed-loop run ended.
#[derive(Clone, Debug)]
struct Outcome {
    /// 0: no response (see `error`).
    status: u16,
    /// `x-ringmesh-attempts`, 1 when absent.
    attempts: u32,
    upstream: String,
    /// The start of the body of a response other than 200.
    body: String,
    error: Option<String>,
}

impl Outcome {
    fn failed(error: String) -> Outcome {
        Outcome {
            status: 0,
            attempts: 0,
            upstream: String::new(),
            body: String::new(),
            error: Some(error),
        }
    }

    fn describe(&self) -> String {
        match &self.error {
            Some(e) => format!("no response: {e}"),
            None => format!(
                "{} from {:?} after {} tries: {:?}",
                self.status, self.upstream, self.attempts, self.body
            ),
        }
    }
}

/// `threads` clients, each on its own keep-alive connection (replaced after an error or a `Connection: close`),
/// sending `GET path` with `headers` back to back, `per_thread` times each (or until `stop` is set).
fn closed_loop(
    listener: SocketAddr,
    threads: usize,
    per_thread: usize,
    path: &str,
    stop: Option<Arc<AtomicBool>>,
) -> Vec<Outcome> {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let path = path.to_string();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut out = Vec::with_capacity(per_thread.min(100_000));
                let mut client: Option<Client> = None;
                let request = format!("GET {path} HTTP/1.1\r\nHost: h\r\nx-thread: {t}\r\n\r\n");
                for _ in 0..per_thread {
                    if stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) {
                        break;
                    }
                    let mut c = match client.take() {
                        Some(c) => c,
                        None => match Client::try_connect(listener) {
                            Ok(c) => c,
                            Err(e) => {
                                out.push(Outcome::failed(format!("connect: {e}")));
                                continue;
                            }
                        },
                    };
                    match c.try_exchange("GET", request.as_bytes()) {
                        Ok(r) => {
                            out.push(Outcome {
                                status: r.status,
                                attempts: r
                                    .header("x-ringmesh-attempts")
                                    .map(|a| a.parse().expect("numeric x-ringmesh-attempts"))
                                    .unwrap_or(1),
                                upstream: r.upstream().to_string(),
                                body: if r.status == 200 {
                                    String::new()
                                } else {
                                    r.body_str().chars().take(200).collect()
                                },
                                error: None,
                            });
                            if !r.has_token("connection", "close") {
                                client = Some(c);
                            }
                        }
                        Err(e) => out.push(Outcome::failed(e.to_string())),
                    }
                }
                out
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().expect("client thread"))
        .collect()
}

fn statuses(outcomes: &[Outcome]) -> BTreeMap<u16, usize> {
    let mut m = BTreeMap::new();
    for o in outcomes {
        *m.entry(o.status).or_insert(0) += 1;
    }
    m
}

/// Resident set size of a process, from /proc/PID/status.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kb * 1024
}

// ---------------------------------------------------------------------------------------------------------------
// Retries and outlier detection

/// Three endpoints, one answering 503 to half of its requests. Retries on gateway errors hide its failures from
/// clients (≥ 99.9 % of 20,000 requests succeed) and outlier detection ejects it within a second, after which it
/// gets no more requests (the ejection lasts 30 s, longer than the test).
fn flaky_endpoint_retried_and_ejected(driver: &str) {
    let _serial = exclusive();
    let ups: Vec<HttpUpstream> = ["good1", "good2", "flaky"]
        .iter()
        .map(|n| HttpUpstream::start(n))
        .collect();
    ups[2].set_fail_percent(50);
    let (proxy, listener) = mesh(
        driver,
        2,
        r#"retry = { attempts = 2, on = ["gateway-error"] }"#,
        r#"outlier = { consecutive_gateway_failure = 3, base_ejection_time = "30s", max_ejection_percent = 50 }"#,
        &ups.iter().map(|u| u.addr).collect::<Vec<_>>(),
    );
    let start = Instant::now();
    let load = std::thread::spawn(move || closed_loop(listener, 4, 5000, "/flaky", None));

    // The ejection shows in /metrics within a second.
    let mut ejected_at = None;
    while start.elapsed() < Duration::from_secs(1) {
        if cluster_metric(&proxy, "ringmesh_outlier_ejections_total") >= 1.0 {
            ejected_at = Some(start.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let ejected_at = ejected_at.unwrap_or_else(|| {
        panic!(
            "no outlier ejection within 1s (flaky endpoint saw {} requests)\n{}",
            ups[2].requests(),
            proxy.metrics()
        )
    });
    // Every worker with traffic ejects it on its own: give them until 1.5 s, then its count must stay put.
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(start.elapsed()));
    let flaky_at_settle = ups[2].requests();
    let still_running = !load.is_finished();
    let outcomes = load.join().expect("load");
    let took = start.elapsed();
    let flaky_total = ups[2].requests();

    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.status != 200).collect();
    let retried = outcomes.iter().filter(|o| o.attempts > 1).count();
    let summary = format!(
        "{} requests in {took:?}: statuses {:?}, {retried} retried; ejected by {ejected_at:?}; flaky endpoint saw \
         {flaky_at_settle} requests by 1.5s and {flaky_total} in all; good ones {} and {}; ejections {}, retries {}, \
         breaker overflows {}; failures: {:?}",
        outcomes.len(),
        statuses(&outcomes),
        ups[0].requests(),
        ups[1].requests(),
        cluster_metric(&proxy, "ringmesh_outlier_ejections_total"),
        cluster_metric(&proxy, "ringmesh_upstream_retries_total"),
        cluster_metric(&proxy, "ringmesh_circuit_breaker_overflows_total"),
        failed.iter().take(5).map(|o| o.describe()).collect::<Vec<_>>(),
    );
    eprintln!("{summary}");
    assert_eq!(outcomes.len(), 20_000, "{summary}");
    assert!(failed.len() <= 20, "success rate below 99.9%: {summary}");
    assert!(retried > 0, "no response says it was retried: {summary}");
    assert!(
        outcomes
            .iter()
            .all(|o| o.status != 200 || o.upstream != "flaky" || o.attempts == 1),
        "a retried request was answered by the flaky endpoint again: {summary}"
    );
    if still_running {
        assert_eq!(
            flaky_total, flaky_at_settle,
            "the ejected endpoint kept getting requests: {summary}"
        );
    }
    assert!(
        cluster_metric(&proxy, "ringmesh_upstream_retries_total") >= retried as f64,
        "retries metric below the retried responses: {summary}"
    );
}

/// Three endpoints, one 20 ms slower than the others: p2c_ewma sends it under 10 % of 3,000 requests made by 8
/// concurrent clients.
fn p2c_ewma_avoids_slow_endpoint(driver: &str) {
    let (counts, share) = slow_endpoint_share(driver, "p2c_ewma", 20, 375, "/p2c");
    assert!(
        share < 0.10,
        "the slow endpoint got {:.1}% of the requests: {counts:?}",
        share * 100.0
    );
}

/// Three endpoints behind `balance`, the third `delay_ms` slower, and 8 closed-loop clients sending
/// `per_client` requests each: every request succeeds; returns the request count at each upstream and
/// the slow one's share.
fn slow_endpoint_share(
    driver: &str,
    balance: &str,
    delay_ms: u64,
    per_client: usize,
    path: &str,
) -> (Vec<usize>, f64) {
    let _serial = exclusive();
    let ups: Vec<HttpUpstream> = ["fast1", "fast2", "slow"]
        .iter()
        .map(|n| HttpUpstream::start(n))
        .collect();
    ups[2].set_delay(Duration::from_millis(delay_ms));
    let (_proxy, listener) = mesh(
        driver,
        2,
        "",
        &format!("balance = \"{balance}\""),
        &ups.iter().map(|u| u.addr).collect::<Vec<_>>(),
    );
    let outcomes = closed_loop(listener, 8, per_client, path, None);
    let counts: Vec<usize> = ups.iter().map(HttpUpstream::requests).collect();
    let sent = 8 * per_client;
    let total: usize = counts.iter().sum();
    let share = counts[2] as f64 / sent as f64;
    eprintln!(
        "{balance}: requests at fast1/fast2/slow {counts:?}, slow share {:.2}%",
        share * 100.0
    );
    assert_eq!(statuses(&outcomes), BTreeMap::from([(200, sent)]));
    assert_eq!(total, sent);
    (counts, share)
}

/// One of three endpoints dies (its relay refuses connects and resets every open connection) under steady load
/// with retries on: requests in flight on it are retried elsewhere (GETs without a body can be replayed), so at
/// most those fail, and none fails from a second after the kill on (it is ejected).
fn killed_endpoint_under_load(driver: &str) {
    let _serial = exclusive();
    let ups: Vec<HttpUpstream> = ["a", "b", "doomed"]
        .iter()
        .map(|n| HttpUpstream::start(n))
        .collect();
    let relays: Vec<FaultRelay> = ups.iter().map(|u| FaultRelay::start(u.addr)).collect();
    let (proxy, listener) = mesh(
        driver,
        2,
        r#"retry = { attempts = 2, on = ["connect-failure", "reset", "gateway-error"] }"#,
        r#"outlier = { consecutive_gateway_failure = 3, base_ejection_time = "30s", max_ejection_percent = 50 }"#,
        &relays.iter().map(|r| r.addr).collect::<Vec<_>>(),
    );
    let threads = 8;
    let mut spec = LoadSpec::new(listener)
        .rate(400)
        .duration(Duration::from_secs(4));
    spec.threads = threads;
    // Each request takes a few ms at the upstream, so some are in flight at the kill.
    spec.path = "/delay/5".to_string();
    let load = Load::start(spec);
    std::thread::sleep(Duration::from_millis(1500));
    let doomed_before = ups[2].requests();
    let kill_at = Instant::now();
    let reset = relays[2].kill();
    let report = load.wait();
    let doomed_after = ups[2].requests();

    let failures = report.failures();
    let late: Vec<_> = failures
        .iter()
        .filter(|s| s.sent >= kill_at + Duration::from_secs(1))
        .copied()
        .collect();
    let before: Vec<_> = failures
        .iter()
        .filter(|s| s.done < kill_at)
        .copied()
        .collect();
    let summary = format!(
        "{} failed of {} sent; doomed endpoint saw {doomed_before} requests before the kill ({reset} connections \
         reset), {doomed_after} in all; ejections {}, retries {}, breaker overflows {}, budget exhausted {}; p99 \
         latency {:?}\n{}",
        failures.len(),
        report.samples.len(),
        cluster_metric(&proxy, "ringmesh_outlier_ejections_total"),
        cluster_metric(&proxy, "ringmesh_upstream_retries_total"),
        cluster_metric(&proxy, "ringmesh_circuit_breaker_overflows_total"),
        cluster_metric(&proxy, "ringmesh_upstream_retries_budget_exhausted_total"),
        report.latency(99.0),
        report.describe(&failures, 5),
    );
    eprintln!("{summary}");
    assert!(
        doomed_before > 50,
        "the doomed endpoint had no traffic: {summary}"
    );
    assert!(
        before.is_empty(),
        "failures before the kill: {summary}\n{}",
        report.describe(&before, 10)
    );
    assert!(
        failures.len() <= threads,
        "more failures than requests in flight at the kill: {summary}\n{}",
        report.describe(&failures, 20)
    );
    assert!(
        late.is_empty(),
        "failures a second after the kill: {summary}\n{}",
        report.describe(&late, 20)
    );
    assert!(
        report.ok_ratio() >= 0.95,
        "the load was not real: {summary}"
    );
    assert!(
        cluster_metric(&proxy, "ringmesh_outlier_ejections_total") >= 1.0,
        "the dead endpoint was never ejected: {summary}"
    );
}

/// Every endpoint answers 503. Retries (2 per request) are held by the retry budget (20 % of requests plus a floor
/// of 5 per second): the upstreams see at most requests × 1.2 plus the floor, the budget-exhausted counter moves,
/// the proxy's memory stays bounded and it keeps answering.
///
/// The floor is checked as implemented (dataplane/src/resilience/retry.rs, the Finagle/Linkerd token model): a
/// reserve of `min_per_second` × a 10 s window, `min_per_second` split between workers rounded up (3 + 3 here). Read
/// as a per-second rate, as docs/config.md puts it, it allows less: see [`retry_budget_floor_per_second`].
fn retry_storm_held_by_budget(driver: &str) {
    let _serial = exclusive();
    let ups: Vec<HttpUpstream> = ["x", "y", "z"]
        .iter()
        .map(|n| HttpUpstream::start(n))
        .collect();
    let workers = 2;
    let (proxy, listener) = mesh(
        driver,
        workers,
        r#"retry = { attempts = 2, on = ["gateway-error"], backoff_base = "1ms", backoff_max = "5ms" }"#,
        "retry_budget = { percent = 20, min_per_second = 5 }",
        &ups.iter().map(|u| u.addr).collect::<Vec<_>>(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || closed_loop(listener, 8, usize::MAX, "/status/503", Some(stop)))
    };
    let mut peak_rss = 0;
    while start.elapsed() < Duration::from_secs(3) {
        peak_rss = peak_rss.max(rss_bytes(proxy.pid()));
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::SeqCst);
    let outcomes = load.join().expect("load");
    let duration = start.elapsed().as_secs_f64();
    peak_rss = peak_rss.max(rss_bytes(proxy.pid()));

    let requests = outcomes.len() as f64;
    let attempts: usize = ups.iter().map(HttpUpstream::requests).sum();
    let exhausted = cluster_metric(&proxy, "ringmesh_upstream_retries_budget_exhausted_total");
    let retries = cluster_metric(&proxy, "ringmesh_upstream_retries_total");
    let per_second_bound = requests * 1.2 + 5.0 * duration;
    let floor = (5.0 / workers as f64).ceil() * workers as f64 * duration.max(10.0);
    // Slack: a few requests' worth of rounding (deposits are kept in whole milli-tokens per time slice).
    let bound = requests * 1.2 + floor + 10.0 + requests * 0.002;
    let summary = format!(
        "{requests} requests in {duration:.1}s, statuses {:?}; {attempts} attempts at the upstreams ({:.3} per \
         request; bound {bound:.0}, {per_second_bound:.0} with the floor read per second), retries {retries}, \
         budget exhausted {exhausted}, peak RSS {} MiB",
        statuses(&outcomes),
        attempts as f64 / requests,
        peak_rss >> 20,
    );
    eprintln!("{summary}");
    assert!(
        requests > 100.0,
        "too few requests to mean anything: {summary}"
    );
    assert!(
        outcomes.iter().all(|o| o.status == 503),
        "expected only 503s: {summary}"
    );
    assert!(exhausted > 0.0, "the retry budget never ran out: {summary}");
    assert_eq!(
        retries + requests,
        attempts as f64,
        "retries metric + requests != attempts seen upstream: {summary}"
    );
    assert!(
        attempts as f64 <= bound,
        "retries not held by the budget: {summary}"
    );
    assert!(peak_rss < 200 << 20, "RSS grew too far: {summary}");
    // Still answering, promptly.
    let t = Instant::now();
    let mut c = Client::connect(listener);
    assert_eq!(c.get("/alive", "h").status, 200);
    assert_eq!(c.get("/status/503", "h").status, 503);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "slow after the storm: {:?}",
        t.elapsed()
    );
    assert!(proxy.is_ready());
}

/// docs/config.md: retries are limited to `percent` of the requests "plus `min_per_second`", a floor "allowed
/// whatever the request rate". With `percent = 0` and `min_per_second = 5`, one second of failing requests should
/// then be retried about 5 times (6 with a second's rounding).
fn retry_budget_floor_per_second(driver: &str) {
    let up = HttpUpstream::start("down");
    let (proxy, listener) = mesh(
        driver,
        1,
        r#"retry = { attempts = 2, on = ["gateway-error"], backoff_base = "1ms", backoff_max = "2ms" }"#,
        "retry_budget = { percent = 0, min_per_second = 5 }",
        &[up.addr],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || closed_loop(listener, 2, usize::MAX, "/status/503", Some(stop)))
    };
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::SeqCst);
    let outcomes = load.join().expect("load");
    let duration = start.elapsed().as_secs_f64();
    let retries = cluster_metric(&proxy, "ringmesh_upstream_retries_total");
    // docs/config.md: the floor is a reserve of min_per_second × 10 (the 10 s window),
    // which a quiet cluster may spend at once; with percent = 0 nothing refills it
    // within the second.
    let allowed = 5.0 * 10.0 + 1.0;
    assert!(
        retries <= allowed,
        "{retries} retries in {duration:.2}s ({} requests, {} at the upstream) with percent = 0 and \
         min_per_second = 5: at most {allowed} expected",
        outcomes.len(),
        up.requests()
    );
    assert!(retries >= 1.0, "the reserve allows some retries: {retries}");
}

// ---------------------------------------------------------------------------------------------------------------
// Circuit breaker, rate limits, fault injection

/// `max_requests = 2` (one worker, so the whole limit is on it) and a slow upstream: of 10 concurrent requests two
/// reach the upstream, the others get 503 with `x-ringmesh-overflow: max_requests`, and the overflow counter
/// matches them.
fn circuit_breaker_max_requests(driver: &str) {
    let up = HttpUpstream::start("slow");
    let (proxy, listener) = mesh(
        driver,
        1,
        "",
        "circuit_breaker = { max_requests = 2 }",
        &[up.addr],
    );
    let barrier = Arc::new(Barrier::new(10));
    let handles: Vec<_> = (0..10)
        .map(|i| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(listener);
                barrier.wait();
                let r = c.get(&format!("/delay/800?i={i}"), "h");
                (r.status, r.header("x-ringmesh-overflow").map(String::from))
            })
        })
        .collect();
    let results: Vec<(u16, Option<String>)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let overflowed = results
        .iter()
        .filter(|r| r.0 == 503 && r.1.as_deref() == Some("max_requests"))
        .count();
    assert_eq!(ok + overflowed, 10, "{results:?}");
    assert!(ok >= 2, "fewer than max_requests got through: {results:?}");
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
    // The breaker closes again: the next request goes through.
    assert_eq!(Client::connect(listener).get("/after", "h").status, 200);
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
    let barrier = Arc::new(Barrier::new(10));
    let started = Instant::now();
    let handles: Vec<_> = (0..10)
        .map(|i| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(listener);
                barrier.wait();
                let r = c.get(&format!("/pending?i={i}"), "h");
                (r.status, r.header("x-ringmesh-overflow").map(String::from))
            })
        })
        .collect();
    let results: Vec<(u16, Option<String>)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
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

// ---------------------------------------------------------------------------------------------------------------
// Timeouts and broken connections

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

/// `least_request` over three endpoints, one 30 ms slower: with 8 concurrent clients the slow one, whose requests
/// stay in flight longest, gets a small share.
fn least_request_avoids_slow_endpoint(driver: &str) {
    let (counts, share) = slow_endpoint_share(driver, "least_request", 30, 200, "/lr");
    assert!(
        share < 0.20,
        "the slow endpoint got {:.1}% of the requests: {counts:?}",
        share * 100.0
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Consistent hashing

fn hash_config(port: u16, balance: &str, endpoints: &[SocketAddr], version: &str) -> String {
    let list: Vec<String> = endpoints.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        r#"
[[listener]]
name = "edge"
bind = "127.0.0.1:{port}"
protocol = "http"

[[listener.route]]
path = "/version"
direct = {{ status = 200, body = "{version}" }}

[[listener.route]]
cluster = "web"

[[cluster]]
name = "web"
balance = "{balance}"
hash_key = {{ header = "x-user" }}
endpoints = [{}]
"#,
        list.join(", ")
    )
}

/// Which endpoint answers each of `keys` (`x-user: user-N`), over `conns` keep-alive connections in turn.
fn placement(listener: SocketAddr, keys: usize, conns: usize) -> Vec<String> {
    let mut clients: Vec<Client> = (0..conns).map(|_| Client::connect(listener)).collect();
    (0..keys)
        .map(|k| {
            let user = format!("user-{k}");
            let r = clients[k % conns].request(
                "GET",
                "/hash",
                "h",
                &[("x-user", &user)],
                ringmesh_tests::Body::Empty,
            );
            assert_eq!(r.status, 200, "key {k}: {}", r.body_str());
            r.upstream().to_string()
        })
        .collect()
}

/// Ring hash or Maglev on the `x-user` header over 10 endpoints: every key sticks to one endpoint (whichever
/// connection, worker or repetition), keys spread over the endpoints, and after a reload that removes one
/// endpoint, fewer than 20 % of 1,000 keys move (ideally the ~10 % that were on the removed one).
fn consistent_hash(driver: &str, balance: &str) {
    let ups: Vec<HttpUpstream> = (0..10)
        .map(|i| HttpUpstream::start(&format!("e{i}")))
        .collect();
    let addrs: Vec<SocketAddr> = ups.iter().map(|u| u.addr).collect();
    let port = free_port();
    let listener = addr(port);
    let mut proxy = Proxy::start(driver, &hash_config(port, balance, &addrs, "v1"));

    let first = placement(listener, 1000, 4);
    // Again on other connections, in a different order of connections.
    let again = placement(listener, 1000, 3);
    let unstable: Vec<usize> = (0..1000).filter(|&k| first[k] != again[k]).collect();
    assert!(
        unstable.is_empty(),
        "{balance}: {} keys changed endpoint without any change, e.g. user-{}: {} then {}",
        unstable.len(),
        unstable[0],
        first[unstable[0]],
        again[unstable[0]]
    );
    let mut spread: HashMap<&str, usize> = HashMap::new();
    for e in &first {
        *spread.entry(e.as_str()).or_insert(0) += 1;
    }
    eprintln!("{balance}: keys per endpoint {spread:?}");
    assert_eq!(
        spread.len(),
        10,
        "{balance}: not every endpoint got keys: {spread:?}"
    );
    assert!(
        spread.values().all(|&n| n <= 300),
        "{balance}: one endpoint holds too many keys: {spread:?}"
    );

    // Remove e9 and reload.
    proxy.rewrite_config(&hash_config(port, balance, &addrs[..9], "v2"));
    proxy.sighup();
    wait_until(Duration::from_secs(5), "the reload is served", || {
        (0..4).all(|_| Client::connect(listener).get("/version", "h").body_str() == "v2")
    });
    let after = placement(listener, 1000, 4);
    let moved: Vec<usize> = (0..1000).filter(|&k| first[k] != after[k]).collect();
    let on_removed = first.iter().filter(|e| *e == "e9").count();
    let moved_needlessly = moved.iter().filter(|&&k| first[k] != "e9").count();
    eprintln!(
        "{balance}: {} of 1000 keys moved after removing 1 of 10 endpoints ({on_removed} were on it, \
         {moved_needlessly} others moved)",
        moved.len()
    );
    assert!(
        after.iter().all(|e| e != "e9"),
        "{balance}: a key still went to the removed endpoint"
    );
    assert!(
        moved.len() < 200,
        "{balance}: {} of 1000 keys moved after removing 1 of 10 endpoints ({on_removed} were on it)",
        moved.len()
    );
}

fn ring_hash_stickiness(driver: &str) {
    consistent_hash(driver, "ring_hash");
}

fn maglev_stickiness(driver: &str) {
    consistent_hash(driver, "maglev");
}

// ---------------------------------------------------------------------------------------------------------------
// Active health checks

/// HTTP health checks every 200 ms (2 failures to go down, 2 successes to come back): when one endpoint's `/health`
/// starts failing it stops getting traffic within about a second, and it gets traffic again once it recovers.
fn health_check_takes_endpoint_out(driver: &str) {
    let ups: Vec<HttpUpstream> = ["h1", "h2", "sick"]
        .iter()
        .map(|n| HttpUpstream::start(n))
        .collect();
    let (proxy, listener) = mesh(
        driver,
        2,
        "",
        r#"health_check = { protocol = "http", path = "/health", interval = "200ms", timeout = "100ms", unhealthy_threshold = 2, healthy_threshold = 2 }"#,
        &ups.iter().map(|u| u.addr).collect::<Vec<_>>(),
    );
    let sick = &ups[2];
    // Probes arrive.
    wait_until(
        Duration::from_secs(3),
        "the first health checks arrive",
        || sick.requests() > sick.requests_except_health(),
    );
    let mut c = Client::connect(listener);
    let mut traffic = |n: usize| {
        for i in 0..n {
            assert_eq!(c.get(&format!("/t/{i}"), "h").status, 200);
        }
    };
    traffic(60);
    assert!(
        sick.requests_except_health() > 0,
        "no traffic to the sick endpoint before it failed"
    );

    sick.set_health_status(503);
    let failed_at = Instant::now();
    // Down within ~1 s: 2 failed probes 200 ms apart, plus jitter and a probe in flight.
    std::thread::sleep(Duration::from_millis(1000));
    let before = sick.requests_except_health();
    traffic(60);
    assert_eq!(
        sick.requests_except_health(),
        before,
        "the sick endpoint still gets traffic {:?} after its /health failed",
        failed_at.elapsed()
    );
    assert!(cluster_metric(&proxy, "ringmesh_health_check_failures_total") >= 2.0);

    sick.set_health_status(0);
    std::thread::sleep(Duration::from_millis(1000));
    let before = sick.requests_except_health();
    traffic(60);
    assert!(
        sick.requests_except_health() > before,
        "the endpoint got no traffic back a second after it recovered"
    );
}

both_drivers!(
    flaky_endpoint_retried_and_ejected,
    health_check_takes_endpoint_out,
    killed_endpoint_under_load,
    circuit_breaker_max_requests,
    route_rate_limit,
    fault_injection,
    per_try_timeout_then_504,
    connect_timeout_via_relay,
    reset_mid_response,
    blackholed_endpoint_per_try_timeout,
    trickling_head_hits_route_timeout,
    ring_hash_stickiness,
    maglev_stickiness,
);

uring_only!(
    p2c_ewma_avoids_slow_endpoint,
    least_request_avoids_slow_endpoint,
    retry_storm_held_by_budget,
    retry_budget_floor_per_second,
    circuit_breaker_max_pending
);
