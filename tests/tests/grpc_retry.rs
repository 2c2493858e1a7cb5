//! Retries on gRPC status codes end to end: a gRPC failure is an HTTP 200 whose head carries `grpc-status`
//! (trailers-only). A route that lists `unavailable` retries such answers on the other endpoint, POST and all; a
//! code it does not list reaches the client as it was.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ringmesh_tests::{addr, both_drivers, free_port, Client, HttpUpstream, Proxy};

/// A unary gRPC call over HTTP/1.1: POST with a length-prefixed message.
fn call(client: &mut Client, method: &str) -> ringmesh_tests::Response {
    let message = b"\x00\x00\x00\x00\x03abc";
    let mut request = format!(
        "POST /demo.Echo/{method} HTTP/1.1\r\nHost: grpc.local\r\ncontent-type: application/grpc\r\n\
         te: trailers\r\ncontent-length: {}\r\n\r\n",
        message.len()
    )
    .into_bytes();
    request.extend_from_slice(message);
    client.try_exchange("POST", &request).unwrap()
}

fn grpc_status_retried(driver: &str) {
    let (down, up) = (HttpUpstream::start("down"), HttpUpstream::start("up"));
    down.set_grpc_status(14); // UNAVAILABLE
    let port = free_port();
    let _proxy = Proxy::builder(driver).workers(1).start(&format!(
        r#"
[[listener]]
name = "edge"
bind = "127.0.0.1:{port}"
protocol = "http"

[[listener.route]]
cluster = "grpc"
retry = {{ attempts = 2, on = ["unavailable", "resource-exhausted"] }}

[[cluster]]
name = "grpc"
endpoints = ["{}", "{}"]
"#,
        down.addr, up.addr
    ));
    let mut client = Client::connect(addr(port));
    for i in 0..20 {
        let response = call(&mut client, &format!("Say{i}"));
        assert_eq!(response.status, 200);
        assert_eq!(response.upstream(), "up", "call {i}: {:?}", response.head);
        assert_eq!(response.header("grpc-status"), None, "call {i}");
    }
    // Round robin: half of the first tries met the failing endpoint and were sent again, body and all.
    assert_eq!(down.requests(), 10);
    assert_eq!(up.requests(), 20);
    assert!(up
        .log()
        .iter()
        .all(|r| r.body_len == 8 && r.method == "POST"));

    // A code the route does not list is the call's answer.
    down.set_grpc_status(3); // INVALID_ARGUMENT
    let answers: Vec<_> = (0..4).map(|_| call(&mut client, "Bad")).collect();
    let failed: Vec<_> = answers
        .iter()
        .filter(|r| r.header("grpc-status") == Some("3"))
        .collect();
    assert_eq!(failed.len(), 2, "{answers:?}");
    assert!(failed
        .iter()
        .all(|r| r.upstream() == "down" && r.header("x-ringmesh-attempts").is_none()));
}

both_drivers!(grpc_status_retried);
