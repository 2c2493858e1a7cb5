//! The relay's own checks: each fault mode against a real upstream.

use super::*;
use crate::client::Client;
use crate::upstream::HttpUpstream;

fn relay() -> (HttpUpstream, FaultRelay) {
    let up = HttpUpstream::start("behind-relay");
    let relay = FaultRelay::start(up.addr);
    (up, relay)
}

#[test]
fn pass_through_counts() {
    let (up, relay) = relay();
    let mut c = Client::connect(relay.addr);
    for i in 0..3 {
        let r = c.get(&format!("/bytes/1000?i={i}"), "h");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, crate::pattern(1000, 7));
    }
    assert_eq!(up.requests(), 3);
    assert_eq!(relay.connections(), 1);
    assert_eq!(relay.active(), 1);
    // The relay counts what it forwarded after the write returns, which may be
    // after the client has read it: poll.
    crate::wait_until(
        Duration::from_secs(5),
        "the relay counted every byte",
        || relay.bytes_up() as usize == up.bytes() && relay.bytes_down() > 3000,
    );
    drop(c);
    crate::wait_until(Duration::from_secs(5), "connection closed", || {
        relay.active() == 0
    });
}

#[test]
fn delays() {
    let (_up, relay) = relay();
    relay.set_mode(Mode::Delay(Duration::from_millis(150)));
    let mut c = Client::connect(relay.addr);
    let t = Instant::now();
    assert_eq!(c.get("/a", "h").status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
    // Per connection: the second request on it is not delayed again.
    let t = Instant::now();
    assert_eq!(c.get("/b", "h").status, 200);
    assert!(
        t.elapsed() < Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
    relay.set_mode(Mode::DelayReads(Duration::from_millis(100)));
    let t = Instant::now();
    assert_eq!(c.get("/c", "h").status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(100),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn reset_mid_response() {
    let (_up, relay) = relay();
    relay.set_mode(Mode::ResetAfter(100));
    let mut c = Client::connect(relay.addr);
    c.send(b"GET /bytes/100000 HTTP/1.1\r\nHost: h\r\n\r\n");
    let mut got = 0;
    let mut buf = [0u8; 4096];
    let err = loop {
        match c.conn.stream.read(&mut buf) {
            Ok(0) => panic!("orderly close instead of a reset after {got} bytes"),
            Ok(n) => got += n,
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    assert!(got <= 100, "{got} bytes before the reset");
    assert_eq!(relay.resets(), 1);
}

#[test]
fn blackhole_refuse_stall_reopen() {
    let (up, relay) = relay();
    relay.set_mode(Mode::Blackhole);
    let mut c = Client::connect(relay.addr);
    c.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    let _ = c
        .conn
        .stream
        .set_read_timeout(Some(Duration::from_millis(300)));
    assert!(c.conn.fill().is_err(), "a black hole answered");
    assert_eq!(up.requests(), 0);
    assert!(relay.bytes_up() > 0);

    relay.set_mode(Mode::Pass);
    relay.refuse();
    let e = TcpStream::connect_timeout(&relay.addr, Duration::from_secs(1)).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");

    relay.stall_connects();
    let e = TcpStream::connect_timeout(&relay.addr, Duration::from_millis(300)).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");

    relay.reopen();
    assert_eq!(Client::connect(relay.addr).get("/x", "h").status, 200);
    assert_eq!(up.requests(), 1);
}

#[test]
fn trickle_and_kill() {
    let (_up, relay) = relay();
    let mut c = Client::connect(relay.addr);
    assert_eq!(c.get("/warm", "h").status, 200);
    relay.set_mode(Mode::Trickle(Duration::from_millis(2)));
    let t = Instant::now();
    let r = c.get("/bytes/50", "h");
    assert_eq!(r.body, crate::pattern(50, 7));
    // A head of >100 bytes and 50 body bytes, 2 ms apart.
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );

    relay.set_mode(Mode::Pass);
    assert_eq!(relay.kill(), 1);
    assert!(c.closed_within(Duration::from_secs(2)), "not reset");
    assert!(TcpStream::connect_timeout(&relay.addr, Duration::from_secs(1)).is_err());
}
