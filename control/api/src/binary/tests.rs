//! Round trips and malformed input for the binary format.

#![allow(clippy::unwrap_used)]

use super::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Kind {
    Unit,
    Newtype(u32),
    Tuple(i64, String),
    Struct { a: Option<u8>, b: Vec<u16> },
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Sample {
    name: String,
    negative: i32,
    big: u64,
    ratio: f64,
    flag: bool,
    addrs: Vec<SocketAddr>,
    kinds: Vec<Kind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    skipped: Option<String>,
    map: BTreeMap<String, (u8, char)>,
    bytes: serde_bytes_like::Bytes,
}

/// A byte buffer serialized as bytes (not as a sequence), without a dependency.
mod serde_bytes_like {
    #[derive(Debug, PartialEq)]
    pub struct Bytes(pub Vec<u8>);
    impl serde::Serialize for Bytes {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }
    impl<'de> serde::Deserialize<'de> for Bytes {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Bytes;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                    Ok(Bytes(v.to_vec()))
                }
            }
            d.deserialize_bytes(V)
        }
    }
}

fn sample() -> Sample {
    Sample {
        name: "edge ✓".into(),
        negative: -70_000,
        big: u64::MAX,
        ratio: -1.5,
        flag: true,
        addrs: vec![
            "127.0.0.1:80".parse().unwrap(),
            "[::1]:443".parse().unwrap(),
        ],
        kinds: vec![
            Kind::Unit,
            Kind::Newtype(7),
            Kind::Tuple(i64::MIN, "t".into()),
            Kind::Struct {
                a: None,
                b: vec![1, 300],
            },
        ],
        skipped: None,
        map: BTreeMap::from([("k".to_string(), (255, 'é'))]),
        bytes: serde_bytes_like::Bytes(vec![0, 1, 2]),
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    to_writer(&mut out, value).unwrap();
    out
}

#[test]
fn round_trips_every_kind_of_value() {
    let bytes = encode(&sample());
    assert_eq!(from_slice::<Sample>(&bytes).unwrap(), sample());
}

/// Old readers skip fields they do not know; new readers default missing ones.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Old {
    name: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct New {
    name: String,
    #[serde(default)]
    added: Vec<BTreeMap<String, Kind>>,
}

#[test]
fn unknown_fields_are_skipped_and_missing_ones_default() {
    let new = New {
        name: "a".into(),
        added: vec![BTreeMap::from([("x".into(), Kind::Tuple(-1, "y".into()))])],
    };
    let old: Old = from_slice(&encode(&new)).unwrap();
    assert_eq!(old.name, "a");
    let back: New = from_slice(&encode(&old)).unwrap();
    assert_eq!(back.added, Vec::new());
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    let bytes = encode(&sample());
    for cut in 0..bytes.len() {
        assert!(from_slice::<Sample>(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    // Every single-byte corruption either decodes to something or is refused.
    for at in 0..bytes.len() {
        for value in [0u8, 0x7f, 0x80, 0xff, 9] {
            let mut broken = bytes.clone();
            broken[at] = value;
            let _ = from_slice::<Sample>(&broken);
        }
    }
    let mut trailing = bytes.clone();
    trailing.push(NULL);
    assert!(from_slice::<Sample>(&trailing).is_err());
}

#[test]
fn counts_and_lengths_are_checked_before_allocating() {
    // A sequence announcing 2^60 elements in a 12-byte input.
    let mut huge = vec![SEQ];
    huge.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]);
    let err = from_slice::<Vec<u8>>(&huge).unwrap_err();
    assert!(err.0.contains("exceeds"), "{err}");
    let long_string = [STR, 0xff, 0x01, b'a'];
    assert!(from_slice::<String>(&long_string).is_err());
    let overlong = [
        UINT, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
    ];
    assert!(from_slice::<u64>(&overlong).is_err());
    assert!(from_slice::<String>(&[STR, 2, 0xc3, 0x28]).is_err());
}

#[test]
fn nesting_is_limited() {
    let mut deep = Vec::new();
    for _ in 0..MAX_DEPTH + 1 {
        deep.extend_from_slice(&[SEQ, 1]);
    }
    deep.push(NULL);
    let err = from_slice::<serde::de::IgnoredAny>(&deep).unwrap_err();
    assert!(err.0.contains("nested"), "{err}");
    // Within the limit it decodes.
    let ok: Vec<Vec<()>> = from_slice(&[SEQ, 1, SEQ, 1, NULL]).unwrap();
    assert_eq!(ok, vec![vec![()]]);
}

#[test]
fn integers_out_of_range_are_refused() {
    assert!(from_slice::<u8>(&encode(&300u32)).is_err());
    assert!(from_slice::<u32>(&encode(&-1i32)).is_err());
    assert_eq!(from_slice::<i8>(&encode(&-128i64)).unwrap(), -128);
}

#[test]
fn names_are_written_once_then_referred_to() {
    let many: Vec<Old> = (0..100)
        .map(|i| Old {
            name: i.to_string(),
        })
        .collect();
    let bytes = encode(&many);
    let field = b"name";
    let written = bytes.windows(field.len()).filter(|w| w == field).count();
    assert_eq!(written, 1);
    assert_eq!(from_slice::<Vec<Old>>(&bytes).unwrap(), many);
    // A reference to a name never defined is refused.
    assert!(from_slice::<Old>(&[MAP, 1, NAME_REF, 0, STR, 0]).is_err());
    assert_eq!(
        from_slice::<Old>(&[MAP, 1, NAME, 4, b'n', b'a', b'm', b'e', STR, 1, b'x']).unwrap(),
        Old { name: "x".into() }
    );
}
