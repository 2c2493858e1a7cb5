//! A compact binary encoding of serde data for snapshot frames (protocol 1.2):
//! the same data model as the JSON frames, without text to scan or numbers to
//! parse, so a dataplane decodes a large table several times faster.
//!
//! # Format (version 1)
//! Every value is one tag byte followed by its data:
//!
//! | tag | value | data |
//! |---|---|---|
//! | 0 | null (`None`, unit) | none |
//! | 1, 2 | `false`, `true` | none |
//! | 3 | unsigned integer | LEB128 varint, at most 10 bytes |
//! | 4 | negative integer | zigzag LEB128 varint |
//! | 5 | float | 8 bytes, IEEE 754 little-endian |
//! | 6 | string | varint byte length, then UTF-8 |
//! | 7 | bytes | varint byte length, then the bytes |
//! | 8 | sequence (and tuple) | varint count, then the values |
//! | 9 | map (and struct) | varint count, then key, value, key, value… |
//! | 10 | name, first use | varint byte length, then UTF-8; becomes the next entry of the names table |
//! | 11 | name, again | varint index into the names table |
//!
//! Structs are maps keyed by field name, and enums are as in JSON (a unit variant
//! is its name as a string, any other variant a one-entry map from its name to its
//! content). Field and variant names are written once per payload (tag 10) and then
//! referred to by index (tag 11): the payload of a large table is mostly names
//! otherwise. The names table starts empty for each payload. That keeps the compatibility rules of the JSON frames: a field left
//! out (`skip_serializing_if`) takes its default, an unknown field is skipped.
//! Binary-only (non human-readable) serde forms are used, e.g. a socket address
//! is its octets and port rather than text.
//!
//! # Safety on malformed input
//! Decoding never panics and never allocates more than the input justifies: every
//! length and count is checked against the bytes left before anything is
//! reserved, varints longer than 10 bytes are refused, and nesting is limited to
//! [`MAX_DEPTH`] so hostile input cannot exhaust the stack.

mod de;
mod ser;

pub use de::from_slice;
pub use ser::to_writer;

/// Deepest nesting of sequences, maps and enums accepted by the decoder.
pub const MAX_DEPTH: usize = 64;

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const UINT: u8 = 3;
const NINT: u8 = 4;
const FLOAT: u8 = 5;
const STR: u8 = 6;
const BYTES: u8 = 7;
const SEQ: u8 = 8;
const MAP: u8 = 9;
const NAME: u8 = 10;
const NAME_REF: u8 = 11;

/// Why a value could not be encoded or decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("binary encoding: {0}")]
pub struct Error(pub String);

impl serde::ser::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

impl serde::de::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

#[cfg(test)]
mod tests;
