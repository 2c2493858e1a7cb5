//! `ringmesh-control check`, and `status`/`diff` when nothing is listening.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{config, TempDir, BAD_CONFIG, BIN};
use std::process::Command;

#[test]
fn check_accepts_a_good_config() {
    let dir = TempDir::new("check-good");
    let file = dir.write("mesh.toml", &config(18080, 18081));
    let out = Command::new(BIN).arg("check").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "{}: ok (1 listeners, 1 routes, 1 clusters)\n",
            file.display()
        )
    );
}

#[test]
fn check_reports_every_problem_with_its_toml_path() {
    let dir = TempDir::new("check-bad");
    let file = dir.write("mesh.toml", BAD_CONFIG);
    let out = Command::new(BIN).arg("check").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let origin = file.display().to_string();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("{origin}: listener[0].bind: ")),
        "{stderr}"
    );
    assert_eq!(
        lines[1],
        format!("{origin}: listener[0].route[0].cluster: no cluster named \"paymnts\" (did you mean \"payments\"?)")
    );
    assert!(
        lines[2].starts_with(&format!("{origin}: cluster[0].endpoints[0]: ")),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn check_reports_a_missing_file() {
    let out = Command::new(BIN)
        .args(["check", "/nonexistent/ringmesh/mesh.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("/nonexistent/ringmesh/mesh.toml: "));
}

#[test]
fn status_and_diff_fail_when_unreachable() {
    let dir = TempDir::new("unreachable");
    let socket = dir.path("control.sock");
    let out = Command::new(BIN)
        .arg("status")
        .arg("--socket")
        .arg(&socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the control process"));

    let file = dir.write("mesh.toml", &config(18080, 18081));
    let out = Command::new(BIN)
        .arg("diff")
        .arg(&file)
        .arg("--socket")
        .arg(&socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    let bad = dir.write("bad.toml", BAD_CONFIG);
    let out = Command::new(BIN)
        .arg("diff")
        .arg(&bad)
        .arg("--socket")
        .arg(&socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cluster[0].endpoints[0]"));
}

#[test]
fn serving_needs_a_config() {
    let out = Command::new(BIN).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));
}
