//! systemd readiness notification (sd_notify): one datagram to `$NOTIFY_SOCKET`.
//! Without the variable (not started by systemd) it does nothing.

use std::os::unix::net::UnixDatagram;

pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(socket) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr))
    } else {
        socket.send_to(state.as_bytes(), std::path::Path::new(&path))
    };
    if let Err(err) = sent {
        tracing::warn!(error = %err, "sd_notify failed");
    }
}

/// `RELOADING=1` wants the monotonic clock in microseconds.
pub fn reloading() {
    let now = monotonic_micros();
    notify(&format!("RELOADING=1\nMONOTONIC_USEC={now}"));
}

fn monotonic_micros() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|now| now.tv_sec() as u64 * 1_000_000 + now.tv_nsec() as u64 / 1_000)
        .unwrap_or(0)
}
