//! Response parsing: status line, framing per RFC 9112 §6.3, strictness, partial input.

use crate::{parse_response, BodyFraming, Limits, Method, Parsed, ResponseError, ResponseHead};

fn parse_for(method: Method, buf: &[u8]) -> Result<Parsed<ResponseHead>, ResponseError> {
    parse_response(buf, &Limits::default(), method, &mut Vec::new())
}

fn complete(method: Method, buf: &[u8]) -> ResponseHead {
    match parse_for(method, buf) {
        Ok(Parsed::Complete(h)) => h,
        other => panic!(
            "expected Complete for {:?}, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

#[test]
fn framing() {
    let cases: Vec<(Method, &[u8], BodyFraming, bool)> = vec![
        (Method::Get, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", BodyFraming::Length(3), true),
        (Method::Get, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", BodyFraming::Chunked, true),
        (Method::Get, b"HTTP/1.1 200 OK\r\n\r\n", BodyFraming::UntilClose, false),
        (Method::Get, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", BodyFraming::UntilClose, false),
        (Method::Head, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", BodyFraming::None, true),
        (Method::Head, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", BodyFraming::None, true),
        (Method::Get, b"HTTP/1.1 204 No Content\r\n\r\n", BodyFraming::None, true),
        (Method::Get, b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", BodyFraming::None, true),
        (Method::Get, b"HTTP/1.1 100 Continue\r\n\r\n", BodyFraming::None, true),
        (Method::Get, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", BodyFraming::None, true),
        (Method::Get, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n", BodyFraming::Length(3), false),
        (Method::Get, b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", BodyFraming::Length(3), false),
        (Method::Get, b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n", BodyFraming::Length(3), true),
        (Method::Get, b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", BodyFraming::Length(0), true),
        (Method::Get, b"HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", BodyFraming::Length(0), true),
    ];
    for (method, buf, body, keep_alive) in cases {
        let h = complete(method, buf);
        assert_eq!(h.body, body, "{:?}", String::from_utf8_lossy(buf));
        assert_eq!(
            h.keep_alive,
            keep_alive,
            "{:?}",
            String::from_utf8_lossy(buf)
        );
        assert_eq!(h.head_len, buf.len());
    }
}

#[test]
fn status_line_fields() {
    let buf = b"HTTP/1.0 503 Service Unavailable\r\n\r\n";
    let h = complete(Method::Get, buf);
    assert_eq!(h.status, 503);
    assert_eq!(h.minor_version, 0);
    assert_eq!(h.reason.get(buf), b"Service Unavailable");
    let buf = b"HTTP/1.1 200\r\n\r\n";
    assert_eq!(complete(Method::Get, buf).reason.get(buf), b"");
}

#[test]
fn strictness_table() {
    use ResponseError as E;
    let cases: Vec<(&[u8], ResponseError)> = vec![
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            E::ContentLengthWithTransferEncoding,
        ),
        (
            b"HTTP/1.1 204 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            E::ContentLengthWithTransferEncoding,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n",
            E::ConflictingContentLength,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n",
            E::InvalidContentLength,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            E::RepeatedChunked,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: ,\r\n\r\n",
            E::InvalidTransferEncoding,
        ),
        (
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            E::TransferEncodingInHttp10,
        ),
        (b"HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n", E::BareLf),
        (b"HTTP/1.1 200 OK\nX: a\r\n\r\n", E::BareLf),
        (b"HTTP/1.1 200 OK\r\nX: a\rY: b\r\n\r\n", E::BareCr),
        (b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", E::ObsFold),
        (b"HTTP/1.1 200 OK\r\nX : a\r\n\r\n", E::InvalidHeaderName),
        (b"HTTP/1.1 200 OK\r\nX: a\0\r\n\r\n", E::InvalidHeaderValue),
        (b"HTTP/1.1 99 OK\r\n\r\n", E::InvalidStatus),
        (b"HTTP/1.1 600 OK\r\n\r\n", E::InvalidStatus),
        (b"HTTP/1.1 099 OK\r\n\r\n", E::InvalidStatus),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", E::InvalidStatus),
        (b"HTTP/1.1 2000 OK\r\n\r\n", E::InvalidStatusLine),
        (b"HTTP/1.1  200 OK\r\n\r\n", E::InvalidStatus),
        (b"HTTP/1.1 200 O\x01K\r\n\r\n", E::InvalidStatusLine),
        (b"HTTP/2.0 200 OK\r\n\r\n", E::UnsupportedVersion),
        (b"HTTP/1.1x200 OK\r\n\r\n", E::InvalidStatusLine),
        (b"HTTP/1 200 OK\r\n\r\n", E::InvalidVersion),
        (b"http/1.1 200 OK\r\n\r\n", E::InvalidVersion),
        (b"HTTP/1.1\r\n\r\n", E::InvalidStatus),
        (b"\r\nHTTP/1.1 200 OK\r\n\r\n", E::LeadingEmptyLine),
    ];
    for (buf, want) in cases {
        assert_eq!(
            parse_for(Method::Get, buf),
            Err(want),
            "{:?}",
            String::from_utf8_lossy(buf)
        );
        assert_eq!(want.status(), 502);
    }
}

#[test]
fn every_prefix_is_partial() {
    let buf: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n";
    for n in 0..buf.len() {
        assert_eq!(
            parse_for(Method::Get, &buf[..n]),
            Ok(Parsed::Partial),
            "prefix {n}"
        );
    }
}

#[test]
fn limits() {
    let limits = Limits {
        max_request_line: 12,
        max_header_bytes: 40,
        max_headers: 1,
    };
    let run = |b: &[u8]| parse_response(b, &limits, Method::Get, &mut Vec::new());
    assert_eq!(
        run(b"HTTP/1.1 200 OK\r\n\r\n"),
        Err(ResponseError::StatusLineTooLong)
    );
    assert!(matches!(
        run(b"HTTP/1.1 200\r\n\r\n"),
        Ok(Parsed::Complete(_))
    ));
    assert_eq!(
        run(b"HTTP/1.1 200\r\nA: 1\r\nB: 2\r\n\r\n"),
        Err(ResponseError::TooManyHeaders)
    );
    assert_eq!(
        run(b"HTTP/1.1 200\r\nA: 0123456789012345678901234567890"),
        Err(ResponseError::HeadTooLarge)
    );
}
