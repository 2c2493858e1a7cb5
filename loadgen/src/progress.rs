//! The live progress line on stderr (once a second, only on a terminal): counters
//! each worker bumps with relaxed atomics it alone writes, read by the main thread.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One worker's running totals. Only that worker writes them, so the atomics are
/// never contended; they exist so the main thread may read them.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub ok: AtomicU64,
    pub errors: AtomicU64,
    /// Nanoseconds the pacer spent spinning before sends (see `timer.rs`).
    pub spin_ns: AtomicU64,
}

impl Counters {
    pub fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Whether to draw the line: stderr is a terminal (not CI, not a pipe).
pub fn wanted() -> bool {
    std::io::stderr().is_terminal()
}

fn sum(all: &[Arc<Counters>], f: impl Fn(&Counters) -> &AtomicU64) -> u64 {
    all.iter().map(|c| f(c).load(Ordering::Relaxed)).sum()
}

/// Draws the line every second until `done` returns true; clears it at the end.
pub fn draw_until(
    all: &[Arc<Counters>],
    start: Instant,
    target_rate: impl Fn(f64) -> Option<f64>,
    done: impl Fn() -> bool,
) {
    let mut err = std::io::stderr();
    let mut last_sent = 0;
    // Seconds of the schedule, not of the warm-up before it.
    let mut next = start.max(Instant::now()) + Duration::from_secs(1);
    while !done() {
        std::thread::sleep(Duration::from_millis(50));
        let now = Instant::now();
        if now < next {
            continue;
        }
        next += Duration::from_secs(1);
        let sent = sum(all, |c| &c.sent);
        let elapsed = now.saturating_duration_since(start).as_secs_f64();
        let target = match target_rate(elapsed) {
            Some(r) => format!(" (target {r:.0}/s)"),
            None => String::new(),
        };
        let _ = write!(
            err,
            "\r\x1b[2K  {elapsed:>5.0}s  {:>8} req/s{target}  sent {sent}  ok {}  errors {}",
            sent - last_sent,
            sum(all, |c| &c.ok),
            sum(all, |c| &c.errors),
        );
        let _ = err.flush();
        last_sent = sent;
    }
    let _ = write!(err, "\r\x1b[2K");
    let _ = err.flush();
}
