//! Child processes of a scenario: build the binaries, pick free ports, spawn pinned
//! to a core with logs in a temp dir, wait until ready, terminate with SIGTERM.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};

/// The binaries a scenario runs, from the same target directory as this one.
#[derive(Debug, Clone)]
pub struct Bins {
    pub dataplane: PathBuf,
    pub control: PathBuf,
    pub loadgen: PathBuf,
}

/// Builds the dataplane and the loadgen in release mode (unless `skip`), and finds
/// them next to this executable.
pub fn build_binaries(skip: bool) -> anyhow::Result<Bins> {
    let exe = std::env::current_exe().context("locating the bench executable")?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent directory", exe.display()))?;
    if !skip {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        eprintln!("bench: cargo build --release -p ringmesh-dataplane -p ringmesh-control -p ringmesh-loadgen");
        let status = Command::new(&cargo)
            .args([
                "build",
                "--release",
                "-p",
                "ringmesh-dataplane",
                "-p",
                "ringmesh-control",
                "-p",
                "ringmesh-loadgen",
            ])
            .status()
            .with_context(|| format!("running {}", Path::new(&cargo).display()))?;
        if !status.success() {
            bail!("cargo build failed ({status})");
        }
    }
    let bins = Bins {
        dataplane: dir.join("ringmesh-dataplane"),
        control: dir.join("ringmesh-control"),
        loadgen: dir.join("ringmesh-loadgen"),
    };
    for b in [&bins.dataplane, &bins.control, &bins.loadgen] {
        if !b.is_file() {
            bail!(
                "{} not found (build it with cargo build --release)",
                b.display()
            );
        }
    }
    Ok(bins)
}

/// A port nobody listens on right now (the kernel's pick, released at once).
pub fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Whether `cmd` is an executable in PATH.
pub fn have(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(cmd).is_file()))
        || Path::new(cmd).is_file()
}

/// A directory under the system temp dir, removed on drop unless `keep` is called.
pub struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    pub fn new(prefix: &str) -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path, keep: false })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leave the directory in place (its logs explain a failure).
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A running child; killed on drop if still alive.
pub struct Proc {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

/// Starts `program args` with stdout and stderr in `dir/NAME.log`, pinned to `cpu`
/// with taskset when given (taskset execs the program, so the pid is the program's).
pub fn spawn(
    name: &str,
    cpu: Option<usize>,
    program: &Path,
    args: &[String],
    dir: &Path,
) -> anyhow::Result<Proc> {
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone()?;
    let mut cmd = match cpu {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(c.to_string()).arg(program);
            cmd
        }
        None => Command::new(program),
    };
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {name} ({})", program.display()))?;
    Ok(Proc {
        name: name.to_string(),
        child,
        log,
    })
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// SIGTERM, then wait up to `grace`; SIGKILL after. Returns the exit status and
    /// whether the process stopped within the grace period.
    pub fn terminate(&mut self, grace: Duration) -> (Option<ExitStatus>, bool) {
        if let Some(s) = self.exited() {
            return (Some(s), true);
        }
        // The shell's builtin `kill`: present even where procps is not installed.
        let _ = Command::new("sh")
            .args(["-c", "kill -TERM \"$0\"", &self.pid().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(s) = self.exited() {
                return (Some(s), true);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        (self.child.wait().ok(), false)
    }

    /// Fails with the log's tail if the process already exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(s) = self.exited() {
            bail!(
                "{} exited early ({s}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                self.log_tail(15)
            );
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until `addr` accepts TCP connections.
pub fn wait_tcp(addr: SocketAddr, timeout: Duration, p: &mut Proc) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        p.check_alive()?;
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} did not listen on {addr} within {timeout:?}", p.name);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `GET path` on `addr` answers 200.
pub fn wait_http_ok(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
    p: &mut Proc,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        p.check_alive()?;
        let last = match http_get(addr, path, Duration::from_millis(500)) {
            Ok((200, _)) => return Ok(()),
            Ok((status, _)) => format!("status {status}"),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > deadline {
            bail!(
                "{}: GET http://{addr}{path} not 200 within {timeout:?} (last: {last})",
                p.name
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A one-shot `GET` with `Connection: close`; returns status and body.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.take(16 * 1024 * 1024).read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("no HTTP status from {addr}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}
