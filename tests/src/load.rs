//! An open-loop HTTP/1.1 load driver on blocking threads: every thread sends `GET path` at fixed intervals from
//! each request's *intended* send time, whatever the previous response took. A thread whose request is late
//! sends the next ones as soon as it can (they queue; their latency counts from the intended time), so a slow
//! proxy shows up as queued and missing requests, never as a quietly lower rate. Every scheduled request is
//! counted: answered, failed (an IO error or a status other than 200) or never sent.
//!
//! Each thread keeps one keep-alive connection and replaces it after `requests_per_connection` requests (or when
//! the proxy says `Connection: close`), so both "table taken at accept" and "table taken again per request on a
//! keep-alive connection" are exercised. Every response's `x-table` and `x-upstream` headers are recorded.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::client::Client;

/// What to send, how fast, for how long.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    pub target: SocketAddr,
    /// Scheduled requests per second, all threads together.
    pub rate: u32,
    pub threads: usize,
    /// Requests are scheduled for this long (or until [`Load::finish`]).
    pub duration: Duration,
    pub path: String,
    pub host: String,
    /// A connection is closed by the client after this many requests and a new one opened.
    pub requests_per_connection: usize,
    /// After the schedule ends, how long requests still queued may take to be sent; later ones are never sent
    /// (and count as scheduled but not completed).
    pub drain: Duration,
}

impl LoadSpec {
    /// 2,000 req/s from 4 threads for 30 s on `GET /`, a new connection every 200 requests.
    pub fn new(target: SocketAddr) -> LoadSpec {
        LoadSpec {
            target,
            rate: 2000,
            threads: 4,
            duration: Duration::from_secs(30),
            path: "/".to_string(),
            host: "load.test".to_string(),
            requests_per_connection: 200,
            drain: Duration::from_secs(3),
        }
    }

    pub fn rate(mut self, per_second: u32) -> Self {
        self.rate = per_second;
        self
    }

    pub fn duration(mut self, d: Duration) -> Self {
        self.duration = d;
        self
    }
}

/// One scheduled request that was sent.
#[derive(Clone, Debug)]
pub struct Sample {
    pub thread: usize,
    /// When the schedule said to send it.
    pub intended: Instant,
    /// When it was written (connect included).
    pub sent: Instant,
    /// When the response (or the error) was complete.
    pub done: Instant,
    /// 0 when no response came (see `error`).
    pub status: u16,
    /// Every `x-table` header value of the response.
    pub tables: Vec<String>,
    /// Every `x-upstream` header value of the response.
    pub upstreams: Vec<String>,
    pub error: Option<String>,
}

impl Sample {
    pub fn failed(&self) -> bool {
        self.status != 200 || self.error.is_some()
    }

    /// The table that answered, when the response names exactly one table and exactly one upstream and they
    /// agree (a response from one table generation, not half of two).
    pub fn table(&self) -> Option<&str> {
        match (self.tables.as_slice(), self.upstreams.as_slice()) {
            ([t], [u]) if t == u => Some(t),
            _ => None,
        }
    }

    pub fn describe(&self, start: Instant) -> String {
        format!(
            "thread {} intended +{:?} sent +{:?} done +{:?}: status {} x-table {:?} x-upstream {:?}{}",
            self.thread,
            self.intended.saturating_duration_since(start),
            self.sent.saturating_duration_since(start),
            self.done.saturating_duration_since(start),
            self.status,
            self.tables,
            self.upstreams,
            self.error
                .as_ref()
                .map(|e| format!(" error: {e}"))
                .unwrap_or_default()
        )
    }
}

#[derive(Default)]
struct Live {
    completed: AtomicU64,
    failed: AtomicU64,
}

/// A load run in progress.
pub struct Load {
    pub spec: LoadSpec,
    pub start: Instant,
    /// Set when the run is dropped unfinished (a test panicked): the threads end at once, without draining.
    abandon: Arc<AtomicBool>,
    /// Nanoseconds after `start` at which the schedule was stopped early (`u64::MAX`: not stopped).
    stop_at: Arc<AtomicU64>,
    live: Arc<Live>,
    threads: Vec<JoinHandle<(u64, Vec<Sample>)>>,
}

impl Load {
    /// Starts the threads; the first requests are due right away.
    pub fn start(spec: LoadSpec) -> Load {
        assert!(spec.rate > 0 && spec.threads > 0);
        let start = Instant::now();
        let abandon = Arc::new(AtomicBool::new(false));
        let stop_at = Arc::new(AtomicU64::new(u64::MAX));
        let live = Arc::new(Live::default());
        let interval =
            Duration::from_nanos(1_000_000_000 * spec.threads as u64 / u64::from(spec.rate));
        let threads = (0..spec.threads)
            .map(|index| {
                let (spec, abandon, stop_at, live) =
                    (spec.clone(), abandon.clone(), stop_at.clone(), live.clone());
                // Threads are staggered evenly within one interval.
                let offset = interval * index as u32 / spec.threads as u32;
                std::thread::Builder::new()
                    .name(format!("load-{index}"))
                    .spawn(move || {
                        run_thread(
                            index,
                            &spec,
                            start + offset,
                            interval,
                            start,
                            &abandon,
                            &stop_at,
                            &live,
                        )
                    })
                    .expect("spawn load thread")
            })
            .collect();
        Load {
            spec,
            start,
            abandon,
            stop_at,
            live,
            threads,
        }
    }

    /// Responses so far.
    pub fn completed(&self) -> u64 {
        self.live.completed.load(Ordering::SeqCst)
    }

    /// Failed requests so far.
    pub fn failed(&self) -> u64 {
        self.live.failed.load(Ordering::SeqCst)
    }

    /// Stops scheduling now (if the duration has not passed yet), waits for the queued requests (up to the drain
    /// time) and returns everything seen.
    pub fn finish(self) -> LoadReport {
        let now = self.start.elapsed().as_nanos() as u64;
        let _ = self
            .stop_at
            .compare_exchange(u64::MAX, now, Ordering::SeqCst, Ordering::SeqCst);
        self.join()
    }

    /// Waits for the scheduled duration to pass (plus the drain) and returns everything seen.
    pub fn wait(self) -> LoadReport {
        self.join()
    }

    fn join(mut self) -> LoadReport {
        let mut scheduled = 0;
        let mut samples = Vec::new();
        let mut panics = Vec::new();
        for (i, handle) in std::mem::take(&mut self.threads).into_iter().enumerate() {
            match handle.join() {
                Ok((n, s)) => {
                    scheduled += n;
                    samples.extend(s);
                }
                Err(_) => panics.push(i),
            }
        }
        assert!(panics.is_empty(), "load threads {panics:?} panicked");
        samples.sort_by_key(|s| s.sent);
        let stopped = self.stop_at.load(Ordering::SeqCst);
        let scheduled_for = if stopped == u64::MAX {
            self.spec.duration
        } else {
            self.spec.duration.min(Duration::from_nanos(stopped))
        };
        LoadReport {
            spec: self.spec.clone(),
            start: self.start,
            scheduled_for,
            scheduled,
            samples,
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        // A test that panics mid-run: let the threads end instead of hammering a dead proxy for the full duration.
        self.abandon.store(true, Ordering::SeqCst);
        let _ = self.stop_at.compare_exchange(
            u64::MAX,
            self.start.elapsed().as_nanos() as u64,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn run_thread(
    index: usize,
    spec: &LoadSpec,
    first: Instant,
    interval: Duration,
    start: Instant,
    abandon: &AtomicBool,
    stop_at: &AtomicU64,
    live: &Live,
) -> (u64, Vec<Sample>) {
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nx-load-thread: {index}\r\n\r\n",
        spec.path, spec.host
    )
    .into_bytes();
    let mut samples = Vec::with_capacity(
        (spec.duration.as_secs_f64() * f64::from(spec.rate) / spec.threads as f64) as usize + 16,
    );
    let mut conn: Option<(Client, usize)> = None;
    let mut scheduled = 0u64;
    for i in 0u32.. {
        let intended = first + interval * i;
        let end = {
            let stopped = stop_at.load(Ordering::SeqCst);
            let by_duration = start + spec.duration;
            if stopped == u64::MAX {
                by_duration
            } else {
                by_duration.min(start + Duration::from_nanos(stopped))
            }
        };
        if intended >= end || abandon.load(Ordering::SeqCst) {
            break;
        }
        scheduled += 1;
        let now = Instant::now();
        if now > end + spec.drain {
            // Queued too long: scheduled, never sent. The rest of the schedule (intended before `end`) too.
            let left = end.saturating_duration_since(intended).as_nanos();
            scheduled += (left.saturating_sub(1) / interval.as_nanos()) as u64;
            break;
        }
        if now < intended {
            std::thread::sleep(intended - now);
        }
        let sent = Instant::now();
        let (client, used) = match conn.take() {
            Some(c) => c,
            None => match Client::try_connect(spec.target) {
                Ok(c) => (c, 0),
                Err(e) => {
                    live.failed.fetch_add(1, Ordering::SeqCst);
                    samples.push(Sample {
                        thread: index,
                        intended,
                        sent,
                        done: Instant::now(),
                        status: 0,
                        tables: Vec::new(),
                        upstreams: Vec::new(),
                        error: Some(format!("connect to {}: {e}", spec.target)),
                    });
                    continue;
                }
            },
        };
        let mut client = client;
        match client.try_exchange("GET", &request) {
            Ok(r) => {
                let done = Instant::now();
                live.completed.fetch_add(1, Ordering::SeqCst);
                if r.status != 200 {
                    live.failed.fetch_add(1, Ordering::SeqCst);
                }
                let close = r.has_token("connection", "close");
                samples.push(Sample {
                    thread: index,
                    intended,
                    sent,
                    done,
                    status: r.status,
                    tables: r
                        .header_all("x-table")
                        .into_iter()
                        .map(String::from)
                        .collect(),
                    upstreams: r
                        .header_all("x-upstream")
                        .into_iter()
                        .map(String::from)
                        .collect(),
                    error: (r.status != 200).then(|| {
                        format!(
                            "status {}: {}",
                            r.status,
                            String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
                        )
                    }),
                });
                if !close && used + 1 < spec.requests_per_connection {
                    conn = Some((client, used + 1));
                }
            }
            Err(e) => {
                live.failed.fetch_add(1, Ordering::SeqCst);
                samples.push(Sample {
                    thread: index,
                    intended,
                    sent,
                    done: Instant::now(),
                    status: 0,
                    tables: Vec::new(),
                    upstreams: Vec::new(),
                    error: Some(format!(
                        "request {} on a connection that had served {used}: {e}",
                        used + 1
                    )),
                });
            }
        }
    }
    (scheduled, samples)
}

/// Everything a load run saw.
pub struct LoadReport {
    pub spec: LoadSpec,
    pub start: Instant,
    /// How long requests were scheduled for.
    pub scheduled_for: Duration,
    /// Requests the schedule called for.
    pub scheduled: u64,
    /// Every request sent, in order of sending.
    pub samples: Vec<Sample>,
}

impl LoadReport {
    /// Requests that got a response.
    pub fn completed(&self) -> u64 {
        self.samples.iter().filter(|s| s.status != 0).count() as u64
    }

    /// Requests answered with 200.
    pub fn ok(&self) -> u64 {
        self.samples.iter().filter(|s| !s.failed()).count() as u64
    }

    pub fn failures(&self) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.failed()).collect()
    }

    /// 200 responses that do not carry exactly one `x-table` equal to exactly one `x-upstream`.
    pub fn mixed(&self) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| !s.failed() && s.table().is_none())
            .collect()
    }

    /// 200 responses per table.
    pub fn by_table(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for s in &self.samples {
            if let (false, Some(t)) = (s.failed(), s.table()) {
                *out.entry(t.to_string()).or_insert(0) += 1;
            }
        }
        out
    }

    /// Share of the scheduled requests that were answered with 200.
    pub fn ok_ratio(&self) -> f64 {
        if self.scheduled == 0 {
            return 0.0;
        }
        self.ok() as f64 / self.scheduled as f64
    }

    /// Latency percentile (0..=100), measured from the intended send time.
    pub fn latency(&self, percentile: f64) -> Duration {
        let mut l: Vec<Duration> = self
            .samples
            .iter()
            .filter(|s| s.status != 0)
            .map(|s| s.done.saturating_duration_since(s.intended))
            .collect();
        if l.is_empty() {
            return Duration::ZERO;
        }
        l.sort();
        let i = ((percentile / 100.0) * (l.len() - 1) as f64).round() as usize;
        l[i.min(l.len() - 1)]
    }

    /// One line: scheduled, answered, failed, rate, latency.
    pub fn summary(&self) -> String {
        format!(
            "{} scheduled over {:?} ({} req/s, {} threads), {} answered ({} ok, {:.2}%), {} failed, {} mixed, \
             tables {:?}, latency from intended send p50 {:?} p99 {:?} max {:?}",
            self.scheduled,
            self.scheduled_for,
            self.spec.rate,
            self.spec.threads,
            self.completed(),
            self.ok(),
            self.ok_ratio() * 100.0,
            self.failures().len(),
            self.mixed().len(),
            self.by_table(),
            self.latency(50.0),
            self.latency(99.0),
            self.latency(100.0),
        )
    }

    /// The first `max` samples of `list`, one per line.
    pub fn describe(&self, list: &[&Sample], max: usize) -> String {
        let mut out = String::new();
        for s in list.iter().take(max) {
            out.push_str("  ");
            out.push_str(&s.describe(self.start));
            out.push('\n');
        }
        if list.len() > max {
            out.push_str(&format!("  … and {} more\n", list.len() - max));
        }
        out
    }

    /// Panics (listing the culprits) unless every request was answered 200 by exactly one table and at least
    /// `min_ok` of the scheduled requests were answered.
    pub fn assert_clean(&self, min_ok: f64) {
        let failures = self.failures();
        assert!(
            failures.is_empty(),
            "{} failed requests: {}\n{}",
            failures.len(),
            self.summary(),
            self.describe(&failures, 20)
        );
        let mixed = self.mixed();
        assert!(
            mixed.is_empty(),
            "{} responses not from exactly one table: {}\n{}",
            mixed.len(),
            self.summary(),
            self.describe(&mixed, 20)
        );
        assert!(
            self.ok_ratio() >= min_ok,
            "only {:.2}% of the scheduled requests were answered (need {:.0}%): the load was not real: {}",
            self.ok_ratio() * 100.0,
            min_ok * 100.0,
            self.summary()
        );
    }
}

/// Serializes the load tests of one test binary: two 2,000 req/s runs at once on a small machine would measure
/// the machine, not the proxy. A test that panicked while holding it does not block the others.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
