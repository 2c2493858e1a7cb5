//! Support for the end-to-end tests: starting ringmesh binaries and real upstream servers on loopback.
//!
//! Everything is blocking std code on threads. Every socket has [`IO_TIMEOUT`], every wait has a deadline, so a
//! broken proxy makes a test fail with a message instead of hanging. Test bodies take the IO driver's name and are
//! instantiated for both drivers with [`both_drivers!`].

// Test support: a panic with a message is how a check fails.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod ca_control;
pub mod cert_probe;
pub mod client;
pub mod control;
pub mod fault_relay;
pub mod load;
pub mod proxy;
pub mod tcp;
pub mod test_ca;
pub mod testssl;
pub mod tls;
pub mod upstream;
pub mod web;
pub mod wire;
pub mod x509;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use client::{get, raw_exchange, Body, Client, Response};
pub use control::{Control, Status};
pub use fault_relay::{FaultRelay, Mode as FaultMode};
pub use load::{Load, LoadReport, LoadSpec};
pub use proxy::{parse_metric, Proxy};
pub use tcp::{Blackhole, TcpMode, TcpUpstream};
pub use upstream::HttpUpstream;

/// Sends `sig` to `child`, which the caller has checked is not reaped yet. The one `unsafe` of the workspace:
/// std can only SIGKILL a child, and the tests need SIGTERM, SIGINT and SIGHUP.
pub fn signal_child(child: &std::process::Child, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; the pid is our own child, which has not
    // been reaped (the caller holds its `Child` and has checked it did not exit), so it cannot name another process.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({sig}): {}", std::io::Error::last_os_error());
}

/// Read/write timeout of every test socket.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Instantiates `fn name(driver: &str)` test bodies as `name::uring` and `name::epoll` tests.
#[macro_export]
macro_rules! both_drivers {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn uring() {
                    super::$name("uring")
                }
                #[test]
                fn epoll() {
                    super::$name("epoll")
                }
            }
        )*
    };
}

/// Instantiates `fn name(driver: &str)` test bodies as `name::uring` only, for tests too long to run twice (the
/// IO paths they use are covered on both drivers elsewhere).
#[macro_export]
macro_rules! uring_only {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn uring() {
                    super::$name("uring")
                }
            }
        )*
    };
}

/// A loopback port that is free right now, taken from below the kernel's ephemeral range so that no outgoing
/// connection (proxy → upstream) can be handed the same port before the proxy binds it. Ports are never handed out
/// twice by one test process; the start is spread by pid so parallel test processes rarely probe the same ones.
pub fn free_port() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|p| p.parse::<usize>().ok())
        })
        .unwrap_or(32768);
    let (low, high) = if ephemeral_low > 12000 {
        (10000, ephemeral_low)
    } else {
        (ephemeral_low / 2, ephemeral_low)
    };
    let span = high - low;
    // Fixed for the process: with a new seed per call, two calls could land on the same port before the first
    // proxy bound it, and two dataplanes can both bind one port (SO_REUSEPORT) and share its connections.
    static SEED: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        std::process::id() as usize * 7919
            + SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos() as usize)
                .unwrap_or(0)
    });
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = (low + (seed + n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {low}..{high}");
}

/// `127.0.0.1:port`.
pub fn addr(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

/// A fresh, unique directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("ringmesh-tests-{}-{n}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// `len` deterministic pseudo-random bytes (xorshift64*), different for every `seed`.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Length and FNV-1a 64 of a byte stream, fed piece by piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checksum {
    pub len: u64,
    pub fnv: u64,
}

impl Checksum {
    pub fn new() -> Checksum {
        Checksum {
            len: 0,
            fnv: 0xcbf2_9ce4_8422_2325,
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.fnv ^= u64::from(b);
            self.fnv = self.fnv.wrapping_mul(0x0100_0000_01b3);
        }
        self.len += bytes.len() as u64;
    }

    pub fn of(bytes: &[u8]) -> Checksum {
        let mut c = Checksum::new();
        c.update(bytes);
        c
    }
}

impl Default for Checksum {
    fn default() -> Self {
        Checksum::new()
    }
}

/// Polls `cond` every 10 ms until it holds; panics with `what` after `within`.
pub fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        if Instant::now() > deadline {
            panic!("timed out after {within:?} waiting until {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
