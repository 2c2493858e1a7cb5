//! Applying a new snapshot, the one path for SIGHUP reloads and control-process
//! pushes: build the runtime table off the request path, refuse what cannot be
//! served, publish, and wait until every worker has adopted it.

use crate::state::Shared;
use crate::table::Table;
use ringmesh_api::Snapshot;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Workers adopt a new table within one tick (10 ms) even when idle.
const ADOPTION_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Applier {
    shared: Arc<Shared>,
    /// Listeners as bound at start: (name, configured address, is HTTP).
    bound: Vec<(String, SocketAddr, bool)>,
}

impl Applier {
    pub fn new(shared: Arc<Shared>, bound: Vec<(String, SocketAddr, bool)>) -> Self {
        Applier { shared, bound }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Publish `snapshot` and return once every worker serves it. On error nothing
    /// changed: the current table keeps serving.
    pub fn apply(&self, snapshot: &Snapshot) -> Result<Duration, String> {
        let started = Instant::now();
        let table = Table::build(snapshot).map_err(|err| err.to_string())?;
        let changes = table.listener_changes(&self.bound);
        if !changes.is_empty() {
            return Err(format!(
                "listeners cannot change without a restart: {}",
                changes.join("; ")
            ));
        }
        let epoch = self.shared.publish(table);
        while self.shared.adopted_by_all() < epoch {
            if started.elapsed() > ADOPTION_TIMEOUT {
                return Err(format!(
                    "published, but not every worker adopted it within {ADOPTION_TIMEOUT:?}"
                ));
            }
            crate::blocking_pause(Duration::from_millis(1));
        }
        Ok(started.elapsed())
    }
}
