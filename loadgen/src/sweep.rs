//! `sweep`: raise the open-loop rate step by step (adding a step or
//! multiplying by a factor) until a step no longer meets the SLOs or is INVALID,
//! and report the highest rate that did, with the latency-vs-rate table.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::cli::{probe, write_json, ConnArgs, SloArgs};
use crate::report;
use crate::run;
use crate::schedule::Profile;
use crate::slo::parse_duration;
use crate::stats::fmt_us;
use crate::target::Target;
use crate::verdict::Kind;

#[derive(clap::Args)]
pub struct SweepArgs {
    url: String,
    /// First rate, req/s.
    #[arg(long)]
    from: f64,
    /// Last rate, req/s.
    #[arg(long)]
    to: f64,
    /// Add this much per step.
    #[arg(long, conflicts_with = "factor", required_unless_present = "factor")]
    step: Option<f64>,
    /// Multiply by this per step (> 1).
    #[arg(long)]
    factor: Option<f64>,
    /// Length of each step.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    step_duration: Duration,
    /// Keep going after the first step that fails (default: stop there).
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    slo: SloArgs,
    #[command(flatten)]
    conn: ConnArgs,
    /// Write the table as JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The rates of a sweep, `from` to `to` inclusive.
pub fn rates(
    from: f64,
    to: f64,
    step: Option<f64>,
    factor: Option<f64>,
) -> Result<Vec<f64>, String> {
    if !(from > 0.0 && to >= from && to.is_finite()) {
        return Err("need 0 < --from <= --to".into());
    }
    let mut out = Vec::new();
    let mut r = from;
    while r <= to * (1.0 + 1e-9) {
        out.push(r);
        r = match (step, factor) {
            (Some(s), _) if s > 0.0 => r + s,
            (None, Some(f)) if f > 1.0 => r * f,
            _ => return Err("--step must be > 0 or --factor > 1".into()),
        };
        if out.len() > 1000 {
            return Err("more than 1000 steps".into());
        }
    }
    Ok(out)
}

#[derive(Debug, Serialize)]
pub struct Step {
    pub rate: f64,
    pub achieved: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub verdict: Kind,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct Sweep {
    pub schema_version: u32,
    pub url: String,
    pub slos: Vec<String>,
    pub steps: Vec<Step>,
    /// Highest rate whose step and every step before it passed.
    pub highest_passing_rate: Option<f64>,
}

pub fn sweep_cmd(a: SweepArgs) -> anyhow::Result<i32> {
    let rates = rates(a.from, a.to, a.step, a.factor).map_err(anyhow::Error::msg)?;
    let target = Target::parse(&a.url).map_err(anyhow::Error::msg)?;
    probe(&target).map_err(|e| anyhow::anyhow!("cannot connect to {}: {e}", target.addr))?;
    let slos = a.slo.all()?;
    anyhow::ensure!(
        !slos.is_empty(),
        "give the SLOs to meet with --slo or --slo-file"
    );
    let mut steps = Vec::new();
    let mut highest = None;
    let mut broken = false;
    for rate in rates {
        eprintln!("sweep: {rate:.0} req/s for {:?}", a.step_duration);
        let cfg = a.conn.config(
            &target,
            a.conn.open(Profile::constant(rate, a.step_duration)),
        )?;
        let out = run::run(&cfg)?;
        let r = report::build(&a.url, &cfg, &out, &slos)?;
        let l = &r.latency.response;
        let pass = r.verdict.kind == Kind::Pass;
        if pass && !broken {
            highest = Some(rate);
        }
        broken |= !pass;
        steps.push(Step {
            rate,
            achieved: r.achieved_rate,
            p50_us: l.p50_us,
            p90_us: l.p90_us,
            p99_us: l.p99_us,
            p999_us: l.p999_us,
            verdict: r.verdict.kind,
            reason: r.verdict.reason,
        });
        if broken && !a.all {
            break;
        }
    }
    let s = Sweep {
        schema_version: 1,
        url: a.url.clone(),
        slos: slos.iter().map(|s| s.text.clone()).collect(),
        steps,
        highest_passing_rate: highest,
    };
    print!("{}", render(&s));
    if let Some(path) = &a.out {
        write_json(path, &s)?;
    }
    Ok(if highest.is_some() { 0 } else { 1 })
}

pub fn render(s: &Sweep) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "sweep  {}  SLOs: {}", s.url, s.slos.join(", "));
    let _ = writeln!(
        o,
        "  {:>10} {:>10} {:>9} {:>9} {:>9} {:>9}  verdict",
        "rate", "achieved", "p50", "p90", "p99", "p99.9"
    );
    for st in &s.steps {
        let _ = writeln!(
            o,
            "  {:>10.0} {:>10.0} {:>9} {:>9} {:>9} {:>9}  {}{}",
            st.rate,
            st.achieved,
            fmt_us(st.p50_us),
            fmt_us(st.p90_us),
            fmt_us(st.p99_us),
            fmt_us(st.p999_us),
            st.verdict.label(),
            if st.verdict == Kind::Pass {
                String::new()
            } else {
                format!(": {}", st.reason)
            }
        );
    }
    match s.highest_passing_rate {
        Some(r) => {
            let _ = writeln!(o, "  highest rate meeting the SLOs: {r:.0} req/s");
        }
        None => {
            let _ = writeln!(o, "  no rate met the SLOs");
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_factors() {
        assert_eq!(
            rates(100.0, 400.0, Some(100.0), None),
            Ok(vec![100.0, 200.0, 300.0, 400.0])
        );
        assert_eq!(
            rates(100.0, 350.0, Some(100.0), None),
            Ok(vec![100.0, 200.0, 300.0])
        );
        assert_eq!(
            rates(100.0, 800.0, None, Some(2.0)),
            Ok(vec![100.0, 200.0, 400.0, 800.0])
        );
        assert!(rates(100.0, 50.0, Some(1.0), None).is_err());
        assert!(rates(100.0, 200.0, None, Some(1.0)).is_err());
        assert!(rates(100.0, 200.0, Some(0.0), None).is_err());
        assert!(rates(1.0, 1e9, Some(1.0), None).is_err(), "too many steps");
    }
}
