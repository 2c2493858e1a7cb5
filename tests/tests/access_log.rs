//! The access log end to end (`--access-log FILE`): one JSON line per HTTP request, with the route, cluster,
//! endpoint and attempt count of forwarded requests, the status and detail of local answers (malformed requests
//! included), the TLS version and ALPN the client negotiated; one line per TCP connection with its byte counts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ringmesh_tests::tls::{Pki, TlsClient};
use ringmesh_tests::{
    addr, both_drivers, free_port, raw_exchange, wait_until, Client, HttpUpstream, Proxy, TcpMode,
    TcpUpstream,
};

/// The access-log lines that contain every one of `parts`.
fn lines_with(proxy: &Proxy, parts: &[&str]) -> Vec<String> {
    proxy
        .access_log()
        .into_iter()
        .filter(|line| parts.iter().all(|part| line.contains(part)))
        .collect()
}

fn wait_line(proxy: &Proxy, what: &str, parts: &[&str]) -> String {
    wait_until(Duration::from_secs(5), what, || {
        !lines_with(proxy, parts).is_empty()
    });
    lines_with(proxy, parts).remove(0)
}

fn http_requests_logged(driver: &str) {
    let pki = Pki::new("log");
    let cert = pki.server("edge", &["edge.example.com"]);
    let (good, bad) = (HttpUpstream::start("good"), HttpUpstream::start("bad"));
    bad.set_fail_percent(100);
    let (plain, tls) = (free_port(), free_port());
    let proxy = Proxy::builder(driver)
        .workers(1)
        .access_log()
        .start(&format!(
            r#"
[[listener]]
name = "plain"
bind = "127.0.0.1:{plain}"
protocol = "http"

[[listener.route]]
name = "flaky"
path_prefix = "/flaky/"
cluster = "web"
retry = {{ on = ["gateway-error"] }}

[[listener.route]]
name = "hello"
path = "/hello"
direct = {{ status = 200, body = "hi" }}

[[listener]]
name = "edge"
bind = "127.0.0.1:{tls}"
protocol = "https"
tls = {{ certificates = [{{ cert = "{}", key = "{}" }}], alpn = ["http/1.1"] }}

[[listener.route]]
name = "secure"
cluster = "good"

[[cluster]]
name = "web"
endpoints = ["{}", "{}"]

[[cluster]]
name = "good"
endpoints = ["{}"]
"#,
            cert.cert.display(),
            cert.key.display(),
            bad.addr,
            good.addr,
            good.addr,
        ));

    // Round robin over a failing and a good endpoint: every other request needs a second try.
    let mut client = Client::connect(addr(plain));
    for i in 0..4 {
        let response = client.get(&format!("/flaky/{i}"), "svc.local");
        assert_eq!(response.status, 200, "{}", response.body_str());
    }
    let retried = wait_line(
        &proxy,
        "a retried request logged",
        &["\"route\":\"flaky\"", "\"attempts\":2"],
    );
    for part in [
        "\"kind\":\"http\"",
        "\"listener\":\"plain\"",
        "\"method\":\"GET\"",
        "\"authority\":\"svc.local\"",
        "\"status\":200",
        "\"cluster\":\"web\"",
        &format!("\"endpoint\":\"{}\"", good.addr),
        "\"request_id\":\"",
        "\"duration_us\":",
    ] {
        assert!(retried.contains(part), "{part} missing from {retried}");
    }
    assert!(!retried.contains("tls_version"), "{retried}");
    wait_until(Duration::from_secs(5), "a line per request", || {
        lines_with(&proxy, &["\"route\":\"flaky\""]).len() == 4
    });

    assert_eq!(client.get("/hello", "svc.local").status, 200);
    let direct = wait_line(&proxy, "a direct response", &["\"path\":\"/hello\""]);
    assert!(
        direct.contains("\"detail\":\"direct_response\""),
        "{direct}"
    );
    assert!(direct.contains("\"bytes_sent\":2"), "{direct}");

    // A malformed request gets its line too: status and reason, no method.
    let (_, response) = raw_exchange(
        addr(plain),
        b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    );
    assert_eq!(response.unwrap().status, 400);
    let malformed = wait_line(
        &proxy,
        "a malformed request",
        &["\"detail\":\"bad_request\""],
    );
    assert!(malformed.contains("\"status\":400"), "{malformed}");
    assert!(!malformed.contains("\"method\""), "{malformed}");

    // TLS facts come from the client's handshake.
    let response = TlsClient::new(&pki.ca)
        .request(addr(tls), "edge.example.com", "GET", "/secure")
        .unwrap();
    assert_eq!(response.status, 200);
    let secure = wait_line(&proxy, "a TLS request", &["\"route\":\"secure\""]);
    assert_eq!(proxy.metric("ringmesh_access_log_dropped_total", &[]), 0.0);
    for part in [
        "\"listener\":\"edge\"",
        "\"tls_version\":\"TLSv1.3\"",
        "\"alpn\":\"http/1.1\"",
        "\"status\":200",
    ] {
        assert!(secure.contains(part), "{part} missing from {secure}");
    }
}

fn tcp_connections_logged(driver: &str) {
    let echo = TcpUpstream::start(TcpMode::Echo);
    let port = free_port();
    let proxy = Proxy::builder(driver)
        .workers(1)
        .access_log()
        .start(&format!(
            r#"
[[listener]]
name = "tcp-in"
bind = "127.0.0.1:{port}"
protocol = "tcp"
cluster = "echo"

[[cluster]]
name = "echo"
endpoints = ["{}"]
"#,
            echo.addr
        ));
    let mut stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    stream.write_all(&[7u8; 1000]).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    stream.read_to_end(&mut back).unwrap();
    assert_eq!(back.len(), 1000);
    let line = wait_line(&proxy, "the TCP connection logged", &["\"kind\":\"tcp\""]);
    for part in [
        "\"listener\":\"tcp-in\"",
        "\"cluster\":\"echo\"",
        &format!("\"endpoint\":\"{}\"", echo.addr),
        "\"bytes_received\":1000",
        "\"bytes_sent\":1000",
    ] {
        assert!(line.contains(part), "{part} missing from {line}");
    }
}

both_drivers!(http_requests_logged, tcp_connections_logged);
