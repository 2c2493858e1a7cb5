//! The benchmark report: every figure with its ratio to `direct` and to the best
//! peer in the same run, as a Markdown table (bench/RESULTS.md) and as JSON, and a
//! latency-percentile plot per table (SVG next to the Markdown).

use std::fmt::Write as _;

use serde::Serialize;

use crate::cpu::Machine;
use crate::peers::{Layer, Proxy};
use crate::svg::Series;

/// One proxy at one response size.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub layer: Layer,
    pub body_size: usize,
    pub proxy: Proxy,
    /// Why the row has no figures (peer not installed, failed to start...).
    pub skipped: Option<String>,
    pub requests: u64,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// CPU time of the proxy (all threads) per request; `None` for direct.
    pub cpu_us_per_req: Option<f64>,
    /// CPU time of the upstream per request (it shares core 0 with wrk).
    pub upstream_cpu_us_per_req: f64,
    pub rss_kib: Option<u64>,
    pub errors: u64,
    /// Which CPUs the proxy's threads were allowed on (pinning check).
    pub affinity: Vec<String>,
    /// `(percentile, µs)` for the latency plot.
    pub percentiles: Vec<(f64, f64)>,
    /// TLS layers: version, cipher suite and key exchange group the client got.
    pub negotiated: Option<String>,
    /// Keep-alive layers: the fixed-rate (open-loop) phase.
    #[serde(default)]
    pub fixed: Option<crate::fixed::FixedRate>,
}

impl Row {
    pub fn skipped(layer: Layer, body_size: usize, proxy: Proxy, why: String) -> Self {
        Self {
            layer,
            body_size,
            proxy,
            skipped: Some(why),
            requests: 0,
            rps: 0.0,
            p50_us: 0.0,
            p99_us: 0.0,
            cpu_us_per_req: None,
            upstream_cpu_us_per_req: 0.0,
            rss_kib: None,
            errors: 0,
            affinity: Vec::new(),
            percentiles: Vec::new(),
            negotiated: None,
            fixed: None,
        }
    }

    fn measured(&self) -> bool {
        self.skipped.is_none() && self.requests > 0
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub date: String,
    pub command: String,
    pub machine: Machine,
    pub method: String,
    pub rows: Vec<Row>,
}

/// `a / b`, when both exist and `b` is not zero.
fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or("–".to_string(), |r| format!("{r:.2}"))
}

/// Best value among the measured peers: `max` or `min` of `f`.
fn best_peer(
    rows: &[&Row],
    f: impl Fn(&Row) -> Option<f64>,
    higher_is_better: bool,
) -> Option<f64> {
    rows.iter()
        .filter(|r| r.proxy.is_peer() && r.measured())
        .filter_map(|r| f(r))
        .reduce(|a, b| if (a > b) == higher_is_better { a } else { b })
}

/// A figure with its ratios: `48210 (0.62 / 1.05)`.
fn cell(v: Option<f64>, direct: Option<f64>, best: Option<f64>, decimals: usize) -> String {
    match v {
        None => "–".to_string(),
        Some(x) => format!(
            "{x:.decimals$} ({} / {})",
            fmt_ratio(ratio(Some(x), direct)),
            fmt_ratio(ratio(Some(x), best))
        ),
    }
}

/// The plot of one table: `latency-tls-100.svg`.
pub fn plot_file(layer: Layer, size: usize) -> String {
    format!("latency-{}-{size}.svg", layer.slug())
}

/// The tables of a report, in the order they were measured.
fn groups(r: &Report) -> Vec<(Layer, usize)> {
    let mut groups: Vec<(Layer, usize)> = Vec::new();
    for row in &r.rows {
        if !groups.contains(&(row.layer, row.body_size)) {
            groups.push((row.layer, row.body_size));
        }
    }
    groups
}

/// One latency plot per table that has percentiles: `(file name, SVG text)`.
pub fn plots(r: &Report) -> Vec<(String, String)> {
    groups(r)
        .into_iter()
        .filter_map(|(layer, size)| {
            let series: Vec<Series> = r
                .rows
                .iter()
                .filter(|x| x.layer == layer && x.body_size == size && x.measured())
                .map(|x| Series {
                    name: x.proxy.name(),
                    colour: colour(x.proxy),
                    points: x.percentiles.clone(),
                })
                .collect();
            let title = format!("{}, {size} B", layer.title());
            crate::svg::latency_plot(&title, &series).map(|svg| (plot_file(layer, size), svg))
        })
        .collect()
}

/// A proxy's line colour, the same in every plot.
fn colour(p: Proxy) -> &'static str {
    match p {
        Proxy::Direct => "#777777",
        Proxy::Ringmesh => "#1f77b4",
        Proxy::RingmeshFull => "#17becf",
        Proxy::Nginx => "#2ca02c",
        Proxy::Haproxy => "#ff7f0e",
    }
}

/// What a TLS table's reader needs to know about how it was measured.
fn layer_note(layer: Layer) -> Option<&'static str> {
    match layer {
        Layer::Tls => Some(
            "Client: wrk over TLS (OpenSSL), one handshake per connection at the start; `direct` is \
             plaintext to the upstream (the physical limit). Every proxy has the same certificate and key.",
        ),
        Layer::TlsNew => Some(
            "Client: the bench's rustls client (`conn-load`), one new connection and one full handshake \
             per request, no resumption offered. `direct`: a new plaintext TCP connection per request. \
             Per core = 1 s / proxy CPU per handshake: what one core of the proxy would sustain.",
        ),
        Layer::TlsResumed => Some(
            "Client: the bench's rustls client (`conn-load`), one new connection per request offering \
             the session ticket from an earlier one (each proxy's default session settings). \
             `direct`: a new plaintext TCP connection per request. Per core = 1 s / proxy CPU per handshake.",
        ),
        Layer::Http | Layer::L4 => None,
    }
}

pub fn markdown(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# ringmesh benchmark results\n");
    let _ = writeln!(o, "- date: {}", r.date);
    let _ = writeln!(o, "- command: `{}`", r.command);
    let _ = writeln!(
        o,
        "- machine: {} CPUs (`nproc`), kernel {}, {}",
        r.machine.nproc, r.machine.kernel, r.machine.cpu
    );
    let _ = writeln!(o, "- method: {}\n", r.method);
    let _ = writeln!(
        o,
        "Each cell: figure (ratio to direct / ratio to the best peer). Only ratios carry over between runs.\n"
    );
    let plotted: Vec<String> = plots(r).into_iter().map(|(name, _)| name).collect();
    for (layer, size) in groups(r) {
        let rows: Vec<&Row> = r
            .rows
            .iter()
            .filter(|x| x.layer == layer && x.body_size == size)
            .collect();
        let direct = rows
            .iter()
            .find(|x| x.proxy == Proxy::Direct && x.measured());
        let d = |f: &dyn Fn(&Row) -> f64| direct.map(|x| f(x));
        let _ = writeln!(o, "## {}, {size} B responses\n", layer.title());
        if let Some(note) = layer_note(layer) {
            let _ = writeln!(o, "{note}\n");
        }
        // Connection-per-request tables count handshakes and add the per-core rate;
        // TLS tables say what was negotiated.
        let per_conn = layer.per_connection();
        let (unit, per) = if per_conn {
            ("handshakes/s", "handshake")
        } else {
            ("req/s", "req")
        };
        let mut head = format!("| proxy | {unit} | p50 µs | p99 µs | proxy CPU µs/{per} |");
        let mut rule = String::from("|---|---:|---:|---:|---:|");
        if per_conn {
            head.push_str(" handshakes/s per proxy core |");
            rule.push_str("---:|");
        }
        head.push_str(" RSS KiB | upstream CPU µs/req | errors |");
        rule.push_str("---:|---:|---:|");
        if layer.is_tls() {
            head.push_str(" negotiated |");
            rule.push_str("---|");
        }
        let _ = writeln!(o, "{head}\n{rule}");
        let per_core = |x: &Row| x.cpu_us_per_req.filter(|&c| c > 0.0).map(|c| 1e6 / c);
        let best_rps = best_peer(&rows, |x| Some(x.rps), true);
        let best_p50 = best_peer(&rows, |x| Some(x.p50_us), false);
        let best_p99 = best_peer(&rows, |x| Some(x.p99_us), false);
        let best_cpu = best_peer(&rows, |x| x.cpu_us_per_req, false);
        let best_rss = best_peer(&rows, |x| x.rss_kib.map(|k| k as f64), false);
        let best_core = best_peer(&rows, per_core, true);
        for x in &rows {
            if let Some(why) = &x.skipped {
                // One line, no table breakers: the details are in the log.
                let why: String = why
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .replace('|', "/")
                    .chars()
                    .take(120)
                    .collect();
                let empty = head.matches('|').count().saturating_sub(3);
                let _ = writeln!(
                    o,
                    "| {} | skipped: {why} |{}",
                    x.proxy.name(),
                    " |".repeat(empty)
                );
                continue;
            }
            let mut line = format!(
                "| {} | {} | {} | {} | {} |",
                x.proxy.name(),
                cell(Some(x.rps), d(&|r| r.rps), best_rps, 0),
                cell(Some(x.p50_us), d(&|r| r.p50_us), best_p50, 0),
                cell(Some(x.p99_us), d(&|r| r.p99_us), best_p99, 0),
                cell(x.cpu_us_per_req, None, best_cpu, 1),
            );
            if per_conn {
                let _ = write!(line, " {} |", cell(per_core(x), None, best_core, 0));
            }
            let _ = write!(
                line,
                " {} | {:.1} | {} |",
                cell(x.rss_kib.map(|k| k as f64), None, best_rss, 0),
                x.upstream_cpu_us_per_req,
                x.errors
            );
            if layer.is_tls() {
                let _ = write!(line, " {} |", x.negotiated.as_deref().unwrap_or("–"));
            }
            let _ = writeln!(o, "{line}");
        }
        let _ = writeln!(o);
        if let Some(fixed) = crate::fixed::table(&rows) {
            let _ = writeln!(o, "{fixed}");
        }
        let file = plot_file(layer, size);
        if plotted.contains(&file) {
            let _ = writeln!(
                o,
                "![latency percentiles, {}, {size} B]({file})\n",
                layer.title()
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(proxy: Proxy, rps: f64, cpu: Option<f64>) -> Row {
        Row {
            requests: 1000,
            rps,
            p50_us: 100.0,
            p99_us: 200.0,
            cpu_us_per_req: cpu,
            rss_kib: Some(1024),
            skipped: None,
            ..Row::skipped(Layer::Http, 100, proxy, String::new())
        }
    }

    #[test]
    fn ratios_against_direct_and_best_peer() {
        let rows = [
            row(Proxy::Direct, 100_000.0, None),
            row(Proxy::Ringmesh, 50_000.0, Some(15.0)),
            row(Proxy::Nginx, 40_000.0, Some(20.0)),
            row(Proxy::Haproxy, 45_000.0, Some(19.0)),
        ];
        let refs: Vec<&Row> = rows.iter().collect();
        assert_eq!(best_peer(&refs, |r| Some(r.rps), true), Some(45_000.0));
        assert_eq!(best_peer(&refs, |r| r.cpu_us_per_req, false), Some(19.0));
        let report = Report {
            schema_version: 1,
            date: "d".into(),
            command: "c".into(),
            machine: crate::cpu::machine(),
            method: "m".into(),
            rows: rows.to_vec(),
        };
        let md = markdown(&report);
        assert!(md.contains("| ringmesh | 50000 (0.50 / 1.11)"), "{md}");
        assert!(md.contains("15.0 (– / 0.79)"), "{md}");
    }

    #[test]
    fn handshake_tables_add_per_core_and_negotiated_columns() {
        let mut rows = vec![
            row(Proxy::Direct, 4000.0, None),
            row(Proxy::Ringmesh, 2000.0, Some(200.0)),
            row(Proxy::Haproxy, 1000.0, Some(400.0)),
            Row::skipped(Layer::TlsNew, 100, Proxy::Nginx, "not installed".into()),
        ];
        for r in &mut rows {
            r.layer = Layer::TlsNew;
            r.percentiles = vec![(50.0, 300.0), (99.0, 900.0)];
            if r.proxy != Proxy::Direct {
                r.negotiated = Some("TLSv1.3 X".into());
            }
        }
        let report = Report {
            schema_version: 1,
            date: String::new(),
            command: String::new(),
            machine: crate::cpu::machine(),
            method: String::new(),
            rows,
        };
        let md = markdown(&report);
        assert!(md.contains("| proxy | handshakes/s |"), "{md}");
        assert!(
            md.contains("proxy CPU µs/handshake | handshakes/s per proxy core |"),
            "{md}"
        );
        // 1 s / 200 µs = 5000 per core, twice HAProxy's 2500.
        assert!(
            md.contains("| 200.0 (– / 0.50) | 5000 (– / 2.00) |"),
            "{md}"
        );
        assert!(md.contains("| TLSv1.3 X |"), "{md}");
        // A skipped row has as many cells as the header.
        let cells = |l: &str| l.matches('|').count();
        let head = md
            .lines()
            .find(|l| l.starts_with("| proxy"))
            .unwrap_or_default();
        let skipped = md
            .lines()
            .find(|l| l.contains("skipped"))
            .unwrap_or_default();
        assert_eq!(cells(head), cells(skipped), "{md}");
        assert!(md.contains("](latency-tls-new-100.svg)"), "{md}");
        let plots = plots(&report);
        assert_eq!(plots.len(), 1);
        assert_eq!(plots[0].0, "latency-tls-new-100.svg");
    }

    #[test]
    fn skipped_rows_are_listed() {
        let rows = vec![Row::skipped(
            Layer::L4,
            100,
            Proxy::Nginx,
            "no stream module".into(),
        )];
        let report = Report {
            schema_version: 1,
            date: String::new(),
            command: String::new(),
            machine: crate::cpu::machine(),
            method: String::new(),
            rows,
        };
        assert!(markdown(&report).contains("skipped: no stream module"));
    }
}
