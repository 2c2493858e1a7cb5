//! Command-line settings of the dataplane process.

use clap::{Parser, ValueEnum};
use std::path::PathBuf;

/// Which io driver the workers run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DriverChoice {
    /// io_uring when the kernel allows it, else epoll.
    Auto,
    /// io_uring, or fail.
    Uring,
    /// epoll (monoio's legacy driver).
    Epoll,
}

#[derive(Debug, Parser)]
#[command(
    name = "ringmesh-dataplane",
    version,
    about = "ringmesh thread-per-core io_uring proxy"
)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["config", "control"])))]
pub struct Args {
    /// TOML configuration file (standalone mode; reloaded on SIGHUP).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Unix socket of ringmesh-control: receive tables from it instead of a file.
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,

    /// Node name announced to the control process (default: the host name).
    #[arg(long, value_name = "NAME", requires = "control")]
    pub node: Option<String>,

    /// io driver for the workers.
    #[arg(long, value_enum, default_value = "auto")]
    pub driver: DriverChoice,

    /// Access log, one JSON object per request or TCP connection: `stdout`,
    /// `stderr` or a file appended to. Off when not given.
    #[arg(long, value_name = "DEST")]
    pub access_log: Option<crate::access_log::Destination>,
}
