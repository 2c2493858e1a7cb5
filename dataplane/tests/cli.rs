//! Command line of `ringmesh-dataplane`: `--help`, and configs that must be refused before anything is bound: exit
//! code 1 and every problem on stderr as `FILE: toml.path: message (hint)`. Std only (this file lives in the
//! dataplane package, so Cargo builds the binary before running it; the e2e suite is the `ringmesh-tests` crate).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ringmesh-dataplane");

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ringmesh-cli-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the binary in `dir` and waits at most 10 s (a config that should be refused but is not would otherwise
/// make the process serve forever).
// A test thread polling a child process, not a worker's event loop: sleeping is what it should do.
#[allow(clippy::disallowed_methods)]
fn run(dir: &Path, args: &[&str]) -> Run {
    let out = std::fs::File::create(dir.join("stdout")).unwrap();
    let err = std::fs::File::create(dir.join("stderr")).unwrap();
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn ringmesh-dataplane");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "ringmesh-dataplane {args:?} still running after 10s\nstderr:\n{}",
                std::fs::read_to_string(dir.join("stderr")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: status.code(),
        stdout: std::fs::read_to_string(dir.join("stdout")).unwrap_or_default(),
        stderr: std::fs::read_to_string(dir.join("stderr")).unwrap_or_default(),
    }
}

/// Writes `mesh.toml` into a fresh dir and runs `--config mesh.toml` there.
fn run_config(config: &str) -> Run {
    let dir = temp_dir();
    std::fs::write(dir.join("mesh.toml"), config).unwrap();
    let r = run(&dir, &["--config", "mesh.toml", "--driver", "epoll"]);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn assert_has(run: &Run, needle: &str) {
    assert!(
        run.stderr.contains(needle),
        "stderr lacks {needle:?}\nstderr:\n{}",
        run.stderr
    );
}

/// A loopback listener on an ephemeral port, held for the duration of a test.
fn held_port() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

#[test]
fn help() {
    let dir = temp_dir();
    let r = run(&dir, &["--help"]);
    assert_eq!(r.code, Some(0), "--help exit code\nstderr:\n{}", r.stderr);
    assert!(
        r.stdout.contains("--config"),
        "--help does not mention --config:\n{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("--driver"),
        "--help does not mention --driver:\n{}",
        r.stdout
    );
}

#[test]
fn bad_driver_is_refused() {
    let dir = temp_dir();
    std::fs::write(dir.join("mesh.toml"), "").unwrap();
    let r = run(
        &dir,
        &["--config", "mesh.toml", "--driver", "carrier-pigeon"],
    );
    assert!(
        r.code.is_some() && r.code != Some(0),
        "--driver carrier-pigeon exited with {:?}",
        r.code
    );
    assert!(
        r.stderr.contains("carrier-pigeon"),
        "stderr does not name the bad driver:\n{}",
        r.stderr
    );
}

/// Several validation errors are all reported at once, each with its TOML path, and nothing is bound: the port of
/// the (valid) listener is held by this test, yet no "address already in use" appears.
#[test]
fn several_errors_at_once() {
    let (_held, port) = held_port();
    let r = run_config(&format!(
        r#"
[[listener]]
name = "edge"
bind = "127.0.0.1:{port}"
protocol = "http"

[[listener.route]]
path = "/a"
cluster = "payments"

[[listener.route]]
path = "/b"
cluster = "paymnts"

[[listener.route]]
path = "/c"
cluster = "payments"
direct = {{ status = 200, body = "both" }}

[[listener]]
name = "db"
bind = "127.0.0.1:1"
protocol = "tcp"

[[cluster]]
name = "payments"
endpoints = ["127.0.0.1:9"]

[[cluster]]
name = "orders"
endpoints = ["10.0.0.1"]
"#
    ));
    assert_eq!(
        r.code,
        Some(1),
        "exit code for an invalid config\nstderr:\n{}",
        r.stderr
    );
    assert_has(
        &r,
        r#"mesh.toml: listener[0].route[1].cluster: no cluster named "paymnts""#,
    );
    assert_has(&r, r#"(did you mean "payments"?)"#);
    assert_has(&r, "mesh.toml: cluster[1].endpoints[0]: ");
    assert_has(&r, "mesh.toml: listener[0].route[2]");
    assert_has(&r, "mesh.toml: listener[1]");
    let endpoint_line = r
        .stderr
        .lines()
        .find(|l| l.contains("cluster[1].endpoints[0]"))
        .unwrap_or("");
    assert!(
        endpoint_line.contains("10.0.0.1"),
        "endpoint error does not quote the address: {endpoint_line}"
    );
    assert!(
        !r.stderr.to_lowercase().contains("address already in use"),
        "tried to bind before validating:\n{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("route[0]") && !r.stderr.contains("cluster[0]"),
        "valid parts reported as errors:\n{}",
        r.stderr
    );
}

#[test]
fn unknown_key_is_an_error() {
    let r = run_config(
        r#"
[[listener]]
name = "edge"
bnd = "127.0.0.1:1"
protocol = "http"
"#,
    );
    assert_eq!(
        r.code,
        Some(1),
        "exit code for an unknown key\nstderr:\n{}",
        r.stderr
    );
    assert_has(&r, "mesh.toml: listener[0].bnd: ");
}

#[test]
fn bad_duration_is_an_error() {
    let r = run_config(
        r#"
[runtime]
drain_timeout = "10 parsecs"
"#,
    );
    assert_eq!(
        r.code,
        Some(1),
        "exit code for a bad duration\nstderr:\n{}",
        r.stderr
    );
    assert_has(&r, "mesh.toml: runtime.drain_timeout: ");
    assert_has(&r, "10 parsecs");
}

#[test]
fn missing_config_file() {
    let dir = temp_dir();
    let r = run(&dir, &["--config", "does-not-exist.toml"]);
    assert_eq!(
        r.code,
        Some(1),
        "exit code for a missing config file\nstderr:\n{}",
        r.stderr
    );
    assert_has(&r, "does-not-exist.toml");
}

fn bind_conflict(held_index: usize) {
    let (_held, held) = held_port();
    let free = {
        let (l, p) = held_port();
        drop(l);
        p
    };
    let ports = if held_index == 0 {
        [held, free]
    } else {
        [free, held]
    };
    let r = run_config(&format!(
        r#"
[[listener]]
name = "one"
bind = "127.0.0.1:{}"
protocol = "http"

[[listener.route]]
direct = {{ status = 200, body = "ok" }}

[[listener]]
name = "two"
bind = "127.0.0.1:{}"
protocol = "http"

[[listener.route]]
direct = {{ status = 200, body = "ok" }}
"#,
        ports[0], ports[1]
    ));
    assert_eq!(
        r.code,
        Some(1),
        "exit code when listener[{held_index}]'s port is taken\nstderr:\n{}",
        r.stderr
    );
    assert_has(&r, &format!("listener[{held_index}].bind"));
    assert!(
        r.stderr.to_lowercase().contains("address already in use"),
        "stderr does not say the address is in use:\n{}",
        r.stderr
    );
}

#[test]
fn bind_in_use_first_listener() {
    bind_conflict(0);
}

#[test]
fn bind_in_use_second_listener() {
    bind_conflict(1);
}
