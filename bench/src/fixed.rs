//! The fixed-rate phase of a keep-alive scenario: after the closed-loop run,
//! `ringmesh-loadgen` drives the same target open loop at one constant rate, the
//! same for every proxy, and the proxy's CPU per request and the latency are
//! taken at that rate. (In closed loop each proxy runs flat out, and a saturated
//! proxy batches more requests per wake-up, so its CPU per request falls with
//! its own speed; at a fixed rate every proxy does the same work.)

use crate::cpu;
use crate::report::Row;
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Figures of the fixed-rate phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FixedRate {
    /// Target rate, requests per second.
    pub rate: f64,
    pub achieved_rate: f64,
    pub requests: u64,
    pub errors: u64,
    /// CPU time of the proxy (all threads) per request; `None` for direct.
    pub cpu_us_per_req: Option<f64>,
    /// Response time (from each request's intended send time).
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    /// The generator's verdict (`PASS` when the measurement was valid), with
    /// its reason otherwise: the latency of an INVALID run includes the
    /// generator's own delays.
    pub verdict: String,
}

/// Where and how to drive the phase.
pub struct Phase<'a> {
    pub loadgen: &'a Path,
    pub url: &'a str,
    /// CA for an `https` target.
    pub ca: Option<&'a Path>,
    pub rate: u32,
    pub connections: usize,
    pub duration: Duration,
    /// Core to pin the generator to (it shares the upstream's, like wrk).
    pub cpu: Option<usize>,
    pub out: &'a Path,
}

/// Runs the phase, timing the CPU of `proxy_pids` over it.
pub fn measure(phase: &Phase<'_>, proxy_pids: &[u32], tck: f64) -> anyhow::Result<FixedRate> {
    let mut cmd = match phase.cpu {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &c.to_string()]).arg(phase.loadgen);
            cmd
        }
        None => Command::new(phase.loadgen),
    };
    cmd.args(["run", phase.url, "--rate", &phase.rate.to_string()])
        .args([
            "--duration",
            &format!("{}s", phase.duration.as_secs().max(1)),
        ])
        .args(["--connections", &phase.connections.to_string()])
        .arg("--out")
        .arg(phase.out)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(ca) = phase.ca {
        cmd.arg("--cacert").arg(ca);
    }
    let before = cpu::cpu_ticks_all(proxy_pids)?;
    let status = cmd.status().context("running ringmesh-loadgen")?;
    let after = cpu::cpu_ticks_all(proxy_pids)?;
    let text = std::fs::read_to_string(phase.out).with_context(|| {
        format!(
            "ringmesh-loadgen ({status}) wrote no result to {}",
            phase.out.display()
        )
    })?;
    let json: serde_json::Value = serde_json::from_str(&text).context("loadgen result")?;
    let num = |pointer: &str| json.pointer(pointer).and_then(serde_json::Value::as_f64);
    let Some(requests) = json
        .pointer("/requests/ok")
        .and_then(serde_json::Value::as_u64)
    else {
        bail!("no request count in {}", phase.out.display());
    };
    let ticks = after.saturating_sub(before);
    Ok(FixedRate {
        rate: f64::from(phase.rate),
        achieved_rate: num("/achieved_rate").unwrap_or(0.0),
        requests,
        errors: json
            .pointer("/requests/errors")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
        cpu_us_per_req: (!proxy_pids.is_empty())
            .then(|| ticks as f64 / tck * 1e6 / requests.max(1) as f64),
        p50_us: num("/latency/response/p50_us").unwrap_or(f64::NAN),
        p99_us: num("/latency/response/p99_us").unwrap_or(f64::NAN),
        p999_us: num("/latency/response/p999_us").unwrap_or(f64::NAN),
        verdict: {
            let text = |pointer: &str| {
                json.pointer(pointer)
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("?")
                    .replace('|', "/")
            };
            match text("/verdict/kind").as_str() {
                "PASS" => "PASS".to_string(),
                kind => format!("{kind}: {}", text("/verdict/reason")),
            }
        },
    })
}

/// The fixed-rate table of one group of rows, if any row has the phase.
pub fn table(rows: &[&Row]) -> Option<String> {
    fn fixed(r: &Row) -> Option<&FixedRate> {
        r.fixed.as_ref().filter(|_| r.skipped.is_none())
    }
    let rate = rows.iter().find_map(|r| fixed(r)).map(|f| f.rate)?;
    let direct = rows
        .iter()
        .find(|r| r.proxy == crate::peers::Proxy::Direct)
        .and_then(|r| fixed(r));
    let best_cpu = rows
        .iter()
        .filter(|r| r.proxy.is_peer())
        .filter_map(|r| fixed(r).and_then(|f| f.cpu_us_per_req))
        .reduce(f64::min);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "At a fixed rate, open loop: `ringmesh-loadgen run --rate {rate:.0}` on the generator's core, the same rate for every proxy. CPU per request with its ratio to the best peer; latency added over `direct` at this rate.\n"
    );
    let _ = writeln!(
        o,
        "| proxy | achieved req/s | proxy CPU µs/req | added p50 µs | added p99 µs | added p99.9 µs | errors | generator verdict |\n|---|---:|---:|---:|---:|---:|---:|---|"
    );
    for row in rows {
        let Some(f) = fixed(row) else { continue };
        let added = |v: f64, base: Option<f64>| match base {
            Some(base) if row.proxy != crate::peers::Proxy::Direct => format!("{:.0}", v - base),
            _ => format!("({v:.0})"),
        };
        let cpu = match (f.cpu_us_per_req, best_cpu) {
            (Some(c), Some(best)) if best > 0.0 => format!("{c:.1} ({:.2})", c / best),
            (Some(c), _) => format!("{c:.1}"),
            (None, _) => "–".to_string(),
        };
        let _ = writeln!(
            o,
            "| {} | {:.0} | {cpu} | {} | {} | {} | {} | {} |",
            row.proxy.name(),
            f.achieved_rate,
            added(f.p50_us, direct.as_ref().map(|d| d.p50_us)),
            added(f.p99_us, direct.as_ref().map(|d| d.p99_us)),
            added(f.p999_us, direct.as_ref().map(|d| d.p999_us)),
            f.errors,
            f.verdict
        );
    }
    let _ = writeln!(o, "\n`direct` shows its own latency in brackets.\n");
    Some(o)
}
