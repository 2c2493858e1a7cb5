//! The verdict of a run and its exit code: PASS (0), FAIL (1: an SLO failed),
//! INVALID (3: the generator itself was the limit: short of the rate, late on
//! its schedule, out of CPU, or out of descriptors or ports, so the figures say
//! nothing about the target), UNREACHABLE (4). Usage errors exit with 2.

use serde::{Deserialize, Serialize};

/// Achieved rate below this share of the target makes a run INVALID.
pub const MIN_ACHIEVED_SHARE: f64 = 0.95;
/// Schedule lag p99 above this makes a run INVALID.
pub const MAX_LAG_P99_NS: u64 = 1_000_000;
/// Generator CPU (user + system over wall time × workers) above this makes a run
/// INVALID: a worker that busy had no slack left to send on time or read promptly.
pub const MAX_GENERATOR_CPU_PERCENT: f64 = 80.0;

pub const EXIT_USAGE: i32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Kind {
    Pass,
    Fail,
    Invalid,
    Unreachable,
}

impl Kind {
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Pass => 0,
            Kind::Fail => 1,
            Kind::Invalid => 3,
            Kind::Unreachable => 4,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Pass => "PASS",
            Kind::Fail => "FAIL",
            Kind::Invalid => "INVALID",
            Kind::Unreachable => "UNREACHABLE",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Verdict {
    pub kind: Kind,
    pub reason: String,
}

/// Everything the verdict depends on.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Target rate in open loop; `None` in closed loop.
    pub target_rate: Option<f64>,
    pub achieved_rate: f64,
    pub lag_p99_ns: u64,
    /// Lag budget; 0 means the default `MAX_LAG_P99_NS`.
    pub max_lag_ns: u64,
    /// Requests with an outcome (responses and errors).
    pub total: u64,
    /// Complete responses, any status.
    pub responses: u64,
    pub connects: u64,
    pub connect_errors: u64,
    /// Requests that waited more than 1 ms for a free connection.
    pub queued: u64,
    /// Generator CPU in percent of its worker cores; `None` when not measured.
    pub cpu_percent: Option<f64>,
    /// Connects that failed with EMFILE, ENFILE or EADDRNOTAVAIL.
    pub local_exhaustion: u64,
    /// Specs of the SLOs that failed, with what was observed.
    pub failed_slos: Vec<String>,
    pub slo_count: usize,
}

pub fn decide(f: &Facts) -> Verdict {
    let v = |kind, reason: String| Verdict { kind, reason };
    if f.local_exhaustion > 0 {
        return v(
            Kind::Invalid,
            format!(
                "{} connects failed for lack of local descriptors or ports (EMFILE/ENFILE/EADDRNOTAVAIL): raise `ulimit -n`, widen net.ipv4.ip_local_port_range, or use fewer --connections",
                f.local_exhaustion
            ),
        );
    }
    if f.connects == 0 && f.responses == 0 {
        return v(
            Kind::Unreachable,
            format!(
                "no connection to the target succeeded ({} connect errors)",
                f.connect_errors
            ),
        );
    }
    if f.total == 0 {
        return v(Kind::Invalid, "no request was sent".to_string());
    }
    if let Some(target) = f.target_rate {
        let share = if target > 0.0 {
            f.achieved_rate / target
        } else {
            1.0
        };
        if share < MIN_ACHIEVED_SHARE {
            let hint = if f.queued * 100 > f.total {
                format!(
                    "; {} requests waited for a free connection: raise --connections, or the target is slower than the rate",
                    f.queued
                )
            } else {
                "; the generator could not keep up: add --workers or lower --rate".to_string()
            };
            return v(
                Kind::Invalid,
                format!(
                    "achieved {:.0} req/s is {:.1}% of the target {:.0} req/s (< {:.0}%){hint}",
                    f.achieved_rate,
                    share * 100.0,
                    target,
                    MIN_ACHIEVED_SHARE * 100.0
                ),
            );
        }
        let budget = if f.max_lag_ns == 0 {
            MAX_LAG_P99_NS
        } else {
            f.max_lag_ns
        };
        if f.lag_p99_ns > budget {
            return v(
                Kind::Invalid,
                format!(
                    "schedule lag p99 {:.2}ms > {:.2}ms: the generator sent late, add --workers or lower --rate",
                    f.lag_p99_ns as f64 / 1e6,
                    budget as f64 / 1e6
                ),
            );
        }
    }
    if let Some(cpu) = f.cpu_percent {
        if cpu > MAX_GENERATOR_CPU_PERCENT {
            return v(
                Kind::Invalid,
                format!(
                    "generator CPU {cpu:.0}% of its worker cores > {MAX_GENERATOR_CPU_PERCENT:.0}%: it may have been the bottleneck; add --workers (and cores) or lower the rate"
                ),
            );
        }
    }
    if !f.failed_slos.is_empty() {
        return v(
            Kind::Fail,
            format!("SLO failed: {}", f.failed_slos.join(", ")),
        );
    }
    let reason = match f.slo_count {
        0 => "no SLO given; the run was valid".to_string(),
        1 => "the SLO was met".to_string(),
        n => format!("all {n} SLOs were met"),
    };
    v(Kind::Pass, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Facts {
        Facts {
            target_rate: Some(1000.0),
            achieved_rate: 999.0,
            lag_p99_ns: 80_000,
            total: 10_000,
            responses: 10_000,
            connects: 4,
            slo_count: 2,
            ..Facts::default()
        }
    }

    #[test]
    fn pass_when_everything_holds() {
        let d = decide(&good());
        assert_eq!(d.kind, Kind::Pass);
        assert_eq!(d.kind.exit_code(), 0);
        assert!(d.reason.contains("all 2"));
    }

    #[test]
    fn fail_when_an_slo_fails() {
        let f = Facts {
            failed_slos: vec!["p99<2ms (observed 3.10ms)".into()],
            ..good()
        };
        let d = decide(&f);
        assert_eq!(d.kind.exit_code(), 1);
        assert!(d.reason.contains("p99<2ms"));
    }

    #[test]
    fn invalid_beats_fail_when_the_rate_was_not_reached() {
        let f = Facts {
            achieved_rate: 940.0,
            failed_slos: vec!["p99<2ms".into()],
            ..good()
        };
        let d = decide(&f);
        assert_eq!(d.kind, Kind::Invalid);
        assert_eq!(d.kind.exit_code(), 3);
        // 95% exactly is still valid.
        let f = Facts {
            achieved_rate: 950.0,
            ..good()
        };
        assert_eq!(decide(&f).kind, Kind::Pass);
    }

    #[test]
    fn lag_budget_is_configurable() {
        let f = Facts {
            lag_p99_ns: 1_500_000,
            max_lag_ns: 5_000_000,
            ..good()
        };
        assert_ne!(decide(&f).kind, Kind::Invalid);
        let f = Facts {
            lag_p99_ns: 6_000_000,
            max_lag_ns: 5_000_000,
            ..good()
        };
        assert_eq!(decide(&f).kind, Kind::Invalid);
    }

    #[test]
    fn invalid_when_the_generator_lags() {
        let f = Facts {
            lag_p99_ns: 1_500_000,
            ..good()
        };
        let d = decide(&f);
        assert_eq!(d.kind, Kind::Invalid);
        assert!(d.reason.contains("lag"));
    }

    #[test]
    fn queueing_hint_when_connections_were_busy() {
        let f = Facts {
            achieved_rate: 500.0,
            queued: 5_000,
            ..good()
        };
        assert!(decide(&f).reason.contains("--connections"));
    }

    #[test]
    fn closed_loop_ignores_rate_and_lag() {
        let f = Facts {
            target_rate: None,
            achieved_rate: 10.0,
            lag_p99_ns: 9_000_000,
            ..good()
        };
        assert_eq!(decide(&f).kind, Kind::Pass);
    }

    #[test]
    fn invalid_when_the_generator_is_out_of_cpu() {
        let busy = Facts {
            cpu_percent: Some(85.0),
            ..good()
        };
        let d = decide(&busy);
        assert_eq!(d.kind, Kind::Invalid);
        assert!(d.reason.contains("CPU"), "{}", d.reason);
        // Also in closed loop: the generator may have been what was measured.
        let closed = Facts {
            target_rate: None,
            ..busy
        };
        assert_eq!(decide(&closed).kind, Kind::Invalid);
        let fine = Facts {
            cpu_percent: Some(79.9),
            ..good()
        };
        assert_eq!(decide(&fine).kind, Kind::Pass);
    }

    #[test]
    fn invalid_when_out_of_descriptors_or_ports() {
        // Even when nothing connected: it is our limit, not the target's absence.
        let f = Facts {
            local_exhaustion: 3,
            connects: 0,
            responses: 0,
            ..good()
        };
        let d = decide(&f);
        assert_eq!(d.kind, Kind::Invalid);
        assert!(d.reason.contains("EMFILE"), "{}", d.reason);
    }

    #[test]
    fn unreachable_when_nothing_connected() {
        let f = Facts {
            connects: 0,
            responses: 0,
            connect_errors: 50,
            ..good()
        };
        let d = decide(&f);
        assert_eq!(d.kind, Kind::Unreachable);
        assert_eq!(d.kind.exit_code(), 4);
    }
}
