//! One client connection, on its own thread: peer check, handshake, then either a
//! dataplane session (snapshots out, Ack/Nack in) or a CLI session (requests and
//! answers).
//!
//! # Dataplane session
//! After `HelloAck` the control process sends the current snapshot at once, then
//! every newer generation as it is published, never one twice and never out of
//! order. A reader thread takes the dataplane's `Ack`/`Nack` answers; the writer
//! (this thread) waits on the session's event channel. Either side ending (peer
//! gone, write failure, protocol violation) stops the other.
//!
//! When the control process is the mesh CA and the dataplane speaks 1.1, the
//! writer also sends an `identity` right after the first snapshot and again at
//! each renewal time: it waits for "next snapshot or renewal due", whichever is
//! first (`next_event`), so every frame leaves from this one thread.

use crate::handshake::{self, check_peer_uid, Accepted, Decision};
use crate::issuer::SessionIdentity;
use crate::socket::{peer_credentials, Peer};
use crate::state::{AckOutcome, Event, SessionId, Shared, SnapshotFrame};
use ringmesh_api::wire::{self, Message, ProtocolVersion, Role, WireError};
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Time a new connection has to send its `Hello`.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A dataplane that does not take a snapshot frame within this long is dropped
/// (it reconnects and gets the current snapshot then).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// A CLI client idle for this long is disconnected.
pub const CLI_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves one accepted connection to the end. Never panics on peer input.
pub fn handle(mut stream: UnixStream, shared: Arc<Shared>, our_uid: u32) {
    let peer = match peer_credentials(&stream) {
        Ok(peer) => peer,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the peer's credentials; closing");
            return;
        }
    };
    if let Err(reason) = check_peer_uid(peer.uid, our_uid) {
        tracing::warn!(
            uid = peer.uid,
            pid = peer.pid,
            "refused control connection from uid {}: {reason}",
            peer.uid
        );
        // Take the client's hello off the socket first (without trusting it with a
        // large allocation), so that its write does not fail and it reads the
        // reason instead of a broken pipe.
        discard_hello(&mut stream);
        refuse(&mut stream, reason);
        return;
    }
    if let Err(err) = set_timeouts(&stream, Some(HANDSHAKE_TIMEOUT), Some(WRITE_TIMEOUT)) {
        tracing::warn!(error = %err, "cannot set socket timeouts; closing");
        return;
    }
    let first = match wire::read_message(&mut stream) {
        Ok(first) => first,
        Err(WireError::Closed) => {
            tracing::debug!(pid = peer.pid, "peer closed before saying hello");
            return;
        }
        Err(err) => {
            tracing::warn!(pid = peer.pid, error = %err, "bad first frame; closing");
            refuse(&mut stream, format!("bad first frame: {err}"));
            return;
        }
    };
    match handshake::decide(&first, ProtocolVersion::CURRENT) {
        Decision::Reject(reason) => {
            tracing::warn!(pid = peer.pid, "refused client: {reason}");
            refuse(&mut stream, reason);
        }
        Decision::Accept(client) => {
            let ack = Message::HelloAck {
                protocol: ProtocolVersion::CURRENT,
            };
            if let Err(err) = wire::write_message(&mut stream, &ack) {
                tracing::warn!(node = %client.node, error = %err, "handshake failed");
                return;
            }
            match client.role {
                Role::Dataplane => serve_dataplane(stream, &shared, &client, peer),
                Role::Cli => serve_cli(stream, &shared, &client),
            }
        }
    }
}

/// Sends a `Reject` (best effort: the peer may already be gone) and closes.
pub fn refuse(stream: &mut UnixStream, reason: String) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    if let Err(err) = wire::write_message(stream, &Message::Reject { reason }) {
        tracing::debug!(error = %err, "could not deliver the reject frame");
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// Largest hello an unauthorized peer may make us read (and throw away).
const MAX_DISCARDED_HELLO: u64 = 64 * 1024;

fn discard_hello(stream: &mut UnixStream) {
    if stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .is_err()
    {
        return;
    }
    let mut prefix = [0u8; 4];
    if stream.read_exact(&mut prefix).is_err() {
        return;
    }
    let len = u64::from(u32::from_be_bytes(prefix));
    if len <= MAX_DISCARDED_HELLO {
        let _ = std::io::copy(&mut stream.take(len), &mut std::io::sink());
    }
}

fn set_timeouts(
    stream: &UnixStream,
    read: Option<Duration>,
    write: Option<Duration>,
) -> std::io::Result<()> {
    stream.set_read_timeout(read)?;
    stream.set_write_timeout(write)
}

fn serve_dataplane(mut stream: UnixStream, shared: &Arc<Shared>, client: &Accepted, peer: Peer) {
    let node = client.node.as_str();
    let (id, first, events, stop) = shared.register(node);
    let connected = Instant::now();
    tracing::info!(
        node,
        pid = peer.pid,
        protocol = %format_args!("{}.{}", client.protocol.major, client.protocol.minor),
        generation = first.generation,
        "dataplane connected"
    );
    // Answers come only after snapshots, which may be days apart: no read timeout.
    let reader = match stream
        .set_read_timeout(None)
        .and_then(|()| stream.try_clone())
    {
        Ok(reader) => reader,
        Err(err) => {
            tracing::warn!(node, error = %err, "cannot set up the session");
            shared.unregister(id);
            return;
        }
    };
    let reader_thread = {
        let shared = Arc::clone(shared);
        let node = node.to_string();
        std::thread::Builder::new()
            .name(format!("dp-read-{id}"))
            .spawn(move || read_answers(reader, &shared, id, &node, &stop))
    };
    let reader_thread = match reader_thread {
        Ok(handle) => handle,
        Err(err) => {
            tracing::warn!(node, error = %err, "cannot start the session's reader");
            shared.unregister(id);
            return;
        }
    };

    let mut identity = SessionIdentity::start(shared.svid_issuer(), node, client.protocol);
    let mut last_sent = 0;
    let mut next = Next::Snapshot(first);
    loop {
        match next {
            Next::Snapshot(frame) if frame.generation > last_sent => {
                // Recorded before writing: a fast dataplane may answer before the write
                // call returns, and its Ack must find the generation already sent.
                let peer_has = last_sent;
                last_sent = frame.generation;
                shared.mark_sent(id, last_sent);
                let delta = frame.is_delta_for(client.protocol, peer_has);
                let bytes = match frame.bytes_for(client.protocol, peer_has) {
                    Ok(bytes) => bytes,
                    Err(err) => {
                        tracing::warn!(node, generation = last_sent, error = %err, "encoding the snapshot failed; closing");
                        break;
                    }
                };
                if let Err(err) = stream.write_all(bytes).and_then(|()| stream.flush()) {
                    tracing::warn!(node, generation = last_sent, error = %err, "sending the snapshot failed; closing");
                    break;
                }
                tracing::debug!(
                    node,
                    generation = last_sent,
                    delta,
                    bytes = bytes.len(),
                    "snapshot sent"
                );
            }
            Next::Snapshot(_) | Next::Timer => {}
            Next::End => break,
        }
        // The first identity is due at once, so it follows the first snapshot.
        if let Some(schedule) = identity.as_mut().filter(|s| s.due() <= Instant::now()) {
            if let Some(issued) = schedule.issue() {
                if let Err(err) = stream
                    .write_all(&issued.frame)
                    .and_then(|()| stream.flush())
                {
                    tracing::warn!(node, error = %err, "sending the SVID failed; closing");
                    break;
                }
                shared.mark_svid(id, &issued.svid.spiffe_id, issued.svid.expires_unix);
            }
        }
        next = next_event(&events, identity.as_ref().map(SessionIdentity::due));
    }
    shared.unregister(id);
    let _ = stream.shutdown(Shutdown::Both);
    if reader_thread.join().is_err() {
        tracing::error!(node, "session reader panicked");
    }
    tracing::info!(node, connected_for = ?connected.elapsed(), "dataplane disconnected");
}

/// What the writer does next.
enum Next {
    Snapshot(Arc<SnapshotFrame>),
    /// The SVID renewal time came.
    Timer,
    /// The session should end.
    End,
}

/// Waits for the next snapshot to send or for `deadline` (the SVID renewal).
/// When several generations queued up while the previous write was slow, only
/// the newest is sent: every snapshot is complete, so the ones between are moot.
fn next_event(events: &Receiver<Event>, deadline: Option<Instant>) -> Next {
    let first = match deadline {
        None => events.recv().map_err(|_| RecvTimeoutError::Disconnected),
        Some(at) => events.recv_timeout(at.saturating_duration_since(Instant::now())),
    };
    let mut newest = match first {
        Ok(Event::Snapshot(frame)) => frame,
        Err(RecvTimeoutError::Timeout) => return Next::Timer,
        Ok(Event::PeerGone) | Err(RecvTimeoutError::Disconnected) => return Next::End,
    };
    loop {
        match events.try_recv() {
            Ok(Event::Snapshot(frame)) => newest = frame,
            Ok(Event::PeerGone) => return Next::End,
            Err(_) => return Next::Snapshot(newest),
        }
    }
}

/// Reads the dataplane's answers until it leaves or breaks the protocol, then
/// tells the writer to stop.
fn read_answers(
    mut stream: UnixStream,
    shared: &Shared,
    id: SessionId,
    node: &str,
    stop: &Sender<Event>,
) {
    loop {
        match wire::read_message(&mut stream) {
            Ok(Message::Ack { generation }) => match shared.record_ack(id, generation) {
                AckOutcome::Recorded {
                    latency: Some(latency),
                } => {
                    tracing::info!(node, generation, since_publish = ?latency, "dataplane acknowledged")
                }
                AckOutcome::Recorded { latency: None } => {
                    tracing::info!(node, generation, "dataplane acknowledged")
                }
                AckOutcome::NotSent { sent } => {
                    tracing::warn!(
                        node,
                        generation,
                        sent,
                        "ack for a generation never sent; ignored"
                    )
                }
                AckOutcome::Stale { acked } => {
                    tracing::debug!(node, generation, acked, "late ack for an older generation")
                }
            },
            Ok(Message::Nack { generation, reason }) => {
                if shared.record_nack(id, generation, &reason) {
                    tracing::warn!(node, generation, %reason, "dataplane rejected the snapshot and keeps its previous table");
                } else {
                    tracing::warn!(node, generation, %reason, "nack for a generation never sent; ignored");
                }
            }
            Ok(other) => {
                tracing::warn!(
                    node,
                    kind = other.kind(),
                    "unexpected message from a dataplane; closing"
                );
                break;
            }
            Err(WireError::Closed) => break,
            Err(err) => {
                tracing::debug!(node, error = %err, "dataplane connection ended");
                break;
            }
        }
    }
    let _ = stop.send(Event::PeerGone);
}

fn serve_cli(mut stream: UnixStream, shared: &Shared, client: &Accepted) {
    let label = client.node.as_str();
    if let Err(err) = stream.set_read_timeout(Some(CLI_IDLE_TIMEOUT)) {
        tracing::debug!(error = %err, "cannot set the CLI read timeout");
        return;
    }
    tracing::debug!(label, "cli client connected");
    loop {
        let answer = match wire::read_message(&mut stream) {
            Ok(Message::StatusRequest) => Message::StatusReply {
                status: shared.status(),
            },
            Ok(Message::SnapshotRequest) => Message::Snapshot {
                snapshot: Box::new((*shared.current()).clone()),
            },
            Ok(other) => {
                let kind = other.kind();
                tracing::warn!(label, kind, "unexpected message from a cli client; closing");
                refuse(
                    &mut stream,
                    format!("{kind} is not a request a cli client can make"),
                );
                return;
            }
            Err(WireError::Closed) => return,
            Err(err) => {
                tracing::debug!(label, error = %err, "cli connection ended");
                return;
            }
        };
        if let Err(err) = wire::write_message(&mut stream, &answer) {
            tracing::debug!(label, error = %err, "cli connection ended");
            return;
        }
    }
}
