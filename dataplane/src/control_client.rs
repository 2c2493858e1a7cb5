//! The dataplane as a client of ringmesh-control (like an xDS client): connect, say
//! hello, take the first snapshot before serving, then apply every later one and
//! answer Ack or Nack. When the control process goes away the last good table keeps
//! serving and the client reconnects with backoff and jitter.

use crate::apply::Applier;
use ringmesh_api::wire::{self, Message, ProtocolVersion, Role, WireError};
use ringmesh_api::Snapshot;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

pub struct Session {
    stream: UnixStream,
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
        let mut session = Session { stream };
        let snapshot = session.next_snapshot()?;
        Ok((session, snapshot))
    }

    pub fn next_snapshot(&mut self) -> Result<Snapshot, SessionError> {
        loop {
            match wire::read_message(&mut self.stream)? {
                Message::Snapshot { snapshot } => return Ok(*snapshot),
                Message::Reject { reason } => return Err(SessionError::Rejected(reason)),
                // Messages a newer minor version may add are skipped.
                other => tracing::debug!(message = kind(&other), "ignoring control message"),
            }
        }
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
        .spawn(move || follow_forever(&path, &node, session, Some(serving), &applier))
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
    let mut current = serving;
    loop {
        match session.next_snapshot() {
            Ok(snapshot) => {
                backoff.reset();
                if let Err(err) = apply_and_answer(&mut session, applier, &mut current, snapshot) {
                    tracing::warn!(error = %err, "control connection lost");
                }
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

fn apply_and_answer(
    session: &mut Session,
    applier: &Applier,
    current: &mut Option<Snapshot>,
    snapshot: Snapshot,
) -> Result<(), SessionError> {
    let generation = snapshot.generation;
    // The same table again (a reconnect): nothing to swap, just confirm it.
    let unchanged = current.as_ref().is_some_and(|now| {
        let mut same = snapshot.clone();
        same.generation = now.generation;
        &same == now
    });
    if unchanged {
        applier.shared().renumber(generation);
        if let Some(now) = current.as_mut() {
            now.generation = generation;
        }
        return session.ack(generation);
    }
    match applier.apply(&snapshot) {
        Ok(took) => {
            tracing::info!(generation, took = ?took, "table swapped");
            *current = Some(snapshot);
            session.ack(generation)
        }
        Err(reason) => {
            tracing::error!(generation, %reason, "snapshot rejected; keeping the current table");
            session.nack(generation, reason)
        }
    }
}
