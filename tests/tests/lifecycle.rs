//! Process life cycle and admin endpoint: SIGTERM drains (in-flight requests finish, idle keep-alive connections
//! close, new connections are refused, exit 0), drain_timeout bounds the exit, /ready /live /metrics report
//! exactly the traffic sent, and the log names the IO driver.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ringmesh_tests::{addr, both_drivers, free_port, wait_until, Client, HttpUpstream, Proxy};

fn config(port: u16, up: &HttpUpstream, dead: SocketAddr) -> String {
    format!(
        r#"
[[listener]]
name = "edge"
bind = "127.0.0.1:{port}"
protocol = "http"

[[listener.route]]
path_prefix = "/dead/"
cluster = "dead"

[[listener.route]]
path_prefix = "/plain/"
cluster = "web"

[[cluster]]
name = "web"
endpoints = ["{}"]

[[cluster]]
name = "dead"
endpoints = ["{dead}"]
"#,
        up.addr
    )
}

fn start(driver: &str, drain_timeout: &str) -> (Proxy, SocketAddr, HttpUpstream) {
    let up = HttpUpstream::start("web");
    let port = free_port();
    let proxy = Proxy::builder(driver)
        .runtime(&format!("drain_timeout = \"{drain_timeout}\""))
        .start(&config(port, &up, addr(free_port())));
    (proxy, addr(port), up)
}

/// SIGTERM with four requests in flight against a slow upstream: they complete with 200, an idle keep-alive
/// connection is closed, new connections are refused while the drain is still running, /ready turns 503, and the
/// process exits 0 soon after the last response.
fn sigterm_drains_in_flight(driver: &str) {
    let (mut proxy, listener, up) = start(driver, "10s");
    let mut idle = Client::connect(listener);
    assert_eq!(idle.get("/plain/warmup", "h").status, 200);

    let in_flight: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                Client::connect(listener).get(&format!("/plain/delay/2000?i={i}"), "h")
            })
        })
        .collect();
    wait_until(
        Duration::from_secs(5),
        "4 requests reached the slow upstream",
        || up.requests() == 5,
    );
    let term_at = Instant::now();
    proxy.sigterm();

    // New connections are refused while the in-flight requests are still running.
    let mut refused = false;
    while term_at.elapsed() < Duration::from_millis(1500) {
        match TcpStream::connect_timeout(&listener, Duration::from_millis(200)) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                refused = true;
                break;
            }
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    assert!(
        refused,
        "new connections still accepted {:?} after SIGTERM",
        term_at.elapsed()
    );
    assert!(
        proxy.running(),
        "process exited before the in-flight requests finished"
    );
    assert!(
        in_flight.iter().all(|h| !h.is_finished()),
        "in-flight requests finished before the refusal check"
    );

    // The admin endpoint reports the drain.
    match proxy.try_admin_get("/ready") {
        Ok(r) => assert_eq!(r.status, 503, "/ready during drain"),
        Err(e) => panic!("/ready during drain: {e}"),
    }

    // The idle keep-alive connection is closed during the drain.
    assert!(
        idle.closed_within(Duration::from_secs(3)),
        "idle keep-alive connection not closed during the drain"
    );

    for (i, h) in in_flight.into_iter().enumerate() {
        let r = h.join().expect("in-flight client thread");
        assert_eq!(
            (r.status, r.body_str().as_str()),
            (200, "slept 2000"),
            "in-flight request {i}"
        );
    }
    let done_at = Instant::now();
    let status = proxy
        .wait_exit(Duration::from_secs(5))
        .expect("process did not exit after the drain");
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after a clean drain: {status}\n{}",
        proxy.stderr()
    );
    assert!(
        done_at.elapsed() < Duration::from_secs(3),
        "exit took {:?} after the last response",
        done_at.elapsed()
    );
}

/// SIGTERM with only an idle keep-alive connection: it is closed and the process exits 0 promptly, long before a
/// generous drain_timeout.
fn sigterm_idle_exits_promptly(driver: &str) {
    let (mut proxy, listener, _up) = start(driver, "30s");
    let mut idle = Client::connect(listener);
    assert_eq!(idle.get("/plain/x", "h").status, 200);
    let start = Instant::now();
    proxy.sigterm();
    assert!(
        idle.closed_within(Duration::from_secs(3)),
        "idle keep-alive connection not closed after SIGTERM"
    );
    let status = proxy
        .wait_exit(Duration::from_secs(5))
        .expect("idle proxy did not exit within 5s of SIGTERM");
    assert_eq!(status.code(), Some(0), "exit status: {status}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// A request longer than drain_timeout does not keep the process alive.
fn drain_timeout_bounds_exit(driver: &str) {
    let (mut proxy, listener, up) = start(driver, "1s");
    let slow = std::thread::spawn(move || {
        Client::connect(listener)
            .try_exchange("GET", b"GET /plain/delay/8000 HTTP/1.1\r\nHost: h\r\n\r\n")
    });
    wait_until(
        Duration::from_secs(5),
        "the slow request reached the upstream",
        || up.requests() == 1,
    );
    let start = Instant::now();
    proxy.sigterm();
    let status = proxy.wait_exit(Duration::from_secs(4));
    assert!(
        status.is_some(),
        "still running {:?} after SIGTERM with drain_timeout 1s",
        start.elapsed()
    );
    assert!(
        start.elapsed() >= Duration::from_millis(800),
        "exited after {:?}, before drain_timeout",
        start.elapsed()
    );
    let r = slow.join().expect("slow client thread");
    assert!(
        !matches!(&r, Ok(r) if r.status == 200),
        "a request cut off by the drain cannot have succeeded: {r:?}"
    );
}

/// /live, /ready and /metrics after a known amount of traffic.
fn admin_and_metrics(driver: &str) {
    let (proxy, listener, up) = start(driver, "10s");
    assert_eq!(proxy.admin_get("/live").status, 200);
    assert_eq!(proxy.admin_get("/ready").status, 200);
    let edge = [("listener", "edge")];
    let class = |c| [("listener", "edge"), ("class", c)];
    let base_requests = proxy.metric("ringmesh_http_requests_total", &edge);
    let base_conns = proxy.metric("ringmesh_downstream_connections_total", &edge);
    let base_2xx = proxy.metric("ringmesh_http_responses_total", &class("2xx"));
    let base_4xx = proxy.metric("ringmesh_http_responses_total", &class("4xx"));
    let base_5xx = proxy.metric("ringmesh_http_responses_total", &class("5xx"));

    let mut c1 = Client::connect(listener);
    for i in 0..5 {
        assert_eq!(c1.get(&format!("/plain/{i}"), "h").status, 200);
    }
    assert_eq!(c1.get("/no/route", "h").status, 404);
    let mut c2 = Client::connect(listener);
    // Refused connect: the exact status (502) is checked in strict.rs; here it only has to be a 5xx.
    let dead = c2.get("/dead/x", "h").status;
    assert!(
        (500..600).contains(&dead),
        "request to a dead endpoint got {dead}"
    );
    drop(c2);
    let mut c3 = Client::connect(listener);
    assert_eq!(c3.get("/plain/c3", "h").status, 200);

    let total =
        |name: &str, labels: &[(&str, &str)], want: f64| proxy.wait_metric(name, labels, want);
    total("ringmesh_http_requests_total", &edge, base_requests + 8.0);
    total(
        "ringmesh_http_responses_total",
        &class("2xx"),
        base_2xx + 6.0,
    );
    total(
        "ringmesh_http_responses_total",
        &class("4xx"),
        base_4xx + 1.0,
    );
    total(
        "ringmesh_http_responses_total",
        &class("5xx"),
        base_5xx + 1.0,
    );
    total(
        "ringmesh_downstream_connections_total",
        &edge,
        base_conns + 3.0,
    );
    // c1 and c3 are open; c2 was dropped by the client.
    total("ringmesh_downstream_connections_active", &edge, 2.0);
    total(
        "ringmesh_upstream_requests_total",
        &[("cluster", "web")],
        6.0,
    );
    total(
        "ringmesh_upstream_connections_total",
        &[("cluster", "web")],
        up.connections() as f64,
    );
    assert!(
        up.connections() <= 2,
        "two client connections opened {} upstream connections",
        up.connections()
    );
    let failures = proxy.metric(
        "ringmesh_upstream_connect_failures_total",
        &[("cluster", "dead")],
    );
    assert!(
        failures >= 1.0,
        "connect failures to the dead cluster: {failures}\n{}",
        proxy.metrics()
    );
    assert_eq!(
        proxy.metric(
            "ringmesh_upstream_connect_failures_total",
            &[("cluster", "web")]
        ),
        0.0
    );

    drop(c1);
    drop(c3);
    total("ringmesh_downstream_connections_active", &edge, 0.0);
    // Every sample line is `name{labels} value` (Prometheus text format).
    let text = proxy.metrics();
    for line in text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').unwrap_or((line, ""));
        let name = series.split('{').next().unwrap_or("");
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
            && !name.starts_with(|ch: char| ch.is_ascii_digit());
        let labels_ok = !series.contains('{') || series.ends_with('}');
        assert!(
            name_ok && labels_ok && value.parse::<f64>().is_ok(),
            "not a Prometheus sample line: {line:?}"
        );
    }
}

/// The log says which IO driver runs.
fn driver_is_logged(driver: &str) {
    let (proxy, _listener, _up) = start(driver, "10s");
    let log = proxy.stderr().to_lowercase();
    let (names, others): (&[&str], &[&str]) = if driver == "uring" {
        (&["uring"], &["epoll", "legacy"])
    } else {
        (&["epoll", "legacy"], &["io_uring"])
    };
    assert!(
        names.iter().any(|n| log.contains(n)),
        "stderr does not name the {driver} driver:\n{log}"
    );
    // An explicit --driver must not silently fall back to the other one.
    assert!(
        !others.iter().any(|n| log.contains(n)),
        "--driver {driver} but stderr names another driver:\n{log}"
    );
}

/// SIGINT drains like SIGTERM.
fn sigint_exits_cleanly(driver: &str) {
    let (mut proxy, listener, _up) = start(driver, "30s");
    let mut c = Client::connect(listener);
    assert_eq!(c.get("/plain/x", "h").status, 200);
    proxy.sigint();
    assert!(
        c.closed_within(Duration::from_secs(3)),
        "idle keep-alive connection not closed after SIGINT"
    );
    let status = proxy
        .wait_exit(Duration::from_secs(5))
        .expect("no exit within 5s of SIGINT");
    assert_eq!(status.code(), Some(0), "exit status after SIGINT: {status}");
}

fn reload_config(up: &HttpUpstream, port: u16, version: &str, cluster: &str) -> String {
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
cluster = "{cluster}"

[[cluster]]
name = "web"
endpoints = ["{}"]
"#,
        up.addr
    )
}

/// SIGHUP reloads the file: a keep-alive connection sees the new table on its next request; an invalid file is
/// rejected and the old table keeps serving.
fn sighup_reload(driver: &str) {
    let up = HttpUpstream::start("web");
    let port = free_port();
    let mut proxy = Proxy::start(driver, &reload_config(&up, port, "v1", "web"));
    let listener = addr(port);
    let mut c = Client::connect(listener);
    assert_eq!(c.get("/version", "h").body_str(), "v1");
    let generation = proxy.metric("ringmesh_table_generation", &[]);

    proxy.rewrite_config(&reload_config(&up, port, "v2", "web"));
    proxy.sighup();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = c.get("/version", "h");
        assert_eq!(r.status, 200, "during reload: {}", r.body_str());
        if r.body_str() == "v2" {
            break;
        }
        assert_eq!(r.body_str(), "v1");
        assert!(
            Instant::now() < deadline,
            "still serving v1 5s after SIGHUP\n{}",
            proxy.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        Client::connect(listener).get("/version", "h").body_str(),
        "v2",
        "new connection after reload"
    );
    assert_eq!(c.get("/anything", "h").upstream(), "web");
    proxy.wait_metric("ringmesh_table_generation", &[], generation + 1.0);

    // An invalid file: rejected with its error logged, v2 keeps serving, the process keeps running.
    proxy.rewrite_config(&reload_config(&up, port, "v3", "nope"));
    proxy.sighup();
    wait_until(
        Duration::from_secs(5),
        "the rejected reload was logged",
        || proxy.stderr().contains("\"nope\""),
    );
    assert!(proxy.running(), "an invalid reload stopped the process");
    assert_eq!(
        c.get("/version", "h").body_str(),
        "v2",
        "old table replaced by an invalid one"
    );
    assert_eq!(proxy.admin_get("/ready").status, 200);
    assert_eq!(
        proxy.metric("ringmesh_table_generation", &[]),
        generation + 1.0
    );
}

/// max_connections per worker: with one worker and a limit of 2, a third connection is closed at once; after
/// one closes, new connections are served again.
fn max_connections(driver: &str) {
    let up = HttpUpstream::start("web");
    let port = free_port();
    let proxy = Proxy::builder(driver).workers(1).start(&format!(
        r#"
[[listener]]
name = "edge"
bind = "127.0.0.1:{port}"
protocol = "http"
max_connections = 2

[[listener.route]]
cluster = "web"

[[cluster]]
name = "web"
endpoints = ["{}"]
"#,
        up.addr
    ));
    let listener = addr(port);
    let mut c1 = Client::connect(listener);
    let mut c2 = Client::connect(listener);
    assert_eq!(c1.get("/1", "h").status, 200);
    assert_eq!(c2.get("/2", "h").status, 200);
    let (_c3, r) = ringmesh_tests::raw_exchange(listener, b"GET /3 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(
        r.is_err(),
        "third connection over max_connections = 2 was served: {r:?}"
    );
    assert_eq!(up.requests(), 2);
    drop(c1);
    wait_until(
        Duration::from_secs(5),
        "a connection is accepted again",
        || matches!(ringmesh_tests::raw_exchange(listener, b"GET /4 HTTP/1.1\r\nHost: h\r\n\r\n").1, Ok(r) if r.status == 200),
    );
    assert_eq!(
        c2.get("/2b", "h").status,
        200,
        "existing connection still served"
    );
    drop(proxy);
}

both_drivers!(
    sigterm_drains_in_flight,
    sigterm_idle_exits_promptly,
    drain_timeout_bounds_exit,
    admin_and_metrics,
    driver_is_logged,
    sigint_exits_cleanly,
    sighup_reload,
    max_connections,
);
