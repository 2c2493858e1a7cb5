//! Certificates and keys: loading PEM files, picking the server certificate by
//! SNI, and holding the workload's own client certificate, all swappable at
//! runtime (rotation) without touching open connections.
//!
//! Swapping works because rustls asks the resolver once per handshake and the
//! resulting session keeps its own `Arc<CertifiedKey>`: a store replaced through
//! `ArcSwap` is seen by the next handshake only, and established sessions never
//! look at the resolver again.

use arc_swap::{ArcSwap, ArcSwapOption};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use x509_parser::prelude::{FromDer, X509Certificate};

/// A certificate or key that cannot be used, with the file it came from.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{path}: cannot read PEM: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("{path}: no CERTIFICATE block found")]
    NoCertificates { path: PathBuf },
    #[error("{path}: no private key (PKCS#8, PKCS#1 or SEC1) found: {detail}")]
    NoKey { path: PathBuf, detail: String },
    #[error("{origin}: the private key does not fit the certificate or is unsupported: {detail}")]
    KeyMismatch { origin: String, detail: String },
    #[error("{origin}: certificate cannot be parsed: {detail}")]
    BadCertificate { origin: String, detail: String },
    #[error(
        "{name:?} is not a valid server name for SNI selection (use `host.domain` or `*.domain`)"
    )]
    BadName { name: String },
}

/// Every CERTIFICATE block of a PEM file, in order (leaf first for a chain).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let read_err = |detail: String| CertError::Read {
        path: path.to_path_buf(),
        detail,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|err| read_err(err.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| read_err(err.to_string()))?;
    if certs.is_empty() {
        return Err(CertError::NoCertificates {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    PrivateKeyDer::from_pem_file(path).map_err(|err| CertError::NoKey {
        path: path.to_path_buf(),
        detail: err.to_string(),
    })
}

/// Pair a chain with its key, checking that the key belongs to the leaf.
/// `origin` names where they came from, for the error message.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    origin: &str,
) -> Result<Arc<CertifiedKey>, CertError> {
    if chain.is_empty() {
        return Err(CertError::BadCertificate {
            origin: origin.to_string(),
            detail: "empty chain".into(),
        });
    }
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider)
        .map(Arc::new)
        .map_err(|err| CertError::KeyMismatch {
            origin: origin.to_string(),
            detail: err.to_string(),
        })
}

/// Load a chain and key from two PEM files (they may be the same file).
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, CertError> {
    let chain = load_certs(cert)?;
    let key_der = load_key(key)?;
    certified_key(
        chain,
        key_der,
        &format!("{} + {}", cert.display(), key.display()),
    )
}

/// The leaf's notAfter as unix seconds (for a certificate-expiry gauge).
pub fn expiry_unix(cert_der: &[u8]) -> Result<i64, CertError> {
    let (_, cert) = parse(cert_der)?;
    Ok(cert.validity().not_after.timestamp())
}

/// The serial number as lower-case hex (for logs and rotation checks).
pub fn serial_hex(cert_der: &[u8]) -> Result<String, CertError> {
    let (_, cert) = parse(cert_der)?;
    Ok(cert
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn parse(der: &[u8]) -> Result<(&[u8], X509Certificate<'_>), CertError> {
    X509Certificate::from_der(der).map_err(|err| CertError::BadCertificate {
        origin: "certificate".into(),
        detail: err.to_string(),
    })
}

/// Server certificates by SNI: exact names, `*.suffix` wildcards (one label,
/// as in RFC 6125), and a default for clients that send no or an unknown name.
#[derive(Clone, Default)]
pub struct SniTable {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the suffix after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl fmt::Debug for SniTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniTable")
            .field("exact", &self.exact.keys().collect::<Vec<_>>())
            .field("wildcard", &self.wildcard.keys().collect::<Vec<_>>())
            .field("default", &self.default.is_some())
            .finish()
    }
}

impl SniTable {
    pub fn new() -> SniTable {
        SniTable::default()
    }

    /// Serve `key` for `name` (`host.domain` or `*.domain`, case-insensitive).
    pub fn insert(&mut self, name: &str, key: Arc<CertifiedKey>) -> Result<(), CertError> {
        let lower = name.trim_end_matches('.').to_ascii_lowercase();
        let bad = || CertError::BadName {
            name: name.to_string(),
        };
        let (map, host) = match lower.strip_prefix("*.") {
            Some(suffix) => (&mut self.wildcard, suffix),
            None => (&mut self.exact, lower.as_str()),
        };
        let valid = super::clienthello::SniName::new(host.as_bytes())
            .is_some_and(|sni| sni.as_str() == host);
        if !valid {
            return Err(bad());
        }
        map.insert(host.to_string(), key);
        Ok(())
    }

    /// Serve `key` when no name matches.
    pub fn set_default(&mut self, key: Arc<CertifiedKey>) {
        self.default = Some(key);
    }

    /// The certificate for an SNI name (already lower-case, as rustls gives it).
    pub fn lookup(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = sni {
            let name = name.trim_end_matches('.');
            if let Some(key) = self.exact.get(name) {
                return Some(key.clone());
            }
            if let Some((_, suffix)) = name.split_once('.') {
                if let Some(key) = self.wildcard.get(suffix) {
                    return Some(key.clone());
                }
            }
        }
        self.default.clone()
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty() && self.default.is_none()
    }
}

/// The server-side resolver: an [`SniTable`] behind an `ArcSwap`, so that a new
/// table (new listener certificates, or a rotated workload certificate) can be
/// published from any thread while handshakes run.
#[derive(Debug)]
pub struct CertStore {
    table: ArcSwap<SniTable>,
}

impl CertStore {
    pub fn new(table: SniTable) -> Arc<CertStore> {
        Arc::new(CertStore {
            table: ArcSwap::from_pointee(table),
        })
    }

    /// Replace every certificate; handshakes already past certificate selection
    /// and established sessions keep what they had.
    pub fn store(&self, table: SniTable) {
        self.table.store(Arc::new(table));
    }

    pub fn current(&self) -> Arc<SniTable> {
        self.table.load_full()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.table.load().lookup(client_hello.server_name())
    }
}

/// The workload's own certificate for mTLS origination, swappable for rotation.
/// Empty means "no client certificate" (plain TLS origination).
#[derive(Debug, Default)]
pub struct ClientCertSlot {
    current: ArcSwapOption<CertifiedKey>,
}

impl ClientCertSlot {
    pub fn new(key: Option<Arc<CertifiedKey>>) -> Arc<ClientCertSlot> {
        Arc::new(ClientCertSlot {
            current: ArcSwapOption::new(key),
        })
    }

    pub fn store(&self, key: Option<Arc<CertifiedKey>>) {
        self.current.store(key);
    }
}

impl ResolvesClientCert for ClientCertSlot {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let key = self.current.load_full()?;
        // Offer the certificate only if the server can verify its signature;
        // otherwise the handshake would fail later with a vaguer error.
        key.key.choose_scheme(sigschemes)?;
        Some(key)
    }

    fn has_certs(&self) -> bool {
        self.current.load().is_some()
    }
}

#[cfg(test)]
#[path = "certs_tests.rs"]
mod tests;
