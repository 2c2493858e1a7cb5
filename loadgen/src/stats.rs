//! Measurements of one worker (latency histograms in nanoseconds, outcome counters),
//! their merge across workers, and the percentile ladder that reports them.

use std::collections::BTreeMap;

use anyhow::Context as _;
use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Largest latency a histogram holds (larger values are clamped): one hour.
const MAX_NS: u64 = 3_600_000_000_000;

/// A histogram of nanoseconds with 3 significant digits.
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, MAX_NS, 3)?)
}

pub struct Stats {
    /// Completion minus *intended* send time: what a user at this rate sees.
    pub response: Histogram<u64>,
    /// Completion minus actual send time: what the server (and proxy) took.
    pub service: Histogram<u64>,
    /// Actual send minus the moment the request could have gone (its intended time,
    /// or later when it had to wait for a free connection): the generator's own delay.
    pub lag: Histogram<u64>,
    /// Responses with a 2xx status.
    pub ok: u64,
    pub non_2xx: u64,
    pub connect_errors: u64,
    pub io_errors: u64,
    pub timeouts: u64,
    /// Scheduled requests never sent because the run's drain deadline passed.
    pub unsent: u64,
    /// Requests that waited more than 1 ms for a free connection.
    pub queued: u64,
    /// Connects that failed for lack of local descriptors or ports (EMFILE,
    /// ENFILE, EADDRNOTAVAIL): the generator's limit, not the target's.
    pub local_exhaustion: u64,
    /// Successful connection establishments.
    pub connects: u64,
    /// Requests actually written to a connection.
    pub sent: u64,
    /// Latest send, in ns after the run's start (to compute the achieved rate).
    pub last_send_ns: u64,
    pub statuses: BTreeMap<u16, u64>,
    /// Responses per `x-upstream` header value.
    pub upstreams: BTreeMap<String, u64>,
}

impl Stats {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            response: histogram()?,
            service: histogram()?,
            lag: histogram()?,
            ok: 0,
            non_2xx: 0,
            connect_errors: 0,
            io_errors: 0,
            timeouts: 0,
            unsent: 0,
            queued: 0,
            local_exhaustion: 0,
            connects: 0,
            sent: 0,
            last_send_ns: 0,
            statuses: BTreeMap::new(),
            upstreams: BTreeMap::new(),
        })
    }

    /// Counts one response's `x-upstream` value.
    pub fn count_upstream(&mut self, value: &[u8]) {
        if value.is_empty() {
            return;
        }
        // Look up by &str first so the common case does not allocate.
        let name = String::from_utf8_lossy(value);
        if let Some(n) = self.upstreams.get_mut(name.as_ref()) {
            *n += 1;
        } else {
            self.upstreams.insert(name.into_owned(), 1);
        }
    }

    pub fn errors(&self) -> u64 {
        self.non_2xx + self.connect_errors + self.io_errors + self.timeouts + self.unsent
    }

    /// Every request that has an outcome.
    pub fn total(&self) -> u64 {
        self.ok + self.errors()
    }

    pub fn merge(&mut self, other: &Stats) -> anyhow::Result<()> {
        self.response.add(&other.response)?;
        self.service.add(&other.service)?;
        self.lag.add(&other.lag)?;
        self.ok += other.ok;
        self.non_2xx += other.non_2xx;
        self.connect_errors += other.connect_errors;
        self.io_errors += other.io_errors;
        self.timeouts += other.timeouts;
        self.unsent += other.unsent;
        self.queued += other.queued;
        self.local_exhaustion += other.local_exhaustion;
        self.connects += other.connects;
        self.sent += other.sent;
        self.last_send_ns = self.last_send_ns.max(other.last_send_ns);
        for (k, v) in &other.statuses {
            *self.statuses.entry(*k).or_default() += v;
        }
        for (k, v) in &other.upstreams {
            *self.upstreams.entry(k.clone()).or_default() += v;
        }
        Ok(())
    }
}

/// Percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ladder {
    pub count: u64,
    pub min_us: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl Ladder {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self {
                count: 0,
                min_us: 0.0,
                mean_us: 0.0,
                p50_us: 0.0,
                p90_us: 0.0,
                p99_us: 0.0,
                p999_us: 0.0,
                max_us: 0.0,
            };
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Self {
            count: h.len(),
            min_us: us(h.min()),
            mean_us: h.mean() / 1000.0,
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }
}

/// Value at percentile `p` (0–100], in nanoseconds; 0 for an empty histogram.
pub fn percentile_ns(h: &Histogram<u64>, p: f64) -> u64 {
    if h.is_empty() {
        0
    } else {
        h.value_at_quantile(p / 100.0)
    }
}

/// A histogram in the HdrHistogram V2 compressed encoding, base64: the same text
/// as in an HdrHistogram log, readable by its tools (and by [`decode`]).
pub fn encode(h: &Histogram<u64>) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .map_err(|e| anyhow::anyhow!("encoding a histogram: {e:?}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

pub fn decode(text: &str) -> anyhow::Result<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .context("histogram is not base64")?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| anyhow::anyhow!("not an HdrHistogram V2 encoding: {e:?}"))
}

/// The full percentile spectrum of a histogram in microseconds, one line per
/// step (HdrHistogram's usual layout: value, percentile, count, 1/(1-p)), with
/// `ticks` steps per halving of the remaining tail.
pub fn spectrum(h: &Histogram<u64>, ticks: u32) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:>14} {:>14} {:>12} {:>14}",
        "value_us", "percentile", "count", "1/(1-p)"
    );
    if h.is_empty() {
        return o;
    }
    for v in h.iter_quantiles(ticks) {
        let q = v.quantile_iterated_to();
        let inv = if q < 1.0 {
            format!("{:.2}", 1.0 / (1.0 - q))
        } else {
            "inf".to_string()
        };
        let _ = writeln!(
            o,
            "{:>14.3} {:>14.6} {:>12} {:>14}",
            v.value_iterated_to() as f64 / 1000.0,
            q,
            v.count_since_last_iteration(),
            inv
        );
    }
    o
}

/// Human form of a latency: `840µs`, `1.25ms`, `2.50s`.
pub fn fmt_us(us: f64) -> String {
    if us < 10.0 {
        format!("{us:.1}µs")
    } else if us < 1000.0 {
        format!("{us:.0}µs")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1000.0)
    } else {
        format!("{:.2}s", us / 1_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled() -> Histogram<u64> {
        let mut h = histogram().unwrap_or_else(|e| panic!("{e}"));
        for us in 1..=1000u64 {
            h.saturating_record(us * 1000);
        }
        h
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b * 0.001 + 0.001
    }

    #[test]
    fn ladder_reports_percentiles_in_microseconds() {
        let l = Ladder::of(&filled());
        assert_eq!(l.count, 1000);
        assert!(close(l.min_us, 1.0), "{l:?}");
        assert!(close(l.p50_us, 500.0), "{l:?}");
        assert!(close(l.p90_us, 900.0), "{l:?}");
        assert!(close(l.p99_us, 990.0), "{l:?}");
        assert!(close(l.p999_us, 999.0), "{l:?}");
        assert!(close(l.max_us, 1000.0), "{l:?}");
        assert!(close(l.mean_us, 500.5), "{l:?}");
    }

    #[test]
    fn empty_ladder_is_zero() {
        let h = histogram().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Ladder::of(&h).p99_us, 0.0);
        assert_eq!(percentile_ns(&h, 99.0), 0);
    }

    #[test]
    fn merge_adds_counts_and_samples() {
        let mut a = Stats::new().unwrap_or_else(|e| panic!("{e}"));
        let mut b = Stats::new().unwrap_or_else(|e| panic!("{e}"));
        a.response = filled();
        b.response = filled();
        a.ok = 3;
        b.timeouts = 2;
        b.count_upstream(b"blue");
        b.count_upstream(b"blue");
        a.merge(&b).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.response.len(), 2000);
        assert_eq!(a.total(), 5);
        assert_eq!(a.upstreams.get("blue"), Some(&2));
    }

    #[test]
    fn histograms_survive_encoding() {
        let h = filled();
        let text = encode(&h).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            text.starts_with("HISTF"),
            "V2 deflate in base64: {text:.12}"
        );
        let back = decode(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, h);
        assert!(decode("not base64!").is_err());
        assert!(decode("aGVsbG8=").is_err());
    }

    #[test]
    fn spectrum_ends_at_the_maximum() {
        let text = spectrum(&filled(), 5);
        let last = text.lines().last().unwrap_or_default();
        assert!(last.trim_start().starts_with("1000.447"), "{last}");
        assert!(last.contains("1.000000"), "{last}");
        assert!(text.lines().count() > 20);
    }

    #[test]
    fn formats_latencies() {
        assert_eq!(fmt_us(840.0), "840µs");
        assert_eq!(fmt_us(2.54), "2.5µs");
        assert_eq!(fmt_us(1250.0), "1.25ms");
        assert_eq!(fmt_us(2_500_000.0), "2.50s");
    }
}
