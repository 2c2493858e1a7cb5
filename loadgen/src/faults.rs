//! What `serve` does to a request besides answering it: delay it (a share of
//! requests, fixed or exponential), delay everything during a stall window,
//! answer 503 to a share, and vary the body size. Pure: given the time since
//! start and a random source, it decides; `serve` carries it out.

use std::time::Duration;

use crate::schedule::Rng;

/// How long a delayed request waits.
#[derive(Debug, Clone, Copy, PartialEq, clap::ValueEnum)]
pub enum DelayDist {
    /// Exactly --delay-ms.
    Fixed,
    /// Exponential with mean --delay-ms (a long tail, like a real backend).
    Exponential,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Delay {
    pub dist: DelayDist,
    /// The fixed delay, or the mean.
    pub delay: Duration,
    /// Share of requests delayed, in percent.
    pub percent: f64,
}

/// Every request that arrives in `[at, at + length)` after start waits `delay`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stall {
    pub at: Duration,
    pub length: Duration,
    pub delay: Duration,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    pub delay: Option<Delay>,
    pub stall: Option<Stall>,
    /// Share of requests answered 503, in percent.
    pub error_percent: f64,
    /// Body size of each response is uniform in `body_size..=max` when set.
    pub body_size_max: Option<usize>,
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub wait: Duration,
    pub error: bool,
    /// `None`: the configured fixed size.
    pub body: Option<usize>,
}

impl Faults {
    pub fn is_none(&self) -> bool {
        *self == Faults::default()
    }

    pub fn decide(&self, since_start: Duration, body_size: usize, rng: &mut Rng) -> Decision {
        let mut wait = Duration::ZERO;
        if let Some(d) = self.delay {
            if rng.unit() * 100.0 < d.percent {
                wait += match d.dist {
                    DelayDist::Fixed => d.delay,
                    DelayDist::Exponential => d.delay.mul_f64(rng.exp1()),
                };
            }
        }
        if let Some(s) = self.stall {
            if since_start >= s.at && since_start < s.at + s.length {
                wait += s.delay;
            }
        }
        let error = self.error_percent > 0.0 && rng.unit() * 100.0 < self.error_percent;
        let body = self.body_size_max.map(|max| {
            let span = max.saturating_sub(body_size) as u64 + 1;
            body_size + (rng.next_u64() % span) as usize
        });
        Decision { wait, error, body }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(f: &Faults, pred: impl Fn(&Decision) -> bool) -> f64 {
        let mut rng = Rng::new(5);
        let n = 100_000;
        let hits = (0..n)
            .filter(|_| pred(&f.decide(Duration::ZERO, 100, &mut rng)))
            .count();
        hits as f64 * 100.0 / n as f64
    }

    #[test]
    fn delays_the_given_share() {
        let f = Faults {
            delay: Some(Delay {
                dist: DelayDist::Fixed,
                delay: Duration::from_millis(1),
                percent: 1.0,
            }),
            ..Faults::default()
        };
        let p = share(&f, |d| d.wait == Duration::from_millis(1));
        assert!((p - 1.0).abs() < 0.15, "{p}");
        assert_eq!(
            share(&f, |d| !d.wait.is_zero()
                && d.wait != Duration::from_millis(1)),
            0.0
        );
        assert!(f
            .decide(Duration::ZERO, 100, &mut Rng::new(1))
            .body
            .is_none());
    }

    #[test]
    fn exponential_delays_have_the_mean() {
        let f = Faults {
            delay: Some(Delay {
                dist: DelayDist::Exponential,
                delay: Duration::from_millis(2),
                percent: 100.0,
            }),
            ..Faults::default()
        };
        let mut rng = Rng::new(9);
        let n = 50_000;
        let total: f64 = (0..n)
            .map(|_| f.decide(Duration::ZERO, 0, &mut rng).wait.as_secs_f64())
            .sum();
        let mean = total / n as f64;
        assert!((mean - 0.002).abs() < 0.00005, "{mean}");
    }

    #[test]
    fn stalls_only_inside_the_window() {
        let f = Faults {
            stall: Some(Stall {
                at: Duration::from_secs(4),
                length: Duration::from_secs(1),
                delay: Duration::from_millis(200),
            }),
            ..Faults::default()
        };
        let mut rng = Rng::new(1);
        let wait = |t: f64, rng: &mut Rng| f.decide(Duration::from_secs_f64(t), 0, rng).wait;
        assert_eq!(wait(3.99, &mut rng), Duration::ZERO);
        assert_eq!(wait(4.0, &mut rng), Duration::from_millis(200));
        assert_eq!(wait(4.99, &mut rng), Duration::from_millis(200));
        assert_eq!(wait(5.0, &mut rng), Duration::ZERO);
    }

    #[test]
    fn errors_and_sizes() {
        let f = Faults {
            error_percent: 10.0,
            body_size_max: Some(110),
            ..Faults::default()
        };
        let p = share(&f, |d| d.error);
        assert!((p - 10.0).abs() < 0.5, "{p}");
        assert_eq!(share(&f, |d| !matches!(d.body, Some(100..=110))), 0.0);
        assert!(share(&f, |d| d.body == Some(110)) > 5.0);
        assert!(Faults::default().is_none());
    }
}
