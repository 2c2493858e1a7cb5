//! Tests for the ClientHello parser and protocol detection, with real hellos
//! written by rustls and hand-built malformed ones.

use super::*;
use std::sync::Arc;

/// The first flight of a real rustls client: one record holding the ClientHello.
fn rustls_hello(sni: &str, alpn: &[&[u8]]) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}

/// Build a record holding a ClientHello with the given extensions.
fn handmade(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[7; 32]);
    body.push(0); // session id
    body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one suite
    body.extend_from_slice(&[1, 0]); // null compression
    let mut ext = Vec::new();
    for (kind, data) in extensions {
        ext.extend_from_slice(&kind.to_be_bytes());
        ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
        ext.extend_from_slice(data);
    }
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut msg = vec![1];
    msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    msg.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    record.extend_from_slice(&msg);
    record
}

fn sni_ext(name: &[u8]) -> Vec<u8> {
    let mut entry = vec![0];
    entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
    entry.extend_from_slice(name);
    let mut data = (entry.len() as u16).to_be_bytes().to_vec();
    data.extend_from_slice(&entry);
    data
}

fn hello(bytes: &[u8]) -> ClientHello<'_> {
    match parse_client_hello(bytes) {
        Peek::Hello(hello) => hello,
        other => panic!("expected a hello, got {other:?}"),
    }
}

#[test]
fn reads_sni_alpn_and_versions_from_a_real_rustls_hello() {
    let bytes = rustls_hello("API.Example.com", &[b"h2", b"http/1.1"]);
    let parsed = hello(&bytes);
    assert_eq!(parsed.sni.unwrap().as_str(), "api.example.com");
    let alpn: Vec<&[u8]> = parsed.alpn.iter().collect();
    assert_eq!(alpn, vec![&b"h2"[..], &b"http/1.1"[..]]);
    assert!(parsed.alpn.contains(b"http/1.1"));
    assert_eq!(parsed.legacy_version, 0x0303);
    assert!(parsed.offers_tls13);
    assert_eq!(detect(&bytes), Protocol::Tls);
}

#[test]
fn every_prefix_of_a_hello_is_incomplete_and_says_how_much_more() {
    let bytes = rustls_hello("a.example", &[b"http/1.1"]);
    for cut in 0..bytes.len() {
        match parse_client_hello(&bytes[..cut]) {
            Peek::Incomplete { need } => assert!(need > cut && need <= bytes.len()),
            other => panic!("prefix {cut}: {other:?}"),
        }
    }
    assert!(matches!(parse_client_hello(&bytes), Peek::Hello(_)));
}

#[test]
fn no_panic_on_mutated_or_truncated_input() {
    let bytes = rustls_hello("mutate.example", &[b"h2"]);
    for at in 0..bytes.len() {
        for value in [0u8, 1, 0x7f, 0x80, 0xff] {
            let mut mutated = bytes.clone();
            mutated[at] = value;
            let _ = parse_client_hello(&mutated);
            let _ = detect(&mutated);
            // A shortened record length makes every inner length overrun.
            let _ = parse_client_hello(&mutated[..at]);
        }
    }
    // A cheap deterministic pseudo-random sweep.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..2000 {
        let mut buf = vec![0x16, 0x03, 0x01, 0x00, 0x40];
        for _ in 0..64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            buf.push(state as u8);
        }
        let _ = parse_client_hello(&buf);
    }
}

#[test]
fn not_tls_and_invalid_records() {
    assert_eq!(parse_client_hello(b"GET / HTTP/1.1\r\n"), Peek::NotTls);
    assert_eq!(parse_client_hello(&[0x16, 0x02]), Peek::NotTls);
    assert_eq!(
        parse_client_hello(&[0x16, 3, 1, 0x40, 1]),
        Peek::Invalid(HelloError::RecordTooLong)
    );
    // A ServerHello (type 2) is not a ClientHello.
    assert_eq!(
        parse_client_hello(&[0x16, 3, 3, 0, 4, 2, 0, 0, 0]),
        Peek::Invalid(HelloError::NotClientHello)
    );
    // The handshake claims more bytes than the record holds: it continues in a
    // second record, which we do not reassemble.
    assert_eq!(
        parse_client_hello(&[0x16, 3, 1, 0, 4, 1, 0, 1, 0]),
        Peek::Invalid(HelloError::Fragmented)
    );
}

#[test]
fn hello_without_extensions_has_no_sni() {
    let mut bytes = handmade(&[]);
    // Drop the (empty) extensions block entirely, fixing up both lengths.
    bytes.truncate(bytes.len() - 2);
    let record_len = (bytes.len() - 5) as u16;
    bytes[3..5].copy_from_slice(&record_len.to_be_bytes());
    bytes[6..9].copy_from_slice(&(record_len as u32 - 4).to_be_bytes()[1..]);
    let parsed = hello(&bytes);
    assert_eq!(parsed.sni, None);
    assert!(parsed.alpn.is_empty());
    assert!(!parsed.offers_tls13);
}

#[test]
fn server_name_rules() {
    let ok = handmade(&[(0, sni_ext(b"Www.Example.COM."))]);
    assert_eq!(hello(&ok).sni.unwrap().as_str(), "www.example.com");
    for bad in [
        &b""[..],
        b"-lead.example",
        b"trail-.example",
        b"a..b",
        b"sp ace.example",
        b"caf\xc3\xa9.example",
        &[b'a'; 64],
    ] {
        let bytes = handmade(&[(0, sni_ext(bad))]);
        assert_eq!(
            parse_client_hello(&bytes),
            Peek::Invalid(HelloError::BadServerName),
            "{bad:?}"
        );
    }
    let long_label_ok = [b'a'; 63];
    assert!(matches!(
        parse_client_hello(&handmade(&[(0, sni_ext(&long_label_ok))])),
        Peek::Hello(_)
    ));
    // Empty server_name list.
    let empty = handmade(&[(0, vec![0, 0])]);
    assert_eq!(
        parse_client_hello(&empty),
        Peek::Invalid(HelloError::BadServerName)
    );
    let twice = handmade(&[(0, sni_ext(b"a.example")), (0, sni_ext(b"b.example"))]);
    assert_eq!(
        parse_client_hello(&twice),
        Peek::Invalid(HelloError::DuplicateExtension)
    );
}

#[test]
fn alpn_rules() {
    let empty_list = handmade(&[(16, vec![0, 0])]);
    assert_eq!(
        parse_client_hello(&empty_list),
        Peek::Invalid(HelloError::BadAlpn)
    );
    let empty_id = handmade(&[(16, vec![0, 3, 2, b'h', b'2', 0])]);
    assert_eq!(
        parse_client_hello(&empty_id),
        Peek::Invalid(HelloError::BadAlpn)
    );
    let overrun = handmade(&[(16, vec![0, 3, 5, b'h', b'2'])]);
    assert_eq!(
        parse_client_hello(&overrun),
        Peek::Invalid(HelloError::BadAlpn)
    );
}

#[test]
fn detect_protocols() {
    assert_eq!(detect(b""), Protocol::NeedMore);
    assert_eq!(detect(&[0x16]), Protocol::NeedMore);
    assert_eq!(detect(&[0x16, 3]), Protocol::NeedMore);
    assert_eq!(detect(&[0x16, 3, 1]), Protocol::Tls);
    assert_eq!(detect(&[0x16, 9, 1]), Protocol::Opaque);
    assert_eq!(detect(HTTP2_PREFACE), Protocol::Http2Preface);
    assert_eq!(detect(b"PRI * HTTP/2.0\r\n"), Protocol::NeedMore);
    assert_eq!(detect(b"PRI * HTTP/1.1\r\n"), Protocol::Http1);
    assert_eq!(detect(b"GET / HTTP/1.1\r\n"), Protocol::Http1);
    assert_eq!(detect(b"OPTIONS * HTTP/1.1"), Protocol::Http1);
    assert_eq!(detect(b"GE"), Protocol::NeedMore);
    assert_eq!(detect(b"GET "), Protocol::NeedMore);
    assert_eq!(detect(b"GET \r\n"), Protocol::Opaque);
    assert_eq!(detect(b"get / HTTP/1.1"), Protocol::Opaque);
    assert_eq!(detect(b" GET"), Protocol::Opaque);
    assert_eq!(detect(b"*1\r\n$4\r\nPING\r\n"), Protocol::Opaque);
    assert_eq!(detect(b"SSH-2.0-OpenSSH_9.6\r\n"), Protocol::Opaque);
    assert_eq!(detect(&[b'A'; 40]), Protocol::Opaque);
    assert_eq!(detect(&[0, 0, 0, 1]), Protocol::Opaque);
}
