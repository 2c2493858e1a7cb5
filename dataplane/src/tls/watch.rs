//! Rotation of a file-based mesh identity (`[mesh] cert/key/bundle`): a thread
//! checks the files' modification times every few seconds and installs them
//! again when they changed, so operators with their own PKI can replace the
//! files in place. A SIGHUP reload re-reads them too (through the table).

use super::setup;
use crate::state::Shared;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often the files are looked at.
const EVERY: Duration = Duration::from_secs(2);

/// Start the watcher thread (it ends with the process, or when draining).
pub fn spawn(shared: Arc<Shared>) {
    let spawned = std::thread::Builder::new()
        .name("ringmesh-certs".into())
        .spawn(move || watch(&shared));
    if let Err(err) = spawned {
        tracing::warn!(error = %err, "cannot start the certificate watcher; SIGHUP still reloads");
    }
}

fn watch(shared: &Shared) {
    let mut seen: Option<SystemTime> = shared
        .current()
        .mesh_identity
        .as_ref()
        .and_then(|loaded| loaded.modified);
    while !shared.draining() {
        crate::blocking_pause(EVERY);
        let table = shared.current();
        let Some(spec) = &table.mesh else {
            continue;
        };
        let (Some(cert), Some(key), Some(bundle)) = (&spec.cert, &spec.key, &spec.bundle) else {
            continue;
        };
        let now = setup::modified(&[cert, key, bundle]);
        if now.is_none() || now == seen {
            continue;
        }
        seen = now;
        match setup::load_mesh(spec) {
            Some(Ok(loaded)) => {
                shared.install_loaded(&loaded);
                tracing::info!(cert = %cert, expiry = loaded.expiry, "mesh identity files changed: installed");
            }
            Some(Err(err)) => {
                tracing::warn!(error = %err, "mesh identity files changed but cannot be used; keeping the current identity");
            }
            None => {}
        }
    }
}
