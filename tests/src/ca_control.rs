//! `ringmesh-control serve` as the node's mesh CA (`--ca-dir`, `--trust-domain`, `--svid-ttl`, ...), and the SVID
//! issuances and installations the two processes log, read back from their logs.
//!
//! [`crate::Control`] starts the control process without CA flags; this starts it with them. The log lines parsed
//! here are `SVID issued` (control/src/issuer.rs, `SessionIdentity::issue`) and `SVID installed`
//! (dataplane/src/control_client.rs, `install_identity`), both with `serial=HEX expires_unix=N` fields.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::control::{status_of, write_atomically, Status, CONTROL_START_TIMEOUT};
use crate::proxy::binary;
use crate::temp_dir;

/// A running `ringmesh-control serve` with a CA; killed (and its log shown on panic) on drop.
pub struct CaControl {
    child: Child,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub config_path: PathBuf,
    pub stderr_path: PathBuf,
}

/// One SVID as a log line named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedSvid {
    /// `node=` of the line (empty when the line has none, as the dataplane's).
    pub node: String,
    pub serial_hex: String,
    pub expires_unix: i64,
}

impl CaControl {
    /// Writes `config` into a fresh temp dir and serves it with `ca_flags` (for example
    /// `["--ca-dir", DIR, "--trust-domain", TD, "--svid-ttl", "2m"]`); waits until `status` answers.
    pub fn start(config: &str, ca_flags: &[&str]) -> CaControl {
        let dir = temp_dir("ca-control");
        let config_path = dir.join("mesh.toml");
        let socket = dir.join("control.sock");
        let stderr_path = dir.join("control-stderr.log");
        write_atomically(&config_path, config);
        let child = Command::new(binary("ringmesh-control"))
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .arg("--socket")
            .arg(&socket)
            .args(ca_flags)
            .current_dir(&dir)
            // Not systemd: no sd_notify datagrams to whatever socket the test runner might have inherited.
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(fs::File::create(dir.join("control-stdout.log")).unwrap())
            .stderr(fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn ringmesh-control serve: {e}"));
        let mut control = CaControl {
            child,
            dir,
            socket,
            config_path,
            stderr_path,
        };
        control.wait_serving();
        control
    }

    fn wait_serving(&mut self) {
        let deadline = Instant::now() + CONTROL_START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "ringmesh-control serve exited with {status} before serving\nstderr:\n{}",
                    self.stderr()
                );
            }
            match status_of(&self.socket) {
                Ok(_) => return,
                Err(e) if Instant::now() > deadline => panic!(
                    "ringmesh-control serve not serving within {CONTROL_START_TIMEOUT:?}: {e}\nstderr:\n{}",
                    self.stderr()
                ),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn status(&self) -> Status {
        status_of(&self.socket)
            .unwrap_or_else(|e| panic!("ringmesh-control status: {e}\nstderr:\n{}", self.stderr()))
    }

    /// Every `SVID issued` line so far, in log order.
    pub fn issued(&self) -> Vec<LoggedSvid> {
        logged_svids(&self.stderr(), "SVID issued")
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for CaControl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- ringmesh-control serve (dir {}) config:\n{}\n---- stderr:\n{}\n----",
                self.dir.display(),
                fs::read_to_string(&self.config_path).unwrap_or_default(),
                self.stderr()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The `key=value` field `key` of a log line (tracing's plain format: fields separated by spaces).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
}

/// Every line of `log` with `message` and both `serial=` and `expires_unix=`, in order.
pub fn logged_svids(log: &str, message: &str) -> Vec<LoggedSvid> {
    log.lines()
        .filter(|line| line.contains(message))
        .filter_map(|line| {
            Some(LoggedSvid {
                node: field(line, "node").unwrap_or_default().to_string(),
                serial_hex: field(line, "serial")?.to_string(),
                expires_unix: field(line, "expires_unix")?.parse().ok()?,
            })
        })
        .collect()
}

/// The dataplane's `SVID installed` lines in the log at `path`.
pub fn installed_svids(path: &Path) -> Vec<LoggedSvid> {
    logged_svids(
        &fs::read_to_string(path).unwrap_or_default(),
        "SVID installed",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_issued_and_installed_lines() {
        let log = "2026-01-01T00:00:00.000001Z  INFO ringmesh_control::issuer: SVID issued node=b \
                   spiffe_id=spiffe://td/ns/default/sa/b serial=00ab12 expires_unix=1700000120 valid_for=120s \
                   renew_in=30s\n\
                   2026-01-01T00:00:00.000002Z  INFO something else serial=ff expires_unix=1\n\
                   2026-01-01T00:00:01.000000Z  INFO SVID installed spiffe_id=spiffe://td/ns/default/sa/b \
                   serial=00ab12 expires_unix=1700000120 expires_in=119s\n";
        let issued = logged_svids(log, "SVID issued");
        assert_eq!(
            issued,
            vec![LoggedSvid {
                node: "b".into(),
                serial_hex: "00ab12".into(),
                expires_unix: 1_700_000_120
            }]
        );
        let installed = logged_svids(log, "SVID installed");
        assert_eq!(installed.len(), 1);
        assert_eq!(installed[0].node, "");
        assert_eq!(installed[0].serial_hex, "00ab12");
    }
}
