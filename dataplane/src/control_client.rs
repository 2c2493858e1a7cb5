//! The dataplane as a client of ringmesh-control (like an xDS client): connect, say
//! hello, take the first snapshot before serving, then apply every later one and
//! answer Ack or Nack. When the control process goes away the last good table keeps
//! serving and the client reconnects with backoff and jitter.
//!
//! A control process that is the node's mesh CA also sends `identity` messages
//! (protocol 1.1): this dataplane's SVID and trust bundle, right after the first
//! snapshot and again before the SVID expires. They are installed into
//! `Shared::identity` as they arrive and are not answered (they are not
//! generations). One that arrives before `Shared` exists (while the first
//! snapshot is read or rebuilt) waits in the session (`pending_identity`) and is
//! installed when following starts, so none is lost.
//!
//! Since protocol 1.3 a reload usually arrives as a `snapshot_delta`: the changes
//! from the snapshot received just before, applied to a copy of it kept here
//! (`Received`). A delta that does not apply means the two sides disagree on
//! that snapshot: the client reconnects, and the control process starts the new
//! connection with a complete snapshot.

use crate::apply::Applier;
use ringmesh_api::delta::SnapshotDelta;
use ringmesh_api::wire::{self, KeyPem, Message, ProtocolVersion, Role, WireError};
use ringmesh_api::Snapshot;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

pub struct Session {
    stream: UnixStream,
    /// The newest identity read while waiting for a snapshot, not installed yet.
    pending_identity: Option<Identity>,
}

/// An `identity` message: the SVID and trust bundle to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub spiffe_id: String,
    pub chain_pem: String,
    pub key_pem: KeyPem,
    pub bundle_pem: String,
    pub trust_domain: String,
    pub expires_unix: i64,
}

/// What the control process sent.
#[derive(Debug)]
pub enum Incoming {
    Snapshot(Snapshot),
    Delta(Box<SnapshotDelta>),
    Identity(Identity),
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("control socket {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("control process refused us: {0}")]
    Rejected(String),
    #[error("control protocol: {0}")]
    Wire(#[from] WireError),
    #[error("unexpected message from control: {0}")]
    Unexpected(String),
    #[error("snapshot delta does not apply: {0}")]
    Delta(String),
}

impl SessionError {
    /// A refusal (wrong protocol, wrong uid) will not go away by retrying fast.
    fn is_rejection(&self) -> bool {
        matches!(self, SessionError::Rejected(_))
    }
}

impl Session {
    /// Connect and handshake; returns the session and the first snapshot.
    pub fn open(path: &Path, node: &str) -> Result<(Session, Snapshot), SessionError> {
        let mut stream = UnixStream::connect(path)
            .map_err(|err| SessionError::Connect(path.display().to_string(), err))?;
        wire::write_message(
            &mut stream,
            &Message::Hello {
                protocol: ProtocolVersion::CURRENT,
                role: Role::Dataplane,
                node: node.to_string(),
            },
        )?;
        match wire::read_message(&mut stream)? {
            Message::HelloAck { protocol }
                if protocol.compatible_with(ProtocolVersion::CURRENT) => {}
            Message::HelloAck { protocol } => {
                return Err(SessionError::Rejected(format!(
                    "control speaks protocol {}.{}, this dataplane {}.{}",
                    protocol.major,
                    protocol.minor,
                    wire::PROTOCOL_MAJOR,
                    wire::PROTOCOL_MINOR
                )))
            }
            Message::Reject { reason } => return Err(SessionError::Rejected(reason)),
            other => return Err(SessionError::Unexpected(kind(&other))),
        }
        let mut session = Session {
            stream,
            pending_identity: None,
        };
        let snapshot = session.next_snapshot(None)?;
        Ok((session, snapshot))
    }

    /// The next snapshot; a delta is applied to `received`, the snapshot received
    /// last. An identity read on the way is kept for
    /// [`Session::take_pending_identity`] (the newest one wins).
    pub fn next_snapshot(&mut self, received: Option<Snapshot>) -> Result<Snapshot, SessionError> {
        let mut received = received;
        loop {
            match self.next_incoming()? {
                Incoming::Snapshot(snapshot) => return Ok(snapshot),
                Incoming::Delta(delta) => {
                    let mut snapshot = received.take().ok_or_else(|| {
                        SessionError::Delta("no complete snapshot received before it".into())
                    })?;
                    delta.apply(&mut snapshot).map_err(SessionError::Delta)?;
                    return Ok(snapshot);
                }
                Incoming::Identity(identity) => self.pending_identity = Some(identity),
            }
        }
    }

    /// The next snapshot or identity.
    pub fn next_incoming(&mut self) -> Result<Incoming, SessionError> {
        loop {
            let payload = wire::read_payload(&mut self.stream)?;
            let started = std::time::Instant::now();
            match wire::decode_payload(&payload)? {
                Message::Snapshot { snapshot } => {
                    tracing::debug!(
                        generation = snapshot.generation,
                        bytes = payload.len(),
                        binary = payload.starts_with(&wire::BINARY_SNAPSHOT),
                        decode_ms = started.elapsed().as_secs_f64() * 1e3,
                        "snapshot decoded"
                    );
                    return Ok(Incoming::Snapshot(*snapshot));
                }
                Message::SnapshotDelta { delta } => {
                    tracing::debug!(
                        generation = delta.generation,
                        base = delta.base,
                        items = delta.items(),
                        bytes = payload.len(),
                        decode_ms = started.elapsed().as_secs_f64() * 1e3,
                        "snapshot delta decoded"
                    );
                    return Ok(Incoming::Delta(delta));
                }
                Message::Identity {
                    spiffe_id,
                    chain_pem,
                    key_pem,
                    bundle_pem,
                    trust_domain,
                    expires_unix,
                } => {
                    return Ok(Incoming::Identity(Identity {
                        spiffe_id,
                        chain_pem,
                        key_pem,
                        bundle_pem,
                        trust_domain,
                        expires_unix,
                    }))
                }
                Message::Reject { reason } => return Err(SessionError::Rejected(reason)),
                // Messages a newer minor version may add are skipped.
                other => tracing::debug!(message = kind(&other), "ignoring control message"),
            }
        }
    }

    /// The identity that arrived while a snapshot was awaited, if any.
    pub fn take_pending_identity(&mut self) -> Option<Identity> {
        self.pending_identity.take()
    }

    pub fn ack(&mut self, generation: u64) -> Result<(), SessionError> {
        Ok(wire::write_message(
            &mut self.stream,
            &Message::Ack { generation },
        )?)
    }

    pub fn nack(&mut self, generation: u64, reason: String) -> Result<(), SessionError> {
        Ok(wire::write_message(
            &mut self.stream,
            &Message::Nack { generation, reason },
        )?)
    }
}

fn kind(message: &Message) -> String {
    message.kind().to_string()
}

/// Backoff with full jitter, growing to `BACKOFF_MAX`.
struct Backoff {
    next: Duration,
    seed: u64,
}

impl Backoff {
    fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
        Backoff {
            next: BACKOFF_START,
            seed,
        }
    }

    fn wait(&mut self) -> Duration {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let ceiling = self.next.as_millis().max(1) as u64;
        let pause = Duration::from_millis(ceiling / 2 + self.seed % (ceiling / 2 + 1));
        self.next = (self.next * 2).min(BACKOFF_MAX);
        pause
    }

    fn reset(&mut self) {
        self.next = BACKOFF_START;
    }
}

/// Block until a first usable snapshot arrives (the dataplane serves nothing before).
pub fn first_snapshot(path: &Path, node: &str) -> (Session, Snapshot) {
    let mut backoff = Backoff::new();
    loop {
        match Session::open(path, node) {
            Ok(opened) => return opened,
            Err(err) => {
                let pause = backoff.wait();
                if err.is_rejection() {
                    tracing::error!(error = %err, "control process refused this dataplane");
                } else {
                    tracing::warn!(error = %err, retry_in = ?pause, "waiting for the control process");
                }
                crate::blocking_pause(pause);
            }
        }
    }
}

/// Follow the control process for the life of the dataplane, on its own thread.
/// `serving` is the snapshot the workers serve now.
pub fn follow(
    path: PathBuf,
    node: String,
    session: Session,
    serving: Snapshot,
    applier: Applier,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("ringmesh-control-client".into())
        .spawn(move || {
            crate::apply::yield_cpu_to_workers();
            follow_forever(&path, &node, session, Some(serving), &applier)
        })
        .map(|_| ())
}

fn follow_forever(
    path: &Path,
    node: &str,
    mut session: Session,
    serving: Option<Snapshot>,
    applier: &Applier,
) {
    let mut backoff = Backoff::new();
    let mut current = serving.map(|snapshot| Received {
        snapshot,
        served: true,
    });
    if let Some(identity) = session.take_pending_identity() {
        install_identity(applier, &identity);
    }
    loop {
        match session.next_incoming() {
            Ok(Incoming::Snapshot(snapshot)) => {
                backoff.reset();
                if let Err(err) = apply_and_answer(&mut session, applier, &mut current, snapshot) {
                    tracing::warn!(error = %err, "control connection lost");
                }
                continue;
            }
            Ok(Incoming::Delta(delta)) => {
                backoff.reset();
                match apply_delta(&mut session, applier, &mut current, *delta) {
                    Ok(()) => continue,
                    // Reconnecting is what makes the control process send a
                    // complete snapshot.
                    Err(err) => tracing::warn!(error = %err, "reconnecting to the control process"),
                }
            }
            Ok(Incoming::Identity(identity)) => {
                install_identity(applier, &identity);
                continue;
            }
            Err(err) => {
                tracing::warn!(error = %err, "control connection lost; serving the last good table")
            }
        }
        if applier.shared().draining() {
            return;
        }
        // Reconnect; the control process sends its current snapshot right away.
        session = loop {
            crate::blocking_pause(backoff.wait());
            if applier.shared().draining() {
                return;
            }
            match Session::open(path, node) {
                Ok((fresh, snapshot)) => {
                    tracing::info!(
                        generation = snapshot.generation,
                        "reconnected to the control process"
                    );
                    let mut fresh = fresh;
                    if let Some(identity) = fresh.take_pending_identity() {
                        install_identity(applier, &identity);
                    }
                    if let Err(err) = apply_and_answer(&mut fresh, applier, &mut current, snapshot)
                    {
                        tracing::warn!(error = %err, "control connection lost again");
                        continue;
                    }
                    break fresh;
                }
                Err(err) => tracing::debug!(error = %err, "control process still unreachable"),
            }
        };
    }
}

/// Installs an SVID from the control process and logs the outcome; a refused one
/// leaves the previous identity serving. Never answered on the wire.
fn install_identity(applier: &Applier, identity: &Identity) {
    let installed = applier.shared().identity.install(
        &identity.chain_pem,
        &identity.key_pem.0,
        &identity.bundle_pem,
        &identity.trust_domain,
    );
    match installed {
        Ok(info) => {
            // Exported as `ringmesh_certificate_expiry_seconds` like a file SVID's.
            applier
                .shared()
                .mesh_expiry
                .store(info.expires_unix, std::sync::atomic::Ordering::Release);
            if info.spiffe_id.as_str() != identity.spiffe_id {
                tracing::warn!(
                    announced = %identity.spiffe_id,
                    in_certificate = %info.spiffe_id,
                    "the identity message names another SPIFFE ID than its certificate; the certificate's is used"
                );
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let left = u64::try_from(info.expires_unix)
                .unwrap_or(0)
                .saturating_sub(now);
            tracing::info!(
                spiffe_id = %info.spiffe_id,
                serial = %info.serial_hex,
                expires_unix = info.expires_unix,
                expires_in = ?Duration::from_secs(left),
                "SVID installed"
            );
        }
        Err(reason) => tracing::error!(
            spiffe_id = %identity.spiffe_id,
            %reason,
            "SVID from the control process refused; keeping the previous identity"
        ),
    }
}

/// The snapshot received last: what the next delta applies to. `served` is false
/// when the workers could not take it (it was answered with a Nack) and still
/// serve an older table.
struct Received {
    snapshot: Snapshot,
    served: bool,
}

/// Applies a delta to the snapshot received last, then builds and answers it
/// like a complete snapshot. An error means the session must be reopened.
fn apply_delta(
    session: &mut Session,
    applier: &Applier,
    current: &mut Option<Received>,
    delta: SnapshotDelta,
) -> Result<(), SessionError> {
    let Some(Received { mut snapshot, .. }) = current.take() else {
        return Err(SessionError::Delta(
            "no complete snapshot received before it".into(),
        ));
    };
    delta.apply(&mut snapshot).map_err(SessionError::Delta)?;
    build_and_answer(session, applier, current, snapshot, true)
}

fn apply_and_answer(
    session: &mut Session,
    applier: &Applier,
    current: &mut Option<Received>,
    snapshot: Snapshot,
) -> Result<(), SessionError> {
    let generation = snapshot.generation;
    // The same table again (a reconnect): nothing to swap, just confirm it.
    // Compared part by part: cloning a large table just to equalize the
    // generation cost more than the comparison itself.
    // The destructuring names every field, so a new one cannot be forgotten here.
    let unchanged = current
        .as_ref()
        .filter(|now| now.served)
        .is_some_and(|now| {
            let now = &now.snapshot;
            let Snapshot {
                generation: _,
                runtime,
                listeners,
                clusters,
                mesh,
            } = &snapshot;
            now.runtime == *runtime
                && now.listeners == *listeners
                && now.clusters == *clusters
                && now.mesh == *mesh
        });
    if unchanged {
        applier.shared().renumber(generation);
        if let Some(now) = current.as_mut() {
            now.snapshot.generation = generation;
        }
        return session.ack(generation);
    }
    build_and_answer(session, applier, current, snapshot, false)
}

/// Builds `snapshot` for the workers and answers Ack or Nack; either way it is
/// the snapshot received last.
fn build_and_answer(
    session: &mut Session,
    applier: &Applier,
    current: &mut Option<Received>,
    snapshot: Snapshot,
    delta: bool,
) -> Result<(), SessionError> {
    let generation = snapshot.generation;
    let built = applier.apply(&snapshot);
    *current = Some(Received {
        snapshot,
        served: built.is_ok(),
    });
    match built {
        Ok(took) => {
            tracing::info!(generation, delta, took = ?took, "table swapped");
            session.ack(generation)
        }
        Err(reason) => {
            tracing::error!(generation, %reason, "snapshot rejected; keeping the current table");
            session.nack(generation, reason)
        }
    }
}

#[cfg(test)]
mod tests;
