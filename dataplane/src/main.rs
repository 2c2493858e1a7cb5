//! ringmesh-dataplane entry point: parse the command line, set up logging, run.

use clap::Parser;

/// Swaps build and free large tables; glibc malloc spends a fifth of that time
/// on its own bookkeeping.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = ringmesh_dataplane::settings::Args::parse();
    ringmesh_dataplane::logging::init();
    ringmesh_dataplane::run(args)
}
