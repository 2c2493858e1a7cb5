//! The run's report: the JSON document `--out` writes (versioned, with the
//! histograms encoded so nothing is lost), the SLO evaluation and the verdict.
//!
//! A report is judged by one function, [`judge`], from the document's own
//! fields and decoded histograms; `run` calls it on a fresh report and
//! `report FILE.json` on a loaded one, so both give the same verdict.

use std::collections::BTreeMap;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::run::{Load, Outcome, RunConfig};
use crate::slo::{self, Observed, Slo, SloResult};
use crate::stats::{self, percentile_ns, Ladder};
use crate::verdict::{self, Facts, Verdict};

/// Version 2 added the encoded histograms, the generator's CPU and the schedule.
/// Bump when a field changes meaning or disappears; adding fields keeps it.
pub const SCHEMA_VERSION: u32 = 2;

/// An SLO as given on the command line, with its parsed form.
#[derive(Debug, Clone)]
pub struct SloSpec {
    pub text: String,
    pub slo: Slo,
}

impl SloSpec {
    pub fn parse(text: &str) -> Result<Self, String> {
        Ok(Self {
            text: text.to_string(),
            slo: slo::parse_slo(text)?,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub schema_version: u32,
    pub tool: String,
    pub url: String,
    /// `open` (a rate) or `closed` (max throughput).
    pub mode: String,
    /// Mean rate of the schedule (open loop).
    pub target_rate: Option<f64>,
    /// The rate schedule, as `--schedule` would take it (open loop).
    pub schedule: Option<String>,
    /// `constant` or `poisson` (open loop).
    pub arrival: Option<String>,
    pub seed: Option<u64>,
    pub achieved_rate: f64,
    pub achieved_percent: Option<f64>,
    pub duration_s: f64,
    pub measured_s: f64,
    pub connections: usize,
    pub workers: usize,
    /// The schedule-lag p99 budget.
    pub max_lag_us: f64,
    /// `io_uring` or `epoll`.
    pub driver: String,
    /// Whether pacing used the timerfd (else monoio's 1 ms timer wheel).
    pub precise_timer: bool,
    pub generator_cpu: GeneratorCpu,
    pub requests: Requests,
    pub statuses: BTreeMap<String, u64>,
    pub latency: Latencies,
    /// The histograms (nanoseconds), HdrHistogram V2 compressed, base64.
    pub histograms: Histograms,
    pub upstreams: BTreeMap<String, u64>,
    pub slos: Vec<SloResult>,
    pub verdict: Verdict,
    pub exit_code: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GeneratorCpu {
    pub user_s: f64,
    pub system_s: f64,
    pub wall_s: f64,
    /// (user + system) / (wall × workers).
    pub percent: f64,
    /// Seconds the pacers spun before sends (CPU burnt on purpose for timing).
    #[serde(default)]
    pub spin_s: f64,
    /// `percent` without the spin; what the CPU rule of the verdict looks at.
    #[serde(default)]
    pub busy_percent: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Requests {
    pub total: u64,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub error_percent: f64,
    pub non_2xx: u64,
    pub connect_errors: u64,
    pub io_errors: u64,
    pub timeouts: u64,
    pub unsent: u64,
    pub queued: u64,
    pub connects: u64,
    pub local_exhaustion: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Latencies {
    /// Done minus intended send time (open loop); equals service time in closed loop.
    pub response: Ladder,
    pub service: Ladder,
    pub schedule_lag: Ladder,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Histograms {
    pub response: String,
    pub service: String,
    pub schedule_lag: String,
}

/// The decoded histograms a report is judged on.
pub struct Hists {
    pub response: Histogram<u64>,
    pub service: Histogram<u64>,
    pub lag: Histogram<u64>,
}

/// The report of a finished run, judged against `slos`.
pub fn build(
    url: &str,
    cfg: &RunConfig,
    out: &Outcome,
    slos: &[SloSpec],
) -> anyhow::Result<Report> {
    let s = &out.stats;
    let (schedule, arrival, seed) = match &cfg.load {
        Load::Open {
            profile,
            arrival,
            seed,
        } => (
            Some(profile.to_string()),
            Some(format!("{arrival:?}").to_lowercase()),
            Some(*seed),
        ),
        Load::Closed { .. } => (None, None, None),
    };
    let total = s.total();
    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        tool: "ringmesh-loadgen".to_string(),
        url: url.to_string(),
        mode: if cfg.target_rate().is_some() {
            "open"
        } else {
            "closed"
        }
        .to_string(),
        target_rate: cfg.target_rate(),
        schedule,
        arrival,
        seed,
        achieved_rate: out.achieved_rate,
        achieved_percent: None,
        duration_s: cfg.duration().as_secs_f64(),
        measured_s: out.measured.as_secs_f64(),
        connections: cfg.connections,
        workers: cfg.effective_workers(),
        max_lag_us: cfg.max_lag.as_secs_f64() * 1e6,
        driver: out.driver.to_string(),
        precise_timer: out.precise_timer,
        generator_cpu: GeneratorCpu {
            user_s: out.cpu.times.user.as_secs_f64(),
            system_s: out.cpu.times.system.as_secs_f64(),
            wall_s: out.cpu.wall.as_secs_f64(),
            percent: out.cpu.percent,
            spin_s: out.cpu.spin.as_secs_f64(),
            busy_percent: out.cpu.busy_percent,
        },
        requests: Requests {
            total,
            sent: s.sent,
            ok: s.ok,
            errors: s.errors(),
            error_percent: 0.0,
            non_2xx: s.non_2xx,
            connect_errors: s.connect_errors,
            io_errors: s.io_errors,
            timeouts: s.timeouts,
            unsent: s.unsent,
            queued: s.queued,
            connects: s.connects,
            local_exhaustion: s.local_exhaustion,
        },
        statuses: s
            .statuses
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        latency: Latencies {
            response: Ladder::of(&s.response),
            service: Ladder::of(&s.service),
            schedule_lag: Ladder::of(&s.lag),
        },
        histograms: Histograms {
            response: stats::encode(&s.response)?,
            service: stats::encode(&s.service)?,
            schedule_lag: stats::encode(&s.lag)?,
        },
        upstreams: s.upstreams.clone(),
        slos: Vec::new(),
        verdict: Verdict {
            kind: verdict::Kind::Invalid,
            reason: String::new(),
        },
        exit_code: 0,
    };
    let hists = Hists {
        response: s.response.clone(),
        service: s.service.clone(),
        lag: s.lag.clone(),
    };
    judge(&mut report, &hists, slos);
    Ok(report)
}

/// Fills in what is derived: percentiles, error and achieved shares, the SLO
/// results and the verdict.
pub fn judge(r: &mut Report, h: &Hists, slos: &[SloSpec]) {
    let q = &mut r.requests;
    q.error_percent = if q.total == 0 {
        0.0
    } else {
        q.errors as f64 * 100.0 / q.total as f64
    };
    r.achieved_percent = r.target_rate.map(|t| {
        if t > 0.0 {
            r.achieved_rate * 100.0 / t
        } else {
            100.0
        }
    });
    // What a user sees: from the intended time in open loop; in closed loop
    // there is no intended time, so from the send.
    let latency = if r.target_rate.is_some() {
        &h.response
    } else {
        &h.service
    };
    r.latency = Latencies {
        response: Ladder::of(latency),
        service: Ladder::of(&h.service),
        schedule_lag: Ladder::of(&h.lag),
    };
    let observed = Observed {
        latency,
        error_percent: r.requests.error_percent,
        achieved_percent: r.achieved_percent,
    };
    r.slos = slos
        .iter()
        .map(|spec| slo::evaluate(&spec.text, &spec.slo, &observed))
        .collect();
    let q = &r.requests;
    let facts = Facts {
        target_rate: r.target_rate,
        achieved_rate: r.achieved_rate,
        lag_p99_ns: percentile_ns(&h.lag, 99.0),
        max_lag_ns: (r.max_lag_us * 1000.0).round() as u64,
        total: q.total,
        responses: q.ok + q.non_2xx,
        connects: q.connects,
        connect_errors: q.connect_errors,
        queued: q.queued,
        cpu_percent: Some(r.generator_cpu.busy_percent),
        local_exhaustion: q.local_exhaustion,
        failed_slos: r
            .slos
            .iter()
            .filter(|s| !s.pass)
            .map(|s| format!("{} (observed {})", s.spec, s.observed))
            .collect(),
        slo_count: r.slos.len(),
    };
    r.verdict = verdict::decide(&facts);
    r.exit_code = r.verdict.kind.exit_code();
}

/// Loads a report written by `--out`, refusing other schema versions.
pub fn load(text: &str) -> anyhow::Result<Report> {
    let v: serde_json::Value = serde_json::from_str(text).context("not JSON")?;
    let version = v.get("schema_version").and_then(serde_json::Value::as_u64);
    match version {
        Some(n) if n == u64::from(SCHEMA_VERSION) => {}
        Some(n) => anyhow::bail!(
            "schema_version {n} is not supported: this ringmesh-loadgen reads version {SCHEMA_VERSION} (re-run the measurement with this version)"
        ),
        None => anyhow::bail!("no schema_version: not a ringmesh-loadgen report"),
    }
    serde_json::from_value(v).context("not a ringmesh-loadgen report")
}

/// The decoded histograms of a loaded report.
pub fn hists(r: &Report) -> anyhow::Result<Hists> {
    Ok(Hists {
        response: stats::decode(&r.histograms.response).context("histograms.response")?,
        service: stats::decode(&r.histograms.service).context("histograms.service")?,
        lag: stats::decode(&r.histograms.schedule_lag).context("histograms.schedule_lag")?,
    })
}

/// Judges a loaded report again: against its own SLOs, or against `slos` when
/// some are given (to ask a stored measurement a new question).
pub fn rejudge(r: &Report, slos: Option<&[SloSpec]>) -> anyhow::Result<Report> {
    let h = hists(r)?;
    let own: Vec<SloSpec>;
    let slos = match slos {
        Some(s) => s,
        None => {
            own = r
                .slos
                .iter()
                .map(|s| SloSpec::parse(&s.spec).map_err(anyhow::Error::msg))
                .collect::<anyhow::Result<_>>()?;
            &own
        }
    };
    let mut out = r.clone();
    judge(&mut out, &h, slos);
    Ok(out)
}
