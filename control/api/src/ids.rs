//! Stable ids for clusters and endpoints. They key per-worker state (pools, EWMA,
//! health) across table swaps and cross process boundaries, so they must never
//! depend on the Rust version or a random seed: FNV-1a 64 rather than std's hasher.

use crate::snapshot::StableId;
use std::fmt::Write as _;
use std::net::SocketAddr;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash = FNV_OFFSET;
    for part in parts {
        for byte in *part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(FNV_PRIME);
        }
    }
    hash
}

/// Identity of the cluster named `name`.
pub fn cluster_id(name: &str) -> StableId {
    StableId(fnv1a(&[name.as_bytes()]))
}

/// Identity of the endpoint `addr` (as `SocketAddr` displays it) in cluster `cluster`.
/// The NUL separator keeps ("a", "b:1") and ("ab", ":1")-style pairs apart.
pub fn endpoint_id(cluster: &str, addr: &str) -> StableId {
    StableId(fnv1a(&[cluster.as_bytes(), b"\0", addr.as_bytes()]))
}

/// [`endpoint_id`] of `addr`, written as `SocketAddr` displays it into `scratch`
/// (reused across calls). A table swap computes this for every endpoint, and
/// IPv4 text written digit by digit costs a fraction of going through `fmt`.
pub fn endpoint_id_of(cluster: &str, addr: &SocketAddr, scratch: &mut String) -> StableId {
    scratch.clear();
    match addr {
        SocketAddr::V4(v4) => {
            for (i, octet) in v4.ip().octets().iter().enumerate() {
                if i > 0 {
                    scratch.push('.');
                }
                push_decimal(scratch, u32::from(*octet));
            }
            scratch.push(':');
            push_decimal(scratch, u32::from(v4.port()));
        }
        // Writing into a `String` cannot fail.
        SocketAddr::V6(_) => {
            let _ = write!(scratch, "{addr}");
        }
    }
    endpoint_id(cluster, scratch)
}

fn push_decimal(out: &mut String, mut value: u32) {
    let mut digits = [0u8; 10];
    let mut start = digits.len();
    loop {
        start -= 1;
        // A digit is 0..=9: the narrowing cannot lose anything.
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    for digit in &digits[start..] {
        out.push(char::from(*digit));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(&[b""]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(&[b"foobar"]), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a(&[b"foo", b"bar"]), fnv1a(&[b"foobar"]));
    }

    #[test]
    fn ids_are_fixed_and_distinct() {
        assert_eq!(cluster_id("web"), StableId(fnv1a(&[b"web"])));
        assert_eq!(cluster_id("foobar"), StableId(0x8594_4171_f739_67e8));
        assert_ne!(cluster_id("web"), cluster_id("api"));
        assert_ne!(cluster_id("web"), cluster_id("Web"));
        assert_eq!(endpoint_id("foo", "bar"), StableId(fnv1a(&[b"foo\0bar"])));
        assert_ne!(
            endpoint_id("web", "127.0.0.1:9000"),
            endpoint_id("api", "127.0.0.1:9000")
        );
        assert_ne!(
            endpoint_id("web", "127.0.0.1:9000"),
            endpoint_id("web", "127.0.0.1:9001")
        );
    }

    #[test]
    fn fast_address_text_is_what_display_writes() {
        let mut scratch = String::new();
        let addrs = [
            "0.0.0.0:0",
            "127.0.0.1:9000",
            "255.255.255.255:65535",
            "10.20.3.40:80",
            "[::1]:443",
            "[2001:db8::17]:8080",
        ];
        for text in addrs {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(
                endpoint_id_of("web", &addr, &mut scratch),
                endpoint_id("web", &addr.to_string())
            );
            assert_eq!(scratch, addr.to_string());
        }
        for octet in 0..=255u8 {
            let addr = SocketAddr::from(([octet, 1, octet, 9], u16::from(octet) * 257));
            endpoint_id_of("c", &addr, &mut scratch);
            assert_eq!(scratch, addr.to_string());
        }
    }
}
