//! ringmesh-dataplane entry point: parse the command line, set up logging, run.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = ringmesh_dataplane::settings::Args::parse();
    ringmesh_dataplane::logging::init();
    ringmesh_dataplane::run(args)
}
