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
pub struct Args {
    /// TOML configuration file (standalone mode; reloaded on SIGHUP).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,

    /// io driver for the workers.
    #[arg(long, value_enum, default_value = "auto")]
    pub driver: DriverChoice,
}
