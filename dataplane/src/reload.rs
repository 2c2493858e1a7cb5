//! Signals on the main thread: SIGHUP recompiles the config file (standalone mode)
//! and applies it through the same path as a control-process push; SIGTERM/SIGINT
//! return so the caller can drain.

use crate::apply::Applier;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::path::Path;

/// Compile the file with the next generation and apply it.
pub fn reload_file(path: &Path, applier: &Applier) -> Result<u64, String> {
    let generation = applier.shared().generation() + 1;
    let snapshot =
        ringmesh_api::compile_file(path, generation).map_err(|errors| errors.to_string())?;
    let took = applier.apply(&snapshot)?;
    tracing::info!(generation, took = ?took, "configuration applied");
    Ok(generation)
}

/// Block until SIGTERM or SIGINT. `on_hup` runs for every SIGHUP meanwhile.
pub fn wait_for_signals(mut on_hup: impl FnMut()) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGHUP, SIGTERM, SIGINT])?;
    for signal in signals.forever() {
        match signal {
            SIGHUP => on_hup(),
            _ => break,
        }
    }
    Ok(())
}
