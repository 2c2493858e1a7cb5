//! Serve mode: compile the config, open the control socket, accept clients on a
//! thread of their own each, and handle signals on the main thread (SIGHUP
//! reloads, SIGTERM/SIGINT remove the socket and exit).
//!
//! Order at startup matters to systemd and to clients: the config is compiled
//! before the socket exists (a bad config never leaves a socket behind), signals are
//! hooked before the socket exists (a quick SIGTERM still cleans up), and
//! `READY=1` is sent once the socket is listening.

use crate::issuer::SvidIssuer;
use crate::notify;
use crate::reload::{self, ReloadOutcome};
use crate::session::{self, refuse};
use crate::socket::{our_uid, ControlSocket, SocketError};
use crate::state::Shared;
use ringmesh_api::wire::WireError;
use ringmesh_api::{Compiler, ConfigErrors};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Connections served at once (each holds a thread or two); more are refused.
pub const MAX_CONNECTIONS: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Every problem in the config file; printed one per line.
    #[error("{0}")]
    Config(ConfigErrors),
    #[error("{path}: compiled snapshot cannot be sent: {source}")]
    Encode {
        path: PathBuf,
        #[source]
        source: WireError,
    },
    #[error(transparent)]
    Socket(#[from] SocketError),
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("starting the accept thread: {0}")]
    Thread(std::io::Error),
}

/// Runs the control process until SIGTERM or SIGINT; with `svid_issuer`, as the
/// node's mesh CA too.
pub fn serve(
    config: &Path,
    socket_path: &Path,
    svid_issuer: Option<SvidIssuer>,
) -> Result<(), ServeError> {
    // The compiler keeps the file's parsed sections, so a reload parses only
    // what changed since.
    let mut compiler = Compiler::new();
    let first = compiler
        .compile_file(config, 1)
        .map_err(ServeError::Config)?;
    let mut shared = Shared::new(config.to_path_buf(), first)
        .map_err(|source| ServeError::Encode {
            path: config.to_path_buf(),
            source,
        })?
        .with_compiler(compiler);
    if let Some(issuer) = svid_issuer {
        shared = shared.with_svid_issuer(issuer);
    }
    let shared = Arc::new(shared);
    let mut signals = Signals::new([SIGHUP, SIGTERM, SIGINT]).map_err(ServeError::Signals)?;
    let socket = ControlSocket::bind(socket_path)?;
    let listener = match socket.listener.try_clone() {
        Ok(listener) => listener,
        Err(err) => {
            let _ = socket.remove_file();
            return Err(ServeError::Thread(err));
        }
    };
    let accept = {
        let shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("accept".into())
            .spawn(move || accept_loop(&listener, &shared))
    };
    if let Err(err) = accept {
        let _ = socket.remove_file();
        return Err(ServeError::Thread(err));
    }
    tracing::info!(
        socket = %socket.path().display(),
        config = %config.display(),
        generation = shared.current().generation,
        uid = our_uid(),
        "control process serving"
    );
    report(notify::ready());
    report(notify::status(&status_line(&shared)));

    for signal in signals.forever() {
        match signal {
            SIGHUP => reload_now(&shared),
            _ => {
                tracing::info!(signal, "shutting down");
                report(notify::stopping());
                if let Err(err) = socket.remove_file() {
                    tracing::warn!(error = %err, "could not remove the control socket");
                }
                return Ok(());
            }
        }
    }
    // `forever` only ends if the signal iterator is closed, which nothing does.
    let _ = socket.remove_file();
    Ok(())
}

fn reload_now(shared: &Shared) {
    tracing::info!(config = %shared.config_path().display(), "SIGHUP: reloading");
    report(notify::reloading());
    let outcome = reload::reload(shared);
    reload::log_outcome(&outcome);
    report(notify::ready());
    let line = match &outcome {
        ReloadOutcome::Failed { .. } | ReloadOutcome::Unsendable { .. } => {
            format!("{} (last reload failed)", status_line(shared))
        }
        _ => status_line(shared),
    };
    report(notify::status(&line));
}

fn status_line(shared: &Shared) -> String {
    let status = shared.status();
    format!(
        "serving generation {} to {} dataplane(s)",
        status.generation,
        status.dataplanes.len()
    )
}

fn report(result: Result<bool, notify::NotifyError>) {
    if let Err(err) = result {
        tracing::warn!(error = %err, "sd_notify failed");
    }
}

/// Decrements the connection count when a connection thread ends.
struct ConnectionSlot(Arc<AtomicUsize>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn accept_loop(listener: &UnixListener, shared: &Arc<Shared>) {
    let uid = our_uid();
    let open = Arc::new(AtomicUsize::new(0));
    for incoming in listener.incoming() {
        let mut stream = match incoming {
            Ok(stream) => stream,
            Err(err) => {
                // Out of descriptors or memory: wait instead of spinning.
                tracing::warn!(error = %err, "accept failed");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if open.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(
                limit = MAX_CONNECTIONS,
                "too many control connections; refusing one"
            );
            refuse(
                &mut stream,
                format!("too many connections (limit {MAX_CONNECTIONS})"),
            );
            continue;
        }
        let slot = ConnectionSlot(Arc::clone(&open));
        let shared = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("control-conn".into())
            .spawn(move || {
                let _slot = slot;
                session::handle(stream, shared, uid);
            });
        if let Err(err) = spawned {
            tracing::warn!(error = %err, "cannot start a connection thread; connection dropped");
        }
    }
}
