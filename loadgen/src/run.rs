//! The load: worker threads, each with its own monoio runtime, its share of the
//! connections and of the rate.
//!
//! Open loop (`--rate` or `--schedule`): every request has an intended send time
//! from the arrival process (see `schedule`). Each worker runs a pacer task that
//! waits for the next intended time with the precise timer (`timer`: timerfd via
//! io_uring, then a short spin) and queues the request. Free connections take
//! requests from the queue in order; when all are busy, requests wait there
//! instead of being dropped, and their latency still counts from the intended
//! time, so a slow target cannot hide its stalls (no coordinated omission).
//! Closed loop (no rate): each connection sends as fast as answers come.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};

use crate::client::{is_local_exhaustion, Conn, Dialer};
use crate::cpu::{self, CpuTimes};
use crate::dispatch::{Dispatch, Slot};
use crate::progress::{self, Counters};
use crate::rt;
use crate::schedule::{Arrival, Arrivals, Profile};
use crate::stats::Stats;
use crate::target::Target;
use crate::timer::Timer;

/// How much load, and when.
#[derive(Debug, Clone)]
pub enum Load {
    /// Intended send times from a rate schedule and an arrival process.
    Open {
        profile: Profile,
        arrival: Arrival,
        seed: u64,
    },
    /// Each connection sends its next request when the previous one is answered.
    Closed { duration: Duration },
}

#[derive(Clone)]
pub struct RunConfig {
    pub target: Target,
    pub load: Load,
    pub connections: usize,
    pub workers: usize,
    /// Per request (and per connect); a timed-out request counts as an error.
    pub timeout: Duration,
    /// Schedule-lag p99 above this makes the run INVALID.
    pub max_lag: Duration,
    /// Message size for `tcp://` and `tls://` echo targets.
    pub size: usize,
    /// Set for `https://` and `tls://`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Draw the live progress line on stderr.
    pub progress: bool,
}

impl RunConfig {
    /// Workers actually used: never more than connections.
    pub fn effective_workers(&self) -> usize {
        self.workers.clamp(1, self.connections.max(1))
    }

    /// Mean rate of the schedule (open loop).
    pub fn target_rate(&self) -> Option<f64> {
        match &self.load {
            Load::Open { profile, .. } => Some(profile.mean_rate()),
            Load::Closed { .. } => None,
        }
    }

    pub fn duration(&self) -> Duration {
        match &self.load {
            Load::Open { profile, .. } => profile.duration(),
            Load::Closed { duration } => *duration,
        }
    }
}

/// CPU used by this process during the run.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    pub times: CpuTimes,
    pub wall: Duration,
    /// (user + system) / (wall × workers), in percent.
    pub percent: f64,
    /// Wall time the pacers spent spinning before sends, summed over workers.
    pub spin: Duration,
    /// Like `percent`, without the spin: the CPU the work itself took. The spin
    /// yields to the connections between its turns, so this undercounts a little
    /// when the generator is busy; the schedule-lag rule catches that case.
    pub busy_percent: f64,
}

pub struct Outcome {
    pub stats: Stats,
    /// Requests per second actually sent (open loop) or completed (closed loop).
    pub achieved_rate: f64,
    /// Seconds the rate was measured over.
    pub measured: Duration,
    pub cpu: CpuUse,
    /// `io_uring` or `epoll`.
    pub driver: &'static str,
    /// Whether the workers paced with the timerfd (else monoio's 1 ms wheel).
    pub precise_timer: bool,
}

impl Outcome {
    /// The outcome when the target refused the probe connect: nothing was sent.
    pub fn unreachable() -> anyhow::Result<Self> {
        let mut stats = Stats::new()?;
        stats.connect_errors = 1;
        Ok(Self {
            stats,
            achieved_rate: 0.0,
            measured: Duration::ZERO,
            cpu: CpuUse::default(),
            driver: "none",
            precise_timer: false,
        })
    }

    /// The latency a user sees: response time in open loop, service time in
    /// closed loop (where there is no intended send time).
    pub fn stats_latency(&self, cfg: &RunConfig) -> &hdrhistogram::Histogram<u64> {
        match cfg.load {
            Load::Open { .. } => &self.stats.response,
            Load::Closed { .. } => &self.stats.service,
        }
    }
}

/// Time for every connection to be established before the first request is due.
const WARMUP: Duration = Duration::from_millis(300);
/// A request that waited longer than this for a free connection counts as queued.
const QUEUED_AFTER: Duration = Duration::from_millis(1);

pub fn run(cfg: &RunConfig) -> anyhow::Result<Outcome> {
    let workers = cfg.effective_workers();
    let cpu_before = cpu::cpu_times(None)?;
    let wall_start = Instant::now();
    let start = wall_start + WARMUP;
    let counters: Vec<Arc<Counters>> = (0..workers).map(|_| Arc::default()).collect();
    let mut handles = Vec::with_capacity(workers);
    for (w, counter) in counters.iter().enumerate() {
        let cfg = cfg.clone();
        let counter = counter.clone();
        let h = std::thread::Builder::new()
            .name(format!("loadgen-{w}"))
            .spawn(move || worker(&cfg, w, workers, start, &counter))
            .context("spawning a worker thread")?;
        handles.push(h);
    }
    if cfg.progress {
        let finished = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                progress::draw_until(
                    &counters,
                    start,
                    |t| match &cfg.load {
                        Load::Open { profile, .. } => Some(profile.rate_at(t)),
                        Load::Closed { .. } => None,
                    },
                    || finished.load(Ordering::Relaxed),
                )
            });
            while !handles.iter().all(|h| h.is_finished()) {
                std::thread::sleep(Duration::from_millis(20));
            }
            finished.store(true, Ordering::Relaxed);
        });
    }
    let mut stats = Stats::new()?;
    let mut driver = "io_uring";
    let mut precise_timer = true;
    for h in handles {
        let w = h
            .join()
            .map_err(|_| anyhow!("a worker thread panicked"))??;
        stats.merge(&w.stats)?;
        if w.driver != "io_uring" {
            driver = w.driver;
        }
        precise_timer &= w.precise_timer;
    }
    let wall = wall_start.elapsed();
    let times = cpu::cpu_times(None)?.since(&cpu_before);
    let spin = Duration::from_nanos(
        counters
            .iter()
            .map(|c| c.spin_ns.load(Ordering::Relaxed))
            .sum(),
    );
    let capacity = wall.as_secs_f64() * workers as f64;
    let cpu = CpuUse {
        times,
        wall,
        percent: times.total().as_secs_f64() * 100.0 / capacity,
        spin,
        busy_percent: times.total().saturating_sub(spin).as_secs_f64() * 100.0 / capacity,
    };
    let duration = cfg.duration();
    let (achieved_rate, measured) = match cfg.load {
        Load::Open { .. } => {
            // Sent requests over the schedule's span, or longer when sending ran late.
            let span = duration.max(Duration::from_nanos(stats.last_send_ns));
            (stats.sent as f64 / span.as_secs_f64(), span)
        }
        Load::Closed { .. } => (stats.total() as f64 / duration.as_secs_f64(), duration),
    };
    Ok(Outcome {
        stats,
        achieved_rate,
        measured,
        cpu,
        driver,
        precise_timer: precise_timer && matches!(cfg.load, Load::Open { .. }),
    })
}

/// What one worker thread hands back.
struct WorkerOut {
    stats: Stats,
    driver: &'static str,
    precise_timer: bool,
}

fn worker(
    cfg: &RunConfig,
    index: usize,
    workers: usize,
    start: Instant,
    counters: &Arc<Counters>,
) -> anyhow::Result<WorkerOut> {
    let conns = rt::split_evenly(cfg.connections, workers, index);
    let arrivals = match &cfg.load {
        Load::Open {
            profile,
            arrival,
            seed,
        } => Some(Arrivals::new(profile, *arrival, *seed, index, workers)),
        Load::Closed { .. } => None,
    };
    rt::block_on(worker_main(
        cfg.clone(),
        conns,
        start,
        arrivals,
        counters.clone(),
    ))?
}

/// Where a connection task gets its next request.
enum Source {
    Open(Rc<Dispatch>),
    Closed { end: Instant },
}

/// What the connection tasks of one worker share (one thread: no locks).
struct Ctx {
    dialer: Dialer,
    timeout: Duration,
    start: Instant,
    /// Scheduled requests not sent by then are counted as unsent.
    drain_deadline: Instant,
    source: Source,
    stats: RefCell<Stats>,
    counters: Arc<Counters>,
}

async fn worker_main(
    cfg: RunConfig,
    conns: usize,
    start: Instant,
    arrivals: Option<Arrivals>,
    counters: Arc<Counters>,
) -> anyhow::Result<WorkerOut> {
    let end = start + cfg.duration();
    let timer = Timer::new();
    let precise_timer = timer.precise();
    let source = match arrivals {
        Some(arrivals) => {
            let queue = Rc::new(Dispatch::default());
            monoio::spawn(pace(
                arrivals,
                start,
                timer,
                queue.clone(),
                counters.clone(),
            ));
            Source::Open(queue)
        }
        None => Source::Closed { end },
    };
    let ctx = Rc::new(Ctx {
        dialer: Dialer::new(&cfg.target, cfg.tls.clone(), cfg.size)?,
        timeout: cfg.timeout,
        start,
        drain_deadline: end + cfg.timeout.max(Duration::from_secs(2)),
        source,
        stats: RefCell::new(Stats::new()?),
        counters,
    });
    let tasks: Vec<_> = (0..conns)
        .map(|_| monoio::spawn(conn_task(ctx.clone())))
        .collect();
    for t in tasks {
        t.await;
    }
    let ctx = Rc::try_unwrap(ctx).map_err(|_| anyhow!("connection tasks still running"))?;
    Ok(WorkerOut {
        stats: ctx.stats.into_inner(),
        driver: rt::driver_name(),
        precise_timer,
    })
}

/// The pacer: queues each request at its intended time. When it wakes late,
/// everything already due is queued at once, keeping its original intended time.
async fn pace(
    arrivals: Arrivals,
    start: Instant,
    mut timer: Timer,
    queue: Rc<Dispatch>,
    counters: Arc<Counters>,
) {
    let mut arrivals = arrivals
        .map(|secs| start + Duration::from_secs_f64(secs))
        .peekable();
    while let Some(at) = arrivals.next() {
        let spun = timer.wait_until(at).await;
        let spun_ns = u64::try_from(spun.as_nanos()).unwrap_or(u64::MAX);
        counters.spin_ns.fetch_add(spun_ns, Ordering::Relaxed);
        queue.push(at);
        // Let the connection send before the next wait is armed: arming can
        // cost 10 µs or more (see `timer`), which would otherwise sit between
        // the intended time and the send. Not when the next one is already due.
        if arrivals.peek().is_some_and(|next| *next > Instant::now()) {
            timer.yield_now().await;
        }
    }
    queue.close();
}

impl Source {
    async fn next(&self, slot: &Rc<Slot>) -> Option<Instant> {
        match self {
            Source::Open(d) => d.next(slot).await,
            Source::Closed { end } => {
                let now = Instant::now();
                (now < *end).then_some(now)
            }
        }
    }
}

async fn connect(ctx: &Ctx) -> Option<Conn> {
    let res = monoio::time::timeout(ctx.timeout, Conn::connect(&ctx.dialer)).await;
    let mut st = ctx.stats.borrow_mut();
    match res {
        Ok(Ok(c)) => {
            st.connects += 1;
            Some(c)
        }
        Ok(Err(e)) => {
            if is_local_exhaustion(&e) {
                st.local_exhaustion += 1;
            }
            None
        }
        Err(_) => None,
    }
}

/// One keep-alive connection: take the next request, send it, read the answer.
async fn conn_task(ctx: Rc<Ctx>) {
    let open = matches!(ctx.source, Source::Open(_));
    let mut conn = connect(&ctx).await;
    if !open {
        let wait = ctx.start.saturating_duration_since(Instant::now());
        monoio::time::sleep(wait).await;
    }
    // Since when this connection could have sent (after its last answer or connect).
    let mut free_at = Instant::now();
    let slot = Rc::new(Slot::default());
    while let Some(intended) = ctx.source.next(&slot).await {
        let now = Instant::now();
        if now > ctx.drain_deadline {
            ctx.stats.borrow_mut().unsent += 1;
            Counters::add(&ctx.counters.errors);
            continue;
        }
        if free_at > intended + QUEUED_AFTER {
            ctx.stats.borrow_mut().queued += 1;
        }
        if conn.is_none() {
            conn = connect(&ctx).await;
            free_at = Instant::now();
            if conn.is_none() {
                ctx.stats.borrow_mut().connect_errors += 1;
                Counters::add(&ctx.counters.errors);
                if !open {
                    // Do not spin on a refused connect.
                    monoio::time::sleep(Duration::from_millis(10)).await;
                }
                continue;
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let send = Instant::now();
        // The generator's own delay: from when the request could have gone (its
        // intended time, or later when every connection was busy: that wait is
        // the target's, and it is in the response time) to when it went.
        let lag = send.saturating_duration_since(intended.max(free_at));
        let res = monoio::time::timeout(ctx.timeout, c.request()).await;
        let done = Instant::now();
        free_at = done;
        Counters::add(&ctx.counters.sent);
        let mut st = ctx.stats.borrow_mut();
        st.sent += 1;
        st.last_send_ns = st
            .last_send_ns
            .max(nanos(send.saturating_duration_since(ctx.start)));
        if open {
            st.lag.saturating_record(nanos(lag));
        }
        match res {
            Ok(Ok(r)) => {
                st.response
                    .saturating_record(nanos(done.saturating_duration_since(intended)));
                st.service.saturating_record(nanos(done - send));
                if (200..300).contains(&r.status) {
                    st.ok += 1;
                    Counters::add(&ctx.counters.ok);
                } else {
                    st.non_2xx += 1;
                    Counters::add(&ctx.counters.errors);
                }
                *st.statuses.entry(r.status).or_default() += 1;
                st.count_upstream(&c.upstream);
                if r.close {
                    conn = None;
                }
            }
            Ok(Err(_)) => {
                st.io_errors += 1;
                Counters::add(&ctx.counters.errors);
                conn = None;
            }
            Err(_) => {
                // The user waited at least this long: keep it in the response time.
                st.response
                    .saturating_record(nanos(done.saturating_duration_since(intended)));
                st.timeouts += 1;
                Counters::add(&ctx.counters.errors);
                conn = None;
            }
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
