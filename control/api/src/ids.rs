//! Stable ids for clusters and endpoints. They key per-worker state (pools, EWMA,
//! health) across table swaps and cross process boundaries, so they must never
//! depend on the Rust version or a random seed: FNV-1a 64 rather than std's hasher.

use crate::snapshot::StableId;

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
}
