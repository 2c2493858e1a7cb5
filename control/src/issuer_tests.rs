//! Tests of SVID delivery: flag checks, the identity message, renewal timing.

use super::*;
use crate::ca::tests::TempDir;

fn issuer(tag: &str, ttl: Duration, rotate_after: Option<Duration>) -> (TempDir, SvidIssuer) {
    let dir = TempDir::new(tag);
    crate::ca::init(&dir.0, "td", 1, false).unwrap();
    let ca = MeshCa::load(&dir.0, "td").unwrap();
    let issuer = SvidIssuer::new(ca, IdentityMap::defaults("td"), ttl, rotate_after).unwrap();
    (dir, issuer)
}

#[test]
fn flags_are_checked_before_anything_is_loaded() {
    assert!(SvidIssuer::from_flags(&CaFlags::default())
        .unwrap()
        .is_none());
    let err = SvidIssuer::from_flags(&CaFlags {
        trust_domain: Some("td"),
        ..CaFlags::default()
    })
    .unwrap_err();
    assert_eq!(err, "--trust-domain needs --ca-dir DIR");
    let dir = Path::new("/nonexistent/ca");
    let err = SvidIssuer::from_flags(&CaFlags {
        ca_dir: Some(dir),
        ..CaFlags::default()
    })
    .unwrap_err();
    assert!(err.contains("--trust-domain"), "{err}");
    let err = SvidIssuer::from_flags(&CaFlags {
        ca_dir: Some(dir),
        trust_domain: Some("td"),
        svid_ttl: Some("2 days"),
        ..CaFlags::default()
    })
    .unwrap_err();
    assert!(err.starts_with("--svid-ttl: "), "{err}");
    let err = SvidIssuer::from_flags(&CaFlags {
        ca_dir: Some(dir),
        trust_domain: Some("td"),
        ..CaFlags::default()
    })
    .unwrap_err();
    assert!(err.starts_with("/nonexistent/ca/ca.pem: "), "{err}");
}

#[test]
fn lifetimes_are_checked() {
    let dir = TempDir::new("ttl");
    crate::ca::init(&dir.0, "td", 1, false).unwrap();
    let load = || MeshCa::load(&dir.0, "td").unwrap();
    let map = || IdentityMap::defaults("td");
    let err = SvidIssuer::new(load(), map(), Duration::from_secs(59), None).unwrap_err();
    assert!(err.contains("at least 60s"), "{err}");
    let err = SvidIssuer::new(
        load(),
        map(),
        Duration::from_secs(120),
        Some(Duration::from_secs(120)),
    )
    .unwrap_err();
    assert!(err.contains("less than --svid-ttl"), "{err}");
    assert!(SvidIssuer::new(load(), map(), Duration::from_secs(120), None).is_ok());
}

#[test]
fn the_identity_message_carries_svid_bundle_and_trust_domain() {
    let (_dir, issuer) = issuer("message", Duration::from_secs(3600), None);
    let (message, svid) = issuer.issue("spiffe://td/ns/default/sa/a").unwrap();
    let Message::Identity {
        spiffe_id,
        chain_pem,
        key_pem,
        bundle_pem,
        trust_domain,
        expires_unix,
    } = message
    else {
        panic!("an identity message");
    };
    assert_eq!(spiffe_id, "spiffe://td/ns/default/sa/a");
    assert_eq!(chain_pem, svid.chain_pem);
    assert_eq!(key_pem.0, svid.key_pem);
    assert_eq!(bundle_pem, issuer.ca().bundle_pem());
    assert_eq!(trust_domain, "td");
    assert_eq!(expires_unix, svid.expires_unix);
}

#[test]
fn renewal_comes_at_half_the_lifetime_or_the_override() {
    let (_dir, plain) = issuer("renew", Duration::from_secs(3600), None);
    let svid = |expires_unix| Svid {
        spiffe_id: String::new(),
        chain_pem: String::new(),
        key_pem: String::new(),
        serial_hex: String::new(),
        not_before_unix: 0,
        expires_unix,
    };
    assert_eq!(
        plain.renew_in(&svid(1_000 + 3600), 1_000),
        Duration::from_secs(1800)
    );
    // Already expired or about to: retry soon, but never in a tight loop.
    assert_eq!(plain.renew_in(&svid(1_000), 1_000), MIN_RENEWAL);
    assert_eq!(plain.renew_in(&svid(500), 1_000), MIN_RENEWAL);

    let (_dir2, fast) = issuer(
        "renew-fast",
        Duration::from_secs(120),
        Some(Duration::from_secs(2)),
    );
    assert_eq!(
        fast.renew_in(&svid(1_000 + 120), 1_000),
        Duration::from_secs(2)
    );
}

#[test]
fn sessions_get_an_identity_only_when_they_can_use_it() {
    let (_dir, issuer) = issuer("session", Duration::from_secs(3600), None);
    let issuer = Arc::new(issuer);
    let v1_0 = ProtocolVersion { major: 1, minor: 0 };
    assert!(SessionIdentity::start(None, "a", ProtocolVersion::CURRENT).is_none());
    assert!(SessionIdentity::start(Some(&issuer), "a", v1_0).is_none());
    assert!(SessionIdentity::start(Some(&issuer), "a:b", ProtocolVersion::CURRENT).is_none());

    let mut session = SessionIdentity::start(Some(&issuer), "a", ProtocolVersion::CURRENT).unwrap();
    assert!(session.due() <= Instant::now());
    let issued = session.issue().unwrap();
    assert!(session.due() > Instant::now() + Duration::from_secs(1700));
    let (decoded, used) = wire::decode(&issued.frame).unwrap().unwrap();
    assert_eq!(used, issued.frame.len());
    assert!(
        matches!(decoded, Message::Identity { spiffe_id, .. } if spiffe_id == "spiffe://td/ns/default/sa/a")
    );
}
