//! Starting the real `ringmesh-dataplane` binary: write a config into a temp dir, spawn it with a driver, wait for
//! the admin `/ready`, scrape `/metrics`, send SIGTERM, wait for the exit; killed (and its stderr shown) on drop.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::client::{Client, Response};
use crate::{free_port, temp_dir};

/// How long a proxy may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the dataplane binary is: `$RINGMESH_BIN_DIR/ringmesh-dataplane`, else next to the test's `deps/` dir.
pub fn binary_path() -> PathBuf {
    binary("ringmesh-dataplane")
}

/// Where the workspace binary `name` is: `$RINGMESH_BIN_DIR/name`, else next to the test's `deps/` dir.
pub fn binary(name: &str) -> PathBuf {
    let dir = match std::env::var_os("RINGMESH_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe().expect("current test executable");
            // target/debug/deps/<test> -> target/debug
            exe.parent()
                .and_then(|p| p.parent())
                .map(PathBuf::from)
                .unwrap_or_default()
        }
    };
    let path = dir.join(name);
    if !path.is_file() {
        panic!(
            "{} does not exist: build it first with `cargo test --workspace` (or `cargo build -p {name}`), \
             or point RINGMESH_BIN_DIR at the directory holding it",
            path.display()
        );
    }
    path
}

/// Settings of the `[runtime]` table the builder writes in front of the test's config.
pub struct ProxyBuilder {
    driver: String,
    workers: usize,
    runtime: Vec<String>,
    access_log: bool,
}

impl ProxyBuilder {
    /// Turns on the access log, to `access.log` in the proxy's directory (see [`Proxy::access_log`]).
    pub fn access_log(mut self) -> Self {
        self.access_log = true;
        self
    }

    /// Worker threads (default 2, so connections really spread over workers).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// An extra `[runtime]` line, for example `drain_timeout = "2s"`.
    pub fn runtime(mut self, line: &str) -> Self {
        self.runtime.push(line.to_string());
        self
    }

    /// Writes the config (this `[runtime]` plus `body`), starts the binary and waits for `/ready`.
    pub fn start(self, body: &str) -> Proxy {
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut config = format!(
            "[runtime]\nworkers = {}\nadmin = \"{admin}\"\n",
            self.workers
        );
        for line in &self.runtime {
            config.push_str(line);
            config.push('\n');
        }
        config.push('\n');
        let runtime_prefix = config.clone();
        config.push_str(body);

        let dir = temp_dir("proxy");
        let config_path = dir.join("mesh.toml");
        fs::write(&config_path, &config).expect("write proxy config");
        let stderr_path = dir.join("stderr.log");
        let stderr = fs::File::create(&stderr_path).expect("create stderr log");
        let stdout = fs::File::create(dir.join("stdout.log")).expect("create stdout log");
        let mut command = Command::new(binary_path());
        if self.access_log {
            command.arg("--access-log").arg(dir.join("access.log"));
        }
        let child = command
            .arg("--config")
            .arg(&config_path)
            .arg("--driver")
            .arg(&self.driver)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary_path().display()));
        let mut proxy = Proxy {
            child,
            exit: None,
            dir,
            config,
            runtime_prefix,
            stderr_path,
            admin,
            driver: self.driver,
        };
        proxy.wait_ready();
        proxy
    }
}

/// A running dataplane process.
pub struct Proxy {
    child: Child,
    exit: Option<ExitStatus>,
    pub dir: PathBuf,
    pub config: String,
    runtime_prefix: String,
    pub stderr_path: PathBuf,
    pub admin: SocketAddr,
    pub driver: String,
}

impl Proxy {
    pub fn builder(driver: &str) -> ProxyBuilder {
        ProxyBuilder {
            driver: driver.to_string(),
            workers: 2,
            runtime: Vec::new(),
            access_log: false,
        }
    }

    /// Starts a proxy with the default runtime settings.
    pub fn start(driver: &str, body: &str) -> Proxy {
        Proxy::builder(driver).start(body)
    }

    /// Spawns `ringmesh-dataplane --control SOCKET --node NODE` without waiting for anything: the table (and with
    /// it the admin address, which the caller put into the control process's config as `admin`) comes from the
    /// control process. Call [`Proxy::wait_ready`] to wait for `/ready`.
    pub fn spawn_controlled(driver: &str, socket: &Path, node: &str, admin: SocketAddr) -> Proxy {
        let dir = temp_dir("dataplane");
        let stderr_path = dir.join("stderr.log");
        let stderr = fs::File::create(&stderr_path).expect("create stderr log");
        let stdout = fs::File::create(dir.join("stdout.log")).expect("create stdout log");
        let child = Command::new(binary_path())
            .arg("--control")
            .arg(socket)
            .arg("--node")
            .arg(node)
            .arg("--driver")
            .arg(driver)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary_path().display()));
        let config = format!(
            "(tables from ringmesh-control at {}, node {node})\n",
            socket.display()
        );
        Proxy {
            child,
            exit: None,
            dir,
            runtime_prefix: String::new(),
            config,
            stderr_path,
            admin,
            driver: driver.to_string(),
        }
    }

    /// Lines of the access log written so far (workers hand them over every 10 ms).
    pub fn access_log(&self) -> Vec<String> {
        fs::read_to_string(self.dir.join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the proxy wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Whether `/ready` answers 200 right now.
    pub fn is_ready(&self) -> bool {
        matches!(self.try_admin_get("/ready"), Ok(r) if r.status == 200)
    }

    /// Waits up to [`READY_TIMEOUT`] for `/ready` to answer 200; panics (with the log) when the process exits first
    /// or the time passes.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.try_exit() {
                panic!(
                    "ringmesh-dataplane ({}) exited with {status} before it was ready\nconfig:\n{}\nstderr:\n{}",
                    self.driver,
                    self.config,
                    self.stderr()
                );
            }
            let last = match self.try_admin_get("/ready") {
                Ok(r) if r.status == 200 => return,
                Ok(r) => format!("/ready answered {}", r.status),
                Err(e) => format!("/ready: {e}"),
            };
            if Instant::now() > deadline {
                panic!(
                    "ringmesh-dataplane ({}) not ready within {READY_TIMEOUT:?} ({last})\nconfig:\n{}\nstderr:\n{}",
                    self.driver,
                    self.config,
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `GET path` on the admin listener over a fresh connection.
    pub fn try_admin_get(&self, path: &str) -> std::io::Result<Response> {
        let mut c = Client::try_connect(self.admin)?;
        let _ = c.conn.stream.set_read_timeout(Some(Duration::from_secs(5)));
        let req = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
        c.try_exchange("GET", req.as_bytes())
    }

    pub fn admin_get(&self, path: &str) -> Response {
        self.try_admin_get(path)
            .unwrap_or_else(|e| panic!("admin GET {path}: {e}\nstderr:\n{}", self.stderr()))
    }

    /// The Prometheus text of `/metrics` (panics unless it answers 200).
    pub fn metrics(&self) -> String {
        let r = self.admin_get("/metrics");
        assert_eq!(r.status, 200, "GET /metrics: {}", r.body_str());
        r.body_str()
    }

    /// One metric value, 0 when the series is absent.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        parse_metric(&self.metrics(), name, labels).unwrap_or(0.0)
    }

    /// Polls a metric until it equals `want` (metrics may lag the response by a moment); panics after 5 s.
    pub fn wait_metric(&self, name: &str, labels: &[(&str, &str)], want: f64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = self.metrics();
            let got = parse_metric(&text, name, labels).unwrap_or(0.0);
            if got == want {
                return;
            }
            if Instant::now() > deadline {
                panic!("metric {name}{labels:?} is {got}, expected {want}\n/metrics:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Sends SIGINT.
    pub fn sigint(&self) {
        self.signal(libc::SIGINT);
    }

    /// Sends SIGHUP (reload the config file).
    pub fn sighup(&self) {
        self.signal(libc::SIGHUP);
    }

    /// Sends `sig` to the process (which must not have been reaped yet).
    pub fn signal(&self, sig: libc::c_int) {
        assert!(
            self.exit.is_none(),
            "signal {sig} to a process that already exited"
        );
        crate::signal_child(&self.child, sig);
    }

    /// Replaces the config file's body, keeping the `[runtime]` table written at start (for a
    /// SIGHUP reload).
    pub fn rewrite_config(&mut self, body: &str) {
        self.config = format!("{}{body}", self.runtime_prefix);
        fs::write(self.dir.join("mesh.toml"), &self.config).expect("rewrite proxy config");
    }

    fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.try_exit().is_none()
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_exit() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- ringmesh-dataplane --driver {} (dir {}) config:\n{}\n---- stderr:\n{}\n----",
                self.driver,
                self.dir.display(),
                self.config,
                self.stderr()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Finds `name{labels…} value` in Prometheus text; `labels` must all be present (others are ignored).
pub fn parse_metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut total = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let (metric, label_text) = match series.split_once('{') {
            Some((m, rest)) => (m, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if metric != name {
            continue;
        }
        let found: Vec<(&str, &str)> = label_text
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim().trim_matches('"')))
            .collect();
        if labels.iter().all(|want| found.contains(want)) {
            if let Ok(v) = value.trim().parse::<f64>() {
                // Several series can match a partial label set: sum them.
                total = Some(total.unwrap_or(0.0) + v);
            }
        }
    }
    total
}
