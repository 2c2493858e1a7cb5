//! Load generators compared on the same target in one run: ringmesh-loadgen, wrk
//! and (when installed) oha, each pinned to the same core against one `serve`
//! upstream on the other. Closed loop: the generator's own CPU per request, which
//! gives its capacity per core even when the upstream is what saturates. Open
//! loop at a fixed rate: ringmesh-loadgen's response-time percentiles against
//! oha's with `--latency-correction` (wrk2's method: latency counted from each
//! request's intended send time).
//!
//! This machine's figures move by tens of percent from minute to minute, so
//! every generator runs once per round, rounds alternate the order (forward,
//! then reversed), and the report gives the median over rounds with each
//! round's figure beside it: a comparison is only as good as its spread.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use serde_json::Value;

use crate::cpu;
use crate::procs::{self, Proc, TempDir};
use crate::wrk;

mod summary;
use summary::{list, Summary};

#[derive(clap::Args)]
pub struct GeneratorArgs {
    /// Seconds per measured run.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Connections of the closed-loop runs.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Rate of the open-loop comparison (req/s).
    #[arg(long, default_value_t = 5000)]
    pub rate: u32,
    /// Rounds; each runs every generator once (the order reversed every other round).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// oha binary (default: `oha` on PATH).
    #[arg(long)]
    pub oha: Option<PathBuf>,
    /// Skip `cargo build --release`.
    #[arg(long)]
    pub no_build: bool,
    /// Markdown report.
    #[arg(long)]
    pub results: Option<PathBuf>,
}

/// What one generator run measured.
#[derive(Debug, Clone, Default)]
struct Measured {
    requests: f64,
    rps: f64,
    /// The generator's CPU seconds (user + system) over the run.
    cpu_s: f64,
    /// (p50, p90, p99, p99.9) in µs, when the tool reports them.
    ladder: Option<[f64; 4]>,
    /// ringmesh-loadgen's verdict on its own measurement (an INVALID one says why).
    verdict: String,
}

impl Measured {
    fn cpu_us_per_request(&self) -> f64 {
        if self.requests > 0.0 {
            self.cpu_s * 1e6 / self.requests
        } else {
            f64::NAN
        }
    }
}

/// One generator in one mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    LoadgenClosed,
    WrkClosed,
    OhaClosed,
    LoadgenOpen,
    OhaOpen,
}

impl Job {
    fn name(self) -> &'static str {
        match self {
            Job::LoadgenClosed | Job::LoadgenOpen => "ringmesh-loadgen",
            Job::WrkClosed => "wrk",
            Job::OhaClosed => "oha",
            Job::OhaOpen => "oha --latency-correction",
        }
    }

    /// File and process name.
    fn tag(self) -> &'static str {
        match self {
            Job::LoadgenClosed => "loadgen-closed",
            Job::WrkClosed => "wrk",
            Job::OhaClosed => "oha-closed",
            Job::LoadgenOpen => "loadgen-open",
            Job::OhaOpen => "oha-open",
        }
    }

    fn is_open(self) -> bool {
        matches!(self, Job::LoadgenOpen | Job::OhaOpen)
    }
}

const CORE_GENERATOR: usize = 0;
const CORE_UPSTREAM: usize = 1;

pub fn run(args: &GeneratorArgs) -> anyhow::Result<i32> {
    let bins = procs::build_binaries(args.no_build)?;
    let dir = TempDir::new("ringmesh-generators")?;
    let pin = cpu::machine().nproc >= 2 && procs::have("taskset");
    let core = |c: usize| pin.then_some(c);
    let oha = args
        .oha
        .clone()
        .or_else(|| procs::have("oha").then(|| PathBuf::from("oha")));
    let port = procs::free_port()?;
    let url = format!("http://127.0.0.1:{port}/");
    let mut upstream = procs::spawn(
        "upstream",
        core(CORE_UPSTREAM),
        &bins.loadgen,
        &[
            "serve".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--body-size".into(),
            "100".into(),
        ],
        dir.path(),
    )?;
    procs::wait_tcp(procs::loopback(port), Duration::from_secs(5), &mut upstream)?;
    let secs = args.duration.max(1);
    let conns = args.connections.max(1).to_string();
    let rate = args.rate.max(1);
    let script = wrk::write_script(dir.path())?;
    let mut jobs = vec![Job::LoadgenClosed, Job::WrkClosed];
    if oha.is_some() {
        jobs.push(Job::OhaClosed);
    }
    jobs.push(Job::LoadgenOpen);
    if oha.is_some() {
        jobs.push(Job::OhaOpen);
    }
    let mut rounds: Vec<Vec<Measured>> = vec![Vec::new(); jobs.len()];
    for round in 0..args.rounds.max(1) {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..jobs.len()).collect()
        } else {
            (0..jobs.len()).rev().collect()
        };
        for i in order {
            let job = jobs[i];
            eprintln!(
                "bench: round {} of {}: {}",
                round + 1,
                args.rounds.max(1),
                job.name()
            );
            let (program, job_args, output): (PathBuf, Vec<String>, PathBuf) = match job {
                Job::LoadgenClosed | Job::LoadgenOpen => {
                    let json = dir.path().join(format!("{}.json", job.tag()));
                    let open = (job == Job::LoadgenOpen).then_some(rate);
                    let a = loadgen_args(&url, &conns, secs, open, &json);
                    (bins.loadgen.clone(), a, json)
                }
                Job::WrkClosed => {
                    let a = vec![
                        "-t1".into(),
                        format!("-c{conns}"),
                        format!("-d{secs}s"),
                        "--latency".into(),
                        "-s".into(),
                        script.display().to_string(),
                        url.clone(),
                    ];
                    (PathBuf::from("wrk"), a, dir.path().join("wrk.log"))
                }
                Job::OhaClosed | Job::OhaOpen => {
                    let open = (job == Job::OhaOpen).then_some(rate);
                    let program = oha.clone().unwrap_or_else(|| PathBuf::from("oha"));
                    let a = oha_args(&url, &conns, secs, open);
                    (program, a, dir.path().join(format!("{}.log", job.tag())))
                }
            };
            // A run that exits without writing must not be read as the last round's.
            let _ = std::fs::remove_file(&output);
            let cpu_s = measure(job.tag(), core(CORE_GENERATOR), &program, &job_args, &dir)?;
            let measured = match job {
                Job::LoadgenClosed | Job::LoadgenOpen => from_loadgen(&output, cpu_s)?,
                Job::WrkClosed => from_wrk(&output, cpu_s)?,
                Job::OhaClosed | Job::OhaOpen => from_oha(&output, cpu_s)?,
            };
            rounds[i].push(measured);
        }
    }
    let mut closed: Vec<(&str, Summary)> = Vec::new();
    let mut open: Vec<(&str, Summary)> = Vec::new();
    for (job, measured) in jobs.iter().zip(&rounds) {
        let entry = (job.name(), Summary::of(measured));
        if job.is_open() {
            open.push(entry);
        } else {
            closed.push(entry);
        }
    }
    upstream.terminate(Duration::from_secs(2));

    let report = render(args, &closed, &open, oha.is_some(), pin);
    print!("{report}");
    if let Some(path) = &args.results {
        std::fs::write(path, &report).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("bench: wrote {}", path.display());
    }
    Ok(0)
}

/// `ringmesh-loadgen run`: closed loop, or open loop at `rate`; JSON to `json`.
fn loadgen_args(url: &str, conns: &str, secs: u64, rate: Option<u32>, json: &Path) -> Vec<String> {
    let mut out = vec!["run".into(), url.to_string()];
    if let Some(rate) = rate {
        out.extend(["--rate".into(), rate.to_string()]);
    }
    out.extend([
        "--connections".into(),
        conns.to_string(),
        "--duration".into(),
        format!("{secs}s"),
        "--out".into(),
        json.display().to_string(),
    ]);
    out
}

/// oha with JSON output: closed loop, or open loop at `rate` with wrk2's latency correction.
fn oha_args(url: &str, conns: &str, secs: u64, rate: Option<u32>) -> Vec<String> {
    let mut out = vec![
        "-c".into(),
        conns.to_string(),
        "-z".into(),
        format!("{secs}s"),
    ];
    if let Some(rate) = rate {
        out.extend(["-q".into(), rate.to_string(), "--latency-correction".into()]);
    }
    out.extend([
        "--no-tui".into(),
        "--output-format".into(),
        "json".into(),
        url.to_string(),
    ]);
    out
}

/// Runs a generator to its end and returns its CPU seconds, sampled from /proc
/// while it runs (the last sample is at most 50 ms before it exits).
fn measure(
    name: &str,
    core: Option<usize>,
    program: &Path,
    args: &[String],
    dir: &TempDir,
) -> anyhow::Result<f64> {
    let mut proc: Proc = procs::spawn(name, core, program, args, dir.path())?;
    let started = Instant::now();
    let mut ticks = 0u64;
    loop {
        if let Some(status) = proc.exited() {
            // ringmesh-loadgen exits 1 for a failed SLO and 3 for an INVALID
            // measurement: both still wrote their figures.
            if !status.success() && !matches!(status.code(), Some(1 | 3)) {
                bail!("{name} failed ({status}):\n{}", proc.log_tail(20));
            }
            break;
        }
        if let Ok(now) = cpu::cpu_ticks(proc.pid()) {
            ticks = now;
        }
        if started.elapsed() > Duration::from_secs(600) {
            proc.terminate(Duration::from_secs(1));
            bail!("{name} did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(ticks as f64 / cpu::clk_tck() as f64)
}

fn from_loadgen(json: &Path, cpu_s: f64) -> anyhow::Result<Measured> {
    let text =
        std::fs::read_to_string(json).with_context(|| format!("reading {}", json.display()))?;
    let v: Value = serde_json::from_str(&text).context("loadgen JSON")?;
    let number = |path: &[&str]| -> anyhow::Result<f64> {
        let mut at = &v;
        for key in path {
            at = at
                .get(key)
                .ok_or_else(|| anyhow!("loadgen JSON has no {}", path.join(".")))?;
        }
        at.as_f64()
            .ok_or_else(|| anyhow!("loadgen JSON {} is not a number", path.join(".")))
    };
    let ladder = ["p50_us", "p90_us", "p99_us", "p999_us"]
        .map(|p| number(&["latency", "response", p]).unwrap_or(f64::NAN));
    let verdict = match (
        v.pointer("/verdict/kind").and_then(Value::as_str),
        v.pointer("/verdict/reason").and_then(Value::as_str),
    ) {
        (Some(kind), Some(reason)) if !reason.is_empty() => format!("{kind}: {reason}"),
        (Some(kind), _) => kind.to_string(),
        _ => String::new(),
    };
    Ok(Measured {
        requests: number(&["requests", "ok"])?,
        rps: number(&["achieved_rate"])?,
        cpu_s,
        ladder: Some(ladder),
        verdict,
    })
}

fn from_wrk(log: &Path, cpu_s: f64) -> anyhow::Result<Measured> {
    let text =
        std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    let r = wrk::parse(&text)?;
    let at = |p: f64| {
        r.percentiles
            .iter()
            .find(|(q, _)| (*q - p).abs() < 1e-9)
            .map_or(f64::NAN, |(_, us)| *us)
    };
    Ok(Measured {
        requests: r.requests as f64,
        rps: r.rps,
        cpu_s,
        ladder: Some([r.p50_us, r.p90_us, r.p99_us, at(99.9)]),
        verdict: String::new(),
    })
}

fn from_oha(log: &Path, cpu_s: f64) -> anyhow::Result<Measured> {
    let text =
        std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    // oha may print a line before its JSON; the object starts at the first brace.
    let start = text
        .find('{')
        .ok_or_else(|| anyhow!("no JSON in {}", log.display()))?;
    let v: Value = serde_json::from_str(&text[start..]).context("oha JSON")?;
    let rps = v
        .pointer("/summary/requestsPerSec")
        .and_then(Value::as_f64)
        .ok_or_else(|| anyhow!("oha JSON has no summary.requestsPerSec"))?;
    let total_s = v
        .pointer("/summary/total")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let ok: f64 = v
        .pointer("/statusCodeDistribution/200")
        .and_then(Value::as_f64)
        .unwrap_or(rps * total_s);
    let seconds = |p: &str| {
        v.pointer(&format!("/latencyPercentiles/{p}"))
            .and_then(Value::as_f64)
            .map_or(f64::NAN, |s| s * 1e6)
    };
    Ok(Measured {
        requests: ok,
        rps,
        cpu_s,
        ladder: Some([
            seconds("p50"),
            seconds("p90"),
            seconds("p99"),
            seconds("p99.9"),
        ]),
        verdict: String::new(),
    })
}

fn render(
    args: &GeneratorArgs,
    closed: &[(&str, Summary)],
    open: &[(&str, Summary)],
    have_oha: bool,
    pinned: bool,
) -> String {
    let mut out = String::new();
    let machine = cpu::machine();
    let _ = writeln!(out, "# Load generators compared\n");
    let _ = writeln!(out, "- date: {}", crate::scenario::now_utc());
    let _ = writeln!(
        out,
        "- command: `cargo run --release -p ringmesh-bench -- generators` ({} rounds of {} s runs, {} connections, open loop at {} req/s)",
        args.rounds.max(1), args.duration, args.connections, args.rate
    );
    let _ = writeln!(
        out,
        "- machine: {} CPUs, {}; generator {}, upstream (`ringmesh-loadgen serve`, 100 B) {}",
        machine.nproc,
        machine.kernel,
        if pinned {
            "pinned to core 0"
        } else {
            "unpinned"
        },
        if pinned { "on core 1" } else { "unpinned" },
    );
    let _ = writeln!(
        out,
        "- each round runs every generator once, the order reversed every other round; figures are medians over the rounds, with each round's value in run order where it matters"
    );
    if !have_oha {
        let _ = writeln!(out, "- oha: not installed (`cargo install oha`), left out");
    }
    let best = closed
        .iter()
        .map(|(_, m)| m.cpu_us)
        .filter(|v| v.is_finite())
        .fold(f64::INFINITY, f64::min);
    let _ = writeln!(
        out,
        "\n## Closed loop: the generator's own cost\n\nCapacity per core = 1 s ÷ CPU per request (the upstream, not the generator, is what saturates here).\n"
    );
    let _ = writeln!(
        out,
        "| generator | req/s | CPU µs/req (ratio to best) | each round | capacity per core, req/s | p50 µs | p99 µs |\n|---|---:|---:|---|---:|---:|---:|"
    );
    for (name, m) in closed {
        let _ = writeln!(
            out,
            "| {name} | {:.0} | {:.2} ({:.2}) | {} | {:.0} | {:.0} | {:.0} |",
            m.rps,
            m.cpu_us,
            m.cpu_us / best,
            // Closed loop the generator is the bottleneck by design, which its
            // verdict calls INVALID: not a flaw of that measurement.
            list(&m.cpu_us_rounds, &[], 2),
            1e6 / m.cpu_us,
            m.ladder[0],
            m.ladder[2]
        );
    }
    let _ = writeln!(
        out,
        "\n## Open loop at {} req/s: response time from the intended send time\n",
        args.rate
    );
    let _ = writeln!(
        out,
        "| generator | achieved req/s | p50 µs | p90 µs | p99 µs | p99 each round | p99.9 µs | CPU µs/req | own verdicts |\n|---|---:|---:|---:|---:|---|---:|---:|---|"
    );
    for (name, m) in open {
        let l = m.ladder;
        let verdicts = if m.verdicts.is_empty() {
            "–".to_string()
        } else {
            m.verdicts
                .iter()
                .map(|(kind, n, first)| {
                    if kind == "PASS" {
                        format!("{n}× PASS")
                    } else {
                        format!("{n}× {first}")
                    }
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        let _ = writeln!(
            out,
            "| {name} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {:.0} | {:.2} | {verdicts} |",
            m.rps,
            l[0],
            l[1],
            l[2],
            list(&m.p99_rounds, &m.invalid_rounds, 0),
            l[3],
            m.cpu_us,
        );
    }
    if open.iter().any(|(_, m)| m.invalid_rounds.contains(&true)) {
        let _ = writeln!(
            out,
            "\n\\* a round ringmesh-loadgen judged INVALID (its own measurement was off; the verdict says why). It still counts in the median."
        );
    }
    out
}
