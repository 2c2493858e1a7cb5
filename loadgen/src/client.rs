//! The client side of one connection: connect (TCP, then TLS when asked), then one
//! request at a time: an HTTP/1.1 GET whose response is framed by Content-Length,
//! chunked encoding or close, or a fixed-size echo.

use std::fmt;
use std::io;
use std::sync::Arc;

use monoio::net::TcpStream;
use rustls::pki_types::ServerName;

use crate::target::{Proto, Target};
use crate::wire::{has_token, nodelay, parse_len, BufStream, Stream};

/// Longest response head or chunk-size line accepted.
const MAX_HEAD: usize = 64 * 1024;

/// What every connection of a run needs to connect, built once per worker.
#[derive(Clone)]
pub struct Dialer {
    pub target: Target,
    /// Set for `https://` and `tls://`.
    pub tls: Option<(monoio_rustls::TlsConnector, ServerName<'static>)>,
    /// The request (HTTP) or message (echo) every request writes.
    pub req: Vec<u8>,
}

impl Dialer {
    pub fn new(
        target: &Target,
        tls: Option<Arc<rustls::ClientConfig>>,
        size: usize,
    ) -> anyhow::Result<Self> {
        let tls = match tls {
            Some(cfg) => Some((
                monoio_rustls::TlsConnector::from(cfg),
                crate::tls::server_name(&target.hostname)?,
            )),
            None => None,
        };
        Ok(Self {
            target: target.clone(),
            tls,
            req: target.request_bytes(size),
        })
    }
}

/// Whether a connect error means this machine ran out of descriptors or local
/// ports: then the figures describe the generator, not the target.
pub fn is_local_exhaustion(e: &io::Error) -> bool {
    use nix::errno::Errno;
    e.raw_os_error().is_some_and(|n| {
        [Errno::EMFILE, Errno::ENFILE, Errno::EADDRNOTAVAIL].contains(&Errno::from_raw(n))
    })
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
    proto: Proto,
    req: Vec<u8>,
    /// Value of the last response's `x-upstream` header (empty when absent).
    pub upstream: Vec<u8>,
}

impl Conn {
    pub async fn connect(d: &Dialer) -> io::Result<Self> {
        let tcp = TcpStream::connect_addr(d.target.addr).await?;
        nodelay(&tcp);
        let stream = match &d.tls {
            None => Stream::Plain(tcp),
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(io::Error::from)?;
                Stream::TlsClient(Box::new(tls))
            }
        };
        Ok(Self {
            io: BufStream::new(stream),
            proto: d.target.proto,
            req: d.req.clone(),
            upstream: Vec::new(),
        })
    }

    /// Sends the request and reads the whole response (the body is discarded).
    pub async fn request(&mut self) -> Result<Response, ReqError> {
        let req = std::mem::take(&mut self.req);
        let (res, req) = self.io.write_all(req).await;
        let len = req.len();
        self.req = req;
        res?;
        if self.proto == Proto::Echo {
            if !self.io.discard(len).await? {
                return Err(ReqError::Closed);
            }
            return Ok(Response {
                status: 200,
                close: false,
            });
        }
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
    fn classifies_local_exhaustion() {
        for errno in [23, 24, 99] {
            assert!(is_local_exhaustion(&io::Error::from_raw_os_error(errno)));
        }
        // ECONNREFUSED is the target's answer, not ours.
        assert!(!is_local_exhaustion(&io::Error::from_raw_os_error(111)));
        assert!(!is_local_exhaustion(&io::Error::other("x")));
    }
}
