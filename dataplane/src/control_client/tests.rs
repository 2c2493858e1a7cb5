use super::*;
use std::os::unix::net::UnixListener;

fn identity(serial: &str) -> Message {
    Message::Identity {
        spiffe_id: format!("spiffe://td/ns/default/sa/{serial}"),
        chain_pem: "chain".into(),
        key_pem: KeyPem("key".into()),
        bundle_pem: "bundle".into(),
        trust_domain: "td".into(),
        expires_unix: 1,
    }
}

fn snapshot(generation: u64) -> Message {
    let snapshot = ringmesh_api::compile_str(
        "[[cluster]]\nname = \"a\"\nendpoints = [\"127.0.0.1:1\"]\n",
        "mesh.toml",
        generation,
    )
    .unwrap();
    Message::Snapshot {
        snapshot: Box::new(snapshot),
    }
}

fn compiled(endpoint: &str, generation: u64) -> Snapshot {
    ringmesh_api::compile_str(
        &format!("[[cluster]]\nname = \"a\"\nendpoints = [\"{endpoint}\"]\n"),
        "mesh.toml",
        generation,
    )
    .unwrap()
}

fn delta(from: &Snapshot, to: &Snapshot) -> Message {
    Message::SnapshotDelta {
        delta: Box::new(SnapshotDelta::between(from, to).unwrap()),
    }
}

#[test]
fn a_delta_is_applied_to_the_snapshot_received_last() {
    let (one, two, three) = (
        compiled("127.0.0.1:1", 1),
        compiled("127.0.0.1:2", 2),
        compiled("127.0.0.1:3", 3),
    );
    let script = vec![
        Message::Snapshot {
            snapshot: Box::new(one.clone()),
        },
        delta(&one, &two),
        // Computed from a snapshot this client never received.
        delta(&one, &three),
    ];
    let (path, control) = control("delta", script);
    let (mut session, first) = Session::open(&path, "node-a").unwrap();
    assert_eq!(first, one);
    let applied = session.next_snapshot(Some(first)).unwrap();
    assert_eq!(applied, two);
    match session.next_snapshot(Some(applied)) {
        Err(SessionError::Delta(reason)) => {
            assert!(reason.contains("applies to 1"), "{reason}")
        }
        other => panic!("expected a refused delta, got {other:?}"),
    }
    control.join().unwrap();
}

#[test]
fn a_delta_before_any_snapshot_is_refused() {
    let (one, two) = (compiled("127.0.0.1:1", 1), compiled("127.0.0.1:2", 2));
    let (path, control) = control("delta-first", vec![delta(&one, &two)]);
    match Session::open(&path, "node-a") {
        Err(SessionError::Delta(reason)) => assert!(reason.contains("no complete snapshot")),
        other => panic!("expected a refused delta, got {:?}", other.map(|(_, s)| s)),
    }
    control.join().unwrap();
}

/// A control process that answers the hello and then sends `script`.
fn control(tag: &str, script: Vec<Message>) -> (PathBuf, std::thread::JoinHandle<()>) {
    let dir = std::env::temp_dir().join(format!("ringmesh-cc-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("control.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let hello = wire::read_message(&mut stream).unwrap();
        assert!(matches!(hello, Message::Hello { protocol, .. } if protocol.has_identity()));
        let ack = Message::HelloAck {
            protocol: ProtocolVersion::CURRENT,
        };
        wire::write_message(&mut stream, &ack).unwrap();
        for message in script {
            wire::write_message(&mut stream, &message).unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
    (path, handle)
}

#[test]
fn identities_are_kept_or_returned_and_other_kinds_skipped() {
    let script = vec![
        identity("early"),
        snapshot(1),
        identity("second"),
        // A kind a dataplane never receives: skipped, not fatal.
        Message::StatusRequest,
        snapshot(2),
    ];
    let (path, control) = control("identity", script);
    let (mut session, first) = Session::open(&path, "node-a").unwrap();
    assert_eq!(first.generation, 1);
    let early = session.take_pending_identity().unwrap();
    assert_eq!(early.spiffe_id, "spiffe://td/ns/default/sa/early");
    assert!(session.take_pending_identity().is_none());
    match session.next_incoming().unwrap() {
        Incoming::Identity(second) => {
            assert_eq!(second.spiffe_id, "spiffe://td/ns/default/sa/second");
            assert_eq!(second.key_pem.0, "key");
        }
        other => panic!("expected the second identity, got {other:?}"),
    }
    match session.next_incoming().unwrap() {
        Incoming::Snapshot(snapshot) => assert_eq!(snapshot.generation, 2),
        other => panic!("expected generation 2, got {other:?}"),
    }
    control.join().unwrap();
}

#[test]
fn next_snapshot_keeps_an_identity_that_follows_the_first_snapshot() {
    // What `initial` does when the first snapshot cannot be built: it asks
    // for the next snapshot, and the identity on the way must not be lost.
    let (path, control) = control("pending", vec![snapshot(1), identity("a"), snapshot(2)]);
    let (mut session, first) = Session::open(&path, "node-a").unwrap();
    assert_eq!(first.generation, 1);
    assert_eq!(session.next_snapshot(Some(first)).unwrap().generation, 2);
    let pending = session.take_pending_identity().unwrap();
    assert_eq!(pending.spiffe_id, "spiffe://td/ns/default/sa/a");
    control.join().unwrap();
}
