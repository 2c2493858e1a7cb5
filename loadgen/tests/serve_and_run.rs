//! `serve` and `run` against each other on loopback, in-process.

use std::time::Duration;

use ringmesh_loadgen::faults::{Delay, DelayDist, Faults};
use ringmesh_loadgen::report::{self, SloSpec};
use ringmesh_loadgen::run::{self, Load, RunConfig};
use ringmesh_loadgen::schedule::{Arrival, Profile};
use ringmesh_loadgen::serve::{self, ServeConfig};
use ringmesh_loadgen::target::Target;

fn upstream(name: &str, body_size: usize, delay: Option<(Duration, f64)>) -> String {
    let cfg = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
        workers: 1,
        body_size,
        name: name.to_string(),
        faults: Faults {
            delay: delay.map(|(delay, percent)| Delay {
                dist: DelayDist::Fixed,
                delay,
                percent,
            }),
            ..Faults::default()
        },
        tcp: false,
        tls: None,
    };
    // The worker threads stay detached: they end with the test process.
    let (addr, _handles) = serve::start(&cfg).unwrap_or_else(|e| panic!("{e}"));
    format!("http://{addr}/")
}

fn config(url: &str, rate: Option<f64>, secs: f64) -> RunConfig {
    let duration = Duration::from_secs_f64(secs);
    RunConfig {
        target: Target::parse(url).unwrap_or_else(|e| panic!("{e}")),
        load: match rate {
            Some(r) => Load::Open {
                profile: Profile::constant(r, duration),
                arrival: Arrival::Constant,
                seed: 1,
            },
            None => Load::Closed { duration },
        },
        connections: 4,
        workers: 1,
        timeout: Duration::from_secs(2),
        max_lag: Duration::from_millis(1),
        size: 64,
        tls: None,
        progress: false,
    }
}

#[test]
fn closed_loop_gets_every_answer() {
    let url = upstream("alpha", 16 * 1024, None);
    let out = run::run(&config(&url, None, 0.5)).unwrap_or_else(|e| panic!("{e}"));
    let s = &out.stats;
    assert!(s.ok > 100, "only {} responses", s.ok);
    assert_eq!(s.errors(), 0);
    assert_eq!(s.upstreams.get("alpha"), Some(&s.ok));
}

#[test]
fn open_loop_keeps_the_schedule_and_reports() {
    let url = upstream("beta", 100, None);
    let cfg = config(&url, Some(400.0), 1.0);
    let out = run::run(&cfg).unwrap_or_else(|e| panic!("{e}"));
    // Every scheduled request was sent and answered: 400 of them.
    assert_eq!(out.stats.sent, 400);
    assert_eq!(out.stats.ok, 400);
    let slo = SloSpec::parse("error_rate<1%").unwrap_or_else(|e| panic!("{e}"));
    let r = report::build(&url, &cfg, &out, &[slo]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.schema_version, 2);
    assert!(r.slos[0].pass);
    let json = serde_json::to_value(&r).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json["requests"]["ok"], 400);
}

#[test]
fn delayed_requests_show_in_response_time() {
    let url = upstream("slow", 100, Some((Duration::from_millis(30), 100.0)));
    let out = run::run(&config(&url, Some(50.0), 0.5)).unwrap_or_else(|e| panic!("{e}"));
    let p50 = out.stats.response.value_at_quantile(0.5);
    assert!(
        p50 >= 30_000_000,
        "p50 {p50} ns should include the 30 ms delay"
    );
    assert_eq!(out.stats.ok, 25);
}
