//! The run's report: SLO evaluation, verdict, the one-screen summary and the JSON
//! document (`schema_version` 1) that `--out` writes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::run::{Outcome, RunConfig};
use crate::slo::{self, Observed, Slo, SloResult};
use crate::stats::{fmt_us, percentile_ns, Ladder};
use crate::verdict::{self, Facts, Verdict};

/// Bump when a field changes meaning or disappears; adding fields keeps it.
pub const SCHEMA_VERSION: u32 = 1;

/// An SLO as given on the command line, with its parsed form.
#[derive(Debug, Clone)]
pub struct SloSpec {
    pub text: String,
    pub slo: Slo,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: &'static str,
    pub url: String,
    /// `open` (fixed rate) or `closed` (max throughput).
    pub mode: &'static str,
    pub target_rate: Option<f64>,
    pub achieved_rate: f64,
    pub achieved_percent: Option<f64>,
    pub duration_s: f64,
    pub measured_s: f64,
    pub connections: usize,
    pub workers: usize,
    pub requests: Requests,
    pub statuses: BTreeMap<String, u64>,
    pub latency: Latencies,
    pub upstreams: BTreeMap<String, u64>,
    pub slos: Vec<SloResult>,
    pub verdict: Verdict,
    pub exit_code: i32,
}

#[derive(Debug, Serialize)]
pub struct Requests {
    pub total: u64,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub error_percent: f64,
    pub non_2xx: u64,
    pub connect_errors: u64,
    pub io_errors: u64,
    pub timeouts: u64,
    pub unsent: u64,
    pub queued: u64,
}

#[derive(Debug, Serialize)]
pub struct Latencies {
    /// Done minus intended send time (open loop); equals service time in closed loop.
    pub response: Ladder,
    pub service: Ladder,
    pub schedule_lag: Ladder,
}

pub fn build(url: &str, cfg: &RunConfig, out: &Outcome, slos: &[SloSpec]) -> Report {
    let s = &out.stats;
    let total = s.total();
    let error_percent = if total == 0 {
        0.0
    } else {
        s.errors() as f64 * 100.0 / total as f64
    };
    let achieved_percent = cfg.rate.map(|r| {
        if r > 0.0 {
            out.achieved_rate * 100.0 / r
        } else {
            100.0
        }
    });
    let latency_hist = if cfg.rate.is_some() {
        &s.response
    } else {
        &s.service
    };
    let observed = Observed {
        latency: latency_hist,
        error_percent,
        achieved_percent,
    };
    let results: Vec<SloResult> = slos
        .iter()
        .map(|spec| slo::evaluate(&spec.text, &spec.slo, &observed))
        .collect();
    let facts = Facts {
        target_rate: cfg.rate,
        achieved_rate: out.achieved_rate,
        lag_p99_ns: percentile_ns(&s.lag, 99.0),
        max_lag_ns: u64::try_from(cfg.max_lag.as_nanos()).unwrap_or(u64::MAX),
        total,
        responses: s.ok + s.non_2xx,
        connects: s.connects,
        connect_errors: s.connect_errors,
        queued: s.queued,
        failed_slos: results
            .iter()
            .filter(|r| !r.pass)
            .map(|r| format!("{} (observed {})", r.spec, r.observed))
            .collect(),
        slo_count: results.len(),
    };
    let verdict = verdict::decide(&facts);
    Report {
        schema_version: SCHEMA_VERSION,
        tool: "ringmesh-loadgen",
        url: url.to_string(),
        mode: if cfg.rate.is_some() { "open" } else { "closed" },
        target_rate: cfg.rate,
        achieved_rate: out.achieved_rate,
        achieved_percent,
        duration_s: cfg.duration.as_secs_f64(),
        measured_s: out.measured.as_secs_f64(),
        connections: cfg.connections,
        workers: cfg.effective_workers(),
        requests: Requests {
            total,
            sent: s.sent,
            ok: s.ok,
            errors: s.errors(),
            error_percent,
            non_2xx: s.non_2xx,
            connect_errors: s.connect_errors,
            io_errors: s.io_errors,
            timeouts: s.timeouts,
            unsent: s.unsent,
            queued: s.queued,
        },
        statuses: s
            .statuses
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        latency: Latencies {
            response: Ladder::of(latency_hist),
            service: Ladder::of(&s.service),
            schedule_lag: Ladder::of(&s.lag),
        },
        upstreams: s.upstreams.clone(),
        exit_code: verdict.kind.exit_code(),
        slos: results,
        verdict,
    }
}

/// The one-screen summary.
pub fn summary(r: &Report) -> String {
    let mut o = String::new();
    let rate = match r.target_rate {
        Some(t) => format!("open loop at {t:.0} req/s"),
        None => "closed loop (max throughput)".to_string(),
    };
    let _ = writeln!(
        o,
        "ringmesh-loadgen  {}  {rate}, {:.0}s, {} connections, {} worker(s)",
        r.url, r.duration_s, r.connections, r.workers
    );
    match (r.target_rate, r.achieved_percent) {
        (Some(t), Some(p)) => {
            let _ = writeln!(
                o,
                "  rate       target {t:.0}/s   achieved {:.0}/s ({p:.1}%)",
                r.achieved_rate
            );
        }
        _ => {
            let _ = writeln!(o, "  rate       achieved {:.0}/s", r.achieved_rate);
        }
    }
    let q = &r.requests;
    let _ = writeln!(
        o,
        "  requests   {} total, {} ok, {} errors ({:.3}%): connect {}, io {}, timeout {}, non-2xx {}, unsent {}",
        q.total, q.ok, q.errors, q.error_percent, q.connect_errors, q.io_errors, q.timeouts, q.non_2xx, q.unsent
    );
    let _ = writeln!(
        o,
        "  latency    {:>9} {:>9} {:>9} {:>9} {:>9}",
        "p50", "p90", "p99", "p99.9", "max"
    );
    let mut row = |name: &str, l: &Ladder| {
        let _ = writeln!(
            o,
            "  {name:<10} {:>9} {:>9} {:>9} {:>9} {:>9}",
            fmt_us(l.p50_us),
            fmt_us(l.p90_us),
            fmt_us(l.p99_us),
            fmt_us(l.p999_us),
            fmt_us(l.max_us)
        );
    };
    if r.target_rate.is_some() {
        row("response", &r.latency.response);
        row("service", &r.latency.service);
        row("sched lag", &r.latency.schedule_lag);
    } else {
        row("service", &r.latency.service);
    }
    if !r.upstreams.is_empty() {
        let n: u64 = r.upstreams.values().sum();
        let parts: Vec<String> = r
            .upstreams
            .iter()
            .map(|(k, v)| format!("{k} {v} ({:.1}%)", *v as f64 * 100.0 / n.max(1) as f64))
            .collect();
        let _ = writeln!(o, "  upstreams  {}", parts.join(", "));
    }
    for s in &r.slos {
        let mark = if s.pass { "✓" } else { "✗" };
        let _ = writeln!(o, "  SLO {mark} {:<20} observed {}", s.spec, s.observed);
    }
    let _ = writeln!(
        o,
        "  verdict    {} (exit {}): {}",
        r.verdict.kind.label(),
        r.exit_code,
        r.verdict.reason
    );
    o
}
