//! HTTP bodies and connections: Content-Length and chunked bodies both ways (0 B, 1 KiB, 10 MiB, checksummed),
//! mixed framings, HEAD/204, `Expect: 100-continue`, pipelining, client keep-alive, upstream pool reuse and
//! replacement of pooled connections the upstream closed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use ringmesh_tests::wire::Framing;
use ringmesh_tests::{
    addr, both_drivers, free_port, pattern, wait_until, Body, Checksum, Client, HttpUpstream, Proxy,
};

const SIZES: [usize; 3] = [0, 1024, 10 << 20];

fn http_proxy(driver: &str, up: &HttpUpstream) -> (Proxy, SocketAddr) {
    http_proxy_with(driver, up, 2, "", "")
}

/// A proxy with one catch-all route to `up`; extra lines go into the listener and cluster tables.
fn http_proxy_with(
    driver: &str,
    up: &HttpUpstream,
    workers: usize,
    listener_extra: &str,
    cluster_extra: &str,
) -> (Proxy, SocketAddr) {
    let port = free_port();
    let proxy = Proxy::builder(driver).workers(workers).start(&format!(
        r#"
[[listener]]
name = "edge"
bind = "127.0.0.1:{port}"
protocol = "http"
{listener_extra}

[[listener.route]]
cluster = "web"

[[cluster]]
name = "web"
endpoints = ["{}"]
{cluster_extra}
"#,
        up.addr
    ));
    (proxy, addr(port))
}

fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    assert_eq!(
        Checksum::of(got),
        Checksum::of(want),
        "{what}: body differs (got {} bytes)",
        got.len()
    );
}

/// Content-Length bodies in both directions on one keep-alive connection.
fn content_length_bodies(driver: &str) {
    let up = HttpUpstream::start("web");
    let (_proxy, listener) = http_proxy(driver, &up);
    let mut c = Client::connect(listener);
    for (i, size) in SIZES.into_iter().enumerate() {
        let data = pattern(size, i as u64 + 10);
        let r = c.request("POST", "/echo", "test", &[], Body::Length(&data));
        assert_eq!(
            r.status,
            200,
            "POST /echo with {size} B Content-Length body: {}",
            r.body_str()
        );
        assert_same(
            &format!("echo of {size} B Content-Length body"),
            &r.body,
            &data,
        );
        assert_eq!(
            up.last().body_len,
            size,
            "upstream received a body of the wrong size"
        );

        let r = c.get(&format!("/bytes/{size}"), "test");
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-length"),
            Some(size.to_string().as_str()),
            "GET /bytes/{size} length"
        );
        assert_same(&format!("GET /bytes/{size}"), &r.body, &pattern(size, 7));
    }
    assert_eq!(
        up.connections(),
        1,
        "one client connection should use one pooled upstream connection"
    );
}

/// Chunked bodies in both directions on one keep-alive connection.
fn chunked_bodies(driver: &str) {
    let up = HttpUpstream::start("web");
    let (_proxy, listener) = http_proxy(driver, &up);
    let mut c = Client::connect(listener);
    for (i, size) in SIZES.into_iter().enumerate() {
        let data = pattern(size, i as u64 + 20);
        let r = c.request("POST", "/echo", "test", &[], Body::Chunked(&data, 4096));
        assert_eq!(
            r.status,
            200,
            "POST /echo with {size} B chunked body: {}",
            r.body_str()
        );
        assert_same(&format!("echo of {size} B chunked body"), &r.body, &data);
        assert_eq!(
            up.last().body_len,
            size,
            "upstream received a body of the wrong size"
        );

        let r = c.get(&format!("/bytes/{size}?framing=chunked"), "test");
        assert_eq!(r.status, 200);
        assert_same(
            &format!("GET /bytes/{size} chunked"),
            &r.body,
            &pattern(size, 7),
        );
    }
}

/// Request and response framings that differ, and a close-delimited upstream response.
fn mixed_framings(driver: &str) {
    let up = HttpUpstream::start("web");
    let (_proxy, listener) = http_proxy(driver, &up);
    let data = pattern(300_000, 5);
    let mut c = Client::connect(listener);
    let r = c.request(
        "POST",
        "/echo?framing=chunked",
        "test",
        &[],
        Body::Length(&data),
    );
    assert_eq!(r.status, 200);
    assert_same("Content-Length request, chunked response", &r.body, &data);
    let r = c.request(
        "POST",
        "/echo?framing=cl",
        "test",
        &[],
        Body::Chunked(&data, 1000),
    );
    assert_eq!(r.status, 200);
    assert_same("chunked request, Content-Length response", &r.body, &data);
    // Odd chunk sizes and a chunk extension are legal and must not corrupt the body.
    let mut raw =
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    raw.extend_from_slice(b"3;ext=1\r\nabc\r\n1\r\nd\r\nA\r\n0123456789\r\n0\r\n\r\n");
    let r = c
        .try_exchange("POST", &raw)
        .expect("chunked request with extension");
    assert_eq!((r.status, r.body_str().as_str()), (200, "abcd0123456789"));

    // The upstream delimits this body by closing; the proxy must deliver all of it.
    let mut c = Client::connect(listener);
    let r = c.request(
        "POST",
        "/echo?framing=close",
        "test",
        &[],
        Body::Length(&data),
    );
    assert_eq!(r.status, 200);
    assert_same("close-delimited response", &r.body, &data);
}

/// HEAD and 204 responses have no body; the connection must stay usable after them.
fn bodiless_responses(driver: &str) {
    let up = HttpUpstream::start("web");
    let (_proxy, listener) = http_proxy(driver, &up);
    let mut c = Client::connect(listener);
    c.send(b"HEAD /bytes/100 HTTP/1.1\r\nHost: test\r\n\r\n");
    let r = c.try_read_response("HEAD").expect("HEAD response");
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(
        r.header("content-length"),
        Some("100"),
        "HEAD keeps the upstream's Content-Length"
    );
    let r = c.get("/status/204", "test");
    assert_eq!((r.status, r.body.len()), (204, 0));
    let r = c.get("/bytes/10", "test");
    assert_eq!(
        r.status, 200,
        "request after HEAD and 204 on the same connection"
    );
    assert_eq!(r.body, pattern(10, 7));
}

/// `Expect: 100-continue`: the client gets `100 Continue` before it sends the body, then the final response.
fn expect_continue(driver: &str) {
    let up = HttpUpstream::start("web");
    let (_proxy, listener) = http_proxy(driver, &up);
    let mut c = Client::connect(listener);
    let data = pattern(1024, 3);
    c.send(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 1024\r\nExpect: 100-continue\r\n\r\n");
    let interim = c
        .try_read_any_response("POST")
        .expect("interim response to Expect: 100-continue");
    assert_eq!(
        interim.status, 100,
        "expected 100 Continue before sending the body, got {interim:?}"
    );
    c.send(&data);
    let r = c
        .try_read_response("POST")
        .expect("final response after 100 Continue");
    assert_eq!(r.status, 200);
    assert_same("echo after 100-continue", &r.body, &data);
    let r = c.get("/", "test");
    assert_eq!(r.status, 200, "keep-alive request after an Expect exchange");
}

/// Three requests in one write are answered in order.
fn pipelined(driver: &str) {
    let up = HttpUpstream::start("web");
    let (_proxy, listener) = http_proxy(driver, &up);
    let mut c = Client::connect(listener);
    c.send(b"GET /bytes/5 HTTP/1.1\r\nHost: t\r\n\r\nPOST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabcGET /a HTTP/1.1\r\nHost: t\r\n\r\n");
    let r1 = c.read_response();
    let r2 = c.read_response();
    let r3 = c.read_response();
    assert_eq!((r1.status, r1.body.clone()), (200, pattern(5, 7)));
    assert_eq!((r2.status, r2.body_str().as_str()), (200, "abc"));
    assert_eq!((r3.status, r3.body_str().as_str()), (200, "web GET /a"));
}

/// 100 requests on one client connection use exactly one upstream connection.
fn keepalive_reuse(driver: &str) {
    let up = HttpUpstream::start("web");
    let (_proxy, listener) = http_proxy(driver, &up);
    let mut c = Client::connect(listener);
    for i in 0..100 {
        let r = if i % 2 == 0 {
            c.get(&format!("/n/{i}"), "test")
        } else {
            c.request(
                "POST",
                "/echo",
                "test",
                &[],
                Body::Length(format!("body {i}").as_bytes()),
            )
        };
        assert_eq!(r.status, 200, "request {i}");
        let want = if i % 2 == 0 {
            format!("web GET /n/{i}")
        } else {
            format!("body {i}")
        };
        assert_eq!(r.body_str(), want, "request {i}");
        assert!(
            r.framing != Framing::UntilClose,
            "request {i}: response not reusable (close-delimited)"
        );
    }
    assert_eq!(up.requests(), 100);
    assert_eq!(
        up.connections(),
        1,
        "100 requests on one keep-alive connection should share one upstream connection"
    );
}

/// A pooled upstream connection that the upstream closed while idle is replaced: the next request still succeeds.
fn dead_pooled_connection_replaced(driver: &str) {
    let up = HttpUpstream::start("web");
    let (_proxy, listener) = http_proxy(driver, &up);
    // Same client connection throughout, so the same worker and the same pool.
    let mut c = Client::connect(listener);
    for round in 1..=3 {
        let r = c.get("/close", "test");
        assert_eq!(r.status, 200, "round {round}: /close");
        wait_until(
            Duration::from_secs(5),
            "the upstream closed its connection",
            || up.closed() == round,
        );
        let r = c.get(&format!("/after/{round}"), "test");
        assert_eq!(
            r.status,
            200,
            "round {round}: request after the pooled connection died: {}",
            r.body_str()
        );
        assert_eq!(r.body_str(), format!("web GET /after/{round}"));
    }
    // Same with a POST body, which must be replayed intact on the replacement connection.
    let r = c.get("/close", "test");
    assert_eq!(r.status, 200);
    wait_until(
        Duration::from_secs(5),
        "the upstream closed its connection",
        || up.closed() == 4,
    );
    let data = pattern(5000, 9);
    let r = c.request("POST", "/echo", "test", &[], Body::Length(&data));
    assert_eq!(
        r.status,
        200,
        "POST after the pooled connection died: {}",
        r.body_str()
    );
    assert_same("POST after pooled connection died", &r.body, &data);
    // The close-delimited response cannot be pooled either.
    let r = c.request(
        "POST",
        "/echo?framing=close",
        "test",
        &[],
        Body::Length(b"x"),
    );
    assert_eq!(r.status, 200);
    if r.framing == Framing::UntilClose {
        c = Client::connect(listener);
    }
    let r = c.get("/after/close-delimited", "test");
    assert_eq!(r.status, 200);
}

/// The request body is streamed: the upstream gets the head while the client still holds back half the body.
fn request_body_streamed(driver: &str) {
    let up = HttpUpstream::start("web");
    let (_proxy, listener) = http_proxy(driver, &up);
    let data = pattern(20_000, 8);
    let mut c = Client::connect(listener);
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 20000\r\n\r\n");
    c.send(&data[..10_000]);
    wait_until(
        Duration::from_secs(3),
        "the upstream got the head before the whole body was sent",
        || up.requests() == 1,
    );
    c.send(&data[10_000..]);
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert_same("streamed request body", &r.body, &data);

    // Same for a chunked body: first chunk sent, the rest held back.
    let mut c = Client::connect(listener);
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    wait_until(
        Duration::from_secs(3),
        "the upstream got the chunked head early",
        || up.requests() == 2,
    );
    c.send(b"6\r\n world\r\n0\r\n\r\n");
    let r = c.read_response();
    assert_eq!((r.status, r.body_str().as_str()), (200, "hello world"));
}

/// The response is streamed: the head and first bytes reach the client before the upstream finished the body.
fn response_streamed(driver: &str) {
    let up = HttpUpstream::start("web");
    let (_proxy, listener) = http_proxy(driver, &up);
    for query in ["", "?framing=chunked"] {
        let mut c = Client::connect(listener);
        let start = std::time::Instant::now();
        c.send(format!("GET /trickle/1500{query} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        let head = c
            .conn
            .read_head(1 << 16)
            .expect("response head")
            .expect("response head");
        let took = start.elapsed();
        assert!(
            took < Duration::from_millis(1000),
            "head of a trickled response{query} took {took:?}: buffered"
        );
        let head = ringmesh_tests::wire::Head::parse(&head).unwrap();
        let framing = head.response_framing("GET", 200).unwrap();
        let body = c.conn.read_body(framing).expect("trickled body");
        assert_eq!(body, b"helloworld", "trickled body{query}");
    }
}

/// An HTTP/1.0 client gets no chunked encoding (it could not decode it) and the connection closes afterwards.
fn http10_client(driver: &str) {
    let up = HttpUpstream::start("web");
    let (_proxy, listener) = http_proxy(driver, &up);
    let mut c = Client::connect(listener);
    c.send(b"GET /bytes/5000?framing=chunked HTTP/1.0\r\nHost: t\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert!(
        r.framing != Framing::Chunked,
        "chunked response to an HTTP/1.0 client: {:?}",
        r.head
    );
    assert_eq!(r.body, pattern(5000, 7));
    assert!(
        c.closed_within(Duration::from_secs(3)),
        "HTTP/1.0 connection without keep-alive not closed"
    );
}

/// `Connection: close` from the client: one response, then the proxy closes.
fn client_connection_close(driver: &str) {
    let up = HttpUpstream::start("web");
    let (_proxy, listener) = http_proxy(driver, &up);
    let mut c = Client::connect(listener);
    let r = c.request("GET", "/x", "t", &[("Connection", "close")], Body::Empty);
    assert_eq!(r.status, 200);
    assert!(
        c.closed_within(Duration::from_secs(3)),
        "connection not closed after Connection: close"
    );
    assert!(
        !up.last().head.has_token("connection", "close") || up.closed() == 1,
        "client's close leaked upstream"
    );
}

/// The listener's idle_timeout closes an idle keep-alive client connection.
fn client_idle_timeout(driver: &str) {
    let up = HttpUpstream::start("web");
    let (_proxy, listener) = http_proxy_with(driver, &up, 2, r#"idle_timeout = "300ms""#, "");
    let mut c = Client::connect(listener);
    assert_eq!(c.get("/x", "t").status, 200);
    let start = std::time::Instant::now();
    assert!(
        c.closed_within(Duration::from_secs(3)),
        "idle connection not closed (idle_timeout 300ms)"
    );
    assert!(
        start.elapsed() >= Duration::from_millis(200),
        "closed after only {:?}",
        start.elapsed()
    );
}

/// pool_idle_timeout closes idle pooled upstream connections.
fn pool_idle_timeout(driver: &str) {
    let up = HttpUpstream::start("web");
    let (_proxy, listener) = http_proxy_with(driver, &up, 2, "", r#"pool_idle_timeout = "200ms""#);
    let mut c = Client::connect(listener);
    assert_eq!(c.get("/x", "t").status, 200);
    wait_until(
        Duration::from_secs(3),
        "the idle pooled connection was closed",
        || up.closed() == 1,
    );
    assert_eq!(
        c.get("/y", "t").status,
        200,
        "request after the pool expired"
    );
    assert_eq!(up.connections(), 2);
}

/// max_idle_per_endpoint = 1: after three concurrent requests on one worker, two of the three upstream
/// connections are closed and the third is reused.
fn pool_max_idle(driver: &str) {
    let up = HttpUpstream::start("web");
    let (_proxy, listener) = http_proxy_with(driver, &up, 1, "", "max_idle_per_endpoint = 1");
    let threads: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(move || Client::connect(listener).get("/delay/300", "t").status)
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 200);
    }
    assert_eq!(
        up.connections(),
        3,
        "three concurrent requests need three upstream connections"
    );
    wait_until(
        Duration::from_secs(3),
        "two surplus pooled connections were closed",
        || up.closed() == 2,
    );
    assert_eq!(Client::connect(listener).get("/again", "t").status, 200);
    assert_eq!(
        up.connections(),
        3,
        "the one idle pooled connection was not reused"
    );
    assert_eq!(up.closed(), 2);
}

both_drivers!(
    content_length_bodies,
    chunked_bodies,
    mixed_framings,
    bodiless_responses,
    expect_continue,
    pipelined,
    keepalive_reuse,
    dead_pooled_connection_replaced,
    request_body_streamed,
    response_streamed,
    http10_client,
    client_connection_close,
    client_idle_timeout,
    pool_idle_timeout,
    pool_max_idle,
);
