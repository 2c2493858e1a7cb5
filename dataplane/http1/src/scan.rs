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
/// Returns `Ok(Some((head_len, field_count)))` when the empty line ending the head was
/// found.
pub(crate) fn find_head_end(
    buf: &[u8],
    fields_start: usize,
    max_head: usize,
    max_fields: usize,
) -> Result<Option<(usize, usize)>, HeadError> {
    let max_fields = max_fields.min(MAX_HEADERS_CAP);
    let mut i = fields_start;
    let mut at_line_start = true;
    let mut fields = 0usize;
    let mut seen_colon = false;
    while let Some(&b) = buf.get(i) {
        if i >= max_head {
            return Err(HeadError::TooLarge);
        }
        // Most bytes of a head are plain text inside a line: skip them in a tight loop.
        if !at_line_start && !SPECIAL[usize::from(b)] {
            i += 1;
            continue;
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
                        return Ok(Some((line_end, fields)));
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

/// Fields of a typical head fit in a stack array of this many slots.
const INLINE_FIELDS: usize = 32;

/// Bytes the scan must look at inside a line: CR, LF, `:` and the CTLs it refuses
/// (HTAB is allowed inside a line).
const SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b != 0x09;
        b += 1;
    }
    table[0x7f] = true;
    table[b':' as usize] = true;
    table
};

/// Tokenises the (already line-checked) field section `buf[fields_start..head_len]` with
/// httparse and records each field as spans into `buf`. `out` is cleared first; it only
/// allocates while it grows to the largest field count seen.
pub(crate) fn fill_fields(
    buf: &[u8],
    fields_start: usize,
    head_len: usize,
    field_count: usize,
    out: &mut Vec<HeaderSpan>,
) -> Result<(), HeadError> {
    out.clear();
    let section = buf
        .get(fields_start..head_len)
        .ok_or(HeadError::InvalidName)?;
    // httparse wants initialised slots; as many as the scan counted (one more, so a
    // disagreement shows as a malformed head rather than as too many fields).
    // Initialising all MAX_HEADERS_CAP of them cost more than the parse itself.
    let slots = field_count.min(MAX_HEADERS_CAP) + 1;
    let mut inline = [httparse::EMPTY_HEADER; INLINE_FIELDS];
    let mut spilled = Vec::new();
    let raw: &mut [httparse::Header<'_>] = if slots <= INLINE_FIELDS {
        &mut inline[..slots]
    } else {
        spilled.resize(slots, httparse::EMPTY_HEADER);
        &mut spilled
    };
    let parsed = match httparse::parse_headers(section, raw) {
        Ok(httparse::Status::Complete((_, parsed))) => parsed,
        // The raw scan saw the terminating empty line, so httparse cannot need more
        // bytes; treat disagreement as malformed rather than trusting either side.
        Ok(httparse::Status::Partial) => return Err(HeadError::InvalidName),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::InvalidName),
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
