//! Body framing while relaying: how many of the bytes just read belong to the
//! current message, so bodies stream through unchanged and the next pipelined
//! message is never forwarded by mistake.

use ringmesh_http1::{BodyFraming, ChunkError, ChunkLimits, ChunkedDecoder};

#[derive(Debug)]
pub enum BodyError {
    /// The chunked framing is invalid.
    Framing(ChunkError),
    /// More payload than the route allows.
    TooLarge,
}

#[derive(Debug)]
enum State {
    Remaining(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    Complete,
}

#[derive(Debug)]
pub struct Body {
    state: State,
    /// Payload limit (chunked bodies are checked as they stream).
    max_payload: u64,
    /// Bytes taken so far, chunk framing included (for the access log).
    taken: u64,
}

impl Body {
    pub fn new(framing: BodyFraming, max_payload: u64) -> Body {
        let state = match framing {
            BodyFraming::None | BodyFraming::Length(0) => State::Complete,
            BodyFraming::Length(n) => State::Remaining(n),
            BodyFraming::Chunked => State::Chunked(ChunkedDecoder::new(ChunkLimits::default())),
            BodyFraming::UntilClose => State::UntilClose,
        };
        Body {
            state,
            max_payload,
            taken: 0,
        }
    }

    /// Bytes at the start of `input` that belong to this body.
    pub fn take(&mut self, input: &[u8]) -> Result<usize, BodyError> {
        self.take_with(input, |_| {})
    }

    /// Like `take`, and reports the payload (without chunk framing) as ranges of
    /// `input`, for relaying to a client that cannot read chunked framing.
    pub fn take_with(
        &mut self,
        input: &[u8],
        on_payload: impl FnMut(std::ops::Range<usize>),
    ) -> Result<usize, BodyError> {
        let n = self.advance(input, on_payload)?;
        self.taken += n as u64;
        Ok(n)
    }

    /// Bytes of this body relayed so far, chunk framing included.
    pub fn taken(&self) -> u64 {
        self.taken
    }

    fn advance(
        &mut self,
        input: &[u8],
        mut on_payload: impl FnMut(std::ops::Range<usize>),
    ) -> Result<usize, BodyError> {
        match &mut self.state {
            State::Complete => Ok(0),
            State::UntilClose => {
                on_payload(0..input.len());
                Ok(input.len())
            }
            State::Remaining(left) => {
                let n = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                *left -= n as u64;
                if *left == 0 {
                    self.state = State::Complete;
                }
                on_payload(0..n);
                Ok(n)
            }
            State::Chunked(decoder) => {
                let progress = decoder
                    .advance_with(input, on_payload)
                    .map_err(BodyError::Framing)?;
                if decoder.data_bytes() > self.max_payload {
                    return Err(BodyError::TooLarge);
                }
                if progress.done {
                    self.state = State::Complete;
                }
                Ok(progress.consumed)
            }
        }
    }

    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Complete)
    }

    /// The upstream closed: the end of an until-close body, a truncation otherwise.
    pub fn finish_at_eof(&mut self) -> bool {
        if matches!(self.state, State::UntilClose) {
            self.state = State::Complete;
        }
        self.is_complete()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_stops_at_the_boundary() {
        let mut body = Body::new(BodyFraming::Length(5), u64::MAX);
        assert_eq!(body.take(b"abc").ok(), Some(3));
        assert_eq!(body.take(b"deGET /").ok(), Some(2));
        assert!(body.is_complete());
        assert_eq!(body.take(b"more").ok(), Some(0));
    }

    #[test]
    fn chunked_limit_and_end() {
        let mut body = Body::new(BodyFraming::Chunked, 4);
        assert_eq!(body.take(b"3\r\nabc\r\n0\r\n\r\nNEXT").ok(), Some(13));
        assert!(body.is_complete());
        let mut big = Body::new(BodyFraming::Chunked, 4);
        assert!(matches!(
            big.take(b"5\r\nabcde\r\n"),
            Err(BodyError::TooLarge)
        ));
    }

    #[test]
    fn take_with_strips_chunk_framing() {
        let mut body = Body::new(BodyFraming::Chunked, u64::MAX);
        let input = b"2\r\nab\r\n1\r\nc\r\n0\r\n\r\n";
        let mut payload = Vec::new();
        let used = body
            .take_with(input, |r| payload.extend_from_slice(&input[r]))
            .ok();
        assert_eq!(used, Some(input.len()));
        assert_eq!(payload, b"abc");
    }

    #[test]
    fn until_close_ends_at_eof() {
        let mut body = Body::new(BodyFraming::UntilClose, u64::MAX);
        assert_eq!(body.take(b"xyz").ok(), Some(3));
        assert!(!body.is_complete());
        assert!(body.finish_at_eof());
        let mut truncated = Body::new(BodyFraming::Length(9), u64::MAX);
        assert!(!truncated.finish_at_eof());
    }
}
