//! Tests of the mesh CA: `init` files and refusals, `load` checks, and that an
//! issued SVID follows the X.509-SVID rules and chains to the CA.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use x509_parser::extensions::ParsedExtension;

pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("ringmesh-ca-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn der_of(pem_text: &str) -> Vec<u8> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes()).unwrap();
    pem.contents
}

#[test]
fn init_writes_a_ca_and_refuses_to_overwrite() {
    let dir = TempDir::new("init");
    let created = init(&dir.0, "mesh.test", 30, false).unwrap();
    assert_eq!(created.cert, dir.0.join("ca.pem"));
    let key_mode = std::fs::metadata(&created.key)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    assert!((created.not_after_unix - (now + 30 * 86_400)).abs() < 60);

    let cert_text = std::fs::read_to_string(&created.cert).unwrap();
    let der = der_of(&cert_text);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let bc = cert.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    assert_eq!(
        ca_trust_domain(&cert).unwrap().as_deref(),
        Some("mesh.test")
    );
    // Self-signed: its own key verifies it.
    cert.verify_signature(None).unwrap();

    let err = init(&dir.0, "mesh.test", 30, false).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("ca.pem and") && text.contains("--force"),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&created.cert).unwrap(), cert_text);

    let again = init(&dir.0, "mesh.test", 30, true).unwrap();
    assert_ne!(std::fs::read_to_string(&again.cert).unwrap(), cert_text);
    let key_mode = std::fs::metadata(&again.key).unwrap().permissions().mode();
    assert_eq!(key_mode & 0o777, 0o600);
}

#[test]
fn init_checks_its_arguments() {
    let dir = TempDir::new("args");
    assert!(matches!(
        init(&dir.0, "Mesh.Test", 30, false),
        Err(CaError::TrustDomain { .. })
    ));
    assert!(matches!(
        init(&dir.0, "td", 0, false),
        Err(CaError::Days(0))
    ));
    assert!(!dir.0.exists(), "nothing is written for bad arguments");
}

#[test]
fn load_refuses_what_does_not_fit() {
    let dir = TempDir::new("load");
    let err = MeshCa::load(&dir.0, "td").unwrap_err().to_string();
    assert!(
        err.starts_with(&dir.0.join("ca.pem").display().to_string()),
        "{err}"
    );

    init(&dir.0, "td", 1, false).unwrap();
    let ca = MeshCa::load(&dir.0, "td").unwrap();
    assert_eq!(ca.trust_domain(), "td");
    assert!(ca.bundle_pem().starts_with("-----BEGIN CERTIFICATE-----\n"));

    assert!(matches!(
        MeshCa::load(&dir.0, "other"),
        Err(CaError::WrongTrustDomain { ca, flag, .. }) if ca == "td" && flag == "other"
    ));

    // Another CA's key next to this certificate.
    let other = TempDir::new("load-other");
    init(&other.0, "td", 1, false).unwrap();
    std::fs::remove_file(dir.0.join("ca.key")).unwrap();
    std::fs::copy(other.0.join("ca.key"), dir.0.join("ca.key")).unwrap();
    assert!(matches!(
        MeshCa::load(&dir.0, "td"),
        Err(CaError::KeyMismatch { .. })
    ));

    std::fs::write(dir.0.join("ca.key"), "not a key").unwrap();
    assert!(matches!(
        MeshCa::load(&dir.0, "td"),
        Err(CaError::BadKey { .. })
    ));
    std::fs::write(dir.0.join("ca.pem"), "nothing here").unwrap();
    assert!(matches!(
        MeshCa::load(&dir.0, "td"),
        Err(CaError::BadCert { .. })
    ));
}

#[test]
fn issued_svids_follow_the_x509_svid_rules() {
    let dir = TempDir::new("issue");
    init(&dir.0, "mesh.test", 30, false).unwrap();
    let ca = MeshCa::load(&dir.0, "mesh.test").unwrap();
    let ca_der = der_of(ca.bundle_pem());
    let (_, ca_cert) = X509Certificate::from_der(&ca_der).unwrap();

    let id = "spiffe://mesh.test/ns/default/sa/web-1";
    let before = OffsetDateTime::now_utc().unix_timestamp();
    let svid = ca.issue(id, Duration::from_secs(120)).unwrap();
    let leaf_der = der_of(&svid.chain_pem);
    let (_, leaf) = X509Certificate::from_der(&leaf_der).unwrap();

    // Exactly one URI SAN, the SPIFFE ID; no other names.
    let san = leaf.subject_alternative_name().unwrap().unwrap();
    assert_eq!(san.value.general_names, vec![GeneralName::URI(id)]);
    assert!(san.critical, "the subject is empty, so the SAN is critical");
    // Not a CA.
    let bc = leaf.basic_constraints().unwrap().unwrap().value;
    assert!(!bc.ca);
    // Key usage: digitalSignature (+ keyEncipherment), never certificate signing.
    let ku = leaf.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && ku.key_encipherment());
    assert!(!ku.key_cert_sign() && !ku.crl_sign());
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    // Validity: a minute back, ttl ahead.
    let not_before = leaf.validity().not_before.timestamp();
    let not_after = leaf.validity().not_after.timestamp();
    assert!(
        (not_before - (before - 60)).abs() <= 2,
        "{not_before} vs {before}"
    );
    assert!(
        (not_after - (before + 120)).abs() <= 2,
        "{not_after} vs {before}"
    );
    assert_eq!(svid.expires_unix, not_after);
    // Issued by the CA and signed by its key.
    assert_eq!(leaf.issuer(), ca_cert.subject());
    leaf.verify_signature(Some(ca_cert.public_key())).unwrap();
    let aki = leaf
        .extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.clone(),
            _ => None,
        });
    assert!(aki.is_some(), "the leaf names its issuer's key");
    // The key in the PEM is the leaf's.
    let key = KeyPair::from_pem(&svid.key_pem).unwrap();
    assert_eq!(
        key.public_key_raw(),
        leaf.public_key().subject_public_key.data.as_ref()
    );
    assert_eq!(
        svid.serial_hex,
        leaf.raw_serial()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );

    // Every issuance has a new key and serial.
    let next = ca.issue(id, Duration::from_secs(120)).unwrap();
    assert_ne!(next.serial_hex, svid.serial_hex);
    assert_ne!(next.key_pem, svid.key_pem);
    assert!(!format!("{next:?}").contains("PRIVATE KEY"));
}

#[test]
fn svids_never_outlive_the_ca() {
    let dir = TempDir::new("clamp");
    init(&dir.0, "td", 1, false).unwrap();
    let ca = MeshCa::load(&dir.0, "td").unwrap();
    let svid = ca
        .issue("spiffe://td/a", Duration::from_secs(10 * 86_400))
        .unwrap();
    assert_eq!(svid.expires_unix, ca.not_after_unix());
}
