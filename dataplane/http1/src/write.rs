//! Head writing: re-serialises a parsed head for the other side of the proxy, dropping
//! hop-by-hop fields and applying route edits, into a caller-owned buffer.

use crate::fields::trim_ows;
use crate::{HeaderSpan, RequestHead, ResponseHead};

/// Changes applied while writing a head. Names in `remove` and `set` must be lower-case.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeadEdits<'a> {
    /// Fields to drop.
    pub remove: &'a [String],
    /// Replace: existing fields of that name are dropped, then these are added.
    pub set: &'a [(String, String)],
    /// Appended as-is.
    pub add: &'a [(String, String)],
    /// Merge every existing `X-Forwarded-For` into one field ending in `, <this>`
    /// (or just `<this>` when there was none).
    pub forwarded_for: Option<&'a str>,
    /// Appended last (x-forwarded-proto, via, x-request-id, ...).
    pub extra: &'a [(&'a str, &'a [u8])],
    /// Keep `Upgrade` and emit `connection: upgrade` (requests: only when the head asked to upgrade).
    pub keep_upgrade: bool,
    /// Emit `connection: close`.
    pub connection_close: bool,
}

/// Writes `METHOD target HTTP/1.1` and the edited fields to `out` (appends; never clears).
/// An absolute-form target is written in origin-form, as an origin server expects; the
/// Host field is passed through as received (use `set` to override it).
///
/// Content-Length and Transfer-Encoding are kept exactly as received because the body
/// is relayed byte for byte; they also cannot be removed through `Connection` tokens,
/// which would otherwise let a client strip the framing the upstream relies on.
pub fn write_request_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    head: &RequestHead,
    headers: &[HeaderSpan],
    edits: &HeadEdits<'_>,
) {
    out.extend_from_slice(head.method_span.get(buf));
    out.push(b' ');
    let (prefix, rest) = head.origin_form(buf);
    out.extend_from_slice(prefix);
    out.extend_from_slice(rest);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    write_fields(out, buf, headers, edits, edits.keep_upgrade && head.upgrade);
}

/// Writes `HTTP/1.1 <status> <reason>` and the edited fields to `out` (appends).
/// An empty upstream reason is replaced by the standard phrase.
pub fn write_response_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    head: &ResponseHead,
    headers: &[HeaderSpan],
    edits: &HeadEdits<'_>,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_u64(out, u64::from(head.status));
    out.push(b' ');
    let reason = head.reason.get(buf);
    if reason.is_empty() {
        out.extend_from_slice(reason_phrase(head.status).as_bytes());
    } else {
        out.extend_from_slice(reason);
    }
    out.extend_from_slice(b"\r\n");
    write_fields(out, buf, headers, edits, edits.keep_upgrade);
}

/// A complete locally generated response: head plus body with `content-length`.
/// 1xx, 204 and 304 get neither body nor `content-length`, as RFC 9110 requires.
pub fn write_simple_response(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    body: &[u8],
    connection_close: bool,
    extra: &[(&str, &[u8])],
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_u64(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    let bodyless = (100..200).contains(&status) || status == 204 || status == 304;
    if !bodyless {
        if !content_type.is_empty() {
            push_field(out, b"content-type", content_type.as_bytes());
        }
        out.extend_from_slice(b"content-length: ");
        push_u64(out, body.len() as u64);
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in extra {
        push_field(out, name.as_bytes(), value);
    }
    if connection_close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !bodyless {
        out.extend_from_slice(body);
    }
}

fn write_fields(
    out: &mut Vec<u8>,
    buf: &[u8],
    headers: &[HeaderSpan],
    edits: &HeadEdits<'_>,
    keep_upgrade: bool,
) {
    // Most heads carry at most one Connection field; skip the per-field lookup when none.
    let has_connection = headers
        .iter()
        .any(|h| h.name.get(buf).eq_ignore_ascii_case(b"connection"));
    for h in headers {
        let name = h.name.get(buf);
        if is_hop_by_hop(name, keep_upgrade)
            || (has_connection && named_by_connection(buf, headers, name, keep_upgrade))
            || edits
                .remove
                .iter()
                .any(|r| name.eq_ignore_ascii_case(r.as_bytes()))
            || edits
                .set
                .iter()
                .any(|(n, _)| name.eq_ignore_ascii_case(n.as_bytes()))
            || (edits.forwarded_for.is_some() && name.eq_ignore_ascii_case(b"x-forwarded-for"))
        {
            continue;
        }
        push_field(out, name, h.value.get(buf));
    }
    for (name, value) in edits.set.iter().chain(edits.add) {
        push_field(out, name.as_bytes(), value.as_bytes());
    }
    if let Some(client) = edits.forwarded_for {
        out.extend_from_slice(b"x-forwarded-for: ");
        for h in headers {
            let value = h.value.get(buf);
            if !value.is_empty() && h.name.get(buf).eq_ignore_ascii_case(b"x-forwarded-for") {
                out.extend_from_slice(value);
                out.extend_from_slice(b", ");
            }
        }
        out.extend_from_slice(client.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in edits.extra {
        push_field(out, name.as_bytes(), value);
    }
    match (keep_upgrade, edits.connection_close) {
        (true, true) => out.extend_from_slice(b"connection: upgrade, close\r\n"),
        (true, false) => out.extend_from_slice(b"connection: upgrade\r\n"),
        (false, true) => out.extend_from_slice(b"connection: close\r\n"),
        (false, false) => {}
    }
    out.extend_from_slice(b"\r\n");
}

/// RFC 9110 §7.6.1 hop-by-hop fields, plus the non-standard ones still seen in the wild.
fn is_hop_by_hop(name: &[u8], keep_upgrade: bool) -> bool {
    const ALWAYS: [&[u8]; 5] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
    ];
    ALWAYS.iter().any(|h| name.eq_ignore_ascii_case(h))
        || (!keep_upgrade && name.eq_ignore_ascii_case(b"upgrade"))
}

/// Whether a `Connection` field names this field as hop-by-hop. Framing fields and Host
/// are never dropped this way: the proxy relays the body as received, and removing its
/// framing (or the routing authority) on a client's say-so would desynchronise us.
fn named_by_connection(
    buf: &[u8],
    headers: &[HeaderSpan],
    name: &[u8],
    keep_upgrade: bool,
) -> bool {
    if name.eq_ignore_ascii_case(b"content-length")
        || name.eq_ignore_ascii_case(b"transfer-encoding")
        || name.eq_ignore_ascii_case(b"host")
        || (keep_upgrade && name.eq_ignore_ascii_case(b"upgrade"))
    {
        return false;
    }
    headers.iter().any(|h| {
        h.name.get(buf).eq_ignore_ascii_case(b"connection")
            && h.value
                .get(buf)
                .split(|&b| b == b',')
                .any(|t| trim_ows(t).eq_ignore_ascii_case(name))
    })
}

fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Decimal without going through `fmt` (which would be fine, but this is the hot path).
fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        if let Some(d) = digits.get_mut(at) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || at == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(at..).unwrap_or(&[]));
}

/// Standard reason phrase for a status code (RFC 9110 §15); empty for unknown codes.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}
