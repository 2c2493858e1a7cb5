//! Running wrk (pinned to a core) and reading its text output: throughput, latency
//! percentiles, errors. A small Lua script adds the tail percentiles that
//! `--latency` does not print (99.9, 99.99) for the latency plots.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use serde::{Deserialize, Serialize};

/// The percentiles the latency plots show (wrk's `--latency` prints up to 99).
pub const PERCENTILES: [f64; 6] = [50.0, 75.0, 90.0, 99.0, 99.9, 99.99];

/// Marks the script's lines in wrk's output.
const PERCENTILE_TAG: &str = "ringmesh-bench-percentile";

/// What one load run measured: wrk's, or the connection-per-request client's.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WrkResult {
    pub requests: u64,
    pub seconds: f64,
    pub rps: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub non_2xx: u64,
    pub socket_errors: u64,
    /// `(percentile, µs)` for [`PERCENTILES`], when the script ran.
    #[serde(default)]
    pub percentiles: Vec<(f64, f64)>,
}

/// Writes the `done()` script that prints [`PERCENTILES`] into `dir`. wrk calls
/// `done` once after the run, so it costs nothing per request.
pub fn write_script(dir: &Path) -> anyhow::Result<PathBuf> {
    let list: Vec<String> = PERCENTILES.iter().map(|p| p.to_string()).collect();
    let text = format!(
        "-- Written by ringmesh-bench: latency percentiles beyond wrk --latency.\n\
         done = function(summary, latency, requests)\n\
         \x20 for _, p in ipairs({{{}}}) do\n\
         \x20   io.write(string.format(\"{PERCENTILE_TAG} %g %d\\n\", p, latency:percentile(p)))\n\
         \x20 end\n\
         end\n",
        list.join(", ")
    );
    let path = dir.join("percentiles.lua");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// `wrk -t1 -cC -dD --latency [-s SCRIPT] URL`, under `taskset -c CPU` when given.
pub fn run(
    url: &str,
    connections: usize,
    duration: Duration,
    cpu: Option<usize>,
    script: Option<&Path>,
) -> anyhow::Result<WrkResult> {
    let secs = duration.as_secs().max(1);
    let mut cmd = match cpu {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &c.to_string(), "wrk"]);
            cmd
        }
        None => Command::new("wrk"),
    };
    cmd.args([
        "-t1",
        &format!("-c{connections}"),
        &format!("-d{secs}s"),
        "--latency",
    ]);
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    cmd.arg(url);
    let out = cmd.output().context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk failed ({}): {}{}",
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse(&text).with_context(|| format!("parsing wrk output:\n{text}"))
}

/// `123.45us`, `1.20ms`, `2.00s`, `3.00m` → microseconds.
fn parse_latency_us(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = v.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(n * mult)
}

/// `10.00s` → seconds.
fn parse_seconds(v: &str) -> Option<f64> {
    parse_latency_us(v.trim_end_matches(',')).map(|us| us / 1e6)
}

pub fn parse(text: &str) -> anyhow::Result<WrkResult> {
    let mut r = WrkResult::default();
    let mut saw_total = false;
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        match t.as_slice() {
            [p, v] if p.ends_with('%') => {
                let us = parse_latency_us(v);
                match *p {
                    "50%" => r.p50_us = us.unwrap_or_default(),
                    "90%" => r.p90_us = us.unwrap_or_default(),
                    "99%" => r.p99_us = us.unwrap_or_default(),
                    _ => {}
                }
            }
            [n, "requests", "in", secs, ..] => {
                r.requests = n.parse().map_err(|_| anyhow!("bad request count {n:?}"))?;
                r.seconds = parse_seconds(secs).ok_or_else(|| anyhow!("bad duration {secs:?}"))?;
                saw_total = true;
            }
            [tag, p, us] if *tag == PERCENTILE_TAG => {
                if let (Ok(p), Ok(us)) = (p.parse(), us.parse()) {
                    r.percentiles.push((p, us));
                }
            }
            ["Requests/sec:", v] => r.rps = v.parse().unwrap_or_default(),
            ["Non-2xx", "or", "3xx", "responses:", n] => r.non_2xx = n.parse().unwrap_or_default(),
            ["Socket", "errors:", rest @ ..] => {
                r.socket_errors = rest
                    .iter()
                    .filter_map(|x| x.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
    }
    if !saw_total {
        bail!("no 'N requests in T' line");
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 10s test @ http://127.0.0.1:8080/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   310.00us  100.00us   5.00ms   90.00%
    Req/Sec    50.00k     2.00k   55.00k    70.00%
  Latency Distribution
     50%  300.00us
     75%  320.00us
     90%  400.00us
     99%    1.60ms
  500000 requests in 10.00s, 60.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 12
Requests/sec:  50000.00
Transfer/sec:      6.00MB
ringmesh-bench-percentile 99.9 2100
ringmesh-bench-percentile 99.99 4800
";

    #[test]
    fn parses_wrk_output() {
        let r = parse(SAMPLE).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.requests, 500_000);
        assert_eq!(r.seconds, 10.0);
        assert_eq!(r.rps, 50_000.0);
        assert_eq!(r.p50_us, 300.0);
        assert_eq!(r.p90_us, 400.0);
        assert_eq!(r.p99_us, 1600.0);
        assert_eq!(r.non_2xx, 12);
        assert_eq!(r.socket_errors, 3);
        assert_eq!(r.percentiles, vec![(99.9, 2100.0), (99.99, 4800.0)]);
    }

    #[test]
    fn script_prints_every_percentile() {
        let dir = crate::procs::TempDir::new("ringmesh-bench-wrk-test")
            .unwrap_or_else(|e| panic!("{e:#}"));
        let path = write_script(dir.path()).unwrap_or_else(|e| panic!("{e:#}"));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            text.contains("ipairs({50, 75, 90, 99, 99.9, 99.99})"),
            "{text}"
        );
        assert!(text.contains("latency:percentile(p)"), "{text}");
    }

    #[test]
    fn rejects_output_without_totals() {
        assert!(parse("unable to connect to 127.0.0.1:1 Connection refused").is_err());
    }
}
