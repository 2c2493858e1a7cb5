//! The L4 relay: bytes both ways between two sockets until both directions end, with
//! half-close (EOF on one side becomes a FIN on the other) and an idle timeout. Also
//! carries upgraded HTTP connections (WebSocket) after the 101.

use crate::access_log::{Line, TlsFacts};
use crate::bufpool::BufPool;
use crate::stream::UpstreamTransport::{Plain, Tls};
use crate::stream::{ClientIo, UpstreamIo};
use crate::tls::spiffe::SpiffeId;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable};
use monoio::net::TcpStream;
use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Bytes carried in each direction.
#[derive(Debug, Default, Clone, Copy)]
pub struct Carried {
    pub client_to_upstream: u64,
    pub upstream_to_client: u64,
}

/// Relay until both directions have ended or nothing moved for `idle`.
/// `splice` moves bytes kernel-side through a pipe (io_uring only).
pub async fn relay(
    client: TcpStream,
    upstream: TcpStream,
    idle: Duration,
    splice: bool,
    buffers: &BufPool,
) -> Carried {
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    if splice {
        let (up, down) = monoio::join!(
            splice_one_way(client_read, upstream_write),
            splice_one_way(upstream_read, client_write)
        );
        return Carried {
            client_to_upstream: up,
            upstream_to_client: down,
        };
    }
    copy_pair(
        client_read,
        client_write,
        upstream_read,
        upstream_write,
        idle,
        buffers,
    )
    .await
}

/// Relay between any two streams (TLS on either side): plain pairs take the
/// plain path (and splice when asked); TLS is copied through pooled buffers.
pub async fn relay_io(
    client: ClientIo,
    upstream: UpstreamIo,
    idle: Duration,
    splice: bool,
    buffers: &BufPool,
) -> Carried {
    // The connection's breaker slot is held until the relay ends.
    let (transport, _slot) = upstream.into_parts();
    match (client, transport) {
        (ClientIo::Plain(c), Plain(u)) => relay(c, u, idle, splice, buffers).await,
        (ClientIo::Plain(c), Tls(u)) => copy_both(c, *u, idle, buffers).await,
        (ClientIo::Tls(c), Plain(u)) => copy_both(*c, u, idle, buffers).await,
        (ClientIo::Tls(c), Tls(u)) => copy_both(*c, *u, idle, buffers).await,
    }
}

async fn copy_both<C, U>(client: C, upstream: U, idle: Duration, buffers: &BufPool) -> Carried
where
    C: Splitable + AsyncReadRent + AsyncWriteRent,
    U: Splitable + AsyncReadRent + AsyncWriteRent,
    C::OwnedRead: AsyncReadRent,
    C::OwnedWrite: AsyncWriteRent,
    U::OwnedRead: AsyncReadRent,
    U::OwnedWrite: AsyncWriteRent,
{
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    copy_pair(
        client_read,
        client_write,
        upstream_read,
        upstream_write,
        idle,
        buffers,
    )
    .await
}

/// Copy both directions until both end, or until nothing moved for `idle`; then
/// the copies are dropped, which cancels their reads and closes both sockets.
///
/// Idleness is watched by one timer per quarter of `idle` for the whole relay
/// (a read counter it compares), not by a timer armed on every read: a relay
/// moving small messages pays no timer or clock call per message.
async fn copy_pair<CR, CW, UR, UW>(
    client_read: CR,
    client_write: CW,
    upstream_read: UR,
    upstream_write: UW,
    idle: Duration,
    buffers: &BufPool,
) -> Carried
where
    CR: AsyncReadRent,
    CW: AsyncWriteRent,
    UR: AsyncReadRent,
    UW: AsyncWriteRent,
{
    let moved = Cell::new(0u64);
    let copies = async {
        monoio::join!(
            copy_one_way(client_read, upstream_write, &moved, buffers),
            copy_one_way(upstream_read, client_write, &moved, buffers)
        )
    };
    monoio::select! {
        (up, down) = copies => Carried {
            client_to_upstream: up,
            upstream_to_client: down,
        },
        _ = idle_watch(idle, &moved) => Carried::default(),
    }
}

/// Returns once `moved` has not changed for `idle` (checked four times per
/// period, so an idle relay closes within 1¼ × `idle`).
async fn idle_watch(idle: Duration, moved: &Cell<u64>) {
    const CHECKS: u32 = 4;
    let step = (idle / CHECKS).max(Duration::from_millis(1));
    let mut last = moved.get();
    let mut quiet = 0;
    loop {
        monoio::time::sleep(step).await;
        let now = moved.get();
        if now == last {
            quiet += 1;
            if quiet >= CHECKS {
                return;
            }
        } else {
            last = now;
            quiet = 0;
        }
    }
}

async fn copy_one_way<R: AsyncReadRent, W: AsyncWriteRent>(
    mut from: R,
    mut to: W,
    moved: &Cell<u64>,
    buffers: &BufPool,
) -> u64 {
    let mut carried = 0u64;
    let mut buf = buffers.take();
    loop {
        buf.clear();
        let (result, returned) = from.read(buf).await;
        buf = returned;
        let n = match result {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        moved.set(moved.get().wrapping_add(1));
        let (written, returned) = to.write_all(buf).await;
        buf = returned;
        if written.is_err() {
            break;
        }
        carried += n as u64;
    }
    // Half-close: the peer learns that this direction is finished and may still
    // send the other way.
    let _ = to.shutdown().await;
    buffers.give(buf);
    carried
}

async fn splice_one_way<R, W>(mut from: R, mut to: W) -> u64
where
    R: monoio::io::as_fd::AsReadFd,
    W: monoio::io::as_fd::AsWriteFd + AsyncWriteRent,
{
    let carried: io::Result<u64> = monoio::io::zero_copy(&mut from, &mut to).await;
    let _ = to.shutdown().await;
    carried.unwrap_or(0)
}

/// Write bytes that were read ahead (for example pipelined after an upgrade's
/// head) before the relay starts.
pub async fn write_prefix<S: AsyncWriteRent>(
    stream: &mut S,
    bytes: Vec<u8>,
) -> (io::Result<()>, Vec<u8>) {
    if bytes.is_empty() {
        return (Ok(()), bytes);
    }
    let (result, bytes) = stream.write_all(bytes).await;
    (result.map(|_| ()), bytes)
}

/// What a `tcp`/`tls`/mesh connection carries into the relay.
pub struct L4Conn {
    pub client: ClientIo,
    pub client_addr: SocketAddr,
    /// What the client negotiated, when TLS is terminated here.
    pub tls: Option<TlsFacts>,
    /// The client's SPIFFE ID (mesh listeners), for policies.
    pub peer: Option<SpiffeId>,
    /// Bytes already read from the client, sent upstream first.
    pub prefix: Vec<u8>,
    /// The listener's index in the table (policies).
    pub listener: usize,
    /// Cluster to use instead of the spec's (SNI passthrough).
    pub cluster: Option<usize>,
}

struct PeerOnly<'a>(Option<&'a SpiffeId>);

impl crate::authz::AuthzFacts for PeerOnly<'_> {
    fn peer(&self) -> Option<&SpiffeId> {
        self.0
    }
    fn method(&self) -> Option<&[u8]> {
        None
    }
    fn path(&self) -> Option<&[u8]> {
        None
    }
    fn header(&self, _: &str) -> Option<&[u8]> {
        None
    }
}

/// A `tcp` listener's connection: pick an endpoint, connect, relay.
pub async fn serve(
    worker: std::rc::Rc<crate::state::Worker>,
    table: std::rc::Rc<crate::state::WorkerTable>,
    spec: &ringmesh_api::snapshot::TcpProxySpec,
    conn: L4Conn,
) {
    let L4Conn {
        client,
        client_addr,
        tls,
        peer,
        prefix,
        listener,
        cluster: chosen,
    } = conn;
    let mut record = TcpRecord {
        log: &worker.access_log,
        began: Instant::now(),
        client: client_addr,
        tls: tls.as_ref(),
        peer: peer.as_ref(),
        listener: "",
        cluster: "",
        endpoint: None,
        carried: Carried::default(),
        detail: "",
    };
    if let Some(listener) = table.table.listeners.get(listener) {
        record.listener = &listener.name;
        let subject = PeerOnly(peer.as_ref());
        if !crate::http::authorize(&table, &listener.name, &listener.policies, &subject) {
            record.detail = "forbidden";
            return; // closing is the TCP answer to a denied connection
        }
    }
    let cluster_index = chosen.unwrap_or(spec.cluster.0 as usize);
    let Some(cluster) = table.clusters.get(cluster_index) else {
        return;
    };
    record.cluster = &cluster.name;
    let Ok(origin) = super::origin_of(&table, cluster_index) else {
        record.detail = "upstream_tls";
        return;
    };
    let hash = match cluster.hash_key {
        Some(ringmesh_api::snapshot::HashKey::SourceIp) => Some(
            crate::balance::ring_hash::key_hash(client_addr.ip().to_string().as_bytes()),
        ),
        _ => None,
    };
    // A refused connect never reached the upstream: try another endpoint once.
    let mut avoid = None;
    let mut connected = None;
    for _ in 0..2 {
        let Some(index) = cluster.pick(worker.random(), hash, avoid) else {
            record.detail = "no_endpoint";
            return;
        };
        let Some(endpoint) = cluster.endpoint(index).cloned() else {
            return;
        };
        let in_flight = crate::balance::InFlight::start(&endpoint);
        let started = Instant::now();
        match super::connect_io(cluster, &endpoint, origin).await {
            Ok(stream) => {
                // A connect is all a TCP proxy learns of the endpoint's health.
                cluster.record(index, crate::resilience::outlier::Outcome::Status(200));
                connected = Some((stream, in_flight, started, endpoint.addr));
                break;
            }
            // A local limit says nothing of the endpoint, and another try would
            // meet the same limit.
            Err(err) if matches!(err.kind, crate::error::Kind::Overflow(_)) => {
                tracing::debug!(cluster = %cluster.name, error = %err, "tcp upstream refused");
                record.detail = err.label();
                return;
            }
            Err(err) => {
                record.detail = err.label();
                cluster.record(index, crate::resilience::outlier::Outcome::ConnectFailure);
                tracing::debug!(cluster = %cluster.name, error = %err, "tcp upstream connect failed");
                avoid = Some(index);
            }
        }
    }
    let Some((mut upstream, in_flight, started, upstream_addr)) = connected else {
        return;
    };
    record.detail = "";
    record.endpoint = Some(upstream_addr);
    cluster.stats.requests.inc();
    if cluster.tracks_latency() {
        in_flight.finish(started.elapsed());
    }
    if write_prefix(&mut upstream, prefix).await.0.is_err() {
        record.detail = "upstream_reset";
        return;
    }
    // splice runs only on io_uring; the epoll driver has no splice operation.
    let splice = spec.splice && worker.driver != crate::driver::DriverKind::Epoll;
    record.carried = relay_io(
        client,
        upstream,
        Duration::from_millis(spec.idle_timeout_ms),
        splice,
        &worker.buffers,
    )
    .await;
}

/// The access-log line of one TCP connection, written when it ends, whichever way.
struct TcpRecord<'a> {
    log: &'a crate::access_log::WorkerLog,
    began: Instant,
    client: SocketAddr,
    tls: Option<&'a TlsFacts>,
    peer: Option<&'a SpiffeId>,
    listener: &'a str,
    cluster: &'a str,
    endpoint: Option<SocketAddr>,
    carried: Carried,
    detail: &'static str,
}

impl Drop for TcpRecord<'_> {
    fn drop(&mut self) {
        if !self.log.enabled() {
            return;
        }
        let line = Line {
            kind: "tcp",
            listener: self.listener,
            client: Some(self.client),
            duration: self.began.elapsed(),
            bytes_received: self.carried.client_to_upstream,
            bytes_sent: self.carried.upstream_to_client,
            cluster: self.cluster,
            endpoint: self.endpoint,
            detail: self.detail,
            tls: self.tls,
            peer: self.peer.map(SpiffeId::as_str),
            ..Line::default()
        };
        let now = std::time::SystemTime::now();
        self.log.line(|out| line.write(out, now));
    }
}
