//! Which table may answer a request, given when each swap was asked for and acknowledged.

use std::time::{Duration, Instant};

use ringmesh_tests::load::Sample;
use ringmesh_tests::{addr, LoadReport, LoadSpec};

/// One table swap as the test drove it: SIGHUP sent at `requested`, acknowledgement seen at `acked`.
pub struct Swap {
    pub table: &'static str,
    pub generation: u64,
    pub requested: Instant,
    pub acked: Instant,
}

/// Checks every answered request against the swap timeline: table k may answer a request only if the request was
/// in flight while table k could have been current, that is between the SIGHUP that asked for it (for the
/// initial table: the beginning) and the acknowledgement of the next swap (for the last one: the end). A request
/// sent after a swap was acknowledged and answered before the next SIGHUP therefore must come from that swap's
/// table; a response from a table after its successor was acknowledged is stale.
pub fn timeline_violations(report: &LoadReport, initial: &str, swaps: &[Swap]) -> Vec<String> {
    let far_past = report.start;
    let far_future = Instant::now() + Duration::from_secs(3600);
    // (table, earliest, latest)
    let mut periods = vec![(
        initial,
        far_past,
        swaps.first().map(|s| s.acked).unwrap_or(far_future),
    )];
    for (i, s) in swaps.iter().enumerate() {
        let end = swaps.get(i + 1).map(|n| n.acked).unwrap_or(far_future);
        periods.push((s.table, s.requested, end));
    }
    let mut out = Vec::new();
    for s in &report.samples {
        let Some(table) = s.table() else { continue };
        let possible = periods
            .iter()
            .any(|(t, from, to)| *t == table && s.sent <= *to && s.done >= *from);
        if !possible {
            out.push(s.describe(report.start));
        }
    }
    out
}

/// The timeline check itself: in-flight requests may see either table, later ones only the new one.
#[test]
pub fn timeline_check_flags_stale_and_early_tables() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let sample = |sent: u64, done: u64, table: &str| Sample {
        thread: 0,
        intended: ms(sent),
        sent: ms(sent),
        done: ms(done),
        status: 200,
        tables: vec![table.to_string()],
        upstreams: vec![table.to_string()],
        error: None,
    };
    let swaps = [
        Swap {
            table: "B",
            generation: 2,
            requested: ms(100),
            acked: ms(110),
        },
        Swap {
            table: "A",
            generation: 3,
            requested: ms(200),
            acked: ms(210),
        },
    ];
    let report = LoadReport {
        spec: LoadSpec::new(addr(1)),
        start: t0,
        scheduled_for: Duration::from_millis(300),
        scheduled: 8,
        samples: vec![
            sample(10, 20, "A"),
            sample(105, 108, "A"), // in flight during the swap: either table
            sample(105, 108, "B"),
            sample(120, 130, "B"),
            sample(120, 130, "A"), // stale: B acknowledged before it was sent
            sample(50, 60, "B"),   // early: B not asked for yet
            sample(215, 220, "A"),
            sample(215, 220, "B"), // stale
        ],
    };
    assert_eq!(timeline_violations(&report, "A", &swaps).len(), 3);
}
