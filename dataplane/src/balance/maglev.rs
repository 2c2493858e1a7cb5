//! Maglev consistent hashing (Eisenbud et al., NSDI 2016): a prime-sized lookup table
//! filled from per-endpoint permutations, so a key's endpoint is one `table[hash % M]`
//! and every endpoint owns an almost exactly weight-proportional share of the slots.

use super::ring_hash::{xxh64, RingEndpoint};

/// The table size Envoy uses by default: prime, and large enough that 100+ endpoints
/// still get even shares.
pub const DEFAULT_TABLE_SIZE: usize = 65_537;

/// An endpoint for the table: the same stable key and weight the ring uses.
pub type MaglevEndpoint = RingEndpoint;

/// Seeds for the two independent hashes the paper derives `offset` and `skip` from.
const OFFSET_SEED: u64 = 0x6d61_676c_6576_0001;
const SKIP_SEED: u64 = 0x6d61_676c_6576_0002;
/// Marks an unfilled slot while building.
const EMPTY: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaglevError {
    #[error("maglev table size {0} is not prime (try 65537)")]
    NotPrime(usize),
    #[error("maglev table size {size} is smaller than the number of endpoints ({endpoints})")]
    TooSmall { size: usize, endpoints: usize },
    #[error("maglev table size {0} exceeds 2^32 - 1")]
    TooLarge(usize),
}

#[derive(Debug, Clone, Default)]
pub struct Maglev {
    table: Vec<u32>,
}

/// One endpoint's walk through its permutation while the table fills.
struct Builder {
    owner: u32,
    weight: u64,
    /// Current position in the permutation: starts at `offset`, steps by `skip`.
    position: u64,
    skip: u64,
    /// The endpoint may take a slot in an iteration once `iteration × weight` reaches
    /// this; each slot taken raises it by the heaviest weight, so an endpoint of half
    /// the heaviest weight takes a slot every other iteration.
    target: u64,
}

impl Maglev {
    /// Builds the table once per table generation; `table_size` must be prime so
    /// every `skip` is coprime with it and each permutation visits every slot.
    pub fn build(endpoints: &[MaglevEndpoint], table_size: usize) -> Result<Self, MaglevError> {
        if !is_prime(table_size) {
            return Err(MaglevError::NotPrime(table_size));
        }
        if table_size < endpoints.len() {
            return Err(MaglevError::TooSmall {
                size: table_size,
                endpoints: endpoints.len(),
            });
        }
        let Ok(size32) = u32::try_from(table_size) else {
            return Err(MaglevError::TooLarge(table_size));
        };
        let size = u64::from(size32);
        let mut builders: Vec<Builder> = endpoints
            .iter()
            .enumerate()
            .filter(|(_, endpoint)| endpoint.weight > 0)
            .filter_map(|(index, endpoint)| {
                let key = endpoint.key.to_le_bytes();
                Some(Builder {
                    owner: u32::try_from(index).ok()?,
                    weight: u64::from(endpoint.weight),
                    position: xxh64(&key, OFFSET_SEED) % size,
                    skip: xxh64(&key, SKIP_SEED) % (size - 1) + 1,
                    target: 0,
                })
            })
            .collect();
        let Some(heaviest) = builders.iter().map(|b| b.weight).max() else {
            return Ok(Maglev::default());
        };
        let mut table = vec![EMPTY; table_size];
        let mut filled = 0usize;
        // The heaviest endpoint takes a slot every iteration, so this terminates
        // after at most `table_size` iterations.
        let mut iteration = 0u64;
        while filled < table_size {
            iteration += 1;
            for builder in &mut builders {
                if filled == table_size {
                    break;
                }
                if iteration.saturating_mul(builder.weight) < builder.target {
                    continue;
                }
                builder.target = builder.target.saturating_add(heaviest);
                if claim_next(&mut table, builder, size) {
                    filled += 1;
                }
            }
        }
        Ok(Maglev { table })
    }

    /// The endpoint index for a key hash.
    pub fn pick(&self, hash: u64) -> Option<usize> {
        let len = self.table.len() as u64;
        if len == 0 {
            return None;
        }
        let slot = usize::try_from(hash % len).ok()?;
        self.table.get(slot).map(|owner| *owner as usize)
    }

    /// The table size (0 when no endpoint has weight).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Slots owned by endpoint `index`: its share of keys is this over `len()`.
    pub fn slots_of(&self, index: usize) -> usize {
        self.table
            .iter()
            .filter(|owner| **owner as usize == index)
            .count()
    }
}

/// Takes the builder's next free preferred slot. Returns false only if the table is
/// already full (the permutation visits every slot, so a free one is always found).
fn claim_next(table: &mut [u32], builder: &mut Builder, size: u64) -> bool {
    for _ in 0..size {
        let slot = usize::try_from(builder.position).ok();
        builder.position = (builder.position + builder.skip) % size;
        if let Some(entry) = slot.and_then(|slot| table.get_mut(slot)) {
            if *entry == EMPTY {
                *entry = builder.owner;
                return true;
            }
        }
    }
    false
}

fn is_prime(n: usize) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let mut divisor = 3usize;
    while divisor.saturating_mul(divisor) <= n {
        if n.is_multiple_of(divisor) {
            return false;
        }
        divisor += 2;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::ring_hash::key_hash;

    fn cluster(n: u64) -> Vec<MaglevEndpoint> {
        (0..n)
            .map(|i| MaglevEndpoint {
                key: 1000 + i,
                weight: 1,
            })
            .collect()
    }

    fn request_keys(count: u64) -> impl Iterator<Item = u64> {
        (0..count).map(|i| key_hash(format!("session-{i}").as_bytes()))
    }

    #[test]
    fn same_key_same_endpoint_across_builds() {
        let endpoints = cluster(10);
        let a = Maglev::build(&endpoints, DEFAULT_TABLE_SIZE).unwrap();
        let b = Maglev::build(&endpoints, DEFAULT_TABLE_SIZE).unwrap();
        assert_eq!(a.table, b.table);
        for hash in request_keys(10_000) {
            assert_eq!(a.pick(hash), b.pick(hash));
        }
    }

    #[test]
    fn slots_and_keys_are_even() {
        let table = Maglev::build(&cluster(10), DEFAULT_TABLE_SIZE).unwrap();
        for index in 0..10 {
            // Equal weights: each endpoint takes one slot per round.
            let slots = table.slots_of(index);
            assert!((6_553..=6_554).contains(&slots), "{index}: {slots}");
        }
        let mut counts = [0u32; 10];
        for hash in request_keys(100_000) {
            counts[table.pick(hash).unwrap()] += 1;
        }
        for count in counts {
            assert!((8_000..=12_000).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn removing_one_of_ten_moves_few_keys() {
        let before = cluster(10);
        let mut after = before.clone();
        let removed = after.remove(6);
        let old = Maglev::build(&before, DEFAULT_TABLE_SIZE).unwrap();
        let new = Maglev::build(&after, DEFAULT_TABLE_SIZE).unwrap();
        let (mut moved, mut moved_off_survivor) = (0u32, 0u32);
        for hash in request_keys(100_000) {
            let was = before[old.pick(hash).unwrap()].key;
            let now = after[new.pick(hash).unwrap()].key;
            if was != now {
                moved += 1;
                if was != removed.key {
                    moved_off_survivor += 1;
                }
            }
        }
        // The removed endpoint's ~10% must move; the paper's bound on extra churn
        // keeps the rest small.
        assert!((9_000..20_000).contains(&moved), "{moved}");
        assert!(moved_off_survivor < 5_000, "{moved_off_survivor}");
    }

    #[test]
    fn weights_are_proportional() {
        let mut endpoints = cluster(3);
        endpoints[0].weight = 3;
        endpoints[1].weight = 2;
        let table = Maglev::build(&endpoints, DEFAULT_TABLE_SIZE).unwrap();
        let share = |i| table.slots_of(i) as f64 / DEFAULT_TABLE_SIZE as f64;
        assert!((share(0) - 0.5).abs() < 0.01, "{}", share(0));
        assert!((share(1) - 1.0 / 3.0).abs() < 0.01, "{}", share(1));
        assert!((share(2) - 1.0 / 6.0).abs() < 0.01, "{}", share(2));
    }

    #[test]
    fn size_is_validated() {
        assert_eq!(
            Maglev::build(&cluster(3), 65_536).unwrap_err(),
            MaglevError::NotPrime(65_536)
        );
        assert_eq!(
            Maglev::build(&cluster(10), 7).unwrap_err(),
            MaglevError::TooSmall {
                size: 7,
                endpoints: 10
            }
        );
        assert!(is_prime(2) && is_prime(65_537) && !is_prime(1) && !is_prime(9));
    }

    #[test]
    fn empty_or_weightless() {
        let empty = Maglev::build(&[], DEFAULT_TABLE_SIZE).unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.pick(5), None);
        let zero = [MaglevEndpoint { key: 1, weight: 0 }];
        assert_eq!(
            Maglev::build(&zero, DEFAULT_TABLE_SIZE).unwrap().pick(5),
            None
        );
        let single = Maglev::build(&cluster(1), 13).unwrap();
        assert!((0..100).all(|h| single.pick(h) == Some(0)));
    }
}
