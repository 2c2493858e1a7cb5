//! Fuzzing entry point: drives every parser and writer over arbitrary bytes.

use crate::{
    parse_request, parse_response, write_request_head, write_response_head, BodyFraming,
    ChunkLimits, ChunkedDecoder, HeadEdits, Limits, Method, Parsed,
};

/// Runs `data` through the request parser (and, for a chunked request, the chunked
/// decoder over the bytes after the head), the response parser, a standalone chunked
/// decoder fed in uneven pieces, and the head writers. It must never panic; a fuzz
/// target only needs to call it. Returns how many stages accepted their input, so
/// callers cannot optimise the work away.
pub fn fuzz_one(data: &[u8]) -> usize {
    let limits = Limits {
        max_request_line: 512,
        max_header_bytes: 4096,
        max_headers: 32,
    };
    let mut headers = Vec::new();
    let mut out = Vec::new();
    let mut accepted = 0;
    let edits = HeadEdits {
        forwarded_for: Some("192.0.2.1"),
        keep_upgrade: true,
        connection_close: true,
        ..HeadEdits::default()
    };

    if let Ok(Parsed::Complete(head)) = parse_request(data, &limits, &mut headers) {
        accepted += 1;
        write_request_head(&mut out, data, &head, &headers, &edits);
        if head.body == BodyFraming::Chunked {
            let mut dec = ChunkedDecoder::new(ChunkLimits::default());
            let body = data.get(head.head_len..).unwrap_or(&[]);
            if dec.advance(body).is_ok() {
                accepted += 1;
            }
        }
    }
    for method in [Method::Get, Method::Head] {
        if let Ok(Parsed::Complete(head)) = parse_response(data, &limits, method, &mut headers) {
            accepted += 1;
            out.clear();
            write_response_head(&mut out, data, &head, &headers, &edits);
        }
    }

    let mut dec = ChunkedDecoder::new(ChunkLimits {
        max_line: 64,
        max_trailer_bytes: 256,
    });
    let mut rest = data;
    let mut piece = 1;
    while !rest.is_empty() {
        let (now, later) = rest.split_at(piece.min(rest.len()));
        match dec.advance(now) {
            Ok(p) if p.done => {
                accepted += 1;
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
        rest = later;
        piece = piece % 7 + 1;
    }
    accepted
}
