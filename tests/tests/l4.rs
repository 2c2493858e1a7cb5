//! L4 (`protocol = "tcp"`) listener: byte-exact relay both ways, half-close, many connections, dead upstream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ringmesh_tests::{
    addr, both_drivers, free_port, pattern, Checksum, Proxy, TcpMode, TcpUpstream, IO_TIMEOUT,
};

const MIB: usize = 1 << 20;

fn tcp_proxy(driver: &str, upstream: SocketAddr) -> (Proxy, SocketAddr) {
    tcp_proxy_with(driver, upstream, "")
}

/// A tcp listener to `upstream`; `extra` goes into the listener table (e.g. `splice = true`).
fn tcp_proxy_with(driver: &str, upstream: SocketAddr, extra: &str) -> (Proxy, SocketAddr) {
    let port = free_port();
    let proxy = Proxy::start(
        driver,
        &format!(
            r#"
[[listener]]
name = "l4"
bind = "127.0.0.1:{port}"
protocol = "tcp"
cluster = "backend"
{extra}

[[cluster]]
name = "backend"
connect_timeout = "1s"
endpoints = ["{upstream}"]
"#
        ),
    );
    (proxy, addr(port))
}

fn connect(to: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&to, IO_TIMEOUT).expect("connect to proxy");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// Writes `data` from a second thread (then shuts down the write side) while reading everything back until EOF.
fn send_and_read_all(stream: TcpStream, data: Vec<u8>) -> Vec<u8> {
    let mut writer = stream.try_clone().unwrap();
    let w = std::thread::spawn(move || {
        for piece in data.chunks(16 * 1024) {
            writer.write_all(piece)?;
        }
        writer.shutdown(Shutdown::Write)
    });
    let mut reader = stream;
    let mut got = Vec::new();
    let read = reader.read_to_end(&mut got);
    let written = w.join().expect("writer thread");
    written.expect("write through the tcp listener");
    read.unwrap_or_else(|e| {
        panic!(
            "read back through the tcp listener after {} bytes: {e}",
            got.len()
        )
    });
    got
}

/// 1 MiB echoed through the proxy while it is still being sent; the client's EOF reaches the upstream, whose EOF
/// comes back.
fn echo_1mib(driver: &str) {
    echo_1mib_with(driver, "");
}

fn echo_1mib_splice(driver: &str) {
    echo_1mib_with(driver, "splice = true");
}

fn echo_1mib_with(driver: &str, extra: &str) {
    let up = TcpUpstream::start(TcpMode::Echo);
    let (_proxy, listener) = tcp_proxy_with(driver, up.addr, extra);
    let data = pattern(MIB, 1);
    let got = send_and_read_all(connect(listener), data.clone());
    assert_eq!(
        Checksum::of(&got),
        Checksum::of(&data),
        "echoed bytes differ from the bytes sent"
    );
    assert_eq!(up.connections(), 1);
    ringmesh_tests::wait_until(
        Duration::from_secs(5),
        "the upstream finished its connection",
        || up.received().len() == 1,
    );
    assert_eq!(
        up.received()[0],
        Checksum::of(&data),
        "upstream received different bytes"
    );
}

/// Half-close: the client sends 1 MiB and shuts down its write side; the upstream sees EOF only then, and *after*
/// that still sends 1 MiB back through the half-open connection.
fn half_close(driver: &str) {
    half_close_with(driver, "");
}

fn half_close_splice(driver: &str) {
    half_close_with(driver, "splice = true");
}

fn half_close_with(driver: &str, extra: &str) {
    let reply_seed = 99;
    let up = TcpUpstream::start(TcpMode::SinkThenSend {
        n: MIB,
        seed: reply_seed,
    });
    let (_proxy, listener) = tcp_proxy_with(driver, up.addr, extra);
    let data = pattern(MIB, 2);
    let got = send_and_read_all(connect(listener), data.clone());
    assert_eq!(got.len(), MIB, "reply length after half-close");
    assert_eq!(
        Checksum::of(&got),
        Checksum::of(&pattern(MIB, reply_seed)),
        "reply bytes differ"
    );
    ringmesh_tests::wait_until(
        Duration::from_secs(5),
        "the upstream finished its connection",
        || up.received().len() == 1,
    );
    assert_eq!(
        up.received()[0],
        Checksum::of(&data),
        "upstream received different bytes before EOF"
    );
}

/// The upstream must not see EOF before the client half-closes: the reply only comes after the client's shutdown.
fn no_early_eof(driver: &str) {
    let up = TcpUpstream::start(TcpMode::SinkThenSend { n: 10, seed: 3 });
    let (_proxy, listener) = tcp_proxy(driver, up.addr);
    let mut s = connect(listener);
    s.write_all(b"partial").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Ok(n) => panic!(
            "got {n} bytes / EOF before the client half-closed: the upstream saw a premature EOF"
        ),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "unexpected error while the connection should idle: {e}"
        ),
    }
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, pattern(10, 3));
}

/// Eight concurrent connections, each with its own data, all relayed intact (connections land on both workers).
fn concurrent_connections(driver: &str) {
    let up = TcpUpstream::start(TcpMode::Echo);
    let (proxy, listener) = tcp_proxy(driver, up.addr);
    let handles: Vec<_> = (0..8u64)
        .map(|i| {
            std::thread::spawn(move || {
                let data = pattern(64 * 1024 + i as usize * 1000, 100 + i);
                let got = send_and_read_all(connect(listener), data.clone());
                assert_eq!(
                    Checksum::of(&got),
                    Checksum::of(&data),
                    "connection {i}: echoed bytes differ"
                );
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }
    assert_eq!(up.connections(), 8);
    proxy.wait_metric(
        "ringmesh_downstream_connections_total",
        &[("listener", "l4")],
        8.0,
    );
    proxy.wait_metric(
        "ringmesh_downstream_connections_active",
        &[("listener", "l4")],
        0.0,
    );
    proxy.wait_metric(
        "ringmesh_upstream_connections_total",
        &[("cluster", "backend")],
        8.0,
    );
}

/// The tcp listener's idle_timeout closes a relay on which nothing moves.
fn idle_timeout(driver: &str) {
    let up = TcpUpstream::start(TcpMode::Echo);
    let (_proxy, listener) = tcp_proxy_with(driver, up.addr, r#"idle_timeout = "300ms""#);
    let mut s = connect(listener);
    s.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).unwrap();
    let start = Instant::now();
    let mut rest = Vec::new();
    let r = s.read_to_end(&mut rest);
    let took = start.elapsed();
    assert!(
        r.is_ok()
            || !matches!(
                r.as_ref().map_err(|e| e.kind()),
                Err(std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
            ),
        "idle relay not closed within {IO_TIMEOUT:?} (idle_timeout 300ms)"
    );
    assert!(rest.is_empty(), "unexpected bytes on an idle relay");
    assert!(
        took >= Duration::from_millis(200),
        "idle relay closed after only {took:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "idle relay closed only after {took:?} (idle_timeout 300ms)"
    );
}

/// A cluster whose only endpoint refuses connections: the client's connection is closed promptly.
fn upstream_refused(driver: &str) {
    let dead = addr(free_port());
    let (_proxy, listener) = tcp_proxy(driver, dead);
    let mut s = connect(listener);
    let start = Instant::now();
    let _ = s.write_all(b"hello");
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("got {n} bytes from a relay to a dead upstream"),
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "connection to a dead upstream was not closed within {IO_TIMEOUT:?}"
        ),
    }
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "closing took {:?}",
        start.elapsed()
    );
}

both_drivers!(
    echo_1mib_splice,
    half_close_splice,
    idle_timeout,
    echo_1mib,
    half_close,
    no_early_eof,
    concurrent_connections,
    upstream_refused
);
