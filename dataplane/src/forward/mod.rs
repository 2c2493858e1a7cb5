//! Forwarding to upstreams: connection pools, connects with deadlines, the L4 relay.

pub mod l4;
pub mod pool;

use crate::balance::{ClusterRuntime, EndpointRuntime};
use crate::error::{Kind, ProxyError, Side};
use crate::resilience::breaker::{Guard, Kind as Slot, Overflow};
use crate::stream::{UpstreamIo, UpstreamTransport};
use monoio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest an upstream TLS handshake may take (a route timeout may cut it shorter).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// An upstream connection and whether it came from the idle pool (a pooled
/// connection may have been closed by the upstream while idle).
pub struct Upstream {
    pub stream: UpstreamIo,
    pub reused: bool,
}

/// TLS origination to a cluster: this worker's config and the name to send.
#[derive(Clone, Copy)]
pub struct Origin<'a> {
    pub config: &'a Arc<ClientConfig>,
    /// `None`: the endpoint's IP address (no SNI).
    pub server_name: Option<&'a ServerName<'static>>,
}

/// The origination settings of cluster `index` in a worker table, or an error
/// when the cluster asks for TLS but this worker has no config for it.
pub fn origin_of(
    table: &crate::state::WorkerTable,
    index: usize,
) -> Result<Option<Origin<'_>>, ProxyError> {
    let Some(tls) = table.table.clusters.get(index).and_then(|c| c.tls.as_ref()) else {
        return Ok(None);
    };
    match table.client_tls.get(index).and_then(Option::as_ref) {
        Some(config) => Ok(Some(Origin {
            config,
            server_name: tls.server_name.as_ref(),
        })),
        None => Err(ProxyError::new(
            Side::Local,
            Kind::UpstreamTls("tls_error", "no TLS client configuration".into()),
        )),
    }
}

/// A pooled connection when one is idle, else a new one.
pub async fn checkout(
    cluster: &ClusterRuntime,
    endpoint: &Rc<EndpointRuntime>,
    origin: Option<Origin<'_>>,
) -> Result<Upstream, ProxyError> {
    if let Some(stream) = endpoint
        .idle
        .take(Instant::now(), cluster.pool_idle_timeout)
    {
        return Ok(Upstream {
            stream,
            reused: true,
        });
    }
    let stream = connect_io(cluster, endpoint, origin).await?;
    Ok(Upstream {
        stream,
        reused: false,
    })
}

/// A new connection, with TLS originated when the cluster asks for it.
pub async fn connect_io(
    cluster: &ClusterRuntime,
    endpoint: &EndpointRuntime,
    origin: Option<Origin<'_>>,
) -> Result<UpstreamIo, ProxyError> {
    let overflowed = |overflow| {
        cluster.stats.overflows.inc();
        ProxyError::new(Side::Local, Kind::Overflow(overflow))
    };
    let slot = connection_slot(cluster).map_err(overflowed)?;
    // While a request waits for a new connection it is pending: the breaker's
    // max_pending_requests bounds how many may wait at once.
    let _pending = cluster
        .breaker
        .try_acquire(Slot::PendingRequests)
        .map_err(overflowed)?;
    let stream = connect(cluster, endpoint).await?;
    let Some(origin) = origin else {
        return Ok(UpstreamIo::new(
            UpstreamTransport::Plain(stream),
            Some(slot),
        ));
    };
    let name = match origin.server_name {
        Some(name) => name.clone(),
        None => ServerName::IpAddress(endpoint.addr.ip().into()),
    };
    match crate::tls::stream::connect(stream, origin.config, name, HANDSHAKE_TIMEOUT).await {
        Ok((tls, info)) => {
            cluster.stats.tls.handshakes.inc();
            if info.resumed {
                cluster.stats.tls.resumed.inc();
            }
            tracing::debug!(
                cluster = %cluster.name,
                endpoint = %endpoint.addr,
                version = info.version,
                cipher = info.cipher,
                resumed = info.resumed,
                peer = info.peer_identity.as_ref().map(|id| id.as_str()),
                "upstream TLS established"
            );
            Ok(UpstreamIo::new(
                UpstreamTransport::Tls(Box::new(tls)),
                Some(slot),
            ))
        }
        Err(failure) => {
            cluster.stats.tls.failure(failure.reason);
            tracing::warn!(
                cluster = %cluster.name,
                endpoint = %endpoint.addr,
                reason = failure.reason,
                error = %failure.detail,
                "upstream TLS handshake failed"
            );
            Err(ProxyError::new(
                Side::Upstream,
                Kind::UpstreamTls(failure.reason, failure.detail),
            ))
        }
    }
}

/// One of the cluster's `max_connections` slots. At the limit, an idle pooled
/// connection (to any endpoint of the cluster, the oldest of one pool) is closed
/// to free its slot: idle sockets must not starve a request that needs a new one.
fn connection_slot(cluster: &ClusterRuntime) -> Result<Guard, Overflow> {
    match cluster.breaker.try_acquire(Slot::Connections) {
        Ok(slot) => Ok(slot),
        Err(overflow) => {
            let evicted = cluster.endpoints.iter().any(|e| e.idle.close_oldest());
            if !evicted {
                return Err(overflow);
            }
            cluster.breaker.try_acquire(Slot::Connections)
        }
    }
}

pub async fn connect(
    cluster: &ClusterRuntime,
    endpoint: &EndpointRuntime,
) -> Result<TcpStream, ProxyError> {
    let attempt = monoio::time::timeout(
        cluster.connect_timeout,
        TcpStream::connect_addr(endpoint.addr),
    )
    .await;
    match attempt {
        Ok(Ok(stream)) => {
            cluster.stats.connections.inc();
            // Without NODELAY a 16 KiB response stalls 40 ms on Nagle + delayed ACK.
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Ok(Err(err)) => {
            cluster.stats.connect_failures.inc();
            tracing::debug!(cluster = %cluster.name, endpoint = %endpoint.addr, error = %err, "connect failed");
            Err(ProxyError::connect(err))
        }
        Err(_) => {
            cluster.stats.connect_failures.inc();
            Err(ProxyError::new(
                Side::Upstream,
                crate::error::Kind::ConnectTimeout,
            ))
        }
    }
}
