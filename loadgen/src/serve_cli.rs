//! `serve`'s flags, checked and turned into a [`ServeConfig`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::faults::{Delay, DelayDist, Faults, Stall};
use crate::serve::{self, ServeConfig};
use crate::slo::parse_duration;

#[derive(clap::Args)]
pub struct ServeArgs {
    #[arg(long)]
    listen: SocketAddr,
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Response body size in bytes.
    #[arg(long, default_value_t = 100)]
    body_size: usize,
    /// Vary the body size uniformly between --body-size and this.
    #[arg(long)]
    body_size_max: Option<usize>,
    /// Value of the `x-upstream` response header.
    #[arg(long, default_value = "upstream")]
    name: String,
    /// Delay some requests by this many milliseconds (the mean, with
    /// --delay-dist exponential).
    #[arg(long)]
    delay_ms: Option<f64>,
    /// Share of requests to delay, in percent (default 100 with --delay-ms).
    #[arg(long, requires = "delay_ms")]
    delay_percent: Option<f64>,
    #[arg(long, value_enum, default_value_t = DelayDist::Fixed, requires = "delay_ms")]
    delay_dist: DelayDist,
    /// Answer this share of requests with 503, in percent.
    #[arg(long, default_value_t = 0.0)]
    error_percent: f64,
    /// Start of a stall window, counted from when serve bound its port.
    #[arg(long, value_parser = parse_duration, requires_all = ["stall_for", "stall_delay"])]
    stall_at: Option<Duration>,
    /// Length of the stall window.
    #[arg(long, value_parser = parse_duration, requires = "stall_at")]
    stall_for: Option<Duration>,
    /// Delay of every request that arrives during the stall window.
    #[arg(long, value_parser = parse_duration, requires = "stall_at")]
    stall_delay: Option<Duration>,
    /// TCP echo server instead of HTTP.
    #[arg(long)]
    tcp: bool,
    /// Serve TLS with this certificate chain (PEM).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

fn percent(name: &str, v: f64) -> anyhow::Result<f64> {
    anyhow::ensure!(
        (0.0..=100.0).contains(&v),
        "{name} must be within 0..=100, not {v}"
    );
    Ok(v)
}

impl ServeArgs {
    pub fn config(&self) -> anyhow::Result<ServeConfig> {
        let delay = match self.delay_ms {
            Some(ms) => {
                anyhow::ensure!(
                    ms >= 0.0 && ms.is_finite(),
                    "--delay-ms must be a number >= 0"
                );
                Some(Delay {
                    dist: self.delay_dist,
                    delay: Duration::from_secs_f64(ms / 1000.0),
                    percent: percent("--delay-percent", self.delay_percent.unwrap_or(100.0))?,
                })
            }
            None => None,
        };
        let stall = match (self.stall_at, self.stall_for, self.stall_delay) {
            (Some(at), Some(length), Some(delay)) => Some(Stall { at, length, delay }),
            _ => None,
        };
        if let Some(max) = self.body_size_max {
            anyhow::ensure!(
                max >= self.body_size,
                "--body-size-max must be at least --body-size"
            );
        }
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::server_config(cert, key)?),
            _ => None,
        };
        Ok(ServeConfig {
            listen: self.listen,
            workers: self.workers,
            body_size: self.body_size,
            name: self.name.clone(),
            faults: Faults {
                delay,
                stall,
                error_percent: percent("--error-percent", self.error_percent)?,
                body_size_max: self.body_size_max,
            },
            tcp: self.tcp,
            tls,
        })
    }
}

pub fn serve_cmd(a: ServeArgs) -> anyhow::Result<i32> {
    serve::serve(&a.config()?)?;
    Ok(0)
}
