//! The one-screen text summary of a report (printed by `run` and `report`).

use std::fmt::Write as _;

use crate::report::Report;
use crate::stats::{fmt_us, Ladder};

pub fn summary(r: &Report) -> String {
    let mut o = String::new();
    let load = match (r.target_rate, &r.schedule, &r.arrival) {
        (Some(t), Some(s), Some(a)) if s.contains(',') || s.contains("..") => {
            format!("open loop, schedule {s} (mean {t:.0} req/s, {a})")
        }
        (Some(t), _, Some(a)) if a != "constant" => format!("open loop at {t:.0} req/s ({a})"),
        (Some(t), _, _) => format!("open loop at {t:.0} req/s"),
        _ => "closed loop (max throughput)".to_string(),
    };
    let _ = writeln!(
        o,
        "ringmesh-loadgen  {}  {load}, {:.0}s, {} connections, {} worker(s)",
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
    let timer = if r.target_rate.is_none() {
        ""
    } else if r.precise_timer {
        ", timerfd pacing"
    } else {
        ", 1 ms timer-wheel pacing"
    };
    let _ = writeln!(
        o,
        "  generator  {}{timer}, CPU {:.0}% of {} core(s) (user {:.2}s, sys {:.2}s), {:.0}% without the pacing spin",
        r.driver,
        r.generator_cpu.percent,
        r.workers,
        r.generator_cpu.user_s,
        r.generator_cpu.system_s,
        r.generator_cpu.busy_percent
    );
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
