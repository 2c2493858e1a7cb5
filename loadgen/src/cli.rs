//! The command line: every subcommand's flags, checked and turned into
//! configurations; `run` and `report` are carried out here, the others in their
//! own modules.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::report::{self, SloSpec};
use crate::run::{self, Load, RunConfig};
use crate::schedule::{Arrival, Profile, SCHEDULE_HELP};
use crate::serve_cli::ServeArgs;
use crate::slo::{parse_duration, parse_slo_file};
use crate::target::Target;
use crate::tls::Trust;
use crate::{compare, selftest, stats, summary, sweep};

/// Exit codes: 0 PASS, 1 an SLO failed, 2 usage error, 3 INVALID (the generator
/// was the limit), 4 target unreachable.
#[derive(Parser)]
#[command(name = "ringmesh-loadgen", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

const EXIT_CODES: &str = "Exit codes: 0 PASS, 1 FAIL (an SLO failed), 2 usage error, \
3 INVALID (the generator was the limit: rate short, schedule lag, CPU, descriptors or ports), \
4 UNREACHABLE.";

#[derive(Subcommand)]
enum Cmd {
    /// Serve HTTP/1.1 keep-alive (200 to every request) or a TCP echo, optionally
    /// over TLS, with injectable delays, stalls, errors and sizes.
    Serve(ServeArgs),
    /// Send load to URL (http://, https://, tcp://, tls://) and check SLOs.
    Run(RunArgs),
    /// Re-render the summary and verdict of a JSON report written by `run --out`.
    Report(ReportArgs),
    /// Measure this machine's generator: capacity per core and timer-lag floor.
    Selftest(selftest::SelftestArgs),
    /// The same rate against a baseline and a candidate in interleaved segments.
    Compare(compare::CompareArgs),
    /// Raise the rate step by step; report the highest rate that meets the SLOs.
    Sweep(sweep::SweepArgs),
}

/// How each connection behaves, shared by `run`, `compare` and `sweep`.
#[derive(clap::Args, Clone)]
pub struct ConnArgs {
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Worker threads (one event loop each); give each its own core.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Per-request timeout.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Message size in bytes for tcp:// and tls:// (echoed back by the target).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// CA certificates (PEM) to trust for https:// and tls://.
    #[arg(long, conflicts_with = "insecure")]
    pub cacert: Option<PathBuf>,
    /// Accept any server certificate (https:// and tls://).
    #[arg(long)]
    pub insecure: bool,
    /// How requests are spread in time at a given rate.
    #[arg(long, value_enum, default_value_t = Arrival::Constant)]
    pub arrival: Arrival,
    /// Seed of the Poisson arrivals (same seed, same send times).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Schedule-lag p99 beyond which the measurement is INVALID (the generator
    /// itself sent late). Raise it only knowing that latencies then include it.
    #[arg(long, default_value = "1ms", value_parser = parse_duration)]
    pub max_lag: Duration,
}

impl ConnArgs {
    /// The run configuration for `target` under `load`.
    pub fn config(&self, target: &Target, load: Load) -> anyhow::Result<RunConfig> {
        anyhow::ensure!(self.connections > 0, "--connections must be positive");
        let tls = if target.tls {
            let trust = match (&self.cacert, self.insecure) {
                (Some(path), _) => Trust::CaFile(path.clone()),
                (None, true) => Trust::Insecure,
                (None, false) => anyhow::bail!(
                    "{}://: give --cacert FILE (the CA to trust) or --insecure",
                    if target.proto == crate::target::Proto::Http {
                        "https"
                    } else {
                        "tls"
                    }
                ),
            };
            let alpn: &[&[u8]] = match target.proto {
                crate::target::Proto::Http => &[b"http/1.1"],
                crate::target::Proto::Echo => &[],
            };
            Some(crate::tls::client_config(&trust, alpn)?)
        } else {
            None
        };
        Ok(RunConfig {
            target: target.clone(),
            load,
            connections: self.connections,
            workers: self.workers,
            timeout: self.timeout,
            max_lag: self.max_lag,
            size: self.size,
            tls,
            progress: crate::progress::wanted(),
        })
    }

    pub fn open(&self, profile: Profile) -> Load {
        Load::Open {
            profile,
            arrival: self.arrival,
            seed: self.seed,
        }
    }
}

/// SLOs from `--slo` and `--slo-file`.
#[derive(clap::Args, Clone, Default)]
pub struct SloArgs {
    /// e.g. 'p99<2ms', 'p99.9<10ms', 'error_rate<0.1%', 'achieved_rate>=95%'
    #[arg(long = "slo", value_parser = slo_arg)]
    pub slos: Vec<SloSpec>,
    /// A file of SLOs, one per line; '#' starts a comment.
    #[arg(long)]
    pub slo_file: Option<PathBuf>,
}

impl SloArgs {
    pub fn all(&self) -> anyhow::Result<Vec<SloSpec>> {
        let mut all = self.slos.clone();
        if let Some(path) = &self.slo_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let parsed =
                parse_slo_file(&text).map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display()))?;
            all.extend(parsed.into_iter().map(|(text, slo)| SloSpec { text, slo }));
        }
        Ok(all)
    }

    pub fn given(&self) -> bool {
        !self.slos.is_empty() || self.slo_file.is_some()
    }
}

fn slo_arg(s: &str) -> Result<SloSpec, String> {
    SloSpec::parse(s)
}

fn positive_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r > 0.0 && r.is_finite() => Ok(r),
        _ => Err(format!("{s:?}: must be a positive number")),
    }
}

#[derive(clap::Args)]
struct RunArgs {
    /// http://host:port/path, https://…, tcp://host:port or tls://host:port
    url: String,
    /// Requests per second (open loop); without it (and --schedule), closed loop
    /// at max throughput.
    #[arg(long, value_parser = positive_rate)]
    rate: Option<f64>,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// A rate over time instead of --rate/--duration.
    #[arg(long, conflicts_with_all = ["rate", "duration"], value_parser = Profile::parse, help = SCHEDULE_HELP)]
    schedule: Option<Profile>,
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    slo: SloArgs,
    /// Write the report as JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the response-time percentile spectrum (text) to this file.
    #[arg(long)]
    spectrum: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ReportArgs {
    /// A JSON report written by `run --out`.
    file: PathBuf,
    /// Judge against these SLOs instead of the ones the run had.
    #[command(flatten)]
    slo: SloArgs,
    /// Write the response-time percentile spectrum (text) to this file.
    #[arg(long)]
    spectrum: Option<PathBuf>,
}

/// Parses the arguments and runs the subcommand; returns the exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Serve(a) => crate::serve_cli::serve_cmd(a),
        Cmd::Run(a) => run_cmd(a),
        Cmd::Report(a) => report_cmd(a),
        Cmd::Selftest(a) => selftest::selftest_cmd(a),
        Cmd::Compare(a) => compare::compare_cmd(a),
        Cmd::Sweep(a) => sweep::sweep_cmd(a),
    };
    match code {
        Ok(c) => std::process::ExitCode::from(u8::try_from(c).unwrap_or(1)),
        Err(e) => {
            eprintln!("ringmesh-loadgen: {e:#}");
            std::process::ExitCode::from(crate::verdict::EXIT_USAGE as u8)
        }
    }
}

fn run_cmd(a: RunArgs) -> anyhow::Result<i32> {
    let target = Target::parse(&a.url).map_err(anyhow::Error::msg)?;
    let load = match (a.schedule, a.rate) {
        (Some(profile), _) => a.conn.open(profile),
        (None, Some(rate)) => {
            anyhow::ensure!(!a.duration.is_zero(), "--duration must be positive");
            a.conn.open(Profile::constant(rate, a.duration))
        }
        (None, None) => {
            anyhow::ensure!(!a.duration.is_zero(), "--duration must be positive");
            Load::Closed {
                duration: a.duration,
            }
        }
    };
    let cfg = a.conn.config(&target, load)?;
    let slos = a.slo.all()?;
    let outcome = match probe(&target) {
        Ok(()) => run::run(&cfg)?,
        Err(e) => {
            eprintln!("ringmesh-loadgen: cannot connect to {}: {e}", target.addr);
            run::Outcome::unreachable()?
        }
    };
    let report = report::build(&a.url, &cfg, &outcome, &slos)?;
    print!("{}", summary::summary(&report));
    if let Some(path) = &a.out {
        write_json(path, &report)?;
    }
    if let Some(path) = &a.spectrum {
        write_spectrum(path, outcome.stats_latency(&cfg))?;
    }
    Ok(report.exit_code)
}

/// Fails fast (exit 4) instead of recording a connect error per scheduled request.
pub fn probe(target: &Target) -> std::io::Result<()> {
    std::net::TcpStream::connect_timeout(&target.addr, Duration::from_secs(2)).map(drop)
}

pub fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(value)?;
    std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
}

fn write_spectrum(path: &Path, h: &hdrhistogram::Histogram<u64>) -> anyhow::Result<()> {
    std::fs::write(path, stats::spectrum(h, 5))
        .with_context(|| format!("writing {}", path.display()))
}

fn report_cmd(a: ReportArgs) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("reading {}", a.file.display()))?;
    let stored = report::load(&text).with_context(|| format!("{}", a.file.display()))?;
    let slos = if a.slo.given() {
        Some(a.slo.all()?)
    } else {
        None
    };
    let r = report::rejudge(&stored, slos.as_deref())?;
    print!("{}", summary::summary(&r));
    if let Some(path) = &a.spectrum {
        let h = report::hists(&r)?;
        let latency = if r.target_rate.is_some() {
            &h.response
        } else {
            &h.service
        };
        write_spectrum(path, latency)?;
    }
    Ok(r.exit_code)
}
