//! Chunked decoder: valid bodies split at every boundary, strict errors, pipelining.

use super::Rng;
use crate::{ChunkError, ChunkLimits, ChunkedDecoder};

/// Feeds `input` in the given piece sizes; returns (consumed, done) or the error.
fn feed(input: &[u8], pieces: &mut dyn FnMut() -> usize) -> Result<(usize, bool), ChunkError> {
    let mut dec = ChunkedDecoder::new(ChunkLimits::default());
    let mut at = 0;
    while at < input.len() {
        let n = pieces().clamp(1, input.len() - at);
        let p = dec.advance(&input[at..at + n])?;
        at += p.consumed;
        if p.done {
            return Ok((at, true));
        }
        assert_eq!(p.consumed, n, "a not-done decoder consumes everything");
    }
    Ok((at, dec.is_done()))
}

fn whole(input: &[u8]) -> Result<(usize, bool), ChunkError> {
    feed(input, &mut || usize::MAX)
}

const VALID: &[&[u8]] = &[
    b"0\r\n\r\n",
    b"5\r\nhello\r\n0\r\n\r\n",
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    b"A\r\n0123456789\r\n0\r\n\r\n",
    b"a;ext\r\n0123456789\r\n0;last=\"quoted \\\" \\\\ value\"\r\n\r\n",
    b"3 ; a = b ; c\r\nabc\r\n0\r\n\r\n",
    b"3;a=b\t;c=\"d\"\r\nabc\r\n0\r\n\r\n",
    b"2\r\n\r\n\r\n0\r\nExpires: never\r\nX-Sum:\tabc \r\n\r\n",
    b"000000000000000f\r\n0123456789abcde\r\n0\r\n\r\n",
];

#[test]
fn valid_bodies_whole_and_pipelined() {
    for body in VALID {
        assert_eq!(
            whole(body),
            Ok((body.len(), true)),
            "{:?}",
            String::from_utf8_lossy(body)
        );
        let mut piped = body.to_vec();
        piped.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let mut dec = ChunkedDecoder::default();
        let p = dec.advance(&piped).map_err(|e| format!("{e}"));
        assert_eq!(p.map(|p| (p.consumed, p.done)), Ok((body.len(), true)));
        // Once done, further input is never consumed.
        assert_eq!(
            dec.advance(b"more").map(|p| (p.consumed, p.done)),
            Ok((0, true))
        );
    }
}

#[test]
fn data_bytes_counts_payload_only() {
    let mut dec = ChunkedDecoder::default();
    let body = b"5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nT: v\r\n\r\n";
    let p = dec.advance(body);
    assert_eq!(p.map(|p| p.done), Ok(true));
    assert_eq!(dec.data_bytes(), 11);
}

#[test]
fn split_at_every_boundary() {
    for body in VALID {
        let mut piped = body.to_vec();
        piped.extend_from_slice(b"NEXT");
        for cut in 0..=piped.len() {
            let mut dec = ChunkedDecoder::default();
            let mut total = 0;
            let mut done = false;
            for part in [&piped[..cut], &piped[cut..]] {
                if done {
                    break;
                }
                let p = dec.advance(part);
                let Ok(p) = p else { panic!("cut {cut}: {p:?}") };
                total += p.consumed;
                done = p.done;
            }
            assert_eq!((total, done), (body.len(), true), "cut {cut}");
        }
        assert_eq!(feed(&piped, &mut || 1), Ok((body.len(), true)));
        let mut rng = Rng::new(body.len() as u64 * 7919);
        for _ in 0..50 {
            assert_eq!(
                feed(&piped, &mut || rng.below(6) + 1),
                Ok((body.len(), true))
            );
        }
    }
}

#[test]
fn strict_errors_independent_of_splits() {
    use ChunkError as E;
    let cases: Vec<(&[u8], ChunkError)> = vec![
        (b"ffffffffffffffffff\r\n", E::SizeOverflow),
        (b"00000000000000001\r\n", E::SizeOverflow),
        (b" 5\r\nhello\r\n0\r\n\r\n", E::InvalidSize),
        (b"0x5\r\nhello\r\n0\r\n\r\n", E::InvalidSize),
        (b"-1\r\n", E::InvalidSize),
        (b"+5\r\nhello\r\n", E::InvalidSize),
        (b"\r\n", E::InvalidSize),
        (b"5 \r\nhello\r\n", E::InvalidSize),
        (b"5\nhello\r\n0\r\n\r\n", E::InvalidLineEnding),
        (b"5\rhello\r\n", E::InvalidLineEnding),
        (b"5\r\nhello\n0\r\n\r\n", E::MissingDataCrlf),
        (b"5\r\nhelloX\r\n", E::MissingDataCrlf),
        (b"5\r\nhello\r0\r\n", E::InvalidLineEnding),
        (b"3\r\nabcdef\r\n", E::MissingDataCrlf),
        (b"5;\r\nhello\r\n", E::InvalidExtension),
        (b"5;a b\r\nhello\r\n", E::InvalidExtension),
        (b"5;a=\r\nhello\r\n", E::InvalidExtension),
        (b"5;a=\"x\r\n", E::InvalidExtension),
        (b"5;a=b c\r\n", E::InvalidExtension),
        (b"5;a\x00\r\n", E::InvalidExtension),
        (b"5;a\n", E::InvalidLineEnding),
        (b"0\r\n x: y\r\n\r\n", E::InvalidTrailer),
        (b"0\r\nX : y\r\n\r\n", E::InvalidTrailer),
        (b"0\r\nX: a\0\r\n\r\n", E::InvalidTrailer),
        (b"0\r\nX: y\n\r\n", E::InvalidLineEnding),
        (b"0\r\n\n", E::InvalidLineEnding),
        (b"0\r\n\rX", E::InvalidLineEnding),
    ];
    for (input, want) in cases {
        let name = String::from_utf8_lossy(input);
        assert_eq!(whole(input), Err(want), "{name:?}");
        assert_eq!(feed(input, &mut || 1), Err(want), "{name:?} byte by byte");
        // The decoder stays failed.
        let mut dec = ChunkedDecoder::default();
        let _ = dec.advance(input);
        assert_eq!(dec.advance(b"0\r\n\r\n"), Err(want));
    }
}

#[test]
fn line_and_trailer_caps() {
    let limits = ChunkLimits {
        max_line: 16,
        max_trailer_bytes: 20,
    };
    let mut dec = ChunkedDecoder::new(limits);
    assert!(dec.advance(b"5;aaaaaaaaaaaaaa\r\nhello\r\n").is_ok());
    let mut dec = ChunkedDecoder::new(limits);
    assert_eq!(
        dec.advance(b"5;aaaaaaaaaaaaaaa"),
        Err(ChunkError::LineTooLong)
    );
    let mut dec = ChunkedDecoder::new(limits);
    assert_eq!(
        dec.advance(b"0\r\nX: 0123456789abcdef\r\n\r\n"),
        Err(ChunkError::TrailersTooLarge)
    );
    let mut dec = ChunkedDecoder::new(limits);
    assert_eq!(
        dec.advance(b"0\r\nX: 0123456789ab\r\n\r\n").map(|p| p.done),
        Ok(true)
    );
}

#[test]
fn maximal_chunk_size_is_accepted() {
    let mut dec = ChunkedDecoder::default();
    let p = dec.advance(b"ffffffffffffffff\r\nabc");
    assert_eq!(p.map(|p| (p.consumed, p.done)), Ok((21, false)));
    assert_eq!(dec.data_bytes(), 3);
}
