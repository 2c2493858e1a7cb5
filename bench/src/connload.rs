//! A closed-loop load of one new connection per request, for the TLS handshake
//! scenarios. wrk cannot do it: with `Connection: close` it reconnects on the same
//! OpenSSL object and so resumes the previous session, and it never resumes
//! on purpose either. This client makes the choice explicit (`--resume`).
//!
//! It runs as a hidden subcommand of this binary so that the scenario can pin it to
//! the load core with taskset, like wrk; it prints one JSON [`WrkResult`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::tls;
use crate::wrk::{WrkResult, PERCENTILES};

#[derive(Debug, Clone, clap::Args)]
pub struct ConnLoadArgs {
    /// Where to connect.
    #[arg(long)]
    pub addr: SocketAddr,
    /// CA certificate to trust; without it the connections are plaintext TCP.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Offer the session remembered from an earlier connection (TLS 1.3 PSK).
    #[arg(long)]
    pub resume: bool,
    /// Concurrent connections (one thread each).
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
}

/// Runs the load and prints its result as JSON on stdout.
pub fn main(a: &ConnLoadArgs) -> anyhow::Result<i32> {
    let result = run(a)?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(0)
}

fn run(a: &ConnLoadArgs) -> anyhow::Result<WrkResult> {
    // A config, and with it a session cache, per thread, as each client
    // process would have. One cache shared by every thread keeps only 8 TLS 1.3
    // tickets per server name (rustls), fewer than the connections between
    // storing a ticket and taking one: the rest fell back to full handshakes
    // (87-90% resumed against ringmesh, 100% sequentially).
    let mut configs = Vec::new();
    for _ in 0..a.connections.max(1) {
        configs.push(match &a.ca {
            Some(ca) => Some(tls::client_config(ca, a.resume)?),
            None => None,
        });
    }
    let errors = Arc::new(AtomicU64::new(0));
    let non_200 = Arc::new(AtomicU64::new(0));
    let resumed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(a.duration.max(1));
    let mut threads = Vec::new();
    for config in configs {
        let (errors, non_200, resumed) = (errors.clone(), non_200.clone(), resumed.clone());
        let addr = a.addr;
        threads.push(std::thread::spawn(move || {
            let mut lat_us: Vec<u32> = Vec::with_capacity(64 * 1024);
            while Instant::now() < deadline {
                let t0 = Instant::now();
                match tls::get_once(addr, "/", config.as_ref(), Duration::from_secs(5)) {
                    Ok((status, negotiated)) => {
                        let us = t0.elapsed().as_micros();
                        lat_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                        if status != 200 {
                            non_200.fetch_add(1, Ordering::Relaxed);
                        }
                        if negotiated.is_some_and(|n| n.resumed) {
                            resumed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        // Do not spin on a refusing server.
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
            lat_us
        }));
    }
    let mut all = Vec::new();
    for t in threads {
        match t.join() {
            Ok(v) => all.extend(v),
            Err(_) => bail!("a load thread panicked"),
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let requests = all.len() as u64;
    if requests == 0 {
        bail!(
            "no request succeeded against {} ({} errors)",
            a.addr,
            errors.load(Ordering::Relaxed)
        );
    }
    let pct = |p: f64| percentile(&all, p);
    let r = resumed.load(Ordering::Relaxed);
    if a.resume && a.ca.is_some() && r * 10 < requests * 9 {
        // Said on stderr: the scenario keeps it in the log, the figures stand.
        eprintln!("conn-load: only {r} of {requests} handshakes resumed");
    }
    Ok(WrkResult {
        requests,
        seconds,
        rps: requests as f64 / seconds,
        p50_us: pct(50.0),
        p90_us: pct(90.0),
        p99_us: pct(99.0),
        non_2xx: non_200.load(Ordering::Relaxed),
        socket_errors: errors.load(Ordering::Relaxed),
        percentiles: PERCENTILES.iter().map(|&p| (p, pct(p))).collect(),
    })
}

/// The `p`th percentile of sorted samples (nearest rank).
fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // The epsilon keeps 99.9 % of 1000 at rank 999 despite 99.9 not being exact.
    let rank = (p / 100.0 * sorted.len() as f64 - 1e-9).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// A copy of this executable in `dir` to run `conn-load` from: cargo replaces
/// target/release/ringmesh-bench when anyone rebuilds it, which would break a run
/// in progress. /proc/self/exe stays readable even after that.
pub fn copy_self(dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    let dst = dir.join("ringmesh-bench-conn-load");
    std::fs::copy("/proc/self/exe", &dst)
        .with_context(|| format!("copying this executable to {}", dst.display()))?;
    Ok(dst)
}

/// Runs `exe conn-load` (a copy of this binary) under `taskset -c CPU` and reads
/// its result.
pub fn spawn(
    exe: &std::path::Path,
    addr: SocketAddr,
    ca: Option<&std::path::Path>,
    resume: bool,
    connections: usize,
    duration: Duration,
    cpu: Option<usize>,
) -> anyhow::Result<WrkResult> {
    let mut cmd = match cpu {
        Some(c) => {
            let mut cmd = std::process::Command::new("taskset");
            cmd.arg("-c").arg(c.to_string()).arg(exe);
            cmd
        }
        None => std::process::Command::new(exe),
    };
    cmd.args(["conn-load", "--addr", &addr.to_string()])
        .args(["--connections", &connections.to_string()])
        .args(["--duration", &duration.as_secs().max(1).to_string()]);
    if let Some(ca) = ca {
        cmd.arg("--ca").arg(ca);
    }
    if resume {
        cmd.arg("--resume");
    }
    let out = cmd.output().context("running conn-load")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("conn-load failed ({}): {stderr}", out.status);
    }
    if !stderr.trim().is_empty() {
        eprintln!("bench: {}", stderr.trim());
    }
    serde_json::from_slice(&out.stdout).context("reading conn-load's result")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&v, 50.0), 500.0);
        assert_eq!(percentile(&v, 99.9), 999.0);
        assert_eq!(percentile(&v, 99.99), 1000.0);
        assert_eq!(percentile(&[7], 0.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
