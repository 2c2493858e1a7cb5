//! The L4 relay: bytes both ways between two sockets until both directions end, with
//! half-close (EOF on one side becomes a FIN on the other) and an idle timeout. Also
//! carries upgraded HTTP connections (WebSocket) after the 101.

use crate::bufpool::BufPool;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable};
use monoio::net::TcpStream;
use std::cell::Cell;
use std::io;
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
    let last_activity = Cell::new(Instant::now());
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
    let (up, down) = monoio::join!(
        copy_one_way(client_read, upstream_write, idle, &last_activity, buffers),
        copy_one_way(upstream_read, client_write, idle, &last_activity, buffers)
    );
    Carried {
        client_to_upstream: up,
        upstream_to_client: down,
    }
}

async fn copy_one_way<R: AsyncReadRent, W: AsyncWriteRent>(
    mut from: R,
    mut to: W,
    idle: Duration,
    last_activity: &Cell<Instant>,
    buffers: &BufPool,
) -> u64 {
    let mut carried = 0u64;
    let mut buf = Some(buffers.take());
    loop {
        let mut owned = buf.take().unwrap_or_else(|| buffers.take());
        owned.clear();
        let read = monoio::time::timeout(idle, from.read(owned)).await;
        let (result, returned) = match read {
            Ok(pair) => pair,
            Err(_) => {
                // The buffer went down with the cancelled read. Idle means idle in
                // both directions: keep waiting while the other side is moving.
                if last_activity.get().elapsed() < idle {
                    continue;
                }
                break;
            }
        };
        let n = match result {
            Ok(0) | Err(_) => {
                buf = Some(returned);
                break;
            }
            Ok(n) => n,
        };
        last_activity.set(Instant::now());
        let (written, returned) = to.write_all(returned).await;
        buf = Some(returned);
        if written.is_err() {
            break;
        }
        carried += n as u64;
    }
    // Half-close: the peer learns that this direction is finished and may still
    // send the other way.
    let _ = to.shutdown().await;
    if let Some(owned) = buf {
        buffers.give(owned);
    }
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
pub async fn write_prefix(stream: &mut TcpStream, bytes: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
    if bytes.is_empty() {
        return (Ok(()), bytes);
    }
    let (result, bytes) = stream.write_all(bytes).await;
    (result.map(|_| ()), bytes)
}

/// A `tcp` listener's connection: pick an endpoint, connect, relay.
pub async fn serve(
    worker: std::rc::Rc<crate::state::Worker>,
    table: std::rc::Rc<crate::state::WorkerTable>,
    spec: &ringmesh_api::snapshot::TcpProxySpec,
    client: TcpStream,
    peer_ip: String,
) {
    let _ = client.set_nodelay(true);
    let Some(cluster) = table.clusters.get(spec.cluster.0 as usize) else {
        return;
    };
    let hash = match cluster.hash_key {
        Some(ringmesh_api::snapshot::HashKey::SourceIp) => {
            Some(crate::balance::ring_hash::key_hash(peer_ip.as_bytes()))
        }
        _ => None,
    };
    // A refused connect never reached the upstream: try another endpoint once.
    let mut avoid = None;
    let mut connected = None;
    for _ in 0..2 {
        let Some(index) = cluster.pick(worker.random(), hash, avoid) else {
            return;
        };
        let Some(endpoint) = cluster.endpoint(index).cloned() else {
            return;
        };
        let in_flight = crate::balance::InFlight::start(&endpoint);
        let started = Instant::now();
        match super::connect(cluster, &endpoint).await {
            Ok(stream) => {
                // A connect is all a TCP proxy learns of the endpoint's health.
                cluster.record(index, crate::resilience::outlier::Outcome::Status(200));
                connected = Some((stream, in_flight, started));
                break;
            }
            Err(err) => {
                cluster.record(index, crate::resilience::outlier::Outcome::ConnectFailure);
                tracing::debug!(cluster = %cluster.name, error = %err, "tcp upstream connect failed");
                avoid = Some(index);
            }
        }
    }
    let Some((upstream, in_flight, started)) = connected else {
        return;
    };
    cluster.stats.requests.inc();
    in_flight.finish(started.elapsed());
    // splice runs only on io_uring; the epoll driver has no splice operation.
    let splice = spec.splice && worker.driver != crate::driver::DriverKind::Epoll;
    relay(
        client,
        upstream,
        Duration::from_millis(spec.idle_timeout_ms),
        splice,
        &worker.buffers,
    )
    .await;
}
