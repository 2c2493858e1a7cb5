//! Access log: one JSON object per line for every HTTP request and every TCP
//! connection, written off the workers.
//!
//! A worker formats lines into its own buffer and hands the buffer to one writer
//! thread every tick (or sooner when it fills); the writer does the blocking
//! writes. When the writer falls behind, whole buffers are dropped and counted
//! rather than making a worker wait on a disk or a pipe.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A worker hands its buffer over once it holds this much, even before its tick.
const HAND_OVER_AT: usize = 32 * 1024;
/// Buffers waiting for the writer; beyond this they are dropped.
const QUEUE: usize = 256;

/// Where the log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Stdout,
    Stderr,
    /// Appended to; created if missing.
    File(PathBuf),
}

impl std::str::FromStr for Destination {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" => Err("an access log needs a destination: stdout, stderr or a file path".into()),
            "stdout" | "-" => Ok(Destination::Stdout),
            "stderr" => Ok(Destination::Stderr),
            path => Ok(Destination::File(PathBuf::from(path))),
        }
    }
}

/// The writer thread's end, shared by every worker.
#[derive(Debug)]
pub struct Sink {
    queue: crossbeam_channel::Sender<Vec<u8>>,
    /// Lines dropped because the writer fell behind (exported as a metric).
    pub dropped: AtomicU64,
}

impl Sink {
    /// Opens the destination (so a bad path fails at startup) and starts the writer.
    pub fn start(destination: &Destination) -> std::io::Result<Arc<Sink>> {
        let mut out: Box<dyn std::io::Write + Send> = match destination {
            Destination::Stdout => Box::new(std::io::stdout()),
            Destination::Stderr => Box::new(std::io::stderr()),
            Destination::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        let (queue, buffers) = crossbeam_channel::bounded::<Vec<u8>>(QUEUE);
        std::thread::Builder::new()
            .name("ringmesh-log".into())
            .spawn(move || {
                for buffer in buffers {
                    let written = out.write_all(&buffer).and_then(|()| out.flush());
                    if let Err(err) = written {
                        tracing::warn!(error = %err, "access log write failed");
                    }
                }
            })?;
        Ok(Arc::new(Sink {
            queue,
            dropped: AtomicU64::new(0),
        }))
    }
}

/// One worker's side of the log: lines gathered since the last hand-over.
#[derive(Debug, Default)]
pub struct WorkerLog {
    sink: Option<Arc<Sink>>,
    pending: RefCell<Vec<u8>>,
    lines: Cell<u64>,
}

impl WorkerLog {
    pub fn new(sink: Option<Arc<Sink>>) -> Self {
        WorkerLog {
            sink,
            pending: RefCell::new(Vec::new()),
            lines: Cell::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.sink.is_some()
    }

    /// Appends one line (`write` adds the fields, without the newline).
    pub fn line(&self, write: impl FnOnce(&mut Vec<u8>)) {
        if self.sink.is_none() {
            return;
        }
        let full = {
            let mut pending = self.pending.borrow_mut();
            write(&mut pending);
            pending.push(b'\n');
            pending.len() >= HAND_OVER_AT
        };
        self.lines.set(self.lines.get() + 1);
        if full {
            self.hand_over();
        }
    }

    /// Gives the gathered lines to the writer; called every worker tick.
    pub fn hand_over(&self) {
        let Some(sink) = &self.sink else {
            return;
        };
        let buffer = {
            let mut pending = self.pending.borrow_mut();
            if pending.is_empty() {
                return;
            }
            std::mem::replace(&mut *pending, Vec::with_capacity(HAND_OVER_AT + 1024))
        };
        let lines = self.lines.replace(0);
        if sink.queue.try_send(buffer).is_err() {
            sink.dropped.fetch_add(lines, Ordering::Relaxed);
        }
    }
}

/// TLS as the client negotiated it, for the log.
#[derive(Debug, Clone, Default)]
pub struct TlsFacts {
    pub version: &'static str,
    pub alpn: Option<Vec<u8>>,
    pub resumed: bool,
}

/// What a finished request looked like. Borrowed views: building one costs nothing
/// when the log is off, and nothing is copied when it is on.
#[derive(Debug, Default)]
pub struct Line<'a> {
    pub kind: &'static str,
    pub listener: &'a str,
    pub client: Option<SocketAddr>,
    pub duration: Duration,
    pub method: &'a [u8],
    pub authority: &'a [u8],
    pub path: &'a [u8],
    pub status: u16,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub route: &'a str,
    pub cluster: &'a str,
    pub endpoint: Option<SocketAddr>,
    pub attempts: u32,
    pub request_id: &'a [u8],
    /// Why the proxy answered itself or cut the exchange ("" when it did not).
    pub detail: &'a str,
    pub tls: Option<&'a TlsFacts>,
    pub peer: Option<&'a str>,
}

impl Line<'_> {
    /// The JSON object, keys in a fixed order; empty fields are left out.
    pub fn write(&self, out: &mut Vec<u8>, now: SystemTime) {
        let start = now.checked_sub(self.duration).unwrap_or(now);
        out.extend_from_slice(b"{\"start\":\"");
        write_rfc3339(out, start);
        out.push(b'"');
        str_field(out, "kind", self.kind.as_bytes());
        str_field(out, "listener", self.listener.as_bytes());
        if let Some(client) = self.client {
            display_field(out, "client", client);
        }
        number_field(out, "duration_us", self.duration.as_micros() as u64);
        str_field(out, "method", self.method);
        str_field(out, "authority", self.authority);
        str_field(out, "path", self.path);
        if self.status != 0 {
            number_field(out, "status", u64::from(self.status));
        }
        number_field(out, "bytes_received", self.bytes_received);
        number_field(out, "bytes_sent", self.bytes_sent);
        str_field(out, "route", self.route.as_bytes());
        str_field(out, "cluster", self.cluster.as_bytes());
        if let Some(endpoint) = self.endpoint {
            display_field(out, "endpoint", endpoint);
        }
        if self.attempts > 0 {
            number_field(out, "attempts", u64::from(self.attempts));
        }
        str_field(out, "request_id", self.request_id);
        str_field(out, "detail", self.detail.as_bytes());
        if let Some(tls) = self.tls {
            str_field(out, "tls_version", tls.version.as_bytes());
            str_field(out, "alpn", tls.alpn.as_deref().unwrap_or_default());
            if tls.resumed {
                out.extend_from_slice(b",\"tls_resumed\":true");
            }
        }
        str_field(out, "peer", self.peer.unwrap_or_default().as_bytes());
        out.push(b'}');
    }
}

fn str_field(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    if value.is_empty() {
        return;
    }
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":\"");
    escape_into(out, value);
    out.push(b'"');
}

fn number_field(out: &mut Vec<u8>, key: &str, value: u64) {
    let mut text = String::with_capacity(24);
    let _ = write!(text, ",\"{key}\":{value}");
    out.extend_from_slice(text.as_bytes());
}

fn display_field(out: &mut Vec<u8>, key: &str, value: impl std::fmt::Display) {
    let mut text = String::with_capacity(48);
    let _ = write!(text, ",\"{key}\":\"{value}\"");
    out.extend_from_slice(text.as_bytes());
}

/// JSON string contents. Request bytes are not necessarily UTF-8 (obs-text in
/// header values), so every byte outside printable ASCII becomes `\u00XX`: the
/// line stays valid JSON and shows exactly what arrived.
fn escape_into(out: &mut Vec<u8>, value: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &byte in value {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x20..=0x7e => out.push(byte),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]),
        }
    }
}

/// `2026-11-27T08:05:00.123Z` (UTC, milliseconds).
fn write_rfc3339(out: &mut Vec<u8>, at: SystemTime) {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    let mut text = String::with_capacity(24);
    let _ = write!(
        text,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        since.subsec_millis()
    );
    out.extend_from_slice(text.as_bytes());
}

/// Gregorian date of a day count since 1970-01-01, by eras of 400 years (146,097
/// days) so leap years need no table.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468; // days since 0000-03-01
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // March = 0
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_across_leap_years_and_eras() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_784), (2026, 11, 27));
        assert_eq!(civil_from_days(47_540), (2100, 2, 28));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1));
        let mut out = Vec::new();
        write_rfc3339(
            &mut out,
            UNIX_EPOCH + Duration::from_millis(1_795_766_700_123),
        );
        assert_eq!(out, b"2026-11-27T08:05:00.123Z");
    }

    #[test]
    fn line_is_json_with_escaped_bytes_and_no_empty_fields() {
        let tls = TlsFacts {
            version: "TLSv1.3",
            alpn: Some(b"http/1.1".to_vec()),
            resumed: true,
        };
        let line = Line {
            kind: "http",
            listener: "edge",
            client: Some("127.0.0.1:5000".parse().unwrap()),
            duration: Duration::from_micros(1500),
            method: b"GET",
            authority: b"h",
            path: b"/a\"b\\c\x01\xff",
            status: 200,
            bytes_sent: 12,
            cluster: "web",
            attempts: 2,
            tls: Some(&tls),
            ..Line::default()
        };
        let mut out = Vec::new();
        line.write(
            &mut out,
            UNIX_EPOCH + Duration::from_millis(1_795_766_700_124),
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "{\"start\":\"2026-11-27T08:05:00.122Z\",\"kind\":\"http\",\"listener\":\"edge\",\
             \"client\":\"127.0.0.1:5000\",\"duration_us\":1500,\"method\":\"GET\",\"authority\":\"h\",\
             \"path\":\"/a\\\"b\\\\c\\u0001\\u00ff\",\"status\":200,\"bytes_received\":0,\"bytes_sent\":12,\
             \"cluster\":\"web\",\"attempts\":2,\"tls_version\":\"TLSv1.3\",\"alpn\":\"http/1.1\",\
             \"tls_resumed\":true}"
        );
    }

    #[test]
    fn destinations() {
        assert_eq!("stdout".parse(), Ok(Destination::Stdout));
        assert_eq!("-".parse(), Ok(Destination::Stdout));
        assert_eq!("stderr".parse(), Ok(Destination::Stderr));
        assert_eq!(
            "/var/log/a.log".parse(),
            Ok(Destination::File("/var/log/a.log".into()))
        );
        assert!("".parse::<Destination>().is_err());
    }

    #[test]
    fn lines_gather_until_handed_over_and_drops_are_counted() {
        let (queue, buffers) = crossbeam_channel::bounded(1);
        let sink = Arc::new(Sink {
            queue,
            dropped: AtomicU64::new(0),
        });
        let log = WorkerLog::new(Some(sink.clone()));
        log.line(|out| out.extend_from_slice(b"one"));
        log.line(|out| out.extend_from_slice(b"two"));
        log.hand_over();
        assert_eq!(buffers.try_recv().unwrap(), b"one\ntwo\n");
        log.line(|out| out.extend_from_slice(b"three"));
        log.hand_over();
        log.line(|out| out.extend_from_slice(b"four"));
        log.hand_over(); // the queue (one slot) is still full
        assert_eq!(sink.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(buffers.try_recv().unwrap(), b"three\n");
        let off = WorkerLog::new(None);
        off.line(|_| panic!("formatted with the log off"));
        assert!(!off.enabled());
    }
}
