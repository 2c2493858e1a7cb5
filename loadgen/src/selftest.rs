//! `selftest`: what this machine's generator can do, so a run's rate and lag
//! budget can be chosen with margin: its capacity (closed loop against a `serve`
//! it spawns, req/s and requests per CPU-second of the generator, i.e. per core)
//! and its timer-lag floor (how late a bare wait wakes, and the schedule lag of
//! an open-loop run at a modest rate).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use crate::run::{self, Load, RunConfig};
use crate::schedule::{Arrival, Profile, Rng};
use crate::slo::parse_duration;
use crate::stats::{self, fmt_us, Ladder};
use crate::target::Target;
use crate::timer::Timer;

#[derive(clap::Args)]
pub struct SelftestArgs {
    /// Length of each phase.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    duration: Duration,
    /// Connections of the capacity phase.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Rate of the open-loop lag phase; default: a quarter of the measured capacity.
    #[arg(long)]
    lag_rate: Option<f64>,
    /// Write the figures as JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct Selftest {
    pub schema_version: u32,
    pub driver: String,
    pub precise_timer: bool,
    /// Completed requests per second, closed loop, one worker.
    pub capacity_rps: f64,
    /// Requests per CPU-second of the generator: its capacity per core.
    pub capacity_per_core_rps: f64,
    /// Generator CPU per request, µs.
    pub cpu_us_per_request: f64,
    /// How late the timerfd alone wakes the worker (no spin, no traffic): the
    /// machine's floor.
    pub timer_bare: Ladder,
    /// How late a wait returns with the adaptive spin (no traffic).
    pub timer_wake: Ladder,
    /// Rate of the open-loop phase.
    pub lag_rate: f64,
    /// Schedule lag of the open-loop phase.
    pub schedule_lag: Ladder,
}

/// A `serve` child on a free loopback port, killed on drop.
struct Upstream {
    child: Child,
    url: String,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_serve() -> anyhow::Result<Upstream> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let exe = std::env::current_exe().context("finding this executable")?;
    let child = Command::new(exe)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .spawn()
        .context("spawning serve")?;
    let up = Upstream {
        child,
        url: format!("http://127.0.0.1:{port}/"),
    };
    let until = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(Instant::now() < until, "serve did not listen within 5 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(up)
}

/// How late `timer.wait_until` returns over `n` waits of random length.
pub fn timer_wake(
    n: usize,
    timer: impl FnOnce() -> Timer + Send,
) -> anyhow::Result<(hdrhistogram::Histogram<u64>, bool)> {
    crate::rt::block_on(async move {
        let mut h = stats::histogram()?;
        let mut t = timer();
        let mut rng = Rng::new(11);
        for _ in 0..n {
            // 100 µs to 2 ms: both sides of the spin threshold and of a 1 ms tick.
            let gap = Duration::from_micros(100 + rng.next_u64() % 1900);
            let at = Instant::now() + gap;
            let _ = t.wait_until(at).await;
            h.saturating_record(Instant::now().saturating_duration_since(at).as_nanos() as u64);
        }
        Ok((h, t.precise()))
    })?
}

fn config(url: &str, load: Load, connections: usize) -> anyhow::Result<RunConfig> {
    Ok(RunConfig {
        target: Target::parse(url).map_err(anyhow::Error::msg)?,
        load,
        connections,
        workers: 1,
        timeout: Duration::from_secs(5),
        max_lag: Duration::from_millis(1),
        size: 64,
        tls: None,
        progress: false,
    })
}

pub fn selftest_cmd(a: SelftestArgs) -> anyhow::Result<i32> {
    anyhow::ensure!(
        a.connections > 0 && !a.duration.is_zero(),
        "--connections and --duration must be positive"
    );
    let up = spawn_serve()?;
    eprintln!("selftest: timer wake-ups (2 × 2000 waits)…");
    let (bare, _) = timer_wake(2000, || Timer::with_fixed_spin(Duration::ZERO))?;
    let (wake, precise) = timer_wake(2000, Timer::new)?;
    eprintln!(
        "selftest: capacity, closed loop, {} connections, {:?}…",
        a.connections, a.duration
    );
    let cap_cfg = config(
        &up.url,
        Load::Closed {
            duration: a.duration,
        },
        a.connections,
    )?;
    let cap = run::run(&cap_cfg)?;
    let done = cap.stats.ok as f64;
    let cpu_s = cap.cpu.times.total().as_secs_f64();
    let lag_rate = a
        .lag_rate
        .unwrap_or((cap.achieved_rate / 4.0).round())
        .max(100.0);
    eprintln!("selftest: schedule lag, open loop at {lag_rate:.0} req/s…");
    let lag_cfg = config(
        &up.url,
        Load::Open {
            profile: Profile::constant(lag_rate, a.duration),
            arrival: Arrival::Constant,
            seed: 1,
        },
        16,
    )?;
    let lagged = run::run(&lag_cfg)?;
    drop(up);
    let result = Selftest {
        schema_version: 1,
        driver: cap.driver.to_string(),
        precise_timer: precise,
        capacity_rps: cap.achieved_rate,
        capacity_per_core_rps: if cpu_s > 0.0 { done / cpu_s } else { 0.0 },
        cpu_us_per_request: if done > 0.0 { cpu_s * 1e6 / done } else { 0.0 },
        timer_bare: Ladder::of(&bare),
        timer_wake: Ladder::of(&wake),
        lag_rate,
        schedule_lag: Ladder::of(&lagged.stats.lag),
    };
    print!("{}", render(&result));
    if let Some(path) = &a.out {
        crate::cli::write_json(path, &result)?;
    }
    Ok(0)
}

pub fn render(s: &Selftest) -> String {
    let timer = if s.precise_timer {
        "timerfd + spin"
    } else {
        "1 ms wheel + spin"
    };
    format!(
        "ringmesh-loadgen selftest ({}, {timer})\n  capacity     {:.0} req/s closed loop, {:.0} req/s per generator core ({:.1} µs CPU per request)\n  timer bare   p50 {}  p99 {}  p99.9 {}  max {}  (timerfd wake-up alone, late by)\n  timer wake   p50 {}  p99 {}  p99.9 {}  max {}  (timerfd + adaptive spin, late by)\n  sched lag    p50 {}  p99 {}  p99.9 {}  max {}  (open loop at {:.0} req/s)\n",
        s.driver,
        s.capacity_rps,
        s.capacity_per_core_rps,
        s.cpu_us_per_request,
        fmt_us(s.timer_bare.p50_us),
        fmt_us(s.timer_bare.p99_us),
        fmt_us(s.timer_bare.p999_us),
        fmt_us(s.timer_bare.max_us),
        fmt_us(s.timer_wake.p50_us),
        fmt_us(s.timer_wake.p99_us),
        fmt_us(s.timer_wake.p999_us),
        fmt_us(s.timer_wake.max_us),
        fmt_us(s.schedule_lag.p50_us),
        fmt_us(s.schedule_lag.p99_us),
        fmt_us(s.schedule_lag.p999_us),
        fmt_us(s.schedule_lag.max_us),
        s.lag_rate,
    )
}
