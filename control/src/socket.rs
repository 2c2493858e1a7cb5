//! The control socket on disk: created mode 0600, a stale file from a crashed run
//! replaced only when nothing answers on it, removed on shutdown only if it is
//! still ours; and the peer's credentials from SO_PEERCRED.

use nix::sys::socket::{getsockopt, sockopt};
use nix::sys::stat::{umask, Mode};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("{0}: another process is already listening on this socket")]
    InUse(PathBuf),
    #[error("{0}: exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error("{path}: {action}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_error<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> SocketError + 'a {
    move |source| SocketError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The listening control socket and the identity of the file it created.
#[derive(Debug)]
pub struct ControlSocket {
    pub listener: UnixListener,
    path: PathBuf,
    /// (device, inode) of the socket file, so shutdown never removes a file that a
    /// newer process put in its place.
    identity: (u64, u64),
}

impl ControlSocket {
    /// Creates the socket at `path`, readable and writable by our uid only.
    pub fn bind(path: &Path) -> Result<ControlSocket, SocketError> {
        remove_if_stale(path)?;
        // The mode is set at creation through the umask so that there is no moment
        // where another uid could connect; the chmod after is belt and braces.
        // Called before any other thread exists, so the process-wide umask change
        // cannot affect anyone else.
        let previous = umask(Mode::from_bits_truncate(0o177));
        let bound = UnixListener::bind(path);
        umask(previous);
        let listener = bound.map_err(io_error("bind", path))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(io_error("chmod 0600", path))?;
        let meta = std::fs::symlink_metadata(path).map_err(io_error("stat", path))?;
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
            identity: (meta.dev(), meta.ino()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the socket file if it is still the one we created.
    pub fn remove_file(&self) -> Result<(), SocketError> {
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == self.identity => {
                std::fs::remove_file(&self.path).map_err(io_error("remove", &self.path))
            }
            Ok(_) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(io_error("stat", &self.path)(err)),
        }
    }
}

/// A socket file left by a process that died is removed; a live one is an error.
fn remove_if_stale(path: &Path) -> Result<(), SocketError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(io_error("stat", path)(err)),
    };
    if !meta.file_type().is_socket() {
        return Err(SocketError::NotASocket(path.to_path_buf()));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(SocketError::InUse(path.to_path_buf())),
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "removing stale control socket");
            std::fs::remove_file(path).map_err(io_error("remove stale socket", path))
        }
        Err(err) => Err(io_error("probe existing socket", path)(err)),
    }
}

/// The connecting process, as the kernel recorded it at connect().
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
}

pub fn peer_credentials(stream: &UnixStream) -> io::Result<Peer> {
    let creds =
        getsockopt(stream.as_raw_fd(), sockopt::PeerCredentials).map_err(io::Error::from)?;
    Ok(Peer {
        uid: creds.uid(),
        gid: creds.gid(),
        pid: creds.pid(),
    })
}

/// Our effective uid, the only one allowed to connect.
pub fn our_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ringmesh-socket-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn mode_0600_stale_replaced_live_refused_removed_on_shutdown() {
        let dir = temp_dir("cycle");
        let path = dir.join("control.sock");
        let _ = std::fs::remove_file(&path);
        {
            // Bound then dropped without removing: a stale file.
            let _stale = UnixListener::bind(&path).unwrap();
        }
        let socket = ControlSocket::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(
            ControlSocket::bind(&path),
            Err(SocketError::InUse(_))
        ));

        let client = UnixStream::connect(&path).unwrap();
        let (server_side, _) = socket.listener.accept().unwrap();
        let creds = peer_credentials(&server_side).unwrap();
        assert_eq!(creds.uid, our_uid());
        assert_eq!(creds.pid, i32::try_from(std::process::id()).unwrap());
        drop(client);

        socket.remove_file().unwrap();
        assert!(!path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_regular_file_is_never_replaced() {
        let dir = temp_dir("regular");
        let path = dir.join("control.sock");
        std::fs::write(&path, "not a socket").unwrap();
        assert!(matches!(
            ControlSocket::bind(&path),
            Err(SocketError::NotASocket(_))
        ));
        assert!(path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
