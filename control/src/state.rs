//! What the control process knows, shared by the accept loop, every connection
//! thread and the reload thread: the snapshot being served, the last reload error,
//! the SVID issuer (when serving as the mesh CA), and one entry per connected
//! dataplane with the channel that feeds it snapshots and its current SVID.
//!
//! One `Mutex` guards it all. This is not the request path: it is taken a few times
//! per connection and per reload, never while doing IO. Publishing a snapshot and
//! registering a dataplane both happen under it, which is what guarantees that a
//! dataplane gets every generation exactly once and in order: it either sees the new
//! snapshot as "current" when it registers, or receives it through its channel.

use crate::issuer::SvidIssuer;
use ringmesh_api::delta::SnapshotDelta;
use ringmesh_api::wire::{self, ControlStatus, DataplaneStatus, ProtocolVersion, WireError};
use ringmesh_api::{Compiler, ConfigErrors, Snapshot};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Identifies one dataplane connection (a node may connect more than once).
pub type SessionId = u64;

/// A snapshot encoded once as a wire frame, shared by every connection that sends
/// it: fan-out to many dataplanes costs one serialization, not one per dataplane.
/// The binary frame (protocol 1.2) is encoded at once; the JSON one only when a
/// peer older than 1.2 asks for it. A reload also carries the delta from the
/// generation before (protocol 1.3), for the peers that were sent that one.
#[derive(Debug)]
pub struct SnapshotFrame {
    pub generation: u64,
    snapshot: Arc<Snapshot>,
    /// Length prefix and binary payload, ready to write.
    binary: Vec<u8>,
    /// The generation the delta applies to, and its frame.
    delta: Option<(u64, Vec<u8>)>,
    json: OnceLock<Result<Vec<u8>, String>>,
}

impl SnapshotFrame {
    pub fn encode(snapshot: Arc<Snapshot>) -> Result<SnapshotFrame, WireError> {
        let binary = wire::encode_snapshot_binary(&snapshot)?;
        Ok(SnapshotFrame {
            generation: snapshot.generation,
            snapshot,
            binary,
            delta: None,
            json: OnceLock::new(),
        })
    }

    /// Adds the delta that leads to this snapshot (ignored if it does not, is
    /// no smaller than the snapshot, or cannot be encoded: peers then get the
    /// complete snapshot).
    fn with_delta(mut self, delta: Option<&SnapshotDelta>) -> SnapshotFrame {
        self.delta = delta
            .filter(|delta| delta.generation == self.generation)
            .and_then(|delta| {
                let frame = wire::encode_delta_binary(delta).ok()?;
                (frame.len() < self.binary.len()).then_some((delta.base, frame))
            });
        self
    }

    /// The frame to write to a peer that announced `protocol` and was last sent
    /// generation `peer_has` (0: nothing yet).
    pub fn bytes_for(&self, protocol: ProtocolVersion, peer_has: u64) -> Result<&[u8], String> {
        if let Some(frame) = self.delta_for(protocol, peer_has) {
            return Ok(frame);
        }
        if protocol.has_binary_snapshots() {
            return Ok(&self.binary);
        }
        self.json
            .get_or_init(|| wire::encode_snapshot(&self.snapshot).map_err(|err| err.to_string()))
            .as_deref()
            .map_err(Clone::clone)
    }

    /// Whether `bytes_for(protocol, peer_has)` is a delta (for logs).
    pub fn is_delta_for(&self, protocol: ProtocolVersion, peer_has: u64) -> bool {
        self.delta_for(protocol, peer_has).is_some()
    }

    fn delta_for(&self, protocol: ProtocolVersion, peer_has: u64) -> Option<&[u8]> {
        let (base, frame) = self.delta.as_ref()?;
        (protocol.has_snapshot_deltas() && *base == peer_has).then_some(frame.as_slice())
    }
}

/// What a dataplane connection's writer waits for.
#[derive(Debug)]
pub enum Event {
    /// A new generation to send.
    Snapshot(Arc<SnapshotFrame>),
    /// The reader saw the peer leave or misbehave: stop writing and close.
    PeerGone,
}

/// What an `Ack` meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// Recorded. `latency` is the time since that generation was published, when it
    /// is the one being served.
    Recorded { latency: Option<Duration> },
    /// The generation was never sent to this dataplane: ignored.
    NotSent { sent: u64 },
    /// Older than one already acknowledged (answers can arrive late): ignored.
    Stale { acked: u64 },
}

struct DataplaneEntry {
    node: String,
    connected_at: Instant,
    /// Highest generation acknowledged (0: none yet).
    acked: u64,
    /// Highest generation handed to the writer.
    sent: u64,
    last_nack: Option<String>,
    /// The SVID last sent: its SPIFFE ID and expiry (unix seconds).
    svid: Option<(String, i64)>,
    /// Reload start → this dataplane's ack of the current generation.
    reload_to_ack: Option<Duration>,
    events: Sender<Event>,
}

struct State {
    current: Arc<Snapshot>,
    current_frame: Arc<SnapshotFrame>,
    published_at: Instant,
    /// When the reload that produced `current` started (`None`: not a reload).
    reload_started: Option<Instant>,
    last_error: Option<String>,
    dataplanes: BTreeMap<SessionId, DataplaneEntry>,
    next_id: SessionId,
}

/// The control process's state, shared between threads behind an `Arc`.
pub struct Shared {
    config_path: PathBuf,
    /// Set when serving as the mesh CA; never changes afterwards.
    svid_issuer: Option<Arc<SvidIssuer>>,
    /// Recompiles the config file on reload; only the reload thread takes it.
    compiler: Mutex<Compiler>,
    state: Mutex<State>,
}

impl Shared {
    /// Fails only if the snapshot cannot be encoded (larger than a frame may be).
    pub fn new(config_path: PathBuf, first: Snapshot) -> Result<Self, WireError> {
        let first = Arc::new(first);
        let frame = SnapshotFrame::encode(Arc::clone(&first))?;
        Ok(Shared {
            config_path,
            svid_issuer: None,
            compiler: Mutex::new(Compiler::new()),
            state: Mutex::new(State {
                current: first,
                current_frame: Arc::new(frame),
                published_at: Instant::now(),
                reload_started: None,
                last_error: None,
                dataplanes: BTreeMap::new(),
                next_id: 1,
            }),
        })
    }

    /// Serve as the mesh CA: every dataplane session gets SVIDs from `issuer`.
    pub fn with_svid_issuer(mut self, issuer: SvidIssuer) -> Self {
        self.svid_issuer = Some(Arc::new(issuer));
        self
    }

    /// Reload with `compiler`, which has already compiled the file once.
    pub fn with_compiler(mut self, compiler: Compiler) -> Self {
        self.compiler = Mutex::new(compiler);
        self
    }

    /// Compiles the config file as `generation`.
    pub fn compile(&self, generation: u64) -> Result<Snapshot, ConfigErrors> {
        // A panic while compiling leaves at worst a cache that is rebuilt on
        // the next parse: keep going.
        let mut compiler = self
            .compiler
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        compiler.compile_file(&self.config_path, generation)
    }

    pub fn svid_issuer(&self) -> Option<&Arc<SvidIssuer>> {
        self.svid_issuer.as_ref()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in another thread cannot leave this state half-updated in a way
        // that matters more than stopping service would: keep going.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The snapshot being served.
    pub fn current(&self) -> Arc<Snapshot> {
        Arc::clone(&self.lock().current)
    }

    /// Registers a dataplane. Returns its id, the snapshot to send first, the
    /// receiver its writer waits on, and a sender its reader uses to stop the writer.
    pub fn register(
        &self,
        node: &str,
    ) -> (
        SessionId,
        Arc<SnapshotFrame>,
        Receiver<Event>,
        Sender<Event>,
    ) {
        let (events, receiver) = mpsc::channel();
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        let first = Arc::clone(&state.current_frame);
        state.dataplanes.insert(
            id,
            DataplaneEntry {
                node: node.to_string(),
                connected_at: Instant::now(),
                acked: 0,
                sent: 0,
                last_nack: None,
                svid: None,
                reload_to_ack: None,
                events: events.clone(),
            },
        );
        (id, first, receiver, events)
    }

    pub fn unregister(&self, id: SessionId) {
        self.lock().dataplanes.remove(&id);
    }

    /// The writer handed `generation` to the socket.
    pub fn mark_sent(&self, id: SessionId, generation: u64) {
        if let Some(entry) = self.lock().dataplanes.get_mut(&id) {
            entry.sent = entry.sent.max(generation);
        }
    }

    /// The writer sent this dataplane an SVID for `spiffe_id` expiring at
    /// `expires_unix`.
    pub fn mark_svid(&self, id: SessionId, spiffe_id: &str, expires_unix: i64) {
        if let Some(entry) = self.lock().dataplanes.get_mut(&id) {
            entry.svid = Some((spiffe_id.to_string(), expires_unix));
        }
    }

    pub fn record_ack(&self, id: SessionId, generation: u64) -> AckOutcome {
        let mut state = self.lock();
        let serving = state.current.generation;
        let latency = (generation == serving).then(|| state.published_at.elapsed());
        let since_reload = state
            .reload_started
            .filter(|_| generation == serving)
            .map(|started| started.elapsed());
        let Some(entry) = state.dataplanes.get_mut(&id) else {
            return AckOutcome::Recorded { latency: None };
        };
        if generation > entry.sent {
            return AckOutcome::NotSent { sent: entry.sent };
        }
        if generation < entry.acked {
            return AckOutcome::Stale { acked: entry.acked };
        }
        entry.acked = generation;
        entry.last_nack = None;
        if since_reload.is_some() {
            entry.reload_to_ack = since_reload;
        }
        AckOutcome::Recorded { latency }
    }

    /// Records a rejection; `false` if the generation was never sent (ignored).
    pub fn record_nack(&self, id: SessionId, generation: u64, reason: &str) -> bool {
        let mut state = self.lock();
        let Some(entry) = state.dataplanes.get_mut(&id) else {
            return false;
        };
        if generation > entry.sent {
            return false;
        }
        entry.last_nack = Some(format!("generation {generation}: {reason}"));
        true
    }

    /// Serves `snapshot` from now on, queues it for every dataplane, clears the last
    /// reload error, and returns how many dataplanes it was queued for. Fails, and
    /// changes nothing, if the snapshot cannot be encoded.
    /// `reload_started`: when the reload that compiled it began, for the
    /// reload → acknowledgement time in `status`.
    pub fn publish(
        &self,
        snapshot: Snapshot,
        delta: Option<&SnapshotDelta>,
        reload_started: Option<Instant>,
    ) -> Result<usize, WireError> {
        let snapshot = Arc::new(snapshot);
        // Encoded before taking the lock, which sessions and status also need.
        let mut frame = SnapshotFrame::encode(Arc::clone(&snapshot))?.with_delta(delta);
        let mut state = self.lock();
        // Only a delta from the snapshot being replaced is any use.
        if frame
            .delta
            .as_ref()
            .is_some_and(|(base, _)| *base != state.current.generation)
        {
            frame.delta = None;
        }
        let frame = Arc::new(frame);
        state.current = snapshot;
        state.current_frame = Arc::clone(&frame);
        state.published_at = Instant::now();
        state.reload_started = reload_started;
        for entry in state.dataplanes.values_mut() {
            entry.reload_to_ack = None;
        }
        state.last_error = None;
        // A closed channel means the connection is on its way out; it unregisters
        // itself, so only count the ones that took it.
        Ok(state
            .dataplanes
            .values()
            .filter(|entry| {
                entry
                    .events
                    .send(Event::Snapshot(Arc::clone(&frame)))
                    .is_ok()
            })
            .count())
    }

    /// Keeps `error` for `status` until the next successful reload.
    pub fn set_error(&self, error: String) {
        self.lock().last_error = Some(error);
    }

    pub fn clear_error(&self) {
        self.lock().last_error = None;
    }

    pub fn status(&self) -> ControlStatus {
        let state = self.lock();
        ControlStatus {
            config_path: self.config_path.display().to_string(),
            generation: state.current.generation,
            last_error: state.last_error.clone(),
            dataplanes: state
                .dataplanes
                .values()
                .map(|entry| DataplaneStatus {
                    node: entry.node.clone(),
                    acked_generation: entry.acked,
                    last_nack: entry.last_nack.clone(),
                    connected_secs: entry.connected_at.elapsed().as_secs(),
                    spiffe_id: entry.svid.as_ref().map(|(id, _)| id.clone()),
                    svid_expires_unix: entry.svid.as_ref().map(|(_, expires)| *expires),
                    reload_to_ack_us: entry
                        .reload_to_ack
                        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmesh_api::compile_str;

    fn snapshot(generation: u64) -> Snapshot {
        compile_str(
            "[[cluster]]\nname = \"a\"\nendpoints = [\"127.0.0.1:1\"]\n",
            "mesh.toml",
            generation,
        )
        .unwrap()
    }

    #[test]
    fn a_dataplane_sees_every_generation_once() {
        let shared = Shared::new("mesh.toml".into(), snapshot(1)).unwrap();
        let (id, first, receiver, _stop) = shared.register("node-a");
        assert_eq!(first.generation, 1);
        assert_eq!(shared.publish(snapshot(2), None, None).unwrap(), 1);
        match receiver.try_recv() {
            Ok(Event::Snapshot(s)) => assert_eq!(s.generation, 2),
            other => panic!("expected generation 2, got {other:?}"),
        }
        shared.unregister(id);
        assert_eq!(shared.publish(snapshot(3), None, None).unwrap(), 0);
    }

    #[test]
    fn status_times_a_reload_until_each_acknowledgement() {
        let shared = Shared::new("mesh.toml".into(), snapshot(1)).unwrap();
        let (id, _, _receiver, _stop) = shared.register("node-a");
        let reload_to_ack = |shared: &Shared| shared.status().dataplanes[0].reload_to_ack_us;
        let started = Instant::now() - Duration::from_millis(5);
        shared.publish(snapshot(2), None, Some(started)).unwrap();
        shared.mark_sent(id, 2);
        assert_eq!(reload_to_ack(&shared), None, "not acknowledged yet");
        shared.record_ack(id, 2);
        let measured = reload_to_ack(&shared).unwrap();
        assert!((5_000..60_000_000).contains(&measured), "{measured} µs");
        // A generation that did not come from a reload has no such time.
        shared.publish(snapshot(3), None, None).unwrap();
        shared.mark_sent(id, 3);
        shared.record_ack(id, 3);
        assert_eq!(reload_to_ack(&shared), None);
    }

    #[test]
    fn snapshots_are_binary_for_1_2_peers_and_json_for_older_ones() {
        let frame = SnapshotFrame::encode(Arc::new(snapshot(4))).unwrap();
        for minor in [0, 1, 2, 3] {
            let bytes = frame
                .bytes_for(ProtocolVersion { major: 1, minor }, 3)
                .unwrap();
            let binary = bytes[4..].starts_with(&wire::BINARY_SNAPSHOT);
            assert_eq!(binary, minor >= 2, "minor {minor}");
            match wire::decode(bytes).unwrap() {
                Some((ringmesh_api::wire::Message::Snapshot { snapshot: s }, used)) => {
                    assert_eq!(*s, snapshot(4));
                    assert_eq!(used, bytes.len());
                }
                other => panic!("expected the snapshot, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_delta_goes_to_1_3_peers_that_were_sent_its_base() {
        let edited = |generation| {
            compile_str(
                "[[cluster]]\nname = \"a\"\nendpoints = [\"127.0.0.1:2\"]\n",
                "mesh.toml",
                generation,
            )
            .unwrap()
        };
        let shared = Shared::new("mesh.toml".into(), snapshot(1)).unwrap();
        let (_id, _, receiver, _stop) = shared.register("node-a");
        let delta = SnapshotDelta::between(&snapshot(1), &edited(2)).unwrap();
        shared.publish(edited(2), Some(&delta), None).unwrap();
        let Ok(Event::Snapshot(frame)) = receiver.try_recv() else {
            panic!("nothing queued");
        };
        let v = |minor| ProtocolVersion { major: 1, minor };
        let is_delta = |bytes: &[u8]| bytes[4..].starts_with(&wire::BINARY_DELTA);
        assert!(is_delta(frame.bytes_for(v(3), 1).unwrap()));
        assert!(frame.is_delta_for(v(3), 1));
        // Sent something else before, nothing yet, or too old for deltas: complete.
        for (minor, peer_has) in [(3, 0), (3, 7), (2, 1)] {
            assert!(!is_delta(frame.bytes_for(v(minor), peer_has).unwrap()));
            assert!(!frame.is_delta_for(v(minor), peer_has));
        }
        // A delta from another generation than the one served is not attached.
        let stale = SnapshotDelta::between(&snapshot(1), &edited(3)).unwrap();
        shared.publish(edited(3), Some(&stale), None).unwrap();
        let Ok(Event::Snapshot(frame)) = receiver.try_recv() else {
            panic!("nothing queued");
        };
        assert!(!frame.is_delta_for(v(3), 1));
        assert!(!frame.is_delta_for(v(3), 2));
    }

    #[test]
    fn acks_and_nacks_are_checked_against_what_was_sent() {
        let shared = Shared::new("mesh.toml".into(), snapshot(1)).unwrap();
        let (id, _, _receiver, _stop) = shared.register("node-a");
        assert_eq!(shared.record_ack(id, 1), AckOutcome::NotSent { sent: 0 });
        shared.mark_sent(id, 1);
        assert!(matches!(
            shared.record_ack(id, 1),
            AckOutcome::Recorded { latency: Some(_) }
        ));
        shared.publish(snapshot(2), None, None).unwrap();
        shared.mark_sent(id, 2);
        assert!(shared.record_nack(id, 2, "bind failed"));
        assert!(!shared.record_nack(id, 5, "never sent"));
        let status = shared.status();
        assert_eq!(status.generation, 2);
        assert_eq!(status.dataplanes[0].acked_generation, 1);
        assert_eq!(
            status.dataplanes[0].last_nack.as_deref(),
            Some("generation 2: bind failed")
        );
        assert!(matches!(
            shared.record_ack(id, 2),
            AckOutcome::Recorded { .. }
        ));
        assert_eq!(shared.record_ack(id, 1), AckOutcome::Stale { acked: 2 });
        assert_eq!(shared.status().dataplanes[0].last_nack, None);
    }

    #[test]
    fn errors_are_kept_until_a_publish() {
        let shared = Shared::new("mesh.toml".into(), snapshot(1)).unwrap();
        shared.set_error("mesh.toml: cluster[0].name: bad".into());
        assert!(shared.status().last_error.is_some());
        shared.publish(snapshot(2), None, None).unwrap();
        assert_eq!(shared.status().last_error, None);
    }

    #[test]
    fn svids_show_in_status() {
        let shared = Shared::new("mesh.toml".into(), snapshot(1)).unwrap();
        let (id, _, _receiver, _stop) = shared.register("node-a");
        assert_eq!(shared.status().dataplanes[0].svid_expires_unix, None);
        shared.mark_svid(id, "spiffe://td/ns/default/sa/node-a", 1_700_000_000);
        let row = &shared.status().dataplanes[0];
        assert_eq!(
            row.spiffe_id.as_deref(),
            Some("spiffe://td/ns/default/sa/node-a")
        );
        assert_eq!(row.svid_expires_unix, Some(1_700_000_000));
    }
}
