//! ringmesh-loadgen: an open-loop load generator (HTTP/1.1, TCP echo, both over
//! TLS) that checks latency SLOs and says when its own figures cannot be trusted,
//! and a fast keep-alive upstream (`serve`) to measure proxies against.
//!
//! The binary (`main.rs`) only calls [`cli::main`]; everything lives here so it
//! can be unit-tested.

pub mod ci;
pub mod cli;
pub mod client;
pub mod compare;
pub mod cpu;
pub mod dispatch;
pub mod faults;
pub mod progress;
pub mod report;
pub mod rt;
pub mod run;
pub mod schedule;
pub mod selftest;
pub mod serve;
pub mod serve_cli;
pub mod slo;
pub mod stats;
pub mod summary;
pub mod sweep;
pub mod target;
pub mod timer;
pub mod tls;
pub mod verdict;
pub mod wire;
