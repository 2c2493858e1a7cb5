//! The load: worker threads, each with its own monoio runtime, its share of the
//! connections and of the rate.
//!
//! Open loop (`--rate`): every request has an intended send time on a fixed
//! schedule. A pacer thread per worker sleeps with the kernel's high-resolution
//! timer and ticks the worker through a socket pair (monoio's own timer has 1 ms
//! granularity, too coarse for a schedule); the worker then queues every request
//! that is due. Free connections take requests from the queue in order; when all are
//! busy, requests wait there instead of being dropped, and their latency still counts
//! from the intended time, so a slow target cannot hide its stalls (no coordinated
//! omission). Closed loop (no `--rate`): each connection sends as fast as answers come.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::Write;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use monoio::io::AsyncReadRent;

use crate::client::{Conn, Target};
use crate::rt;
use crate::stats::Stats;

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub target: Target,
    /// Requests per second in total; `None` for closed loop.
    pub rate: Option<f64>,
    pub duration: Duration,
    pub connections: usize,
    pub workers: usize,
    /// Per request (and per connect); a timed-out request counts as an error.
    pub timeout: Duration,
    /// Schedule-lag p99 above this makes the run INVALID.
    pub max_lag: Duration,
}

impl RunConfig {
    /// Workers actually used: never more than connections.
    pub fn effective_workers(&self) -> usize {
        self.workers.clamp(1, self.connections.max(1))
    }
}

pub struct Outcome {
    pub stats: Stats,
    /// Requests per second actually sent (open loop) or completed (closed loop).
    pub achieved_rate: f64,
    /// Seconds the rate was measured over.
    pub measured: Duration,
}

/// Time for every connection to be established before the first request is due.
const WARMUP: Duration = Duration::from_millis(300);
/// A request that waited longer than this for a free connection counts as queued.
const QUEUED_AFTER: Duration = Duration::from_millis(1);

pub fn run(cfg: &RunConfig) -> anyhow::Result<Outcome> {
    // The kernel may fire a sleeping thread's timer up to its timer slack late
    // (50 µs by default). Threads inherit the slack of the thread that creates them,
    // and only the main thread's can be set through /proc, so set it before the
    // pacers are spawned. Best effort: without it the pacers are ~50 µs later.
    let _ = std::fs::write("/proc/self/timerslack_ns", "1");
    let workers = cfg.effective_workers();
    let start = Instant::now() + WARMUP;
    let mut handles = Vec::with_capacity(workers);
    for w in 0..workers {
        let cfg = cfg.clone();
        let h = std::thread::Builder::new()
            .name(format!("loadgen-{w}"))
            .spawn(move || worker(&cfg, w, workers, start))
            .context("spawning a worker thread")?;
        handles.push(h);
    }
    let mut stats = Stats::new()?;
    for h in handles {
        let s = h
            .join()
            .map_err(|_| anyhow!("a worker thread panicked"))??;
        stats.merge(&s)?;
    }
    let (achieved_rate, measured) = match cfg.rate {
        Some(_) => {
            // Sent requests over the schedule's span, or longer when sending ran late.
            let span = cfg.duration.max(Duration::from_nanos(stats.last_send_ns));
            (stats.sent as f64 / span.as_secs_f64(), span)
        }
        None => (
            stats.total() as f64 / cfg.duration.as_secs_f64(),
            cfg.duration,
        ),
    };
    Ok(Outcome {
        stats,
        achieved_rate,
        measured,
    })
}

/// The intended send times of one worker: global slot `k * step + offset` is due
/// at `start + slot / rate`, until `start + duration`.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    start: Instant,
    duration: Duration,
    rate: f64,
    offset: usize,
    step: usize,
}

impl Schedule {
    fn at(&self, k: usize) -> Option<Instant> {
        let slot = (k * self.step + self.offset) as f64;
        let after = Duration::from_secs_f64(slot / self.rate);
        (after < self.duration).then(|| self.start + after)
    }
}

fn worker(cfg: &RunConfig, index: usize, workers: usize, start: Instant) -> anyhow::Result<Stats> {
    let mut pacer = None;
    let source = match cfg.rate {
        Some(rate) => {
            let sched = Schedule {
                start,
                duration: cfg.duration,
                rate,
                offset: index,
                step: workers,
            };
            let (mine, theirs) = StdUnixStream::pair().context("creating the pacer socket")?;
            pacer = Some(
                std::thread::Builder::new()
                    .name(format!("pacer-{index}"))
                    .spawn(move || pace(theirs, sched))
                    .context("spawning a pacer thread")?,
            );
            Plan::Open(sched, mine)
        }
        None => Plan::Closed,
    };
    let conns = rt::split_evenly(cfg.connections, workers, index);
    let stats = rt::block_on(worker_main(cfg.clone(), conns, start, source))??;
    if let Some(p) = pacer {
        let _ = p.join();
    }
    Ok(stats)
}

enum Plan {
    Open(Schedule, StdUnixStream),
    Closed,
}

/// Where a connection task gets its next request.
enum Source {
    Open(Rc<Queue>),
    Closed { end: Instant },
}

/// What the connection tasks of one worker share (one thread: no locks).
struct Ctx {
    target: Target,
    req: Vec<u8>,
    timeout: Duration,
    start: Instant,
    /// Scheduled requests not sent by then are counted as unsent.
    drain_deadline: Instant,
    source: Source,
    stats: RefCell<Stats>,
}

async fn worker_main(
    cfg: RunConfig,
    conns: usize,
    start: Instant,
    plan: Plan,
) -> anyhow::Result<Stats> {
    let end = start + cfg.duration;
    let source = match plan {
        Plan::Open(sched, sock) => {
            let queue = Rc::new(Queue::default());
            let tick = monoio::net::UnixStream::from_std(sock)?;
            monoio::spawn(dispatch(tick, sched, queue.clone()));
            Source::Open(queue)
        }
        Plan::Closed => Source::Closed { end },
    };
    let ctx = Rc::new(Ctx {
        req: cfg.target.request_bytes(),
        target: cfg.target,
        timeout: cfg.timeout,
        start,
        drain_deadline: end + cfg.timeout.max(Duration::from_secs(2)),
        source,
        stats: RefCell::new(Stats::new()?),
    });
    let tasks: Vec<_> = (0..conns)
        .map(|_| monoio::spawn(conn_task(ctx.clone())))
        .collect();
    for t in tasks {
        t.await;
    }
    let ctx = Rc::try_unwrap(ctx).map_err(|_| anyhow!("connection tasks still running"))?;
    Ok(ctx.stats.into_inner())
}

/// Pacer thread: sleeps until the next intended time and ticks the worker. Closing
/// the socket tells the worker that the schedule is over.
fn pace(sock: StdUnixStream, sched: Schedule) {
    // A full socket means a tick is already pending: never block on it.
    if sock.set_nonblocking(true).is_err() {
        return;
    }

    let mut k = 0;
    while let Some(at) = sched.at(k) {
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        match (&sock).write(&[1]) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return, // the worker is gone
        }
        let now = Instant::now();
        while sched.at(k).is_some_and(|t| t <= now) {
            k += 1;
        }
    }
}

/// Worker side of the pacer: on every tick, queue each request that is due.
async fn dispatch(mut tick: monoio::net::UnixStream, sched: Schedule, queue: Rc<Queue>) {
    let mut buf = vec![0u8; 256];
    let mut k = 0;
    loop {
        let (res, b) = tick.read(buf).await;
        buf = b;
        let over = !matches!(res, Ok(n) if n > 0);
        let now = Instant::now();
        while let Some(at) = sched.at(k) {
            if !over && at > now {
                break;
            }
            queue.push(at);
            k += 1;
        }
        if over {
            break;
        }
    }
    queue.close();
}

/// FIFO of intended send times; idle connection tasks park here.
#[derive(Default)]
struct Queue {
    items: RefCell<VecDeque<Instant>>,
    waiters: RefCell<Vec<Waker>>,
    closed: Cell<bool>,
}

impl Queue {
    fn push(&self, at: Instant) {
        self.items.borrow_mut().push_back(at);
        let waiter = self.waiters.borrow_mut().pop();
        if let Some(w) = waiter {
            w.wake();
        }
    }

    fn close(&self) {
        self.closed.set(true);
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for w in waiters {
            w.wake();
        }
    }

    async fn pop(&self) -> Option<Instant> {
        std::future::poll_fn(|cx| {
            if let Some(at) = self.items.borrow_mut().pop_front() {
                return Poll::Ready(Some(at));
            }
            if self.closed.get() {
                return Poll::Ready(None);
            }
            self.waiters.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

impl Source {
    async fn next(&self) -> Option<Instant> {
        match self {
            Source::Open(q) => q.pop().await,
            Source::Closed { end } => {
                let now = Instant::now();
                (now < *end).then_some(now)
            }
        }
    }
}

async fn connect(ctx: &Ctx) -> Option<Conn> {
    match monoio::time::timeout(ctx.timeout, Conn::connect(ctx.target.addr, ctx.req.clone())).await
    {
        Ok(Ok(c)) => {
            ctx.stats.borrow_mut().connects += 1;
            Some(c)
        }
        _ => None,
    }
}

/// One keep-alive connection: take the next request, send it, read the answer.
async fn conn_task(ctx: Rc<Ctx>) {
    let mut conn = connect(&ctx).await;
    if matches!(ctx.source, Source::Closed { .. }) {
        let wait = ctx.start.saturating_duration_since(Instant::now());
        monoio::time::sleep(wait).await;
    }
    // Since when this connection could have sent (after its last answer or connect).
    let mut free_at = Instant::now();
    while let Some(intended) = ctx.source.next().await {
        let now = Instant::now();
        if now > ctx.drain_deadline {
            ctx.stats.borrow_mut().unsent += 1;
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
                if matches!(ctx.source, Source::Closed { .. }) {
                    // Do not spin on a refused connect.
                    monoio::time::sleep(Duration::from_millis(10)).await;
                }
                continue;
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let send = Instant::now();
        let lag = send.saturating_duration_since(intended.max(free_at));
        let res = monoio::time::timeout(ctx.timeout, c.request()).await;
        let done = Instant::now();
        free_at = done;
        let mut st = ctx.stats.borrow_mut();
        st.sent += 1;
        st.last_send_ns = st
            .last_send_ns
            .max(nanos(send.saturating_duration_since(ctx.start)));
        match res {
            Ok(Ok(r)) => {
                st.response
                    .saturating_record(nanos(done.saturating_duration_since(intended)));
                st.service.saturating_record(nanos(done - send));
                st.lag.saturating_record(nanos(lag));
                if (200..300).contains(&r.status) {
                    st.ok += 1;
                } else {
                    st.non_2xx += 1;
                }
                *st.statuses.entry(r.status).or_default() += 1;
                st.count_upstream(&c.upstream);
                if r.close {
                    conn = None;
                }
            }
            Ok(Err(_)) => {
                st.io_errors += 1;
                conn = None;
            }
            Err(_) => {
                // The user waited at least this long: keep it in the response time.
                st.response
                    .saturating_record(nanos(done.saturating_duration_since(intended)));
                st.timeouts += 1;
                conn = None;
            }
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_interleaves_workers_and_stops_at_the_end() {
        let start = Instant::now();
        let s = |offset| Schedule {
            start,
            duration: Duration::from_secs(1),
            rate: 10.0,
            offset,
            step: 2,
        };
        let a: Vec<_> = (0..10).map_while(|k| s(0).at(k)).collect();
        let b: Vec<_> = (0..10).map_while(|k| s(1).at(k)).collect();
        assert_eq!(a.len() + b.len(), 10);
        assert_eq!(b[0] - a[0], Duration::from_millis(100));
        assert_eq!(a[1] - a[0], Duration::from_millis(200));
    }
}
