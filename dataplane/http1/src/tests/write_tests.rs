//! Head writers: exact output bytes for requests, responses and local responses.

use crate::{
    parse_request, parse_response, write_request_head, write_response_head, write_simple_response,
    HeadEdits, Limits, Method, Parsed,
};

fn rewrite_request(buf: &[u8], edits: &HeadEdits<'_>) -> String {
    let mut headers = Vec::new();
    let Ok(Parsed::Complete(head)) = parse_request(buf, &Limits::default(), &mut headers) else {
        panic!("not complete");
    };
    let mut out = b"prefix|".to_vec();
    write_request_head(&mut out, buf, &head, &headers, edits);
    String::from_utf8(out).unwrap_or_default()
}

#[test]
fn request_head_rewrite_exact() {
    let buf = b"POST /p?q HTTP/1.0\r\nHost: a.example\r\nConnection: keep-alive, X-Secret, Content-Length\r\nKeep-Alive: 5\r\nX-Secret: s\r\nX-Forwarded-For: 1.1.1.1\r\nTE: trailers\r\nTrailer: X\r\nProxy-Connection: x\r\nContent-Length: 3\r\nX-Drop: d\r\nx-forwarded-for: 2.2.2.2\r\nUser-Agent: t\r\nX-Set: old\r\nUpgrade: h2c\r\n\r\n";
    let remove = vec!["x-drop".to_string()];
    let set = vec![("x-set".to_string(), "new".to_string())];
    let add = vec![("x-add".to_string(), "1".to_string())];
    let extra: Vec<(&str, &[u8])> = vec![("x-forwarded-proto", b"http"), ("via", b"1.1 ringmesh")];
    let edits = HeadEdits {
        remove: &remove,
        set: &set,
        add: &add,
        forwarded_for: Some("3.3.3.3"),
        extra: &extra,
        keep_upgrade: false,
        connection_close: true,
    };
    assert_eq!(
        rewrite_request(buf, &edits),
        "prefix|POST /p?q HTTP/1.1\r\n\
         Host: a.example\r\n\
         Content-Length: 3\r\n\
         User-Agent: t\r\n\
         x-set: new\r\n\
         x-add: 1\r\n\
         x-forwarded-for: 1.1.1.1, 2.2.2.2, 3.3.3.3\r\n\
         x-forwarded-proto: http\r\n\
         via: 1.1 ringmesh\r\n\
         connection: close\r\n\r\n"
    );
}

#[test]
fn request_head_minimal_and_upgrade() {
    let buf = b"get /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(
        rewrite_request(buf, &HeadEdits::default()),
        "prefix|get /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let buf = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    let edits = HeadEdits {
        keep_upgrade: true,
        forwarded_for: Some("10.0.0.1"),
        ..HeadEdits::default()
    };
    assert_eq!(
        rewrite_request(buf, &edits),
        "prefix|GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nx-forwarded-for: 10.0.0.1\r\nconnection: upgrade\r\n\r\n"
    );
    assert_eq!(
        rewrite_request(buf, &HeadEdits::default()),
        "prefix|GET /ws HTTP/1.1\r\nHost: a\r\n\r\n"
    );
}

#[test]
fn response_head_rewrite_exact() {
    let buf = b"HTTP/1.0 200\r\nContent-Length: 2\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nServer: up\r\n\r\n";
    let mut headers = Vec::new();
    let Ok(Parsed::Complete(head)) =
        parse_response(buf, &Limits::default(), Method::Get, &mut headers)
    else {
        panic!("not complete");
    };
    let extra: Vec<(&str, &[u8])> = vec![("x-request-id", b"abc")];
    let edits = HeadEdits {
        extra: &extra,
        ..HeadEdits::default()
    };
    let mut out = Vec::new();
    write_response_head(&mut out, buf, &head, &headers, &edits);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: up\r\nx-request-id: abc\r\n\r\n"
    );
    let buf = b"HTTP/1.1 404 Nope\r\nTransfer-Encoding: chunked\r\n\r\n";
    let Ok(Parsed::Complete(head)) =
        parse_response(buf, &Limits::default(), Method::Get, &mut headers)
    else {
        panic!("not complete");
    };
    out.clear();
    let edits = HeadEdits {
        connection_close: true,
        ..HeadEdits::default()
    };
    write_response_head(&mut out, buf, &head, &headers, &edits);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "HTTP/1.1 404 Nope\r\nTransfer-Encoding: chunked\r\nconnection: close\r\n\r\n"
    );
}

#[test]
fn simple_responses() {
    let mut out = Vec::new();
    write_simple_response(
        &mut out,
        502,
        "text/plain",
        b"bad gateway\n",
        true,
        &[("x-ringmesh", b"1")],
    );
    assert_eq!(
        String::from_utf8_lossy(&out),
        "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\ncontent-length: 12\r\nx-ringmesh: 1\r\nconnection: close\r\n\r\nbad gateway\n"
    );
    out.clear();
    write_simple_response(&mut out, 204, "text/plain", b"ignored", false, &[]);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "HTTP/1.1 204 No Content\r\n\r\n"
    );
    out.clear();
    write_simple_response(&mut out, 200, "", b"", false, &[]);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
    );
}

#[test]
fn writer_does_not_reallocate_a_warm_buffer() {
    let buf = b"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n";
    let mut headers = Vec::new();
    let Ok(Parsed::Complete(head)) = parse_request(buf, &Limits::default(), &mut headers) else {
        panic!("not complete");
    };
    let mut out = Vec::with_capacity(1024);
    let ptr = out.as_ptr();
    for _ in 0..10 {
        out.clear();
        write_request_head(&mut out, buf, &head, &headers, &HeadEdits::default());
    }
    assert_eq!(out.as_ptr(), ptr);
}

#[test]
fn absolute_form_is_written_as_origin_form() {
    let cases: &[(&[u8], &str, &str, Option<&str>)] = &[
        (
            b"GET http://a.example/p/q?x=1 HTTP/1.1\r\nHost: a.example\r\n\r\n",
            "GET /p/q?x=1 HTTP/1.1\r\n",
            "/p/q",
            Some("x=1"),
        ),
        (
            b"GET http://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n",
            "GET / HTTP/1.1\r\n",
            "/",
            None,
        ),
        (
            b"GET HTTP://a.example?x HTTP/1.1\r\nHost: a.example\r\n\r\n",
            "GET /?x HTTP/1.1\r\n",
            "/",
            Some("x"),
        ),
        (
            b"OPTIONS http://a.example:81 HTTP/1.1\r\nHost: a.example\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\n",
            "*",
            None,
        ),
        (
            b"OPTIONS * HTTP/1.1\r\nHost: a.example\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\n",
            "*",
            None,
        ),
        (
            b"GET /a?b?c HTTP/1.1\r\nHost: a.example\r\n\r\n",
            "GET /a?b?c HTTP/1.1\r\n",
            "/a",
            Some("b?c"),
        ),
    ];
    for (buf, line, path, query) in cases {
        let mut headers = Vec::new();
        let Ok(Parsed::Complete(head)) = parse_request(buf, &Limits::default(), &mut headers)
        else {
            panic!("not complete");
        };
        let mut out = Vec::new();
        write_request_head(&mut out, buf, &head, &headers, &HeadEdits::default());
        assert!(
            out.starts_with(line.as_bytes()),
            "{}",
            String::from_utf8_lossy(&out)
        );
        assert_eq!(head.path(buf), path.as_bytes());
        assert_eq!(head.query(buf), query.map(str::as_bytes));
    }
}
