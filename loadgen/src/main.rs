//! ringmesh-loadgen: `serve` (a fast test upstream) and `run` (open-loop load that
//! checks SLOs). Exit codes of `run`: 0 PASS, 1 an SLO failed, 2 usage error,
//! 3 INVALID (the generator was the bottleneck), 4 target unreachable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use ringmesh_loadgen::client::Target;
use ringmesh_loadgen::report::{self, SloSpec};
use ringmesh_loadgen::run::{self, Outcome, RunConfig};
use ringmesh_loadgen::serve::{self, ServeConfig};
use ringmesh_loadgen::slo::{parse_duration, parse_slo};
use ringmesh_loadgen::stats::Stats;
use ringmesh_loadgen::verdict::EXIT_USAGE;

#[derive(Parser)]
#[command(name = "ringmesh-loadgen", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve HTTP/1.1 keep-alive (every request gets 200) or TCP echo.
    Serve(ServeArgs),
    /// Send HTTP/1.1 load to URL and check SLOs.
    Run(RunArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    #[arg(long)]
    listen: SocketAddr,
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Response body size in bytes.
    #[arg(long, default_value_t = 100)]
    body_size: usize,
    /// Value of the `x-upstream` response header.
    #[arg(long, default_value = "upstream")]
    name: String,
    /// Delay some requests by this many milliseconds.
    #[arg(long, requires = "delay_percent")]
    delay_ms: Option<f64>,
    /// Share of requests to delay, in percent.
    #[arg(long, requires = "delay_ms")]
    delay_percent: Option<f64>,
    /// TCP echo server instead of HTTP.
    #[arg(long)]
    tcp: bool,
}

#[derive(clap::Args)]
struct RunArgs {
    /// http://host:port/path
    url: String,
    /// Requests per second (open loop); without it, closed loop at max throughput.
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    #[arg(long, default_value_t = 16)]
    connections: usize,
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// e.g. 'p99<2ms', 'p99.9<10ms', 'error_rate<0.1%', 'achieved_rate>=95%'
    #[arg(long = "slo", value_parser = slo_arg)]
    slos: Vec<SloSpec>,
    /// Per-request timeout.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    /// Write the report as JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Schedule-lag p99 beyond which the measurement is INVALID (the generator
    /// itself sent late). Raise it only knowing that latencies then include it.
    #[arg(long, default_value = "1ms", value_parser = parse_duration)]
    max_lag: Duration,
}

fn slo_arg(s: &str) -> Result<SloSpec, String> {
    Ok(SloSpec {
        text: s.to_string(),
        slo: parse_slo(s)?,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Serve(a) => serve_cmd(a),
        Cmd::Run(a) => run_cmd(a),
    };
    match code {
        Ok(c) => ExitCode::from(c),
        Err(e) => {
            eprintln!("ringmesh-loadgen: {e:#}");
            ExitCode::from(EXIT_USAGE as u8)
        }
    }
}

fn serve_cmd(a: ServeArgs) -> anyhow::Result<u8> {
    let delay = match (a.delay_ms, a.delay_percent) {
        (Some(ms), Some(p)) if ms >= 0.0 && (0.0..=100.0).contains(&p) => {
            Some((Duration::from_secs_f64(ms / 1000.0), p))
        }
        (None, None) => None,
        _ => anyhow::bail!("--delay-ms must be >= 0 and --delay-percent within 0..=100"),
    };
    serve::serve(&ServeConfig {
        listen: a.listen,
        workers: a.workers,
        body_size: a.body_size,
        name: a.name,
        delay,
        tcp: a.tcp,
    })?;
    Ok(0)
}

fn run_cmd(a: RunArgs) -> anyhow::Result<u8> {
    let target = Target::parse(&a.url).map_err(anyhow::Error::msg)?;
    if a.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        anyhow::bail!("--rate must be a positive number");
    }
    if a.connections == 0 || a.duration.is_zero() {
        anyhow::bail!("--connections and --duration must be positive");
    }
    let cfg = RunConfig {
        target: target.clone(),
        rate: a.rate,
        duration: a.duration,
        connections: a.connections,
        workers: a.workers,
        timeout: a.timeout,
        max_lag: a.max_lag,
    };
    // Fail fast (exit 4) instead of recording a connect error per scheduled request.
    let outcome = match std::net::TcpStream::connect_timeout(&target.addr, Duration::from_secs(2)) {
        Ok(_) => run::run(&cfg)?,
        Err(e) => {
            eprintln!("ringmesh-loadgen: cannot connect to {}: {e}", target.addr);
            let mut stats = Stats::new()?;
            stats.connect_errors = 1;
            Outcome {
                stats,
                achieved_rate: 0.0,
                measured: Duration::ZERO,
            }
        }
    };
    let report = report::build(&a.url, &cfg, &outcome, &a.slos);
    print!("{}", report::summary(&report));
    if let Some(path) = &a.out {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(u8::try_from(report.exit_code).unwrap_or(1))
}
