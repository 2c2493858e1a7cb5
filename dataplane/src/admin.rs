//! The admin HTTP endpoint (`/ready`, `/live`, `/metrics`) on its own plain thread,
//! off the workers: a scrape never delays a request.

use crate::metrics::Scraper;
use crate::state::Shared;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Admin {
    pub listener: TcpListener,
    pub shared: Arc<Shared>,
    pub ready: Arc<AtomicBool>,
    pub scraper: Scraper,
    pub driver: &'static str,
    pub access_log: Option<Arc<crate::access_log::Sink>>,
}

pub fn spawn(admin: Admin) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("ringmesh-admin".into())
        .spawn(move || serve(admin))
}

fn serve(mut admin: Admin) {
    loop {
        let Ok((stream, _)) = admin.listener.accept() else {
            continue;
        };
        if let Err(err) = answer(&mut admin, stream) {
            tracing::debug!(error = %err, "admin request failed");
        }
    }
}

fn answer(admin: &mut Admin, mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut head = [0u8; 2048];
    let mut filled = 0;
    while filled < head.len() {
        let n = stream.read(&mut head[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
        if head[..filled].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let request = String::from_utf8_lossy(&head[..filled]);
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match path {
        "/live" => (200, "live\n".to_string()),
        "/ready" => {
            if admin.ready.load(Ordering::Acquire) && !admin.shared.draining() {
                (200, "ready\n".to_string())
            } else if admin.shared.draining() {
                (503, "draining\n".to_string())
            } else {
                (503, "starting\n".to_string())
            }
        }
        "/metrics" => {
            let generation = admin.shared.generation() as i64;
            let published = admin.shared.epoch() as i64;
            let adopted = admin.shared.adopted_by_all() as i64;
            let draining = i64::from(admin.shared.draining());
            let extra = [
                (
                    "ringmesh_table_generation",
                    "Generation of the published routing table.",
                    generation,
                ),
                (
                    "ringmesh_table_epoch",
                    "Local publish counter of routing tables.",
                    published,
                ),
                (
                    "ringmesh_table_epoch_adopted",
                    "Publish counter every worker has adopted.",
                    adopted,
                ),
                (
                    "ringmesh_draining",
                    "1 while draining for shutdown.",
                    draining,
                ),
            ];
            let mut text = admin.scraper.render(&extra);
            crate::metrics::render_cert_expiry(&mut text, &admin.shared.cert_expiries());
            if let Some(sink) = &admin.access_log {
                let dropped = sink.dropped.load(Ordering::Relaxed);
                let name = "ringmesh_access_log_dropped_total";
                text.push_str(&format!(
                    "# HELP {name} Access log lines dropped because the writer fell behind.\n\
                     # TYPE {name} counter\n{name} {dropped}\n"
                ));
            }
            (200, text)
        }
        _ => (
            404,
            format!(
                "unknown admin path; try /ready, /live, /metrics (driver: {})\n",
                admin.driver
            ),
        ),
    };
    let reason = if status == 200 {
        "OK"
    } else if status == 404 {
        "Not Found"
    } else {
        "Service Unavailable"
    };
    let content_type = if path == "/metrics" {
        "text/plain; version=0.0.4"
    } else {
        "text/plain"
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes())
}
