//! Tables A and B over upstreams A and B, a dataplane started on a control process, and probes of which table
//! answers.

use std::net::SocketAddr;
use std::time::Instant;

use ringmesh_tests::{addr, free_port, parse_metric, Client, Control, HttpUpstream, Proxy};

use super::ACK_TIMEOUT;

/// Upstreams A and B, the listener and admin ports: everything a table refers to.
pub struct Mesh {
    pub a: HttpUpstream,
    pub b: HttpUpstream,
    pub port: u16,
    pub admin: SocketAddr,
}

impl Mesh {
    pub fn new() -> Mesh {
        Mesh {
            a: HttpUpstream::start("A"),
            b: HttpUpstream::start("B"),
            port: free_port(),
            admin: addr(free_port()),
        }
    }

    pub fn listener(&self) -> SocketAddr {
        addr(self.port)
    }

    /// Table `A` or `B` on the usual listener.
    pub fn config(&self, table: &str) -> String {
        self.config_on(table, self.port)
    }

    /// Table `A` or `B` with the listener bound to `port`.
    pub fn config_on(&self, table: &str, port: u16) -> String {
        format!(
            r#"[runtime]
workers = 2
admin = "{admin}"

[[listener]]
name = "edge"
bind = "127.0.0.1:{port}"
protocol = "http"

[[listener.route]]
name = "all"
path_prefix = "/"
cluster = "{cluster}"
response_headers = {{ set = {{ "x-table" = "{table}" }} }}

[[cluster]]
name = "a"
endpoints = ["{a}"]

[[cluster]]
name = "b"
endpoints = ["{b}"]
"#,
            admin = self.admin,
            cluster = table.to_lowercase(),
            a = self.a.addr,
            b = self.b.addr,
        )
    }
}

/// Starts a dataplane on `control` and waits until it is ready and has acknowledged the current generation.
pub fn start_dataplane(driver: &str, control: &Control, node: &str, admin: SocketAddr) -> Proxy {
    let mut dp = Proxy::spawn_controlled(driver, &control.socket, node, admin);
    dp.wait_ready();
    let generation = control.status().generation;
    control.wait_acked(node, generation, ACK_TIMEOUT);
    dp
}

pub fn generation_metric(dp: &Proxy) -> u64 {
    parse_metric(&dp.metrics(), "ringmesh_table_generation", &[])
        .unwrap_or_else(|| panic!("no ringmesh_table_generation in /metrics")) as u64
}

/// A GET on a fresh connection: the table that answers it (`x-table`, checked against `x-upstream`).
pub fn table_of_new_connection(listener: SocketAddr) -> String {
    let r = Client::connect(listener).get("/", "probe.test");
    assert_eq!(r.status, 200, "probe: {}", r.body_str());
    let table = r.header_all("x-table");
    assert_eq!(
        table,
        vec![r.upstream()],
        "probe answered by half of two tables: {:?}",
        r.head
    );
    table[0].to_string()
}

/// Waits until `at` (pacing, not a condition).
pub fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        std::thread::sleep(at - now);
    }
}
