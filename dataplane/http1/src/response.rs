//! Response heads: the status line and body framing per RFC 9112 §6.3.

use crate::fields::{self, TransferCoding};
use crate::request::{version_byte_ok, version_minor};
use crate::scan;
use crate::{BodyFraming, HeaderSpan, Limits, Method, Parsed, ResponseError, Span};

/// A parsed response head. Spans index into the buffer given to [`parse_response`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    /// Bytes of the head, including the final CRLFCRLF.
    pub head_len: usize,
    pub status: u16,
    /// Reason phrase as sent (may be empty).
    pub reason: Span,
    pub minor_version: u8,
    pub body: BodyFraming,
    /// False whenever the body is `UntilClose`.
    pub keep_alive: bool,
}

/// Parses an upstream response head from the start of `buf`. `request_method` decides
/// framing for HEAD. 1xx heads come back like any other (body `None`); the caller
/// forwards them and parses again for the final response.
pub fn parse_response(
    buf: &[u8],
    limits: &Limits,
    request_method: Method,
    headers: &mut Vec<HeaderSpan>,
) -> Result<Parsed<ResponseHead>, ResponseError> {
    let Some(line) = status_line(buf, limits)? else {
        return Ok(Parsed::Partial);
    };
    let max_head = limits.max_header_bytes.min(u32::MAX as usize);
    let Some((head_len, field_count)) =
        scan::find_head_end(buf, line.end, max_head, limits.max_headers)?
    else {
        return Ok(Parsed::Partial);
    };
    scan::fill_fields(buf, line.end, head_len, field_count, headers)?;
    let f = fields::summarize(buf, headers)?;
    let http11 = line.minor == 1;

    // Framing fields are validated even when the status says "no body": a response that
    // carries contradictory framing is broken and its connection must not be reused.
    if !http11 && f.transfer != TransferCoding::Absent {
        return Err(ResponseError::TransferEncodingInHttp10);
    }
    if f.transfer != TransferCoding::Absent && f.content_length.is_some() {
        return Err(ResponseError::ContentLengthWithTransferEncoding);
    }
    let status = line.status;
    let body = if request_method == Method::Head
        || (100..200).contains(&status)
        || status == 204
        || status == 304
    {
        BodyFraming::None
    } else {
        match (f.transfer, f.content_length) {
            (TransferCoding::Chunked, _) => BodyFraming::Chunked,
            // RFC 9112 §6.3 item 4: a response whose final coding is not chunked is
            // delimited by the close of the connection.
            (TransferCoding::NotChunked, _) => BodyFraming::UntilClose,
            (TransferCoding::Absent, Some(n)) => BodyFraming::Length(n),
            (TransferCoding::Absent, None) => BodyFraming::UntilClose,
        }
    };
    let keep_alive = body != BodyFraming::UntilClose
        && if http11 {
            !f.close
        } else {
            f.keep_alive && !f.close
        };
    Ok(Parsed::Complete(ResponseHead {
        head_len,
        status,
        reason: line.reason,
        minor_version: line.minor,
        body,
        keep_alive,
    }))
}

struct StatusLine {
    minor: u8,
    status: u16,
    reason: Span,
    end: usize,
}

/// Parses `HTTP-version SP 3DIGIT [SP reason-phrase] CRLF`. The reason is optional
/// because many servers send `HTTP/1.1 200\r\n`; that is not a framing ambiguity.
fn status_line(buf: &[u8], limits: &Limits) -> Result<Option<StatusLine>, ResponseError> {
    let mut i = 0;
    let eol = loop {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        if b == b'\r' || b == b'\n' {
            break b;
        }
        if i >= limits.max_request_line {
            return Err(ResponseError::StatusLineTooLong);
        }
        if i >= limits.max_header_bytes {
            return Err(ResponseError::HeadTooLarge);
        }
        let ok = match i {
            0..=7 => {
                if !version_byte_ok(i, b) {
                    return Err(ResponseError::InvalidVersion);
                }
                true
            }
            8 => b == b' ',
            9..=11 => {
                if !b.is_ascii_digit() {
                    return Err(ResponseError::InvalidStatus);
                }
                true
            }
            12 => b == b' ',
            _ => fields::is_field_vchar(b),
        };
        if !ok {
            return Err(ResponseError::InvalidStatusLine);
        }
        i += 1;
    };
    if i == 0 {
        return Err(ResponseError::LeadingEmptyLine);
    }
    if eol == b'\n' {
        return Err(ResponseError::BareLf);
    }
    match buf.get(i + 1) {
        None => return Ok(None),
        Some(b'\n') => {}
        Some(_) => return Err(ResponseError::BareCr),
    }
    let minor = match version_minor(buf.get(..8.min(i)).unwrap_or(&[])) {
        Ok(m) => m,
        Err(true) => return Err(ResponseError::UnsupportedVersion),
        Err(false) => return Err(ResponseError::InvalidVersion),
    };
    if i < 12 {
        return Err(ResponseError::InvalidStatus);
    }
    let status = buf
        .get(9..12)
        .unwrap_or(&[])
        .iter()
        .fold(0u16, |n, &d| n * 10 + u16::from(d.wrapping_sub(b'0')));
    if !(100..=599).contains(&status) {
        return Err(ResponseError::InvalidStatus);
    }
    let reason_start = 13.min(i);
    Ok(Some(StatusLine {
        minor,
        status,
        reason: Span::from_range(reason_start, i).ok_or(ResponseError::HeadTooLarge)?,
        end: i + 2,
    }))
}
