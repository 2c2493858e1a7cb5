//! Tests for chain and identity verification: each of the ten bad certificates
//! is refused with its own reason, through both rustls verifier traits.

use super::*;
use crate::tls::testpki::{id, web_params, Ca, Leaf, Mesh, TD};

fn bundle(mesh: &Mesh) -> SharedBundle {
    shared_bundle(TrustBundle::new(Some(TD), std::slice::from_ref(&mesh.root.der)).unwrap())
}

fn now() -> UnixTime {
    UnixTime::now()
}

fn server_check(verifier: &ServerVerifier, leaf: &Leaf, name: &str) -> Result<(), Error> {
    let name = ServerName::try_from(name.to_string()).unwrap();
    verifier
        .verify_server_cert(leaf.leaf(), &leaf.chain[1..], &name, &[], now())
        .map(|_| ())
}

fn client_check(verifier: &ClientVerifier, leaf: &Leaf) -> Result<(), Error> {
    verifier
        .verify_client_cert(leaf.leaf(), &leaf.chain[1..], now())
        .map(|_| ())
}

#[test]
fn good_svid_passes_both_verifiers_without_a_dns_name() {
    let mesh = Mesh::new();
    let leaf = mesh.good("/ns/app/sa/web");
    let expected = ExpectedPeer::Spiffe(SpiffeId::parse(&id("/ns/app/sa/web")).unwrap());
    let server = ServerVerifier::new(bundle(&mesh), expected);
    // The name used for SNI is irrelevant when a SPIFFE ID is expected.
    server_check(&server, &leaf, "web.app.svc").unwrap();
    let pattern = SpiffePattern::parse(&id("/ns/app/sa/*")).unwrap();
    let client = ClientVerifier::new(bundle(&mesh), ExpectedPeer::AnyOf(vec![pattern]), true);
    client_check(&client, &leaf).unwrap();
    assert!(client.client_auth_mandatory());
    assert!(
        !ClientVerifier::new(bundle(&mesh), ExpectedPeer::AnySvid, false).client_auth_mandatory()
    );
}

#[test]
fn ten_bad_certificates_each_refused_with_its_reason() {
    let mesh = Mesh::new();
    let expected = ExpectedPeer::Spiffe(SpiffeId::parse(&id("/ns/app/sa/web")).unwrap());
    let server = ServerVerifier::new(bundle(&mesh), expected);
    let pattern = SpiffePattern::parse(&id("/ns/app/sa/*")).unwrap();
    let client = ClientVerifier::new(bundle(&mesh), ExpectedPeer::AnyOf(vec![pattern]), true);
    let cases = mesh.bad_certificates("/ns/app/sa/web");
    assert_eq!(cases.len(), 10);
    for (case, leaf, reason) in &cases {
        for (side, result) in [
            ("server", server_check(&server, leaf, "web.app.svc")),
            ("client", client_check(&client, leaf)),
        ] {
            let err = result.expect_err(case);
            assert_eq!(failure_reason(&err), *reason, "{case} ({side}): {err}");
            let detail = rejection(&err).unwrap().to_string();
            assert!(!detail.is_empty());
        }
    }
}

#[test]
fn messages_say_what_is_wrong() {
    let mesh = Mesh::new();
    let server = ServerVerifier::new(
        bundle(&mesh),
        ExpectedPeer::Spiffe(SpiffeId::parse(&id("/ns/app/sa/web")).unwrap()),
    );
    let cases = mesh.bad_certificates("/ns/app/sa/web");
    let message = |case: &str| {
        let (_, leaf, _) = cases.iter().find(|(name, _, _)| *name == case).unwrap();
        let err = server_check(&server, leaf, "x.test").unwrap_err();
        rejection(&err).unwrap().to_string()
    };
    assert!(message("expired").contains("expired"));
    assert!(message("two URI SANs").contains("2 URI SANs"));
    assert!(message("wrong SPIFFE ID").contains("/ns/other/sa/intruder"));
    assert!(message("wrong trust domain").contains("other.test"));
    assert!(message("wrong CA").contains("evil root"));
    assert!(message("truncated chain").contains("mesh intermediate"));
    assert!(message("self-signed").contains("self-signed"));
}

#[test]
fn dns_mode_checks_the_server_name() {
    let root = Ca::root("web root");
    let leaf = root.issue(&web_params(&["api.example.test"], 7));
    let bundle = shared_bundle(TrustBundle::new(None, std::slice::from_ref(&root.der)).unwrap());
    let verifier = ServerVerifier::new(bundle, ExpectedPeer::DnsName);
    server_check(&verifier, &leaf, "api.example.test").unwrap();
    let err = server_check(&verifier, &leaf, "other.example.test").unwrap_err();
    assert_eq!(failure_reason(&err), "wrong_name");
    // A web certificate is not an SVID.
    let mesh_bundle =
        shared_bundle(TrustBundle::new(Some(TD), std::slice::from_ref(&root.der)).unwrap());
    let spiffe = ServerVerifier::new(mesh_bundle, ExpectedPeer::AnySvid);
    let err = server_check(&spiffe, &leaf, "api.example.test").unwrap_err();
    assert_eq!(failure_reason(&err), "not_svid");
}

#[test]
fn bundle_rotation_changes_trust_for_new_checks() {
    let mesh = Mesh::new();
    let shared = bundle(&mesh);
    let verifier = ServerVerifier::new(shared.clone(), ExpectedPeer::AnySvid);
    let leaf = mesh.good("/ns/app/sa/web");
    server_check(&verifier, &leaf, "x.test").unwrap();
    let next = Ca::root("next root");
    shared.store(Arc::new(
        TrustBundle::new(Some(TD), std::slice::from_ref(&next.der)).unwrap(),
    ));
    let err = server_check(&verifier, &leaf, "x.test").unwrap_err();
    assert_eq!(failure_reason(&err), "incomplete_chain");
    assert!(TrustBundle::new(Some(TD), &[]).is_err());
    assert!(TrustBundle::new(Some("Bad Domain"), std::slice::from_ref(&next.der)).is_err());
    let missing = TrustBundle::load(Some(TD), Path::new("/nonexistent/bundle.pem")).unwrap_err();
    assert!(missing.to_string().contains("/nonexistent/bundle.pem"));
}

#[test]
fn forged_issuer_name_is_a_bad_signature() {
    let mesh = Mesh::new();
    // Same subject name as the trusted root, different key.
    let forger = Ca::root("mesh root");
    let leaf = forger.issue(&crate::tls::testpki::svid_params(&id("/ns/app/sa/web")));
    let verifier = ServerVerifier::new(bundle(&mesh), ExpectedPeer::AnySvid);
    let err = server_check(&verifier, &leaf, "x.test").unwrap_err();
    assert_eq!(failure_reason(&err), "bad_signature", "{err}");
}

#[test]
fn classifies_errors_from_the_peer_and_rustls() {
    use rustls::{AlertDescription, PeerIncompatible};
    let cases = [
        (
            Error::AlertReceived(AlertDescription::BadCertificate),
            "peer_rejected_certificate",
        ),
        (
            Error::AlertReceived(AlertDescription::CertificateRequired),
            "peer_requires_certificate",
        ),
        (
            Error::AlertReceived(AlertDescription::ProtocolVersion),
            "protocol_version",
        ),
        (
            Error::PeerIncompatible(PeerIncompatible::Tls13RequiredForQuic),
            "protocol_version",
        ),
        (Error::NoCertificatesPresented, "no_certificate"),
        (
            Error::InvalidCertificate(CertificateError::UnknownIssuer),
            "unknown_ca",
        ),
        (
            Error::InvalidCertificate(CertificateError::Expired),
            "expired",
        ),
        (Error::General("x".into()), "tls_error"),
    ];
    for (err, want) in cases {
        assert_eq!(failure_reason(&err), want, "{err:?}");
    }
}
