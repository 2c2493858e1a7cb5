//! ringmesh-control: the node's control process. It compiles the TOML config into
//! snapshots, serves them to every dataplane over a Unix socket, reloads on SIGHUP,
//! and answers the `status` and `diff` CLI commands.
//!
//! [`notify`] is self-contained so the dataplane can reuse (or copy) it.

// Tests may unwrap: a panic there is a failed test, not a crashed process.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod client;
pub mod commands;
pub mod diff;
pub mod handshake;
pub mod notify;
pub mod reload;
pub mod server;
pub mod session;
pub mod socket;
pub mod state;
pub mod status;
