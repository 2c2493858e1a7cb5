//! The start of every connection, between accept and the protocol: TLS
//! termination (edge certificates by SNI, or the mesh SVID with client
//! certificates), plaintext detection on permissive mesh ports, and SNI routing
//! for `tls_passthrough`. Handshakes are ordinary tasks on the worker's event
//! loop with a deadline, so a slow client never stalls the worker's other
//! connections.

use crate::access_log::TlsFacts;
use crate::forward::l4::{self, L4Conn};
use crate::http::{self, io, Accepted};
use crate::state::{Worker, WorkerTable};
use crate::stream::ClientIo;
use crate::table::{ListenerMode, ListenerTable};
use crate::tls::clienthello::{self, Peek, Protocol, MAX_PEEK};
use crate::tls::spiffe::SpiffeId;
use monoio::io::CancelHandle;
use monoio::net::TcpStream;
use ringmesh_api::snapshot::MeshMode;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Handshake and ClientHello deadline on L4 listeners (HTTP listeners use their
/// `header_read_timeout`).
const L4_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serve one accepted connection of listener `index` of `table` to its end.
pub async fn start(
    worker: Rc<Worker>,
    table: Rc<WorkerTable>,
    index: usize,
    mut stream: TcpStream,
    peer: SocketAddr,
    cancel: CancelHandle,
) {
    let _ = stream.set_nodelay(true);
    let Some(listener) = table.table.listeners.get(index) else {
        return;
    };
    let timeout = match &listener.mode {
        ListenerMode::Http(http) => http.header_read_timeout,
        ListenerMode::Tcp(_) => L4_HANDSHAKE_TIMEOUT,
    };
    if let ListenerMode::Tcp(spec) = &listener.mode {
        if spec.passthrough {
            let Some((hello, cluster)) = peek_hello(&mut stream, listener, timeout).await else {
                return;
            };
            let conn = L4Conn {
                client: ClientIo::Plain(stream),
                client_addr: peer,
                tls: None,
                peer: None,
                prefix: hello,
                listener: index,
                cluster: Some(cluster),
            };
            let spec = spec.clone();
            l4::serve(worker, table.clone(), &spec, conn).await;
            return;
        }
    }
    let Some((client, accepted)) = terminate(&worker, &table, index, stream, timeout).await else {
        return;
    };
    match &listener.mode {
        ListenerMode::Tcp(spec) => {
            let spec = spec.clone();
            let conn = L4Conn {
                client,
                client_addr: peer,
                tls: accepted.tls,
                peer: accepted.peer,
                prefix: accepted.prefix,
                listener: index,
                cluster: None,
            };
            l4::serve(worker, table.clone(), &spec, conn).await;
        }
        ListenerMode::Http(_) => {
            let name = listener.name.clone();
            // A keep-alive connection takes the table again for every request.
            drop(table);
            http::serve(worker, &name, client, peer, cancel, accepted).await;
        }
    }
}

/// Terminate TLS when the listener asks for it. Returns the client stream and what
/// came with it (the peer's SPIFFE ID, what TLS negotiated, bytes already read as
/// plaintext on a permissive port), or `None` when the connection is to be closed.
async fn terminate(
    worker: &Worker,
    table: &WorkerTable,
    index: usize,
    mut stream: TcpStream,
    timeout: Duration,
) -> Option<(ClientIo, Accepted)> {
    let listener = table.table.listeners.get(index)?;
    if listener.tls.is_none() && listener.mesh.is_none() {
        return Some((ClientIo::Plain(stream), Accepted::default()));
    }
    let stats = table.listener_stats.get(index)?;
    let mut prefix = Vec::new();
    if listener.mesh == Some(MeshMode::Permissive) {
        prefix.reserve(1024);
        let deadline = Some(Instant::now() + timeout);
        loop {
            match clienthello::detect(&prefix) {
                Protocol::Tls => break,
                Protocol::NeedMore => match io::read_more(&mut stream, &mut prefix, deadline).await
                {
                    io::ReadOutcome::Data(_) => {}
                    _ => return None,
                },
                _ => {
                    stats.mesh_plaintext.inc();
                    tracing::debug!(listener = %listener.name, "mesh: plaintext accepted (permissive)");
                    let accepted = Accepted {
                        prefix,
                        ..Accepted::default()
                    };
                    return Some((ClientIo::Plain(stream), accepted));
                }
            }
        }
    }
    if listener.mesh.is_some() && worker.shared.identity.server.current().is_empty() {
        stats.tls.failure("no_identity");
        tracing::warn!(listener = %listener.name, "mesh: no SVID installed yet; connection refused");
        return None;
    }
    let config = table.server_tls.get(index).and_then(Option::as_ref)?;
    match crate::tls::stream::accept(stream, config, &prefix, timeout).await {
        Ok((tls, info)) => {
            stats.tls.handshakes.inc();
            if info.resumed {
                stats.tls.resumed.inc();
            }
            tracing::debug!(
                listener = %listener.name,
                version = info.version,
                cipher = info.cipher,
                alpn = info.alpn.as_deref().map(String::from_utf8_lossy).as_deref(),
                sni = info.sni.as_deref(),
                peer = info.peer_identity.as_ref().map(SpiffeId::as_str),
                resumed = info.resumed,
                "TLS accepted"
            );
            let accepted = Accepted {
                tls: Some(TlsFacts {
                    version: info.version,
                    alpn: info.alpn,
                    resumed: info.resumed,
                }),
                peer: info.peer_identity,
                prefix: Vec::new(),
            };
            Some((ClientIo::Tls(Box::new(tls)), accepted))
        }
        Err(failure) => {
            stats.tls.failure(failure.reason);
            tracing::debug!(
                listener = %listener.name,
                reason = failure.reason,
                error = %failure.detail,
                "TLS handshake failed"
            );
            None
        }
    }
}

/// Read the ClientHello of a passthrough connection and pick its cluster by SNI
/// (the listener's `cluster` when no route matches or no SNI was sent).
async fn peek_hello(
    stream: &mut TcpStream,
    listener: &ListenerTable,
    timeout: Duration,
) -> Option<(Vec<u8>, usize)> {
    let ListenerMode::Tcp(spec) = &listener.mode else {
        return None;
    };
    let mut hello = Vec::with_capacity(2048);
    let deadline = Some(Instant::now() + timeout);
    let sni = loop {
        match clienthello::parse_client_hello(&hello) {
            Peek::Hello(parsed) => break parsed.sni.map(|name| name.as_str().to_string()),
            Peek::Incomplete { .. } if hello.len() < MAX_PEEK => {
                match io::read_more(stream, &mut hello, deadline).await {
                    io::ReadOutcome::Data(_) => {}
                    _ => return None,
                }
            }
            other => {
                tracing::debug!(listener = %listener.name, peek = ?other, "passthrough: not a usable ClientHello; closing");
                return None;
            }
        }
    };
    let cluster = sni
        .as_deref()
        .and_then(|name| listener.sni_routes.lookup(name))
        .unwrap_or(spec.cluster.0 as usize);
    tracing::debug!(listener = %listener.name, sni = sni.as_deref(), cluster, "passthrough routed");
    Some((hello, cluster))
}
