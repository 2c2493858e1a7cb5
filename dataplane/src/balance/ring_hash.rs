//! Consistent hashing on a ketama-style ring: each endpoint owns virtual nodes in
//! proportion to its weight, and a key goes to the first node at or after its hash.
//! Also owns the project's stable 64-bit hash (XXH64), shared with maglev.

/// Settings for building a ring. Sizes count virtual nodes (ring entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingConfig {
    /// Virtual nodes for the lightest endpoint; heavier ones get proportionally more.
    /// The share of keys each endpoint gets deviates by about `1/sqrt(vnodes)` of its
    /// fair share, so 400 keeps that near 5%.
    pub vnodes: u32,
    /// Small clusters get more nodes per endpoint until the ring has at least this many.
    pub min_ring_size: usize,
    /// Heavily skewed weights are scaled down so the ring never exceeds this.
    pub max_ring_size: usize,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            vnodes: 400,
            min_ring_size: 1024,
            max_ring_size: 1 << 20,
        }
    }
}

/// One endpoint as the ring sees it. `key` must be stable across table swaps (the
/// endpoint's stable id, or `key_hash` of its address), never its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingEndpoint {
    pub key: u64,
    pub weight: u32,
}

/// The built ring: sorted node hashes, and beside them the endpoint index owning each.
/// Two arrays instead of pairs keep the binary search on densely packed hashes.
#[derive(Debug, Clone, Default)]
pub struct RingHash {
    hashes: Vec<u64>,
    owners: Vec<u32>,
}

impl RingHash {
    /// Builds the ring once per table generation. Endpoints with weight 0 get no nodes.
    pub fn build(endpoints: &[RingEndpoint], config: RingConfig) -> Self {
        let counts = node_counts(endpoints, config);
        let total: usize = counts.iter().map(|c| *c as usize).sum();
        let mut nodes: Vec<(u64, u32)> = Vec::with_capacity(total);
        for (index, (endpoint, count)) in endpoints.iter().zip(&counts).enumerate() {
            let owner = u32::try_from(index).unwrap_or(u32::MAX);
            for replica in 0..*count {
                nodes.push((node_hash(endpoint.key, replica), owner));
            }
        }
        // Ties (astronomically rare) are broken by owner so the ring is the same on
        // every worker and every run.
        nodes.sort_unstable();
        RingHash {
            hashes: nodes.iter().map(|(hash, _)| *hash).collect(),
            owners: nodes.iter().map(|(_, owner)| *owner).collect(),
        }
    }

    /// The endpoint index for a key hash: the first node clockwise from it.
    pub fn pick(&self, hash: u64) -> Option<usize> {
        let at = self.hashes.partition_point(|node| *node < hash);
        let owner = match self.owners.get(at) {
            Some(owner) => *owner,
            None => *self.owners.first()?,
        };
        Some(owner as usize)
    }

    /// The first endpoint clockwise from the key that is not `avoid`: where a retry
    /// (or an ejected endpoint's keys) goes while keeping keys sticky.
    pub fn pick_other(&self, hash: u64, avoid: usize) -> Option<usize> {
        let len = self.hashes.len();
        let start = self.hashes.partition_point(|node| *node < hash);
        (0..len)
            .filter_map(|step| self.owners.get((start + step) % len))
            .map(|owner| *owner as usize)
            .find(|owner| *owner != avoid)
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

/// Nodes per endpoint: `vnodes × weight / lightest weight`, raised for small clusters
/// and lowered for skewed weights. Counts depend only on the weights, so removing an
/// endpoint leaves every other endpoint's nodes where they were.
fn node_counts(endpoints: &[RingEndpoint], config: RingConfig) -> Vec<u32> {
    let lightest = endpoints
        .iter()
        .map(|e| e.weight)
        .filter(|w| *w > 0)
        .min()
        .unwrap_or(1);
    let relative: Vec<f64> = endpoints
        .iter()
        .map(|e| f64::from(e.weight) / f64::from(lightest))
        .collect();
    let units: f64 = relative.iter().sum();
    if units <= 0.0 {
        return vec![0; endpoints.len()];
    }
    let mut per_unit = f64::from(config.vnodes.max(1));
    if per_unit * units < config.min_ring_size as f64 {
        per_unit = (config.min_ring_size as f64 / units).ceil();
    }
    if per_unit * units > config.max_ring_size as f64 {
        per_unit = config.max_ring_size as f64 / units;
    }
    relative
        .iter()
        .map(|r| {
            if *r > 0.0 {
                // At least one node: a positive weight must be reachable.
                ((r * per_unit).round() as u32).max(1)
            } else {
                0
            }
        })
        .collect()
}

fn node_hash(key: u64, replica: u32) -> u64 {
    let mut bytes = [0u8; 12];
    for (slot, byte) in bytes
        .iter_mut()
        .zip(key.to_le_bytes().into_iter().chain(replica.to_le_bytes()))
    {
        *slot = byte;
    }
    xxh64(&bytes, 0)
}

/// The hash of a request's key (header value, cookie, source address) for `pick`.
pub fn key_hash(bytes: &[u8]) -> u64 {
    xxh64(bytes, 0)
}

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

/// XXH64, written out here so the ring (and so which endpoint a key sticks to) can
/// never change under a dependency upgrade. Checked against the reference vectors.
pub fn xxh64(input: &[u8], seed: u64) -> u64 {
    let len = input.len() as u64;
    let mut stripes = input.chunks_exact(32);
    let mut hash = if input.len() >= 32 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        for stripe in &mut stripes {
            for (lane, word) in v.iter_mut().zip(stripe.chunks_exact(8)) {
                *lane = round(*lane, read_le(word));
            }
        }
        let [v1, v2, v3, v4] = v;
        let mut h = v1
            .rotate_left(1)
            .wrapping_add(v2.rotate_left(7))
            .wrapping_add(v3.rotate_left(12))
            .wrapping_add(v4.rotate_left(18));
        for lane in v {
            h = (h ^ round(0, lane)).wrapping_mul(P1).wrapping_add(P4);
        }
        h
    } else {
        seed.wrapping_add(P5)
    };
    hash = hash.wrapping_add(len);
    let mut words = stripes.remainder().chunks_exact(8);
    for word in &mut words {
        hash ^= round(0, read_le(word));
        hash = hash.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
    }
    let mut halves = words.remainder().chunks_exact(4);
    for half in &mut halves {
        hash ^= read_le(half).wrapping_mul(P1);
        hash = hash.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
    }
    for byte in halves.remainder() {
        hash ^= u64::from(*byte).wrapping_mul(P5);
        hash = hash.rotate_left(11).wrapping_mul(P1);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(P2);
    hash ^= hash >> 29;
    hash = hash.wrapping_mul(P3);
    hash ^ (hash >> 32)
}

fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

/// Little-endian value of up to 8 bytes, without slice-to-array conversions that
/// could fail.
fn read_le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte))
}

#[cfg(test)]
#[path = "ring_hash_tests.rs"]
mod tests;
