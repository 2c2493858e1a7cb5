//! Least request by power of two choices: sample two distinct endpoints and send to
//! the one with fewer requests in flight per unit of weight.
//!
//! Comparing two random endpoints, rather than scanning for the global minimum,
//! keeps the pick O(1) and avoids every worker piling onto the same momentarily idle
//! endpoint; its load still ends up within a small constant of the best.

/// What the balancer needs to know about one candidate at pick time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// Requests this worker has sent to the endpoint and not seen answered.
    pub active: u32,
    /// Configured weight, already multiplied by any slow-start factor. Zero or less
    /// means the endpoint is only chosen when both samples are weightless.
    pub weight: f64,
}

impl Load {
    pub fn unweighted(active: u32) -> Self {
        Load {
            active,
            weight: 1.0,
        }
    }

    /// Lower is better. `active + 1` so that idle endpoints still compare by weight.
    fn score(self) -> f64 {
        let pending = f64::from(self.active) + 1.0;
        if self.weight > 0.0 {
            pending / self.weight
        } else {
            f64::INFINITY
        }
    }
}

/// Chooses among `candidates` positions `0..candidates` (the caller maps them to
/// endpoints, for example through its list of endpoints not ejected). `roll`
/// supplies the randomness: its low half picks the first sample, its high half the
/// second. Ties go to the first sample, which is itself random.
pub fn choose(candidates: usize, load: impl Fn(usize) -> Load, roll: u64) -> Option<usize> {
    match candidates {
        0 => None,
        1 => Some(0),
        len => {
            let first = (roll as u32 as usize) % len;
            // The second sample is drawn from the others so the two always differ.
            let offset = 1 + ((roll >> 32) as usize) % (len - 1);
            let second = (first + offset) % len;
            Some(if load(second).score() < load(first).score() {
                second
            } else {
                first
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resilience::XorShift64;

    #[test]
    fn edges() {
        assert_eq!(choose(0, |_| Load::unweighted(0), 1), None);
        assert_eq!(choose(1, |_| Load::unweighted(9), 1), Some(0));
    }

    #[test]
    fn two_endpoints_always_take_the_less_loaded() {
        let active = [5u32, 2];
        let mut rng = XorShift64::new(3);
        for _ in 0..100 {
            let pick = choose(2, |i| Load::unweighted(active[i]), rng.next_u64());
            assert_eq!(pick, Some(1));
        }
    }

    #[test]
    fn weight_divides_load() {
        // 4 in flight at weight 4 beats 2 in flight at weight 1.
        let loads = [
            Load {
                active: 4,
                weight: 4.0,
            },
            Load {
                active: 2,
                weight: 1.0,
            },
        ];
        assert_eq!(choose(2, |i| loads[i], 0), Some(0));
        assert_eq!(choose(2, |i| loads[i], 1), Some(0));
        let weightless = [
            Load {
                active: 0,
                weight: 0.0,
            },
            Load::unweighted(50),
        ];
        assert_eq!(choose(2, |i| weightless[i], 0), Some(1));
    }

    /// Three endpoints; endpoint 2 answers 4x slower, so its in-flight count
    /// climbs and P2C steers most traffic to the fast two.
    #[test]
    fn slow_endpoint_gets_fewer_requests() {
        let service_ticks = [2u64, 2, 8];
        let mut rng = XorShift64::new(0xfeed);
        // Completion tick of each request still in flight, per endpoint.
        let mut in_flight: [Vec<u64>; 3] = [Vec::new(), Vec::new(), Vec::new()];
        let mut sent = [0u32; 3];
        for tick in 0..20_000u64 {
            for queue in &mut in_flight {
                queue.retain(|done| *done > tick);
            }
            // Two arrivals per tick keep every endpoint busy.
            for _ in 0..2 {
                let pick = choose(
                    3,
                    |i| Load::unweighted(in_flight[i].len() as u32),
                    rng.next_u64(),
                )
                .unwrap();
                in_flight[pick].push(tick + service_ticks[pick]);
                sent[pick] += 1;
            }
        }
        let total: u32 = sent.iter().sum();
        assert!(sent[2] * 5 < total, "slow endpoint got too much: {sent:?}");
        assert!(sent[0] > 2 * sent[2] && sent[1] > 2 * sent[2], "{sent:?}");
    }

    #[test]
    fn equal_load_spreads_evenly() {
        let mut rng = XorShift64::new(17);
        let mut counts = [0u32; 4];
        for _ in 0..40_000 {
            counts[choose(4, |_| Load::unweighted(0), rng.next_u64()).unwrap()] += 1;
        }
        for count in counts {
            assert!((9_000..=11_000).contains(&count), "{counts:?}");
        }
    }
}
