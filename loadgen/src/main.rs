//! ringmesh-loadgen: load that checks latency SLOs, and the upstream to point it
//! at. Everything lives in the library (`cli` parses and dispatches).

fn main() -> std::process::ExitCode {
    ringmesh_loadgen::cli::main()
}
