//! Waiting until an instant with microsecond precision inside a monoio worker.
//!
//! monoio's own timer wheel has 1 ms ticks and rounds every sleep up to the next
//! tick, so a schedule driven by it is late by up to 2 ms. Instead, each worker
//! owns a timerfd (an hrtimer, no timer slack) and reads it through io_uring: the
//! worker sleeps in the kernel like for any other IO, and the expiry completes the
//! read (io_uring polls the descriptor; no kernel worker thread is involved, and
//! the wake-up is as fast as a blocking read or `clock_nanosleep`). The timer is
//! armed at an absolute time [`SPIN`] before the due time, so a preemption
//! between reading the clock and arming cannot push the expiry back. The rest is
//! covered by a spin (`Timer::spin_until`) that checks the clock in short
//! stretches and gives the other tasks a turn in between, so responses keep
//! being processed, without entering the kernel on every check.
//!
//! Arming costs more than it looks: when the new expiry is the CPU's earliest,
//! the kernel reprograms the timer device, which on a VM exits to the host
//! (measured 9 to 15 µs per `timerfd_settime` here, 1 to 2 µs when not the
//! earliest). Callers that have just released a request should let it go out
//! first ([`Timer::yield_now`]) and arm the next wait afterwards.
//!
//! On the epoll driver monoio reads files with a blocking `pread`, which would
//! stall the worker, so there the wheel is used up to 2 ms before the instant and
//! the spin covers the rest (more CPU, same precision).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

/// The spin starts at this and adapts (see [`Timer::adapt`]) between the bounds.
pub const SPIN: Duration = Duration::from_micros(50);
const SPIN_MIN: Duration = Duration::from_micros(10);
/// Wake-ups later than this are preemptions (the worker waited for a CPU), not
/// timer latency: no affordable spin hides them, so they do not widen it. On a
/// shared machine a wider spin only takes CPU from the target being measured,
/// which shows up as a slower service time (measured: p99 of the service time
/// about doubled with a fixed 120 µs spin against none, over repeated
/// runs on 2 busy cores).
const SPIN_MAX: Duration = Duration::from_micros(100);
/// The spin checks the clock without yielding for at most this long: a yield
/// costs a pass of the runtime with an `io_uring_enter`, and a response that
/// completes meanwhile is timestamped at most this much later.
const SPIN_STRETCH: Duration = Duration::from_micros(5);
/// On the epoll driver: monoio's wheel wakes up to 2 ms late.
const WHEEL_MARGIN: Duration = Duration::from_millis(2);

enum Kind {
    /// The timerfd (to arm), a second descriptor for the same timer (to read
    /// through monoio) and the clock it counts on.
    Fd(TimerFd, monoio::fs::File, Clock),
    Wheel,
}

/// Maps `Instant`s to `CLOCK_MONOTONIC` time, for absolute expiries. `Instant`
/// is that clock on Linux, but opaque; one reading of each gives the offset.
struct Clock {
    instant: Instant,
    mono: TimeSpec,
}

impl Clock {
    fn now() -> Option<Self> {
        let mono = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).ok()?;
        Some(Self {
            instant: Instant::now(),
            mono,
        })
    }

    /// `at` on `CLOCK_MONOTONIC`; `at` is never before the reference (it is
    /// taken when the timer is made), else it saturates to the reference.
    fn mono(&self, at: Instant) -> TimeSpec {
        self.mono + TimeSpec::from_duration(at.saturating_duration_since(self.instant))
    }
}

/// One worker's precise timer.
pub struct Timer {
    kind: Kind,
    buf: Option<Vec<u8>>,
    /// How long before the due time the timerfd is armed.
    spin: Duration,
    adaptive: bool,
    turn: Turn,
}

impl Timer {
    /// A timerfd on io_uring, the wheel otherwise (or when the timerfd cannot be made).
    pub fn new() -> Self {
        let kind = if crate::rt::is_uring() {
            timerfd().map_or(Kind::Wheel, |(t, f, c)| Kind::Fd(t, f, c))
        } else {
            Kind::Wheel
        };
        Self {
            kind,
            buf: Some(vec![0; 8]),
            spin: SPIN,
            adaptive: true,
            turn: Turn::start(),
        }
    }

    /// A fixed spin (zero: none), to measure the bare wake-up latency.
    pub fn with_fixed_spin(spin: Duration) -> Self {
        Self {
            spin,
            adaptive: false,
            ..Self::new()
        }
    }

    /// The current spin.
    pub fn spin(&self) -> Duration {
        self.spin
    }

    /// Follows the tail of the wake-up latency: a wake later than the spin
    /// (which made the send late) widens it at once, up to `SPIN_MAX`; each
    /// wake well inside it narrows it by 1/64. So the spin sits near the
    /// latency's upper percentiles: precise sends for little CPU on a quiet
    /// machine, more spin where wake-ups are slow. A wake later than
    /// `SPIN_MAX` is a preemption, which the spin cannot cover: it is ignored.
    /// (Narrowing by 1/256 cut the lag tail a little but doubled the spin's
    /// CPU, which on a shared machine, as in the demo, slowed the proxy being
    /// measured.) The spin is reported apart from the generator's working CPU.
    fn adapt(&mut self, late: Duration) {
        if !self.adaptive {
            return;
        }
        if late > SPIN_MAX {
            return;
        }
        if late > self.spin {
            self.spin = (self.spin + (late - self.spin) / 2).min(SPIN_MAX);
        } else if late < self.spin / 2 {
            self.spin = (self.spin - self.spin / 64).max(SPIN_MIN);
        }
    }

    /// Whether the precise (timerfd) path is in use.
    pub fn precise(&self) -> bool {
        matches!(self.kind, Kind::Fd(..))
    }

    /// Returns at `at` or just after it (never before), with the time spent
    /// spinning for the last stretch (CPU burnt on purpose, not work).
    pub async fn wait_until(&mut self, at: Instant) -> Duration {
        let now = Instant::now();
        let spin = self.spin;
        match &self.kind {
            Kind::Fd(fd, file, clock) if at > now + spin + Duration::from_micros(1) => {
                let wake = at - spin;
                let ok = fd
                    .set(
                        Expiration::OneShot(clock.mono(wake)),
                        TimerSetTimeFlags::TFD_TIMER_ABSTIME,
                    )
                    .is_ok();
                if ok {
                    if let Some(buf) = self.buf.take() {
                        // The read completes when the timer expires (8 bytes: the
                        // expiry count, not needed).
                        let (res, buf) = file.read_at(buf, 0).await;
                        self.buf = Some(buf);
                        if res.is_err() {
                            // Should not happen; fall back for the rest of the run.
                            self.kind = Kind::Wheel;
                        } else {
                            self.adapt(Instant::now().saturating_duration_since(wake));
                        }
                    }
                }
            }
            Kind::Wheel if at > now + WHEEL_MARGIN => {
                monoio::time::sleep(at - now - WHEEL_MARGIN).await;
            }
            _ => {}
        }
        self.spin_until(at).await
    }

    /// Spins until `at`: checks the clock for up to `SPIN_STRETCH`, then gives
    /// the other tasks (and the runtime's completions) a turn, and so on.
    /// Returns how long it spun.
    async fn spin_until(&self, at: Instant) -> Duration {
        let from = Instant::now();
        let mut now = from;
        while now < at {
            let stretch = at.min(now + SPIN_STRETCH);
            while now < stretch {
                std::hint::spin_loop();
                now = Instant::now();
            }
            if now < at {
                self.turn.take().await;
                now = Instant::now();
            }
        }
        now - from
    }

    /// Gives the other tasks of the worker one turn: e.g. the connection just
    /// handed a request sends it before the pacer arms its next wait.
    pub async fn yield_now(&self) {
        self.turn.take().await;
    }
}

impl Default for Timer {
    fn default() -> Self {
        Self::new()
    }
}

fn timerfd() -> Option<(TimerFd, monoio::fs::File, Clock)> {
    // Blocking mode on purpose: io_uring then waits for the expiry with an
    // internal poll (no kernel worker thread: none shows up in a run), whereas
    // on older kernels a non-blocking descriptor completes at once with EAGAIN.
    let t = TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_CLOEXEC).ok()?;
    let dup: OwnedFd = t.as_fd().try_clone_to_owned().ok()?;
    let file = monoio::fs::File::from_std(std::fs::File::from(dup)).ok()?;
    Some((t, file, Clock::now()?))
}

/// Gives the other tasks of the worker a turn, and the runtime a chance to reap
/// completions, before the spinning task runs again.
///
/// A plain "wake myself and return Pending" does not do that on monoio: a task
/// woken while it is being polled is put back at the *front* of the run queue,
/// so a spinning pacer would run again and again and starve every connection
/// until it stops (measured: all 16 connections of a worker stalled for the
/// whole run). Instead the spinner and a helper task wake each other: a task
/// woken from outside its own poll goes to the *back* of the queue, behind
/// everything that became ready meanwhile.
struct Turn {
    shared: Rc<TurnShared>,
}

#[derive(Default)]
struct TurnShared {
    spinner: RefCell<Option<Waker>>,
    helper: RefCell<Option<Waker>>,
    done: Cell<bool>,
}

impl Turn {
    /// Spawns the helper; must run inside a monoio runtime.
    fn start() -> Self {
        let shared = Rc::new(TurnShared::default());
        let theirs = shared.clone();
        monoio::spawn(std::future::poll_fn(move |cx| {
            if theirs.done.get() {
                return Poll::Ready(());
            }
            if let Some(w) = theirs.spinner.borrow_mut().take() {
                w.wake();
            }
            *theirs.helper.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }));
        Self { shared }
    }

    fn take(&self) -> impl Future<Output = ()> + '_ {
        let mut parked = false;
        std::future::poll_fn(move |cx| {
            if parked {
                return Poll::Ready(());
            }
            parked = true;
            *self.shared.spinner.borrow_mut() = Some(cx.waker().clone());
            // When the helper has not run yet, it wakes us when it does.
            if let Some(helper) = self.shared.helper.borrow_mut().take() {
                helper.wake();
            }
            Poll::Pending
        })
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.shared.done.set(true);
        if let Some(w) = self.shared.helper.borrow_mut().take() {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Never early, and on io_uring the timerfd read really completes (a failed
    /// read would have switched the timer to the wheel) and is armed for the
    /// right time: an expiry mapped to the wrong clock would fire at once and
    /// leave the whole wait to the spin. How late it is is a measurement, made
    /// by `selftest`, not a unit test.
    #[test]
    fn waits_through_the_timerfd_and_never_returns_early() {
        let out = crate::rt::block_on(async {
            let mut t = Timer::new();
            let mut early = 0;
            let (mut waited, mut spun) = (Duration::ZERO, Duration::ZERO);
            for i in 0..50u64 {
                let gap = Duration::from_micros(1000 + i * 37);
                let at = Instant::now() + gap;
                spun += t.wait_until(at).await;
                waited += gap;
                if Instant::now() < at {
                    early += 1;
                }
            }
            (early, t.precise(), crate::rt::is_uring(), spun, waited)
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.0, 0);
        assert_eq!(out.1, out.2, "timerfd in use exactly when io_uring is");
        if out.1 {
            assert!(out.3 < out.4 * 2 / 5, "spun {:?} of {:?}", out.3, out.4);
        }
    }

    /// The epoll fallback (wheel, then a spin that yields) is never early either.
    #[test]
    fn the_wheel_fallback_never_returns_early() {
        let early = crate::rt::block_on(async {
            let mut t = Timer {
                kind: Kind::Wheel,
                ..Timer::new()
            };
            let mut early = 0;
            for i in 0..20u64 {
                let at = Instant::now() + Duration::from_micros(200 + i * 173);
                let _ = t.wait_until(at).await;
                if Instant::now() < at {
                    early += 1;
                }
            }
            early
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(early, 0);
    }

    /// A connection task keeps running while the pacer spins: the spin yields.
    #[test]
    fn the_spin_lets_other_tasks_run() {
        let ran = crate::rt::block_on(async {
            let counter = Rc::new(Cell::new(0u32));
            let c = counter.clone();
            let stop = Rc::new(Cell::new(false));
            let s = stop.clone();
            let other = monoio::spawn(async move {
                let t = Timer::new();
                while !s.get() {
                    c.set(c.get() + 1);
                    t.yield_now().await;
                }
            });
            // A wait shorter than the spin: all of it is spin.
            let t = Timer::with_fixed_spin(Duration::from_millis(5));
            let _ = t
                .spin_until(Instant::now() + Duration::from_millis(2))
                .await;
            let ran = counter.get();
            stop.set(true);
            other.await;
            ran
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            ran > 10,
            "the other task ran {ran} times during a 2 ms spin"
        );
    }
}
