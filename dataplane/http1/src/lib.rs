//! Strict HTTP/1.1 codec for the dataplane: parses heads, frames bodies, rewrites heads; no IO.
//!
//! Everything here is synchronous and allocation-free on the hot path: parsers return
//! byte ranges ([`Span`]) into the caller's buffer and fill a caller-owned `Vec` of
//! [`HeaderSpan`]s, and the writers append to a caller-owned `Vec<u8>`.
//!
//! The parsers are deliberately strict (RFC 9112): every framing ambiguity that two
//! implementations could resolve differently is an error, because this crate sits in
//! front of arbitrary upstream servers and must never disagree with them about where
//! one request ends and the next begins.

mod chunked;
mod error;
mod fields;
mod fuzz;
mod method;
mod request;
mod response;
mod scan;
mod write;

#[cfg(test)]
mod tests;

pub use chunked::{ChunkError, ChunkLimits, ChunkProgress, ChunkedDecoder};
pub use error::{RequestError, ResponseError};
pub use fields::{connection_has_token, header_value};
pub use fuzz::fuzz_one;
pub use method::Method;
pub use request::{parse_request, RequestHead};
pub use response::{parse_response, ResponseHead};
pub use write::{
    reason_phrase, write_request_head, write_response_head, write_simple_response, HeadEdits,
};

/// Size limits applied while parsing a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line (or status line) accepted, excluding its CRLF.
    pub max_request_line: usize,
    /// Longest head accepted, start line and final CRLFCRLF included.
    pub max_header_bytes: usize,
    /// Most header fields accepted; values above [`MAX_HEADERS_CAP`] act as that cap.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8 * 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
        }
    }
}

/// Hard upper bound on header fields per head: the parser uses a stack array this large.
pub const MAX_HEADERS_CAP: usize = 256;

/// A byte range into the buffer that was parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    /// The bytes this span covers; empty if the span does not fit `buf` (never panics).
    pub fn get<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.start as usize..self.end as usize)
            .unwrap_or(&[])
    }

    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// Builds a span from `usize` offsets; `None` if they do not fit in `u32`, which the
    /// head limits make impossible in practice but which must not wrap silently.
    pub(crate) fn from_range(start: usize, end: usize) -> Option<Span> {
        Some(Span {
            start: u32::try_from(start).ok()?,
            end: u32::try_from(end).ok()?,
        })
    }
}

/// One header field; `value` has leading and trailing OWS removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeaderSpan {
    pub name: Span,
    pub value: Span,
}

/// Outcome of a parse that may need more bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<T> {
    Complete(T),
    /// The head is valid so far but incomplete: read more and parse again from byte 0.
    Partial,
}

/// How the message body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body at all.
    None,
    /// Exactly this many bytes follow the head (may be 0 when `Content-Length: 0` was sent).
    Length(u64),
    /// Chunked; use [`ChunkedDecoder`] to find the end.
    Chunked,
    /// Responses only: the body runs until the upstream closes the connection.
    UntilClose,
}
