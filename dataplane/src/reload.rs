//! Signals on the main thread: SIGHUP recompiles the config file and publishes the
//! new table (the old one keeps serving if anything is wrong); SIGTERM/SIGINT return
//! so the caller can drain.

use crate::state::Shared;
use crate::table::Table;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::path::PathBuf;
use std::sync::Arc;

pub struct Reloader {
    path: PathBuf,
    shared: Arc<Shared>,
}

impl Reloader {
    pub fn new(path: PathBuf, shared: Arc<Shared>) -> Self {
        Reloader { path, shared }
    }

    /// Compile and publish; on any error, log every problem and keep the old table.
    pub fn reload(&self) -> Result<u64, String> {
        let generation = self.shared.generation() + 1;
        let snapshot = ringmesh_api::compile_file(&self.path, generation)
            .map_err(|errors| errors.to_string())?;
        let table =
            Table::build(&snapshot).map_err(|err| format!("{}: {err}", self.path.display()))?;
        self.shared.publish(table);
        Ok(generation)
    }
}

/// Block until SIGTERM or SIGINT, reloading on every SIGHUP meanwhile.
pub fn wait_for_signals(reloader: &Reloader) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGHUP, SIGTERM, SIGINT])?;
    for signal in signals.forever() {
        match signal {
            SIGHUP => match reloader.reload() {
                Ok(generation) => tracing::info!(generation, "configuration reloaded"),
                Err(errors) => {
                    for line in errors.lines() {
                        tracing::error!("reload rejected: {line}");
                    }
                    tracing::warn!(
                        generation = reloader.shared.generation(),
                        "keeping the current configuration"
                    );
                }
            },
            _ => break,
        }
    }
    Ok(())
}
