//! A minimal blocking HTTP/1.1 client: sends raw bytes or simple requests over one keep-alive connection and reads
//! complete responses (Content-Length, chunked, or until-close bodies).

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::wire::{chunked, Conn, Framing, Head, MAX_HEAD};
use crate::IO_TIMEOUT;

/// A complete response as the client saw it.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub head: Head,
    pub body: Vec<u8>,
    pub framing: Framing,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.head.header_all(name)
    }

    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.head.has_token(name, token)
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `x-upstream` header the test upstreams put on every response ("" when absent).
    pub fn upstream(&self) -> &str {
        self.header("x-upstream").unwrap_or("")
    }
}

/// A request body and how to frame it.
#[derive(Clone, Copy, Debug)]
pub enum Body<'a> {
    Empty,
    Length(&'a [u8]),
    /// Data and the chunk size to split it into.
    Chunked(&'a [u8], usize),
}

/// One client connection.
pub struct Client {
    pub conn: Conn,
    pub addr: SocketAddr,
}

impl Client {
    /// Connects (with a timeout) or panics with the reason.
    pub fn connect(addr: SocketAddr) -> Client {
        Client::try_connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
    }

    pub fn try_connect(addr: SocketAddr) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        Ok(Client {
            conn: Conn::new(stream),
            addr,
        })
    }

    /// Writes raw bytes or panics.
    pub fn send(&mut self, bytes: &[u8]) {
        self.conn
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("write {} bytes to {}: {e}", bytes.len(), self.addr));
    }

    /// Serializes a request head (and body) the way a well-behaved client would.
    pub fn encode(
        method: &str,
        path: &str,
        host: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Vec<u8> {
        let mut out = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n").into_bytes();
        for (name, value) in headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        match body {
            Body::Empty => out.extend_from_slice(b"\r\n"),
            Body::Length(data) => {
                out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", data.len()).as_bytes());
                out.extend_from_slice(data);
            }
            Body::Chunked(data, size) => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                out.extend_from_slice(&chunked(data, size));
            }
        }
        out
    }

    /// Sends a request and reads its final response. Large requests are written from a second thread so that a
    /// response the proxy sends early (for example 413) is read rather than deadlocking against a full socket.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        host: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Response {
        let bytes = Client::encode(method, path, host, headers, body);
        self.try_exchange(method, &bytes)
            .unwrap_or_else(|e| panic!("{method} {path} (host {host}) via {}: {e}", self.addr))
    }

    /// `GET path` with just a Host header.
    pub fn get(&mut self, path: &str, host: &str) -> Response {
        self.request("GET", path, host, &[], Body::Empty)
    }

    /// Writes `bytes` (concurrently with reading when large) and reads the final response to `method`.
    pub fn try_exchange(&mut self, method: &str, bytes: &[u8]) -> io::Result<Response> {
        if bytes.len() <= 256 * 1024 {
            self.conn.write_all(bytes)?;
            return self.try_read_response(method);
        }
        let mut writer = self.conn.stream.try_clone()?;
        std::thread::scope(|s| {
            let handle = s.spawn(move || io::Write::write_all(&mut writer, bytes));
            let response = self.try_read_response(method);
            let written = handle
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("writer thread panicked")));
            match (response, written) {
                (Ok(r), _) => Ok(r),
                (Err(e), Err(w)) => Err(io::Error::new(
                    e.kind(),
                    format!("{e} (and writing the request failed: {w})"),
                )),
                (Err(e), Ok(())) => Err(e),
            }
        })
    }

    /// Reads the next final response, skipping interim 1xx responses other than 101.
    pub fn try_read_response(&mut self, method: &str) -> io::Result<Response> {
        loop {
            let r = self.try_read_any_response(method)?;
            if (100..200).contains(&r.status) && r.status != 101 {
                continue;
            }
            return Ok(r);
        }
    }

    /// Reads the next response, interim (1xx) ones included.
    pub fn try_read_any_response(&mut self, method: &str) -> io::Result<Response> {
        let raw = self.conn.read_head(MAX_HEAD)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a response head",
            )
        })?;
        let head = Head::parse(&raw)?;
        let mut parts = head.start_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        let status: u16 = parts.next().unwrap_or("").parse().unwrap_or(0);
        if !version.starts_with("HTTP/1.") || !(100..600).contains(&status) {
            return Err(crate::wire::invalid(format!(
                "bad status line {:?}",
                head.start_line
            )));
        }
        let framing = head.response_framing(method, status)?;
        let body = self.conn.read_body(framing)?;
        Ok(Response {
            status,
            head,
            body,
            framing,
        })
    }

    /// Reads the next final response or panics.
    pub fn read_response(&mut self) -> Response {
        self.try_read_response("GET")
            .unwrap_or_else(|e| panic!("read response from {}: {e}", self.addr))
    }

    /// Reads exactly `n` raw bytes (buffered ones first) or panics.
    pub fn read_exact(&mut self, n: usize) -> Vec<u8> {
        self.conn
            .read_exact_vec(n)
            .unwrap_or_else(|e| panic!("read {n} raw bytes from {}: {e}", self.addr))
    }

    /// Whether the peer closed the connection (end of stream or reset) within `within`, with no further bytes.
    /// Unexpected bytes make it panic with them.
    pub fn closed_within(&mut self, within: Duration) -> bool {
        if !self.conn.buffered().is_empty() {
            panic!(
                "expected the connection to close, but it has unread bytes: {:?}",
                self.buffered_text()
            );
        }
        let deadline = Instant::now() + within;
        let _ = self
            .conn
            .stream
            .set_read_timeout(Some(within.max(Duration::from_millis(1))));
        let result = loop {
            match self.conn.fill() {
                Ok(0) => break true,
                Ok(_) => panic!(
                    "expected the connection to close, but got bytes: {:?}",
                    self.buffered_text()
                ),
                Err(e) if e.kind() == io::ErrorKind::Interrupted && Instant::now() < deadline => {
                    continue
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break false
                }
                Err(_) => break true, // reset or similar: closed too
            }
        };
        let _ = self.conn.stream.set_read_timeout(Some(IO_TIMEOUT));
        result
    }

    fn buffered_text(&self) -> String {
        let b = self.conn.buffered();
        String::from_utf8_lossy(&b[..b.len().min(400)]).into_owned()
    }

    pub fn shutdown_write(&self) {
        self.conn
            .shutdown_write()
            .unwrap_or_else(|e| panic!("shutdown(Write) on {}: {e}", self.addr));
    }
}

/// One request on a fresh connection.
pub fn get(addr: SocketAddr, host: &str, path: &str) -> Response {
    Client::connect(addr).get(path, host)
}

/// Sends raw bytes on a fresh connection and reads one final response (`Err` when none comes).
pub fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> (Client, io::Result<Response>) {
    let mut c = Client::connect(addr);
    let r = c.try_exchange("GET", bytes);
    (c, r)
}
