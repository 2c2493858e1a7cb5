//! The control-socket protocol between `ringmesh-control` and its clients
//! (dataplanes and the CLI): length-prefixed JSON frames, and binary snapshot
//! frames for peers that speak 1.2.
//!
//! # Frames
//! Each frame is a big-endian `u32` payload length followed by that many bytes of
//! UTF-8 JSON encoding one [`Message`]. The length is checked against
//! [`MAX_FRAME`] before anything is allocated. Since 1.2 a snapshot may instead
//! travel as a binary payload: [`BINARY_SNAPSHOT`] (a NUL byte, which no JSON
//! text starts with, `RMB`, the format version) then the `Snapshot` in the
//! encoding of [`crate::binary`]. It is sent only to peers whose hello said 1.2
//! or later; every other message, and snapshots for older peers, stay JSON.
//!
//! # Compatibility rules
//! - `PROTOCOL_MAJOR` changes only when an old peer could misread a new message.
//!   Peers with different majors refuse each other in the handshake (`Reject`).
//! - `PROTOCOL_MINOR` grows when fields or messages are added. New fields are
//!   always optional (`#[serde(default)]`) so an older frame still decodes; a
//!   peer ignores message kinds it does not know only after the handshake
//!   agreed on a minor that has them.
//! - Fields are never renamed or re-typed within a major version. Unknown fields
//!   in a frame are ignored (forward compatibility), unlike the TOML file.
//! - `tests/fixtures/wire/v1/*.json` hold frames as the 1.x minor that added each
//!   message wrote them; they must keep decoding (`tests/wire_golden.rs`). Add a fixture for every new message.
//!
//! # History
//! - 1.0: hello, hello_ack, reject, snapshot, ack, nack, status and snapshot requests.
//! - 1.1: `identity` (control → dataplane: the dataplane's X.509-SVID), sent only
//!   to dataplanes whose hello said 1.1 or later (a 1.0 decoder refuses unknown
//!   kinds); `DataplaneStatus` gained `spiffe_id` and `svid_expires_unix`.
//! - 1.2: binary snapshot frames (format version 1), sent only to peers whose
//!   hello said 1.2 or later; fixtures in `tests/fixtures/wire/v1/*.bin`. A new
//!   incompatible binary format would take a new format version byte (and a
//!   new minor to negotiate it), never a changed meaning of version 1.
//! - 1.3: `snapshot_delta` (control → dataplane): the changes from the snapshot
//!   sent just before ([`crate::delta`]), binary only ([`BINARY_DELTA`]), sent
//!   only to peers whose hello said 1.3 or later and only when that peer's last
//!   frame was the delta's base; everything else still gets complete snapshots.

use crate::delta::SnapshotDelta;
use crate::snapshot::Snapshot;
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};

pub const PROTOCOL_MAJOR: u32 = 1;
pub const PROTOCOL_MINOR: u32 = 3;

/// First bytes of a binary snapshot payload (since 1.2): NUL, `RMB`, format version 1.
pub const BINARY_SNAPSHOT: [u8; 5] = [0, b'R', b'M', b'B', 1];

/// First bytes of a binary snapshot delta payload (since 1.3): NUL, `RMD`, format
/// version 1 (the value encoding of [`crate::binary`] version 1).
pub const BINARY_DELTA: [u8; 5] = [0, b'R', b'M', b'D', 1];

/// Largest accepted frame: a table of 10,000 routes and 10,000 endpoints is a few MiB.
pub const MAX_FRAME: u32 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolVersion {
    pub major: u32,
    pub minor: u32,
}

impl ProtocolVersion {
    pub const CURRENT: ProtocolVersion = ProtocolVersion {
        major: PROTOCOL_MAJOR,
        minor: PROTOCOL_MINOR,
    };

    pub fn compatible_with(self, other: ProtocolVersion) -> bool {
        self.major == other.major
    }

    /// Whether a peer that announced this version understands `identity` (1.1).
    pub fn has_identity(self) -> bool {
        self.major == PROTOCOL_MAJOR && self.minor >= 1
    }

    /// Whether a peer that announced this version decodes binary snapshots (1.2).
    pub fn has_binary_snapshots(self) -> bool {
        self.major == PROTOCOL_MAJOR && self.minor >= 2
    }

    /// Whether a peer that announced this version applies snapshot deltas (1.3).
    pub fn has_snapshot_deltas(self) -> bool {
        self.major == PROTOCOL_MAJOR && self.minor >= 3
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Receives snapshots and acknowledges them.
    Dataplane,
    /// Asks for status or the current snapshot, then leaves.
    Cli,
}

/// Per-dataplane line of a status answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataplaneStatus {
    pub node: String,
    /// Highest generation this dataplane acknowledged (0: none yet).
    pub acked_generation: u64,
    /// Last rejection reason from this dataplane, if its latest answer was a Nack.
    #[serde(default)]
    pub last_nack: Option<String>,
    /// Seconds since the dataplane connected.
    pub connected_secs: u64,
    /// The SPIFFE ID of the SVID last sent to this dataplane (since 1.1).
    #[serde(default)]
    pub spiffe_id: Option<String>,
    /// When that SVID expires, unix seconds (since 1.1).
    #[serde(default)]
    pub svid_expires_unix: Option<i64>,
    /// Microseconds from the start of the reload that produced the generation
    /// being served (SIGHUP received) to this dataplane's acknowledgement of it;
    /// `None` until it acknowledges, or when that generation was not a reload
    /// (since 1.2, optional: older peers neither send nor expect it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload_to_ack_us: Option<u64>,
}

/// A PEM private key: travels as a plain JSON string, but never shows in `Debug`
/// output, so logging a message cannot leak it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyPem(pub String);

impl std::fmt::Debug for KeyPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyPem(<{} bytes redacted>)", self.0.len())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlStatus {
    pub config_path: String,
    /// Generation being served.
    pub generation: u64,
    /// Why the last reload was rejected, while the previous snapshot keeps serving.
    #[serde(default)]
    pub last_error: Option<String>,
    pub dataplanes: Vec<DataplaneStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// First frame from a client.
    Hello {
        protocol: ProtocolVersion,
        role: Role,
        /// Node name (dataplanes) or a free label (CLI).
        node: String,
    },
    /// The control process accepts the client.
    HelloAck {
        protocol: ProtocolVersion,
    },
    /// Either side refuses the other; the connection closes after it.
    Reject {
        reason: String,
    },
    /// A complete table (control → dataplane).
    Snapshot {
        snapshot: Box<Snapshot>,
    },
    /// The changes from the snapshot sent just before (control → dataplane,
    /// since 1.3, binary only); acknowledged like a snapshot.
    SnapshotDelta {
        delta: Box<SnapshotDelta>,
    },
    /// Every worker serves `generation` now (dataplane → control).
    Ack {
        generation: u64,
    },
    /// The dataplane could not build `generation` and keeps its previous table.
    Nack {
        generation: u64,
        reason: String,
    },
    /// CLI → control.
    StatusRequest,
    StatusReply {
        status: ControlStatus,
    },
    /// CLI → control: the snapshot being served (for `diff`).
    SnapshotRequest,
    /// The dataplane's workload identity (control → dataplane, since 1.1): a
    /// fresh X.509-SVID and the trust bundle, sent after the first snapshot and
    /// again before the SVID expires. Not a generation: it is not acknowledged.
    Identity {
        /// The SVID's one URI SAN, `spiffe://<trust_domain>/...`.
        spiffe_id: String,
        /// The leaf first, then any intermediates (PEM CERTIFICATE blocks).
        chain_pem: String,
        /// The leaf's private key (PEM, PKCS#8).
        key_pem: KeyPem,
        /// The CA certificates peers' SVIDs chain to (PEM CERTIFICATE blocks).
        bundle_pem: String,
        trust_domain: String,
        /// The leaf's notAfter, unix seconds.
        expires_unix: i64,
    },
}

impl Message {
    /// The message's name as it appears in the `type` field, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "hello",
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
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLarge(u32),
    #[error("undecodable frame: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("undecodable binary snapshot: {0}")]
    Binary(#[from] crate::binary::Error),
    #[error("connection: {0}")]
    Io(#[from] io::Error),
    #[error("peer closed the connection")]
    Closed,
}

/// The frame for `message`: length prefix and payload.
pub fn encode(message: &Message) -> Result<Vec<u8>, WireError> {
    frame_json(message)
}

fn frame_json(message: &impl Serialize) -> Result<Vec<u8>, WireError> {
    let mut frame = vec![0u8; 4];
    serde_json::to_writer(&mut frame, message)?;
    let len = u32::try_from(frame.len() - 4).map_err(|_| WireError::TooLarge(u32::MAX))?;
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    frame[..4].copy_from_slice(&len.to_be_bytes());
    Ok(frame)
}

/// A snapshot message that borrows its table, so encoding it needs no copy of it.
/// Serializes exactly as `Message::Snapshot` does (tag first).
#[derive(Serialize)]
struct SnapshotRef<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    snapshot: &'a Snapshot,
}

/// The frame of `Message::Snapshot { snapshot }`, without cloning the snapshot.
pub fn encode_snapshot(snapshot: &Snapshot) -> Result<Vec<u8>, WireError> {
    frame_json(&SnapshotRef {
        kind: "snapshot",
        snapshot,
    })
}

/// The binary frame of `Message::Snapshot { snapshot }` (for peers of 1.2 or
/// later: see `ProtocolVersion::has_binary_snapshots`).
pub fn encode_snapshot_binary(snapshot: &Snapshot) -> Result<Vec<u8>, WireError> {
    binary_frame(&BINARY_SNAPSHOT, snapshot)
}

/// The binary frame of `Message::SnapshotDelta { delta }` (for peers of 1.3 or
/// later: see `ProtocolVersion::has_snapshot_deltas`).
pub fn encode_delta_binary(delta: &SnapshotDelta) -> Result<Vec<u8>, WireError> {
    binary_frame(&BINARY_DELTA, delta)
}

fn binary_frame(prefix: &[u8], value: &impl Serialize) -> Result<Vec<u8>, WireError> {
    let mut frame = vec![0u8; 4];
    frame.extend_from_slice(prefix);
    crate::binary::to_writer(&mut frame, value)?;
    let len = u32::try_from(frame.len() - 4).map_err(|_| WireError::TooLarge(u32::MAX))?;
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    frame[..4].copy_from_slice(&len.to_be_bytes());
    Ok(frame)
}

/// Decode one frame from the start of `buf`: `Ok(None)` when more bytes are
/// needed, else the message and the bytes it used.
pub fn decode(buf: &[u8]) -> Result<Option<(Message, usize)>, WireError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    let end = 4 + len as usize;
    let Some(payload) = buf.get(4..end) else {
        return Ok(None);
    };
    Ok(Some((decode_payload(payload)?, end)))
}

/// A snapshot frame as this crate writes it: the tag first, then the table.
/// Decoding it as a plain struct avoids serde's buffering of internally tagged
/// enums, which copies a large table into an intermediate tree first (measured
/// 2–3× slower for a table of 10,000 routes).
#[derive(Deserialize)]
struct SnapshotFrame {
    snapshot: Box<Snapshot>,
}

/// The message in a frame's payload.
pub fn decode_payload(payload: &[u8]) -> Result<Message, WireError> {
    if let Some(rest) = payload.strip_prefix(&BINARY_SNAPSHOT) {
        let snapshot: Snapshot = crate::binary::from_slice(rest)?;
        return Ok(Message::Snapshot {
            snapshot: Box::new(snapshot),
        });
    }
    if let Some(rest) = payload.strip_prefix(&BINARY_DELTA) {
        let delta: SnapshotDelta = crate::binary::from_slice(rest)?;
        return Ok(Message::SnapshotDelta {
            delta: Box::new(delta),
        });
    }
    if payload.first() == Some(&0) {
        return Err(WireError::Binary(crate::binary::Error(
            "unknown binary payload (another format version?)".into(),
        )));
    }
    const SNAPSHOT_TAG: &[u8] = br#"{"type":"snapshot","#;
    if payload.starts_with(SNAPSHOT_TAG) {
        // Same object without its tag; any other layout takes the general path.
        let mut untagged = Vec::with_capacity(payload.len());
        untagged.push(b'{');
        untagged.extend_from_slice(&payload[SNAPSHOT_TAG.len()..]);
        if let Ok(frame) = serde_json::from_slice::<SnapshotFrame>(&untagged) {
            return Ok(Message::Snapshot {
                snapshot: frame.snapshot,
            });
        }
    }
    Ok(serde_json::from_slice(payload)?)
}

/// Blocking write of one frame.
pub fn write_message(stream: &mut impl Write, message: &Message) -> Result<(), WireError> {
    let frame = encode(message)?;
    stream.write_all(&frame)?;
    stream.flush()?;
    Ok(())
}

/// Blocking read of one frame; `Closed` on a clean EOF before a frame starts.
pub fn read_message(stream: &mut impl Read) -> Result<Message, WireError> {
    decode_payload(&read_payload(stream)?)
}

/// Blocking read of one frame's payload, undecoded (for callers that time or
/// log the decoding separately); `Closed` on a clean EOF before a frame starts.
pub fn read_payload(stream: &mut impl Read) -> Result<Vec<u8>, WireError> {
    let mut prefix = [0u8; 4];
    match stream.read_exact(&mut prefix) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Err(WireError::Closed),
        Err(err) => return Err(err.into()),
    }
    let len = u32::from_be_bytes(prefix);
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    let mut payload = vec![0u8; len as usize];
    stream.read_exact(&mut payload)?;
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_partial_frames() {
        let message = Message::Ack { generation: 7 };
        let frame = encode(&message).unwrap();
        for cut in 0..frame.len() {
            assert!(decode(&frame[..cut]).unwrap().is_none());
        }
        let (decoded, used) = decode(&frame).unwrap().unwrap();
        assert_eq!(decoded, message);
        assert_eq!(used, frame.len());
        let mut reader = &frame[..];
        assert_eq!(read_message(&mut reader).unwrap(), message);
        assert!(matches!(read_message(&mut reader), Err(WireError::Closed)));
    }

    #[test]
    fn snapshot_fast_path_matches_the_general_decoder() {
        let text = "[[cluster]]\nname = \"a\"\nendpoints = [\"127.0.0.1:1\"]\n";
        let snapshot = crate::compile_str(text, "t.toml", 3).unwrap();
        let message = Message::Snapshot {
            snapshot: Box::new(snapshot),
        };
        let frame = encode(&message).unwrap();
        assert!(frame[4..].starts_with(br#"{"type":"snapshot","#));
        let Message::Snapshot { snapshot } = &message else {
            unreachable!()
        };
        assert_eq!(encode_snapshot(snapshot).unwrap(), frame);
        assert_eq!(decode(&frame).unwrap().unwrap().0, message);
        let general: Message = serde_json::from_slice(&frame[4..]).unwrap();
        assert_eq!(general, message);
        // Another key order still decodes, through the general path.
        let reordered = br#"{"snapshot":{"generation":1,"runtime":{"workers":null,"drain_timeout_ms":1,"admin":null},"listeners":[],"clusters":[]},"type":"snapshot"}"#;
        assert!(matches!(
            decode_payload(reordered).unwrap(),
            Message::Snapshot { .. }
        ));
    }

    #[test]
    fn oversized_length_is_refused_before_allocating() {
        let frame = (MAX_FRAME + 1).to_be_bytes();
        assert!(matches!(decode(&frame), Err(WireError::TooLarge(_))));
        let mut reader = &frame[..];
        assert!(matches!(
            read_message(&mut reader),
            Err(WireError::TooLarge(_))
        ));
    }

    #[test]
    fn unknown_fields_are_ignored_and_majors_must_match() {
        let text = br#"{"type":"ack","generation":3,"added_later":true}"#;
        let mut frame = (text.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(text);
        assert_eq!(
            decode(&frame).unwrap().unwrap().0,
            Message::Ack { generation: 3 }
        );
        let v2 = ProtocolVersion { major: 2, minor: 0 };
        assert!(!ProtocolVersion::CURRENT.compatible_with(v2));
        assert!(ProtocolVersion::CURRENT.compatible_with(ProtocolVersion { major: 1, minor: 9 }));
    }

    #[test]
    fn binary_snapshots_decode_like_json_and_only_for_1_2_peers() {
        assert!(!ProtocolVersion { major: 1, minor: 1 }.has_binary_snapshots());
        assert!(ProtocolVersion { major: 1, minor: 2 }.has_binary_snapshots());
        let text = "[[listener]]\nname = \"e\"\nbind = \"127.0.0.1:1\"\nprotocol = \"http\"\n\
                    [[listener.route]]\nname = \"r\"\npath_prefix = \"/\"\ncluster = \"a\"\n\
                    [[cluster]]\nname = \"a\"\nbalance = \"maglev\"\nhash_key = { header = \"x-user\" }\n\
                    endpoints = [\"127.0.0.1:1\", { addr = \"[::1]:2\", weight = 3 }]\n";
        let snapshot = crate::compile_str(text, "t.toml", 9).unwrap();
        let frame = encode_snapshot_binary(&snapshot).unwrap();
        assert_eq!(&frame[4..9], &BINARY_SNAPSHOT);
        let json = encode_snapshot(&snapshot).unwrap();
        assert!(frame.len() < json.len());
        let (decoded, used) = decode(&frame).unwrap().unwrap();
        assert_eq!(used, frame.len());
        assert_eq!(decoded, decode(&json).unwrap().unwrap().0);
        assert_eq!(
            decoded,
            Message::Snapshot {
                snapshot: Box::new(snapshot)
            }
        );
        for cut in 0..frame.len() {
            assert!(decode(&frame[..cut]).unwrap().is_none());
        }
        // A format version this build does not know is refused, not misread.
        let mut other = frame.clone();
        other[8] = 2;
        assert!(matches!(decode(&other), Err(WireError::Binary(_))));
        // Truncated payloads (with a consistent length prefix) are errors.
        for cut in 5..frame.len() - 4 {
            let mut short = ((cut) as u32).to_be_bytes().to_vec();
            short.extend_from_slice(&frame[4..4 + cut]);
            assert!(decode(&short).is_err(), "payload cut at {cut}");
        }
    }

    #[test]
    fn identity_is_for_1_1_peers_and_hides_its_key() {
        assert!(!ProtocolVersion { major: 1, minor: 0 }.has_identity());
        assert!(ProtocolVersion { major: 1, minor: 1 }.has_identity());
        assert!(ProtocolVersion::CURRENT.has_identity());
        let message = Message::Identity {
            spiffe_id: "spiffe://td/ns/default/sa/a".into(),
            chain_pem: "chain".into(),
            key_pem: KeyPem("-----BEGIN PRIVATE KEY-----secret".into()),
            bundle_pem: "bundle".into(),
            trust_domain: "td".into(),
            expires_unix: 1,
        };
        assert_eq!(message.kind(), "identity");
        assert!(!format!("{message:?}").contains("secret"));
        let frame = encode(&message).unwrap();
        assert!(String::from_utf8_lossy(&frame).contains("\"key_pem\":\"-----BEGIN"));
        assert_eq!(decode(&frame).unwrap().unwrap().0, message);
    }
}
