//! Request heads: the request line, target forms and the request-specific field rules.

use crate::fields::{self, is_tchar, TransferCoding};
use crate::scan;
use crate::{BodyFraming, HeaderSpan, Limits, Method, Parsed, RequestError, Span};

/// A parsed request head. Spans index into the buffer given to [`parse_request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHead {
    /// Bytes of the head, including the final CRLFCRLF; the body (or next request) starts here.
    pub head_len: usize,
    pub method: Method,
    pub method_span: Span,
    pub target: Span,
    /// 0 or 1 (HTTP/1.0 or HTTP/1.1).
    pub minor_version: u8,
    /// Authority to route on: the absolute-form target's authority when present (RFC 9112
    /// §3.2.2 says it wins over Host), else the Host field value; `None` only for
    /// HTTP/1.0 requests without Host.
    pub host: Option<Span>,
    pub body: BodyFraming,
    pub keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request (1.0 must ignore it, RFC 9110 §10.1.1).
    pub expect_continue: bool,
    /// HTTP/1.1 with `Connection: upgrade` and an `Upgrade` field.
    pub upgrade: bool,
}

impl RequestHead {
    /// The target after an absolute-form's authority (`None` for origin-form and `*`).
    fn after_authority<'a>(&self, buf: &'a [u8]) -> Option<&'a [u8]> {
        let t = self.target.get(buf);
        if t.first() == Some(&b'/') || t == b"*" {
            return None;
        }
        let host = self.host?;
        buf.get(host.end as usize..self.target.end as usize)
    }

    /// Path and query in origin-form, the shape an origin server must receive
    /// (RFC 9112 §3.2.1): returns `(prefix, rest)` to be written back to back, where
    /// `prefix` is `"/"` when an absolute-form target had an empty path, and a
    /// server-wide `OPTIONS http://host` becomes `*` (§3.2.4).
    pub fn origin_form<'a>(&self, buf: &'a [u8]) -> (&'static [u8], &'a [u8]) {
        match self.after_authority(buf) {
            None => (b"", self.target.get(buf)),
            Some([]) if self.method == Method::Options => (b"*", &[]),
            Some(rest) if rest.first() == Some(&b'/') => (b"", rest),
            Some(rest) => (b"/", rest),
        }
    }

    /// Path component for routing (no query); `/` for an empty absolute-form path, `*`
    /// for the asterisk form. Not normalised: dot-segments and percent-escapes are as sent.
    pub fn path<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        let (prefix, rest) = self.origin_form(buf);
        let path = rest
            .iter()
            .position(|&b| b == b'?')
            .and_then(|q| rest.get(..q))
            .unwrap_or(rest);
        if path.is_empty() {
            if prefix == b"*" {
                b"*"
            } else {
                b"/"
            }
        } else {
            path
        }
    }

    /// Query component without the `?`, if the target has one.
    pub fn query<'a>(&self, buf: &'a [u8]) -> Option<&'a [u8]> {
        let t = self.target.get(buf);
        let q = t.iter().position(|&b| b == b'?')?;
        t.get(q + 1..)
    }
}

/// Parses a request head from the start of `buf`.
///
/// Returns `Partial` only when every byte so far is valid and more are needed; any
/// violation is an error even if the head is incomplete. `headers` is cleared and filled
/// on `Complete`; reuse it across requests so it stops allocating.
pub fn parse_request(
    buf: &[u8],
    limits: &Limits,
    headers: &mut Vec<HeaderSpan>,
) -> Result<Parsed<RequestHead>, RequestError> {
    let Some(line) = request_line(buf, limits)? else {
        return Ok(Parsed::Partial);
    };
    // CONNECT tunnels are out of scope; refuse before waiting for the rest of the head.
    if line.method == Method::Connect {
        return Err(RequestError::ConnectNotImplemented);
    }
    let target_authority = check_target(buf, line.method, line.target)?;
    let max_head = limits.max_header_bytes.min(u32::MAX as usize);
    let Some((head_len, field_count)) =
        scan::find_head_end(buf, line.end, max_head, limits.max_headers)?
    else {
        return Ok(Parsed::Partial);
    };
    scan::fill_fields(buf, line.end, head_len, field_count, headers)?;
    let f = fields::summarize(buf, headers)?;
    let http11 = line.minor == 1;

    if f.host_count > 1 {
        return Err(RequestError::MultipleHost);
    }
    if http11 && f.host_count == 0 {
        return Err(RequestError::MissingHost);
    }
    if let Some(h) = f.host {
        if !fields::is_valid_host(h.get(buf)) {
            return Err(RequestError::InvalidHost);
        }
    }

    if !http11 && f.transfer != TransferCoding::Absent {
        return Err(RequestError::TransferEncodingInHttp10);
    }
    if f.transfer != TransferCoding::Absent && f.content_length.is_some() {
        return Err(RequestError::ContentLengthWithTransferEncoding);
    }
    let body = match (f.transfer, f.content_length) {
        (TransferCoding::Chunked, _) => BodyFraming::Chunked,
        // A request body cannot be delimited by close (the client must still read the
        // response), so a TE list not ending in chunked is unframeable (RFC 9112 §6.3).
        (TransferCoding::NotChunked, _) => return Err(RequestError::InvalidTransferEncoding),
        (TransferCoding::Absent, Some(n)) => BodyFraming::Length(n),
        (TransferCoding::Absent, None) => BodyFraming::None,
    };

    if http11 && f.expect_other {
        return Err(RequestError::UnsupportedExpectation);
    }

    Ok(Parsed::Complete(RequestHead {
        head_len,
        method: line.method,
        method_span: line.method_span,
        target: line.target,
        minor_version: line.minor,
        host: target_authority.or(f.host),
        body,
        keep_alive: if http11 {
            !f.close
        } else {
            f.keep_alive && !f.close
        },
        expect_continue: http11 && f.expect_continue,
        upgrade: http11 && f.connection_upgrade && f.upgrade_present,
    }))
}

struct RequestLine {
    method: Method,
    method_span: Span,
    target: Span,
    minor: u8,
    /// Offset just past the line's CRLF.
    end: usize,
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Part {
    Method,
    Target,
    Version,
}

/// Request-target bytes: visible ASCII only. `#` (fragments are never sent) and `\`
/// (which some servers treat as `/`) are refused because they let a path mean one
/// thing to the router and another to the upstream.
#[inline]
fn is_target_char(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b'#' && b != b'\\'
}

/// Whether byte `b` at offset `k` of the version token can still be part of `HTTP/D.D`.
#[inline]
pub(crate) fn version_byte_ok(k: usize, b: u8) -> bool {
    match k {
        0..=4 => b"HTTP/".get(k) == Some(&b),
        5 | 7 => b.is_ascii_digit(),
        6 => b == b'.',
        _ => false,
    }
}

/// Validates a complete 8-byte `HTTP/D.D` token: the minor version for 1.0/1.1, `Err(true)`
/// for a well-formed but unsupported version, `Err(false)` for a malformed one.
pub(crate) fn version_minor(v: &[u8]) -> Result<u8, bool> {
    if v.len() != 8 || !v.iter().enumerate().all(|(k, &b)| version_byte_ok(k, b)) {
        return Err(false);
    }
    match v {
        b"HTTP/1.0" => Ok(0),
        b"HTTP/1.1" => Ok(1),
        _ => Err(true),
    }
}

/// Parses `method SP request-target SP HTTP-version CRLF`, validating each byte as it
/// arrives so that a bad line fails without waiting for its end.
fn request_line(buf: &[u8], limits: &Limits) -> Result<Option<RequestLine>, RequestError> {
    let mut part = Part::Method;
    let (mut method_end, mut target_start, mut target_end, mut version_start) = (0, 0, 0, 0);
    let mut i = 0;
    let eol = loop {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        if b == b'\r' || b == b'\n' {
            break b;
        }
        if i >= limits.max_request_line {
            return Err(RequestError::RequestLineTooLong);
        }
        if i >= limits.max_header_bytes {
            return Err(RequestError::HeadTooLarge);
        }
        match part {
            Part::Method if b == b' ' => {
                if i == 0 {
                    return Err(RequestError::InvalidMethod);
                }
                method_end = i;
                target_start = i + 1;
                part = Part::Target;
            }
            Part::Method if !is_tchar(b) => return Err(RequestError::InvalidMethod),
            Part::Target if b == b' ' => {
                if i == target_start {
                    return Err(RequestError::InvalidTarget);
                }
                target_end = i;
                version_start = i + 1;
                part = Part::Version;
            }
            Part::Target if !is_target_char(b) => return Err(RequestError::InvalidTarget),
            Part::Version if !version_byte_ok(i - version_start, b) => {
                return Err(RequestError::InvalidVersion)
            }
            _ => {}
        }
        i += 1;
    };
    if i == 0 {
        return Err(RequestError::LeadingEmptyLine);
    }
    if eol == b'\n' {
        return Err(RequestError::BareLf);
    }
    match buf.get(i + 1) {
        None => return Ok(None),
        Some(b'\n') => {}
        Some(_) => return Err(RequestError::BareCr),
    }
    if part != Part::Version {
        return Err(RequestError::InvalidRequestLine);
    }
    let minor = match version_minor(buf.get(version_start..i).unwrap_or(&[])) {
        Ok(m) => m,
        Err(true) => return Err(RequestError::UnsupportedVersion),
        Err(false) => return Err(RequestError::InvalidVersion),
    };
    let method_bytes = buf.get(..method_end).unwrap_or(&[]);
    let bad = RequestError::HeadTooLarge;
    Ok(Some(RequestLine {
        method: Method::from_bytes(method_bytes),
        method_span: Span::from_range(0, method_end).ok_or(bad)?,
        target: Span::from_range(target_start, target_end).ok_or(bad)?,
        minor,
        end: i + 2,
    }))
}

/// Checks the target's form against the method; returns the authority of an
/// absolute-form target, which then replaces Host for routing.
fn check_target(buf: &[u8], method: Method, target: Span) -> Result<Option<Span>, RequestError> {
    let t = target.get(buf);
    match t {
        b"*" if method == Method::Options => return Ok(None),
        b"*" => return Err(RequestError::InvalidTarget),
        [b'/', ..] => return Ok(None),
        _ => {}
    }
    let scheme_len = if t
        .get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case(b"http://"))
    {
        7
    } else if t
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case(b"https://"))
    {
        8
    } else {
        return Err(RequestError::InvalidTarget);
    };
    let rest = t.get(scheme_len..).unwrap_or(&[]);
    let auth_len = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let authority = rest.get(..auth_len).unwrap_or(&[]);
    if !fields::is_valid_host(authority) {
        return Err(RequestError::InvalidTarget);
    }
    let start = target.start as usize + scheme_len;
    Span::from_range(start, start + auth_len)
        .map(Some)
        .ok_or(RequestError::InvalidTarget)
}
