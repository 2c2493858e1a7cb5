//! Smooth weighted round robin: over any window of `sum(weights)` picks each endpoint
//! is chosen exactly `weight` times, interleaved rather than in bursts.

#[derive(Debug)]
pub struct SmoothWeighted {
    weights: Vec<u32>,
    current: Vec<i64>,
    total: i64,
    /// Plain rotation when all weights are equal: O(1) per pick.
    uniform: bool,
    cursor: usize,
}

impl SmoothWeighted {
    pub fn new(weights: Vec<u32>) -> Self {
        let total = weights.iter().map(|w| i64::from(*w)).sum();
        let uniform = weights.windows(2).all(|pair| pair[0] == pair[1]);
        SmoothWeighted {
            current: vec![0; weights.len()],
            weights,
            total,
            uniform,
            cursor: 0,
        }
    }

    pub fn pick(&mut self) -> Option<usize> {
        if self.weights.is_empty() {
            return None;
        }
        if self.uniform {
            let pick = self.cursor % self.weights.len();
            self.cursor = pick + 1;
            return Some(pick);
        }
        let mut best: Option<(usize, i64)> = None;
        for (index, (current, weight)) in self.current.iter_mut().zip(&self.weights).enumerate() {
            *current += i64::from(*weight);
            if best.is_none_or(|(_, top)| *current > top) {
                best = Some((index, *current));
            }
        }
        let (pick, _) = best?;
        if let Some(current) = self.current.get_mut(pick) {
            *current -= self.total;
        }
        Some(pick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_exact_per_window_and_interleaved() {
        let mut rr = SmoothWeighted::new(vec![5, 1, 1]);
        let picks: Vec<usize> = (0..7).filter_map(|_| rr.pick()).collect();
        assert_eq!(picks.iter().filter(|p| **p == 0).count(), 5);
        assert_eq!(picks.iter().filter(|p| **p == 1).count(), 1);
        assert_eq!(picks.iter().filter(|p| **p == 2).count(), 1);
        assert_eq!(picks, vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn uniform_rotates() {
        let mut rr = SmoothWeighted::new(vec![1, 1, 1]);
        let picks: Vec<usize> = (0..6).filter_map(|_| rr.pick()).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(SmoothWeighted::new(vec![]).pick(), None);
    }
}
