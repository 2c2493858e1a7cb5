//! rustls configuration profiles: the edge (TLS 1.2 and 1.3, AEAD suites only),
//! the inbound mesh port (TLS 1.3 only, client SVID required or optional), and
//! origination to upstreams (TLS 1.3 only between sidecars, SPIFFE or DNS
//! identity, optional client certificate, session resumption).
//!
//! Build one `ServerConfig`/`ClientConfig` per worker: rustls' session caches sit
//! behind a lock, so sharing a config across cores would share that lock; per
//! worker it is only ever taken by one thread. The certificate stores and trust
//! bundles inside are `Arc`s shared by all workers, so rotation still reaches
//! every core at once. Edge resumption ([`ServerResumption`]) outlives the
//! configs: TLS 1.3 tickets are sealed with keys shared by every worker, so a
//! client resumes whichever worker accepts it, and after a table swap too.

use super::certs::{CertStore, ClientCertSlot};
use super::verify::{ClientVerifier, ExpectedPeer, ServerVerifier, SharedBundle};
use rustls::client::{ClientSessionMemoryCache, Resumption};
use rustls::crypto::{ring, CryptoProvider};
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};
use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use std::sync::Arc;

/// ALPN id of HTTP/1.1.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";
/// ALPN id of HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";

/// Server-side sessions remembered per worker for resumption by session id (TLS
/// 1.2 clients without tickets; tickets need no server-side state).
const SERVER_SESSIONS: usize = 1024;

/// What edge listeners resume sessions with, kept for the life of the process
/// (a config is rebuilt at every table swap; resumption must not start over).
#[derive(Clone)]
pub struct ServerResumption {
    /// Seals and opens session tickets; its keys rotate every few hours and are
    /// never written anywhere. Shared by every worker.
    tickets: Arc<dyn ProducesTickets>,
    /// Session ids of one worker.
    sessions: Arc<dyn StoresServerSessions>,
}

impl ServerResumption {
    /// `tickets` from [`ticket_keys`], shared by the workers.
    pub fn new(tickets: Arc<dyn ProducesTickets>) -> Self {
        ServerResumption {
            tickets,
            sessions: ServerSessionMemoryCache::new(SERVER_SESSIONS),
        }
    }
}

impl std::fmt::Debug for ServerResumption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerResumption")
            .field("tickets", &self.tickets.enabled())
            .finish_non_exhaustive()
    }
}

/// The process's ticket keys (AEAD, rotated by rustls). Without a system random
/// source there are none: resumption then falls back to per-worker session ids.
pub fn ticket_keys() -> Arc<dyn ProducesTickets> {
    match ring::Ticketer::new() {
        Ok(ticketer) => ticketer,
        Err(err) => {
            tracing::warn!(error = %err, "no TLS session ticket keys; resumption by session id only");
            Arc::new(NoTickets)
        }
    }
}

#[derive(Debug)]
struct NoTickets;

impl ProducesTickets for NoTickets {
    fn enabled(&self) -> bool {
        false
    }
    fn lifetime(&self) -> u32 {
        0
    }
    fn encrypt(&self, _plain: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn decrypt(&self, _cipher: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

/// Only AEAD suites with forward secrecy; stated explicitly so that a future
/// provider default cannot widen what the edge accepts.
static AEAD_SUITES: &[SupportedCipherSuite] = &[
    ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
    ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
    ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ring::cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ring::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ring::cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

static EDGE_VERSIONS: &[&SupportedProtocolVersion] = &[&TLS13, &TLS12];
static MESH_VERSIONS: &[&SupportedProtocolVersion] = &[&TLS13];

/// A configuration rustls refused (a bug in the profile, not user input).
#[derive(Debug, thiserror::Error)]
#[error("TLS configuration rejected: {0}")]
pub struct ConfigError(#[from] rustls::Error);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: AEAD_SUITES.to_vec(),
        ..ring::default_provider()
    })
}

/// Whether an inbound mesh port insists on a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeshMode {
    /// Every connection must present a valid SVID.
    Strict,
    /// TLS clients may omit a certificate (they get no identity); the listener
    /// also accepts plaintext, detected before TLS (see `clienthello::detect`).
    Permissive,
}

/// `resume`: whether clients may resume sessions. Not between sidecars: a peer's
/// identity must come from a certificate verified in the same handshake, and a
/// resumed session carries the identity of the certificate it started with, which
/// may have expired or been rotated away since. Mesh connections are pooled, so the
/// full handshakes this costs are rare.
fn finish_server(
    mut config: ServerConfig,
    alpn: &[&[u8]],
    resume: Option<&ServerResumption>,
) -> Arc<ServerConfig> {
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    if let Some(resumption) = resume {
        config.ticketer = resumption.tickets.clone();
        config.session_storage = resumption.sessions.clone();
    } else {
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    // Pick by our suite order (AEAD_SUITES), not the client's.
    config.ignore_client_order = true;
    // Never 0-RTT: replayable early data is unsafe for non-idempotent requests.
    config.max_early_data_size = 0;
    Arc::new(config)
}

/// Edge listeners (`tls`/`https`): TLS 1.2 and 1.3, AEAD suites, certificate by
/// SNI from `certs`, ALPN from `alpn` in server preference order.
pub fn edge_server(
    certs: Arc<CertStore>,
    alpn: &[&[u8]],
    resumption: &ServerResumption,
) -> Result<Arc<ServerConfig>, ConfigError> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(EDGE_VERSIONS)?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    Ok(finish_server(config, alpn, Some(resumption)))
}

/// Inbound mesh listeners: TLS 1.3 only; the client's SVID is verified against
/// `bundle`. `accept` is usually [`ExpectedPeer::AnySvid`] (any identity of the
/// trust domain; authorization policies decide later what it may do).
pub fn mesh_server(
    certs: Arc<CertStore>,
    bundle: SharedBundle,
    accept: ExpectedPeer,
    mode: MeshMode,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, ConfigError> {
    let verifier = ClientVerifier::new(bundle, accept, mode == MeshMode::Strict);
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(MESH_VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(certs);
    Ok(finish_server(config, alpn, None))
}

/// What an origination `ClientConfig` needs to know about one cluster.
#[derive(Debug, Clone)]
pub struct Origination {
    /// Between sidecars: TLS 1.3 only. Otherwise TLS 1.2 and 1.3.
    pub mesh: bool,
    /// CAs the upstream's certificate must chain to.
    pub bundle: SharedBundle,
    /// SPIFFE ID(s) or the DNS name the upstream must prove.
    pub expected: ExpectedPeer,
    /// Our certificate when the cluster asks for mTLS.
    pub client_cert: Option<Arc<ClientCertSlot>>,
    /// ALPN ids to offer, in preference order (empty: none).
    pub alpn: Vec<Vec<u8>>,
    /// The worker's session cache: shared by this worker's clusters, so a
    /// reconnect to the same upstream (same server name) resumes.
    pub sessions: Arc<ClientSessionMemoryCache>,
}

/// A per-worker client session cache for [`Origination::sessions`].
pub fn session_cache(entries: usize) -> Arc<ClientSessionMemoryCache> {
    Arc::new(ClientSessionMemoryCache::new(entries))
}

/// Origination to an upstream cluster.
pub fn origination_client(spec: &Origination) -> Result<Arc<ClientConfig>, ConfigError> {
    let versions = if spec.mesh {
        MESH_VERSIONS
    } else {
        EDGE_VERSIONS
    };
    let verifier = ServerVerifier::new(spec.bundle.clone(), spec.expected.clone());
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &spec.client_cert {
        Some(slot) => builder.with_client_cert_resolver(slot.clone()),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = spec.alpn.clone();
    // Between sidecars every connection proves the identity afresh (see
    // `finish_server`); to other upstreams sessions resume.
    config.resumption = if spec.mesh {
        Resumption::disabled()
    } else {
        Resumption::store(spec.sessions.clone())
    };
    config.enable_sni = true;
    Ok(Arc::new(config))
}
