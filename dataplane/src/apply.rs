//! Applying a new snapshot, the one path for SIGHUP reloads and control-process
//! pushes: build the runtime table off the request path, refuse what cannot be
//! served, publish, and wait until every worker has adopted it.

use crate::state::Shared;
use crate::table::Table;
use ringmesh_api::Snapshot;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Nice value of the threads that decode and build tables (the control client,
/// the SIGHUP reload): a swap's tens of milliseconds of CPU give way to the
/// workers on the same cores. Moderate on purpose: under full load the swap
/// still gets about a tenth of a core (SCHED_IDLE would starve it, and it did
/// not measurably help the probe's p99 on this machine; bench/RESULTS-swap.md).
const BUILD_NICE: i32 = 10;

/// Lower the calling thread's scheduling priority to [`BUILD_NICE`] (Linux
/// applies `setpriority` to one thread when given its id).
pub fn yield_cpu_to_workers() {
    let thread = rustix::thread::gettid();
    if let Err(err) = rustix::process::setpriority_process(Some(thread), BUILD_NICE) {
        tracing::debug!(error = %err, "cannot lower the table builder's priority");
    }
}

/// Workers adopt a new table as soon as they are nudged, within one tick (10 ms)
/// at worst.
const ADOPTION_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Applier {
    shared: Arc<Shared>,
    /// Listeners as bound at start: (name, configured address, is HTTP).
    bound: Vec<(String, SocketAddr, bool)>,
    /// Replaced tables, held so that the last reference (and the cost of freeing
    /// a large table) is usually dropped here rather than on a worker thread.
    /// Only the one applying thread touches it.
    retired: RefCell<Vec<Arc<Table>>>,
}

impl Applier {
    pub fn new(shared: Arc<Shared>, bound: Vec<(String, SocketAddr, bool)>) -> Self {
        Applier {
            shared,
            bound,
            retired: RefCell::new(Vec::new()),
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Publish `snapshot` and return once every worker serves it. On error nothing
    /// changed: the current table keeps serving.
    pub fn apply(&self, snapshot: &Snapshot) -> Result<Duration, String> {
        let started = Instant::now();
        // Tables no worker or request holds any more are freed now, off the workers.
        self.retired
            .borrow_mut()
            .retain(|table| Arc::strong_count(table) > 1);
        let previous = self.shared.current();
        let table =
            Table::build_reusing(snapshot, Some(&previous)).map_err(|err| err.to_string())?;
        let built = started.elapsed();
        let changes = table.listener_changes(&self.bound);
        if !changes.is_empty() {
            return Err(format!(
                "listeners cannot change without a restart: {}",
                changes.join("; ")
            ));
        }
        let epoch = self.shared.publish(table);
        self.retired.borrow_mut().push(previous);
        while self.shared.adopted_by_all() < epoch {
            if started.elapsed() > ADOPTION_TIMEOUT {
                return Err(format!(
                    "published, but not every worker adopted it within {ADOPTION_TIMEOUT:?}"
                ));
            }
            crate::blocking_pause(Duration::from_micros(100));
        }
        tracing::debug!(
            build_ms = built.as_secs_f64() * 1e3,
            adopt_ms = (started.elapsed() - built).as_secs_f64() * 1e3,
            "table applied"
        );
        Ok(started.elapsed())
    }
}
