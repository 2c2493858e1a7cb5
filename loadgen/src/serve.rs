//! The upstream used to measure proxies: a keep-alive HTTP/1.1 server that answers
//! every request `200` with a fixed body in one write (or a TCP echo server), with
//! an optional artificial delay on a share of requests.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use anyhow::Context as _;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

use crate::rt;
use crate::wire::{has_token, parse_len, BufStream};

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub workers: usize,
    pub body_size: usize,
    /// Sent back in `x-upstream`, so clients can tell upstreams apart.
    pub name: String,
    /// Delay `percent`% of requests by `delay`.
    pub delay: Option<(Duration, f64)>,
    /// Echo bytes instead of speaking HTTP.
    pub tcp: bool,
}

/// Longest request head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// Binds every worker's socket, then serves forever on worker threads.
pub fn serve(cfg: &ServeConfig) -> anyhow::Result<()> {
    let (_, handles) = start(cfg)?;
    for h in handles {
        match h.join() {
            Ok(r) => r??,
            Err(_) => anyhow::bail!("a serve worker panicked"),
        }
    }
    Ok(())
}

type Worker = std::thread::JoinHandle<std::io::Result<anyhow::Result<()>>>;

/// Binds every worker's socket and starts the worker threads; returns the bound
/// address (useful with port 0) and the threads.
pub fn start(cfg: &ServeConfig) -> anyhow::Result<(SocketAddr, Vec<Worker>)> {
    let workers = cfg.workers.max(1);
    let first =
        rt::reuseport_listener(cfg.listen).with_context(|| format!("binding {}", cfg.listen))?;
    // With port 0 the kernel picked one: the other workers join that port.
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..workers {
        listeners.push(rt::reuseport_listener(addr).with_context(|| format!("binding {addr}"))?);
    }
    let kind = if cfg.tcp { "tcp echo" } else { "http" };
    println!(
        "ringmesh-loadgen serve: {kind} on {addr}, {workers} worker(s), name {:?}, body {} B",
        cfg.name, cfg.body_size
    );
    let mut handles = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let cfg = cfg.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("serve-{i}"))
                .spawn(move || rt::block_on(worker(l, cfg, i as u64)))?,
        );
    }
    Ok((addr, handles))
}

async fn worker(
    std_listener: std::net::TcpListener,
    cfg: ServeConfig,
    seed: u64,
) -> anyhow::Result<()> {
    let listener = TcpListener::from_std(std_listener)?;
    let response = Rc::new(http_response(&cfg.name, cfg.body_size));
    let rng = Rc::new(Cell::new(0x9E37_79B9_7F4A_7C15 ^ (seed + 1)));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors or similar: back off instead of spinning.
                eprintln!("serve: accept: {e}");
                monoio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if cfg.tcp {
            monoio::spawn(echo(stream));
        } else {
            monoio::spawn(http_conn(stream, response.clone(), cfg.delay, rng.clone()));
        }
    }
}

/// The complete response (head and body), written with one send per request.
fn http_response(name: &str, body_size: usize) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {body_size}\r\nContent-Type: application/octet-stream\r\nx-upstream: {name}\r\n\r\n"
    )
    .into_bytes();
    r.resize(r.len() + body_size, b'x');
    r
}

const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// What a request head said about its body and the connection.
struct Head {
    len: usize,
    body: usize,
    close: bool,
}

fn parse_request(buf: &[u8]) -> Result<Option<Head>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let mut close = req.version == Some(0);
    let mut body = 0;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            body = parse_len(h.value).ok_or(())?;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked request bodies are not needed by any scenario.
            return Err(());
        } else if h.name.eq_ignore_ascii_case("connection") {
            if has_token(h.value, "close") {
                close = true;
            } else if has_token(h.value, "keep-alive") {
                close = false;
            }
        }
    }
    Ok(Some(Head { len, body, close }))
}

/// xorshift64: cheap, per worker, good enough to pick which requests to delay.
fn next_random(state: &Cell<u64>) -> u64 {
    let mut x = state.get();
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    state.set(x);
    x
}

async fn http_conn(
    stream: TcpStream,
    response: Rc<Vec<u8>>,
    delay: Option<(Duration, f64)>,
    rng: Rc<Cell<u64>>,
) {
    let mut io = BufStream::new(stream);
    let mut out = response.as_ref().clone();
    loop {
        let head = loop {
            match parse_request(&io.buf) {
                Ok(Some(h)) => break h,
                Ok(None) if io.buf.len() <= MAX_HEAD => {}
                _ => {
                    let _ = io.write_all(BAD_REQUEST.to_vec()).await;
                    return;
                }
            }
            match io.fill().await {
                Ok(true) => {}
                _ => return, // closed between requests, or reset
            }
        };
        io.buf.drain(..head.len);
        match io.discard(head.body).await {
            Ok(true) => {}
            _ => return,
        }
        if let Some((d, percent)) = delay {
            if (next_random(&rng) % 10_000) as f64 / 100.0 < percent {
                monoio::time::sleep(d).await;
            }
        }
        let (res, back) = io.write_all(out).await;
        out = back;
        if res.is_err() || head.close {
            return;
        }
    }
}

async fn echo(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (res, b) = stream.read(buf).await;
        buf = b;
        match res {
            Ok(n) if n > 0 => {}
            _ => return,
        }
        let (res, b) = stream.write_all(buf).await;
        buf = b;
        if res.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_request_heads() {
        let h = parse_request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(matches!(
            h,
            Ok(Some(Head {
                len: 27,
                body: 0,
                close: false
            }))
        ));
        let h = parse_request(
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        );
        assert!(matches!(
            h,
            Ok(Some(Head {
                body: 5,
                close: true,
                ..
            }))
        ));
        assert!(matches!(
            parse_request(b"GET / HTTP/1.0\r\n\r\n"),
            Ok(Some(Head { close: true, .. }))
        ));
        assert!(matches!(parse_request(b"GET / HTTP/1.1\r\nHo"), Ok(None)));
        assert!(parse_request(b"\x01\x02 nonsense\r\n\r\n").is_err());
    }

    #[test]
    fn response_has_the_body_size_and_name() {
        let r = http_response("blue", 10);
        let text = String::from_utf8_lossy(&r);
        assert!(text.contains("Content-Length: 10\r\n"));
        assert!(text.contains("x-upstream: blue\r\n"));
        assert!(text.ends_with("\r\n\r\nxxxxxxxxxx"));
    }
}
