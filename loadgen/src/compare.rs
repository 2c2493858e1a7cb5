//! `compare`: the same open-loop rate against a baseline and a candidate in
//! interleaved segments (A B A B …), so that drift of the machine over time hits
//! both arms alike. Per percentile it reports the difference and ratio of the
//! arms with a 95 % t-interval over the segment pairs, optionally the proxy's CPU
//! per request and peak RSS, and gates on `overhead.pNN<DURATION` SLOs.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;

use crate::ci::{mean_interval, Interval};
use crate::cli::{probe, write_json, ConnArgs};
use crate::cpu::{self, CpuTimes};
use crate::report;
use crate::run;
use crate::schedule::Profile;
use crate::slo::{parse_duration, parse_percentile};
use crate::stats::{self, fmt_us, percentile_ns};
use crate::target::Target;
use crate::verdict::Kind;

#[derive(clap::Args)]
pub struct CompareArgs {
    /// NAME=URL of the reference (e.g. direct=http://127.0.0.1:9000/).
    #[arg(long)]
    baseline: String,
    /// NAME=URL measured against it (e.g. ringmesh=http://127.0.0.1:8080/).
    #[arg(long)]
    candidate: String,
    /// Requests per second, the same for both.
    #[arg(long)]
    rate: f64,
    /// Segments in all, alternating baseline and candidate (even, at least 4).
    #[arg(long, default_value_t = 8)]
    segments: usize,
    /// Length of each segment.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    segment: Duration,
    /// The proxy in the candidate's path: its CPU per request and peak RSS.
    #[arg(long)]
    proxy_pid: Option<u32>,
    /// Gate on the candidate's added latency, e.g. 'overhead.p99<200us'.
    #[arg(long = "slo", value_parser = parse_overhead)]
    slos: Vec<Overhead>,
    #[command(flatten)]
    conn: ConnArgs,
    /// Write the comparison as JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `overhead.pNN<DURATION`: candidate minus baseline at that percentile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overhead {
    pub text: String,
    pub percentile: f64,
    pub limit_us: f64,
}

pub fn parse_overhead(text: &str) -> Result<Overhead, String> {
    let s: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let (p, limit) = s
        .strip_prefix("overhead.p")
        .and_then(|r| r.split_once('<'))
        .ok_or_else(|| format!("{text:?}: write e.g. 'overhead.p99<200us'"))?;
    Ok(Overhead {
        text: text.to_string(),
        percentile: parse_percentile(p).map_err(|e| format!("{text:?}: {e}"))?,
        limit_us: parse_duration(limit)
            .map_err(|e| format!("{text:?}: {e}"))?
            .as_secs_f64()
            * 1e6,
    })
}

fn named(arg: &str, flag: &str) -> anyhow::Result<(String, Target)> {
    let (name, url) = arg
        .split_once('=')
        .with_context(|| format!("{flag} {arg:?}: write NAME=URL"))?;
    Ok((
        name.to_string(),
        Target::parse(url).map_err(anyhow::Error::msg)?,
    ))
}

const PERCENTILES: [f64; 4] = [50.0, 90.0, 99.0, 99.9];

#[derive(Debug, Serialize)]
pub struct Row {
    pub percentile: f64,
    pub baseline_us: f64,
    pub candidate_us: f64,
    /// Candidate minus baseline, per segment pair.
    pub difference_us: Interval,
    /// Candidate over baseline, per segment pair.
    pub ratio: Interval,
}

#[derive(Debug, Serialize)]
pub struct ProxyCost {
    pub user_us_per_request: f64,
    pub system_us_per_request: f64,
    pub peak_rss_kib: u64,
}

#[derive(Debug, Serialize)]
pub struct Comparison {
    pub schema_version: u32,
    pub baseline: String,
    pub candidate: String,
    pub rate: f64,
    pub segments: usize,
    pub segment_s: f64,
    pub rows: Vec<Row>,
    pub proxy: Option<ProxyCost>,
    pub slos: Vec<(String, bool)>,
    /// Segments whose own verdict was INVALID (the generator was the limit).
    pub invalid_segments: Vec<String>,
    pub verdict: Kind,
}

pub fn compare_cmd(a: CompareArgs) -> anyhow::Result<i32> {
    anyhow::ensure!(
        a.rate > 0.0 && a.rate.is_finite(),
        "--rate must be positive"
    );
    anyhow::ensure!(
        a.segments >= 4 && a.segments & 1 == 0,
        "--segments must be even and at least 4"
    );
    let arms = [
        named(&a.baseline, "--baseline")?,
        named(&a.candidate, "--candidate")?,
    ];
    for (name, t) in &arms {
        probe(t).with_context(|| format!("{name}: cannot connect to {}", t.addr))?;
    }
    let configs = arms
        .iter()
        .map(|(_, t)| {
            a.conn
                .config(t, a.conn.open(Profile::constant(a.rate, a.segment)))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Per arm: merged histogram, per-segment percentile values, requests.
    let mut merged = [stats::histogram()?, stats::histogram()?];
    let mut per_segment: [Vec<[f64; 4]>; 2] = [Vec::new(), Vec::new()];
    let mut proxy_cpu = CpuTimes::default();
    let mut candidate_requests = 0u64;
    let mut invalid = Vec::new();
    for seg in 0..a.segments {
        let arm = seg % 2;
        let (name, _) = &arms[arm];
        eprintln!("compare: segment {}/{} {name}", seg + 1, a.segments);
        let before = match a.proxy_pid {
            Some(pid) if arm == 1 => Some(cpu::cpu_times(Some(pid))?),
            _ => None,
        };
        let out = run::run(&configs[arm])?;
        if let (Some(b), Some(pid)) = (before, a.proxy_pid) {
            let d = cpu::cpu_times(Some(pid))?.since(&b);
            proxy_cpu.user += d.user;
            proxy_cpu.system += d.system;
            candidate_requests += out.stats.total();
        }
        let r = report::build(name, &configs[arm], &out, &[])?;
        if r.verdict.kind == Kind::Invalid || r.verdict.kind == Kind::Unreachable {
            invalid.push(format!(
                "segment {} ({name}): {}",
                seg + 1,
                r.verdict.reason
            ));
        }
        merged[arm].add(&out.stats.response)?;
        let us = |p: f64| percentile_ns(&out.stats.response, p) as f64 / 1000.0;
        per_segment[arm].push(PERCENTILES.map(us));
    }
    let rows: Vec<Row> = PERCENTILES
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let pairs = per_segment[0].iter().zip(&per_segment[1]);
            let diffs: Vec<f64> = pairs.clone().map(|(b, c)| c[i] - b[i]).collect();
            let ratios: Vec<f64> = pairs
                .filter(|(b, _)| b[i] > 0.0)
                .map(|(b, c)| c[i] / b[i])
                .collect();
            Row {
                percentile: p,
                baseline_us: percentile_ns(&merged[0], p) as f64 / 1000.0,
                candidate_us: percentile_ns(&merged[1], p) as f64 / 1000.0,
                difference_us: mean_interval(&diffs),
                ratio: mean_interval(&ratios),
            }
        })
        .collect();
    let proxy = match a.proxy_pid {
        Some(pid) => {
            let n = candidate_requests.max(1) as f64;
            Some(ProxyCost {
                user_us_per_request: proxy_cpu.user.as_secs_f64() * 1e6 / n,
                system_us_per_request: proxy_cpu.system.as_secs_f64() * 1e6 / n,
                peak_rss_kib: cpu::peak_rss_kib(pid)?,
            })
        }
        None => None,
    };
    let slos: Vec<(String, bool)> = a
        .slos
        .iter()
        .map(|s| {
            let diff = (percentile_ns(&merged[1], s.percentile) as f64
                - percentile_ns(&merged[0], s.percentile) as f64)
                / 1000.0;
            (s.text.clone(), diff < s.limit_us)
        })
        .collect();
    let verdict = if !invalid.is_empty() {
        Kind::Invalid
    } else if slos.iter().any(|(_, pass)| !pass) {
        Kind::Fail
    } else {
        Kind::Pass
    };
    let c = Comparison {
        schema_version: 1,
        baseline: arms[0].0.clone(),
        candidate: arms[1].0.clone(),
        rate: a.rate,
        segments: a.segments,
        segment_s: a.segment.as_secs_f64(),
        rows,
        proxy,
        slos,
        invalid_segments: invalid,
        verdict,
    };
    print!("{}", render(&c));
    if let Some(path) = &a.out {
        write_json(path, &c)?;
    }
    Ok(verdict.exit_code())
}

fn interval(i: &Interval, f: impl Fn(f64) -> String) -> String {
    format!("{} [{}, {}]", f(i.mean), f(i.low), f(i.high))
}

pub fn render(c: &Comparison) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "compare  {} (baseline) vs {} (candidate), {:.0} req/s, {} segments of {:.0}s, ABAB",
        c.baseline, c.candidate, c.rate, c.segments, c.segment_s
    );
    let _ = writeln!(
        o,
        "  {:<6} {:>10} {:>10}  {:<32} ratio (95% CI over segment pairs)",
        "", "baseline", "candidate", "difference"
    );
    for r in &c.rows {
        let signed = |us: f64| {
            if us.is_finite() && us < 0.0 {
                format!("-{}", fmt_us(-us))
            } else if us.is_finite() {
                fmt_us(us)
            } else {
                "∞".to_string()
            }
        };
        let _ = writeln!(
            o,
            "  p{:<5} {:>10} {:>10}  {:<32} {}",
            r.percentile,
            fmt_us(r.baseline_us),
            fmt_us(r.candidate_us),
            interval(&r.difference_us, signed),
            interval(&r.ratio, |x| format!("{x:.3}")),
        );
    }
    if let Some(p) = &c.proxy {
        let _ = writeln!(
            o,
            "  proxy  CPU {:.1} µs/request (user {:.1}, system {:.1}), peak RSS {} KiB",
            p.user_us_per_request + p.system_us_per_request,
            p.user_us_per_request,
            p.system_us_per_request,
            p.peak_rss_kib
        );
    }
    for (s, pass) in &c.slos {
        let _ = writeln!(o, "  SLO {} {s}", if *pass { "✓" } else { "✗" });
    }
    for s in &c.invalid_segments {
        let _ = writeln!(o, "  invalid {s}");
    }
    let _ = writeln!(
        o,
        "  verdict {} (exit {})",
        c.verdict.label(),
        c.verdict.exit_code()
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_overhead_slos() {
        let o = parse_overhead("overhead.p99 < 200us").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o.percentile, 99.0);
        assert!((o.limit_us - 200.0).abs() < 1e-9);
        assert_eq!(
            parse_overhead("overhead.p99.9<1ms").map(|o| o.percentile),
            Ok(99.9)
        );
        for bad in [
            "p99<200us",
            "overhead.p99>1ms",
            "overhead.p9<1ms",
            "overhead.p99<1",
        ] {
            assert!(parse_overhead(bad).is_err(), "{bad}");
        }
    }
}
