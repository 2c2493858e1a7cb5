//! Golden frames for the binary snapshot encoding (protocol 1.2, format version 1):
//! `fixtures/wire/v1-binary/*.bin` hold payloads as the first build that spoke 1.2
//! wrote them, and they must keep decoding for as long as format version 1 is
//! spoken (see the rules at the top of `src/wire.rs`).
//!
//! Never edit or regenerate an existing fixture. `snapshot.bin` was written from
//! the message that `fixtures/wire/v1/snapshot.json` decodes to, so both encodings
//! of one message are pinned against each other. To add a fixture, run
//! `RINGMESH_BLESS_WIRE=1 cargo test -p ringmesh-api --test wire_binary_golden`,
//! which writes only the fixtures that do not exist yet.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ringmesh_api::wire::{self, Message, BINARY_DELTA, BINARY_SNAPSHOT};
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wire")
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    frame
}

/// The message the JSON snapshot fixture (protocol 1.0) decodes to.
fn json_snapshot() -> Message {
    let payload = std::fs::read(dir().join("v1/snapshot.json")).unwrap();
    wire::decode(&frame(&payload)).unwrap().unwrap().0
}

/// The message the JSON delta fixture (protocol 1.3) decodes to.
fn json_delta() -> Message {
    let payload = std::fs::read(dir().join("v1/snapshot_delta.json")).unwrap();
    wire::decode(&frame(&payload)).unwrap().unwrap().0
}

fn bless_missing() {
    let path = dir().join("v1-binary/snapshot_delta.bin");
    if std::env::var_os("RINGMESH_BLESS_WIRE").is_some() && !path.exists() {
        let Message::SnapshotDelta { delta } = json_delta() else {
            panic!("snapshot_delta.json is not a delta");
        };
        std::fs::write(&path, &wire::encode_delta_binary(&delta).unwrap()[4..]).unwrap();
    }
    let path = dir().join("v1-binary/snapshot.bin");
    if std::env::var_os("RINGMESH_BLESS_WIRE").is_none() || path.exists() {
        return;
    }
    let Message::Snapshot { snapshot } = json_snapshot() else {
        panic!("snapshot.json is not a snapshot");
    };
    let frame = wire::encode_snapshot_binary(&snapshot).unwrap();
    std::fs::create_dir_all(dir().join("v1-binary")).unwrap();
    std::fs::write(&path, &frame[4..]).unwrap();
}

#[test]
fn the_binary_snapshot_fixture_decodes_to_the_json_one() {
    bless_missing();
    let payload = std::fs::read(dir().join("v1-binary/snapshot.bin")).unwrap();
    assert!(payload.starts_with(&BINARY_SNAPSHOT));
    let (decoded, used) = wire::decode(&frame(&payload)).unwrap().unwrap();
    assert_eq!(used, payload.len() + 4);
    assert_eq!(decoded, json_snapshot());
    let mut reader = &frame(&payload)[..];
    assert_eq!(wire::read_message(&mut reader).unwrap(), decoded);
    // What this build writes for the same message decodes to it too.
    let Message::Snapshot { snapshot } = &decoded else {
        panic!("not a snapshot");
    };
    let again = wire::encode_snapshot_binary(snapshot).unwrap();
    assert_eq!(wire::decode(&again).unwrap().unwrap().0, decoded);
}

#[test]
fn the_binary_delta_fixture_decodes_to_the_json_one() {
    bless_missing();
    let payload = std::fs::read(dir().join("v1-binary/snapshot_delta.bin")).unwrap();
    assert!(payload.starts_with(&BINARY_DELTA));
    let (decoded, used) = wire::decode(&frame(&payload)).unwrap().unwrap();
    assert_eq!(used, payload.len() + 4);
    assert_eq!(decoded, json_delta());
    let Message::SnapshotDelta { delta } = &decoded else {
        panic!("not a delta");
    };
    let again = wire::encode_delta_binary(delta).unwrap();
    assert_eq!(
        &again[4..],
        &payload[..],
        "this build writes the delta differently"
    );
}

#[test]
fn corrupted_binary_fixtures_are_refused_without_panicking() {
    for name in ["snapshot.bin", "snapshot_delta.bin"] {
        let payload = std::fs::read(dir().join("v1-binary").join(name)).unwrap();
        refuses_corruption_of(&payload);
    }
}

fn refuses_corruption_of(payload: &[u8]) {
    for at in BINARY_SNAPSHOT.len()..payload.len() {
        for value in [0x00, 0x0b, 0x7f, 0xff] {
            let mut broken = payload.to_vec();
            broken[at] = value;
            // Decoding may succeed (a changed number or letter) or fail: it may not
            // panic, and a failure must be a decode error.
            if let Err(err) = wire::decode(&frame(&broken)) {
                assert!(matches!(err, wire::WireError::Binary(_)), "{err}");
            }
        }
    }
}
