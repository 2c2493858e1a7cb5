//! Weighted choices: a route's weighted split between clusters (90/10 over 10,000 requests), endpoint weights in
//! a round-robin cluster, and p2c_ewma spreading over equal endpoints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;

use ringmesh_tests::{addr, both_drivers, free_port, Client, HttpUpstream, Proxy};

/// A route splitting 90/10 between clusters `a` and `b`.
fn split_proxy(driver: &str, a: &HttpUpstream, b: &HttpUpstream) -> (Proxy, SocketAddr) {
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
path_prefix = "/split/"
split = [{{ cluster = "a", weight = 90 }}, {{ cluster = "b", weight = 10 }}]

[[cluster]]
name = "a"
endpoints = ["{}"]

[[cluster]]
name = "b"
endpoints = ["{}"]
"#,
            a.addr, b.addr
        ),
    );
    (proxy, addr(port))
}

/// A proxy whose only route goes to cluster `web`, made of the `cluster` lines.
fn cluster_proxy(driver: &str, cluster: &str) -> (Proxy, SocketAddr) {
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
cluster = "web"

[[cluster]]
name = "web"
{cluster}
"#
        ),
    );
    (proxy, addr(port))
}

/// 10,000 requests on four keep-alive connections: 90 ± 5 % go to cluster a.
fn weighted_split(driver: &str) {
    let (up_a, up_b) = (HttpUpstream::start("a"), HttpUpstream::start("b"));
    let (_proxy, listener) = split_proxy(driver, &up_a, &up_b);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = Client::connect(listener);
                let mut a = 0usize;
                for i in 0..2500 {
                    let r = c.get(&format!("/split/{t}/{i}"), "h");
                    match r.upstream() {
                        "a" => a += 1,
                        "b" => {}
                        other => panic!(
                            "request {i} on connection {t}: status {} from {other:?}",
                            r.status
                        ),
                    }
                }
                a
            })
        })
        .collect();
    let a: usize = threads
        .into_iter()
        .map(|t| t.join().expect("client thread"))
        .sum();
    let share = a as f64 / 100.0;
    assert!(
        (85.0..=95.0).contains(&share),
        "cluster a got {share}% of 10000 requests, expected 90 ± 5"
    );
    assert_eq!(up_a.requests() + up_b.requests(), 10_000);
    assert!(
        up_a.connections() + up_b.connections() <= 16,
        "keep-alive: too many upstream connections"
    );
}

/// Counts which upstream answered `n` requests spread over `conns` keep-alive connections.
fn spread(listener: SocketAddr, conns: usize, n: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    let mut clients: Vec<Client> = (0..conns).map(|_| Client::connect(listener)).collect();
    for i in 0..n {
        let r = clients[i % conns].get(&format!("/spread/{i}"), "h");
        assert_eq!(r.status, 200, "request {i}: {}", r.body_str());
        *counts.entry(r.upstream().to_string()).or_insert(0) += 1;
    }
    counts
}

/// Endpoint weights in a round-robin cluster: weight 1 and weight 3 get 25% and 75%.
fn endpoint_weights(driver: &str) {
    let (u1, u3) = (HttpUpstream::start("w1"), HttpUpstream::start("w3"));
    let (_proxy, listener) = cluster_proxy(
        driver,
        &format!(
            r#"endpoints = ["{}", {{ addr = "{}", weight = 3 }}]"#,
            u1.addr, u3.addr
        ),
    );
    let counts = spread(listener, 4, 800);
    let share = counts.get("w1").copied().unwrap_or(0) as f64 / 8.0;
    assert!(
        (20.0..=30.0).contains(&share),
        "weight-1 endpoint got {share}% (expected 25 ± 5): {counts:?}"
    );
}

/// p2c_ewma over two equal endpoints uses both.
fn p2c_uses_all_endpoints(driver: &str) {
    let (u1, u2) = (HttpUpstream::start("p1"), HttpUpstream::start("p2"));
    let (_proxy, listener) = cluster_proxy(
        driver,
        &format!(
            "balance = \"p2c_ewma\"\nendpoints = [\"{}\", \"{}\"]",
            u1.addr, u2.addr
        ),
    );
    let threads: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || spread(listener, 1, 100)))
        .collect();
    let mut total = HashMap::new();
    for t in threads {
        for (k, v) in t.join().unwrap() {
            *total.entry(k).or_insert(0) += v;
        }
    }
    for name in ["p1", "p2"] {
        let n = total.get(name).copied().unwrap_or(0);
        assert!(
            n >= 40,
            "p2c_ewma sent {n} of 400 requests to {name}: {total:?}"
        );
    }
}

both_drivers!(weighted_split, endpoint_weights, p2c_uses_all_endpoints);
