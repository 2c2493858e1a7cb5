//! What one HTTP request did, gathered along the request path for the access log.
//! Nothing is gathered while the log is off; when it is on, the request's method,
//! authority, path and id are copied into buffers the connection reuses.

use super::Conn;
use crate::access_log::Line;
use ringmesh_http1::{HeaderSpan, RequestHead};
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

#[derive(Debug, Default)]
pub(crate) struct Record {
    /// When the request's head was complete; `None`: no request to log.
    began: Option<Instant>,
    method: Vec<u8>,
    authority: Vec<u8>,
    path: Vec<u8>,
    pub request_id: Vec<u8>,
    pub status: u16,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub route: String,
    pub cluster: String,
    pub endpoint: Option<SocketAddr>,
    pub attempts: u32,
    pub detail: &'static str,
}

impl Record {
    /// Starts the record of a request whose head is in `buf`.
    pub fn begin(&mut self, at: Instant, buf: &[u8], head: &RequestHead, fields: &[HeaderSpan]) {
        self.reset(at);
        self.method.extend_from_slice(head.method_span.get(buf));
        if let Some(host) = head.host {
            self.authority.extend_from_slice(host.get(buf));
        }
        self.path.extend_from_slice(head.target.get(buf));
        if let Some(id) = ringmesh_http1::header_value(buf, fields, "x-request-id") {
            self.request_id.extend_from_slice(id);
        }
    }

    /// Starts the record of a request that never got a usable head.
    pub fn begin_unparsed(&mut self, at: Instant) {
        self.reset(at);
    }

    fn reset(&mut self, at: Instant) {
        self.began = Some(at);
        self.method.clear();
        self.authority.clear();
        self.path.clear();
        self.request_id.clear();
        self.status = 0;
        self.bytes_received = 0;
        self.bytes_sent = 0;
        self.route.clear();
        self.cluster.clear();
        self.endpoint = None;
        self.attempts = 0;
        self.detail = "";
    }

    pub fn set_route(&mut self, name: &str) {
        self.route.clear();
        self.route.push_str(name);
    }

    pub fn set_cluster(&mut self, name: &str) {
        self.cluster.clear();
        self.cluster.push_str(name);
    }
}

impl Conn {
    /// The response body relayed so far.
    pub(super) fn note_body(&mut self, body: &super::body::Body) {
        if let Some(record) = self.record.as_deref_mut() {
            record.bytes_sent = body.taken();
        }
    }

    /// Writes the finished request's line and forgets it.
    pub(crate) fn log_request(&mut self, listener: &str) {
        let Some(record) = self.record.as_deref_mut() else {
            return;
        };
        let Some(began) = record.began.take() else {
            return;
        };
        let line = Line {
            kind: "http",
            listener,
            client: Some(self.client_addr),
            duration: began.elapsed(),
            method: &record.method,
            authority: &record.authority,
            path: &record.path,
            status: record.status,
            bytes_received: record.bytes_received,
            bytes_sent: record.bytes_sent,
            route: &record.route,
            cluster: &record.cluster,
            endpoint: record.endpoint,
            attempts: record.attempts,
            request_id: &record.request_id,
            detail: record.detail,
            tls: self.tls.as_ref(),
            peer: self.peer.as_ref().map(|id| id.as_str()),
        };
        let now = SystemTime::now();
        self.worker.access_log.line(|out| line.write(out, now));
    }
}
