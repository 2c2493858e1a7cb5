//! One generator's rounds summed up for the report: medians over the rounds,
//! each round's figure, and ringmesh-loadgen's own verdicts by kind.

use super::Measured;

/// One generator's rounds: medians, and each round's figures in run order.
#[derive(Debug, Clone, Default)]
pub(super) struct Summary {
    pub(super) rps: f64,
    pub(super) cpu_us: f64,
    pub(super) cpu_us_rounds: Vec<f64>,
    pub(super) ladder: [f64; 4],
    pub(super) p99_rounds: Vec<f64>,
    /// Rounds ringmesh-loadgen judged INVALID (its own measurement was off).
    pub(super) invalid_rounds: Vec<bool>,
    /// ringmesh-loadgen's verdicts by kind (PASS, INVALID, ...): how many, and
    /// the first one's full text.
    pub(super) verdicts: Vec<(String, usize, String)>,
}

impl Summary {
    pub(super) fn of(rounds: &[Measured]) -> Summary {
        let cpu_us_rounds: Vec<f64> = rounds.iter().map(Measured::cpu_us_per_request).collect();
        let ladder_of = |i: usize| -> Vec<f64> {
            rounds
                .iter()
                .map(|m| m.ladder.map_or(f64::NAN, |l| l[i]))
                .collect()
        };
        let mut verdicts: Vec<(String, usize, String)> = Vec::new();
        for m in rounds.iter().filter(|m| !m.verdict.is_empty()) {
            let kind = verdict_kind(&m.verdict);
            match verdicts.iter_mut().find(|(k, _, _)| k == kind) {
                Some((_, n, _)) => *n += 1,
                None => verdicts.push((kind.to_string(), 1, m.verdict.clone())),
            }
        }
        Summary {
            rps: median(&rounds.iter().map(|m| m.rps).collect::<Vec<_>>()),
            cpu_us: median(&cpu_us_rounds),
            ladder: [0, 1, 2, 3].map(|i| median(&ladder_of(i))),
            p99_rounds: ladder_of(2),
            invalid_rounds: rounds
                .iter()
                .map(|m| verdict_kind(&m.verdict) == "INVALID")
                .collect(),
            cpu_us_rounds,
            verdicts,
        }
    }
}

/// "INVALID" of "INVALID: schedule lag ...".
fn verdict_kind(verdict: &str) -> &str {
    verdict.split(':').next().unwrap_or_default().trim()
}

/// The median of the finite values (NaN when there are none).
fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Each round's value; a round ringmesh-loadgen judged INVALID is starred.
pub(super) fn list(values: &[f64], invalid: &[bool], decimals: usize) -> String {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let star = if invalid.get(i).copied().unwrap_or(false) {
                "*"
            } else {
                ""
            };
            format!("{v:.decimals$}{star}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generators::Measured;

    #[test]
    fn median_skips_missing_values_and_averages_the_middle_pair() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, f64::NAN, 2.0, 3.0]), 2.5);
        assert!(median(&[f64::NAN]).is_nan());
    }

    #[test]
    fn summary_counts_each_distinct_verdict() {
        let run = |verdict: &str, cpu_s: f64| Measured {
            requests: 1000.0,
            rps: 100.0,
            cpu_s,
            ladder: Some([1.0, 2.0, 3.0, 4.0]),
            verdict: verdict.to_string(),
        };
        let s = Summary::of(&[
            run("PASS", 0.01),
            run("INVALID: late by 2ms", 0.03),
            run("PASS", 0.02),
            run("INVALID: late by 3ms", 0.02),
        ]);
        assert_eq!(
            s.verdicts,
            vec![
                ("PASS".to_string(), 2, "PASS".to_string()),
                ("INVALID".to_string(), 2, "INVALID: late by 2ms".to_string()),
            ]
        );
        assert_eq!(s.invalid_rounds, vec![false, true, false, true]);
        assert_eq!(
            list(&s.cpu_us_rounds, &s.invalid_rounds, 0),
            "10, 30*, 20, 20*"
        );
        assert!((s.cpu_us - 20.0).abs() < 1e-9);
        assert_eq!(s.p99_rounds, vec![3.0; 4]);
    }
}
