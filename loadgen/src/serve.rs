//! The upstream used to measure proxies: a keep-alive HTTP/1.1 server that answers
//! every request `200` with a fixed body in one write (or a TCP echo server),
//! optionally over TLS, with the faults of `faults` (delays, a stall window,
//! 503s, varying sizes) when asked.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use monoio::net::{TcpListener, TcpStream};

use crate::faults::Faults;
use crate::rt;
use crate::schedule::Rng;
use crate::timer::Timer;
use crate::wire::{has_token, nodelay, parse_len, BufStream, Stream};

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub workers: usize,
    pub body_size: usize,
    /// Sent back in `x-upstream`, so clients can tell upstreams apart.
    pub name: String,
    /// Delays, stalls, errors and sizes to inject (HTTP only).
    pub faults: Faults,
    /// Echo bytes instead of speaking HTTP.
    pub tcp: bool,
    /// Terminate TLS with this configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
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
    let kind = match (cfg.tcp, cfg.tls.is_some()) {
        (true, false) => "tcp echo",
        (true, true) => "tls echo",
        (false, false) => "http",
        (false, true) => "https",
    };
    println!(
        "ringmesh-loadgen serve: {kind} on {addr}, {workers} worker(s), name {:?}, body {} B",
        cfg.name, cfg.body_size
    );
    let mut handles = Vec::new();
    // Stall windows count from here, the moment the port is bound.
    let started = Instant::now();
    for (i, l) in listeners.into_iter().enumerate() {
        let cfg = cfg.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("serve-{i}"))
                .spawn(move || rt::block_on(worker(l, cfg, i as u64, started)))?,
        );
    }
    Ok((addr, handles))
}

/// What the connections of one serve worker share.
struct Shared {
    cfg: ServeConfig,
    response: Vec<u8>,
    rng: Cell<Rng>,
    started: Instant,
}

async fn worker(
    std_listener: std::net::TcpListener,
    cfg: ServeConfig,
    seed: u64,
    started: Instant,
) -> anyhow::Result<()> {
    let listener = TcpListener::from_std(std_listener)?;
    let acceptor = cfg.tls.clone().map(monoio_rustls::TlsAcceptor::from);
    let shared = Rc::new(Shared {
        response: http_response(&cfg.name, cfg.body_size),
        cfg,
        rng: Cell::new(Rng::new(0x9E37_79B9_7F4A_7C15 ^ (seed + 1))),
        started,
    });
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
        nodelay(&stream);
        let shared = shared.clone();
        let acceptor = acceptor.clone();
        monoio::spawn(async move {
            let Some(stream) = handshake(stream, acceptor.as_ref()).await else {
                return;
            };
            if shared.cfg.tcp {
                echo(stream).await;
            } else {
                http_conn(stream, &shared).await;
            }
        });
    }
}

/// Terminates TLS when configured; `None` when the handshake failed.
async fn handshake(
    tcp: TcpStream,
    acceptor: Option<&monoio_rustls::TlsAcceptor>,
) -> Option<Stream> {
    match acceptor {
        None => Some(Stream::Plain(tcp)),
        Some(a) => match a.accept(tcp).await {
            Ok(tls) => Some(Stream::TlsServer(Box::new(tls))),
            Err(_) => None,
        },
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

const UNAVAILABLE: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nx-upstream: injected\r\n\r\n";

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

async fn http_conn(stream: Stream, shared: &Shared) {
    let mut io = BufStream::new(stream);
    let mut out = shared.response.clone();
    let faults = !shared.cfg.faults.is_none();
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
        if faults {
            let mut rng = shared.rng.get();
            let d =
                shared
                    .cfg
                    .faults
                    .decide(shared.started.elapsed(), shared.cfg.body_size, &mut rng);
            shared.rng.set(rng);
            if !d.wait.is_zero() {
                // monoio's sleep rounds up to whole milliseconds; an injected
                // 1 ms delay must be 1 ms, or tests of the generator's
                // precision would measure the upstream's instead.
                let at = Instant::now() + d.wait;
                let _ = Timer::new().wait_until(at).await;
            }
            out.clear();
            if d.error {
                out.extend_from_slice(UNAVAILABLE);
            } else if let Some(size) = d.body {
                out = http_response(&shared.cfg.name, size);
            } else {
                out.extend_from_slice(&shared.response);
            }
        }
        let (res, back) = io.write_all(out).await;
        out = back;
        if res.is_err() || head.close {
            return;
        }
    }
}

async fn echo(stream: Stream) {
    let mut stream = stream;
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
