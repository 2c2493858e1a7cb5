//! Unit tests for the codec: strictness tables, partial input, chunked splits, writers,
//! and a hand-rolled property loop.

mod chunked_tests;
mod prop_tests;
mod request_tests;
mod response_tests;
mod smuggling_tests;
mod write_tests;

/// xorshift64*: deterministic randomness without extra crates.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}
