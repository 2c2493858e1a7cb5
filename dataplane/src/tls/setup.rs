//! From snapshot TLS settings to loaded material, once per table build (off the
//! request path): listener certificate stores by SNI, cluster origination
//! settings (CA bundle, expected peer, client certificate), and file-based mesh
//! identities with their installation into `MeshIdentity`. Every failure names
//! the TOML path and the file, so the dataplane refuses the table before it
//! binds or publishes anything.

use super::certs::{expiry_unix, load_certified_key, CertStore, ClientCertSlot, SniTable};
use super::config::{self, MeshMode as ProfileMode, Origination};
use super::identity::MeshIdentity;
use super::spiffe::SpiffeId;
use super::verify::{shared_bundle, ExpectedPeer, SharedBundle, TrustBundle};
use ringmesh_api::snapshot::{ListenerTls, MeshMode, MeshSpec, UpstreamTls};
use rustls::client::ClientSessionMemoryCache;
use rustls::pki_types::ServerName;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// A terminating listener's certificates, shared by every worker.
#[derive(Debug)]
pub struct ListenerTlsTable {
    pub store: Arc<CertStore>,
    pub alpn: Vec<Vec<u8>>,
    /// Which sessions may resume here: the listener's name and its certificate
    /// settings. A session from another listener, or from before the names or
    /// files it serves changed, starts over with a full handshake.
    pub resumption_scope: u64,
}

/// Loaded certificates with their expiry, for the `cert` gauge label.
pub type Expiries = Vec<(String, i64)>;

fn leaf_expiry(key: &CertifiedKey) -> Option<i64> {
    key.cert.first().and_then(|leaf| expiry_unix(leaf).ok())
}

/// Load every certificate of a `tls`/`https` listener. `at` is its TOML path.
pub fn listener_tls(
    listener: &str,
    spec: &ListenerTls,
    at: &str,
    expiries: &mut Expiries,
) -> Result<ListenerTlsTable, String> {
    let mut table = SniTable::new();
    let mut default_set = false;
    for (index, cert) in spec.certificates.iter().enumerate() {
        let cat = format!("{at}.tls.certificates[{index}]");
        let key = load_pair(&cat, &cert.cert, &cert.key)?;
        if let Some(expiry) = leaf_expiry(&key) {
            expiries.push((cert.cert.clone(), expiry));
        }
        for name in &cert.sni {
            table
                .insert(name, key.clone())
                .map_err(|err| format!("{cat}.sni: {err}"))?;
        }
        // The first certificate without names is the default; else the first one.
        if cert.sni.is_empty() && !default_set {
            table.set_default(key.clone());
            default_set = true;
        } else if index == 0 && !spec.certificates.iter().any(|c| c.sni.is_empty()) {
            table.set_default(key.clone());
        }
    }
    Ok(ListenerTlsTable {
        store: CertStore::new(table),
        alpn: spec.alpn.iter().map(|id| id.as_bytes().to_vec()).collect(),
        resumption_scope: resumption_scope(listener, spec),
    })
}

fn resumption_scope(listener: &str, spec: &ListenerTls) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    listener.hash(&mut hasher);
    for cert in &spec.certificates {
        (&cert.cert, &cert.key, &cert.sni).hash(&mut hasher);
    }
    hasher.finish()
}

fn load_pair(at: &str, cert: &str, key: &str) -> Result<Arc<CertifiedKey>, String> {
    for (which, path) in [("cert", cert), ("key", key)] {
        if let Err(err) = std::fs::metadata(path) {
            return Err(format!("{at}.{which}: {path}: {err}"));
        }
    }
    load_certified_key(Path::new(cert), Path::new(key)).map_err(|err| format!("{at}: {err}"))
}

/// How a cluster's endpoints are reached over TLS.
#[derive(Debug)]
pub struct ClusterTls {
    /// Sidecar to sidecar: TLS 1.3, the mesh bundle and our SVID.
    pub mesh: bool,
    /// The CA file's bundle; `None` for mesh clusters (the mesh identity's).
    pub bundle: Option<SharedBundle>,
    pub expected: ExpectedPeer,
    /// SNI and name to verify; `None`: the endpoint's IP address (no SNI).
    pub server_name: Option<ServerName<'static>>,
    pub client_cert: Option<Arc<ClientCertSlot>>,
}

pub fn cluster_tls(
    spec: &UpstreamTls,
    at: &str,
    expiries: &mut Expiries,
) -> Result<ClusterTls, String> {
    let bundle = match &spec.ca {
        Some(ca) => Some(shared_bundle(
            TrustBundle::load(None, Path::new(ca)).map_err(|err| format!("{at}.tls.ca: {err}"))?,
        )),
        None => None,
    };
    let expected = match &spec.spiffe_id {
        Some(id) => ExpectedPeer::Spiffe(
            SpiffeId::parse(id).map_err(|err| format!("{at}.tls.spiffe_id: {err}"))?,
        ),
        None if spec.mesh && spec.server_name.is_none() => ExpectedPeer::AnySvid,
        None => ExpectedPeer::DnsName,
    };
    let server_name = match &spec.server_name {
        Some(name) => Some(
            ServerName::try_from(name.clone())
                .map_err(|err| format!("{at}.tls.server_name: {err}"))?,
        ),
        None => None,
    };
    let client_cert = match (&spec.client_cert, &spec.client_key) {
        (Some(cert), Some(key)) => {
            let pair = load_pair(&format!("{at}.tls"), cert, key)?;
            if let Some(expiry) = leaf_expiry(&pair) {
                expiries.push((cert.clone(), expiry));
            }
            Some(ClientCertSlot::new(Some(pair)))
        }
        _ => None,
    };
    Ok(ClusterTls {
        mesh: spec.mesh,
        bundle,
        expected,
        server_name,
        client_cert,
    })
}

/// One worker's origination config for a cluster.
pub fn client_config(
    tls: &ClusterTls,
    identity: &MeshIdentity,
    sessions: &Arc<ClientSessionMemoryCache>,
) -> Result<Arc<ClientConfig>, String> {
    let bundle = match &tls.bundle {
        Some(bundle) => bundle.clone(),
        None => identity.bundle.clone(),
    };
    let client_cert = if tls.mesh {
        Some(identity.client.clone())
    } else {
        tls.client_cert.clone()
    };
    config::origination_client(&Origination {
        mesh: tls.mesh,
        bundle,
        expected: tls.expected.clone(),
        client_cert,
        alpn: Vec::new(),
        sessions: sessions.clone(),
    })
    .map_err(|err| err.to_string())
}

/// One worker's server config for a terminating or mesh listener.
pub fn server_config(
    tls: Option<&ListenerTlsTable>,
    mesh: Option<MeshMode>,
    identity: &MeshIdentity,
    resumption: impl FnOnce(u64) -> config::ServerResumption,
) -> Option<Result<Arc<ServerConfig>, String>> {
    let http1: &[&[u8]] = &[config::ALPN_HTTP1];
    if let Some(mode) = mesh {
        let mode = match mode {
            MeshMode::Strict => ProfileMode::Strict,
            MeshMode::Permissive => ProfileMode::Permissive,
        };
        let built = config::mesh_server(
            identity.server.clone(),
            identity.bundle.clone(),
            ExpectedPeer::AnySvid,
            mode,
            http1,
        );
        return Some(built.map_err(|err| err.to_string()));
    }
    let tls = tls?;
    let alpn: Vec<&[u8]> = tls.alpn.iter().map(Vec::as_slice).collect();
    let resumption = resumption(tls.resumption_scope);
    Some(config::edge_server(tls.store.clone(), &alpn, &resumption).map_err(|err| err.to_string()))
}

/// A file-based SVID and bundle, read and checked, ready to install.
pub struct LoadedIdentity {
    pub key: Arc<CertifiedKey>,
    pub bundle: Arc<TrustBundle>,
    pub expiry: Option<i64>,
    /// Latest modification time of the three files, to notice changes.
    pub modified: Option<SystemTime>,
    /// The files' text and the trust domain, for `MeshIdentity::install`.
    pub chain_pem: String,
    pub key_pem: String,
    pub bundle_pem: String,
    pub trust_domain: String,
}

/// Read `[mesh] cert/key/bundle`; `None` when the SVID comes from elsewhere.
pub fn load_mesh(spec: &MeshSpec) -> Option<Result<LoadedIdentity, String>> {
    let (cert, key, bundle) = match (&spec.cert, &spec.key, &spec.bundle) {
        (Some(cert), Some(key), Some(bundle)) => (cert, key, bundle),
        _ => return None,
    };
    Some(load_mesh_files(&spec.trust_domain, cert, key, bundle))
}

fn load_mesh_files(
    trust_domain: &str,
    cert: &str,
    key: &str,
    bundle: &str,
) -> Result<LoadedIdentity, String> {
    if let Err(err) = std::fs::metadata(bundle) {
        return Err(format!("mesh.bundle: {bundle}: {err}"));
    }
    let pair = load_pair("mesh", cert, key)?;
    let trust = TrustBundle::load(Some(trust_domain), Path::new(bundle))
        .map_err(|err| format!("mesh.bundle: {err}"))?;
    let read = |key: &str, path: &str| {
        std::fs::read_to_string(path).map_err(|err| format!("mesh.{key}: {path}: {err}"))
    };
    Ok(LoadedIdentity {
        chain_pem: read("cert", cert)?,
        key_pem: read("key", key)?,
        bundle_pem: read("bundle", bundle)?,
        trust_domain: trust_domain.to_string(),
        expiry: leaf_expiry(&pair),
        key: pair,
        bundle: Arc::new(trust),
        modified: modified(&[cert, key, bundle]),
    })
}

/// The latest modification time of `paths` (None if any cannot be read).
pub fn modified(paths: &[&str]) -> Option<SystemTime> {
    paths
        .iter()
        .map(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok())
        .try_fold(SystemTime::UNIX_EPOCH, |latest, time| {
            time.map(|t| latest.max(t))
        })
}

/// Make `loaded` the identity every new handshake uses (open connections keep
/// theirs), through `MeshIdentity::install`, which checks the SVID against the
/// bundle first and changes nothing when a check fails.
pub fn install(identity: &MeshIdentity, loaded: &LoadedIdentity) -> Result<(), String> {
    identity
        .install(
            &loaded.chain_pem,
            &loaded.key_pem,
            &loaded.bundle_pem,
            &loaded.trust_domain,
        )
        .map(|_| ())
}
