//! Tests for SPIFFE ID parsing, patterns and the X.509-SVID leaf rules.

use super::*;
use crate::tls::testpki::{id, svid_params, Mesh};
use rcgen::{BasicConstraints, IsCa, KeyUsagePurpose, SanType};

#[test]
fn parses_and_formats_ids() {
    let parsed = SpiffeId::parse("spiffe://prod.example-1_x/ns/web/sa/front.end").unwrap();
    assert_eq!(parsed.trust_domain(), "prod.example-1_x");
    assert_eq!(parsed.path(), "/ns/web/sa/front.end");
    assert_eq!(
        parsed.segments().collect::<Vec<_>>(),
        ["ns", "web", "sa", "front.end"]
    );
    assert_eq!(
        parsed.to_string(),
        "spiffe://prod.example-1_x/ns/web/sa/front.end"
    );
    let bare = SpiffeId::parse("spiffe://td").unwrap();
    assert_eq!(bare.path(), "");
    assert_eq!(bare.segments().count(), 0);
}

#[test]
fn rejects_invalid_ids() {
    use SpiffeIdError::*;
    let cases: &[(&str, SpiffeIdError)] = &[
        ("http://td/a", WrongScheme),
        ("SPIFFE://td/a", WrongScheme),
        ("spiffe:/td/a", WrongScheme),
        ("spiffe:///a", EmptyTrustDomain),
        ("spiffe://TD/a", BadTrustDomainChar),
        ("spiffe://td:8080/a", BadTrustDomainChar),
        ("spiffe://user@td/a", BadTrustDomainChar),
        ("spiffe://td/a//b", EmptySegment),
        ("spiffe://td/a/", EmptySegment),
        ("spiffe://td/", EmptySegment),
        ("spiffe://td/a/./b", DotSegment),
        ("spiffe://td/a/..", DotSegment),
        ("spiffe://td/a?x=1", BadPathChar),
        ("spiffe://td/a#frag", BadPathChar),
        ("spiffe://td/a%20b", BadPathChar),
        ("spiffe://td/*", BadPathChar),
    ];
    for (text, want) in cases {
        assert_eq!(SpiffeId::parse(text), Err(*want), "{text}");
    }
    let long = format!("spiffe://td/{}", "a".repeat(MAX_SPIFFE_ID));
    assert_eq!(SpiffeId::parse(&long), Err(TooLong));
    let long_domain = format!("spiffe://{}/a", "d".repeat(256));
    assert_eq!(SpiffeId::parse(&long_domain), Err(TrustDomainTooLong));
}

#[test]
fn patterns_match_whole_segments() {
    let pattern = SpiffePattern::parse("spiffe://td/ns/*/sa/web").unwrap();
    let matches = |text: &str| pattern.matches(&SpiffeId::parse(text).unwrap());
    assert!(matches("spiffe://td/ns/prod/sa/web"));
    assert!(matches("spiffe://td/ns/dev/sa/web"));
    assert!(!matches("spiffe://td/ns/prod/sa/api"));
    assert!(!matches("spiffe://td/ns/prod/sa/web/extra"));
    assert!(!matches("spiffe://td/ns/prod/sa"));
    assert!(!matches("spiffe://other/ns/prod/sa/web"));
    assert!(!matches("spiffe://tdx/ns/prod/sa/web"));

    let exact = SpiffePattern::parse("spiffe://td/ns/a/sa/b").unwrap();
    assert!(exact.matches(&SpiffeId::parse("spiffe://td/ns/a/sa/b").unwrap()));
    assert!(!exact.matches(&SpiffeId::parse("spiffe://td/ns/a/sa/c").unwrap()));

    let deep = SpiffePattern::parse("spiffe://td/ns/prod/**").unwrap();
    assert!(deep.matches(&SpiffeId::parse("spiffe://td/ns/prod/sa/x").unwrap()));
    assert!(!deep.matches(&SpiffeId::parse("spiffe://td/ns/prod").unwrap()));
    let domain = SpiffePattern::parse("spiffe://td/**").unwrap();
    assert!(domain.matches(&SpiffeId::parse("spiffe://td/a").unwrap()));
    assert!(!domain.matches(&SpiffeId::parse("spiffe://td").unwrap()));

    assert!(SpiffePattern::parse("spiffe://*/ns/a").is_err());
    assert!(SpiffePattern::parse("spiffe://td/ns/a*").is_err());
    assert!(SpiffePattern::parse("spiffe://td/**/x").is_err());
}

#[test]
fn good_svid_yields_its_id() {
    let mesh = Mesh::new();
    let leaf = mesh.good("/ns/app/sa/web");
    let identity = svid_identity(leaf.leaf()).unwrap();
    assert_eq!(identity.as_str(), id("/ns/app/sa/web"));
}

#[test]
fn svid_leaf_rules() {
    let mesh = Mesh::new();
    let issue = |edit: &dyn Fn(&mut rcgen::CertificateParams)| {
        let mut params = svid_params(&id("/ns/app/sa/web"));
        edit(&mut params);
        let leaf = mesh.issuing.issue(&params);
        svid_identity(leaf.leaf())
    };
    assert_eq!(
        issue(&|p| p.subject_alt_names = vec![SanType::DnsName("a.test".try_into().unwrap())]),
        Err(SvidError::NoUriSan)
    );
    assert_eq!(
        issue(&|p| p
            .subject_alt_names
            .push(SanType::URI("spiffe://mesh.test/x".try_into().unwrap()))),
        Err(SvidError::MultipleUriSans(2))
    );
    assert!(matches!(
        issue(&|p| p.subject_alt_names = vec![SanType::URI("https://a.test/x".try_into().unwrap())]),
        Err(SvidError::NotSpiffe(_))
    ));
    assert!(matches!(
        issue(&|p| p.subject_alt_names =
            vec![SanType::URI("spiffe://Mesh.test/x".try_into().unwrap())]),
        Err(SvidError::BadSpiffeId { .. })
    ));
    assert!(matches!(
        issue(
            &|p| p.subject_alt_names = vec![SanType::URI("spiffe://mesh.test".try_into().unwrap())]
        ),
        Err(SvidError::EmptyPath(_))
    ));
    assert_eq!(
        issue(&|p| p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained)),
        Err(SvidError::CaLeaf)
    );
    assert_eq!(issue(&|p| p.key_usages.clear()), Err(SvidError::NoKeyUsage));
    assert_eq!(
        issue(&|p| p.key_usages = vec![KeyUsagePurpose::KeyEncipherment]),
        Err(SvidError::NoDigitalSignature)
    );
    assert_eq!(
        issue(&|p| p.key_usages.push(KeyUsagePurpose::CrlSign)),
        Err(SvidError::SigningKeyUsage)
    );
    assert!(matches!(
        svid_identity(b"not a certificate"),
        Err(SvidError::Malformed(_))
    ));
    assert_eq!(SvidError::MultipleUriSans(2).reason(), "not_svid");
    assert_eq!(SvidError::SigningKeyUsage.reason(), "bad_key_usage");
}
