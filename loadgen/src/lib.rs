//! ringmesh-loadgen: an open-loop HTTP/1.1 load generator that checks latency SLOs,
//! and a fast keep-alive upstream (`serve`) to measure proxies against.
//!
//! The binary (`main.rs`) only parses arguments; everything else lives here so it
//! can be unit-tested.

pub mod client;
pub mod report;
pub mod rt;
pub mod run;
pub mod serve;
pub mod slo;
pub mod stats;
pub mod verdict;
pub mod wire;
