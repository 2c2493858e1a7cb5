//! The rate over time (`--rate` with `--duration`, or a `--schedule` of steps and
//! ramps) and the arrival process that turns it into intended send times
//! (evenly spaced, or Poisson from a seed).
//!
//! Both are expressed through the cumulative expected count Λ(t) = ∫₀ᵗ rate: the
//! n-th arrival of the whole run sits at the position u where Λ(t) = u. Evenly
//! spaced arrivals are at u = 0, 1, 2, …; Poisson arrivals at u = E₁, E₁+E₂, …
//! with Eᵢ exponential of mean 1. Worker w of W takes every W-th position
//! (u = nW + w) or, for Poisson, its own process of intensity rate/W (a sum of
//! independent Poisson processes is again Poisson with the summed rate).

use std::fmt;
use std::time::Duration;

use crate::slo::parse_duration;

/// One piece of the schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Segment {
    /// `RATE:DURATION`: a constant rate.
    Hold { rate: f64, secs: f64 },
    /// `FROM..TO:DURATION`: the rate moves linearly from `from` to `to`.
    Ramp { from: f64, to: f64, secs: f64 },
}

impl Segment {
    fn secs(&self) -> f64 {
        match *self {
            Segment::Hold { secs, .. } | Segment::Ramp { secs, .. } => secs,
        }
    }

    /// Expected requests in the first `t` seconds of the segment.
    fn count(&self, t: f64) -> f64 {
        match *self {
            Segment::Hold { rate, .. } => rate * t,
            Segment::Ramp { from, to, secs } => from * t + (to - from) * t * t / (2.0 * secs),
        }
    }

    /// Inverse of `count`: the time into the segment at which `c` requests are due.
    fn time_of(&self, c: f64) -> f64 {
        match *self {
            Segment::Hold { rate, .. } => c / rate,
            Segment::Ramp { from, to, secs } => {
                // Root of a/2·t² + from·t − c = 0, written so it stays exact when
                // the slope a is (nearly) zero.
                let a = (to - from) / secs;
                let disc = (from * from + 2.0 * a * c).max(0.0);
                let denom = from + disc.sqrt();
                if denom > 0.0 {
                    2.0 * c / denom
                } else {
                    (2.0 * c / a).max(0.0).sqrt()
                }
            }
        }
    }

    fn rate_at(&self, t: f64) -> f64 {
        match *self {
            Segment::Hold { rate, .. } => rate,
            Segment::Ramp { from, to, secs } => from + (to - from) * (t / secs).clamp(0.0, 1.0),
        }
    }
}

/// The whole schedule: segments one after the other from the run's start.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    segments: Vec<Segment>,
}

pub const SCHEDULE_HELP: &str = "comma-separated segments: RATE:DURATION holds a rate \
(1000:5s), FROM..TO:DURATION ramps linearly (0..5000:30s); e.g. 1000:5s,2000:5s or 500..2000:10s,2000:20s";

impl Profile {
    pub fn constant(rate: f64, duration: Duration) -> Self {
        Self {
            segments: vec![Segment::Hold {
                rate,
                secs: duration.as_secs_f64(),
            }],
        }
    }

    /// Parses `--schedule`; see [`SCHEDULE_HELP`].
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut segments = Vec::new();
        for part in text.split(',').map(str::trim) {
            let (rates, dur) = part.split_once(':').ok_or_else(|| {
                format!("schedule segment {part:?}: write RATE:DURATION or FROM..TO:DURATION")
            })?;
            let secs = parse_duration(dur)
                .map_err(|e| format!("schedule segment {part:?}: {e}"))?
                .as_secs_f64();
            if secs <= 0.0 {
                return Err(format!(
                    "schedule segment {part:?}: duration must be positive"
                ));
            }
            let rate = |s: &str| -> Result<f64, String> {
                match s.trim().parse::<f64>() {
                    Ok(r) if r >= 0.0 && r.is_finite() => Ok(r),
                    _ => Err(format!(
                        "schedule segment {part:?}: rate {s:?} must be a number >= 0"
                    )),
                }
            };
            segments.push(match rates.split_once("..") {
                Some((from, to)) => Segment::Ramp {
                    from: rate(from)?,
                    to: rate(to)?,
                    secs,
                },
                None => Segment::Hold {
                    rate: rate(rates)?,
                    secs,
                },
            });
        }
        let p = Self { segments };
        if p.expected() < 1.0 {
            return Err(format!(
                "schedule {text:?} sends no request (rate × duration < 1)"
            ));
        }
        Ok(p)
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.segments.iter().map(Segment::secs).sum())
    }

    /// Expected requests over the whole schedule, Λ(T).
    pub fn expected(&self) -> f64 {
        self.segments.iter().map(|s| s.count(s.secs())).sum()
    }

    /// Expected requests over the whole schedule divided by its length.
    pub fn mean_rate(&self) -> f64 {
        let secs = self.duration().as_secs_f64();
        if secs > 0.0 {
            self.expected() / secs
        } else {
            0.0
        }
    }

    /// Expected requests in the first `t` seconds, Λ(t).
    pub fn count_until(&self, t: f64) -> f64 {
        let mut start = 0.0;
        let mut total = 0.0;
        for s in &self.segments {
            if t < start + s.secs() {
                return total + s.count((t - start).max(0.0));
            }
            start += s.secs();
            total += s.count(s.secs());
        }
        total
    }

    /// The rate due at `t` seconds after the start (0 after the end).
    pub fn rate_at(&self, t: f64) -> f64 {
        let mut start = 0.0;
        for s in &self.segments {
            if t < start + s.secs() {
                return s.rate_at(t - start);
            }
            start += s.secs();
        }
        0.0
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.segments.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match s {
                Segment::Hold { rate, secs } => write!(f, "{rate}:{secs}s")?,
                Segment::Ramp { from, to, secs } => write!(f, "{from}..{to}:{secs}s")?,
            }
        }
        Ok(())
    }
}

/// How requests are spread in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Arrival {
    /// Evenly spaced at the current rate.
    Constant,
    /// A Poisson process (exponential gaps) at the current rate, from `--seed`.
    Poisson,
}

/// SplitMix64: small, fast, and enough for exponential gaps (not for secrets).
#[derive(Debug, Clone, Copy)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Exponential with mean 1.
    pub fn exp1(&mut self) -> f64 {
        -(1.0 - self.unit()).ln()
    }
}

/// One worker's intended send times, in seconds after the run's start.
#[derive(Debug, Clone)]
pub struct Arrivals {
    segments: Vec<Segment>,
    kind: Arrival,
    workers: f64,
    /// Position (in expected requests) of the next arrival.
    u: f64,
    rng: Rng,
    /// Cursor: current segment, and Λ and t at its start (u only grows).
    seg: usize,
    seg_count: f64,
    seg_start: f64,
}

impl Arrivals {
    pub fn new(profile: &Profile, kind: Arrival, seed: u64, worker: usize, workers: usize) -> Self {
        let workers = workers.max(1);
        // Each worker its own stream, all reproducible from the one seed.
        let mut rng = Rng::new(seed ^ (worker as u64).wrapping_mul(0xA076_1D64_78BD_642F));
        let u = match kind {
            Arrival::Constant => worker as f64,
            Arrival::Poisson => rng.exp1() * workers as f64,
        };
        Self {
            segments: profile.segments.clone(),
            kind,
            workers: workers as f64,
            u,
            rng,
            seg: 0,
            seg_count: 0.0,
            seg_start: 0.0,
        }
    }
}

impl Iterator for Arrivals {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        loop {
            let s = self.segments.get(self.seg)?;
            let in_seg = self.u - self.seg_count;
            if in_seg < s.count(s.secs()) {
                let t = self.seg_start + s.time_of(in_seg).clamp(0.0, s.secs());
                self.u += match self.kind {
                    Arrival::Constant => self.workers,
                    Arrival::Poisson => self.rng.exp1() * self.workers,
                };
                return Some(t);
            }
            self.seg_count += s.count(s.secs());
            self.seg_start += s.secs();
            self.seg += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Profile {
        Profile::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn parses_steps_and_ramps() {
        let prof = p("1000:5s, 2000:500ms,0..100:2s");
        assert_eq!(
            prof.segments(),
            &[
                Segment::Hold {
                    rate: 1000.0,
                    secs: 5.0
                },
                Segment::Hold {
                    rate: 2000.0,
                    secs: 0.5
                },
                Segment::Ramp {
                    from: 0.0,
                    to: 100.0,
                    secs: 2.0
                },
            ]
        );
        assert_eq!(prof.duration(), Duration::from_millis(7500));
        assert!((prof.expected() - (5000.0 + 1000.0 + 100.0)).abs() < 1e-9);
        assert_eq!(prof.rate_at(5.2), 2000.0);
        assert!((prof.rate_at(6.5) - 50.0).abs() < 1e-9);
        assert_eq!(prof.rate_at(9.0), 0.0);
        assert_eq!(prof.to_string(), "1000:5s,2000:0.5s,0..100:2s");
    }

    #[test]
    fn rejects_bad_schedules() {
        for bad in [
            "", "1000", "1000:", ":5s", "x:5s", "-5:1s", "100:0s", "100:5", "1..:2s", "0:5s",
            "1000:5s,",
        ] {
            assert!(Profile::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn constant_arrivals_interleave_workers() {
        let prof = Profile::constant(10.0, Duration::from_secs(1));
        let a: Vec<f64> = Arrivals::new(&prof, Arrival::Constant, 1, 0, 2).collect();
        let b: Vec<f64> = Arrivals::new(&prof, Arrival::Constant, 1, 1, 2).collect();
        assert_eq!(a.len() + b.len(), 10);
        assert!((b[0] - a[0] - 0.1).abs() < 1e-9);
        assert!((a[1] - a[0] - 0.2).abs() < 1e-9);
    }

    #[test]
    fn ramp_arrivals_follow_the_rate() {
        // 0..1000 over 2 s: Λ(t) = 250 t², 1000 requests; half of them in the
        // last 0.586 s (where Λ = 500 at t = √2).
        let prof = p("0..1000:2s");
        let t: Vec<f64> = Arrivals::new(&prof, Arrival::Constant, 1, 0, 1).collect();
        assert_eq!(t.len(), 1000);
        assert!((t[500] - 2f64.sqrt()).abs() < 1e-6, "{}", t[500]);
        assert!(t.windows(2).all(|w| w[0] <= w[1]));
        // Down ramp: evenly spaced at the start (rate 1000 → gap 1 ms).
        let down: Vec<f64> = Arrivals::new(&p("1000..0:2s"), Arrival::Constant, 1, 0, 1).collect();
        assert!((down[1] - 0.001).abs() < 1e-5, "{}", down[1]);
        assert!(down.len() >= 999 && down.len() <= 1000, "{}", down.len());
    }

    #[test]
    fn steps_switch_rates_at_the_boundary() {
        let t: Vec<f64> = Arrivals::new(&p("10:1s,100:1s"), Arrival::Constant, 1, 0, 1).collect();
        assert_eq!(t.len(), 110);
        assert!((t[10] - 1.0).abs() < 1e-9);
        assert!((t[11] - 1.01).abs() < 1e-9);
    }

    #[test]
    fn poisson_is_seeded_and_has_the_right_mean_and_spread() {
        let prof = Profile::constant(10_000.0, Duration::from_secs(10));
        let a: Vec<f64> = Arrivals::new(&prof, Arrival::Poisson, 7, 0, 1).collect();
        let again: Vec<f64> = Arrivals::new(&prof, Arrival::Poisson, 7, 0, 1).collect();
        let other: Vec<f64> = Arrivals::new(&prof, Arrival::Poisson, 8, 0, 1).collect();
        assert_eq!(a, again, "same seed, same arrivals");
        assert_ne!(a, other);
        // 100 000 expected; the count of a Poisson process has sd √n ≈ 316.
        assert!((a.len() as f64 - 100_000.0).abs() < 1500.0, "{}", a.len());
        // Exponential gaps: mean 100 µs and coefficient of variation 1.
        let gaps: Vec<f64> = a.windows(2).map(|w| w[1] - w[0]).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        assert!((mean - 1e-4).abs() < 2e-6, "mean {mean}");
        assert!(
            (var.sqrt() / mean - 1.0).abs() < 0.02,
            "cv {}",
            var.sqrt() / mean
        );
    }

    #[test]
    fn poisson_workers_add_up_to_the_rate() {
        let prof = Profile::constant(2_000.0, Duration::from_secs(10));
        let n: usize = (0..4)
            .map(|w| Arrivals::new(&prof, Arrival::Poisson, 3, w, 4).count())
            .sum();
        assert!((n as f64 - 20_000.0).abs() < 600.0, "{n}");
    }
}
