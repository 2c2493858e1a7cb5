//! Request smuggling and strictness table: each case asserts the exact status answered.

use crate::{parse_request, Limits, Parsed};

/// Status the proxy would answer: 0 for Partial, 200 when accepted.
fn outcome(buf: &[u8]) -> u16 {
    match parse_request(buf, &Limits::default(), &mut Vec::new()) {
        Ok(Parsed::Complete(_)) => 200,
        Ok(Parsed::Partial) => 0,
        Err(e) => e.status(),
    }
}

/// `POST / HTTP/1.1` with Host plus the given field lines.
fn post(fields: &str) -> Vec<u8> {
    format!("POST / HTTP/1.1\r\nHost: example.com\r\n{fields}\r\n").into_bytes()
}

#[test]
fn smuggling_and_strictness_table() {
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "CL and TE",
            post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
            400,
        ),
        (
            "TE and CL",
            post("Transfer-Encoding: chunked\r\nContent-Length: 0\r\n"),
            400,
        ),
        (
            "TE chunked, identity",
            post("Transfer-Encoding: chunked, identity\r\n"),
            400,
        ),
        ("TE identity", post("Transfer-Encoding: identity\r\n"), 400),
        (
            "TE space before colon",
            post("Transfer-Encoding : chunked\r\n"),
            400,
        ),
        (
            "TE HTAB OWS is valid",
            post("Transfer-Encoding:\tchunked\r\n"),
            200,
        ),
        (
            "TE trailing OWS is valid",
            post("Transfer-Encoding: chunked \t\r\n"),
            200,
        ),
        ("TE upper case", post("Transfer-Encoding: CHUNKED\r\n"), 200),
        ("TE xchunked", post("Transfer-Encoding: xchunked\r\n"), 400),
        (
            "TE chunked twice in list",
            post("Transfer-Encoding: chunked, chunked\r\n"),
            400,
        ),
        (
            "TE chunked twice in fields",
            post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
            400,
        ),
        (
            "TE chunked then gzip field",
            post("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"),
            400,
        ),
        (
            "TE gzip, chunked",
            post("Transfer-Encoding: gzip, chunked\r\n"),
            200,
        ),
        (
            "TE chunked with params",
            post("Transfer-Encoding: chunked;q=1\r\n"),
            400,
        ),
        (
            "TE trailing comma",
            post("Transfer-Encoding: chunked,\r\n"),
            400,
        ),
        (
            "TE leading comma",
            post("Transfer-Encoding: ,chunked\r\n"),
            400,
        ),
        ("TE empty", post("Transfer-Encoding:\r\n"), 400),
        ("TE quoted", post("Transfer-Encoding: \"chunked\"\r\n"), 400),
        (
            "TE vertical tab",
            post("Transfer-Encoding: \x0bchunked\r\n"),
            400,
        ),
        (
            "TE on HTTP/1.0",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            400,
        ),
        ("CL plus sign", post("Content-Length: +5\r\n"), 400),
        ("CL minus", post("Content-Length: -1\r\n"), 400),
        ("CL list differs", post("Content-Length: 5, 6\r\n"), 400),
        ("CL list same", post("Content-Length: 5, 5\r\n"), 200),
        (
            "CL fields differ",
            post("Content-Length: 5\r\nContent-Length: 6\r\n"),
            400,
        ),
        (
            "CL fields same",
            post("Content-Length: 5\r\nContent-Length: 5\r\n"),
            200,
        ),
        ("CL empty", post("Content-Length:\r\n"), 400),
        ("CL inner space", post("Content-Length: 1 2\r\n"), 400),
        ("CL hex", post("Content-Length: 0x10\r\n"), 400),
        ("CL trailing comma", post("Content-Length: 5,\r\n"), 400),
        (
            "CL overflow",
            post("Content-Length: 18446744073709551616\r\n"),
            400,
        ),
        (
            "CL u64 max",
            post("Content-Length: 18446744073709551615\r\n"),
            200,
        ),
        ("CL decimal point", post("Content-Length: 5.0\r\n"), 400),
        ("CL space before colon", post("Content-Length : 5\r\n"), 400),
        (
            "two Hosts",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec(),
            400,
        ),
        (
            "two identical Hosts",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n".to_vec(),
            400,
        ),
        (
            "missing Host",
            b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n".to_vec(),
            400,
        ),
        (
            "missing Host on 1.0",
            b"GET / HTTP/1.0\r\n\r\n".to_vec(),
            200,
        ),
        (
            "Host with space",
            b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n".to_vec(),
            400,
        ),
        (
            "Host with userinfo",
            b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n".to_vec(),
            400,
        ),
        (
            "Host with slash",
            b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n".to_vec(),
            400,
        ),
        (
            "Host with comma",
            b"GET / HTTP/1.1\r\nHost: a,b\r\n\r\n".to_vec(),
            400,
        ),
        (
            "Host empty",
            b"GET / HTTP/1.1\r\nHost:\r\n\r\n".to_vec(),
            400,
        ),
        (
            "Host bad port",
            b"GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n".to_vec(),
            400,
        ),
        (
            "Host empty port",
            b"GET / HTTP/1.1\r\nHost: a:\r\n\r\n".to_vec(),
            400,
        ),
        (
            "Host IPv6 with port",
            b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n".to_vec(),
            200,
        ),
        ("obs-fold", post("X-A: 1\r\n folded\r\n"), 400),
        ("obs-fold HTAB", post("X-A: 1\r\n\tfolded\r\n"), 400),
        (
            "space before first field",
            b"GET / HTTP/1.1\r\n Host: a\r\n\r\n".to_vec(),
            400,
        ),
        (
            "bare LF in fields",
            b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n".to_vec(),
            400,
        ),
        (
            "bare LF request line",
            b"GET / HTTP/1.1\nHost: a\r\n\r\n".to_vec(),
            400,
        ),
        ("LF-only head", b"GET / HTTP/1.1\nHost: a\n\n".to_vec(), 400),
        (
            "bare LF end of head",
            b"GET / HTTP/1.1\r\nHost: a\r\n\n".to_vec(),
            400,
        ),
        (
            "bare CR in value",
            b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n".to_vec(),
            400,
        ),
        (
            "bare CR request line",
            b"GET / HTTP/1.1\rHost: a\r\n\r\n".to_vec(),
            400,
        ),
        ("NUL in value", post("X-A: a\0b\r\n"), 400),
        ("DEL in value", post("X-A: a\x7fb\r\n"), 400),
        ("CTL in value", post("X-A: a\x01b\r\n"), 400),
        (
            "obs-text in value is valid",
            post("X-A: caf\u{e9}\r\n"),
            200,
        ),
        ("space inside name", post("X A: b\r\n"), 400),
        ("no colon", post("X-A\r\n"), 400),
        ("empty name", post(": b\r\n"), 400),
        ("invalid name char", post("X(A): b\r\n"), 400),
        (
            "HTTP/2.0",
            b"GET / HTTP/2.0\r\nHost: a\r\n\r\n".to_vec(),
            505,
        ),
        (
            "HTTP/1.2",
            b"GET / HTTP/1.2\r\nHost: a\r\n\r\n".to_vec(),
            505,
        ),
        ("HTTP/0.9 line", b"GET /\r\n\r\n".to_vec(), 400),
        ("HTTP/1", b"GET / HTTP/1\r\nHost: a\r\n\r\n".to_vec(), 400),
        (
            "lower-case version",
            b"GET / http/1.1\r\nHost: a\r\n\r\n".to_vec(),
            400,
        ),
        (
            "HTTP/1.10",
            b"GET / HTTP/1.10\r\nHost: a\r\n\r\n".to_vec(),
            400,
        ),
        (
            "trailing space after version",
            b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n".to_vec(),
            400,
        ),
        (
            "space in target",
            b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            400,
        ),
        (
            "double space after method",
            b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            400,
        ),
        (
            "CTL in target",
            b"GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            400,
        ),
        (
            "HTAB in target",
            b"GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            400,
        ),
        (
            "fragment in target",
            b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            400,
        ),
        (
            "backslash in target",
            b"GET /a\\b HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            400,
        ),
        (
            "non-ASCII in target",
            b"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            400,
        ),
        (
            "relative target",
            b"GET a/b HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            400,
        ),
        (
            "asterisk with GET",
            b"GET * HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            400,
        ),
        (
            "asterisk with OPTIONS",
            b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            200,
        ),
        (
            "absolute-form",
            b"GET http://a.example/x?y HTTP/1.1\r\nHost: a.example\r\n\r\n".to_vec(),
            200,
        ),
        (
            "absolute-form ftp",
            b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            400,
        ),
        (
            "absolute-form userinfo",
            b"GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            400,
        ),
        (
            "absolute-form empty authority",
            b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            400,
        ),
        (
            "CONNECT",
            b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n".to_vec(),
            501,
        ),
        (
            "invalid method char",
            b"GE(T / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            400,
        ),
        (
            "leading space",
            b" GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            400,
        ),
        (
            "leading CRLF",
            b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            400,
        ),
        (
            "leading LF",
            b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            400,
        ),
        (
            "Expect 100-continue",
            post("Expect: 100-Continue\r\nContent-Length: 1\r\n"),
            200,
        ),
        ("Expect other", post("Expect: something\r\n"), 417),
        (
            "lower-case method is a token",
            b"get / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            200,
        ),
    ];
    assert!(cases.len() >= 40);
    for (name, buf, want) in &cases {
        assert_eq!(
            outcome(buf),
            *want,
            "case {name:?}: {:?}",
            String::from_utf8_lossy(buf)
        );
    }
}
