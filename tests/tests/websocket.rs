//! `Upgrade: websocket`: the handshake reaches the upstream with its upgrade headers, the 101 reaches the client,
//! and afterwards the connection is a raw byte relay in both directions (frames are echoed byte for byte).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use ringmesh_tests::{
    addr, both_drivers, free_port, pattern, Checksum, Client, HttpUpstream, Proxy,
};

fn ws_proxy(driver: &str, up: &HttpUpstream) -> (Proxy, SocketAddr) {
    let port = free_port();
    let proxy = Proxy::start(
        driver,
        &format!(
            r#"
[[listener]]
name = "edge"
bind = "127.0.0.1:{port}"
protocol = "http"

[[listener.route]]
cluster = "ws"

[[cluster]]
name = "ws"
endpoints = ["{}"]
"#,
            up.addr
        ),
    );
    (proxy, addr(port))
}

/// A masked client frame (RFC 6455 §5.2).
fn frame(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

const UPGRADE: &[u8] =
    b"GET /chat/ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Performs the upgrade on `c` and checks both sides of the handshake.
fn upgrade(c: &mut Client, up: &HttpUpstream) {
    c.send(UPGRADE);
    let r = c
        .try_read_any_response("GET")
        .expect("response to the upgrade request");
    assert_eq!(
        r.status,
        101,
        "upgrade answered with {} {:?}",
        r.status,
        r.body_str()
    );
    assert!(
        r.has_token("upgrade", "websocket"),
        "101 without Upgrade: websocket: {:?}",
        r.head
    );
    assert!(
        r.has_token("connection", "upgrade"),
        "101 without Connection: upgrade: {:?}",
        r.head
    );
    assert!(
        r.header("sec-websocket-accept").is_some(),
        "101 lost Sec-WebSocket-Accept: {:?}",
        r.head
    );
    let seen = up.last().head;
    assert!(
        seen.has_token("upgrade", "websocket"),
        "upstream did not get Upgrade: {:?}",
        seen.start_line
    );
    assert!(
        seen.has_token("connection", "upgrade"),
        "upstream did not get Connection: upgrade"
    );
    assert_eq!(
        seen.header("sec-websocket-key"),
        Some("dGhlIHNhbXBsZSBub25jZQ==")
    );
    // The upstream speaks first: its frame must arrive without the client sending anything.
    assert_eq!(c.read_exact(7), b"\x81\x05hello", "server's first frame");
}

fn echo_frames(driver: &str) {
    let up = HttpUpstream::start("ws");
    let (_proxy, listener) = ws_proxy(driver, &up);
    let mut c = Client::connect(listener);
    upgrade(&mut c, &up);

    // Several small frames in one write.
    let mut burst = frame(0x1, b"one", [1, 2, 3, 4]);
    burst.extend(frame(0x1, b"two two", [9, 8, 7, 6]));
    burst.extend(frame(0x2, &[0, 1, 2, 3, 255], [0xaa, 0xbb, 0xcc, 0xdd]));
    burst.extend(frame(0x9, b"ping", [5, 5, 5, 5]));
    c.send(&burst);
    assert_eq!(c.read_exact(burst.len()), burst, "small frames echoed");

    // Frames one at a time, each answered before the next is sent.
    for i in 0..20u8 {
        let f = frame(
            0x1,
            format!("message {i}").as_bytes(),
            [i, i + 1, i + 2, i + 3],
        );
        c.send(&f);
        assert_eq!(c.read_exact(f.len()), f, "frame {i} echoed");
    }

    // One 300 KiB binary frame (bigger than any socket buffer) written from a second thread while reading.
    let big = frame(0x2, &pattern(300 * 1024, 4), [7, 7, 7, 7]);
    let mut writer = c.conn.stream.try_clone().unwrap();
    let to_send = big.clone();
    let w = std::thread::spawn(move || std::io::Write::write_all(&mut writer, &to_send));
    let got = c.read_exact(big.len());
    w.join().unwrap().expect("write big frame");
    assert_eq!(
        Checksum::of(&got),
        Checksum::of(&big),
        "300 KiB frame echoed"
    );

    // Close: client shuts down its side; the upstream's EOF comes back through the relay.
    c.send(&frame(0x8, &[0x03, 0xe8], [1, 1, 1, 1]));
    assert_eq!(c.read_exact(8), frame(0x8, &[0x03, 0xe8], [1, 1, 1, 1]));
    c.shutdown_write();
    assert!(
        c.closed_within(Duration::from_secs(5)),
        "relay not closed after both sides finished"
    );
    assert_eq!(up.connections(), 1);
}

/// A keep-alive connection that served a normal request can then upgrade.
fn upgrade_after_keepalive(driver: &str) {
    let up = HttpUpstream::start("ws");
    let (_proxy, listener) = ws_proxy(driver, &up);
    let mut c = Client::connect(listener);
    let r = c.get("/plain", "h");
    assert_eq!(r.status, 200);
    upgrade(&mut c, &up);
    let f = frame(0x1, b"after keep-alive", [3, 1, 4, 1]);
    c.send(&f);
    assert_eq!(c.read_exact(f.len()), f);
}

/// An upstream that answers an upgrade request with a normal response: no relay starts, HTTP continues.
fn upgrade_declined(driver: &str) {
    let up = HttpUpstream::start("ws");
    let (_proxy, listener) = ws_proxy(driver, &up);
    let mut c = Client::connect(listener);
    c.send(b"GET /plain HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    let r = c.read_response();
    assert_eq!((r.status, r.body_str().as_str()), (200, "ws GET /plain"));
    let r = c.get("/plain2", "h");
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (200, "ws GET /plain2"),
        "HTTP continues after a declined upgrade"
    );
}

both_drivers!(echo_frames, upgrade_after_keepalive, upgrade_declined);
