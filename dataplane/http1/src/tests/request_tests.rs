//! Request parsing: smuggling/strictness table, positive cases, partial input, limits.

use crate::{parse_request, BodyFraming, Limits, Method, Parsed, RequestError, RequestHead};

fn parse(buf: &[u8]) -> Result<Parsed<RequestHead>, RequestError> {
    parse_request(buf, &Limits::default(), &mut Vec::new())
}

fn complete(buf: &[u8]) -> RequestHead {
    match parse(buf) {
        Ok(Parsed::Complete(h)) => h,
        other => panic!(
            "expected Complete for {:?}, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

#[test]
fn positive_request_fields() {
    let buf = b"POST /upload?x=1 HTTP/1.1\r\nHost: api.example:8080\r\nContent-Length:  42 \r\nX-Empty:\r\n\r\n";
    let mut headers = Vec::new();
    let Ok(Parsed::Complete(h)) = parse_request(buf, &Limits::default(), &mut headers) else {
        panic!("not complete");
    };
    assert_eq!(h.head_len, buf.len());
    assert_eq!(h.method, Method::Post);
    assert_eq!(h.method_span.get(buf), b"POST");
    assert_eq!(h.target.get(buf), b"/upload?x=1");
    assert_eq!(h.minor_version, 1);
    assert_eq!(h.host.map(|s| s.get(buf)), Some(&b"api.example:8080"[..]));
    assert_eq!(h.body, BodyFraming::Length(42));
    assert!(h.keep_alive && !h.expect_continue && !h.upgrade);
    assert_eq!(headers.len(), 3);
    assert_eq!(headers[1].name.get(buf), b"Content-Length");
    assert_eq!(headers[1].value.get(buf), b"42");
    assert_eq!(headers[2].value.get(buf), b"");
    assert_eq!(
        crate::header_value(buf, &headers, "content-length"),
        Some(&b"42"[..])
    );
}

#[test]
fn body_framing_and_connection_flags() {
    let h = complete(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(h.body, BodyFraming::None);
    assert!(h.keep_alive);
    let h = complete(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, CLOSE\r\n\r\n");
    assert!(!h.keep_alive);
    let h = complete(b"GET / HTTP/1.0\r\n\r\n");
    assert!(!h.keep_alive && h.host.is_none());
    let h = complete(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    assert!(h.keep_alive);
    let h = complete(b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    assert_eq!(h.body, BodyFraming::Chunked);
    let h = complete(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(h.body, BodyFraming::Length(0));
    let h = complete(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    assert!(h.upgrade);
    let h = complete(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n");
    assert!(!h.upgrade);
    let h = complete(b"GET /ws HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n");
    assert!(!h.upgrade);
    let h = complete(
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
    );
    assert!(h.expect_continue);
    let h = complete(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
    assert!(!h.expect_continue);
    assert_eq!(
        complete(b"PATCH / HTTP/1.1\r\nHost: a\r\n\r\n").method,
        Method::Patch
    );
    assert_eq!(
        complete(b"PURGE / HTTP/1.1\r\nHost: a\r\n\r\n").method,
        Method::Other
    );
}

#[test]
fn absolute_form_authority_overrides_host() {
    let buf = b"GET http://real.example:81/p HTTP/1.1\r\nHost: other.example\r\n\r\n";
    let h = complete(buf);
    assert_eq!(h.host.map(|s| s.get(buf)), Some(&b"real.example:81"[..]));
    assert_eq!(h.target.get(buf), b"http://real.example:81/p");
}

#[test]
fn every_prefix_is_partial() {
    let buf: &[u8] = b"POST /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\nX-Tab:\tv \r\nConnection: keep-alive\r\n\r\n";
    for n in 0..buf.len() {
        assert_eq!(parse(&buf[..n]), Ok(Parsed::Partial), "prefix {n}");
    }
    assert!(matches!(parse(buf), Ok(Parsed::Complete(_))));
    let buf10: &[u8] = b"GET / HTTP/1.0\r\n\r\n";
    for n in 0..buf10.len() {
        assert_eq!(parse(&buf10[..n]), Ok(Parsed::Partial), "prefix {n}");
    }
}

#[test]
fn errors_are_reported_before_the_head_completes() {
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\nX: a\0"),
        Err(RequestError::InvalidHeaderValue)
    );
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\nX\x01"),
        Err(RequestError::InvalidHeaderName)
    );
    assert_eq!(parse(b"GET / HTTP/1.1\nHo"), Err(RequestError::BareLf));
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\nHost: a\nX"),
        Err(RequestError::BareLf)
    );
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\nHost: a\r\n x"),
        Err(RequestError::ObsFold)
    );
    assert_eq!(parse(b"G(ET"), Err(RequestError::InvalidMethod));
    assert_eq!(parse(b"GET /\x01"), Err(RequestError::InvalidTarget));
    assert_eq!(parse(b"GET / HTTX"), Err(RequestError::InvalidVersion));
    assert_eq!(
        parse(b"CONNECT a:1 HTTP/1.1\r\n"),
        Err(RequestError::ConnectNotImplemented)
    );
}

#[test]
fn limits_complete_and_partial() {
    let limits = Limits {
        max_request_line: 16,
        max_header_bytes: 64,
        max_headers: 2,
    };
    let run = |b: &[u8]| parse_request(b, &limits, &mut Vec::new());
    // "GET /0123456789 HTTP/1.1" is 24 bytes > 16.
    assert_eq!(
        run(b"GET /0123456789 HTTP/1.1\r\nHost: a\r\n\r\n"),
        Err(RequestError::RequestLineTooLong)
    );
    assert_eq!(
        run(b"GET /0123456789ab"),
        Err(RequestError::RequestLineTooLong)
    );
    assert_eq!(run(b"GET /0123456789a"), Ok(Parsed::Partial));
    assert_eq!(RequestError::RequestLineTooLong.status(), 414);
    // Exactly at the line limit is fine.
    assert!(matches!(
        run(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        Ok(Parsed::Complete(_))
    ));
    let at_limit = b"GET /123 HTTP/1.0\r\n\r\n";
    assert_eq!(at_limit.len() - 4, 17);
    assert_eq!(run(at_limit), Err(RequestError::RequestLineTooLong));
    assert!(matches!(
        run(b"GET /12 HTTP/1.0\r\n\r\n"),
        Ok(Parsed::Complete(_))
    ));

    let big = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "v".repeat(40));
    assert_eq!(run(big.as_bytes()), Err(RequestError::HeadTooLarge));
    assert_eq!(run(&big.as_bytes()[..70]), Err(RequestError::HeadTooLarge));
    assert_eq!(run(&big.as_bytes()[..64]), Ok(Parsed::Partial));
    assert_eq!(RequestError::HeadTooLarge.status(), 431);
    // A head of exactly max_header_bytes is accepted.
    let exact = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
        "v".repeat(64 - 32)
    );
    assert_eq!(exact.len(), 64);
    assert!(matches!(run(exact.as_bytes()), Ok(Parsed::Complete(_))));

    assert_eq!(
        run(b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n"),
        Err(RequestError::TooManyHeaders)
    );
    assert_eq!(
        run(b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB"),
        Err(RequestError::TooManyHeaders)
    );
    assert_eq!(RequestError::TooManyHeaders.status(), 431);
}

#[test]
fn max_headers_above_cap_is_capped() {
    let limits = Limits {
        max_request_line: 1024,
        max_header_bytes: 1 << 20,
        max_headers: 10_000,
    };
    let mut s = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..255 {
        s.push_str(&format!("X-{i}: v\r\n"));
    }
    s.push_str("\r\n");
    let mut headers = Vec::new();
    assert!(matches!(
        parse_request(s.as_bytes(), &limits, &mut headers),
        Ok(Parsed::Complete(_))
    ));
    assert_eq!(headers.len(), 256);
    let s2 = s.replacen("Host: a\r\n", "Host: a\r\nY: 1\r\n", 1);
    assert_eq!(
        parse_request(s2.as_bytes(), &limits, &mut headers),
        Err(RequestError::TooManyHeaders)
    );
}

#[test]
fn field_counts_around_the_inline_slots() {
    for count in [1usize, 30, 31, 32, 33, 64] {
        let mut s = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 1..count {
            s.push_str(&format!("X-{i}:\tv{i} \r\n"));
        }
        s.push_str("\r\n");
        let mut headers = Vec::new();
        let parsed = parse_request(s.as_bytes(), &Limits::default(), &mut headers);
        assert!(
            matches!(parsed, Ok(Parsed::Complete(_))),
            "{count}: {parsed:?}"
        );
        assert_eq!(headers.len(), count);
        let last = headers[count - 1];
        let want_value = if count == 1 {
            "a".to_string()
        } else {
            format!("v{}", count - 1)
        };
        assert_eq!(
            last.value.get(s.as_bytes()),
            want_value.as_bytes(),
            "{count}"
        );
    }
}

#[test]
fn pipelined_requests() {
    let first = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    let second = b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut buf = first.to_vec();
    buf.extend_from_slice(second);
    let h1 = complete(&buf);
    assert_eq!(h1.head_len, first.len() - 5);
    assert_eq!(h1.body, BodyFraming::Length(5));
    let rest = &buf[h1.head_len + 5..];
    let h2 = complete(rest);
    assert_eq!(h2.head_len, second.len());
    assert_eq!(h2.target.get(rest), b"/b");
}

#[test]
fn headers_vec_is_reused() {
    let mut headers = Vec::with_capacity(8);
    let cap = headers.capacity();
    for _ in 0..3 {
        let r = parse_request(
            b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r\n",
            &Limits::default(),
            &mut headers,
        );
        assert!(matches!(r, Ok(Parsed::Complete(_))));
        assert_eq!(headers.len(), 2);
        assert_eq!(headers.capacity(), cap);
    }
}

#[test]
fn error_reasons_are_short() {
    for e in [
        RequestError::BareLf,
        RequestError::UnsupportedVersion,
        RequestError::ConnectNotImplemented,
        RequestError::UnsupportedExpectation,
    ] {
        assert!(!e.reason().is_empty() && e.reason().len() < 60);
        assert_eq!(e.to_string(), e.reason());
    }
    assert_eq!(RequestError::UnsupportedVersion.status(), 505);
    assert_eq!(RequestError::ConnectNotImplemented.status(), 501);
    assert_eq!(RequestError::UnsupportedExpectation.status(), 417);
    assert!(Method::Get.is_idempotent() && !Method::Post.is_idempotent());
    assert_eq!(Method::Options.as_str(), "OPTIONS");
}
