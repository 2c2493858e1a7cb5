//! Certificate verification for mesh and edge TLS: a rustls `ServerCertVerifier`
//! for origination and a `ClientCertVerifier` for inbound mTLS.
//!
//! Both verify the chain against a swappable trust bundle with webpki and the
//! ring provider's signature algorithms, then check the peer's identity. When a
//! SPIFFE identity is expected, the server name is *not* checked (SVIDs carry no
//! DNS names); instead the leaf must pass the X.509-SVID rules and its SPIFFE ID
//! must match. Every refusal is a [`Rejection`] with a stable reason label,
//! carried inside the rustls error so that [`failure_reason`] can recover it for
//! logs and metrics after the handshake failed.

use super::certs::{load_certs, CertError};
use super::spiffe::{svid_identity_of, SpiffeId, SpiffePattern, SvidError};
use arc_swap::ArcSwap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, OtherError};
use rustls::{Error, SignatureScheme};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Why a peer certificate was refused. `reason()` is the label for metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("certificate expired at unix time {not_after} (checked at {now})")]
    Expired { not_after: u64, now: u64 },
    #[error("certificate is not valid before unix time {not_before} (checked at {now})")]
    NotYetValid { not_before: u64, now: u64 },
    #[error("certificate is self-signed ({subject}) and is not a trust anchor")]
    SelfSigned { subject: String },
    #[error("the presented chain ends at root {root}, which is not in the trust bundle")]
    UnknownCa { root: String },
    #[error("issuer {issuer} is neither a trust anchor nor in the presented chain: the chain is truncated (missing intermediate) or from another CA")]
    IncompleteChain { issuer: String },
    #[error("signature does not verify against issuer {issuer}")]
    BadSignature { issuer: String },
    #[error("certificate's extended key usage does not include {0}")]
    WrongPurpose(&'static str),
    #[error("not a valid X.509-SVID: {0}")]
    Svid(SvidError),
    #[error("peer SPIFFE ID {presented} is not the expected {expected}")]
    WrongIdentity { expected: String, presented: String },
    #[error("peer trust domain {presented} is not the expected {expected}")]
    WrongTrustDomain { expected: String, presented: String },
    #[error("certificate is not valid for the name {expected}")]
    WrongName { expected: String },
    #[error("certificate cannot be parsed: {0}")]
    BadEncoding(String),
    #[error("certificate chain rejected: {0}")]
    Chain(String),
}

impl Rejection {
    /// A short, stable label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Expired { .. } => "expired",
            Rejection::NotYetValid { .. } => "not_yet_valid",
            Rejection::SelfSigned { .. } => "self_signed",
            Rejection::UnknownCa { .. } => "unknown_ca",
            Rejection::IncompleteChain { .. } => "incomplete_chain",
            Rejection::BadSignature { .. } => "bad_signature",
            Rejection::WrongPurpose(_) => "bad_key_usage",
            Rejection::Svid(svid) => svid.reason(),
            Rejection::WrongIdentity { .. } => "wrong_identity",
            Rejection::WrongTrustDomain { .. } => "wrong_trust_domain",
            Rejection::WrongName { .. } => "wrong_name",
            Rejection::BadEncoding(_) => "bad_encoding",
            Rejection::Chain(_) => "invalid_chain",
        }
    }
}

impl From<Rejection> for Error {
    fn from(rejection: Rejection) -> Error {
        Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(rejection))))
    }
}

/// The [`Rejection`] inside a rustls error, if our verifier produced it.
pub fn rejection(err: &Error) -> Option<&Rejection> {
    match err {
        Error::InvalidCertificate(CertificateError::Other(other)) => other.0.downcast_ref(),
        _ => None,
    }
}

/// Classify any rustls error into a stable label: ours carry a [`Rejection`];
/// the rest (alerts from the peer, protocol mismatches) are mapped here.
pub fn failure_reason(err: &Error) -> &'static str {
    use rustls::AlertDescription as Alert;
    if let Some(rejection) = rejection(err) {
        return rejection.reason();
    }
    match err {
        Error::InvalidCertificate(cert) => {
            match cert {
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "not_yet_valid"
                }
                CertificateError::UnknownIssuer => "unknown_ca",
                CertificateError::BadSignature => "bad_signature",
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => "wrong_name",
                CertificateError::InvalidPurpose
                | CertificateError::InvalidPurposeContext { .. } => "bad_key_usage",
                CertificateError::BadEncoding => "bad_encoding",
                _ => "invalid_certificate",
            }
        }
        Error::NoCertificatesPresented => "no_certificate",
        Error::NoApplicationProtocol => "no_alpn",
        Error::PeerIncompatible(_) => "protocol_version",
        Error::AlertReceived(alert) => match alert {
            Alert::BadCertificate
            | Alert::UnsupportedCertificate
            | Alert::CertificateRevoked
            | Alert::CertificateExpired
            | Alert::CertificateUnknown
            | Alert::UnknownCA
            | Alert::AccessDenied => "peer_rejected_certificate",
            Alert::CertificateRequired => "peer_requires_certificate",
            Alert::ProtocolVersion => "protocol_version",
            Alert::NoApplicationProtocol => "no_alpn",
            // The peer closed before we saw its Finished (a client that
            // only probes the handshake); not a broken peer.
            Alert::CloseNotify => "peer_closed",
            _ => "peer_alert",
        },
        Error::InvalidMessage(_)
        | Error::InappropriateMessage { .. }
        | Error::InappropriateHandshakeMessage { .. }
        | Error::PeerMisbehaved(_) => "protocol_error",
        _ => "tls_error",
    }
}

/// The CA certificates that vouch for one trust domain (or, with no trust
/// domain, for web-PKI style names).
pub struct TrustBundle {
    trust_domain: Option<String>,
    anchors: Vec<TrustAnchor<'static>>,
    /// DER of each anchor's subject Name, to explain unknown-issuer failures.
    anchor_subjects: Vec<Vec<u8>>,
}

impl fmt::Debug for TrustBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustBundle")
            .field("trust_domain", &self.trust_domain)
            .field("anchors", &self.anchors.len())
            .finish()
    }
}

impl TrustBundle {
    /// Build a bundle from CA certificates. `trust_domain`, when given, is the
    /// SPIFFE trust domain these CAs sign for; SVIDs from any other trust domain
    /// are refused even if their chain verifies.
    pub fn new(
        trust_domain: Option<&str>,
        roots: &[CertificateDer<'_>],
    ) -> Result<TrustBundle, CertError> {
        let bad = |detail: String| CertError::BadCertificate {
            origin: "trust bundle".into(),
            detail,
        };
        if let Some(domain) = trust_domain {
            // A trust domain is valid exactly when `spiffe://<domain>` is an ID.
            SpiffeId::parse(&format!("spiffe://{domain}"))
                .map_err(|err| bad(format!("trust domain {domain:?}: {err}")))?;
        }
        if roots.is_empty() {
            return Err(bad("holds no CA certificate".into()));
        }
        let mut anchors = Vec::with_capacity(roots.len());
        let mut anchor_subjects = Vec::with_capacity(roots.len());
        for root in roots {
            let anchor = webpki::anchor_from_trusted_cert(root)
                .map_err(|err| bad(format!("CA certificate: {err}")))?;
            anchors.push(anchor.to_owned());
            let (_, parsed) = X509Certificate::from_der(root)
                .map_err(|err| bad(format!("CA certificate: {err}")))?;
            anchor_subjects.push(parsed.subject().as_raw().to_vec());
        }
        Ok(TrustBundle {
            trust_domain: trust_domain.map(str::to_string),
            anchors,
            anchor_subjects,
        })
    }

    /// Read the CA certificates from a PEM file.
    pub fn load(trust_domain: Option<&str>, path: &Path) -> Result<TrustBundle, CertError> {
        let roots = load_certs(path)?;
        TrustBundle::new(trust_domain, &roots).map_err(|err| match err {
            CertError::BadCertificate { detail, .. } => CertError::BadCertificate {
                origin: path.display().to_string(),
                detail,
            },
            other => other,
        })
    }

    pub fn trust_domain(&self) -> Option<&str> {
        self.trust_domain.as_deref()
    }

    /// A bundle that trusts nothing: every peer is refused until a real one is
    /// installed (the state before a mesh identity arrives).
    pub fn empty() -> TrustBundle {
        TrustBundle {
            trust_domain: None,
            anchors: Vec::new(),
            anchor_subjects: Vec::new(),
        }
    }
}

/// A trust bundle that can be replaced at runtime (CA rotation): handshakes
/// load the current one; a swap affects only later handshakes.
pub type SharedBundle = Arc<ArcSwap<TrustBundle>>;

pub fn shared_bundle(bundle: TrustBundle) -> SharedBundle {
    Arc::new(ArcSwap::from_pointee(bundle))
}

/// Who the peer must be.
#[derive(Debug, Clone)]
pub enum ExpectedPeer {
    /// Web-PKI style: the certificate must be valid for the server name the
    /// client connected to (origination only; for inbound this accepts any
    /// chain that verifies).
    DnsName,
    /// Any X.509-SVID of the bundle's trust domain (inbound mesh: authorization
    /// policies decide what the identity may do).
    AnySvid,
    /// Exactly this SPIFFE ID.
    Spiffe(SpiffeId),
    /// Any SPIFFE ID matching one of these patterns.
    AnyOf(Vec<SpiffePattern>),
}

/// Which side the certificate authenticates (its required extended key usage).
#[derive(Debug, Clone, Copy)]
enum Usage {
    Server,
    Client,
}

impl Usage {
    fn webpki(self) -> webpki::KeyUsage {
        match self {
            Usage::Server => webpki::KeyUsage::server_auth(),
            Usage::Client => webpki::KeyUsage::client_auth(),
        }
    }

    fn eku_name(self) -> &'static str {
        match self {
            Usage::Server => "serverAuth",
            Usage::Client => "clientAuth",
        }
    }
}

/// The chain and identity checks shared by both verifiers.
#[derive(Debug)]
struct Checker {
    bundle: SharedBundle,
    expected: ExpectedPeer,
    algorithms: WebPkiSupportedAlgorithms,
}

impl Checker {
    fn new(bundle: SharedBundle, expected: ExpectedPeer) -> Checker {
        Checker {
            bundle,
            expected,
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        usage: Usage,
        server_name: Option<&ServerName<'_>>,
    ) -> Result<Option<SpiffeId>, Rejection> {
        let bundle = self.bundle.load();
        let (_, leaf) = X509Certificate::from_der(end_entity)
            .map_err(|err| Rejection::BadEncoding(err.to_string()))?;
        let ee = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|err| Rejection::BadEncoding(err.to_string()))?;
        ee.verify_for_usage(
            self.algorithms.all,
            &bundle.anchors,
            intermediates,
            now,
            usage.webpki(),
            None,
            None,
        )
        .map_err(|err| explain(err, &leaf, intermediates, &bundle, now, usage))?;

        let wanted = match &self.expected {
            ExpectedPeer::DnsName => {
                if let Some(name) = server_name {
                    ee.verify_is_valid_for_subject_name(name).map_err(|_| {
                        Rejection::WrongName {
                            expected: name.to_str().into_owned(),
                        }
                    })?;
                }
                return Ok(None);
            }
            wanted => wanted,
        };
        let id = svid_identity_of(&leaf).map_err(Rejection::Svid)?;
        let domain = match wanted {
            ExpectedPeer::Spiffe(expected) => Some(expected.trust_domain()),
            _ => bundle.trust_domain(),
        };
        if let Some(domain) = domain {
            if id.trust_domain() != domain {
                return Err(Rejection::WrongTrustDomain {
                    expected: domain.to_string(),
                    presented: id.trust_domain().to_string(),
                });
            }
        }
        let allowed = match wanted {
            ExpectedPeer::Spiffe(expected) => *expected == id,
            ExpectedPeer::AnyOf(patterns) => patterns.iter().any(|p| p.matches(&id)),
            ExpectedPeer::AnySvid | ExpectedPeer::DnsName => true,
        };
        if !allowed {
            return Err(Rejection::WrongIdentity {
                expected: describe(wanted),
                presented: id.to_string(),
            });
        }
        Ok(Some(id))
    }
}

fn describe(expected: &ExpectedPeer) -> String {
    match expected {
        ExpectedPeer::Spiffe(id) => id.to_string(),
        ExpectedPeer::AnyOf(patterns) => {
            let names: Vec<&str> = patterns.iter().map(SpiffePattern::as_str).collect();
            format!("one of [{}]", names.join(", "))
        }
        ExpectedPeer::AnySvid => "any SVID".into(),
        ExpectedPeer::DnsName => "the server name".into(),
    }
}

/// Turn a webpki error into a reason a person can act on.
fn explain(
    err: webpki::Error,
    leaf: &X509Certificate<'_>,
    intermediates: &[CertificateDer<'_>],
    bundle: &TrustBundle,
    now: UnixTime,
    usage: Usage,
) -> Rejection {
    use webpki::Error as W;
    match err {
        W::CertExpired { not_after, .. } => Rejection::Expired {
            not_after: not_after.as_secs(),
            now: now.as_secs(),
        },
        W::CertNotValidYet { not_before, .. } => Rejection::NotYetValid {
            not_before: not_before.as_secs(),
            now: now.as_secs(),
        },
        W::CaUsedAsEndEntity => Rejection::Svid(SvidError::CaLeaf),
        W::UnknownIssuer => explain_unknown_issuer(leaf, intermediates, bundle),
        W::InvalidSignatureForPublicKey => Rejection::BadSignature {
            issuer: leaf.issuer().to_string(),
        },
        W::RequiredEkuNotFoundContext(_) => Rejection::WrongPurpose(usage.eku_name()),
        #[allow(deprecated)]
        W::RequiredEkuNotFound => Rejection::WrongPurpose(usage.eku_name()),
        W::BadDer | W::BadDerTime | W::TrailingData(_) => {
            Rejection::BadEncoding(format!("{err:?}"))
        }
        other => Rejection::Chain(format!("{other:?}")),
    }
}

/// webpki says only "unknown issuer"; the presented certificates tell which of
/// the usual mistakes it was.
fn explain_unknown_issuer(
    leaf: &X509Certificate<'_>,
    intermediates: &[CertificateDer<'_>],
    bundle: &TrustBundle,
) -> Rejection {
    let leaf_self_issued = leaf.subject().as_raw() == leaf.issuer().as_raw();
    if intermediates.is_empty() && leaf_self_issued {
        return Rejection::SelfSigned {
            subject: leaf.subject().to_string(),
        };
    }
    let parsed: Vec<X509Certificate<'_>> = intermediates
        .iter()
        .filter_map(|der| X509Certificate::from_der(der).ok().map(|(_, cert)| cert))
        .collect();
    // The peer sent its own root: a complete chain to a CA we do not trust.
    if let Some(root) = parsed
        .iter()
        .find(|cert| cert.subject().as_raw() == cert.issuer().as_raw())
    {
        return Rejection::UnknownCa {
            root: root.subject().to_string(),
        };
    }
    let top = parsed.last().unwrap_or(leaf);
    let issuer = top.issuer();
    if bundle
        .anchor_subjects
        .iter()
        .any(|subject| subject.as_slice() == issuer.as_raw())
    {
        // Named after one of our CAs but not signed by it.
        return Rejection::BadSignature {
            issuer: issuer.to_string(),
        };
    }
    Rejection::IncompleteChain {
        issuer: issuer.to_string(),
    }
}

/// Origination: verify the upstream's certificate.
#[derive(Debug)]
pub struct ServerVerifier {
    checker: Checker,
}

impl ServerVerifier {
    pub fn new(bundle: SharedBundle, expected: ExpectedPeer) -> Arc<ServerVerifier> {
        Arc::new(ServerVerifier {
            checker: Checker::new(bundle, expected),
        })
    }
}

/// The handshake-signature checks are the same on both sides: the checker's
/// algorithms, whichever trait asks.
macro_rules! handshake_signatures_by_checker {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.checker.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.checker.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.checker.algorithms.supported_schemes()
        }
    };
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let usage = Usage::Server;
        self.checker
            .check(end_entity, intermediates, now, usage, Some(server_name))?;
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures_by_checker!();
}

/// Inbound mTLS: verify the client's certificate.
#[derive(Debug)]
pub struct ClientVerifier {
    checker: Checker,
    mandatory: bool,
}

impl ClientVerifier {
    /// `mandatory`: strict mesh ports refuse clients without a certificate;
    /// permissive ones let them through unauthenticated (the caller sees no
    /// peer identity and counts it).
    pub fn new(bundle: SharedBundle, expected: ExpectedPeer, mandatory: bool) -> Arc<Self> {
        Arc::new(ClientVerifier {
            checker: Checker::new(bundle, expected),
            mandatory,
        })
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    /// No CA name hints: the bundle is swappable, and mesh clients have a single
    /// identity to present anyway.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let usage = Usage::Client;
        self.checker
            .check(end_entity, intermediates, now, usage, None)?;
        Ok(ClientCertVerified::assertion())
    }

    handshake_signatures_by_checker!();
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
