//! ringmesh-control: the node's control process. It compiles the TOML config into
//! snapshots, serves them to every dataplane over a Unix socket, reloads on SIGHUP,
//! and answers the `status` and `diff` CLI commands. As the node's mesh CA
//! ([`ca`], [`issuer`]) it gives every dataplane its X.509-SVID and renews it.
//!
//! [`notify`] is self-contained so the dataplane can reuse (or copy) it.

// Tests may unwrap: a panic there is a failed test, not a crashed process.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod ca;
pub mod client;
pub mod commands;
pub mod diff;
pub mod handshake;
pub mod identities;
pub mod issuer;
pub mod notify;
pub mod reload;
pub mod server;
pub mod session;
pub mod socket;
pub mod spiffe;
pub mod state;
pub mod status;
