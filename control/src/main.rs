//! ringmesh-control entry point: parse the command line, set up logging, run.

use clap::{Args, Parser, Subcommand};
use ringmesh_control::issuer::{CaFlags, SvidIssuer};
use ringmesh_control::{commands, server};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// A reload parses, validates and compiles a whole table: most of its time goes
/// to allocating and freeing small objects, which mimalloc does faster than glibc.
/// Nice value of the serving control process (see `serve`).
const CONTROL_NICE: i32 = 10;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    #[command(flatten)]
    ca: MeshCaArgs,
}

/// Serving as the node's mesh CA: every dataplane gets an X.509-SVID.
#[derive(Debug, Args)]
struct MeshCaArgs {
    /// Directory with ca.pem and ca.key (made by `ca init`); enables SVIDs.
    #[arg(long, value_name = "DIR")]
    ca_dir: Option<PathBuf>,
    /// SPIFFE trust domain of the CA (required with --ca-dir).
    #[arg(long, value_name = "TD")]
    trust_domain: Option<String>,
    /// SVID lifetime, such as 24h or 30m (at least 1m) [default: 24h].
    #[arg(long, value_name = "DURATION")]
    svid_ttl: Option<String>,
    /// TOML file mapping node names to SPIFFE IDs ([[identity]] node, spiffe_id).
    #[arg(long, value_name = "FILE")]
    identities: Option<PathBuf>,
    /// Renew SVIDs this long after issuing them instead of at half their lifetime (tests).
    #[arg(long, value_name = "DURATION", hide = true)]
    svid_rotate_after: Option<String>,
}

impl MeshCaArgs {
    fn flags(&self) -> CaFlags<'_> {
        CaFlags {
            ca_dir: self.ca_dir.as_deref(),
            trust_domain: self.trust_domain.as_deref(),
            svid_ttl: self.svid_ttl.as_deref(),
            identities: self.identities.as_deref(),
            svid_rotate_after: self.svid_rotate_after.as_deref(),
        }
    }
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Create a CA key (ECDSA P-256) and self-signed CA certificate in DIR.
    Init {
        /// Directory to write ca.pem and ca.key (mode 0600) into; created if missing.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// SPIFFE trust domain the CA signs for, such as mesh.example.
        #[arg(long, value_name = "TD")]
        trust_domain: String,
        /// Days the CA certificate is valid.
        #[arg(long, value_name = "N", default_value_t = 365)]
        days: u32,
        /// Replace an existing ca.pem / ca.key.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve snapshots to dataplanes (SIGHUP reloads, SIGTERM stops).
    Serve {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        #[command(flatten)]
        ca: MeshCaArgs,
    },
    /// Manage the node's mesh CA.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
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
        Some(Command::Serve { config, socket, ca }) => serve(config, socket, &ca),
        Some(Command::Ca {
            command:
                CaCommand::Init {
                    dir,
                    trust_domain,
                    days,
                    force,
                },
        }) => commands::ca_init(&dir, &trust_domain, days, force),
        None => match cli.config {
            Some(config) => serve(config, cli.socket, &cli.ca),
            // clap enforces --config without a subcommand; keep a clear message anyway.
            None => {
                eprintln!("ringmesh-control: --config FILE is required to serve");
                2
            }
        },
    };
    ExitCode::from(code)
}

fn serve(config: PathBuf, socket: PathBuf, ca: &MeshCaArgs) -> u8 {
    init_logging();
    // The CA is loaded before anything else so a bad flag or file never leaves a
    // socket behind; errors name the flag or the file.
    let issuer = match SvidIssuer::from_flags(&ca.flags()) {
        Ok(issuer) => issuer,
        Err(err) => {
            eprintln!("ringmesh-control: {err}");
            return commands::EXIT_ERROR;
        }
    };
    if let Some(issuer) = &issuer {
        tracing::info!(
            ca = %issuer.ca().cert_path().display(),
            trust_domain = issuer.ca().trust_domain(),
            ca_expires_unix = issuer.ca().not_after_unix(),
            svid_ttl = ?issuer.ttl(),
            mapped_nodes = issuer.identities().len(),
            "serving as the mesh CA"
        );
    }
    // Reloads compile whole tables on the node's cores: every thread of the
    // control process (all start after this and inherit it) gives way to the
    // dataplanes' workers. Moderately: SVIDs must still be issued on a busy node.
    if let Err(err) = rustix::process::setpriority_process(None, CONTROL_NICE) {
        tracing::debug!(error = %err, "cannot lower the control process's priority");
    }
    match server::serve(&config, &socket, issuer) {
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
