//! The proxy benchmark: for each response size, one upstream (`ringmesh-loadgen
//! serve`, one worker) and wrk share core 0; each proxy in turn gets core 1. Closed
//! loop with wrk; CPU time of the proxy from /proc before and after; RSS at the end.
//! The TLS layers put the proxies behind one certificate; their connection-per-request
//! variants drive load with this binary's `conn-load` instead of wrk.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use crate::connload;
use crate::cpu;
use crate::peers::{self, Layer, Proxy, Start};
use crate::procs::{self, TempDir};
use crate::report::{self, Report, Row};
use crate::tls;
use crate::wrk::{self, WrkResult};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Short runs (3 s measure, 1 s warm-up) for a smoke test.
    #[arg(long)]
    pub quick: bool,
    /// Seconds of measurement per proxy and size (default 10, 3 with --quick).
    #[arg(long)]
    pub duration: Option<u64>,
    /// wrk connections.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Response body sizes in bytes.
    #[arg(long, value_delimiter = ',', default_value = "100,16384")]
    pub sizes: Vec<usize>,
    /// Only these proxies (direct, ringmesh, nginx, haproxy).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Also run the L4 scenario (TCP relay) in the same run.
    #[arg(long)]
    pub l4: bool,
    /// Also run the TLS scenarios: termination with keep-alive, and one new
    /// connection per request with a full or a resumed handshake.
    #[arg(long)]
    pub tls: bool,
    /// The upstream: `loadgen` (ringmesh-loadgen serve, always available) or
    /// `nginx` (a static file, when installed).
    #[arg(long, default_value = "loadgen")]
    pub upstream: String,
    /// Dataplane io driver.
    #[arg(long, default_value = "auto")]
    pub driver: String,
    /// Use the binaries already in target/release.
    #[arg(long)]
    pub no_build: bool,
    /// Markdown report (default bench/RESULTS.md).
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Rate of the fixed-rate (open-loop) phase of the keep-alive scenarios,
    /// the same for every proxy (0: skip it). Below every proxy's capacity.
    #[arg(long, default_value_t = 5000)]
    pub rate: u32,
}

const UPSTREAM_AND_WRK_CPU: usize = 0;
const PROXY_CPU: usize = 1;

pub const METHOD: &str =
    "the upstream (named below) and wrk -t1 pinned together to core 0; the proxy with one worker pinned to core 1 \
(ringmesh workers = 1, nginx worker_processes 1 + master_process off, haproxy nbthread 1); \
keep-alive on both sides (nginx keepalive 64 + proxy_http_version 1.1, haproxy http-reuse always); \
closed loop wrk -t1 -cN; proxy CPU = utime+stime of all its threads from /proc/PID/stat \
over the measured run / requests; RSS = VmRSS after the run";

/// Added to the method when TLS layers ran.
const TLS_METHOD: &str = "TLS: every proxy gets the same certificate and key (ECDSA P-256 leaf signed by an \
ECDSA P-256 CA, minted with rcgen), TLS 1.3 (nginx ssl_protocols TLSv1.3, haproxy ssl-min-ver TLSv1.3; \
ringmesh's https listener also accepts 1.2; both clients negotiate 1.3), cipher suites, groups and session \
settings at each proxy's defaults (the negotiated column says what the client got); the connection-per-request \
tables use the bench's rustls client (`conn-load`, TLS 1.3 only, one thread per connection, pinned like wrk) \
because wrk resumes the previous session when it reconnects";

/// How one row's load is driven.
enum Load<'a> {
    /// wrk, closed loop over keep-alive connections (then the fixed-rate
    /// phase, whose generator trusts `ca` for an `https` url).
    Wrk {
        url: String,
        script: &'a Path,
        ca: Option<&'a Path>,
    },
    /// `conn-load`: a new connection per request, TLS when `ca` is given.
    Conn {
        exe: &'a Path,
        addr: SocketAddr,
        ca: Option<&'a Path>,
        resume: bool,
    },
}

/// The settings every measurement of a run shares.
struct Measure {
    /// Fixed-rate phase: its rate (0: none), generator and result directory.
    rate: u32,
    loadgen: PathBuf,
    dir: PathBuf,
    connections: usize,
    warmup: Duration,
    measure: Duration,
    cpu_load: Option<usize>,
    tck: f64,
}

pub fn run(layers: &[Layer], args: &BenchArgs) -> anyhow::Result<i32> {
    if !procs::have("wrk") {
        anyhow::bail!("wrk is not installed: run bench/install-peers.sh (apt-get install -y nginx-light haproxy wrk)");
    }
    let bins = procs::build_binaries(args.no_build)?;
    let machine = cpu::machine();
    let pin = machine.nproc >= 2 && procs::have("taskset");
    if !pin {
        eprintln!(
            "bench: fewer than 2 CPUs or no taskset: running unpinned, figures are less meaningful"
        );
    }
    let (cpu_load, cpu_proxy) = if pin {
        (Some(UPSTREAM_AND_WRK_CPU), Some(PROXY_CPU))
    } else {
        (None, None)
    };
    let measure = Duration::from_secs(args.duration.unwrap_or(if args.quick { 3 } else { 10 }));
    let warmup = Duration::from_secs(if args.quick { 1 } else { 2 });
    let tck = cpu::clk_tck() as f64;
    // Other work on the machine distorts every figure: say how busy it was.
    let load_before = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    if load_before.parse::<f64>().is_ok_and(|l| l > 0.5) {
        eprintln!(
            "bench: load average is {load_before}: other work is running, figures will be noisy"
        );
    }
    let mut tmp = TempDir::new("ringmesh-bench")?;
    let script = wrk::write_script(tmp.path())?;
    let tls_files = if layers.iter().any(|l| l.is_tls()) {
        Some(tls::write_pki(tmp.path())?)
    } else {
        None
    };
    let conn_load = if layers.iter().any(|l| l.per_connection()) {
        Some(connload::copy_self(tmp.path())?)
    } else {
        None
    };
    let setup = peers::Setup {
        bins: &bins,
        driver: &args.driver,
        dir: tmp.path(),
        cpu: cpu_proxy,
        tls: tls_files.as_ref(),
    };
    let m = Measure {
        connections: args.connections,
        warmup,
        measure,
        cpu_load,
        tck,
        rate: args.rate,
        loadgen: bins.loadgen.clone(),
        dir: tmp.path().to_path_buf(),
    };
    let proxies: Vec<Proxy> = Proxy::ALL
        .into_iter()
        .filter(|p| args.only.is_empty() || args.only.iter().any(|o| o == p.name()))
        .collect();

    let mut rows = Vec::new();
    let result = (|| -> anyhow::Result<()> {
        for &layer in layers {
            // A handshake costs the same whatever follows it: one (the smallest) size.
            let sizes: Vec<usize> = if layer.per_connection() {
                args.sizes.iter().copied().min().into_iter().collect()
            } else {
                args.sizes.clone()
            };
            for &size in &sizes {
                let up_port = procs::free_port()?;
                let mut upstream =
                    start_upstream(&args.upstream, &bins, up_port, size, cpu_load, tmp.path())?;
                procs::wait_tcp(
                    procs::loopback(up_port),
                    Duration::from_secs(10),
                    &mut upstream,
                )?;
                for &proxy in &proxies {
                    let (port, running) = if proxy == Proxy::Direct {
                        (up_port, None)
                    } else {
                        match peers::start(proxy, layer, up_port, &setup) {
                            Ok(Start::Running(r)) => (r.port, Some(r)),
                            Ok(Start::Skipped(why)) => {
                                eprintln!("bench: {} skipped: {why}", proxy.name());
                                rows.push(Row::skipped(layer, size, proxy, why));
                                continue;
                            }
                            Err(e) => {
                                eprintln!("bench: {} failed to start: {e:#}", proxy.name());
                                rows.push(Row::skipped(
                                    layer,
                                    size,
                                    proxy,
                                    format!("failed to start: {e:#}"),
                                ));
                                continue;
                            }
                        }
                    };
                    // `direct` is always plaintext: the upstream speaks no TLS.
                    let tls_here = layer.is_tls() && proxy != Proxy::Direct;
                    let load = if let (true, Some(exe)) = (layer.per_connection(), &conn_load) {
                        Load::Conn {
                            exe,
                            addr: procs::loopback(port),
                            ca: tls_files
                                .as_ref()
                                .filter(|_| tls_here)
                                .map(|f| f.ca.as_path()),
                            resume: layer == Layer::TlsResumed,
                        }
                    } else {
                        let scheme = if tls_here { "https" } else { "http" };
                        Load::Wrk {
                            url: format!("{scheme}://127.0.0.1:{port}/"),
                            script: &script,
                            ca: tls_files
                                .as_ref()
                                .filter(|_| tls_here)
                                .map(|f| f.ca.as_path()),
                        }
                    };
                    let row = measure_one(
                        layer,
                        size,
                        proxy,
                        &load,
                        running.as_deref(),
                        upstream.pid(),
                        &m,
                    );
                    if let Some(mut r) = running {
                        let (_, in_time) = r.proc.terminate(Duration::from_secs(10));
                        if !in_time {
                            eprintln!(
                                "bench: {} did not exit within 10 s of SIGTERM",
                                proxy.name()
                            );
                        }
                    }
                    match row {
                        Ok(row) => {
                            print_row(&row);
                            rows.push(row);
                        }
                        Err(e) => {
                            eprintln!("bench: {} at {size} B failed: {e:#}", proxy.name());
                            rows.push(Row::skipped(layer, size, proxy, format!("failed: {e:#}")));
                        }
                    }
                }
                upstream.terminate(Duration::from_secs(5));
            }
        }
        Ok(())
    })();
    if let Err(e) = &result {
        tmp.keep();
        eprintln!("bench: logs kept in {}", tmp.path().display());
        eprintln!("bench: {e:#}");
    }

    let report = Report {
        schema_version: 1,
        date: now_utc(),
        command: command_line(),
        machine,
        method: format!(
            "{METHOD}; upstream = {}; {}load average before the run {}; {} s measured after {} s warm-up, {} connections",
            upstream_desc(&args.upstream),
            if tls_files.is_some() {
                format!("{TLS_METHOD}; ")
            } else {
                String::new()
            },
            load_before,
            measure.as_secs(),
            warmup.as_secs(),
            args.connections
        ),
        rows,
    };
    let md = report::markdown(&report);
    println!("\n{md}");
    let bench_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let results = args
        .results
        .clone()
        .unwrap_or_else(|| bench_dir.join("RESULTS.md"));
    std::fs::write(&results, &md).with_context(|| format!("writing {}", results.display()))?;
    // The plots sit next to the Markdown that links them by bare file name.
    let plot_dir = results
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    for (name, svg) in report::plots(&report) {
        let path = plot_dir.join(name);
        std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
        println!("bench: wrote {}", path.display());
    }
    let out_dir = bench_dir.join("out");
    std::fs::create_dir_all(&out_dir)?;
    let json_path = out_dir.join(format!("bench-{}.json", report.date.replace(':', "")));
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    println!(
        "bench: wrote {} and {}",
        results.display(),
        json_path.display()
    );
    // The run failed if it broke off, or if ringmesh itself could not be measured.
    let ringmesh_failed = report
        .rows
        .iter()
        .any(|r| r.proxy == Proxy::Ringmesh && r.skipped.is_some());
    Ok(if result.is_ok() && !ringmesh_failed {
        0
    } else {
        1
    })
}

/// Starts the upstream on `port`, pinned to `cpu`, answering `size`-byte bodies.
fn start_upstream(
    kind: &str,
    bins: &procs::Bins,
    port: u16,
    size: usize,
    cpu: Option<usize>,
    dir: &std::path::Path,
) -> anyhow::Result<procs::Proc> {
    let name = format!("upstream-{kind}-{size}");
    match kind {
        "loadgen" => {
            let args: Vec<String> = [
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--workers",
                "1",
                "--body-size",
                &size.to_string(),
                "--name",
                "upstream",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            procs::spawn(&name, cpu, &bins.loadgen, &args, dir)
        }
        "nginx" => {
            anyhow::ensure!(
                procs::have("nginx"),
                "--upstream nginx: nginx is not installed"
            );
            let sub = dir.join(&name);
            std::fs::create_dir_all(&sub)?;
            let cfg = sub.join("nginx.conf");
            std::fs::write(sub.join("body"), "x".repeat(size))?;
            std::fs::write(&cfg, peers::nginx_upstream_config(&sub, port))?;
            let args: Vec<String> = vec![
                "-p".into(),
                sub.display().to_string(),
                "-e".into(),
                sub.join("nginx-error.log").display().to_string(),
                "-c".into(),
                cfg.display().to_string(),
            ];
            procs::spawn(&name, cpu, std::path::Path::new("nginx"), &args, dir)
        }
        other => anyhow::bail!("--upstream {other:?}: use loadgen or nginx"),
    }
}

/// Drives `load` for `duration`.
fn drive(load: &Load, m: &Measure, duration: Duration) -> anyhow::Result<WrkResult> {
    match load {
        Load::Wrk { url, script, .. } => {
            wrk::run(url, m.connections, duration, m.cpu_load, Some(script))
        }
        Load::Conn {
            exe,
            addr,
            ca,
            resume,
        } => connload::spawn(
            exe,
            *addr,
            *ca,
            *resume,
            m.connections,
            duration,
            m.cpu_load,
        ),
    }
}

fn measure_one(
    layer: Layer,
    size: usize,
    proxy: Proxy,
    load: &Load,
    running: Option<&peers::Running>,
    upstream_pid: u32,
    m: &Measure,
) -> anyhow::Result<Row> {
    drive(load, m, m.warmup).context("warm-up")?;
    let pids: Vec<u32> = running.map(|r| r.pids.clone()).unwrap_or_default();
    let p0 = cpu::cpu_ticks_all(&pids)?;
    let u0 = cpu::cpu_ticks(upstream_pid)?;
    let w = drive(load, m, m.measure)?;
    let p1 = cpu::cpu_ticks_all(&pids)?;
    let u1 = cpu::cpu_ticks(upstream_pid)?;
    let tck = m.tck;
    let per_req = |ticks: u64| ticks as f64 / tck * 1e6 / w.requests.max(1) as f64;
    let fixed = match load {
        Load::Wrk { url, ca, .. } if m.rate > 0 => {
            let out = m.dir.join(format!(
                "fixed-{}-{size}-{}.json",
                layer.title().replace([' ', '/', ','], "-"),
                proxy.name()
            ));
            let phase = crate::fixed::Phase {
                loadgen: &m.loadgen,
                url,
                ca: *ca,
                rate: m.rate,
                connections: m.connections,
                duration: m.measure,
                cpu: m.cpu_load,
                out: &out,
            };
            match crate::fixed::measure(&phase, &pids, tck) {
                Ok(fixed) => Some(fixed),
                Err(e) => {
                    eprintln!("bench: {} fixed-rate phase failed: {e:#}", proxy.name());
                    None
                }
            }
        }
        _ => None,
    };
    let affinity = pids
        .first()
        .map(|&p| {
            cpu::thread_affinity(p)
                .into_iter()
                .map(|(name, cpus)| format!("{name}:{cpus}"))
                .collect()
        })
        .unwrap_or_default();
    Ok(Row {
        layer,
        body_size: size,
        proxy,
        skipped: None,
        requests: w.requests,
        rps: w.rps,
        p50_us: w.p50_us,
        p99_us: w.p99_us,
        cpu_us_per_req: running.map(|_| per_req(p1.saturating_sub(p0))),
        upstream_cpu_us_per_req: per_req(u1.saturating_sub(u0)),
        rss_kib: if pids.is_empty() {
            None
        } else {
            cpu::rss_kib(&pids).ok()
        },
        errors: w.non_2xx + w.socket_errors,
        affinity,
        percentiles: w.percentiles,
        negotiated: running.and_then(|r| r.negotiated.clone()),
        fixed,
    })
}

fn print_row(r: &Row) {
    eprintln!(
        "bench: {:?} {:>5} B {:<8} {:>8.0} req/s  p50 {:>6.0}µs  p99 {:>6.0}µs  proxy CPU {}  upstream CPU {:.1} µs/req  errors {}  threads {}",
        r.layer,
        r.body_size,
        r.proxy.name(),
        r.rps,
        r.p50_us,
        r.p99_us,
        r.cpu_us_per_req.map_or("–".to_string(), |c| format!("{c:.1} µs/req")),
        r.upstream_cpu_us_per_req,
        r.errors,
        r.affinity.join(" ")
    );
    if let Some(f) = &r.fixed {
        eprintln!(
            "bench:   at {:.0} req/s: proxy CPU {}  p50 {:.0}µs  p99 {:.0}µs  p99.9 {:.0}µs  errors {}  generator {}",
            f.achieved_rate,
            f.cpu_us_per_req
                .map_or("–".to_string(), |c| format!("{c:.1} µs/req")),
            f.p50_us,
            f.p99_us,
            f.p999_us,
            f.errors,
            f.verdict
        );
    }
}

fn upstream_desc(kind: &str) -> &'static str {
    match kind {
        "nginx" => "nginx serving a static file, one worker",
        _ => "one `ringmesh-loadgen serve` worker (io_uring, head and body in one write)",
    }
}

/// UTC timestamp from `date`, the Unix time when that is unavailable.
pub fn now_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            format!("unix-{secs}")
        })
}

/// The command as a user would type it.
pub fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!(
        "cargo run --release -p ringmesh-bench -- {}",
        args.join(" ")
    )
}
