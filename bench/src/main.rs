//! ringmesh-bench: `demo` (the README's first command) and the proxy benchmarks
//! (`http`, `l4`, `tls`) that compare ringmesh with a direct connection, nginx and
//! HAProxy.

mod connload;
mod cpu;
mod demo;
mod fixed;
mod generators;
mod peers;
mod procs;
mod report;
mod scenario;
mod svg;
mod swap;
mod tls;
mod wrk;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `--tls`: termination with keep-alive, then a new connection per request.
const TLS_LAYERS: [peers::Layer; 3] = [
    peers::Layer::Tls,
    peers::Layer::TlsNew,
    peers::Layer::TlsResumed,
];

#[derive(Parser)]
#[command(name = "ringmesh-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start two upstreams and the dataplane, drive load with SLOs, print the verdict.
    Demo(demo::DemoArgs),
    /// HTTP/1.1 proxy benchmark: direct vs ringmesh vs nginx vs HAProxy.
    Http(scenario::BenchArgs),
    /// L4 benchmark: TCP relay of the same HTTP/1.1 load.
    L4(scenario::BenchArgs),
    /// TLS termination benchmark: keep-alive, then full and resumed handshakes.
    Tls(scenario::BenchArgs),
    /// One new connection per request, closed loop (run by the TLS scenarios).
    #[command(hide = true)]
    ConnLoad(connload::ConnLoadArgs),
    /// Table-swap latency (SIGHUP → last acknowledgement) with a large table.
    Swap(swap::SwapArgs),
    /// ringmesh-loadgen against wrk and oha on the same target: cost per request,
    /// and open-loop percentiles against oha's wrk2-style latency correction.
    Generators(generators::GeneratorArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match &cli.cmd {
        Cmd::Demo(a) => demo::run(a),
        Cmd::Http(a) => {
            let mut layers = vec![peers::Layer::Http];
            if a.l4 {
                layers.push(peers::Layer::L4);
            }
            if a.tls {
                layers.extend(TLS_LAYERS);
            }
            scenario::run(&layers, a)
        }
        Cmd::L4(a) => scenario::run(&[peers::Layer::L4], a),
        Cmd::Tls(a) => scenario::run(&TLS_LAYERS, a),
        Cmd::ConnLoad(a) => connload::main(a),
        Cmd::Swap(a) => swap::run(a),
        Cmd::Generators(a) => generators::run(a),
    };
    match res {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("ringmesh-bench: {e:#}");
            ExitCode::from(demo::EXIT_SETUP as u8)
        }
    }
}
