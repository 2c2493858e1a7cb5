//! HTTP/1.1 wire pieces shared by the test client and the test upstream: a buffered connection, head parsing, body framing.
//!
//! This is deliberately small and strict about what *it* writes, and only as lenient as needed about what it
//! reads: it reads what the proxy emits, so anything odd the proxy sends shows up as a parse error in a test.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};

use crate::IO_TIMEOUT;

/// Largest head either side will read before giving up (the proxy's limits are far smaller).
pub const MAX_HEAD: usize = 1 << 20;

/// A TCP stream with a read-ahead buffer, so bytes that arrive after a head (a body, relayed frames) are kept.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    /// What `fill` reads into before appending to `buf`: zeroed once per connection, not once per read (in an
    /// unoptimized build, zeroing 64 KiB per read was most of the CPU time of a test upstream under load).
    scratch: Vec<u8>,
}

impl Conn {
    /// Wraps a connected stream and gives it read and write timeouts, so nothing in a test can hang forever.
    pub fn new(stream: TcpStream) -> Conn {
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_nodelay(true);
        Conn {
            stream,
            buf: Vec::with_capacity(16 * 1024),
            start: 0,
            scratch: vec![0; 64 * 1024],
        }
    }

    /// Bytes read from the socket but not consumed yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Takes all buffered bytes.
    pub fn take_buffered(&mut self) -> Vec<u8> {
        let out = self.buf[self.start..].to_vec();
        self.buf.clear();
        self.start = 0;
        out
    }

    fn consume(&mut self, n: usize) -> Vec<u8> {
        let out = self.buf[self.start..self.start + n].to_vec();
        self.start += n;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        out
    }

    /// Reads more bytes from the socket into the buffer; returns 0 at end of stream.
    pub fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let n = self.stream.read(&mut self.scratch)?;
        self.buf.extend_from_slice(&self.scratch[..n]);
        Ok(n)
    }

    /// Reads one head (through the blank line). `Ok(None)` when the stream ends before any byte of it.
    pub fn read_head(&mut self, max: usize) -> io::Result<Option<Vec<u8>>> {
        let mut searched = 0;
        loop {
            let avail = self.buffered();
            if let Some(pos) = find(&avail[searched..], b"\r\n\r\n") {
                return Ok(Some(self.consume(searched + pos + 4)));
            }
            searched = avail.len().saturating_sub(3);
            if avail.len() > max {
                return Err(invalid(format!("head longer than {max} bytes")));
            }
            if self.fill()? == 0 {
                if self.buffered().is_empty() {
                    return Ok(None);
                }
                let partial = String::from_utf8_lossy(self.buffered()).into_owned();
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("stream ended inside a head: {partial:?}"),
                ));
            }
        }
    }

    /// Reads exactly `n` bytes.
    pub fn read_exact_vec(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let have = self.buffered().len().min(n);
        let mut out = self.consume(have);
        out.reserve(n - have);
        let mut chunk = vec![0u8; 64 * 1024];
        while out.len() < n {
            let want = (n - out.len()).min(chunk.len());
            let got = self.stream.read(&mut chunk[..want])?;
            if got == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("stream ended after {} of {n} bytes", out.len()),
                ));
            }
            out.extend_from_slice(&chunk[..got]);
        }
        Ok(out)
    }

    /// Reads one line ending in CRLF and returns it without the CRLF.
    pub fn read_line(&mut self, max: usize) -> io::Result<Vec<u8>> {
        loop {
            if let Some(pos) = find(self.buffered(), b"\r\n") {
                let mut line = self.consume(pos + 2);
                line.truncate(pos);
                return Ok(line);
            }
            if self.buffered().len() > max {
                return Err(invalid(format!("line longer than {max} bytes")));
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "stream ended inside a line",
                ));
            }
        }
    }

    /// Reads a chunked body (with any trailers) and returns the decoded bytes.
    pub fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let line = self.read_line(4096)?;
            let text = String::from_utf8_lossy(&line);
            let size_text = text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| invalid(format!("bad chunk size line {text:?}")))?;
            if size == 0 {
                // Trailer section: header lines until an empty line.
                while !self.read_line(MAX_HEAD)?.is_empty() {}
                return Ok(out);
            }
            out.extend_from_slice(&self.read_exact_vec(size)?);
            if !self.read_line(2)?.is_empty() {
                return Err(invalid("chunk data not followed by CRLF".into()));
            }
        }
    }

    /// Reads until the peer closes its side.
    pub fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        let mut out = self.take_buffered();
        self.stream.read_to_end(&mut out)?;
        Ok(out)
    }

    /// Reads a body with the given framing.
    pub fn read_body(&mut self, framing: Framing) -> io::Result<Vec<u8>> {
        match framing {
            Framing::Empty => Ok(Vec::new()),
            Framing::Length(n) => self.read_exact_vec(n),
            Framing::Chunked => self.read_chunked(),
            Framing::UntilClose => self.read_to_end(),
        }
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    pub fn shutdown_write(&self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }
}

/// How a message body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

/// A parsed request or response head. Header names keep their case; lookups ignore it.
#[derive(Clone)]
pub struct Head {
    pub start_line: String,
    pub headers: Vec<(String, String)>,
    /// The head exactly as it came off the wire.
    pub raw: Vec<u8>,
}

impl std::fmt::Debug for Head {
    /// The head as text, which is what a failing test wants to show.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.raw))
    }
}

impl Head {
    /// Parses a head that ends in CRLF CRLF. Every line must end in CRLF and every header must have a colon.
    pub fn parse(raw: &[u8]) -> io::Result<Head> {
        let text = std::str::from_utf8(raw).map_err(|_| invalid("head is not UTF-8".into()))?;
        let body = text
            .strip_suffix("\r\n\r\n")
            .ok_or_else(|| invalid("head does not end in CRLF CRLF".into()))?;
        let mut lines = body.split("\r\n");
        let start_line = lines.next().unwrap_or("").to_string();
        if start_line.contains('\n') || start_line.contains('\r') {
            return Err(invalid(format!(
                "bare CR or LF in start line {start_line:?}"
            )));
        }
        let mut headers = Vec::new();
        for line in lines {
            if line.contains('\n') || line.contains('\r') {
                return Err(invalid(format!("bare CR or LF in header line {line:?}")));
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid(format!("header line without colon: {line:?}")))?;
            headers.push((name.to_string(), value.trim().to_string()));
        }
        Ok(Head {
            start_line,
            headers,
            raw: raw.to_vec(),
        })
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of a header, in order (one per field line).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether any comma-separated element of any line of the header equals `token` (case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.header_all(name)
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Body framing of a request with this head (a request without CL or TE has no body).
    pub fn request_framing(&self) -> io::Result<Framing> {
        if self.header("transfer-encoding").is_some() {
            return Ok(Framing::Chunked);
        }
        match self.header("content-length") {
            Some(v) => {
                let n = v
                    .parse()
                    .map_err(|_| invalid(format!("bad content-length {v:?}")))?;
                Ok(if n == 0 {
                    Framing::Empty
                } else {
                    Framing::Length(n)
                })
            }
            None => Ok(Framing::Empty),
        }
    }

    /// Body framing of a response with this head, given the request method and status.
    pub fn response_framing(&self, method: &str, status: u16) -> io::Result<Framing> {
        if method.eq_ignore_ascii_case("HEAD")
            || (100..200).contains(&status)
            || status == 204
            || status == 304
        {
            return Ok(Framing::Empty);
        }
        if self.header("transfer-encoding").is_some() {
            return if self.has_token("transfer-encoding", "chunked") {
                Ok(Framing::Chunked)
            } else {
                Ok(Framing::UntilClose)
            };
        }
        match self.header("content-length") {
            Some(v) => {
                Ok(Framing::Length(v.parse().map_err(|_| {
                    invalid(format!("bad content-length {v:?}"))
                })?))
            }
            None => Ok(Framing::UntilClose),
        }
    }
}

/// Encodes `data` as a chunked body with chunks of at most `chunk` bytes (plus the last chunk).
pub fn chunked(data: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / chunk.max(1) * 12 + 16);
    for piece in data.chunks(chunk.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}
