//! Confidence intervals for `compare`: Student's t-interval of a mean from a
//! handful of per-segment values.

/// Two-sided 95 % critical values of Student's t for 1..=30 degrees of freedom.
const T95: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// Critical value for `df` degrees of freedom (the normal 1.96 beyond 30 is
/// within 4 % of the exact value).
pub fn t95(df: usize) -> f64 {
    match df {
        0 => f64::INFINITY,
        1..=30 => T95[df - 1],
        _ => 1.96,
    }
}

/// A mean with its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Interval {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

/// The t-interval of the mean of `xs`; unbounded with fewer than two values.
pub fn mean_interval(xs: &[f64]) -> Interval {
    let n = xs.len();
    if n == 0 {
        return Interval {
            mean: f64::NAN,
            low: f64::NEG_INFINITY,
            high: f64::INFINITY,
        };
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return Interval {
            mean,
            low: f64::NEG_INFINITY,
            high: f64::INFINITY,
        };
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half = t95(n - 1) * (var / n as f64).sqrt();
    Interval {
        mean,
        low: mean - half,
        high: mean + half,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_of_known_values() {
        // mean 5, sample sd 2 (values 3, 5, 7, 3, 7 → var 4), n 5: 2.776·2/√5.
        let i = mean_interval(&[3.0, 5.0, 7.0, 3.0, 7.0]);
        assert!((i.mean - 5.0).abs() < 1e-12);
        let half = 2.776 * 2.0 / 5f64.sqrt();
        assert!((i.high - 5.0 - half).abs() < 1e-9, "{i:?}");
        assert!((5.0 - i.low - half).abs() < 1e-9, "{i:?}");
    }

    #[test]
    fn degenerate_inputs() {
        assert!(mean_interval(&[]).mean.is_nan());
        let one = mean_interval(&[4.0]);
        assert_eq!(one.mean, 4.0);
        assert!(one.high.is_infinite());
        let same = mean_interval(&[2.0, 2.0, 2.0]);
        assert_eq!((same.low, same.high), (2.0, 2.0));
        assert_eq!(t95(1), 12.706);
        assert_eq!(t95(100), 1.96);
    }

    #[test]
    fn coverage_is_about_95_percent() {
        // Normal-ish samples from a fixed seed: sums of 12 uniforms minus 6.
        let mut rng = crate::schedule::Rng::new(42);
        let mut normal = || (0..12).map(|_| rng.unit()).sum::<f64>() - 6.0;
        let trials = 4000;
        let covered = (0..trials)
            .filter(|_| {
                let xs: Vec<f64> = (0..4).map(|_| 10.0 + normal()).collect();
                let i = mean_interval(&xs);
                i.low <= 10.0 && 10.0 <= i.high
            })
            .count();
        let share = covered as f64 / trials as f64;
        assert!((share - 0.95).abs() < 0.015, "{share}");
    }
}
