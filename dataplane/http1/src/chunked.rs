//! Chunked body framing: an incremental state machine that finds where a chunked body
//! ends so the proxy can relay the original bytes unchanged.

use crate::fields::{is_field_vchar, is_tchar};

/// Caps on the parts of a chunked body that are not payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Longest chunk-size line (size plus extensions), excluding CRLF.
    pub max_line: usize,
    /// Largest trailer section, including its final CRLF.
    pub max_trailer_bytes: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        ChunkLimits {
            max_line: 4 * 1024,
            max_trailer_bytes: 16 * 1024,
        }
    }
}

/// Result of one [`ChunkedDecoder::advance`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkProgress {
    /// Bytes of the input that belong to the body. Equal to the input length unless
    /// `done`, in which case the rest of the input is the next message.
    pub consumed: usize,
    /// The final CRLF of the body has been consumed.
    pub done: bool,
}

/// Why a chunked body was rejected. After an error the decoder keeps returning it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("invalid chunk size")]
    InvalidSize,
    #[error("chunk size too large")]
    SizeOverflow,
    #[error("invalid chunk extension")]
    InvalidExtension,
    #[error("chunk size line too long")]
    LineTooLong,
    #[error("bare CR or LF in chunked framing")]
    InvalidLineEnding,
    #[error("chunk data not followed by CRLF")]
    MissingDataCrlf,
    #[error("invalid trailer field")]
    InvalidTrailer,
    #[error("trailer section too large")]
    TrailersTooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    SizeStart,
    Size,
    /// Whitespace after the size: only an extension may follow (BWS before `;`).
    SizeBws,
    ExtPreName,
    ExtName,
    ExtPostName,
    ExtPreValue,
    ExtToken,
    ExtQuoted,
    ExtQuotedEscape,
    /// After a complete extension value.
    ExtValueEnd,
    /// After whitespace that followed a value: only `;` may follow.
    ExtPostValue,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    FinalLf,
    Done,
    Failed(ChunkError),
}

/// Finds the end of a chunked body fed in arbitrary pieces; never copies or allocates.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    limits: ChunkLimits,
    state: State,
    size: u64,
    size_digits: u8,
    remaining: u64,
    line_len: usize,
    trailer_len: usize,
    data_bytes: u64,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder::new(ChunkLimits::default())
    }
}

const MAX_SIZE_DIGITS: u8 = 16;

impl ChunkedDecoder {
    pub fn new(limits: ChunkLimits) -> Self {
        ChunkedDecoder {
            limits,
            state: State::SizeStart,
            size: 0,
            size_digits: 0,
            remaining: 0,
            line_len: 0,
            trailer_len: 0,
            data_bytes: 0,
        }
    }

    /// Payload bytes seen so far (chunk data only, no framing), for body-size limits.
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Feeds the next bytes of the body. Input may be split at any byte boundary.
    pub fn advance(&mut self, input: &[u8]) -> Result<ChunkProgress, ChunkError> {
        self.advance_with(input, |_| {})
    }

    /// Like [`advance`](Self::advance), and reports each run of payload bytes as a
    /// range of `input`: what a de-chunking relay (for an HTTP/1.0 client) forwards.
    pub fn advance_with(
        &mut self,
        input: &[u8],
        mut on_data: impl FnMut(std::ops::Range<usize>),
    ) -> Result<ChunkProgress, ChunkError> {
        let mut i = 0;
        loop {
            match self.state {
                State::Failed(e) => return Err(e),
                State::Done => break,
                State::Data => {
                    let avail = input.len().saturating_sub(i);
                    if avail == 0 {
                        break;
                    }
                    // Payload is skipped in bulk: only framing bytes are inspected.
                    let take = usize::try_from(self.remaining).map_or(avail, |r| r.min(avail));
                    on_data(i..i + take);
                    i += take;
                    self.remaining -= take as u64;
                    self.data_bytes = self.data_bytes.saturating_add(take as u64);
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                }
                _ => {
                    let Some(&b) = input.get(i) else { break };
                    if let Err(e) = self.step(b) {
                        self.state = State::Failed(e);
                        return Err(e);
                    }
                    i += 1;
                }
            }
        }
        Ok(ChunkProgress {
            consumed: i,
            done: self.state == State::Done,
        })
    }

    fn step(&mut self, b: u8) -> Result<(), ChunkError> {
        use State::*;
        let in_size_line = matches!(
            self.state,
            SizeStart
                | Size
                | SizeBws
                | ExtPreName
                | ExtName
                | ExtPostName
                | ExtPreValue
                | ExtToken
                | ExtQuoted
                | ExtQuotedEscape
                | ExtValueEnd
                | ExtPostValue
        );
        if in_size_line && b != b'\r' {
            self.line_len = self.line_len.saturating_add(1);
            if self.line_len > self.limits.max_line {
                return Err(ChunkError::LineTooLong);
            }
        }
        if matches!(
            self.state,
            TrailerStart | TrailerName | TrailerValue | TrailerLf | FinalLf
        ) {
            self.trailer_len = self.trailer_len.saturating_add(1);
            if self.trailer_len > self.limits.max_trailer_bytes {
                return Err(ChunkError::TrailersTooLarge);
            }
        }
        let ws = b == b' ' || b == b'\t';
        self.state = match (self.state, b) {
            (SizeStart, _) => match hex_val(b) {
                Some(v) => {
                    self.size = u64::from(v);
                    self.size_digits = 1;
                    Size
                }
                None => return Err(ChunkError::InvalidSize),
            },
            (Size, b';') => ExtPreName,
            (Size, b'\r') => SizeLf,
            (Size, _) if ws => SizeBws,
            (Size, _) => match hex_val(b) {
                Some(v) => {
                    self.size_digits += 1;
                    if self.size_digits > MAX_SIZE_DIGITS {
                        return Err(ChunkError::SizeOverflow);
                    }
                    // 16 hex digits fit a u64 exactly, so this cannot lose bits.
                    self.size = (self.size << 4) | u64::from(v);
                    Size
                }
                None if b == b'\n' => return Err(ChunkError::InvalidLineEnding),
                None => return Err(ChunkError::InvalidSize),
            },
            (SizeBws, b';') => ExtPreName,
            (SizeBws, _) if ws => SizeBws,
            (SizeBws, _) => return Err(ChunkError::InvalidSize),
            (ExtPreName, _) if ws => ExtPreName,
            (ExtPreName, _) if is_tchar(b) => ExtName,
            (ExtName, _) if is_tchar(b) => ExtName,
            (ExtName, b'=') | (ExtPostName, b'=') => ExtPreValue,
            (ExtName, b';') | (ExtPostName, b';') => ExtPreName,
            (ExtName, b'\r') => SizeLf,
            (ExtName, _) | (ExtPostName, _) if ws => ExtPostName,
            (ExtPreValue, _) if ws => ExtPreValue,
            (ExtPreValue, b'"') => ExtQuoted,
            (ExtPreValue, _) if is_tchar(b) => ExtToken,
            (ExtToken, _) if is_tchar(b) => ExtToken,
            (ExtToken, b';') | (ExtValueEnd, b';') | (ExtPostValue, b';') => ExtPreName,
            (ExtToken, b'\r') | (ExtValueEnd, b'\r') => SizeLf,
            (ExtToken, _) | (ExtValueEnd, _) | (ExtPostValue, _) if ws => ExtPostValue,
            (ExtQuoted, b'"') => ExtValueEnd,
            (ExtQuoted, b'\\') => ExtQuotedEscape,
            (ExtQuoted, _) if is_field_vchar(b) => ExtQuoted,
            (ExtQuotedEscape, _) if is_field_vchar(b) => ExtQuoted,
            (
                ExtPreName | ExtName | ExtPostName | ExtPreValue | ExtToken | ExtQuoted
                | ExtQuotedEscape | ExtValueEnd | ExtPostValue,
                _,
            ) => {
                if b == b'\n' {
                    return Err(ChunkError::InvalidLineEnding);
                }
                return Err(ChunkError::InvalidExtension);
            }
            (SizeLf, b'\n') => {
                self.line_len = 0;
                if self.size == 0 {
                    TrailerStart
                } else {
                    self.remaining = self.size;
                    Data
                }
            }
            (SizeLf, _) => return Err(ChunkError::InvalidLineEnding),
            (DataCr, b'\r') => DataLf,
            (DataCr, _) => return Err(ChunkError::MissingDataCrlf),
            (DataLf, b'\n') => SizeStart,
            (DataLf, _) => return Err(ChunkError::InvalidLineEnding),
            (TrailerStart, b'\r') => FinalLf,
            (TrailerStart, b'\n') => return Err(ChunkError::InvalidLineEnding),
            // A trailer line starting with whitespace is obs-fold, refused as in heads.
            (TrailerStart, _) if is_tchar(b) => TrailerName,
            (TrailerName, _) if is_tchar(b) => TrailerName,
            (TrailerName, b':') => TrailerValue,
            (TrailerValue, b'\r') => TrailerLf,
            (TrailerValue, _) if is_field_vchar(b) => TrailerValue,
            (TrailerValue, b'\n') => return Err(ChunkError::InvalidLineEnding),
            (TrailerStart | TrailerName | TrailerValue, _) => {
                return Err(ChunkError::InvalidTrailer)
            }
            (TrailerLf, b'\n') => TrailerStart,
            (TrailerLf, _) => return Err(ChunkError::InvalidLineEnding),
            (FinalLf, b'\n') => Done,
            (FinalLf, _) => return Err(ChunkError::InvalidLineEnding),
            // Data, Done and Failed never reach `step`; keep the state if they somehow do.
            (Data | Done | Failed(_), _) => self.state,
        };
        Ok(())
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod data_tests {
    use super::*;

    #[test]
    fn advance_with_reports_only_payload() {
        let body = b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n";
        for split in 0..body.len() {
            let mut decoder = ChunkedDecoder::default();
            let mut payload = Vec::new();
            for part in [&body[..split], &body[split..]] {
                decoder
                    .advance_with(part, |range| payload.extend_from_slice(&part[range]))
                    .unwrap();
            }
            assert!(decoder.is_done());
            assert_eq!(payload, b"abcde", "split at {split}");
        }
    }
}
