//! Service-level objectives given on the command line (`p99<2ms`, `error_rate<0.1%`,
//! `achieved_rate>=95%`) or in a file (`--slo-file`), their parser, and their
//! evaluation against a run.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::stats::fmt_us;

#[derive(Debug, Clone, PartialEq)]
pub enum Slo {
    /// Latency percentile strictly below a limit.
    Latency { percentile: f64, limit: Duration },
    /// Errors (of every class) strictly below this share of requests, in percent.
    ErrorRate { max_percent: f64 },
    /// Achieved rate at least this share of the target rate, in percent.
    AchievedRate { min_percent: f64 },
}

/// Parses one SLO. The grammar: `pNN(.N)?<DURATION`, `error_rate<X%`,
/// `achieved_rate>=X%`; spaces are ignored.
pub fn parse_slo(text: &str) -> Result<Slo, String> {
    let s: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if let Some(rest) = s.strip_prefix("error_rate<") {
        let max_percent = parse_percent(rest).map_err(|e| format!("{text:?}: {e}"))?;
        return Ok(Slo::ErrorRate { max_percent });
    }
    if let Some(rest) = s.strip_prefix("achieved_rate>=") {
        let min_percent = parse_percent(rest).map_err(|e| format!("{text:?}: {e}"))?;
        return Ok(Slo::AchievedRate { min_percent });
    }
    if let Some(rest) = s.strip_prefix('p') {
        if let Some((p, limit)) = rest.split_once('<') {
            let percentile = parse_percentile(p).map_err(|e| format!("{text:?}: {e}"))?;
            let limit = parse_duration(limit).map_err(|e| format!("{text:?}: {e}"))?;
            return Ok(Slo::Latency { percentile, limit });
        }
    }
    Err(format!(
        "{text:?}: not an SLO (write e.g. 'p99<2ms', 'p99.9<10ms', 'error_rate<0.1%', 'achieved_rate>=95%')"
    ))
}

/// Parses an SLO file: one SLO per line; `#` starts a comment; blank lines are
/// skipped. Every bad line is reported, with its number.
pub fn parse_slo_file(text: &str) -> Result<Vec<(String, Slo)>, String> {
    let mut slos = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let spec = line.split('#').next().unwrap_or_default().trim();
        if spec.is_empty() {
            continue;
        }
        match parse_slo(spec) {
            Ok(slo) => slos.push((spec.to_string(), slo)),
            Err(e) => errors.push(format!("line {}: {e}", i + 1)),
        }
    }
    if errors.is_empty() {
        Ok(slos)
    } else {
        Err(errors.join("\n"))
    }
}

/// `50`, `99`, `99.9`, `99.99`: two digits, optional fraction (or `100`).
pub fn parse_percentile(p: &str) -> Result<f64, String> {
    let (int, frac) = match p.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (p, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let int_ok = (int.len() == 2 && digits(int)) || (int == "100" && frac.is_none());
    if !int_ok || frac.is_some_and(|f| !digits(f)) {
        return Err(format!(
            "percentile 'p{p}' must look like p50, p99 or p99.9"
        ));
    }
    let v: f64 = p.parse().map_err(|_| format!("bad percentile 'p{p}'"))?;
    if v <= 0.0 || v > 100.0 {
        return Err(format!("percentile 'p{p}' must be in (0, 100]"));
    }
    Ok(v)
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let num = s
        .strip_suffix('%')
        .ok_or_else(|| format!("'{s}' needs a % sign"))?;
    let v: f64 = num.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("'{s}' must be between 0% and 100%"));
    }
    Ok(v)
}

/// Parses `250us`, `2ms`, `1.5s`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("duration '{s}' needs a unit (us, ms, s, m)"))?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("duration '{s}' has no number"))?;
    let secs = match unit {
        "us" | "µs" => v / 1e6,
        "ms" => v / 1e3,
        "s" => v,
        "m" => v * 60.0,
        _ => return Err(format!("duration '{s}': unit must be us, ms, s or m")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("duration '{s}' out of range"))
}

/// What the SLOs are checked against.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// Latency histogram the percentiles come from (response time in open loop).
    pub latency: &'a hdrhistogram::Histogram<u64>,
    pub error_percent: f64,
    /// `None` in closed loop (there is no target).
    pub achieved_percent: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SloResult {
    pub spec: String,
    pub observed: String,
    pub pass: bool,
}

pub fn evaluate(spec: &str, slo: &Slo, o: &Observed<'_>) -> SloResult {
    let (observed, pass) = match slo {
        Slo::Latency { percentile, limit } => {
            let ns = crate::stats::percentile_ns(o.latency, *percentile);
            let pass = !o.latency.is_empty() && u128::from(ns) < limit.as_nanos();
            (fmt_us(ns as f64 / 1000.0), pass)
        }
        Slo::ErrorRate { max_percent } => (
            format!("{:.3}%", o.error_percent),
            o.error_percent < *max_percent,
        ),
        Slo::AchievedRate { min_percent } => match o.achieved_percent {
            Some(a) => (format!("{a:.2}%"), a >= *min_percent),
            None => ("n/a (closed loop)".to_string(), false),
        },
    };
    SloResult {
        spec: spec.to_string(),
        observed,
        pass,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Slo {
        parse_slo(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn parses_latency_slos() {
        assert_eq!(
            ok("p99<2ms"),
            Slo::Latency {
                percentile: 99.0,
                limit: Duration::from_millis(2)
            }
        );
        assert_eq!(
            ok("p99.9 < 500us"),
            Slo::Latency {
                percentile: 99.9,
                limit: Duration::from_micros(500)
            }
        );
        assert_eq!(
            ok("p50<1.5s"),
            Slo::Latency {
                percentile: 50.0,
                limit: Duration::from_millis(1500)
            }
        );
        assert!(matches!(ok("p100<1s"), Slo::Latency { percentile, .. } if percentile == 100.0));
    }

    #[test]
    fn parses_rate_slos() {
        assert_eq!(ok("error_rate<0.1%"), Slo::ErrorRate { max_percent: 0.1 });
        assert_eq!(
            ok("achieved_rate>=95%"),
            Slo::AchievedRate { min_percent: 95.0 }
        );
    }

    #[test]
    fn rejects_bad_slos() {
        for bad in [
            "p9<2ms",
            "p999<2ms",
            "p99<2",
            "p99<2h",
            "p99>2ms",
            "p99.<1ms",
            "error_rate<0.1",
            "error_rate<101%",
            "achieved_rate>95%",
            "latency<2ms",
            "",
            "p00<1ms",
        ] {
            assert!(parse_slo(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn evaluates_against_observations() {
        let mut h = crate::stats::histogram().unwrap_or_else(|e| panic!("{e}"));
        for us in 1..=100u64 {
            h.saturating_record(us * 1000);
        }
        let o = Observed {
            latency: &h,
            error_percent: 0.05,
            achieved_percent: Some(99.0),
        };
        assert!(evaluate("p99<2ms", &ok("p99<2ms"), &o).pass);
        assert!(!evaluate("p99<50us", &ok("p99<50us"), &o).pass);
        // A limit equal to the observed value fails: the comparison is strict.
        assert!(!evaluate("p100<100us", &ok("p100<100us"), &o).pass);
        assert!(evaluate("e", &ok("error_rate<0.1%"), &o).pass);
        assert!(!evaluate("e", &ok("error_rate<0.01%"), &o).pass);
        assert!(evaluate("a", &ok("achieved_rate>=95%"), &o).pass);
        let closed = Observed {
            achieved_percent: None,
            ..o
        };
        assert!(!evaluate("a", &ok("achieved_rate>=95%"), &closed).pass);
        let empty = crate::stats::histogram().unwrap_or_else(|e| panic!("{e}"));
        let none = Observed {
            latency: &empty,
            ..o
        };
        assert!(!evaluate("p99<2ms", &ok("p99<2ms"), &none).pass);
    }

    #[test]
    fn parses_slo_files() {
        let text = "# latency\np99 < 2ms   # the main one\n\n  error_rate<0.1%\n#p50<1ms\n";
        let slos = parse_slo_file(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(slos.len(), 2);
        assert_eq!(slos[0].0, "p99 < 2ms");
        assert_eq!(slos[1].1, Slo::ErrorRate { max_percent: 0.1 });
        let err = parse_slo_file("p99<2ms\nbogus\np50<\n")
            .err()
            .unwrap_or_default();
        assert!(err.contains("line 2") && err.contains("line 3"), "{err}");
        assert_eq!(parse_slo_file("# nothing\n"), Ok(vec![]));
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("20").is_err());
        assert!(parse_duration("ms").is_err());
    }
}
