//! Helpers shared by the integration tests: temporary directories, a running
//! `ringmesh-control serve` with its log and sd_notify socket, and a fake
//! dataplane written against `ringmesh_api::wire` only.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ringmesh_api::wire::{self, Message, ProtocolVersion, Role, WireError};
use ringmesh_api::Snapshot;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ringmesh-control");

/// A config with one HTTP listener; `port` and `endpoint` vary between versions.
pub fn config(port: u16, endpoint: u16) -> String {
    format!(
        r#"
[[listener]]
name = "edge"
bind = "127.0.0.1:{port}"
protocol = "http"

[[listener.route]]
name = "shop"
path_prefix = "/"
cluster = "blue"

[[cluster]]
name = "blue"
endpoints = ["127.0.0.1:{endpoint}"]
"#
    )
}

/// Three problems at once, each with its TOML path.
pub const BAD_CONFIG: &str = r#"
[[listener]]
name = "edge"
bind = "127.0.0.1:notaport"
protocol = "http"

[[listener.route]]
name = "shop"
path_prefix = "/"
cluster = "paymnts"

[[cluster]]
name = "payments"
endpoints = ["nowhere"]
"#;

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("ringmesh-it-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Other uids must be able to reach the socket inside (the uid test).
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The receiving end of sd_notify, as systemd would hold it.
pub struct Notifications {
    socket: UnixDatagram,
    pub path: PathBuf,
}

impl Notifications {
    pub fn bind(path: PathBuf) -> Notifications {
        let socket = UnixDatagram::bind(&path).unwrap();
        Notifications { socket, path }
    }

    /// Waits for a datagram containing `needle`; returns it.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no sd_notify {needle:?} within {timeout:?}; got {seen:?}"
            );
            self.socket.set_read_timeout(Some(left)).unwrap();
            let mut buf = [0u8; 1024];
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    let text = String::from_utf8_lossy(&buf[..n]).to_string();
                    if text.contains(needle) {
                        return text;
                    }
                    seen.push(text);
                }
                Err(err) => {
                    panic!("no sd_notify {needle:?} within {timeout:?} ({err}); got {seen:?}")
                }
            }
        }
    }
}

/// `ringmesh-control serve` in the background, logging to a file.
pub struct Server {
    pub child: Child,
    pub dir: TempDir,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub notify: Notifications,
}

impl Server {
    /// Starts serving `config_text` and waits for `READY=1`.
    pub fn start(tag: &str, config_text: &str) -> Server {
        Server::start_in(TempDir::new(tag), config_text, &[])
    }

    /// Like `start`, in `dir`, with `extra` arguments after `--socket`.
    pub fn start_in(dir: TempDir, config_text: &str, extra: &[&std::ffi::OsStr]) -> Server {
        let config = dir.write("mesh.toml", config_text);
        let socket = dir.path("control.sock");
        let log = dir.path("control.log");
        let notify = Notifications::bind(dir.path("notify.sock"));
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&config)
            .arg("--socket")
            .arg(&socket)
            .args(extra)
            .env("RUST_LOG", "info")
            .env("NOTIFY_SOCKET", &notify.path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let server = Server {
            child,
            dir,
            config,
            socket,
            log,
            notify,
        };
        server.notify.wait_for("READY=1", Duration::from_secs(20));
        assert!(server.socket.exists(), "READY=1 before the socket exists");
        server
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// Rewrites the config, sends SIGHUP and waits until the reload is done.
    pub fn reload_with(&self, text: &str) {
        std::fs::write(&self.config, text).unwrap();
        self.signal(Signal::SIGHUP);
        let reloading = self.notify.wait_for("RELOADING=1", Duration::from_secs(10));
        assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
        self.notify.wait_for("READY=1", Duration::from_secs(10));
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(mut self) -> ExitStatus {
        self.signal(Signal::SIGTERM);
        wait_exit(&mut self.child, Duration::from_secs(10))
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        let mut command = Command::new(BIN);
        command.args(args).arg("--socket").arg(&self.socket);
        command.output().unwrap()
    }

    /// Polls `status` until its output satisfies `check`.
    pub fn wait_status(&self, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.cli(&["status"]);
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            if out.status.success() && check(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "status never matched; last:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "process did not exit within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A dataplane as the lead's client behaves on the wire: deltas (protocol 1.3)
/// are applied to the snapshot received last.
pub struct FakeDataplane {
    pub stream: UnixStream,
    received: Option<Snapshot>,
    /// How many snapshots so far came as deltas.
    pub deltas: usize,
}

impl FakeDataplane {
    /// Connects, says hello with `protocol`, and returns the first answer.
    pub fn hello(
        socket: &Path,
        protocol: ProtocolVersion,
        role: Role,
        node: &str,
    ) -> (UnixStream, Message) {
        let mut stream = UnixStream::connect(socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        wire::write_message(
            &mut stream,
            &Message::Hello {
                protocol,
                role,
                node: node.to_string(),
            },
        )
        .unwrap();
        let answer = wire::read_message(&mut stream).unwrap();
        (stream, answer)
    }

    /// Handshake as a dataplane; returns the session and the first snapshot.
    pub fn connect(socket: &Path, node: &str) -> (FakeDataplane, Snapshot) {
        let (stream, answer) = Self::hello(socket, ProtocolVersion::CURRENT, Role::Dataplane, node);
        assert_eq!(
            answer,
            Message::HelloAck {
                protocol: ProtocolVersion::CURRENT
            }
        );
        let mut dataplane = FakeDataplane {
            stream,
            received: None,
            deltas: 0,
        };
        let first = dataplane
            .next_snapshot(Duration::from_secs(10))
            .expect("a snapshot right after hello_ack");
        (dataplane, first)
    }

    /// The next message of any kind, or `None` if none arrives within `timeout`.
    pub fn next_message(&mut self, timeout: Duration) -> Option<Message> {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        match wire::read_message(&mut self.stream) {
            Ok(message) => Some(message),
            Err(WireError::Io(err))
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(err) => panic!("dataplane session broke: {err}"),
        }
    }

    /// Handshake as a dataplane speaking `protocol`; returns the session and
    /// the first snapshot.
    pub fn connect_as(
        socket: &Path,
        node: &str,
        protocol: ProtocolVersion,
    ) -> (FakeDataplane, Snapshot) {
        let (stream, answer) = Self::hello(socket, protocol, Role::Dataplane, node);
        assert!(
            matches!(answer, Message::HelloAck { .. }),
            "expected hello_ack, got {answer:?}"
        );
        let mut dataplane = FakeDataplane {
            stream,
            received: None,
            deltas: 0,
        };
        let first = dataplane
            .next_snapshot(Duration::from_secs(10))
            .expect("a snapshot right after hello_ack");
        (dataplane, first)
    }

    /// The next snapshot, or `None` if none arrives within `timeout`.
    pub fn next_snapshot(&mut self, timeout: Duration) -> Option<Snapshot> {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        match wire::read_message(&mut self.stream) {
            Ok(Message::Snapshot { snapshot }) => {
                self.received = Some((*snapshot).clone());
                Some(*snapshot)
            }
            Ok(Message::SnapshotDelta { delta }) => {
                let mut snapshot = self.received.take().expect("a delta before any snapshot");
                delta.apply(&mut snapshot).expect("the delta applies");
                self.deltas += 1;
                self.received = Some(snapshot.clone());
                Some(snapshot)
            }
            Ok(other) => panic!("expected a snapshot, got {other:?}"),
            Err(WireError::Io(err))
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(err) => panic!("dataplane session broke: {err}"),
        }
    }

    pub fn ack(&mut self, generation: u64) {
        wire::write_message(&mut self.stream, &Message::Ack { generation }).unwrap();
    }

    pub fn nack(&mut self, generation: u64, reason: &str) {
        wire::write_message(
            &mut self.stream,
            &Message::Nack {
                generation,
                reason: reason.to_string(),
            },
        )
        .unwrap();
    }
}
