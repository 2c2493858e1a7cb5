//! Golden frames for the control-socket protocol: `fixtures/wire/v1/*.json` hold
//! payloads as protocol 1.0 wrote them (1.1 for `identity`, 1.3 for `snapshot_delta`), and they must keep decoding to the same
//! messages for as long as the major version is 1 (see the rules at the top of
//! `src/wire.rs`).
//!
//! Never edit or regenerate an existing fixture: a fixture that stops decoding is
//! a compatibility break. To add one for a new message, add it to `fixtures()` and
//! run `RINGMESH_BLESS_WIRE=1 cargo test -p ringmesh-api --test wire_golden`,
//! which writes only the fixtures that do not exist yet.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ringmesh_api::delta::{ListenerChange, MeshChange, SnapshotDelta};
use ringmesh_api::snapshot::MeshSpec;
use ringmesh_api::wire::{
    self, ControlStatus, DataplaneStatus, KeyPem, Message, ProtocolVersion, Role,
};
use ringmesh_api::Snapshot;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wire/v1")
}

/// A table that uses every kind of listener, match and action, so that renaming
/// any snapshot field breaks the snapshot fixture.
const SNAPSHOT_CONFIG: &str = r#"
[runtime]
workers = 2
drain_timeout = "5s"
admin = "127.0.0.1:19901"

[[listener]]
name = "edge"
bind = "127.0.0.1:18080"
protocol = "http"
via = "mesh"

[[listener.route]]
name = "health"
path = "/healthz"
direct = { status = 200, body = "ok" }

[[listener.route]]
name = "api"
host = "*.example.com"
path_regex = "/v[0-9]+/.*"
methods = ["GET", "POST"]
headers = [{ name = "x-env", value = "canary" }, { name = "x-trace", regex = "t-.*" }, { name = "x-debug", present = true }]
split = [{ cluster = "blue", weight = 90 }, { cluster = "green", weight = 10 }]
timeout = "2s"
max_body = "1MiB"
request_headers = { set = { "x-route" = "api" }, add = { "x-b" = "2" }, remove = ["x-c"] }
response_headers = { remove = ["server"] }

[[listener.route]]
name = "shop"
host = "shop.example.com"
path_prefix = "/"
cluster = "blue"

[[listener]]
name = "db"
bind = "127.0.0.1:15432"
protocol = "tcp"
cluster = "green"

[[cluster]]
name = "blue"
balance = "p2c_ewma"
endpoints = ["127.0.0.1:18081", { addr = "[::1]:18083", weight = 3 }]

[[cluster]]
name = "green"
endpoints = ["127.0.0.1:18082"]
"#;

fn snapshot() -> Snapshot {
    ringmesh_api::compile_str(SNAPSHOT_CONFIG, "golden.toml", 7).unwrap()
}

/// Every fixture and the message it must decode to (for `snapshot`: the message
/// it was written from; see `check_snapshot_fixture`). The `match` in
/// `every_message_kind_has_a_fixture` makes a new message kind fail to compile
/// until it is listed.
fn fixtures() -> Vec<(&'static str, Message)> {
    let v1 = ProtocolVersion { major: 1, minor: 0 };
    vec![
        (
            "hello_dataplane",
            Message::Hello {
                protocol: v1,
                role: Role::Dataplane,
                node: "node-a".into(),
            },
        ),
        (
            "hello_cli",
            Message::Hello {
                protocol: v1,
                role: Role::Cli,
                node: "ringmesh-control-cli[4242]".into(),
            },
        ),
        ("hello_ack", Message::HelloAck { protocol: v1 }),
        (
            "reject",
            Message::Reject {
                reason: "protocol 2.0 is not supported by this control process (speaks 1.0)".into(),
            },
        ),
        (
            "snapshot",
            Message::Snapshot {
                snapshot: Box::new(snapshot()),
            },
        ),
        ("ack", Message::Ack { generation: 7 }),
        (
            "nack",
            Message::Nack {
                generation: 8,
                reason: "listener[1].bind: address already in use".into(),
            },
        ),
        ("status_request", Message::StatusRequest),
        (
            "status_reply",
            Message::StatusReply {
                status: ControlStatus {
                    config_path: "/etc/ringmesh/mesh.toml".into(),
                    generation: 8,
                    last_error: Some("/etc/ringmesh/mesh.toml: cluster[0].endpoints[0]: \"nowhere\" is not an address".into()),
                    dataplanes: vec![
                        DataplaneStatus {
                            node: "node-a".into(),
                            acked_generation: 7,
                            last_nack: Some("generation 8: bind failed".into()),
                            connected_secs: 3723,
                            spiffe_id: None,
                            svid_expires_unix: None,
                            reload_to_ack_us: None,
                        },
                        DataplaneStatus {
                            node: "node-b".into(),
                            acked_generation: 8,
                            last_nack: None,
                            connected_secs: 5,
                            spiffe_id: None,
                            svid_expires_unix: None,
                            reload_to_ack_us: None,
                        },
                    ],
                },
            },
        ),
        ("snapshot_request", Message::SnapshotRequest),
        // Added in 1.1. The PEM blocks are short stand-ins: the fixture pins the
        // field names and types, not certificate contents.
        (
            "identity",
            Message::Identity {
                spiffe_id: "spiffe://mesh.example/ns/default/sa/node-a".into(),
                chain_pem: "-----BEGIN CERTIFICATE-----\nTUlJQg==\n-----END CERTIFICATE-----\n"
                    .into(),
                key_pem: KeyPem(
                    "-----BEGIN PRIVATE KEY-----\nTUlJRQ==\n-----END PRIVATE KEY-----\n".into(),
                ),
                bundle_pem: "-----BEGIN CERTIFICATE-----\nTUlJQw==\n-----END CERTIFICATE-----\n"
                    .into(),
                trust_domain: "mesh.example".into(),
                expires_unix: 1_767_225_600,
            },
        ),
        // Sent binary only (see `wire_binary_golden.rs`); its JSON form pins the
        // field and variant names the binary encoding uses too.
        (
            "snapshot_delta",
            Message::SnapshotDelta {
                delta: Box::new(SnapshotDelta {
                    base: 7,
                    generation: 8,
                    runtime: None,
                    mesh: MeshChange::Set(Some(MeshSpec {
                        trust_domain: "mesh.example".into(),
                        cert: None,
                        key: None,
                        bundle: None,
                    })),
                    listener_count: 2,
                    listeners: vec![ListenerChange::Routes {
                        index: 0,
                        route_count: 2,
                        routes: Vec::new(),
                    }],
                    cluster_count: 2,
                    clusters: Vec::new(),
                }),
            },
        ),
        (
            "status_reply_1_1",
            Message::StatusReply {
                status: ControlStatus {
                    config_path: "/etc/ringmesh/mesh.toml".into(),
                    generation: 8,
                    last_error: None,
                    dataplanes: vec![DataplaneStatus {
                        node: "node-a".into(),
                        acked_generation: 8,
                        last_nack: None,
                        connected_secs: 60,
                        spiffe_id: Some("spiffe://mesh.example/ns/default/sa/node-a".into()),
                        svid_expires_unix: Some(1_767_225_600),
                        reload_to_ack_us: None,
                    }],
                },
            },
        ),
    ]
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    frame
}

fn bless_missing() {
    if std::env::var_os("RINGMESH_BLESS_WIRE").is_none() {
        return;
    }
    for (name, message) in fixtures() {
        let path = dir().join(format!("{name}.json"));
        if !path.exists() {
            let text = serde_json::to_string_pretty(&message).unwrap();
            std::fs::write(&path, text + "\n").unwrap();
        }
    }
}

#[test]
fn every_v1_fixture_still_decodes_to_its_message() {
    bless_missing();
    for (name, expected) in fixtures() {
        let path = dir().join(format!("{name}.json"));
        let payload =
            std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let (decoded, used) = wire::decode(&frame(&payload))
            .unwrap_or_else(|err| panic!("{name}: {err}"))
            .unwrap_or_else(|| panic!("{name}: incomplete frame"));
        assert_eq!(used, payload.len() + 4, "{name}");
        let mut reader = &frame(&payload)[..];
        assert_eq!(wire::read_message(&mut reader).unwrap(), decoded, "{name}");
        // Nothing the fixture says may be lost, renamed or re-typed when it is
        // decoded and written again; fields added since may appear.
        let written: serde_json::Value = serde_json::to_value(&decoded).unwrap();
        let original: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        if let Err(at) = contained_in(&original, &written, name.to_string()) {
            panic!("{name}: {at} differs after a decode and re-encode");
        }
        match decoded {
            // The snapshot is compared by shape rather than with today's compiler
            // output, which may legitimately change defaults.
            Message::Snapshot { snapshot } => check_snapshot_fixture(&snapshot),
            decoded => assert_eq!(
                decoded, expected,
                "{name}: decodes differently than protocol 1.0 meant"
            ),
        }
    }
}

fn check_snapshot_fixture(snapshot: &Snapshot) {
    use ringmesh_api::snapshot::{ListenerKind, RouteAction};
    assert_eq!(snapshot.generation, 7);
    assert_eq!(snapshot.runtime.workers, Some(2));
    let names: Vec<&str> = snapshot.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["edge", "db"]);
    let ListenerKind::Http(http) = &snapshot.listeners[0].kind else {
        panic!("edge is an HTTP listener");
    };
    assert_eq!(http.routes.len(), 3);
    assert!(matches!(&http.routes[1].action, RouteAction::Split(split) if split.len() == 2));
    assert!(matches!(snapshot.listeners[1].kind, ListenerKind::Tcp(_)));
    let clusters: Vec<&str> = snapshot.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(clusters, ["blue", "green"]);
    assert_eq!(snapshot.clusters[0].endpoints[1].weight, 3);
}

/// `Ok` if every value in `old` appears unchanged at the same place in `new`.
fn is_empty_default(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.values().all(is_empty_default),
        _ => false,
    }
}

fn contained_in(
    old: &serde_json::Value,
    new: &serde_json::Value,
    at: String,
) -> Result<(), String> {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            a.iter().try_for_each(|(key, value)| match b.get(key) {
                Some(other) => contained_in(value, other, format!("{at}.{key}")),
                // Empty values may be left out when writing (they decode to the
                // same default), which keeps large snapshots small.
                None if is_empty_default(value) => Ok(()),
                None => Err(format!("{at}.{key}")),
            })
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .try_for_each(|(i, (x, y))| contained_in(x, y, format!("{at}[{i}]"))),
        _ if old == new => Ok(()),
        _ => Err(at),
    }
}

#[test]
fn fixtures_with_unknown_fields_still_decode() {
    for (name, _) in fixtures() {
        let payload = std::fs::read(dir().join(format!("{name}.json"))).unwrap();
        let (plain, _) = wire::decode(&frame(&payload)).unwrap().unwrap();
        let mut value: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        value.as_object_mut().unwrap().insert(
            "added_in_a_later_minor".into(),
            serde_json::json!({ "x": [1, 2] }),
        );
        let extended = serde_json::to_vec(&value).unwrap();
        let (decoded, _) = wire::decode(&frame(&extended)).unwrap().unwrap();
        assert_eq!(decoded, plain, "{name}");
    }
}

#[test]
fn every_message_kind_has_a_fixture() {
    let names: Vec<&str> = fixtures().iter().map(|(name, _)| *name).collect();
    for (_, message) in fixtures() {
        // Exhaustive on purpose: a new variant must get a fixture here.
        let kind = match message {
            Message::Hello { .. } => "hello_",
            Message::HelloAck { .. } => "hello_ack",
            Message::Reject { .. } => "reject",
            Message::Snapshot { .. } => "snapshot",
            Message::SnapshotDelta { .. } => "snapshot_delta",
            Message::Ack { .. } => "ack",
            Message::Nack { .. } => "nack",
            Message::StatusRequest => "status_request",
            Message::StatusReply { .. } => "status_reply",
            Message::SnapshotRequest => "snapshot_request",
            Message::Identity { .. } => "identity",
        };
        assert!(names.iter().any(|n| n.starts_with(kind)), "{kind}");
    }
    let on_disk = std::fs::read_dir(dir()).unwrap().count();
    assert_eq!(
        on_disk,
        names.len(),
        "a fixture on disk is not checked by fixtures()"
    );
}

#[test]
fn the_type_tag_is_snake_case() {
    // The tag names are part of the protocol, independent of Rust naming.
    let payload = std::fs::read_to_string(dir().join("status_request.json")).unwrap();
    assert_eq!(payload.trim(), "{\n  \"type\": \"status_request\"\n}");
}
