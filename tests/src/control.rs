//! Starting the real `ringmesh-control` binary: its config file and socket live in a temp dir; the config is
//! replaced atomically (write + rename, so a reload never reads half a file) and reloaded with SIGHUP; the
//! `ringmesh-control status` CLI is run and its report parsed. Killed (and its stderr shown) on drop.
//!
//! The status report this parses (control/src/status.rs, `format_status`):
//!
//! ```text
//! generation: 3
//! config: /tmp/…/mesh.toml
//! last error: none                                   | last error (still serving the generation above):
//! dataplanes: 2                                      |   mesh.toml: cluster[0].name: empty
//!   node-a  acked 3         connected 1h02m03s  last nack: -
//!   node-b  acked 2 behind  connected 5s        last nack: generation 3: bind failed
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::proxy::binary;
use crate::temp_dir;

/// How long the control process may take to compile its config and open its socket.
pub const CONTROL_START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one `ringmesh-control status` run may take before it is killed.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(10);

/// One dataplane row of the status report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataplaneRow {
    pub node: String,
    /// Highest acknowledged generation; 0 for "acked none".
    pub acked: u64,
    /// `None` for "last nack: -".
    pub last_nack: Option<String>,
}

/// `ringmesh-control status`, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub generation: u64,
    pub config: String,
    /// The error lines (indentation removed), `None` for "last error: none".
    pub last_error: Option<String>,
    pub dataplanes: Vec<DataplaneRow>,
    /// The report as printed.
    pub text: String,
}

impl Status {
    /// Parses the report; `Err` names what did not fit.
    pub fn parse(text: &str) -> Result<Status, String> {
        let bad = |what: &str| format!("unexpected status report ({what}):\n{text}");
        let mut lines = text.lines();
        let generation = lines
            .next()
            .and_then(|l| l.strip_prefix("generation: "))
            .and_then(|g| g.trim().parse().ok())
            .ok_or_else(|| bad("no `generation: N` first line"))?;
        let config = lines
            .next()
            .and_then(|l| l.strip_prefix("config: "))
            .ok_or_else(|| bad("no `config:` line"))?
            .to_string();
        let error_line = lines.next().ok_or_else(|| bad("no `last error` line"))?;
        let mut error_lines = Vec::new();
        let mut count_line = None;
        if error_line != "last error: none" {
            if !error_line.starts_with("last error") {
                return Err(bad("no `last error` line"));
            }
            for line in lines.by_ref() {
                if line.starts_with("dataplanes: ") {
                    count_line = Some(line);
                    break;
                }
                error_lines.push(line.strip_prefix("  ").unwrap_or(line));
            }
        } else {
            count_line = lines.next();
        }
        let count: usize = count_line
            .and_then(|l| l.strip_prefix("dataplanes: "))
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| bad("no `dataplanes: N` line"))?;
        let mut dataplanes = Vec::new();
        for line in lines {
            let (left, nack) = line
                .split_once("  last nack: ")
                .ok_or_else(|| bad("dataplane row without `last nack:`"))?;
            let words: Vec<&str> = left.split_whitespace().collect();
            let acked = match words.as_slice() {
                [_, "acked", "none", ..] => 0,
                [_, "acked", n, ..] => n.parse().map_err(|_| bad("acked is not a number"))?,
                _ => return Err(bad("dataplane row without `NODE acked N`")),
            };
            dataplanes.push(DataplaneRow {
                node: words[0].to_string(),
                acked,
                last_nack: (nack != "-").then(|| nack.to_string()),
            });
        }
        if dataplanes.len() != count {
            return Err(bad("dataplane count differs from the rows"));
        }
        Ok(Status {
            generation,
            config,
            last_error: (!error_lines.is_empty()).then(|| error_lines.join("\n")),
            dataplanes,
            text: text.to_string(),
        })
    }

    /// The rows of `node` (a node that reconnects can briefly have two).
    pub fn rows(&self, node: &str) -> Vec<&DataplaneRow> {
        self.dataplanes.iter().filter(|d| d.node == node).collect()
    }

    /// Whether `node` has acknowledged exactly `generation` on some connection.
    pub fn acked(&self, node: &str, generation: u64) -> bool {
        self.rows(node).iter().any(|d| d.acked == generation)
    }
}

/// A running `ringmesh-control` process.
pub struct Control {
    child: Child,
    exit: Option<ExitStatus>,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub socket: PathBuf,
    pub stderr_path: PathBuf,
    /// How many times it has been started (stderr of each run goes to its own file).
    runs: usize,
}

impl Control {
    /// Writes `config` into a fresh temp dir, starts the control process on a socket there and waits until
    /// `status` answers.
    pub fn start(config: &str) -> Control {
        let dir = temp_dir("control");
        let mut control = Control::spawn_in(&dir, config);
        control.wait_serving();
        control
    }

    /// Writes `config` and spawns the control process without waiting for it.
    pub fn spawn_in(dir: &Path, config: &str) -> Control {
        let config_path = dir.join("mesh.toml");
        let socket = Control::socket_in(dir);
        write_atomically(&config_path, config);
        let (child, stderr_path) = spawn_child(dir, &config_path, &socket, 1);
        Control {
            child,
            exit: None,
            dir: dir.to_path_buf(),
            config_path,
            socket,
            stderr_path,
            runs: 1,
        }
    }

    /// Where a control process in `dir` puts its socket (for a dataplane started before it).
    pub fn socket_in(dir: &Path) -> PathBuf {
        dir.join("control.sock")
    }

    /// Waits until the control process answers `status`; panics with its log if it exits or takes too long.
    pub fn wait_serving(&mut self) -> Status {
        let deadline = Instant::now() + CONTROL_START_TIMEOUT;
        loop {
            if let Some(status) = self.try_exit() {
                panic!(
                    "ringmesh-control exited with {status} before serving\nstderr:\n{}",
                    self.stderr()
                );
            }
            let last = match self.try_status() {
                Ok(s) => return s,
                Err(e) => e,
            };
            if Instant::now() > deadline {
                panic!(
                    "ringmesh-control not serving within {CONTROL_START_TIMEOUT:?}: {last}\nstderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the current run wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Replaces the config file atomically (no reload).
    pub fn write_config(&self, config: &str) {
        write_atomically(&self.config_path, config);
    }

    /// Replaces the config file and sends SIGHUP.
    pub fn reload(&mut self, config: &str) {
        self.write_config(config);
        self.sighup();
    }

    pub fn sighup(&mut self) {
        self.signal(libc::SIGHUP);
    }

    /// SIGKILL, and reaps the process; the socket file stays behind, as after a crash.
    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        let status = self
            .child
            .wait()
            .expect("wait for the killed control process");
        self.exit = Some(status);
    }

    /// Starts the control process again on the same socket and config file, and waits until it serves.
    pub fn restart(&mut self) -> Status {
        assert!(
            self.try_exit().is_some(),
            "restart while the control process still runs"
        );
        self.runs += 1;
        let (child, stderr_path) =
            spawn_child(&self.dir, &self.config_path, &self.socket, self.runs);
        self.child = child;
        self.stderr_path = stderr_path;
        self.exit = None;
        self.wait_serving()
    }

    fn signal(&mut self, sig: libc::c_int) {
        assert!(
            self.try_exit().is_none(),
            "signal {sig} to a control process that already exited\nstderr:\n{}",
            self.stderr()
        );
        crate::signal_child(&self.child, sig);
    }

    fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    pub fn running(&mut self) -> bool {
        self.try_exit().is_none()
    }

    /// Runs `ringmesh-control status --socket SOCKET` once and parses its report.
    pub fn try_status(&self) -> Result<Status, String> {
        status_of(&self.socket)
    }

    /// The status, or a panic with the reason and the control process's log.
    pub fn status(&self) -> Status {
        self.try_status()
            .unwrap_or_else(|e| panic!("ringmesh-control status: {e}\nstderr:\n{}", self.stderr()))
    }

    /// Polls `status` (every 20 ms) until `cond` holds and returns that status; panics after `within` with the
    /// last report and the log.
    pub fn wait_status(
        &self,
        within: Duration,
        what: &str,
        mut cond: impl FnMut(&Status) -> bool,
    ) -> Status {
        let deadline = Instant::now() + within;
        loop {
            let last = match self.try_status() {
                Ok(s) if cond(&s) => return s,
                Ok(s) => s.text,
                Err(e) => e,
            };
            if Instant::now() > deadline {
                panic!(
                    "timed out after {within:?} waiting until {what}; last status:\n{last}\ncontrol stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `node` has acknowledged `generation` (and it is the generation served).
    pub fn wait_acked(&self, node: &str, generation: u64, within: Duration) -> Status {
        self.wait_status(
            within,
            &format!("{node} acknowledged generation {generation}"),
            |s| s.generation == generation && s.acked(node, generation),
        )
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            let mut logs = String::new();
            for run in 1..=self.runs {
                let path = self.dir.join(format!("control-stderr-{run}.log"));
                logs.push_str(&format!(
                    "---- ringmesh-control run {run} stderr:\n{}\n",
                    fs::read_to_string(&path).unwrap_or_default()
                ));
            }
            eprintln!(
                "---- ringmesh-control (dir {}) config:\n{}\n{logs}----",
                self.dir.display(),
                fs::read_to_string(&self.config_path).unwrap_or_default()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Spawns `ringmesh-control --config CONFIG --socket SOCKET` with stdout and stderr in files of `dir` numbered by
/// `run`; returns the child and its stderr file.
fn spawn_child(dir: &Path, config: &Path, socket: &Path, run: usize) -> (Child, PathBuf) {
    let stderr_path = dir.join(format!("control-stderr-{run}.log"));
    let stderr = fs::File::create(&stderr_path).expect("create control stderr log");
    let stdout = fs::File::create(dir.join(format!("control-stdout-{run}.log")))
        .expect("create control stdout log");
    let child = Command::new(binary("ringmesh-control"))
        .arg("--config")
        .arg(config)
        .arg("--socket")
        .arg(socket)
        .current_dir(dir)
        // Not systemd: no sd_notify datagrams to whatever socket the test runner might have inherited.
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", binary("ringmesh-control").display()));
    (child, stderr_path)
}

/// Runs `ringmesh-control status --socket SOCKET` (killed after [`STATUS_TIMEOUT`]) and parses its report.
pub fn status_of(socket: &Path) -> Result<Status, String> {
    let dir = socket.parent().unwrap_or(Path::new("."));
    let mut child = Command::new(binary("ringmesh-control"))
        .arg("status")
        .arg("--socket")
        .arg(socket)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn ringmesh-control status: {e}"))?;
    let deadline = Instant::now() + STATUS_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "ringmesh-control status did not answer within {STATUS_TIMEOUT:?}"
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(format!("wait for ringmesh-control status: {e}")),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("read ringmesh-control status output: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "ringmesh-control status exited with {}: {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Status::parse(&stdout)
}

/// Writes `text` to a sibling temp file and renames it over `path`: a reader sees the old or the new file, never
/// a partial one.
pub fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.tmp");
    fs::write(&tmp, text).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    fs::rename(&tmp, path)
        .unwrap_or_else(|e| panic!("rename {} -> {}: {e}", tmp.display(), path.display()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_report_with_an_error_and_two_dataplanes() {
        let text = "generation: 3\n\
                    config: /etc/ringmesh/mesh.toml\n\
                    last error (still serving the generation above):\n\
                    \x20 mesh.toml: cluster[0].name: empty\n\
                    \x20 mesh.toml: listener[1].bind: bad\n\
                    dataplanes: 3\n\
                    \x20 node-a  acked 3         connected 1h02m03s  last nack: -\n\
                    \x20 b       acked 2 behind  connected 5s        last nack: generation 3: bind failed\n\
                    \x20 c       acked none      connected 0s        last nack: -\n";
        let s = Status::parse(text).unwrap();
        assert_eq!(s.generation, 3);
        assert_eq!(s.config, "/etc/ringmesh/mesh.toml");
        assert_eq!(
            s.last_error.as_deref(),
            Some("mesh.toml: cluster[0].name: empty\nmesh.toml: listener[1].bind: bad")
        );
        assert_eq!(
            s.dataplanes,
            vec![
                DataplaneRow {
                    node: "node-a".into(),
                    acked: 3,
                    last_nack: None
                },
                DataplaneRow {
                    node: "b".into(),
                    acked: 2,
                    last_nack: Some("generation 3: bind failed".into())
                },
                DataplaneRow {
                    node: "c".into(),
                    acked: 0,
                    last_nack: None
                },
            ]
        );
        assert!(s.acked("node-a", 3) && !s.acked("b", 3));
    }

    #[test]
    fn parses_a_report_with_nothing_connected() {
        let s =
            Status::parse("generation: 1\nconfig: mesh.toml\nlast error: none\ndataplanes: 0\n")
                .unwrap();
        assert_eq!(
            (s.generation, s.last_error, s.dataplanes.len()),
            (1, None, 0)
        );
        assert!(Status::parse("nonsense").is_err());
    }
}
