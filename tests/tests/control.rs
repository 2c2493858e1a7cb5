//! The dataplane under a real `ringmesh-control`: table swaps under open-loop load (never a failed request, never
//! a response from half of two tables), invalid configs that change nothing, a control process killed and
//! restarted, a dataplane that gets its snapshot before it reports ready, and a snapshot the dataplane must refuse.
//!
//! Two tables, A and B, with the same listener: `/` goes to upstream A resp. B (which answer `x-upstream: A|B`)
//! and the route sets `x-table: A|B` on the response, so every response says which table routed it and whether
//! the header edit came from the same table as the routing decision.
//!
//! The load tests take a process-wide lock ([`ringmesh_tests::load::exclusive`]) so that two of them never share
//! the machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpStream;
use std::time::{Duration, Instant};

use ringmesh_tests::load::exclusive;
use ringmesh_tests::{
    addr, both_drivers, free_port, uring_only, wait_until, Control, Load, LoadSpec, Proxy, Status,
};

/// Share of the scheduled requests that must be answered for a load to count as real.
const MIN_ANSWERED: f64 = 0.95;
/// How long a dataplane may take to acknowledge a pushed generation.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

#[path = "control/invalid.rs"]
mod invalid;
#[path = "control/mesh.rs"]
mod mesh;
#[path = "control/timeline.rs"]
mod timeline;

use invalid::invalid_configs;
use mesh::{generation_metric, sleep_until, start_dataplane, table_of_new_connection, Mesh};
use timeline::{timeline_violations, Swap};

/// 100 swaps between tables A and B, one every ~250 ms, under 2,000 req/s of open-loop load for at least 30 s:
/// no request fails, every response comes from exactly one table, both tables answer, each swap is acknowledged,
/// requests after an acknowledgement see the new table, and the final generation is acknowledged and served.
fn swaps_under_load(driver: &str) {
    let _serial = exclusive();
    let mesh = Mesh::new();
    let mut control = Control::start(&mesh.config("A"));
    let node = format!("swaps-{driver}");
    let dp = start_dataplane(driver, &control, &node, mesh.admin);
    assert_eq!(table_of_new_connection(mesh.listener()), "A");

    const SWAPS: u32 = 100;
    const EVERY: Duration = Duration::from_millis(250);
    let min_load = Duration::from_secs(30);
    // Scheduled for up to 60 s; stopped once the swaps are done and 30 s have passed.
    let load = Load::start(LoadSpec::new(mesh.listener()).duration(Duration::from_secs(60)));
    let mut swaps = Vec::new();
    let mut generation = control.status().generation;
    let mut slowest_ack = Duration::ZERO;
    for i in 0..SWAPS {
        sleep_until(load.start + EVERY * (i + 1));
        let table = if i % 2 == 0 { "B" } else { "A" };
        let requested = Instant::now();
        control.reload(&mesh.config(table));
        generation += 1;
        control.wait_acked(&node, generation, ACK_TIMEOUT);
        let acked = Instant::now();
        slowest_ack = slowest_ack.max(acked - requested);
        swaps.push(Swap {
            table,
            generation,
            requested,
            acked,
        });
    }
    sleep_until(load.start + min_load);
    let swaps_took = swaps.last().unwrap().acked - load.start;
    let report = load.finish();
    eprintln!(
        "swaps_under_load({driver}): {SWAPS} swaps acknowledged within {swaps_took:?}, slowest SIGHUP->ack \
         {slowest_ack:?}; load: {}",
        report.summary()
    );

    report.assert_clean(MIN_ANSWERED);
    let tables = report.by_table();
    assert!(
        tables.get("A").copied().unwrap_or(0) > 0 && tables.get("B").copied().unwrap_or(0) > 0,
        "both tables should have answered: {tables:?}"
    );
    let late = timeline_violations(&report, "A", &swaps);
    assert!(
        late.is_empty(),
        "{} responses from a table that was not current while they were in flight:\n{}",
        late.len(),
        late.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );

    // The end state: the final generation served and acknowledged, on both sides.
    let last = swaps.last().unwrap();
    assert_eq!(last.generation, 1 + u64::from(SWAPS));
    let status = control.wait_acked(&node, last.generation, ACK_TIMEOUT);
    assert_eq!(status.last_error, None, "{}", status.text);
    assert_eq!(generation_metric(&dp), last.generation);
    assert_eq!(table_of_new_connection(mesh.listener()), last.table);
    // Each swap travelled as a delta (protocol 1.3), not as the whole table.
    let log = dp.stderr();
    let by_delta = log.matches("delta=true").count();
    assert_eq!(
        (by_delta, log.matches("delta=false").count()),
        (SWAPS as usize, 0),
        "swaps applied from deltas, from complete snapshots"
    );
}

/// Twenty invalid configs, one after another, under load: each is rejected with an error naming the file and
/// the problem's TOML path, the generation never moves, no request fails, every response comes from table A.
/// Writing A back afterwards is an unchanged reload: the error clears, the generation stays.
fn invalid_configs_under_load(driver: &str) {
    let _serial = exclusive();
    let mesh = Mesh::new();
    let mut control = Control::start(&mesh.config("A"));
    let node = format!("invalid-{driver}");
    let dp = start_dataplane(driver, &control, &node, mesh.admin);
    let generation = control.status().generation;

    let invalid = invalid_configs(&mesh);
    assert_eq!(invalid.len(), 20);
    let load = Load::start(LoadSpec::new(mesh.listener()).duration(Duration::from_secs(30)));
    let every = Duration::from_millis(500);
    let mut previous: Option<String> = None;
    for (i, bad) in invalid.iter().enumerate() {
        sleep_until(load.start + every * (i as u32 + 1));
        control.reload(&bad.config);
        let status = control.wait_status(
            Duration::from_secs(10),
            &format!(
                "config {i} ({}) is reported with {:?} in the last error",
                bad.what, bad.expect
            ),
            |s| {
                s.last_error
                    .as_ref()
                    .is_some_and(|e| e.contains(&bad.expect) && Some(e) != previous.as_ref())
            },
        );
        let error = status.last_error.clone().unwrap();
        assert!(
            error.contains("mesh.toml"),
            "config {i} ({}): the error does not name the file: {error}",
            bad.what
        );
        if let Some(also) = bad.also {
            assert!(
                error.contains(also),
                "config {i} ({}): the last error does not report every problem ({also} is missing): {error}",
                bad.what
            );
        }
        // The log has it too (written just after the status is updated).
        for want in std::iter::once(bad.expect.as_str()).chain(bad.also) {
            wait_until(
                Duration::from_secs(5),
                &format!(
                    "config {i} ({}): {want} logged by the control process",
                    bad.what
                ),
                || control.stderr().contains(want),
            );
        }
        assert_eq!(
            status.generation, generation,
            "config {i} ({}) changed the generation:\n{}",
            bad.what, status.text
        );
        assert!(
            status.acked(&node, generation) && status.rows(&node)[0].last_nack.is_none(),
            "config {i} ({}): the dataplane row changed:\n{}",
            bad.what,
            status.text
        );
        assert!(
            control.running(),
            "config {i} ({}) stopped the control process",
            bad.what
        );
        previous = Some(error);
    }
    let report = load.finish();
    eprintln!(
        "invalid_configs_under_load({driver}): {} invalid configs rejected; load: {}",
        invalid.len(),
        report.summary()
    );
    report.assert_clean(MIN_ANSWERED);
    assert_eq!(
        report.by_table().keys().collect::<Vec<_>>(),
        vec!["A"],
        "only table A may answer"
    );
    assert_eq!(generation_metric(&dp), generation);
    assert_eq!(mesh.b.requests(), 0, "upstream B was used");

    // The good config again: the same table, so no new generation, and the error is gone.
    control.reload(&mesh.config("A"));
    let status = control.wait_status(
        Duration::from_secs(10),
        "the unchanged reload clears the last error",
        |s| s.last_error.is_none(),
    );
    assert_eq!(status.generation, generation, "{}", status.text);
    assert!(status.acked(&node, generation), "{}", status.text);
    assert_eq!(generation_metric(&dp), generation);
}

/// `kill -9` of the control process under load: traffic goes on for 5 s without a failure; a restarted control
/// process (same socket, same config, so its generations start again at 1) is reconnected to and acknowledged
/// within about 10 s; then a SIGHUP with table B still swaps, with no failed request throughout.
fn control_killed_and_restarted(driver: &str) {
    let _serial = exclusive();
    let mesh = Mesh::new();
    let mut control = Control::start(&mesh.config("A"));
    let node = format!("killed-{driver}");
    let dp = start_dataplane(driver, &control, &node, mesh.admin);
    // A few generations first, so the restarted control process numbers differently from the dataplane.
    for (table, generation) in [("B", 2), ("A", 3)] {
        control.reload(&mesh.config(table));
        control.wait_acked(&node, generation, ACK_TIMEOUT);
    }
    let before = generation_metric(&dp);
    assert_eq!(before, 3);

    let load = Load::start(LoadSpec::new(mesh.listener()).duration(Duration::from_secs(60)));
    sleep_until(load.start + Duration::from_secs(1));
    control.kill9();
    let killed = Instant::now();

    // Five seconds without a control process: the dataplane stays ready and keeps answering (that no request
    // failed is checked on the whole run at the end, with the failures listed).
    let answered_at_kill = load.completed();
    while killed.elapsed() < Duration::from_secs(5) {
        assert!(
            dp.is_ready(),
            "/ready not 200 {:?} after the control process was killed",
            killed.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let answered = load.completed() - answered_at_kill;
    let failed_without_control = load.failed();
    assert!(
        answered >= 5000,
        "only {answered} requests answered in the 5 s without a control process"
    );

    let restarted = Instant::now();
    let status = control.restart();
    let served = status.generation;
    // Backoff is capped at 5 s (with jitter), so the next attempt comes well within 10 s.
    let status = control.wait_acked(&node, served, Duration::from_secs(10));
    let reconnect_took = restarted.elapsed();
    assert_eq!(status.rows(&node).len(), 1, "{}", status.text);
    // The generation the dataplane reports should be the one the control process says it serves.
    let metric_after_reconnect = generation_metric(&dp);

    // A swap after the restart.
    let requested = Instant::now();
    control.reload(&mesh.config("B"));
    control.wait_acked(&node, served + 1, ACK_TIMEOUT);
    let swap = Swap {
        table: "B",
        generation: served + 1,
        requested,
        acked: Instant::now(),
    };
    sleep_until(swap.acked + Duration::from_secs(1));
    let report = load.finish();
    eprintln!(
        "control_killed_and_restarted({driver}): reconnected and acknowledged generation {served} {reconnect_took:?} \
         after the restart ({:?} after the kill); load: {}",
        restarted - killed + reconnect_took,
        report.summary()
    );
    assert_eq!(
        failed_without_control,
        0,
        "requests failed while the control process was down:\n{}",
        report.describe(&report.failures(), 20)
    );
    report.assert_clean(MIN_ANSWERED);
    let late = timeline_violations(&report, "A", std::slice::from_ref(&swap));
    assert!(
        late.is_empty(),
        "{} responses from the wrong table:\n{}",
        late.len(),
        late.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(
        report.by_table().get("B").copied().unwrap_or(0) > 0,
        "table B never answered: {}",
        report.summary()
    );
    assert_eq!(table_of_new_connection(mesh.listener()), "B");
    assert_eq!(generation_metric(&dp), swap.generation);
    assert_eq!(
        metric_after_reconnect, served,
        "after reconnecting to the restarted control process (serving generation {served}, the same table), \
         ringmesh_table_generation still says {metric_after_reconnect} (the old process's numbering)"
    );
}

/// A dataplane (re)started while the control process serves generation N is routed by generation N's table from
/// the first moment `/ready` says 200; a dataplane started before any control process exists is not ready (and
/// does not listen) until one starts, and then serves its table.
fn dataplane_restart_gets_snapshot_before_ready(driver: &str) {
    let _serial = exclusive();
    let mesh = Mesh::new();
    let mut control = Control::start(&mesh.config("A"));
    let node = format!("restart-{driver}");
    let first = start_dataplane(driver, &control, &node, mesh.admin);
    for (table, generation) in [("B", 2), ("A", 3), ("B", 4)] {
        control.reload(&mesh.config(table));
        control.wait_acked(&node, generation, ACK_TIMEOUT);
    }
    assert_eq!(table_of_new_connection(mesh.listener()), "B");
    drop(first);
    control.wait_status(
        Duration::from_secs(10),
        "the stopped dataplane's session is gone",
        |s| s.rows(&node).is_empty(),
    );
    // Two more generations while no dataplane is connected.
    for (table, generation) in [("A", 5), ("B", 6)] {
        control.reload(&mesh.config(table));
        control.wait_status(
            Duration::from_secs(10),
            &format!("generation {generation}"),
            |s| s.generation == generation,
        );
    }

    let spawned = Instant::now();
    let mut dp = Proxy::spawn_controlled(driver, &control.socket, &node, mesh.admin);
    let deadline = spawned + Duration::from_secs(10);
    while !dp.is_ready() {
        assert!(dp.running(), "the dataplane exited:\n{}", dp.stderr());
        assert!(
            Instant::now() < deadline,
            "not ready within 10 s:\n{}",
            dp.stderr()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // The first request after the first 200 from /ready.
    assert_eq!(
        table_of_new_connection(mesh.listener()),
        "B",
        "first request after /ready"
    );
    assert_eq!(generation_metric(&dp), 6);
    control.wait_acked(&node, 6, ACK_TIMEOUT);
    eprintln!(
        "dataplane_restart_gets_snapshot_before_ready({driver}): ready {:?} after spawn",
        spawned.elapsed()
    );
    drop(dp);
    drop(control);

    // A dataplane first, its control process later.
    let dir = ringmesh_tests::temp_dir("control");
    let socket = Control::socket_in(&dir);
    let later = Mesh::new();
    let early_node = format!("early-{driver}");
    let mut early = Proxy::spawn_controlled(driver, &socket, &early_node, later.admin);
    let waiting = Instant::now();
    while waiting.elapsed() < Duration::from_millis(1500) {
        assert!(
            early.running(),
            "the dataplane exited without a control process:\n{}",
            early.stderr()
        );
        assert!(!early.is_ready(), "ready without a control process");
        assert!(
            TcpStream::connect_timeout(&later.listener(), Duration::from_millis(200)).is_err(),
            "listening without a table"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let control = Control::spawn_in(&dir, &later.config("A"));
    let control_started = Instant::now();
    early.wait_ready();
    let ready_after = control_started.elapsed();
    assert_eq!(table_of_new_connection(later.listener()), "A");
    control.wait_acked(&early_node, 1, ACK_TIMEOUT);
    eprintln!(
        "dataplane_restart_gets_snapshot_before_ready({driver}): early dataplane ready {ready_after:?} after its \
         control process started"
    );
}

/// A snapshot the control process accepts but the dataplane cannot apply (the listener's bind address changed):
/// the dataplane Nacks it, keeps serving the old table on the old address under load, the status shows the reason
/// for that node; the next good snapshot is applied as usual.
fn rejected_snapshot_keeps_old_table(driver: &str) {
    let _serial = exclusive();
    let mesh = Mesh::new();
    let mut control = Control::start(&mesh.config("A"));
    let node = format!("nack-{driver}");
    let dp = start_dataplane(driver, &control, &node, mesh.admin);
    let load = Load::start(LoadSpec::new(mesh.listener()).duration(Duration::from_secs(30)));
    sleep_until(load.start + Duration::from_millis(500));

    let moved = free_port();
    control.reload(&mesh.config_on("B", moved));
    let status = control.wait_status(
        ACK_TIMEOUT,
        "the dataplane's Nack of generation 2 shows",
        |s: &Status| s.generation == 2 && s.rows(&node).iter().any(|d| d.last_nack.is_some()),
    );
    let row = status.rows(&node)[0].clone();
    let nack = row.last_nack.clone().unwrap();
    assert_eq!(row.acked, 1, "{}", status.text);
    assert!(
        nack.starts_with("generation 2: ") && nack.contains("listener"),
        "the Nack reason should name the generation and the listener change: {nack}"
    );
    assert!(
        nack.contains(&moved.to_string()) || nack.contains("edge"),
        "the Nack reason should say which listener or address: {nack}"
    );
    assert_eq!(generation_metric(&dp), 1);
    assert_eq!(table_of_new_connection(mesh.listener()), "A");
    assert!(
        TcpStream::connect_timeout(&addr(moved), Duration::from_millis(500)).is_err(),
        "the rejected snapshot's listener address is served"
    );
    // Some load on the old table after the Nack before the next swap.
    sleep_until(Instant::now() + Duration::from_millis(500));

    // A good snapshot after the rejected one is applied, and the Nack is cleared.
    let requested = Instant::now();
    control.reload(&mesh.config("B"));
    let status = control.wait_acked(&node, 3, ACK_TIMEOUT);
    let swap = Swap {
        table: "B",
        generation: 3,
        requested,
        acked: Instant::now(),
    };
    assert_eq!(status.rows(&node)[0].last_nack, None, "{}", status.text);
    sleep_until(swap.acked + Duration::from_millis(500));
    let report = load.finish();
    eprintln!(
        "rejected_snapshot_keeps_old_table({driver}): nack \"{nack}\"; load: {}",
        report.summary()
    );
    report.assert_clean(MIN_ANSWERED);
    let wrong = timeline_violations(&report, "A", std::slice::from_ref(&swap));
    assert!(
        wrong.is_empty(),
        "{} responses from the wrong table (the rejected snapshot must change nothing):\n{}",
        wrong.len(),
        wrong
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(generation_metric(&dp), swap.generation);
    assert_eq!(table_of_new_connection(mesh.listener()), "B");
}

both_drivers!(swaps_under_load);
uring_only!(
    invalid_configs_under_load,
    control_killed_and_restarted,
    dataplane_restart_gets_snapshot_before_ready,
    rejected_snapshot_keeps_old_table,
);
