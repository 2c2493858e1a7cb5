//! sd_notify without libsystemd: one datagram per state change to `$NOTIFY_SOCKET`.
//!
//! systemd sets `NOTIFY_SOCKET` for `Type=notify` services. Its value is a path
//! (`/run/systemd/notify`) or, when it starts with `@`, a name in the abstract
//! socket namespace. Outside systemd the variable is absent and every call here is a
//! no-op that returns `Ok(false)`, so callers never need to check first.
//!
//! Self-contained on purpose (std and `nix` for the monotonic clock only) so the
//! dataplane can use or copy it.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET_ENV: &str = "NOTIFY_SOCKET";

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("NOTIFY_SOCKET {0:?} is neither an absolute path nor an abstract name (@...)")]
    BadAddress(OsString),
    #[error("sd_notify to {socket:?}: {source}")]
    Send {
        socket: OsString,
        #[source]
        source: io::Error,
    },
    #[error("CLOCK_MONOTONIC: {0}")]
    Clock(nix::Error),
}

/// Sends `state` (newline-separated `KEY=VALUE` assignments) to the service
/// manager. `Ok(false)` when not running under systemd (no `NOTIFY_SOCKET`).
pub fn notify(state: &str) -> Result<bool, NotifyError> {
    match std::env::var_os(NOTIFY_SOCKET_ENV) {
        Some(socket) if !socket.is_empty() => notify_to(&socket, state).map(|()| true),
        _ => Ok(false),
    }
}

/// Sends `state` to the notification socket named `socket` (path or `@abstract`).
pub fn notify_to(socket: &OsStr, state: &str) -> Result<(), NotifyError> {
    let addr = parse_address(socket)?;
    let send_error = |source| NotifyError::Send {
        socket: socket.to_owned(),
        source,
    };
    let sender = UnixDatagram::unbound().map_err(send_error)?;
    let sent = sender
        .send_to_addr(state.as_bytes(), &addr)
        .map_err(send_error)?;
    if sent != state.len() {
        return Err(send_error(io::Error::new(
            io::ErrorKind::WriteZero,
            "datagram truncated",
        )));
    }
    Ok(())
}

/// `READY=1`: startup finished, or a reload finished.
pub fn ready() -> Result<bool, NotifyError> {
    notify("READY=1")
}

/// `RELOADING=1` with the `MONOTONIC_USEC` stamp systemd 253+ requires for
/// `Type=notify-reload` (older versions ignore it). Send [`ready`] when done.
pub fn reloading() -> Result<bool, NotifyError> {
    notify(&reloading_state(monotonic_usec()?))
}

/// `STOPPING=1`: shutdown has begun.
pub fn stopping() -> Result<bool, NotifyError> {
    notify("STOPPING=1")
}

/// `STATUS=...`: one line shown by `systemctl status`.
pub fn status(text: &str) -> Result<bool, NotifyError> {
    // A newline would start a new assignment; keep the status on one line.
    notify(&format!("STATUS={}", text.replace('\n', " ")))
}

/// The reload message for a given monotonic timestamp.
pub fn reloading_state(monotonic_usec: u64) -> String {
    format!("RELOADING=1\nMONOTONIC_USEC={monotonic_usec}")
}

/// `CLOCK_MONOTONIC` in microseconds, the clock systemd compares reload stamps with.
pub fn monotonic_usec() -> Result<u64, NotifyError> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_err(NotifyError::Clock)?;
    let secs = u64::try_from(now.tv_sec()).unwrap_or(0);
    let micros = u64::try_from(now.tv_nsec() / 1_000).unwrap_or(0);
    Ok(secs.saturating_mul(1_000_000).saturating_add(micros))
}

fn parse_address(socket: &OsStr) -> Result<SocketAddr, NotifyError> {
    let bytes = socket.as_bytes();
    let bad = || NotifyError::BadAddress(socket.to_owned());
    match bytes.first() {
        Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]).map_err(|_| bad()),
        Some(b'/') => SocketAddr::from_pathname(socket).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn receive(listener: &UnixDatagram) -> String {
        listener
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn sends_one_datagram_to_a_path() {
        let dir = std::env::temp_dir().join(format!("ringmesh-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        notify_to(path.as_os_str(), "READY=1").unwrap();
        assert_eq!(receive(&listener), "READY=1");
        notify_to(path.as_os_str(), &reloading_state(42)).unwrap();
        assert_eq!(receive(&listener), "RELOADING=1\nMONOTONIC_USEC=42");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sends_to_an_abstract_name() {
        let name = format!("ringmesh-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        assert_eq!(receive(&listener), "STOPPING=1");
    }

    #[test]
    fn refuses_relative_addresses_and_reports_missing_listeners() {
        assert!(matches!(
            notify_to(OsStr::new("relative/notify"), "READY=1"),
            Err(NotifyError::BadAddress(_))
        ));
        assert!(matches!(
            notify_to(OsStr::new("/nonexistent/ringmesh/notify"), "READY=1"),
            Err(NotifyError::Send { .. })
        ));
    }

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = monotonic_usec().unwrap();
        let b = monotonic_usec().unwrap();
        assert!(a > 0 && b >= a);
    }
}
