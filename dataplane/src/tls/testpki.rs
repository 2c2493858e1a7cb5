//! Test-only PKI minted with rcgen: CAs, intermediates, good SVIDs and the ten
//! kinds of bad certificate the mesh must refuse, each with its reason label; and
//! the helper that runs a TLS test on both io drivers.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use std::sync::Arc;

pub const TD: &str = "mesh.test";

pub struct Ca {
    pub params: CertificateParams,
    pub key: KeyPair,
    pub der: CertificateDer<'static>,
    /// Intermediates above this CA, sent after it (the root is never sent).
    pub chain_above: Vec<CertificateDer<'static>>,
    /// Whether leaves send this CA's certificate (intermediates do, roots not).
    pub send_self: bool,
}

impl Ca {
    pub fn root(name: &str) -> Ca {
        let params = ca_params(name);
        let key = KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().clone();
        Ca {
            params,
            key,
            der,
            chain_above: Vec::new(),
            send_self: false,
        }
    }

    pub fn intermediate(&self, name: &str) -> Ca {
        let params = ca_params(name);
        let key = KeyPair::generate().unwrap();
        let der = params
            .signed_by(&key, &self.issuer())
            .unwrap()
            .der()
            .clone();
        let mut chain_above = Vec::new();
        if self.send_self {
            chain_above.push(self.der.clone());
            chain_above.extend(self.chain_above.iter().cloned());
        }
        Ca {
            params,
            key,
            der,
            chain_above,
            send_self: true,
        }
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    /// Issue a leaf; the chain it presents is leaf + this CA's intermediates.
    pub fn issue(&self, params: &CertificateParams) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let der = params
            .signed_by(&key, &self.issuer())
            .unwrap()
            .der()
            .clone();
        let mut chain = vec![der];
        if self.send_self {
            chain.push(self.der.clone());
            chain.extend(self.chain_above.iter().cloned());
        }
        Leaf { chain, key }
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

pub struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: KeyPair,
}

impl Leaf {
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }

    pub fn certified(&self) -> Arc<CertifiedKey> {
        super::certs::certified_key(self.chain.clone(), self.key_der(), "test").unwrap()
    }

    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }
}

/// A well-formed X.509-SVID for `spiffe://TD/path`, also valid for the DNS
/// names given (edge certificates).
pub fn svid_params(uri: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "workload");
    params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params
}

pub fn web_params(names: &[&str], serial: u64) -> CertificateParams {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.serial_number = Some(serial.into());
    params
}

pub fn id(path: &str) -> String {
    format!("spiffe://{TD}{path}")
}

/// The mesh PKI of the tests: a root for the trust domain, an intermediate that
/// issues workload SVIDs, and an unrelated root.
pub struct Mesh {
    pub root: Ca,
    pub issuing: Ca,
    pub evil: Ca,
}

impl Mesh {
    pub fn new() -> Mesh {
        let root = Ca::root("mesh root");
        let issuing = root.intermediate("mesh intermediate");
        Mesh {
            root,
            issuing,
            evil: Ca::root("evil root"),
        }
    }

    pub fn good(&self, path: &str) -> Leaf {
        self.issuing.issue(&svid_params(&id(path)))
    }

    /// The ten bad certificates: (case, chain+key, expected reason label).
    pub fn bad_certificates(&self, path: &str) -> Vec<(&'static str, Leaf, &'static str)> {
        let uri = id(path);
        let mut expired = svid_params(&uri);
        expired.not_before = rcgen::date_time_ymd(2000, 1, 1);
        expired.not_after = rcgen::date_time_ymd(2001, 1, 1);
        let mut future = svid_params(&uri);
        future.not_before = rcgen::date_time_ymd(2090, 1, 1);
        future.not_after = rcgen::date_time_ymd(2091, 1, 1);
        let wrong_id = svid_params(&id("/ns/other/sa/intruder"));
        let mut two_uris = svid_params(&uri);
        two_uris
            .subject_alt_names
            .push(SanType::URI(id("/ns/x/sa/y").as_str().try_into().unwrap()));
        let mut ca_leaf = svid_params(&uri);
        ca_leaf.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let wrong_domain = svid_params(&format!("spiffe://other.test{path}"));
        let mut key_usage = svid_params(&uri);
        key_usage.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
        ];
        // Self-signed: a leaf that is its own issuer.
        let self_key = KeyPair::generate().unwrap();
        let self_signed = Leaf {
            chain: vec![svid_params(&uri)
                .self_signed(&self_key)
                .unwrap()
                .der()
                .clone()],
            key: self_key,
        };
        // Wrong CA: a complete chain to a root we do not trust.
        let mut wrong_ca = self.evil.issue(&svid_params(&uri));
        wrong_ca.chain.push(self.evil.der.clone());
        // Truncated: issued by the intermediate, which is not sent.
        let mut truncated = self.issuing.issue(&svid_params(&uri));
        truncated.chain.truncate(1);
        vec![
            ("expired", self.issuing.issue(&expired), "expired"),
            (
                "not yet valid",
                self.issuing.issue(&future),
                "not_yet_valid",
            ),
            ("wrong CA", wrong_ca, "unknown_ca"),
            (
                "wrong SPIFFE ID",
                self.issuing.issue(&wrong_id),
                "wrong_identity",
            ),
            ("two URI SANs", self.issuing.issue(&two_uris), "not_svid"),
            ("leaf is a CA", self.issuing.issue(&ca_leaf), "ca_leaf"),
            (
                "wrong trust domain",
                self.issuing.issue(&wrong_domain),
                "wrong_trust_domain",
            ),
            (
                "wrong key usage",
                self.issuing.issue(&key_usage),
                "bad_key_usage",
            ),
            ("self-signed", self_signed, "self_signed"),
            ("truncated chain", truncated, "incomplete_chain"),
        ]
    }
}

/// Run a test body on the epoll driver, and on io_uring where the kernel allows.
pub fn on_both_drivers<F, Fut>(test: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut legacy = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .unwrap();
    legacy.block_on(test());
    if let Ok(mut uring) = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .enable_timer()
        .build()
    {
        uring.block_on(test());
    }
}
