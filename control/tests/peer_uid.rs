//! A client running as another uid is refused: at connect() by the socket's mode
//! 0600, and, when it gets past that, by the SO_PEERCRED check with a `Reject`
//! frame and a log line naming its uid. Needs root to switch uid; skipped otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{config, Server, BIN};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const NOBODY: &str = "65534";

fn status_as_nobody(socket: &Path) -> Option<Output> {
    Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            BIN,
            "status",
            "--socket",
        ])
        .arg(socket)
        .output()
        .ok()
}

#[test]
fn other_uid_is_refused() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: switching to uid {NOBODY} needs root");
        return;
    }
    let server = Server::start("uid", &config(18080, 18081));
    let mode = std::fs::metadata(&server.socket)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    let Some(blocked) = status_as_nobody(&server.socket) else {
        eprintln!("skipped: setpriv is not installed");
        return;
    };
    if String::from_utf8_lossy(&blocked.stderr).starts_with("setpriv:") {
        eprintln!("skipped: setpriv cannot switch uid here: {blocked:?}");
        return;
    }
    // The socket's mode stops it at connect().
    assert_eq!(blocked.status.code(), Some(1), "{blocked:?}");
    let stderr = String::from_utf8_lossy(&blocked.stderr);
    assert!(stderr.contains("Permission denied"), "{stderr}");

    // Open the file mode up: now the uid check itself must refuse it.
    std::fs::set_permissions(&server.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let refused = status_as_nobody(&server.socket).unwrap();
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("refused") && stderr.contains("uid 65534"),
        "{stderr}"
    );
    let log = server.log_text();
    assert!(
        log.contains("refused control connection from uid 65534"),
        "{log}"
    );

    // Our own uid still gets through.
    server.wait_status(|s| s.starts_with("generation: 1"));
}
