//! The HTTP/1.1 keep-alive client side: the target URL, one connection, one request
//! at a time, responses framed by Content-Length, chunked encoding or close.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use monoio::net::TcpStream;

use crate::wire::{has_token, parse_len, BufStream};

/// Longest response head or chunk-size line accepted.
const MAX_HEAD: usize = 64 * 1024;

/// Where the load goes: a resolved address plus what to put in the request line.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// `Host` header value, as written in the URL.
    pub host: String,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Target {
    /// Parses `http://host[:port][/path]` and resolves the host.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url:?}: only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("{url:?}: missing host"));
        }
        let with_port = if authority.ends_with(']') || !authority.contains(':') {
            format!("{authority}:80")
        } else {
            authority.to_string()
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("{url:?}: cannot resolve {with_port}: {e}"))?
            .next()
            .ok_or_else(|| format!("{url:?}: {with_port} resolves to no address"))?;
        Ok(Self {
            addr,
            host: authority.to_string(),
            path: path.to_string(),
        })
    }

    /// The request every connection sends, built once.
    pub fn request_bytes(&self) -> Vec<u8> {
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ringmesh-loadgen\r\nAccept: */*\r\n\r\n",
            self.path, self.host
        )
        .into_bytes()
    }
}

/// Why a request got no complete response.
#[derive(Debug)]
pub enum ReqError {
    Io(io::Error),
    /// The peer closed before the response was complete.
    Closed,
    /// The response was not valid HTTP/1.1.
    Protocol(String),
}

impl fmt::Display for ReqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReqError::Io(e) => write!(f, "io: {e}"),
            ReqError::Closed => f.write_str("connection closed mid-response"),
            ReqError::Protocol(m) => write!(f, "bad response: {m}"),
        }
    }
}

impl From<io::Error> for ReqError {
    fn from(e: io::Error) -> Self {
        ReqError::Io(e)
    }
}

/// What a complete response told us.
#[derive(Debug, Clone, Copy)]
pub struct Response {
    pub status: u16,
    /// The server will close the connection (or did): do not reuse it.
    pub close: bool,
}

/// How the response body is delimited.
enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

/// One keep-alive connection to the target.
pub struct Conn {
    io: BufStream,
    req: Vec<u8>,
    /// Value of the last response's `x-upstream` header (empty when absent).
    pub upstream: Vec<u8>,
}

impl Conn {
    pub async fn connect(addr: SocketAddr, req: Vec<u8>) -> io::Result<Self> {
        let stream = TcpStream::connect_addr(addr).await?;
        Ok(Self {
            io: BufStream::new(stream),
            req,
            upstream: Vec::new(),
        })
    }

    /// Sends the request and reads the whole response (the body is discarded).
    pub async fn request(&mut self) -> Result<Response, ReqError> {
        let req = std::mem::take(&mut self.req);
        let (res, req) = self.io.write_all(req).await;
        self.req = req;
        res?;
        let (status, framing, close) = loop {
            if let Some(head) = self.parse_head()? {
                break head;
            }
            if self.io.buf.len() > MAX_HEAD {
                return Err(ReqError::Protocol("response head too large".into()));
            }
            if !self.io.fill().await? {
                return Err(ReqError::Closed);
            }
        };
        let mut close = close;
        match framing {
            Framing::None => {}
            Framing::Length(n) => {
                if !self.io.discard(n).await? {
                    return Err(ReqError::Closed);
                }
            }
            Framing::Chunked => self.skip_chunked().await?,
            Framing::UntilClose => {
                self.io.discard_to_eof().await?;
                close = true;
            }
        }
        Ok(Response { status, close })
    }

    /// Parses a complete head from the buffer and consumes it.
    fn parse_head(&mut self) -> Result<Option<(u16, Framing, bool)>, ReqError> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let head_len = match resp.parse(&self.io.buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(ReqError::Protocol(e.to_string())),
        };
        let status = resp.code.unwrap_or(0);
        let mut close = resp.version == Some(0);
        let mut length = None;
        let mut chunked = false;
        self.upstream.clear();
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                length = Some(
                    parse_len(h.value)
                        .ok_or_else(|| ReqError::Protocol("bad content-length".into()))?,
                );
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = has_token(h.value, "chunked");
            } else if h.name.eq_ignore_ascii_case("connection") {
                if has_token(h.value, "close") {
                    close = true;
                } else if has_token(h.value, "keep-alive") {
                    close = false;
                }
            } else if h.name.eq_ignore_ascii_case("x-upstream") {
                self.upstream.extend_from_slice(h.value);
            }
        }
        let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
            Framing::None
        } else if chunked {
            Framing::Chunked
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            Framing::UntilClose
        };
        self.io.buf.drain(..head_len);
        Ok(Some((status, framing, close)))
    }

    /// Skips a chunked body, trailers included.
    async fn skip_chunked(&mut self) -> Result<(), ReqError> {
        loop {
            let line = self.io.line(MAX_HEAD).await?.ok_or(ReqError::Closed)?;
            let size_text = self.io.buf[..line]
                .split(|&b| b == b';')
                .next()
                .unwrap_or_default();
            let size = std::str::from_utf8(size_text)
                .ok()
                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                .ok_or_else(|| ReqError::Protocol("bad chunk size".into()))?;
            self.io.buf.drain(..line + 2);
            if size == 0 {
                // Trailer lines until an empty line.
                loop {
                    let line = self.io.line(MAX_HEAD).await?.ok_or(ReqError::Closed)?;
                    self.io.buf.drain(..line + 2);
                    if line == 0 {
                        return Ok(());
                    }
                }
            }
            if !self.io.discard(size + 2).await? {
                return Err(ReqError::Closed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let t = Target::parse("http://127.0.0.1:8080/a?b=1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.addr.port(), 8080);
        assert_eq!(t.host, "127.0.0.1:8080");
        assert_eq!(t.path, "/a?b=1");
        let t = Target::parse("http://127.0.0.1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.addr.port(), 80);
        assert_eq!(t.path, "/");
        assert!(Target::parse("https://127.0.0.1/").is_err());
        assert!(Target::parse("http:///x").is_err());
    }
}
