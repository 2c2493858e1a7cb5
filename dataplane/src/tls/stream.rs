//! Running TLS handshakes on monoio sockets and handing back the streams the
//! request path uses ([`super::io::TlsStream`]), plus [`Rewind`] for replaying
//! peeked bytes in passthrough.
//!
//! Why not `monoio_rustls::TlsAcceptor::accept`: its stream keeps the rustls
//! connection private, so SNI, ALPN, version, cipher and the peer certificate
//! could not be read after the handshake, and taking it apart with
//! `into_parts` would drop ciphertext it had already buffered. So the handshake
//! is driven here (owned buffers, no `unsafe`), every byte read is fed into
//! rustls, and only then is the connection wrapped with `TlsStream::new`,
//! whose empty buffers lose nothing. This also lets `accept` start from bytes
//! already read by protocol detection, without a replaying wrapper.
//!
//! Handshakes are ordinary tasks on the worker's event loop: every wait is an
//! IO await, so a slow or stalled peer never blocks other connections, and a
//! deadline bounds how long one may take.

use super::io::TlsStream;
use super::spiffe::{svid_identity, SpiffeId};
use super::verify::failure_reason;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, PrefixedReadIo};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, ConnectionCommon, ServerConfig, ServerConnection};
use std::fmt;
use std::io::Cursor;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

/// A terminated TLS connection from a client.
pub type ServerStream<IO> = TlsStream<IO, ServerConnection>;
/// An originated TLS connection to an upstream.
pub type ClientStream<IO> = TlsStream<IO, ClientConnection>;

/// A socket whose first reads return bytes that were already read (peeked)
/// from it. monoio's `PrefixedReadIo` does the copying into the caller's buffer
/// (that needs `unsafe`, which this crate forbids); writes go straight through.
/// For L4 passthrough the simpler route is to write the peeked bytes to the
/// upstream first and then relay both sockets as usual.
pub type Rewind<IO> = PrefixedReadIo<IO, Cursor<Vec<u8>>>;

pub fn rewind<IO>(io: IO, peeked: Vec<u8>) -> Rewind<IO> {
    PrefixedReadIo::new(io, Cursor::new(peeked))
}

/// Ciphertext read per socket read during a handshake. At most this much can be
/// left over when the handshake ends, which rustls always accepts (its plaintext
/// limit is 16 KiB), so nothing is dropped on hand-over.
const HANDSHAKE_READ: usize = 8 * 1024;

/// What was negotiated, for routing, logs and authorization.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerInfo {
    /// The SNI the client sent (server side) or we sent (client side).
    pub sni: Option<String>,
    pub alpn: Option<Vec<u8>>,
    /// "TLSv1.3" or "TLSv1.2".
    pub version: &'static str,
    /// IANA name of the cipher suite.
    pub cipher: &'static str,
    /// The peer's SPIFFE ID, when its certificate is a valid X.509-SVID (the
    /// verifier has already checked the chain).
    pub peer_identity: Option<SpiffeId>,
    /// The peer's leaf certificate (serial and expiry for logs), if it sent one.
    pub peer_leaf: Option<CertificateDer<'static>>,
    /// Whether the handshake resumed an earlier session.
    pub resumed: bool,
}

/// A failed handshake: `reason` is a stable label for metrics
/// (`timeout`, `eof`, `io`, or a [`failure_reason`] label such as `expired`).
#[derive(Debug)]
pub struct TlsFailure {
    pub reason: &'static str,
    pub detail: String,
    /// The rustls error, when TLS itself failed (not the socket).
    pub tls: Option<rustls::Error>,
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLS handshake failed ({}): {}", self.reason, self.detail)
    }
}

impl std::error::Error for TlsFailure {}

impl TlsFailure {
    fn tls(err: rustls::Error) -> TlsFailure {
        TlsFailure {
            reason: failure_reason(&err),
            detail: err.to_string(),
            tls: Some(err),
        }
    }

    fn io(err: std::io::Error) -> TlsFailure {
        TlsFailure {
            reason: "io",
            detail: err.to_string(),
            tls: None,
        }
    }

    fn other(reason: &'static str, detail: &str) -> TlsFailure {
        TlsFailure {
            reason,
            detail: detail.to_string(),
            tls: None,
        }
    }
}

/// Terminate TLS on `io`. `prefix` holds bytes already read from it (the
/// ClientHello peeked by detection; empty if none). Needs a runtime with the
/// timer enabled (workers have one).
pub async fn accept<IO>(
    mut io: IO,
    config: &Arc<ServerConfig>,
    prefix: &[u8],
    timeout: Duration,
) -> Result<(ServerStream<IO>, PeerInfo), TlsFailure>
where
    IO: AsyncReadRent + AsyncWriteRent,
{
    let mut conn = ServerConnection::new(config.clone()).map_err(TlsFailure::tls)?;
    let shake = handshake(&mut io, &mut conn, prefix);
    match monoio::time::timeout(timeout, shake).await {
        Err(_) => return Err(TlsFailure::other("timeout", "handshake deadline passed")),
        Ok(result) => result?,
    }
    let info = peer_info(&conn, conn.server_name().map(str::to_string));
    Ok((ServerStream::new(io, conn), info))
}

/// Originate TLS on `io` to `server_name` (sent as SNI unless it is an IP
/// address; checked against the certificate only in DNS mode).
pub async fn connect<IO>(
    mut io: IO,
    config: &Arc<ClientConfig>,
    server_name: ServerName<'static>,
    timeout: Duration,
) -> Result<(ClientStream<IO>, PeerInfo), TlsFailure>
where
    IO: AsyncReadRent + AsyncWriteRent,
{
    let sni = match &server_name {
        ServerName::DnsName(name) => Some(name.as_ref().to_string()),
        _ => None,
    };
    let mut conn = ClientConnection::new(config.clone(), server_name).map_err(TlsFailure::tls)?;
    let shake = handshake(&mut io, &mut conn, &[]);
    match monoio::time::timeout(timeout, shake).await {
        Err(_) => return Err(TlsFailure::other("timeout", "handshake deadline passed")),
        Ok(result) => result?,
    }
    let info = peer_info(&conn, sni);
    Ok((ClientStream::new(io, conn), info))
}

fn peer_info<SD>(conn: &ConnectionCommon<SD>, sni: Option<String>) -> PeerInfo {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "unknown",
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .and_then(|suite| suite.suite().as_str())
        .unwrap_or("unknown");
    let peer_leaf = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .cloned();
    let peer_identity = peer_leaf.as_ref().and_then(|leaf| svid_identity(leaf).ok());
    PeerInfo {
        sni,
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        version,
        cipher,
        peer_identity,
        peer_leaf,
        resumed: conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
    }
}

/// Drive a handshake to completion over owned buffers. On success rustls holds
/// every byte read from `io` (nothing is left in our buffer) and has nothing
/// left to send, so the connection can be wrapped by a fresh stream.
async fn handshake<IO, C, SD>(io: &mut IO, conn: &mut C, prefix: &[u8]) -> Result<(), TlsFailure>
where
    IO: AsyncReadRent + AsyncWriteRent,
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: rustls::SideData,
{
    let mut input = prefix.to_vec();
    let mut consumed = 0;
    let mut output = Vec::with_capacity(4096);
    loop {
        send_pending(io, conn, &mut output).await?;
        if !conn.is_handshaking() {
            break;
        }
        if consumed == input.len() {
            input.clear();
            input.reserve(HANDSHAKE_READ);
            // Read at most HANDSHAKE_READ even if the buffer grew larger (prefix).
            let window = std::mem::take(&mut input).slice_mut(0..HANDSHAKE_READ);
            let (read, window) = io.read(window).await;
            input = window.into_inner();
            consumed = 0;
            match read {
                Ok(0) => return Err(TlsFailure::other("eof", "peer closed during handshake")),
                Ok(_) => {}
                Err(err) => return Err(TlsFailure::io(err)),
            }
        }
        let rest = input.get(consumed..).unwrap_or_default();
        let used = feed(io, conn, &mut output, rest).await?;
        if used == 0 {
            // rustls takes nothing more after a close_notify.
            return Err(TlsFailure::other("eof", "peer closed during handshake"));
        }
        consumed += used;
    }
    // Application data (or a TLS 1.3 ticket) that arrived with the last flight.
    while let Some(rest) = input.get(consumed..).filter(|rest| !rest.is_empty()) {
        let used = feed(io, conn, &mut output, rest).await?;
        if used == 0 {
            break; // close_notify: the rest is after the end of the stream
        }
        consumed += used;
    }
    send_pending(io, conn, &mut output).await
}

/// Give rustls as much of `data` as it takes and process it. On a TLS error,
/// send the alert rustls queued (best effort) before failing.
async fn feed<IO, C, SD>(
    io: &mut IO,
    conn: &mut C,
    output: &mut Vec<u8>,
    mut data: &[u8],
) -> Result<usize, TlsFailure>
where
    IO: AsyncReadRent + AsyncWriteRent,
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: rustls::SideData,
{
    let used = conn.read_tls(&mut data).map_err(TlsFailure::io)?;
    if let Err(err) = conn.process_new_packets() {
        let _ = send_pending(io, conn, output).await;
        return Err(TlsFailure::tls(err));
    }
    Ok(used)
}

async fn send_pending<IO, C, SD>(
    io: &mut IO,
    conn: &mut C,
    output: &mut Vec<u8>,
) -> Result<(), TlsFailure>
where
    IO: AsyncReadRent + AsyncWriteRent,
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: rustls::SideData,
{
    while conn.wants_write() {
        output.clear();
        conn.write_tls(output).map_err(TlsFailure::io)?;
        let (written, buf) = io.write_all(std::mem::take(output)).await;
        *output = buf;
        written.map_err(TlsFailure::io)?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
