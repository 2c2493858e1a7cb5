//! A TCP or TLS stream with a read buffer, shared by the client and the upstream:
//! fill the buffer, find a head in it, skip bodies without keeping them.

use std::io;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use monoio::BufResult;

/// A connection, with or without TLS. An enum rather than a generic parameter so
/// the request loop is compiled once; the branch costs nothing next to a syscall.
pub enum Stream {
    Plain(TcpStream),
    /// Boxed: a rustls session is a few KiB.
    TlsClient(Box<monoio_rustls::ClientTlsStream<TcpStream>>),
    TlsServer(Box<monoio_rustls::ServerTlsStream<TcpStream>>),
}

impl Stream {
    pub async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            Stream::TlsClient(s) => s.read(buf).await,
            Stream::TlsServer(s) => s.read(buf).await,
        }
    }

    pub async fn write_all<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.write_all(buf).await,
            Stream::TlsClient(s) => s.write_all(buf).await,
            Stream::TlsServer(s) => s.write_all(buf).await,
        }
    }
}

/// Read buffer growth step and initial capacity.
const CHUNK: usize = 64 * 1024;

pub struct BufStream {
    pub stream: Stream,
    /// Bytes read but not consumed yet; consumed bytes are drained from the front.
    pub buf: Vec<u8>,
}

impl BufStream {
    /// Wraps a stream whose TCP socket already has `TCP_NODELAY` (see [`nodelay`]).
    pub fn new(stream: Stream) -> Self {
        Self {
            stream,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    /// Appends at least one byte to `buf`; `Ok(false)` when the peer closed.
    pub async fn fill(&mut self) -> io::Result<bool> {
        if self.buf.len() == self.buf.capacity() {
            self.buf.reserve(CHUNK);
        }
        let len = self.buf.len();
        let buf = std::mem::take(&mut self.buf);
        let (res, slice) = self.stream.read(buf.slice_mut(len..)).await;
        self.buf = slice.into_inner();
        Ok(res? > 0)
    }

    /// Drops `n` bytes of the stream: first what is buffered, then reads that reuse
    /// the buffer from its start (a body is never kept whole).
    pub async fn discard(&mut self, mut n: usize) -> io::Result<bool> {
        let have = self.buf.len().min(n);
        self.buf.drain(..have);
        n -= have;
        while n > 0 {
            self.buf.clear();
            if !self.fill().await? {
                return Ok(false);
            }
            let got = self.buf.len().min(n);
            self.buf.drain(..got);
            n -= got;
        }
        Ok(true)
    }

    /// Reads and drops everything until the peer closes.
    pub async fn discard_to_eof(&mut self) -> io::Result<()> {
        loop {
            self.buf.clear();
            if !self.fill().await? {
                return Ok(());
            }
        }
    }

    /// Returns the length of the next CRLF-terminated line (without CRLF), reading
    /// more when needed; `None` when the peer closed or the line is longer than `max`.
    pub async fn line(&mut self, max: usize) -> io::Result<Option<usize>> {
        let mut searched = 0;
        loop {
            if let Some(pos) = find(&self.buf[searched..], b"\r\n") {
                return Ok(Some(searched + pos));
            }
            searched = self.buf.len().saturating_sub(1);
            if self.buf.len() > max || !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// Writes the whole buffer and hands it back for reuse.
    pub async fn write_all(&mut self, data: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let (res, data) = self.stream.write_all(data).await;
        (res.map(|_| ()), data)
    }
}

/// Small requests and responses: Nagle plus delayed ACK would add 40 ms.
pub fn nodelay(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses a decimal Content-Length value.
pub fn parse_len(v: &[u8]) -> Option<usize> {
    let s = std::str::from_utf8(v).ok()?.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Whether a comma-separated header value contains `token` (case-insensitive).
pub fn has_token(v: &[u8], token: &str) -> bool {
    v.split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_helpers() {
        assert_eq!(parse_len(b" 42 "), Some(42));
        assert_eq!(parse_len(b"-1"), None);
        assert_eq!(parse_len(b""), None);
        assert!(has_token(b"keep-alive, Close", "close"));
        assert!(!has_token(b"keep-alive", "close"));
        assert_eq!(find(b"ab\r\ncd", b"\r\n"), Some(2));
    }
}
