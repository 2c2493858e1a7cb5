//! Latency-percentile plots as hand-written SVG: percentile on a log scale of
//! 1/(1 − p) (so 90, 99, 99.9, 99.99 are evenly spaced, where tails live) against
//! latency on a log scale, one line per proxy.

use std::fmt::Write as _;

const W: f64 = 680.0;
const H: f64 = 400.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;

/// One line of the plot.
#[derive(Debug, Clone)]
pub struct Series<'a> {
    pub name: &'a str,
    /// An SVG colour, the same for a proxy in every plot.
    pub colour: &'a str,
    /// `(percentile, µs)`.
    pub points: Vec<(f64, f64)>,
}

/// Where percentile `p` sits on the x axis: 50 → 0.3, 90 → 1, 99 → 2, 99.99 → 4.
fn nines(p: f64) -> f64 {
    -(1.0 - p / 100.0).max(1e-9).log10()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `250 µs`, `1.5 ms`, `20 ms`.
fn fmt_us(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        let ms = us / 1000.0;
        if ms < 10.0 && ms.fract() != 0.0 {
            format!("{ms:.1} ms")
        } else {
            format!("{ms:.0} ms")
        }
    }
}

/// The 1-2-5 values of every decade between `lo` and `hi`.
fn ticks_125(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = decade * m;
            if v >= lo && v <= hi {
                out.push(v);
            }
        }
        decade *= 10.0;
    }
    out
}

/// An SVG plot of `series`; series without points are left out. `None` when there
/// is nothing to draw.
pub fn latency_plot(title: &str, series: &[Series]) -> Option<String> {
    let series: Vec<&Series> = series
        .iter()
        .filter(|s| s.points.iter().any(|&(_, us)| us > 0.0))
        .collect();
    let all = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|&&(_, us)| us > 0.0)
    };
    let p_min = all().map(|&(p, _)| p).reduce(f64::min)?;
    let p_max = all().map(|&(p, _)| p).reduce(f64::max)?;
    let us_min = all().map(|&(_, us)| us).reduce(f64::min)?;
    let us_max = all().map(|&(_, us)| us).reduce(f64::max)?;
    // Round the latency range out to 1-2-5 steps so the ends carry labels.
    let lo = ticks_125(us_min / 2.5, us_min)
        .last()
        .copied()
        .unwrap_or(us_min);
    let hi = ticks_125(us_max, us_max * 2.5)
        .first()
        .copied()
        .unwrap_or(us_max);
    let (x0, x1) = (nines(p_min), nines(p_max).max(nines(p_min) + 0.5));
    let (y0, y1) = (lo.log10(), hi.log10().max(lo.log10() + 0.3));
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let x = |p: f64| LEFT + (nines(p) - x0) / (x1 - x0) * pw;
    let y = |us: f64| TOP + ph - (us.log10() - y0) / (y1 - y0) * ph;

    let mut o = String::new();
    let _ = writeln!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" \
         font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(o, "<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>");
    let _ = writeln!(
        o,
        "<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">{}</text>",
        LEFT + pw / 2.0,
        escape(title)
    );
    // Grid and labels: one vertical line per measured percentile.
    let mut ps: Vec<f64> = all().map(|&(p, _)| p).collect();
    ps.sort_by(f64::total_cmp);
    ps.dedup();
    for p in ps {
        let px = x(p);
        let _ = writeln!(
            o,
            "<line x1=\"{px:.1}\" y1=\"{TOP}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#dddddd\"/>\
             <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">p{p}</text>",
            TOP + ph,
            TOP + ph + 18.0
        );
    }
    for v in ticks_125(lo, hi) {
        let py = y(v);
        let _ = writeln!(
            o,
            "<line x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"#dddddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT + pw,
            LEFT - 6.0,
            py + 4.0,
            fmt_us(v)
        );
    }
    let _ = writeln!(
        o,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#333333\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">percentile (log scale of 1/(1−p))</text>\
         <text x=\"16\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {:.1})\">latency (log scale)</text>",
        LEFT + pw / 2.0,
        H - 10.0,
        TOP + ph / 2.0,
        TOP + ph / 2.0
    );
    for (i, s) in series.iter().enumerate() {
        let (name, colour) = (s.name, s.colour);
        let mut pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|&(_, us)| us > 0.0)
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let line: Vec<String> = pts
            .iter()
            .map(|&(p, us)| format!("{:.1},{:.1}", x(p), y(us)))
            .collect();
        let _ = writeln!(
            o,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
            line.join(" ")
        );
        for &(p, us) in &pts {
            let _ = writeln!(
                o,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"><title>{} p{p}: {}</title></circle>",
                x(p),
                y(us),
                escape(name),
                fmt_us(us)
            );
        }
        let ly = TOP + 10.0 + 20.0 * i as f64;
        let lx = LEFT + pw + 15.0;
        let _ = writeln!(
            o,
            "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"2\"/>\
             <text x=\"{}\" y=\"{}\">{}</text>",
            lx + 20.0,
            lx + 26.0,
            ly + 4.0,
            escape(name)
        );
    }
    o.push_str("</svg>\n");
    Some(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_evenly_spaced_by_nines() {
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
    }

    #[test]
    fn ticks_and_labels() {
        assert_eq!(ticks_125(150.0, 2500.0), vec![200.0, 500.0, 1000.0, 2000.0]);
        assert_eq!(fmt_us(500.0), "500 µs");
        assert_eq!(fmt_us(1500.0), "1.5 ms");
        assert_eq!(fmt_us(20000.0), "20 ms");
    }

    #[test]
    fn plots_every_series_and_escapes_names() {
        let pts = vec![(50.0, 400.0), (99.0, 900.0), (99.99, 4000.0)];
        let line = |name, points| Series {
            name,
            colour: "#777777",
            points,
        };
        let svg = latency_plot(
            "a < b",
            &[
                line("direct", pts.clone()),
                line("x&y", pts),
                line("empty", Vec::new()),
            ],
        )
        .unwrap_or_default();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a &lt; b") && svg.contains("x&amp;y") && !svg.contains("empty"));
        assert!(svg.contains(">p99.99<"));
        assert!(latency_plot("none", &[line("empty", Vec::new())]).is_none());
    }
}
