//! ringmesh dataplane: a share-nothing, thread-per-core proxy on io_uring (monoio).
//!
//! `run` loads and compiles the configuration, binds every listener on the main
//! thread (so errors are reported before anything serves), starts one pinned worker
//! per core, the admin endpoint, and then waits for signals: SIGHUP reloads the
//! file, SIGTERM/SIGINT drain and exit.

// Tests may unwrap: a panic there is a failed test, not a crashed proxy.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod accept;
pub mod access_log;
pub mod admin;
pub mod apply;
pub mod authz;
pub mod balance;
pub mod bufpool;
pub mod control_client;
pub mod driver;
pub mod error;
pub mod forward;
pub mod health_check;
pub mod http;
pub mod listen;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod nudge;
pub mod policy;
pub mod reload;
pub mod resilience;
pub mod route;
pub mod settings;
pub mod state;
pub mod stream;
pub mod table;
pub mod tls;
pub mod worker;

use settings::Args;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Exit code for a configuration that cannot be served.
const EXIT_CONFIG: u8 = 1;
/// Exit code for a failure after the configuration was accepted.
const EXIT_RUNTIME: u8 = 2;

/// Sleep on a thread that is not a worker (control client, reload). Workers use
/// `monoio::time::sleep`; clippy forbids `std::thread::sleep` everywhere else.
#[allow(clippy::disallowed_methods)]
pub fn blocking_pause(pause: Duration) {
    std::thread::sleep(pause);
}

/// Where tables come from.
enum Source {
    File(std::path::PathBuf),
    Control {
        path: std::path::PathBuf,
        node: String,
        session: control_client::Session,
    },
}

/// The first table: compiled from the file, or the first buildable snapshot the
/// control process sends (the dataplane serves nothing before it has one).
fn initial(args: &Args) -> Result<(Source, ringmesh_api::Snapshot, table::Table), ExitCode> {
    if let Some(path) = &args.control {
        let node = args.node.clone().unwrap_or_else(hostname);
        let (mut session, mut snapshot) = control_client::first_snapshot(path, &node);
        loop {
            match table::Table::build(&snapshot) {
                Ok(table) => {
                    let source = Source::Control {
                        path: path.clone(),
                        node,
                        session,
                    };
                    return Ok((source, snapshot, table));
                }
                Err(err) => {
                    tracing::error!(generation = snapshot.generation, error = %err, "first snapshot rejected");
                    let next = session
                        .nack(snapshot.generation, err.to_string())
                        .and_then(|()| session.next_snapshot(Some(snapshot)));
                    match next {
                        Ok(next) => snapshot = next,
                        Err(_) => (session, snapshot) = control_client::first_snapshot(path, &node),
                    }
                }
            }
        }
    }
    let Some(path) = &args.config else {
        eprintln!("give --config FILE or --control PATH");
        return Err(ExitCode::from(EXIT_CONFIG));
    };
    let origin = path.display().to_string();
    let snapshot = match ringmesh_api::compile_file(path, 1) {
        Ok(snapshot) => snapshot,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "{origin}: configuration rejected ({} problem(s)); nothing was started",
                errors.errors.len()
            );
            return Err(ExitCode::from(EXIT_CONFIG));
        }
    };
    match table::Table::build(&snapshot) {
        Ok(table) => Ok((Source::File(path.clone()), snapshot, table)),
        Err(err) => {
            eprintln!("{origin}: {err}");
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "dataplane".to_string())
}

pub fn run(args: Args) -> ExitCode {
    let (source, snapshot, table) = match initial(&args) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let origin = match &source {
        Source::File(path) => path.display().to_string(),
        Source::Control { path, .. } => {
            format!("snapshot {} from {}", snapshot.generation, path.display())
        }
    };
    let workers = snapshot
        .runtime
        .workers
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1);
    let driver = match driver::probe(args.driver) {
        Ok(kind) => kind,
        Err(err) => {
            eprintln!("driver: {err}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };

    // Bind everything before starting anything, and report every failure at once.
    let mut problems = Vec::new();
    let mut bound = Vec::new();
    for (index, listener) in snapshot.listeners.iter().enumerate() {
        match listen::bind(&listener.name, listener.bind, workers) {
            Ok(sockets) => bound.push(sockets),
            Err(err) => problems.push(format!(
                "{origin}: listener[{index}].bind: {} ({})",
                listen::describe_bind_error(&err),
                listener.bind
            )),
        }
    }
    let admin_listener = match snapshot.runtime.admin {
        None => None,
        Some(addr) => match std::net::TcpListener::bind(addr) {
            Ok(listener) => Some(listener),
            Err(err) => {
                problems.push(format!(
                    "{origin}: runtime.admin: {} ({addr})",
                    listen::describe_bind_error(&err)
                ));
                None
            }
        },
    };
    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("{problem}");
        }
        return ExitCode::from(EXIT_CONFIG);
    }

    let access_log = match &args.access_log {
        None => None,
        Some(destination) => match access_log::Sink::start(destination) {
            Ok(sink) => Some(sink),
            Err(err) => {
                eprintln!("--access-log {destination:?}: {err}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
    };
    let (registry, scraper) = metrics::registry();
    let (nudges, mut nudge_ends) = nudge::Nudges::new(workers);
    let shared = Arc::new(state::Shared::new(table, workers, registry).with_nudges(nudges));
    let ready = Arc::new(AtomicBool::new(false));
    if let Some(listener) = admin_listener {
        let admin = admin::Admin {
            listener,
            shared: shared.clone(),
            ready: ready.clone(),
            scraper,
            driver: driver.describe(),
            access_log: access_log.clone(),
        };
        if let Err(err) = admin::spawn(admin) {
            eprintln!("admin: cannot start thread: {err}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    }

    let drain_timeout = Duration::from_millis(snapshot.runtime.drain_timeout_ms);
    let (started_tx, started_rx) = crossbeam_channel::unbounded();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut threads = Vec::with_capacity(workers);
    for index in 0..workers {
        let sockets = bound
            .iter_mut()
            .filter_map(|listener| {
                listener
                    .sockets
                    .pop()
                    .map(|socket| (listener.name.clone(), socket))
            })
            .collect();
        let plan = worker::WorkerPlan {
            index,
            driver,
            shared: shared.clone(),
            sockets,
            drain_timeout,
            access_log: access_log.clone(),
            nudge: nudge_ends.get_mut(index).and_then(Option::take),
            started: started_tx.clone(),
        };
        let core = (!cores.is_empty()).then(|| cores[index % cores.len()]);
        let spawned = std::thread::Builder::new()
            .name(format!("ringmesh-w{index}"))
            .spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                if let Err(err) = driver::block_on(driver, || worker::run(plan)) {
                    tracing::error!(worker = index, error = %err, "worker runtime failed to start");
                }
            });
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(err) => {
                eprintln!("cannot start worker thread: {err}");
                return ExitCode::from(EXIT_RUNTIME);
            }
        }
    }
    drop(started_tx);
    for _ in 0..workers {
        if started_rx.recv_timeout(Duration::from_secs(10)).is_err() {
            eprintln!("a worker failed to start; see the log above");
            shared.start_drain();
            return ExitCode::from(EXIT_RUNTIME);
        }
    }
    ready.store(true, Ordering::Release);
    for listener in &bound {
        tracing::info!(listener = %listener.name, addr = %listener.addr, "listening");
    }
    tracing::info!(
        workers,
        driver = driver.describe(),
        generation = shared.generation(),
        "ready"
    );

    tls::watch::spawn(shared.clone());
    let applier = apply::Applier::new(shared.clone(), shared.current().bound_listeners());
    notify::notify("READY=1");
    let waited = match source {
        Source::File(path) => {
            // This (main) thread builds the tables of SIGHUP reloads.
            apply::yield_cpu_to_workers();
            reload::wait_for_signals(|| {
                notify::reloading();
                if let Err(errors) = reload::reload_file(&path, &applier) {
                    for line in errors.lines() {
                        tracing::error!("reload rejected: {line}");
                    }
                    tracing::warn!(
                        generation = applier.shared().generation(),
                        "keeping the current configuration"
                    );
                }
                notify::notify("READY=1");
            })
        }
        Source::Control {
            path,
            node,
            mut session,
        } => {
            if let Err(err) = session.ack(snapshot.generation) {
                tracing::warn!(error = %err, "could not acknowledge the first snapshot");
            }
            if let Err(err) = control_client::follow(path, node, session, snapshot, applier) {
                eprintln!("cannot start the control client thread: {err}");
                return ExitCode::from(EXIT_RUNTIME);
            }
            reload::wait_for_signals(|| {
                tracing::info!(
                    "SIGHUP ignored: tables come from ringmesh-control (reload it instead)"
                );
            })
        }
    };
    if let Err(err) = waited {
        eprintln!("signal handling failed: {err}");
        return ExitCode::from(EXIT_RUNTIME);
    }
    notify::notify("STOPPING=1");
    shared.start_drain();
    tracing::info!(timeout = ?drain_timeout, "draining");
    for thread in threads {
        let _ = thread.join();
    }
    tracing::info!("drained, exiting");
    ExitCode::SUCCESS
}
