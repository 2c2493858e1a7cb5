//! ringmesh-control entry point: parse the command line, set up logging, run.

use clap::{Parser, Subcommand};
use ringmesh_control::{commands, server};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Where systemd's `RuntimeDirectory=ringmesh` puts the socket.
const DEFAULT_SOCKET: &str = "/run/ringmesh/control.sock";

/// ringmesh control process: compiles the mesh config and serves it to dataplanes.
///
/// Without a subcommand it serves, like `serve`.
#[derive(Debug, Parser)]
#[command(
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Config file to serve.
    #[arg(long, value_name = "FILE", required = true)]
    config: Option<PathBuf>,
    /// Control socket to create.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve snapshots to dataplanes (SIGHUP reloads, SIGTERM stops).
    Serve {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Validate a config file: exit 0 if valid, 1 with every problem if not.
    Check {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Show what the running control process serves and who acknowledged it.
    Status {
        #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Show what FILE would change in the running table (exit 0: nothing, 3: changes, 1: error).
    Diff {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Some(Command::Check { file }) => commands::check(&file),
        Some(Command::Status { socket }) => commands::status(&socket),
        Some(Command::Diff { file, socket }) => commands::diff_running(&file, &socket),
        Some(Command::Serve { config, socket }) => serve(config, socket),
        None => match cli.config {
            Some(config) => serve(config, cli.socket),
            // clap enforces --config without a subcommand; keep a clear message anyway.
            None => {
                eprintln!("ringmesh-control: --config FILE is required to serve");
                2
            }
        },
    };
    ExitCode::from(code)
}

fn serve(config: PathBuf, socket: PathBuf) -> u8 {
    init_logging();
    match server::serve(&config, &socket) {
        Ok(()) => commands::EXIT_OK,
        Err(server::ServeError::Config(errors)) => {
            eprintln!("{errors}");
            commands::EXIT_ERROR
        }
        Err(err) => {
            let err = anyhow::Error::new(err).context("ringmesh-control");
            tracing::error!("{err:#}");
            commands::EXIT_ERROR
        }
    }
}

/// Logs go to stderr (the journal under systemd); `RUST_LOG` overrides `info`.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
