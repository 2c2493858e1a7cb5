use super::*;

fn cluster(n: u64) -> Vec<RingEndpoint> {
    (0..n)
        .map(|i| RingEndpoint {
            key: 1000 + i,
            weight: 1,
        })
        .collect()
}

fn owner_key(ring: &RingHash, endpoints: &[RingEndpoint], hash: u64) -> u64 {
    endpoints[ring.pick(hash).unwrap()].key
}

fn request_keys(count: u64) -> impl Iterator<Item = u64> {
    (0..count).map(|i| key_hash(format!("session-{i}").as_bytes()))
}

#[test]
fn xxh64_matches_reference_vectors() {
    assert_eq!(xxh64(b"", 0), 0xEF46_DB37_51D8_E999);
    assert_eq!(xxh64(b"a", 0), 0xD24E_C4F1_A98C_6E5B);
    assert_eq!(xxh64(b"abc", 0), 0x44BC_2CF5_AD77_0999);
    assert_eq!(xxh64(&[b'a'; 32], 0), 0x856E_8432_98F9_9AD7);
    assert_eq!(
        xxh64(b"Nobody inspects the spammish repetition", 0),
        0xFBCE_A83C_8A37_8BF1
    );
    assert_ne!(xxh64(b"abc", 1), xxh64(b"abc", 0));
}

#[test]
fn same_key_same_endpoint_across_builds() {
    let endpoints = cluster(10);
    let a = RingHash::build(&endpoints, RingConfig::default());
    let b = RingHash::build(&endpoints, RingConfig::default());
    for hash in request_keys(10_000) {
        assert_eq!(a.pick(hash), b.pick(hash));
        assert_eq!(a.pick(hash), a.pick(hash));
    }
    assert_eq!(a.len(), 4000);
}

#[test]
fn ten_endpoints_share_keys_evenly() {
    let endpoints = cluster(10);
    let ring = RingHash::build(&endpoints, RingConfig::default());
    let mut counts = [0u32; 10];
    for hash in request_keys(100_000) {
        counts[ring.pick(hash).unwrap()] += 1;
    }
    for count in counts {
        assert!((8_000..=12_000).contains(&count), "{counts:?}");
    }
}

#[test]
fn removing_one_of_ten_moves_only_its_keys() {
    let before = cluster(10);
    let mut after = before.clone();
    let removed = after.remove(3);
    let ring_before = RingHash::build(&before, RingConfig::default());
    let ring_after = RingHash::build(&after, RingConfig::default());
    let mut moved = 0u32;
    for hash in request_keys(100_000) {
        let old = owner_key(&ring_before, &before, hash);
        let new = owner_key(&ring_after, &after, hash);
        if old != new {
            moved += 1;
            assert_eq!(old, removed.key, "a key moved off a surviving endpoint");
        }
    }
    assert!((7_000..=15_000).contains(&moved), "{moved}");
}

#[test]
fn weight_buys_proportional_share() {
    let mut endpoints = cluster(3);
    endpoints[0].weight = 2;
    let ring = RingHash::build(&endpoints, RingConfig::default());
    assert_eq!(ring.len(), 1600);
    let mut counts = [0u32; 3];
    for hash in request_keys(100_000) {
        counts[ring.pick(hash).unwrap()] += 1;
    }
    // 2:1:1 → 50% / 25% / 25%.
    assert!((46_000..=54_000).contains(&counts[0]), "{counts:?}");
    assert!((21_000..=29_000).contains(&counts[1]), "{counts:?}");
}

#[test]
fn small_and_skewed_clusters_respect_ring_bounds() {
    let config = RingConfig::default();
    let small = RingHash::build(&cluster(1), config);
    assert_eq!(small.len(), config.min_ring_size);
    let skewed = [
        RingEndpoint { key: 1, weight: 1 },
        RingEndpoint {
            key: 2,
            weight: 1_000_000,
        },
    ];
    let ring = RingHash::build(&skewed, config);
    assert!(ring.len() <= config.max_ring_size + 1, "{}", ring.len());
    // The light endpoint keeps at least one node.
    assert_eq!(ring.pick(node_hash(1, 0)), Some(0));
}

#[test]
fn empty_and_zero_weight() {
    let ring = RingHash::build(&[], RingConfig::default());
    assert!(ring.is_empty());
    assert_eq!(ring.pick(42), None);
    let zero = [RingEndpoint { key: 5, weight: 0 }];
    assert_eq!(RingHash::build(&zero, RingConfig::default()).pick(1), None);
}

#[test]
fn pick_other_skips_the_avoided_endpoint() {
    let endpoints = cluster(4);
    let ring = RingHash::build(&endpoints, RingConfig::default());
    for hash in request_keys(1_000) {
        let first = ring.pick(hash).unwrap();
        let other = ring.pick_other(hash, first).unwrap();
        assert_ne!(first, other);
        assert_eq!(ring.pick_other(hash, 99), Some(first));
    }
    let one = RingHash::build(&cluster(1), RingConfig::default());
    assert_eq!(one.pick_other(7, 0), None);
}
