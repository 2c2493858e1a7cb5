//! `ringmesh-control serve` end to end: a real process, a real Unix socket, and
//! fake dataplanes that speak the wire protocol through `ringmesh_api::wire`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{config, FakeDataplane, Server, BAD_CONFIG, BIN};
use nix::sys::signal::Signal;
use ringmesh_api::wire::{self, Message, ProtocolVersion, Role};
use std::os::unix::net::UnixListener;
use std::process::Command;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(1500);

#[test]
fn dataplane_follows_reloads_and_status_reports_it() {
    let server = Server::start("lifecycle", &config(18080, 18081));

    // Handshake: hello_ack, then generation 1 at once.
    let (mut dataplane, first) = FakeDataplane::connect(&server.socket, "node-a");
    assert_eq!(first.generation, 1);
    assert_eq!(first.listeners[0].bind.port(), 18080);
    dataplane.ack(1);
    let status = server.wait_status(|s| s.contains("acked 1 "));
    assert!(status.starts_with("generation: 1\n"), "{status}");
    assert!(
        status.contains(&format!("config: {}", server.config.display())),
        "{status}"
    );
    assert!(status.contains("last error: none"), "{status}");
    assert!(
        status.contains("dataplanes: 1\n  node-a  acked 1"),
        "{status}"
    );

    // A changed config: generation 2 arrives.
    server.reload_with(&config(18090, 18081));
    let second = dataplane
        .next_snapshot(Duration::from_secs(10))
        .expect("generation 2");
    assert_eq!(second.generation, 2);
    assert_eq!(second.listeners[0].bind.port(), 18090);
    assert_eq!(
        dataplane.deltas, 1,
        "a 1.3 dataplane gets the change as a delta"
    );
    dataplane.ack(2);
    server.wait_status(|s| s.contains("generation: 2\n") && s.contains("acked 2 "));
    let log = server.log_text();
    assert!(
        log.contains("reloaded: new snapshot queued") && log.contains("compile="),
        "{log}"
    );

    // The dataplane refuses generation 3: status shows the nack and that it is behind.
    server.reload_with(&config(18090, 18082));
    let third = dataplane
        .next_snapshot(Duration::from_secs(10))
        .expect("generation 3");
    assert_eq!(third.generation, 3);
    // Applied to generation 2, and equal to what the control process compiled.
    assert_eq!(
        third,
        ringmesh_api::compile_str(&config(18090, 18082), "mesh.toml", 3).unwrap()
    );
    dataplane.nack(3, "bind failed");
    let status = server.wait_status(|s| s.contains("last nack: generation 3: bind failed"));
    assert!(status.contains("acked 2 behind"), "{status}");

    // An invalid config: nothing is sent, generation 3 keeps serving, the errors
    // with their TOML paths are in status and in the log.
    server.reload_with(BAD_CONFIG);
    assert!(
        dataplane.next_snapshot(QUIET).is_none(),
        "a broken config must not be sent"
    );
    let status = server.wait_status(|s| s.contains("last error"));
    assert!(status.starts_with("generation: 3\n"), "{status}");
    for path in [
        "listener[0].bind",
        "listener[0].route[0].cluster",
        "cluster[0].endpoints[0]",
    ] {
        assert!(status.contains(path), "status lacks {path}:\n{status}");
        assert!(server.log_text().contains(path), "log lacks {path}");
    }
    assert!(server
        .log_text()
        .contains("still serving the last good snapshot"));

    // The served config again: a successful reload, no snapshot, the error is gone.
    server.reload_with(&config(18090, 18082));
    assert!(
        dataplane.next_snapshot(QUIET).is_none(),
        "an identical table must not be re-sent"
    );
    let status = server.wait_status(|s| s.contains("last error: none"));
    assert!(status.starts_with("generation: 3\n"), "{status}");
    assert!(server.log_text().contains("config unchanged, nothing sent"));

    // diff against the running table.
    let same = server.cli(&["diff", server.config.to_str().unwrap()]);
    assert_eq!(same.status.code(), Some(0), "{same:?}");
    assert!(String::from_utf8_lossy(&same.stdout).contains("no changes (running generation 3)"));
    let other = server.dir.write("other.toml", &config(18090, 18083));
    let changed = server.cli(&["diff", other.to_str().unwrap()]);
    assert_eq!(changed.status.code(), Some(3), "{changed:?}");
    let text = String::from_utf8_lossy(&changed.stdout);
    assert!(text.contains("- endpoint blue/127.0.0.1:18082"), "{text}");
    assert!(text.contains("+ endpoint blue/127.0.0.1:18083"), "{text}");

    // SIGTERM: exit 0, socket removed, STOPPING=1 sent.
    drop(dataplane);
    let socket = server.socket.clone();
    let status = server.stop();
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists(), "the socket must be removed on SIGTERM");
}

#[test]
fn stopping_is_notified_and_sigint_also_cleans_up() {
    let server = Server::start("sigint", &config(18080, 18081));
    server.signal(Signal::SIGINT);
    server
        .notify
        .wait_for("STOPPING=1", Duration::from_secs(10));
    let socket = server.socket.clone();
    let mut server = server;
    let status = common::wait_exit(&mut server.child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists());
}

#[test]
fn many_dataplanes_each_get_every_generation() {
    let server = Server::start("many", &config(18080, 18081));
    let mut dataplanes: Vec<_> = (0..5)
        .map(|i| {
            let (mut dataplane, first) =
                FakeDataplane::connect(&server.socket, &format!("node-{i}"));
            assert_eq!(first.generation, 1);
            dataplane.ack(1);
            dataplane
        })
        .collect();
    server.wait_status(|s| s.contains("dataplanes: 5\n"));
    server.reload_with(&config(18080, 18082));
    for dataplane in &mut dataplanes {
        let next = dataplane
            .next_snapshot(Duration::from_secs(10))
            .expect("generation 2");
        assert_eq!(next.generation, 2);
        dataplane.ack(2);
    }
    let status = server.wait_status(|s| s.matches("acked 2").count() == 5);
    assert!(!status.contains("behind"), "{status}");

    // A dataplane that leaves disappears from status; a late one gets generation 2.
    dataplanes.truncate(2);
    let (_late, first) = FakeDataplane::connect(&server.socket, "late");
    assert_eq!(first.generation, 2);
    server.wait_status(|s| s.contains("dataplanes: 3\n") && s.contains("late"));
}

#[test]
fn incompatible_major_and_missing_hello_are_rejected() {
    let server = Server::start("reject", &config(18080, 18081));
    let v2 = ProtocolVersion { major: 2, minor: 0 };
    let (_stream, answer) = FakeDataplane::hello(&server.socket, v2, Role::Dataplane, "node-a");
    let expected = "protocol 2.0 is not supported by this control process (speaks 1.3)";
    assert_eq!(
        answer,
        Message::Reject {
            reason: expected.to_string()
        }
    );

    let mut stream = std::os::unix::net::UnixStream::connect(&server.socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    wire::write_message(&mut stream, &Message::StatusRequest).unwrap();
    match wire::read_message(&mut stream).unwrap() {
        Message::Reject { reason } => {
            assert!(reason.contains("first frame must be hello"), "{reason}")
        }
        other => panic!("expected a reject, got {other:?}"),
    }

    // A CLI client may ask for the snapshot.
    let (mut cli, answer) =
        FakeDataplane::hello(&server.socket, ProtocolVersion::CURRENT, Role::Cli, "test");
    assert!(matches!(answer, Message::HelloAck { .. }));
    wire::write_message(&mut cli, &Message::SnapshotRequest).unwrap();
    match wire::read_message(&mut cli).unwrap() {
        Message::Snapshot { snapshot } => assert_eq!(snapshot.generation, 1),
        other => panic!("expected a snapshot, got {other:?}"),
    }

    // The server keeps serving and logged the refusal.
    server.wait_status(|s| s.starts_with("generation: 1"));
    assert!(
        server.log_text().contains(expected),
        "{}",
        server.log_text()
    );
}

#[test]
fn bad_config_exits_before_creating_the_socket() {
    let dir = common::TempDir::new("badserve");
    let config = dir.write("mesh.toml", BAD_CONFIG);
    let socket = dir.path("control.sock");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("--socket")
        .arg(&socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 3, "{stderr}");
    assert!(
        stderr.contains("listener[0].route[0].cluster: no cluster named \"paymnts\""),
        "{stderr}"
    );
    assert!(!socket.exists());
}

#[test]
fn stale_socket_is_replaced_and_a_live_one_is_not() {
    let dir = common::TempDir::new("stale");
    let socket = dir.path("control.sock");
    drop(UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let config = dir.write("mesh.toml", &config(18080, 18081));

    let mut first = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("--socket")
        .arg(&socket)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until it answers.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while Command::new(BIN)
        .arg("status")
        .arg("--socket")
        .arg(&socket)
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "first server never answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let second = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("--socket")
        .arg(&socket)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1), "{second:?}");
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("already listening"),
        "{second:?}"
    );
    assert!(socket.exists(), "the live socket must stay");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.id() as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    assert!(common::wait_exit(&mut first, Duration::from_secs(10)).success());
}
