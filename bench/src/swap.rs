//! Table-swap latency: with a table of 10,000 routes and 1,000 clusters of 10
//! endpoints, the time from SIGHUP to the control process until the dataplane has
//! acknowledged the new generation (every worker serves it), and the p99 of
//! requests in flight meanwhile against the same load without swaps.

use crate::procs::{self, Proc};
use anyhow::{anyhow, bail, Context};
use ringmesh_api::wire::{self, Message, ProtocolVersion, Role};
use std::fmt::Write as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct SwapArgs {
    /// Routes in the table.
    #[arg(long, default_value_t = 10_000)]
    pub routes: usize,
    /// Clusters (10 endpoints each).
    #[arg(long, default_value_t = 1_000)]
    pub clusters: usize,
    /// Swaps to measure.
    #[arg(long, default_value_t = 20)]
    pub swaps: usize,
    /// Rate of the probe load during each phase (req/s).
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// Skip `cargo build --release`.
    #[arg(long)]
    pub no_build: bool,
    /// Markdown report.
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Alternating rounds of quiet and swapping probe load.
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
    /// Keep the run directory (configs and process logs) and print its path.
    #[arg(long)]
    pub keep: bool,
}

/// The big table; `variant` changes one route so each reload is a real swap.
fn config(args: &SwapArgs, listener: u16, admin: u16, upstream: u16, variant: usize) -> String {
    let mut text = String::with_capacity(args.routes * 120 + args.clusters * 200);
    let _ = writeln!(
        text,
        "[runtime]\nworkers = 2\nadmin = \"127.0.0.1:{admin}\"\n"
    );
    let _ = writeln!(
        text,
        "[[listener]]\nname = \"edge\"\nbind = \"127.0.0.1:{listener}\"\nprotocol = \"http\"\n"
    );
    let _ = writeln!(
        text,
        "[[listener.route]]\nname = \"probe\"\npath = \"/probe\"\ncluster = \"probe\"\n"
    );
    for route in 0..args.routes {
        let cluster = route % args.clusters.max(1);
        let prefix = if route == variant % args.routes.max(1) {
            "v"
        } else {
            "p"
        };
        let _ = writeln!(
            text,
            "[[listener.route]]\nname = \"r{route}\"\nhost = \"svc{cluster}.example.com\"\npath_prefix = \"/{prefix}{route}/\"\ncluster = \"c{cluster}\"\n"
        );
    }
    let _ = writeln!(
        text,
        "[[cluster]]\nname = \"probe\"\nendpoints = [\"127.0.0.1:{upstream}\"]\n"
    );
    for cluster in 0..args.clusters {
        let endpoints: Vec<String> = (0..10)
            .map(|e| {
                format!(
                    "\"127.0.{}.{}:{}\"",
                    1 + cluster / 250,
                    1 + cluster % 250,
                    20_000 + e
                )
            })
            .collect();
        let _ = writeln!(
            text,
            "[[cluster]]\nname = \"c{cluster}\"\nendpoints = [{}]\n",
            endpoints.join(", ")
        );
    }
    text
}

/// A status connection to the control process, kept open for the whole run so
/// that polling it costs one request/answer round trip, not a connect and a
/// handshake each time.
struct StatusLink {
    stream: UnixStream,
}

impl StatusLink {
    fn connect(socket: &Path) -> anyhow::Result<Self> {
        let mut stream = UnixStream::connect(socket)
            .with_context(|| format!("connecting {}", socket.display()))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let hello = Message::Hello {
            protocol: ProtocolVersion::CURRENT,
            role: Role::Cli,
            node: "bench".into(),
        };
        wire::write_message(&mut stream, &hello)?;
        wire::read_message(&mut stream)?;
        Ok(StatusLink { stream })
    }

    /// The generation served, the one the node `node` has acknowledged, and
    /// the control process's own reload → acknowledgement time for it.
    fn acked(&mut self, node: &str) -> anyhow::Result<(u64, u64, Option<Duration>)> {
        wire::write_message(&mut self.stream, &Message::StatusRequest)?;
        match wire::read_message(&mut self.stream)? {
            Message::StatusReply { status } => {
                let dataplane = status.dataplanes.iter().find(|d| d.node == node);
                Ok((
                    status.generation,
                    dataplane.map_or(0, |d| d.acked_generation),
                    dataplane
                        .and_then(|d| d.reload_to_ack_us)
                        .map(Duration::from_micros),
                ))
            }
            other => bail!("unexpected answer {}", other.kind()),
        }
    }
}

/// SIGHUP straight through kill(2): a `kill` command would add a process
/// start (milliseconds) to every measured swap.
fn sighup(pid: u32) -> anyhow::Result<()> {
    let pid = i32::try_from(pid).context("pid out of range")?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .with_context(|| format!("kill -HUP {pid}"))
}

/// p99 in µs from a loadgen JSON result (`response_time` percentiles).
fn p99_us(path: &Path) -> anyhow::Result<f64> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    let pointer = ["/latency/response/p99_us"];
    pointer
        .iter()
        .find_map(|p| json.pointer(p).and_then(serde_json::Value::as_f64))
        .ok_or_else(|| anyhow!("no p99 in {}", path.display()))
}

/// One swap every this long while swapping.
const SWAP_EVERY: Duration = Duration::from_millis(500);

/// Write `text`, SIGHUP the control process, and wait for the dataplane's ack;
/// returns the control process's own SIGHUP → ack time.
fn swap_once(
    status: &mut StatusLink,
    cfg: &Path,
    text: &str,
    control: &Proc,
    swap: usize,
) -> anyhow::Result<Duration> {
    std::fs::write(cfg, text)?;
    let (generation, _, _) = status.acked("bench")?;
    let started = Instant::now();
    sighup(control.pid())?;
    // The control process times the swap itself (SIGHUP received → ack), so
    // this loop only has to notice the end, and polls gently: every status
    // request wakes two processes on the cores the probe runs on.
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let (_, acked_generation, measured) = status.acked("bench")?;
        if acked_generation > generation {
            return Ok(measured.unwrap_or_else(|| started.elapsed()));
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("swap {swap} not acknowledged within 30 s");
        }
    }
}

/// The median, leaving `values` in round order for the report.
fn median_of(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

pub fn run(args: &SwapArgs) -> anyhow::Result<i32> {
    let bins = procs::build_binaries(args.no_build)?;
    let mut tmp = procs::TempDir::new("ringmesh-swap")?;
    if args.keep {
        tmp.keep();
        println!("run directory: {}", tmp.path().display());
    }
    let dir = tmp.path();
    let (listener, admin, upstream) = (
        procs::free_port()?,
        procs::free_port()?,
        procs::free_port()?,
    );
    let serve: Vec<String> = [
        "serve",
        "--listen",
        &format!("127.0.0.1:{upstream}"),
        "--name",
        "probe",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut up = procs::spawn("upstream", None, &bins.loadgen, &serve, dir)?;
    procs::wait_tcp(procs::loopback(upstream), Duration::from_secs(10), &mut up)?;
    let cfg = dir.join("big.toml");
    std::fs::write(&cfg, config(args, listener, admin, upstream, 0))?;
    let socket = dir.join("control.sock");
    let control_args = vec![
        "--config".into(),
        cfg.display().to_string(),
        "--socket".into(),
        socket.display().to_string(),
    ];
    let mut control = procs::spawn("control", None, &bins.control, &control_args, dir)?;
    let dp_args = vec![
        "--control".into(),
        socket.display().to_string(),
        "--node".into(),
        "bench".into(),
    ];
    let mut dp = procs::spawn("dataplane", None, &bins.dataplane, &dp_args, dir)?;
    procs::wait_http_ok(
        procs::loopback(admin),
        "/ready",
        Duration::from_secs(60),
        &mut dp,
    )?;

    let probe = format!("http://127.0.0.1:{listener}/probe");
    let phase = |name: &str, seconds: u64| -> anyhow::Result<std::process::Child> {
        Command::new(&bins.loadgen)
            .args([
                "run",
                &probe,
                "--rate",
                &args.rate.to_string(),
                "--duration",
                &format!("{seconds}s"),
            ])
            .args(["--connections", "16", "--out"])
            .arg(dir.join(format!("{name}.json")))
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("starting ringmesh-loadgen")
    };
    // Every config is written out before the probe starts: generating 10,000
    // routes of text is the bench's work, not the swap's, and must not compete
    // with the requests being measured.
    let variants: Vec<String> = (1..=args.swaps)
        .map(|swap| config(args, listener, admin, upstream, swap))
        .collect();
    // Quiet and swapping phases alternate (ABAB…) so that this shared
    // machine's bursts of noise hit both arms; each arm's p99 is the median
    // over the rounds.
    let rounds = args.rounds.clamp(1, args.swaps.max(1));
    let per_round = args.swaps.div_ceil(rounds);
    let phase_secs = (per_round as f64 * SWAP_EVERY.as_secs_f64()).ceil() as u64 + 1;
    let mut status = StatusLink::connect(&socket)?;
    let mut latencies = Vec::with_capacity(args.swaps);
    let (mut p99s_quiet, mut p99s_swaps) = (Vec::new(), Vec::new());
    let mut texts = variants.iter().enumerate();
    // Not measured: the first seconds of load after start-up (connections,
    // page faults, caches) are slower than any later phase and would land in
    // the quiet arm.
    phase("warm-up", phase_secs)?.wait()?;
    for round in 0..rounds {
        let quiet_json = format!("quiet-{round}");
        phase(&quiet_json, phase_secs)?.wait()?;
        p99s_quiet.push(p99_us(&dir.join(format!("{quiet_json}.json")))?);

        let swaps_json = format!("swaps-{round}");
        let mut during = phase(&swaps_json, phase_secs)?;
        std::thread::sleep(Duration::from_millis(250));
        for (swap, text) in texts.by_ref().take(per_round) {
            let cycle = Instant::now();
            latencies.push(swap_once(&mut status, &cfg, text, &control, swap + 1)?);
            std::thread::sleep(SWAP_EVERY.saturating_sub(cycle.elapsed()));
        }
        during.wait()?;
        p99s_swaps.push(p99_us(&dir.join(format!("{swaps_json}.json")))?);
    }
    let p99_quiet = median_of(&p99s_quiet);
    let p99_swaps = median_of(&p99s_swaps);

    latencies.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    let median = latencies
        .get(latencies.len() / 2)
        .map(ms)
        .unwrap_or(f64::NAN);
    let worst = latencies.last().map(ms).unwrap_or(f64::NAN);
    let best = latencies.first().map(ms).unwrap_or(f64::NAN);
    let report = format!(
        "# Table swap latency\n\n- date: {}\n- command: `cargo run --release -p ringmesh-bench -- swap` ({} routes, {} clusters × 10 endpoints, {} swaps, probe load {} req/s in {} alternating rounds of quiet and swapping)\n- machine: {} CPUs\n- SIGHUP → last ack is timed by the control process (status `reload_to_ack_us`): from the signal's arrival to the dataplane's acknowledgement, once every worker serves the new table\n\n| SIGHUP → last ack | ms |\n|---|---:|\n| best | {best:.1} |\n| median | {median:.1} |\n| worst | {worst:.1} |\n\n| probe p99 (median of the rounds) | µs |\n|---|---:|\n| without swaps | {p99_quiet:.0} |\n| during swaps | {p99_swaps:.0} |\n| ratio | {:.2} |\n\nPer round, p99 without / during swaps (µs): {}\n",
        crate::scenario::now_utc(),
        args.routes,
        args.clusters,
        args.swaps,
        args.rate,
        rounds,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        p99_swaps / p99_quiet,
        p99s_quiet
            .iter()
            .zip(&p99s_swaps)
            .map(|(q, w)| format!("{q:.0} / {w:.0}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    print!("{report}");
    let path = args
        .results
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("RESULTS-swap.md"));
    std::fs::write(&path, &report).with_context(|| format!("writing {}", path.display()))?;
    println!("\nwritten to {}", path.display());
    let procs: [&mut Proc; 3] = [&mut dp, &mut control, &mut up];
    for p in procs {
        p.terminate(Duration::from_secs(10));
    }
    Ok(0)
}
