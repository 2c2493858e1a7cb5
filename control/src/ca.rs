//! The node's mesh CA: `ca init` makes an ECDSA P-256 key and a self-signed CA
//! certificate for one trust domain; serve mode loads them ([`MeshCa::load`]) and
//! signs a fresh X.509-SVID for each dataplane ([`MeshCa::issue`]).
//!
//! The CA certificate carries the trust domain as its one URI SAN
//! (`spiffe://TD`, as SPIFFE allows for signing certificates), so serving with a
//! `--trust-domain` other than the one the CA was made for is refused at start.
//! Every SVID gets a new key: a leaked key is good only until its SVID expires.

use crate::spiffe::check_trust_domain;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::CertificateDer;
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

pub const CA_CERT_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca.key";
/// Certificates are valid from this long before they are made, so that a peer
/// whose clock is slightly behind does not refuse them as not yet valid.
pub const BACKDATE: Duration = Duration::from_secs(60);
/// The longest CA lifetime `ca init` makes (100 years).
pub const MAX_CA_DAYS: u32 = 36_500;

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("trust domain {domain:?}: {reason}")]
    TrustDomain { domain: String, reason: String },
    #[error("--days must be between 1 and {MAX_CA_DAYS}, not {0}")]
    Days(u32),
    #[error("refusing to overwrite {}; pass --force to replace them", list(.0))]
    Exists(Vec<PathBuf>),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a usable CA certificate: {detail}")]
    BadCert { path: PathBuf, detail: String },
    #[error("{path}: not a usable private key: {detail}")]
    BadKey { path: PathBuf, detail: String },
    #[error("{key} is not the key of the CA certificate {cert}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("{path} is the CA of trust domain {ca:?}, but --trust-domain is {flag:?}")]
    WrongTrustDomain {
        path: PathBuf,
        ca: String,
        flag: String,
    },
    #[error("generating the CA: {0}")]
    Generate(String),
    #[error("issuing an SVID for {spiffe_id}: {detail}")]
    Issue { spiffe_id: String, detail: String },
}

fn list(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(" and ")
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CaError + '_ {
    move |source| CaError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What `ca init` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub trust_domain: String,
    pub not_after_unix: i64,
}

/// Creates `DIR/ca.pem` and `DIR/ca.key` (mode 0600) for `trust_domain`, valid
/// for `days`. Existing files are replaced only with `force`.
pub fn init(dir: &Path, trust_domain: &str, days: u32, force: bool) -> Result<Created, CaError> {
    check_trust_domain(trust_domain).map_err(|reason| CaError::TrustDomain {
        domain: trust_domain.to_string(),
        reason,
    })?;
    if days == 0 || days > MAX_CA_DAYS {
        return Err(CaError::Days(days));
    }
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    let existing: Vec<PathBuf> = [&cert_path, &key_path]
        .into_iter()
        .filter(|p| p.symlink_metadata().is_ok())
        .cloned()
        .collect();
    if !existing.is_empty() && !force {
        return Err(CaError::Exists(existing));
    }
    let generate = |err: rcgen::Error| CaError::Generate(err.to_string());
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate)?;
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "ringmesh");
    params.distinguished_name.push(
        DnType::CommonName,
        format!("ringmesh mesh CA {trust_domain}"),
    );
    // Leaves only: no intermediate may be made under this CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let uri = format!("spiffe://{trust_domain}");
    params.subject_alt_names = vec![SanType::URI(uri.try_into().map_err(generate)?)];
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::from_secs(u64::from(days) * 86_400);
    let cert = params.self_signed(&key).map_err(generate)?;

    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))?;
    for path in &existing {
        std::fs::remove_file(path).map_err(io_err(path))?;
    }
    write_new(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    if let Err(err) = write_new(&cert_path, cert.pem().as_bytes(), 0o644) {
        // Do not leave a key without its certificate behind.
        let _ = std::fs::remove_file(&key_path);
        return Err(err);
    }
    Ok(Created {
        cert: cert_path,
        key: key_path,
        trust_domain: trust_domain.to_string(),
        not_after_unix: params.not_after.unix_timestamp(),
    })
}

/// Writes a file that must not exist yet, created with `mode` (never briefly
/// readable by others, as a later chmod would allow).
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CaError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_err(path))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_err(path))
}

/// A freshly issued X.509-SVID.
#[derive(Clone, PartialEq, Eq)]
pub struct Svid {
    pub spiffe_id: String,
    /// The leaf (the CA signs leaves directly: there is no intermediate).
    pub chain_pem: String,
    /// PKCS#8 PEM of the leaf's new key.
    pub key_pem: String,
    /// Lower-case hex, as the dataplane logs it.
    pub serial_hex: String,
    pub not_before_unix: i64,
    pub expires_unix: i64,
}

impl std::fmt::Debug for Svid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Svid")
            .field("spiffe_id", &self.spiffe_id)
            .field("serial_hex", &self.serial_hex)
            .field("expires_unix", &self.expires_unix)
            .finish_non_exhaustive()
    }
}

/// The loaded CA: its signing key, its certificate (the trust bundle dataplanes
/// get) and its trust domain.
pub struct MeshCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_path: PathBuf,
    trust_domain: String,
    not_after_unix: i64,
}

impl std::fmt::Debug for MeshCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshCa")
            .field("cert", &self.cert_path)
            .field("trust_domain", &self.trust_domain)
            .field("not_after_unix", &self.not_after_unix)
            .finish_non_exhaustive()
    }
}

impl MeshCa {
    /// Loads `DIR/ca.pem` and `DIR/ca.key` and checks that they belong together,
    /// that the certificate is a CA valid now, and that it is `trust_domain`'s.
    pub fn load(dir: &Path, trust_domain: &str) -> Result<MeshCa, CaError> {
        check_trust_domain(trust_domain).map_err(|reason| CaError::TrustDomain {
            domain: trust_domain.to_string(),
            reason,
        })?;
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let cert_text = std::fs::read_to_string(&cert_path).map_err(io_err(&cert_path))?;
        let key_text = std::fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
        let bad_cert = |detail: String| CaError::BadCert {
            path: cert_path.clone(),
            detail,
        };
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_text.as_bytes())
            .map_err(|err| bad_cert(format!("no PEM CERTIFICATE block ({err})")))?;
        if pem.label != "CERTIFICATE" {
            return Err(bad_cert(format!(
                "the first PEM block is {:?}, not CERTIFICATE",
                pem.label
            )));
        }
        let (_, cert) =
            X509Certificate::from_der(&pem.contents).map_err(|err| bad_cert(err.to_string()))?;
        let is_ca = cert
            .basic_constraints()
            .map_err(|err| bad_cert(err.to_string()))?
            .is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err(bad_cert("basicConstraints does not say CA".into()));
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let not_after = cert.validity().not_after.timestamp();
        if not_after <= now {
            return Err(bad_cert(format!(
                "expired at {} (unix {not_after}); make a new CA with `ca init --force`",
                cert.validity().not_after
            )));
        }
        if cert.validity().not_before.timestamp() > now {
            return Err(bad_cert(format!(
                "not valid before {}",
                cert.validity().not_before
            )));
        }
        if let Some(ca_domain) = ca_trust_domain(&cert).map_err(bad_cert)? {
            if ca_domain != trust_domain {
                return Err(CaError::WrongTrustDomain {
                    path: cert_path,
                    ca: ca_domain,
                    flag: trust_domain.to_string(),
                });
            }
        }
        let key = KeyPair::from_pem(&key_text).map_err(|err| CaError::BadKey {
            path: key_path.clone(),
            detail: err.to_string(),
        })?;
        if key.public_key_raw() != cert.public_key().subject_public_key.data.as_ref() {
            return Err(CaError::KeyMismatch {
                cert: cert_path,
                key: key_path,
            });
        }
        if let Ok(meta) = std::fs::metadata(&key_path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    key = %key_path.display(),
                    mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
                    "the CA key is readable by other users; chmod 600 it"
                );
            }
        }
        let der = CertificateDer::from(pem.contents.clone());
        let issuer =
            Issuer::from_ca_cert_der(&der, key).map_err(|err| bad_cert(err.to_string()))?;
        let cert_pem = pem_block("CERTIFICATE", &pem.contents);
        Ok(MeshCa {
            issuer,
            cert_pem,
            cert_path,
            trust_domain: trust_domain.to_string(),
            not_after_unix: not_after,
        })
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The CA certificate as PEM: the trust bundle every dataplane gets.
    pub fn bundle_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    pub fn not_after_unix(&self) -> i64 {
        self.not_after_unix
    }

    /// Signs a new X.509-SVID for `spiffe_id` (already checked to be in this
    /// CA's trust domain) with a new key, valid from a minute ago for `ttl`,
    /// but never past the CA's own expiry.
    pub fn issue(&self, spiffe_id: &str, ttl: Duration) -> Result<Svid, CaError> {
        let fail = |detail: String| CaError::Issue {
            spiffe_id: spiffe_id.to_string(),
            detail,
        };
        let key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| fail(e.to_string()))?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        // The identity is the URI SAN; an empty subject makes rcgen mark the SAN
        // critical, as RFC 5280 requires.
        params.distinguished_name = DistinguishedName::new();
        let uri = spiffe_id
            .to_string()
            .try_into()
            .map_err(|e: rcgen::Error| fail(e.to_string()))?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - BACKDATE;
        let ca_end = OffsetDateTime::from_unix_timestamp(self.not_after_unix)
            .map_err(|e| fail(e.to_string()))?;
        params.not_after = (now + ttl).min(ca_end);
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| fail(e.to_string()))?;
        let (_, parsed) = X509Certificate::from_der(cert.der()).map_err(|e| fail(e.to_string()))?;
        let serial_hex = parsed
            .raw_serial()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Svid {
            spiffe_id: spiffe_id.to_string(),
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial_hex,
            not_before_unix: params.not_before.unix_timestamp(),
            expires_unix: params.not_after.unix_timestamp(),
        })
    }
}

/// The trust domain named by a CA certificate's `spiffe://TD` URI SAN, if any.
fn ca_trust_domain(cert: &X509Certificate<'_>) -> Result<Option<String>, String> {
    let Some(san) = cert.subject_alternative_name().map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    Ok(san.value.general_names.iter().find_map(|name| match name {
        GeneralName::URI(uri) => uri
            .strip_prefix("spiffe://")
            .map(|rest| rest.trim_end_matches('/').to_string()),
        _ => None,
    }))
}

/// PEM text of one DER block.
fn pem_block(label: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

#[cfg(test)]
#[path = "ca_tests.rs"]
pub(crate) mod tests;
