//! Field semantics shared by requests and responses: Content-Length, Transfer-Encoding,
//! Connection, Host, Expect and Upgrade, plus the byte-class tables they rely on.

use crate::scan::HeadError;
use crate::{HeaderSpan, Span};

const fn build_tchar() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    t
}

static TCHAR: [bool; 256] = build_tchar();

/// RFC 9110 `tchar`.
#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Field-value byte: HTAB, SP, VCHAR or obs-text (no CTLs, no DEL).
#[inline]
pub(crate) fn is_field_vchar(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Value of the first field named `lower_name` (ASCII case-insensitive).
pub fn header_value<'a>(
    buf: &'a [u8],
    headers: &[HeaderSpan],
    lower_name: &str,
) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.get(buf).eq_ignore_ascii_case(lower_name.as_bytes()))
        .map(|h| h.value.get(buf))
}

/// Whether any `Connection` field lists `token` (ASCII case-insensitive).
pub fn connection_has_token(buf: &[u8], headers: &[HeaderSpan], token: &[u8]) -> bool {
    headers.iter().any(|h| {
        h.name.get(buf).eq_ignore_ascii_case(b"connection")
            && h.value
                .get(buf)
                .split(|&b| b == b',')
                .any(|t| trim_ows(t).eq_ignore_ascii_case(token))
    })
}

/// Transfer-Encoding as seen across all TE fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TransferCoding {
    Absent,
    /// `chunked` is the final coding (and appears exactly once).
    Chunked,
    /// Present, but the final coding is not `chunked`.
    NotChunked,
}

/// What the framing- and connection-relevant fields of a head say.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldSummary {
    pub content_length: Option<u64>,
    pub transfer: TransferCoding,
    pub close: bool,
    pub keep_alive: bool,
    pub connection_upgrade: bool,
    pub upgrade_present: bool,
    pub host: Option<Span>,
    pub host_count: u32,
    pub expect_continue: bool,
    pub expect_other: bool,
}

pub(crate) fn summarize(buf: &[u8], headers: &[HeaderSpan]) -> Result<FieldSummary, HeadError> {
    let mut s = FieldSummary {
        content_length: None,
        transfer: TransferCoding::Absent,
        close: false,
        keep_alive: false,
        connection_upgrade: false,
        upgrade_present: false,
        host: None,
        host_count: 0,
        expect_continue: false,
        expect_other: false,
    };
    let mut chunked_seen = false;
    for h in headers {
        let name = h.name.get(buf);
        let value = h.value.get(buf);
        // Dispatch on length first: most fields match none of these and leave quickly.
        match name.len() {
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                content_length(value, &mut s.content_length)?;
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                transfer_encoding(value, &mut s.transfer, &mut chunked_seen)?;
            }
            4 if name.eq_ignore_ascii_case(b"host") => {
                s.host_count = s.host_count.saturating_add(1);
                if s.host.is_none() {
                    s.host = Some(h.value);
                }
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for t in value.split(|&b| b == b',') {
                    let t = trim_ows(t);
                    if t.eq_ignore_ascii_case(b"close") {
                        s.close = true;
                    } else if t.eq_ignore_ascii_case(b"keep-alive") {
                        s.keep_alive = true;
                    } else if t.eq_ignore_ascii_case(b"upgrade") {
                        s.connection_upgrade = true;
                    }
                }
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                if value.eq_ignore_ascii_case(b"100-continue") {
                    s.expect_continue = true;
                } else if !value.is_empty() {
                    s.expect_other = true;
                }
            }
            7 if name.eq_ignore_ascii_case(b"upgrade") && !value.is_empty() => {
                s.upgrade_present = true;
            }
            _ => {}
        }
    }
    Ok(s)
}

/// Content-Length is `1*DIGIT`; a list or repeated field is accepted only when every
/// element is the same number (RFC 9110 §8.6), anything else is a smuggling vector.
fn content_length(value: &[u8], seen: &mut Option<u64>) -> Result<(), HeadError> {
    for elem in value.split(|&b| b == b',') {
        let elem = trim_ows(elem);
        if elem.is_empty() {
            return Err(HeadError::InvalidContentLength);
        }
        let mut n: u64 = 0;
        for &b in elem {
            if !b.is_ascii_digit() {
                return Err(HeadError::InvalidContentLength);
            }
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(b - b'0')))
                .ok_or(HeadError::InvalidContentLength)?;
        }
        match *seen {
            Some(prev) if prev != n => return Err(HeadError::ConflictingContentLength),
            _ => *seen = Some(n),
        }
    }
    Ok(())
}

/// Folds one Transfer-Encoding field into the running coding list. Empty list elements
/// are rejected rather than skipped: `chunked,` must not mean different things to us and
/// to the upstream.
fn transfer_encoding(
    value: &[u8],
    state: &mut TransferCoding,
    chunked_seen: &mut bool,
) -> Result<(), HeadError> {
    for elem in value.split(|&b| b == b',') {
        let elem = trim_ows(elem);
        let (name, has_params) = match elem.iter().position(|&b| b == b';') {
            Some(p) => (trim_ows(elem.get(..p).unwrap_or(&[])), true),
            None => (elem, false),
        };
        if !is_token(name) {
            return Err(HeadError::InvalidTransferEncoding);
        }
        if name.eq_ignore_ascii_case(b"chunked") {
            // chunked takes no parameters (RFC 9112 §7.1).
            if has_params {
                return Err(HeadError::InvalidTransferEncoding);
            }
            if *chunked_seen {
                return Err(HeadError::RepeatedChunked);
            }
            *chunked_seen = true;
            *state = TransferCoding::Chunked;
        } else {
            *state = TransferCoding::NotChunked;
        }
    }
    Ok(())
}

/// `uri-host [ ":" port ]`, restricted to what routing can use unambiguously: a DNS-ish
/// reg-name (alnum, `-`, `.`, `_`, `~`) or a bracketed IPv6 literal, and a numeric port.
/// Userinfo, whitespace, `/`, `,`, percent-encoding and empty hosts are refused.
pub(crate) fn is_valid_host(h: &[u8]) -> bool {
    let (host_ok, rest) = if let Some(after) = h.strip_prefix(b"[") {
        match after.iter().position(|&b| b == b']') {
            Some(close) => {
                let lit = after.get(..close).unwrap_or(&[]);
                let ok = !lit.is_empty()
                    && lit
                        .iter()
                        .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
                (ok, after.get(close + 1..).unwrap_or(&[]))
            }
            None => return false,
        }
    } else {
        let end = h.iter().position(|&b| b == b':').unwrap_or(h.len());
        let name = h.get(..end).unwrap_or(&[]);
        let ok = !name.is_empty()
            && name
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        (ok, h.get(end..).unwrap_or(&[]))
    };
    if !host_ok {
        return false;
    }
    match rest {
        [] => true,
        [b':', port @ ..] => {
            !port.is_empty()
                && port.len() <= 5
                && port.iter().all(u8::is_ascii_digit)
                && port.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')) <= 65535
        }
        _ => false,
    }
}
