//! Tests for PEM loading, SNI selection and swappable certificate stores.

use super::*;
use crate::tls::testpki::{web_params, Ca};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringmesh-certs-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn key_for(ca: &Ca, names: &[&str], serial: u64) -> Arc<CertifiedKey> {
    ca.issue(&web_params(names, serial)).certified()
}

fn serial_of(key: &CertifiedKey) -> String {
    serial_hex(key.end_entity_cert().unwrap()).unwrap()
}

#[test]
fn loads_pem_chain_and_key_and_reports_paths() {
    let dir = temp_dir("load");
    let ca = Ca::root("load root");
    let leaf = ca.issue(&web_params(&["a.test"], 1));
    // The leaf's chain, then an unrelated certificate: all blocks are read, in order.
    let unrelated = ca.issue(&web_params(&["b.test"], 2));
    let cert_pem: String = leaf
        .chain
        .iter()
        .chain(&unrelated.chain)
        .map(|der| pem_block("CERTIFICATE", der))
        .collect();
    let cert_path = dir.join("chain.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert_pem).unwrap();
    std::fs::write(&key_path, leaf.key.serialize_pem()).unwrap();
    assert_eq!(load_certs(&cert_path).unwrap().len(), 2);
    // The first certificate is the leaf and matches the key.
    let key = load_certified_key(&cert_path, &key_path).unwrap();
    assert_eq!(key.end_entity_cert().unwrap(), leaf.leaf());

    let missing = dir.join("missing.pem");
    let err = load_certs(&missing).unwrap_err().to_string();
    assert!(err.contains("missing.pem"), "{err}");
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "nothing here\n").unwrap();
    let err = load_certs(&empty).unwrap_err();
    assert!(matches!(err, CertError::NoCertificates { .. }), "{err}");
    assert!(err.to_string().contains("empty.pem"));
    let err = load_key(&cert_path).unwrap_err().to_string();
    assert!(err.contains("chain.pem"), "{err}");

    // A key that belongs to another certificate is refused.
    let other = ca.issue(&web_params(&["c.test"], 3));
    let other_key = dir.join("other-key.pem");
    std::fs::write(&other_key, other.key.serialize_pem()).unwrap();
    let err = load_certified_key(&cert_path, &other_key).unwrap_err();
    assert!(matches!(err, CertError::KeyMismatch { .. }), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn pem_block(label: &str, der: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[test]
fn sni_table_exact_wildcard_and_default() {
    let ca = Ca::root("sni root");
    let mut table = SniTable::new();
    table
        .insert("API.example.test", key_for(&ca, &["api.example.test"], 1))
        .unwrap();
    table
        .insert("*.example.test", key_for(&ca, &["*.example.test"], 2))
        .unwrap();
    assert!(table.lookup(Some("nothing.test")).is_none());
    table.set_default(key_for(&ca, &["default.test"], 3));
    let serial = |sni: Option<&str>| serial_of(&table.lookup(sni).unwrap());
    assert_eq!(serial(Some("api.example.test")), "01");
    assert_eq!(serial(Some("api.example.test.")), "01");
    assert_eq!(serial(Some("www.example.test")), "02");
    // A wildcard covers exactly one label.
    assert_eq!(serial(Some("a.b.example.test")), "03");
    assert_eq!(serial(Some("example.test")), "03");
    assert_eq!(serial(None), "03");
    for bad in ["", "*.", "a..b", "*.*.example.test", "bad name.test", "*"] {
        assert!(
            table.insert(bad, key_for(&ca, &["x.test"], 9)).is_err(),
            "{bad:?}"
        );
    }
    assert!(!table.is_empty());
    assert!(SniTable::new().is_empty());
}

#[test]
fn stores_swap_without_touching_holders() {
    let ca = Ca::root("swap root");
    let mut first = SniTable::new();
    first.set_default(key_for(&ca, &["a.test"], 10));
    let store = CertStore::new(first);
    let held = store.current().lookup(None).unwrap();
    let mut second = SniTable::new();
    second.set_default(key_for(&ca, &["a.test"], 11));
    store.store(second);
    assert_eq!(serial_of(&store.current().lookup(None).unwrap()), "0b");
    assert_eq!(serial_of(&held), "0a");

    let slot = ClientCertSlot::new(None);
    assert!(!slot.has_certs());
    assert!(slot
        .resolve(&[], &[SignatureScheme::ECDSA_NISTP256_SHA256])
        .is_none());
    slot.store(Some(key_for(&ca, &["client.test"], 12)));
    assert!(slot.has_certs());
    let chosen = slot
        .resolve(&[], &[SignatureScheme::ECDSA_NISTP256_SHA256])
        .unwrap();
    assert_eq!(serial_of(&chosen), "0c");
    // A server that cannot verify our key type gets no certificate.
    assert!(slot.resolve(&[], &[SignatureScheme::ED25519]).is_none());
}

#[test]
fn expiry_and_serial() {
    let ca = Ca::root("expiry root");
    let mut params = web_params(&["e.test"], 0x1234);
    params.not_after = rcgen::date_time_ymd(2030, 1, 2);
    let leaf = ca.issue(&params);
    assert_eq!(expiry_unix(leaf.leaf()).unwrap(), 1_893_542_400);
    assert_eq!(serial_hex(leaf.leaf()).unwrap(), "1234");
    assert!(expiry_unix(b"junk").is_err());
}
