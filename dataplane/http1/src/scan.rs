//! Raw head framing: finds the end of the field section, rejects bare CR/LF, obs-fold and
//! oversize heads, then turns the fields (tokenised by httparse) into spans.

use crate::{HeaderSpan, Span, MAX_HEADERS_CAP};

/// Errors shared by request and response heads; mapped into `RequestError`/`ResponseError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadError {
    TooLarge,
    TooManyFields,
    BareCr,
    BareLf,
    ObsFold,
    InvalidName,
    InvalidValue,
    InvalidContentLength,
    ConflictingContentLength,
    InvalidTransferEncoding,
    RepeatedChunked,
}

/// Scans the field section starting at `fields_start` (just past the start line's CRLF).
///
/// httparse accepts LF-only line endings, which is exactly the kind of leniency a
/// smuggling attack exploits between two parsers, so line structure is checked here on
/// the raw bytes before httparse sees them. Limits are enforced on partial input too, so
/// a peer cannot make us buffer an endless head.
///
/// Returns `Ok(Some(head_len))` when the empty line ending the head was found.
pub(crate) fn find_head_end(
    buf: &[u8],
    fields_start: usize,
    max_head: usize,
    max_fields: usize,
) -> Result<Option<usize>, HeadError> {
    let max_fields = max_fields.min(MAX_HEADERS_CAP);
    let mut i = fields_start;
    let mut at_line_start = true;
    let mut fields = 0usize;
    let mut seen_colon = false;
    while let Some(&b) = buf.get(i) {
        if i >= max_head {
            return Err(HeadError::TooLarge);
        }
        match b {
            b'\r' => match buf.get(i + 1) {
                None => return Ok(None),
                Some(b'\n') => {
                    let line_end = i + 2;
                    if at_line_start {
                        if line_end > max_head {
                            return Err(HeadError::TooLarge);
                        }
                        return Ok(Some(line_end));
                    }
                    at_line_start = true;
                    seen_colon = false;
                    i = line_end;
                    continue;
                }
                Some(_) => return Err(HeadError::BareCr),
            },
            b'\n' => return Err(HeadError::BareLf),
            b' ' | b'\t' if at_line_start => return Err(HeadError::ObsFold),
            // CTLs are refused here too (httparse would at the end) so a partial head
            // carrying one fails now instead of waiting for the rest.
            0..=0x08 | 0x0a..=0x1f | 0x7f => {
                return Err(if seen_colon {
                    HeadError::InvalidValue
                } else {
                    HeadError::InvalidName
                });
            }
            b':' => {
                if at_line_start {
                    return Err(HeadError::InvalidName);
                }
                seen_colon = true;
            }
            _ => {
                if at_line_start {
                    fields += 1;
                    if fields > max_fields {
                        return Err(HeadError::TooManyFields);
                    }
                    at_line_start = false;
                }
            }
        }
        i += 1;
    }
    Ok(None)
}

/// Tokenises the (already line-checked) field section `buf[fields_start..head_len]` with
/// httparse and records each field as spans into `buf`. `out` is cleared first; it only
/// allocates while it grows to the largest field count seen.
pub(crate) fn fill_fields(
    buf: &[u8],
    fields_start: usize,
    head_len: usize,
    out: &mut Vec<HeaderSpan>,
) -> Result<(), HeadError> {
    out.clear();
    let section = buf
        .get(fields_start..head_len)
        .ok_or(HeadError::InvalidName)?;
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS_CAP];
    let parsed = match httparse::parse_headers(section, &mut raw) {
        Ok(httparse::Status::Complete((_, parsed))) => parsed,
        // The raw scan saw the terminating empty line, so httparse cannot need more
        // bytes; treat disagreement as malformed rather than trusting either side.
        Ok(httparse::Status::Partial) => return Err(HeadError::InvalidName),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyFields),
        Err(httparse::Error::HeaderValue) => return Err(HeadError::InvalidValue),
        Err(_) => return Err(HeadError::InvalidName),
    };
    let base = buf.as_ptr() as usize;
    for h in parsed {
        let name = span_of(base, h.name.as_bytes()).ok_or(HeadError::InvalidName)?;
        let value = span_of(base, h.value).ok_or(HeadError::InvalidValue)?;
        out.push(HeaderSpan { name, value });
    }
    Ok(())
}

/// Span of `part` inside the buffer starting at address `base`. httparse hands back
/// sub-slices of the input, so the address difference is the offset.
fn span_of(base: usize, part: &[u8]) -> Option<Span> {
    let start = (part.as_ptr() as usize).checked_sub(base)?;
    let end = start.checked_add(part.len())?;
    Span::from_range(start, end)
}
