//! Property loop: random bytes and mutations of valid messages never panic, and the
//! parsers' answers are consistent across prefixes, extensions and splits.

use super::Rng;
use crate::{
    fuzz_one, parse_request, parse_response, ChunkLimits, ChunkedDecoder, HeaderSpan, Limits,
    Method, Parsed,
};

const SEEDS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: a.example:80\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nT: v\r\n\r\n",
    b"PUT /y HTTP/1.0\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: [::1]\r\nExpect: 100-continue\r\n\r\n",
    b"a;b=\"c\"\r\n0123456789\r\n0\r\n\r\n",
];

/// Bytes that matter to the grammar, so mutations hit interesting paths often.
const INTERESTING: &[u8] = b"\r\n \t:;,\"\\=0aA9fF/*\x00\x7f\x80";

fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    for _ in 0..rng.below(4) + 1 {
        let at = rng.below(input.len() + 1);
        let byte = if rng.below(2) == 0 {
            INTERESTING[rng.below(INTERESTING.len())]
        } else {
            rng.next() as u8
        };
        match rng.below(5) {
            0 if at < input.len() => input[at] = byte,
            1 => input.insert(at, byte),
            2 if at < input.len() => {
                input.remove(at);
            }
            3 => input.truncate(at),
            _ => {
                let from = rng.below(input.len() + 1);
                let to = (from + rng.below(16)).min(input.len());
                let piece = input[from..to].to_vec();
                input.splice(at..at, piece);
            }
        }
    }
}

fn spans_in_bounds(buf: &[u8], headers: &[HeaderSpan]) {
    for h in headers {
        assert!(h.name.start <= h.name.end && h.name.end as usize <= buf.len());
        assert!(h.value.start <= h.value.end && h.value.end as usize <= buf.len());
    }
}

/// A Complete head must stay Complete (and identical) when more bytes follow it, and every
/// strict prefix of it must be Partial: otherwise partial reads could change the answer.
fn check_request_consistency(buf: &[u8], limits: &Limits) {
    let mut headers = Vec::new();
    let Ok(Parsed::Complete(head)) = parse_request(buf, limits, &mut headers) else {
        return;
    };
    assert!(head.head_len <= buf.len());
    spans_in_bounds(buf, &headers);
    let head_bytes = &buf[..head.head_len];
    let mut again = Vec::new();
    assert_eq!(
        parse_request(head_bytes, limits, &mut again),
        Ok(Parsed::Complete(head))
    );
    assert_eq!(again, headers);
    for n in 0..head.head_len {
        assert_eq!(
            parse_request(&buf[..n], limits, &mut again),
            Ok(Parsed::Partial),
            "prefix {n} of {buf:?}"
        );
    }
}

fn check_response_consistency(buf: &[u8], limits: &Limits) {
    let mut headers = Vec::new();
    let Ok(Parsed::Complete(head)) = parse_response(buf, limits, Method::Get, &mut headers) else {
        return;
    };
    spans_in_bounds(buf, &headers);
    for n in 0..head.head_len {
        assert_eq!(
            parse_response(&buf[..n], limits, Method::Get, &mut headers),
            Ok(Parsed::Partial),
            "prefix {n} of {buf:?}"
        );
    }
}

/// The decoder's verdict must not depend on how the input is split.
fn check_chunked_split_invariance(rng: &mut Rng, buf: &[u8]) {
    let limits = ChunkLimits {
        max_line: 32,
        max_trailer_bytes: 64,
    };
    let mut dec = ChunkedDecoder::new(limits);
    let whole = dec.advance(buf).map(|p| (p.consumed, p.done));
    let mut dec = ChunkedDecoder::new(limits);
    let mut at = 0;
    let split = loop {
        if at == buf.len() {
            break Ok((at, dec.is_done()));
        }
        let n = (rng.below(5) + 1).min(buf.len() - at);
        match dec.advance(&buf[at..at + n]) {
            Err(e) => break Err(e),
            Ok(p) => {
                at += p.consumed;
                if p.done {
                    break Ok((at, true));
                }
            }
        }
    };
    assert_eq!(whole, split, "{buf:?}");
}

#[test]
fn random_and_mutated_inputs_never_panic() {
    let limits = Limits {
        max_request_line: 256,
        max_header_bytes: 1024,
        max_headers: 16,
    };
    let mut rng = Rng::new(0x5eed_1234_abcd_ef01);
    let mut accepted = 0;
    // RINGMESH_PROP_ROUNDS / RINGMESH_PROP_SEED allow longer or different soak runs.
    let rounds = std::env::var("RINGMESH_PROP_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    if let Some(seed) = std::env::var("RINGMESH_PROP_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        rng = Rng::new(seed);
    }
    for round in 0..rounds {
        let mut input = if round % 4 == 0 {
            (0..rng.below(96)).map(|_| rng.next() as u8).collect()
        } else {
            SEEDS[rng.below(SEEDS.len())].to_vec()
        };
        if round % 4 != 0 {
            mutate(&mut rng, &mut input);
        }
        accepted += fuzz_one(&input);
        check_request_consistency(&input, &limits);
        check_response_consistency(&input, &limits);
        check_chunked_split_invariance(&mut rng, &input);
    }
    // Sanity: the mutations leave a fair share of inputs valid, so the checks above ran.
    assert!(accepted > 1000, "only {accepted} accepted");
}
