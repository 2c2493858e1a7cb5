//! The one-cluster proxy the resilience, breaker and timeout tests share: a listener with a `/alive` direct route
//! and a catch-all route to cluster `web`, plus a closed-loop client that records how each request ended.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::{addr, free_port, Client, Proxy};

/// The listener every test uses: a `/alive` direct route (to show the proxy still answers), then `route` lines on
/// a catch-all route to cluster `web`, made of `endpoints` and the `cluster` lines.
pub fn config(port: u16, route: &str, cluster: &str, endpoints: &[SocketAddr]) -> String {
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
pub fn mesh(
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

pub fn cluster_metric(proxy: &Proxy, name: &str) -> f64 {
    proxy.metric(name, &[("cluster", "web")])
}

/// How one request of a closed-loop run ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// 0: no response (see `error`).
    pub status: u16,
    /// `x-ringmesh-attempts`, 1 when absent.
    pub attempts: u32,
    pub upstream: String,
    /// The start of the body of a response other than 200.
    pub body: String,
    pub error: Option<String>,
}

impl Outcome {
    pub fn failed(error: String) -> Outcome {
        Outcome {
            status: 0,
            attempts: 0,
            upstream: String::new(),
            body: String::new(),
            error: Some(error),
        }
    }

    pub fn describe(&self) -> String {
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
pub fn closed_loop(
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

pub fn statuses(outcomes: &[Outcome]) -> BTreeMap<u16, usize> {
    let mut m = BTreeMap::new();
    for o in outcomes {
        *m.entry(o.status).or_insert(0) += 1;
    }
    m
}

/// Resident set size of a process, from /proc/PID/status.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kb * 1024
}
