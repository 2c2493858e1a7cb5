//! The systemd units in configs/systemd: the directives the processes rely on are
//! present, and `systemd-analyze security --offline=true` rates each unit's
//! exposure at 2.0 or below (skipped with a note where systemd-analyze is absent).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

const UNITS: [&str; 3] = [
    "ringmesh-control.service",
    "ringmesh-dataplane.service",
    "ringmesh-dataplane@.service",
];

fn units_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../configs/systemd")
}

fn has_systemd_analyze() -> bool {
    Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn units_carry_the_directives_the_processes_rely_on() {
    for unit in UNITS {
        let text = std::fs::read_to_string(units_dir().join(unit)).unwrap();
        for needed in [
            "Type=notify",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "KillSignal=SIGTERM",
            "TimeoutStopSec=",
            "Restart=on-failure",
            "User=ringmesh",
            "Group=ringmesh",
            "UMask=0077",
        ] {
            assert!(text.contains(needed), "{unit} lacks {needed}");
        }
        if unit.starts_with("ringmesh-dataplane") {
            assert!(text.contains("SystemCallFilter=@system-service io_uring_setup io_uring_enter io_uring_register"), "{unit}");
            assert!(
                text.contains("AmbientCapabilities=CAP_NET_BIND_SERVICE"),
                "{unit}"
            );
            let node = if unit.contains('@') {
                "--node %i"
            } else {
                "--node %H"
            };
            assert!(
                text.contains(&format!("--control /run/ringmesh/control.sock {node}")),
                "{unit}"
            );
        } else {
            assert!(text.contains("RuntimeDirectory=ringmesh"), "{unit}");
            assert!(
                text.contains("--socket /run/ringmesh/control.sock"),
                "{unit}"
            );
        }
    }
}

#[test]
fn exposure_is_at_most_2() {
    if !has_systemd_analyze() {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    for unit in UNITS {
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(unit)
            .current_dir(units_dir())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_else(|| {
                panic!(
                    "{unit}: no exposure line in:\n{text}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        let exposure: f64 = line
            .split(':')
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{unit}: cannot read {line:?}"));
        assert!(exposure <= 2.0, "{unit}: {line}");
    }
}

#[test]
fn units_verify_with_stand_in_binaries() {
    if !has_systemd_analyze() {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    // `verify` insists that ExecStart= binaries exist; point them at /bin/true.
    let dir = std::env::temp_dir().join(format!("ringmesh-units-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for unit in UNITS {
        let text = std::fs::read_to_string(units_dir().join(unit)).unwrap();
        let text = text
            .replace("/usr/local/bin/ringmesh-control", "/bin/true")
            .replace("/usr/local/bin/ringmesh-dataplane", "/bin/true");
        std::fs::write(dir.join(unit), text).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(UNITS.iter().map(|u| dir.join(u)))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
