//! This dataplane's mesh identity: its SVID (served on mesh listeners and presented
//! when originating mTLS) and the trust bundle peers are verified against. Filled
//! from files or from the control process, and swapped in place on rotation so new
//! handshakes use the new certificate while open connections keep theirs.
//!
//! [`MeshIdentity::install`] checks everything before it swaps anything: the key
//! must fit the leaf, the leaf must be an X.509-SVID of the given trust domain, and
//! it must verify against the new bundle (for both serverAuth and clientAuth). A
//! refused SVID leaves the previous identity serving.

use super::certs::{certified_key, expiry_unix, serial_hex, CertStore, ClientCertSlot, SniTable};
use super::spiffe::{svid_identity, SpiffeId};
use super::verify::{
    shared_bundle, ClientVerifier, ExpectedPeer, ServerVerifier, SharedBundle, TrustBundle,
};
use arc_swap::ArcSwapOption;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use std::sync::Arc;

/// Shared by every worker; written only by the thread that installs a new SVID.
pub struct MeshIdentity {
    /// Server side: the SVID as the default certificate of mesh listeners.
    pub server: Arc<CertStore>,
    /// Client side: the SVID presented when a cluster asks for mTLS.
    pub client: Arc<ClientCertSlot>,
    /// CAs (and trust domain) peers' SVIDs must chain to.
    pub bundle: SharedBundle,
    /// What the last successful [`MeshIdentity::install`] put in place.
    installed: ArcSwapOption<InstalledInfo>,
}

/// The SVID in place, for logs and metrics (for example a certificate-expiry gauge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledInfo {
    pub spiffe_id: SpiffeId,
    /// The leaf's serial number, lower-case hex.
    pub serial_hex: String,
    /// The leaf's notAfter, unix seconds.
    pub expires_unix: i64,
    pub trust_domain: String,
    /// How many CA certificates the bundle holds.
    pub bundle_cas: usize,
}

impl MeshIdentity {
    /// No identity yet: mesh listeners and mTLS clusters cannot handshake until one
    /// is installed.
    pub fn empty() -> MeshIdentity {
        MeshIdentity {
            server: CertStore::new(SniTable::new()),
            client: ClientCertSlot::new(None),
            bundle: shared_bundle(TrustBundle::empty()),
            installed: ArcSwapOption::empty(),
        }
    }

    /// The SVID installed last, if any.
    pub fn installed(&self) -> Option<Arc<InstalledInfo>> {
        self.installed.load_full()
    }

    /// Installs a new SVID (leaf first in `chain_pem`, its key in `key_pem`) and
    /// the trust bundle of `trust_domain`: the SVID becomes the default
    /// certificate of `server` (names mapped there explicitly stay) and the
    /// certificate of `client`, and the bundle replaces `bundle`. Nothing changes
    /// when any check fails; the error says which.
    pub fn install(
        &self,
        chain_pem: &str,
        key_pem: &str,
        bundle_pem: &str,
        trust_domain: &str,
    ) -> Result<InstalledInfo, String> {
        let chain = pem_certs(chain_pem, "SVID chain")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|err| format!("SVID key: {err}"))?;
        let leaf = chain[0].clone();
        let spiffe_id = svid_identity(&leaf).map_err(|err| format!("SVID: {err}"))?;
        if spiffe_id.trust_domain() != trust_domain {
            return Err(format!(
                "SVID {spiffe_id} is not in trust domain {trust_domain:?}"
            ));
        }
        let roots = pem_certs(bundle_pem, "trust bundle")?;
        let bundle = TrustBundle::new(Some(trust_domain), &roots).map_err(|err| err.to_string())?;
        let bundle_cas = roots.len();
        let serial_hex = serial_hex(&leaf).map_err(|err| err.to_string())?;
        let expires_unix = expiry_unix(&leaf).map_err(|err| err.to_string())?;
        let key = certified_key(chain, key, spiffe_id.as_str()).map_err(|err| err.to_string())?;
        let bundle = shared_bundle(bundle);
        check_chain(&key.cert, &bundle, &spiffe_id)?;

        let mut table = (*self.server.current()).clone();
        table.set_default(Arc::clone(&key));
        self.server.store(table);
        self.client.store(Some(key));
        self.bundle.store(bundle.load_full());
        let info = InstalledInfo {
            spiffe_id,
            serial_hex,
            expires_unix,
            trust_domain: trust_domain.to_string(),
            bundle_cas,
        };
        self.installed.store(Some(Arc::new(info.clone())));
        Ok(info)
    }
}

/// Every CERTIFICATE block of `pem`, at least one.
fn pem_certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("{what}: {err}"))?;
    if certs.is_empty() {
        return Err(format!("{what}: no CERTIFICATE block"));
    }
    Ok(certs)
}

/// Our own SVID must pass what peers will check: the chain to the bundle, for
/// both directions, with our SPIFFE ID.
fn check_chain(
    chain: &[CertificateDer<'static>],
    bundle: &SharedBundle,
    id: &SpiffeId,
) -> Result<(), String> {
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or_else(|| "SVID chain is empty".to_string())?;
    let now = UnixTime::now();
    let refused = |err: rustls::Error| format!("SVID does not verify against the bundle: {err}");
    let expected = ExpectedPeer::Spiffe(id.clone());
    // SVIDs carry no DNS name; with a SPIFFE expectation the name is not checked.
    let name = ServerName::try_from("svid.invalid").map_err(|err| err.to_string())?;
    ServerVerifier::new(Arc::clone(bundle), expected.clone())
        .verify_server_cert(leaf, intermediates, &name, &[], now)
        .map_err(refused)?;
    ClientVerifier::new(Arc::clone(bundle), expected, true)
        .verify_client_cert(leaf, intermediates, now)
        .map_err(refused)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testpki::{svid_params, TD};
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    use rustls::client::ResolvesClientCert;
    use rustls::SignatureScheme;

    /// A root CA as PEM, and what it takes to sign with it.
    struct PemCa {
        params: CertificateParams,
        key: KeyPair,
        pem: String,
    }

    impl PemCa {
        fn new(name: &str) -> PemCa {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            // Like ringmesh-control's CA: it names its trust domain.
            let uri = format!("spiffe://{TD}");
            params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().unwrap())];
            let key = KeyPair::generate().unwrap();
            let pem = params.self_signed(&key).unwrap().pem();
            PemCa { params, key, pem }
        }

        /// (chain PEM, key PEM, leaf DER) of a new SVID for `uri`.
        fn svid(&self, uri: &str) -> (String, String, Vec<u8>) {
            self.svid_with(svid_params(uri))
        }

        /// Like ringmesh-control issues them: no subject, the identity only in
        /// the (then critical) URI SAN.
        fn bare_svid(&self, uri: &str) -> (String, String, Vec<u8>) {
            let mut params = svid_params(uri);
            params.distinguished_name = rcgen::DistinguishedName::new();
            self.svid_with(params)
        }

        fn svid_with(&self, params: CertificateParams) -> (String, String, Vec<u8>) {
            let key = KeyPair::generate().unwrap();
            let issuer = Issuer::from_params(&self.params, &self.key);
            let cert = params.signed_by(&key, &issuer).unwrap();
            (cert.pem(), key.serialize_pem(), cert.der().to_vec())
        }
    }

    fn served_default(identity: &MeshIdentity) -> Option<Vec<u8>> {
        let key = identity.server.current().lookup(None)?;
        Some(key.cert[0].to_vec())
    }

    fn presented(identity: &MeshIdentity) -> Option<Vec<u8>> {
        let key = identity
            .client
            .resolve(&[], &[SignatureScheme::ECDSA_NISTP256_SHA256])?;
        Some(key.cert[0].to_vec())
    }

    #[test]
    fn install_swaps_server_client_and_bundle() {
        let identity = MeshIdentity::empty();
        assert!(served_default(&identity).is_none());
        assert!(!identity.client.has_certs());
        assert!(identity.installed().is_none());

        let ca = PemCa::new("mesh CA");
        let id = format!("spiffe://{TD}/ns/default/sa/web-1");
        let (chain, key, leaf) = ca.svid(&id);
        let info = identity.install(&chain, &key, &ca.pem, TD).unwrap();
        assert_eq!(info.spiffe_id.as_str(), id);
        assert_eq!(info.trust_domain, TD);
        assert_eq!(info.bundle_cas, 1);
        assert_eq!(info.serial_hex, serial_hex(&leaf).unwrap());
        assert_eq!(info.expires_unix, expiry_unix(&leaf).unwrap());
        assert_eq!(identity.installed().as_deref(), Some(&info));
        assert_eq!(served_default(&identity), Some(leaf.clone()));
        assert_eq!(presented(&identity), Some(leaf.clone()));
        assert_eq!(identity.bundle.load().trust_domain(), Some(TD));

        // The installed bundle trusts the CA: a peer's SVID from it verifies.
        let peer_id = format!("spiffe://{TD}/ns/default/sa/db");
        let (_, _, peer) = ca.svid(&peer_id);
        let verifier = ServerVerifier::new(
            Arc::clone(&identity.bundle),
            ExpectedPeer::Spiffe(SpiffeId::parse(&peer_id).unwrap()),
        );
        let name = ServerName::try_from("svid.invalid").unwrap();
        verifier
            .verify_server_cert(
                &CertificateDer::from(peer),
                &[],
                &name,
                &[],
                UnixTime::now(),
            )
            .unwrap();

        // Rotation: a new SVID replaces the old one on both sides.
        let (chain2, key2, leaf2) = ca.bare_svid(&id);
        let info2 = identity.install(&chain2, &key2, &ca.pem, TD).unwrap();
        assert_ne!(info2.serial_hex, info.serial_hex);
        assert_eq!(served_default(&identity), Some(leaf2.clone()));
        assert_eq!(presented(&identity), Some(leaf2));
    }

    #[test]
    fn names_mapped_in_the_server_store_are_kept() {
        let identity = MeshIdentity::empty();
        let ca = PemCa::new("mesh CA");
        let (chain, key, leaf) = ca.svid(&format!("spiffe://{TD}/a"));
        let mut table = SniTable::new();
        let other = {
            let certs = pem_certs(&chain, "chain").unwrap();
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            certified_key(certs, key, "test").unwrap()
        };
        table.insert("api.example.com", other).unwrap();
        identity.server.store(table);
        identity.install(&chain, &key, &ca.pem, TD).unwrap();
        let current = identity.server.current();
        assert!(current.lookup(Some("api.example.com")).is_some());
        assert_eq!(served_default(&identity), Some(leaf));
    }

    #[test]
    fn a_refused_svid_changes_nothing() {
        let identity = MeshIdentity::empty();
        let ca = PemCa::new("mesh CA");
        let id = format!("spiffe://{TD}/ns/default/sa/web-1");
        let (chain, key, leaf) = ca.svid(&id);
        identity.install(&chain, &key, &ca.pem, TD).unwrap();
        let before = identity.installed();

        let other_ca = PemCa::new("another CA");
        let (other_chain, other_key, _) = other_ca.svid(&id);
        let (_, foreign_key, _) = ca.svid(&id);
        let (wrong_domain, wrong_domain_key, _) = ca.svid("spiffe://other.test/ns/x");
        let cases = [
            (
                "garbage chain",
                "nonsense".to_string(),
                key.clone(),
                ca.pem.clone(),
                TD,
                "no CERTIFICATE",
            ),
            (
                "garbage key",
                chain.clone(),
                "nonsense".to_string(),
                ca.pem.clone(),
                TD,
                "SVID key",
            ),
            (
                "key of another SVID",
                chain.clone(),
                foreign_key,
                ca.pem.clone(),
                TD,
                "does not fit",
            ),
            (
                "other trust domain",
                chain.clone(),
                key.clone(),
                ca.pem.clone(),
                "other.test",
                "not in trust domain",
            ),
            (
                "SVID of another domain",
                wrong_domain,
                wrong_domain_key,
                ca.pem.clone(),
                TD,
                "not in trust domain",
            ),
            (
                "bundle of another CA",
                chain.clone(),
                key.clone(),
                other_ca.pem.clone(),
                TD,
                "does not verify",
            ),
            (
                "chain of another CA",
                other_chain,
                other_key,
                ca.pem.clone(),
                TD,
                "does not verify",
            ),
            (
                "empty bundle",
                chain.clone(),
                key.clone(),
                String::new(),
                TD,
                "trust bundle",
            ),
        ];
        for (case, chain, key, bundle, domain, expected) in cases {
            let err = identity.install(&chain, &key, &bundle, domain).unwrap_err();
            assert!(err.contains(expected), "{case}: {err}");
            assert_eq!(served_default(&identity), Some(leaf.clone()), "{case}");
            assert_eq!(presented(&identity), Some(leaf.clone()), "{case}");
            assert_eq!(identity.installed(), before, "{case}");
            assert_eq!(identity.bundle.load().trust_domain(), Some(TD), "{case}");
        }
    }
}
