//! A real HTTP/1.1 keep-alive upstream on std threads whose behaviour is chosen by the request path, and which counts
//! what it saw (connections, requests, bytes) so tests can assert "the upstream saw zero requests".
//!
//! The action is the first path segment that names one (so route prefixes can come before it):
//!
//! | path | response |
//! |---|---|
//! | `…/echo` | the request body back; framing like the request, or `?framing=cl|chunked|close` |
//! | `…/bytes/N` | N bytes of [`crate::pattern`]`(N, seed)`, `?seed=S` (default 7), `?framing=` as above |
//! | `…/headers` | the request head exactly as received, as the body |
//! | `…/delay/MS` | waits MS milliseconds, then `slept MS` |
//! | `…/trickle/MS` | body `helloworld`: head and `hello` at once, `world` MS milliseconds later (`?framing=chunked`) |
//! | `…/status/CODE` | that status, body `status CODE` |
//! | `…/close` | a normal response, then the connection is closed (without `Connection: close`) |
//! | `…/hop` | a response carrying hop-by-hop headers the proxy must remove |
//! | `…/ws` | `101` upgrade, a server text frame `hello`, then every received byte echoed raw |
//! | `…/bad/KIND` | a broken response: `garbage`, `no-response`, `truncated-head`, `no-colon`, `bad-length`, `bad-status` |
//! | anything else | `200`, body `NAME METHOD PATH` |
//!
//! Every normal response carries `x-upstream: NAME`, `x-upstream-remove-me: yes` and `x-upstream-set-me: original`.
//!
//! [`Knobs`] change the behaviour of every request while the upstream runs (all off by default): a share of the
//! requests answered 503, a delay before every response, and the status of `GET /health`.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::wire::{chunked, Conn, Framing, Head, MAX_HEAD};

/// How long an upstream connection may sit idle before the upstream closes it.
pub const UPSTREAM_IDLE: Duration = Duration::from_secs(120);

/// What one upstream has seen so far.
#[derive(Default)]
pub struct Stats {
    pub connections: AtomicUsize,
    pub closed: AtomicUsize,
    pub requests: AtomicUsize,
    pub bytes: AtomicUsize,
}

/// Behaviour switches a test can flip while the upstream runs; all off (0) by default.
#[derive(Default)]
pub struct Knobs {
    /// Percentage (0 to 100) of requests answered `503` (body `injected 503`) instead of what their path asks
    /// for, chosen pseudo-randomly (so failures come in runs, as real ones do). `/health` is exempt.
    pub fail_percent: AtomicU32,
    /// Milliseconds to wait before answering each request (`/health` included).
    pub delay_ms: AtomicU64,
    /// When not 0: `/health` (exactly that path) is answered with this status, body `health STATUS`.
    pub health_status: AtomicU32,
    /// When not 0: every request except `/health` is answered as a failed gRPC call, trailers-only: 200 with
    /// `content-type: application/grpc` and this `grpc-status`.
    pub grpc_status: AtomicU32,
    /// xorshift64 state for `fail_percent`.
    rng: AtomicU64,
}

impl Knobs {
    /// Whether this request should fail, given `fail_percent`.
    fn roll_failure(&self) -> bool {
        let percent = self.fail_percent.load(Ordering::SeqCst);
        if percent == 0 {
            return false;
        }
        let next = |x: u64| {
            let mut x = if x == 0 { 0x2545_F491_4F6C_DD1D } else { x };
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let prev = self
            .rng
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |x| Some(next(x)))
            .unwrap_or(0);
        next(prev) % 100 < u64::from(percent)
    }
}

/// One request as the upstream received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    pub head: Head,
    pub body_len: usize,
    /// Index of the connection (0-based, in accept order) it arrived on.
    pub connection: usize,
}

/// A running HTTP upstream; stops accepting when dropped.
pub struct HttpUpstream {
    pub name: String,
    pub addr: SocketAddr,
    stats: Arc<Stats>,
    log: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
    knobs: Arc<Knobs>,
}

impl HttpUpstream {
    /// Binds an ephemeral loopback port and serves on threads.
    pub fn start(name: &str) -> HttpUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let up = HttpUpstream {
            name: name.to_string(),
            addr,
            stats: Arc::default(),
            log: Arc::default(),
            stop: Arc::default(),
            knobs: Arc::default(),
        };
        let (stats, log, stop, name, knobs) = (
            up.stats.clone(),
            up.log.clone(),
            up.stop.clone(),
            up.name.clone(),
            up.knobs.clone(),
        );
        std::thread::Builder::new()
            .name(format!("upstream-{name}"))
            .spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let index = stats.connections.fetch_add(1, Ordering::SeqCst);
                    let (stats, log, name, knobs) =
                        (stats.clone(), log.clone(), name.clone(), knobs.clone());
                    std::thread::spawn(move || {
                        let conn = Conn::new(stream);
                        // Longer than any test: an idle pooled connection is closed by the proxy, never by us.
                        let _ = conn.stream.set_read_timeout(Some(UPSTREAM_IDLE));
                        let _ = serve(conn, index, &name, &stats, &log, &knobs);
                        stats.closed.fetch_add(1, Ordering::SeqCst);
                    });
                }
            })
            .expect("spawn upstream thread");
        up
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.stats.connections.load(Ordering::SeqCst)
    }

    /// Connections that have ended (either side closed).
    pub fn closed(&self) -> usize {
        self.stats.closed.load(Ordering::SeqCst)
    }

    /// Request heads received (counted as soon as a complete head arrives, even an unparsable one).
    pub fn requests(&self) -> usize {
        self.stats.requests.load(Ordering::SeqCst)
    }

    /// Raw bytes received on all connections (heads and bodies).
    pub fn bytes(&self) -> usize {
        self.stats.bytes.load(Ordering::SeqCst)
    }

    /// Every request received, in order of arrival.
    pub fn log(&self) -> Vec<Recorded> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The switches that change this upstream's behaviour while it runs.
    pub fn knobs(&self) -> &Knobs {
        &self.knobs
    }

    /// Answers `percent` % of the requests (pseudo-randomly chosen, `/health` exempt) with 503 from now on.
    pub fn set_fail_percent(&self, percent: u32) {
        assert!(percent <= 100, "fail percent {percent} > 100");
        self.knobs.fail_percent.store(percent, Ordering::SeqCst);
    }

    /// Waits `delay` before answering each request from now on.
    pub fn set_delay(&self, delay: Duration) {
        self.knobs
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Answers `/health` with `status` from now on (`0`: the default, a normal 200 response).
    pub fn set_health_status(&self, status: u16) {
        self.knobs
            .health_status
            .store(u32::from(status), Ordering::SeqCst);
    }

    /// Answers every request (`/health` exempt) as a gRPC call failed with `code` from now on (`0`: off).
    pub fn set_grpc_status(&self, code: u32) {
        self.knobs.grpc_status.store(code, Ordering::SeqCst);
    }

    /// Requests received so far whose path is not `/health`.
    pub fn requests_except_health(&self) -> usize {
        self.log
            .lock()
            .map(|l| {
                l.iter()
                    .filter(|r| r.target.split('?').next() != Some("/health"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// The most recent request, or a panic when there is none.
    pub fn last(&self) -> Recorded {
        self.log()
            .pop()
            .unwrap_or_else(|| panic!("upstream {} received no request", self.name))
    }
}

impl Drop for HttpUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// The action a path asks for, and its argument segment.
fn action(path: &str) -> (&str, &str) {
    const ACTIONS: [&str; 10] = [
        "echo", "bytes", "headers", "delay", "trickle", "status", "close", "hop", "ws", "bad",
    ];
    let segments: Vec<&str> = path.split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        if ACTIONS.contains(seg) {
            return (seg, segments.get(i + 1).copied().unwrap_or(""));
        }
    }
    ("default", "")
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
}

fn serve(
    mut conn: Conn,
    index: usize,
    name: &str,
    stats: &Stats,
    log: &Mutex<Vec<Recorded>>,
    knobs: &Knobs,
) -> io::Result<()> {
    loop {
        // Count bytes as they are consumed from the socket, whatever happens next.
        let raw = match conn.read_head(MAX_HEAD) {
            Ok(Some(raw)) => raw,
            Ok(None) => return Ok(()),
            Err(e) => {
                stats
                    .bytes
                    .fetch_add(conn.buffered().len(), Ordering::SeqCst);
                return Err(e);
            }
        };
        stats.bytes.fetch_add(raw.len(), Ordering::SeqCst);
        stats.requests.fetch_add(1, Ordering::SeqCst);
        let head = Head::parse(&raw)?;
        let mut parts = head.start_line.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        if head.has_token("expect", "100-continue") {
            conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let req_framing = head.request_framing()?;
        let body = conn.read_body(req_framing)?;
        stats.bytes.fetch_add(body.len(), Ordering::SeqCst);
        if let Ok(mut l) = log.lock() {
            l.push(Recorded {
                method: method.clone(),
                target: target.clone(),
                head: head.clone(),
                body_len: body.len(),
                connection: index,
            });
        }

        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let framing_choice = query_param(query, "framing");
        let delay_ms = knobs.delay_ms.load(Ordering::SeqCst);
        if delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(delay_ms));
        }
        let health_status = knobs.health_status.load(Ordering::SeqCst);
        let forced = if path == "/health" {
            (health_status != 0).then(|| (health_status as u16, format!("health {health_status}")))
        } else {
            knobs
                .roll_failure()
                .then(|| (503, "injected 503".to_string()))
        };
        let grpc_status = knobs.grpc_status.load(Ordering::SeqCst);
        let (act, arg) = match forced {
            Some(_) => ("forced", ""),
            None if grpc_status != 0 && path != "/health" => ("grpc-failure", ""),
            None => action(path),
        };
        match act {
            "forced" => {
                let (code, body) = forced.unwrap_or((500, String::new()));
                respond(&mut conn, &method, name, code, &[], body.as_bytes(), "cl")?;
            }
            "grpc-failure" => {
                let code = grpc_status.to_string();
                let headers = [
                    ("content-type", "application/grpc"),
                    ("grpc-status", code.as_str()),
                    ("grpc-message", "injected"),
                ];
                respond(&mut conn, &method, name, 200, &headers, b"", "cl")?;
            }
            "echo" => {
                let framing = match framing_choice {
                    Some(f) => f,
                    None if req_framing == Framing::Chunked => "chunked",
                    None => "cl",
                };
                if respond(&mut conn, &method, name, 200, &[], &body, framing)? {
                    return Ok(());
                }
            }
            "bytes" => {
                let n: usize = arg.parse().unwrap_or(0);
                let seed = query_param(query, "seed")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(7);
                if respond(
                    &mut conn,
                    &method,
                    name,
                    200,
                    &[],
                    &crate::pattern(n, seed),
                    framing_choice.unwrap_or("cl"),
                )? {
                    return Ok(());
                }
            }
            "headers" => {
                respond(&mut conn, &method, name, 200, &[], &raw, "cl")?;
            }
            "delay" => {
                let ms: u64 = arg.parse().unwrap_or(0);
                std::thread::sleep(Duration::from_millis(ms));
                respond(
                    &mut conn,
                    &method,
                    name,
                    200,
                    &[],
                    format!("slept {ms}").as_bytes(),
                    "cl",
                )?;
            }
            "trickle" => {
                let ms: u64 = arg.parse().unwrap_or(0);
                let chunked = framing_choice == Some("chunked");
                let (head, first, rest): (&str, &[u8], &[u8]) = if chunked {
                    (
                        "Transfer-Encoding: chunked",
                        b"5\r\nhello\r\n",
                        b"5\r\nworld\r\n0\r\n\r\n",
                    )
                } else {
                    ("Content-Length: 10", b"hello", b"world")
                };
                let mut out =
                    format!("HTTP/1.1 200 OK\r\nx-upstream: {name}\r\n{head}\r\n\r\n").into_bytes();
                out.extend_from_slice(first);
                conn.write_all(&out)?;
                std::thread::sleep(Duration::from_millis(ms));
                conn.write_all(rest)?;
            }
            "status" => {
                let code: u16 = arg.parse().unwrap_or(500);
                respond(
                    &mut conn,
                    &method,
                    name,
                    code,
                    &[],
                    format!("status {code}").as_bytes(),
                    "cl",
                )?;
            }
            "close" => {
                respond(
                    &mut conn,
                    &method,
                    name,
                    200,
                    &[],
                    b"closing after this",
                    "cl",
                )?;
                return Ok(());
            }
            "hop" => {
                let hop = [
                    ("Connection", "keep-alive, x-hop-resp"),
                    ("Keep-Alive", "timeout=5"),
                    ("x-hop-resp", "secret"),
                    ("Proxy-Connection", "keep-alive"),
                ];
                respond(&mut conn, &method, name, 200, &hop, b"hop", "cl")?;
            }
            "ws" => return websocket(conn, name, &head),
            "bad" => return bad_response(conn, arg),
            _ => {
                let body = format!("{name} {method} {target}");
                respond(&mut conn, &method, name, 200, &[], body.as_bytes(), "cl")?;
            }
        }
        if head.has_token("connection", "close") {
            return Ok(());
        }
    }
}

/// Writes a response with the chosen framing (`cl`, `chunked`, `close`); returns true when the connection must close
/// afterwards. HEAD requests and 204/304 get no body.
fn respond(
    conn: &mut Conn,
    method: &str,
    name: &str,
    status: u16,
    extra: &[(&str, &str)],
    body: &[u8],
    framing: &str,
) -> io::Result<bool> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nx-upstream: {name}\r\nx-upstream-remove-me: yes\r\nx-upstream-set-me: original\r\n",
        reason(status)
    )
    .into_bytes();
    for (n, v) in extra {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    if method == "HEAD" || status == 204 || status == 304 {
        // No body on the wire; HEAD still announces the length a GET would have.
        if method == "HEAD" {
            out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        conn.write_all(&out)?;
        return Ok(false);
    }
    let close = match framing {
        "chunked" => {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            out.extend_from_slice(&chunked(body, 16 * 1024));
            false
        }
        "close" => {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(body);
            true
        }
        _ => {
            out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            out.extend_from_slice(body);
            false
        }
    };
    conn.write_all(&out)?;
    if close {
        conn.shutdown_write()?;
    }
    Ok(close)
}

fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

/// Answers an upgrade with 101, sends one server frame, then echoes raw bytes until the peer closes.
fn websocket(mut conn: Conn, name: &str, head: &Head) -> io::Result<()> {
    if !head.has_token("upgrade", "websocket") || !head.has_token("connection", "upgrade") {
        respond(
            &mut conn,
            "GET",
            name,
            400,
            &[],
            b"not an upgrade request",
            "cl",
        )?;
        return Ok(());
    }
    let mut out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nx-upstream: {name}\r\n\r\n"
    )
    .into_bytes();
    out.extend_from_slice(&[0x81, 0x05]);
    out.extend_from_slice(b"hello");
    conn.write_all(&out)?;
    let early = conn.take_buffered();
    if !early.is_empty() {
        conn.write_all(&early)?;
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = io::Read::read(&mut conn.stream, &mut buf)?;
        if n == 0 {
            return conn.shutdown_write();
        }
        conn.write_all(&buf[..n])?;
    }
}

/// Sends one of several broken responses, then closes.
fn bad_response(mut conn: Conn, kind: &str) -> io::Result<()> {
    let bytes: &[u8] = match kind {
        "garbage" => b"NOT HTTP AT ALL\r\n\r\n",
        "no-response" => b"",
        "truncated-head" => b"HTTP/1.1 200 OK\r\nContent-Le",
        "no-colon" => b"HTTP/1.1 200 OK\r\nthis line has no colon\r\nContent-Length: 2\r\n\r\nok",
        "bad-length" => b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nok",
        "bad-status" => b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
        _ => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    };
    conn.write_all(bytes)?;
    conn.shutdown_write()?;
    // Let the proxy read everything before the socket goes away (avoids a reset racing the bytes).
    let _ = conn.read_to_end();
    Ok(())
}
