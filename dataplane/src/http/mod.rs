//! HTTP/1.1 listener: one client connection's life. Reads each request head (taking
//! the current table again per request), rejects what is malformed before anything
//! reaches an upstream, routes, and either answers locally or forwards.

mod attempts;
mod body;
mod exchange;
pub mod io;
mod record;
mod upstream;

use crate::access_log::TlsFacts;
use crate::authz::{AuthzFacts, Decision, Policies};
use crate::error::{Kind, ProxyError, Side};
use crate::metrics::ListenerStats;
use crate::resilience::breaker::Overflow;
use crate::resilience::fault::FaultAction;
use crate::route::{self, RequestFacts};
use crate::state::{Worker, WorkerTable};
use crate::stream::{ClientIo, UpstreamIo};
use crate::table::{Action, HttpTable, ListenerMode};
use crate::tls::spiffe::SpiffeId;
use io::ReadOutcome;
use monoio::io::CancelHandle;
use ringmesh_http1::{BodyFraming, HeaderSpan, Parsed, RequestHead};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

/// Client read buffer: held for the connection's life, so it stays small (memory per
/// idle keep-alive connection); heads beyond it grow it up to the header limit.
/// Response bodies stream through 64 KiB pooled buffers instead.
const CLIENT_BUF: usize = 16 * 1024;

/// What the connection does after a request.
pub(crate) enum Next {
    KeepAlive,
    Close,
    /// The upstream accepted an upgrade: relay bytes both ways from now on.
    Upgrade(UpstreamIo),
}

/// One client connection and the buffers it reuses for every request on it.
pub(crate) struct Conn {
    pub worker: Rc<Worker>,
    pub client: ClientIo,
    /// The client's SPIFFE ID, when it presented an SVID (mesh listeners).
    pub peer: Option<SpiffeId>,
    /// Bytes read from the client and not yet consumed (a head, body bytes, or a
    /// pipelined next request).
    pub buf: Vec<u8>,
    /// Heads being written (to the upstream, then to the client).
    pub out: Vec<u8>,
    pub request_fields: Vec<HeaderSpan>,
    pub response_fields: Vec<HeaderSpan>,
    pub client_ip: String,
    pub client_addr: SocketAddr,
    /// What the client negotiated, when TLS is terminated here.
    pub tls: Option<TlsFacts>,
    /// The current request, for the access log (`None`: the log is off).
    pub record: Option<Box<record::Record>>,
}

/// What the connection already carries when HTTP starts: the client's SPIFFE ID
/// (mesh) and bytes read before (plaintext detected on a permissive port).
#[derive(Default)]
pub struct Accepted {
    pub peer: Option<SpiffeId>,
    pub prefix: Vec<u8>,
    pub tls: Option<TlsFacts>,
}

pub async fn serve(
    worker: Rc<Worker>,
    listener_name: &str,
    client: ClientIo,
    peer: SocketAddr,
    drain: CancelHandle,
    accepted: Accepted,
) {
    let mut buf = accepted.prefix;
    buf.reserve(CLIENT_BUF.saturating_sub(buf.len()));
    let mut conn = Conn {
        buf,
        peer: accepted.peer,
        out: Vec::with_capacity(4096),
        request_fields: Vec::with_capacity(32),
        response_fields: Vec::with_capacity(32),
        client_ip: peer.ip().to_string(),
        client_addr: peer,
        tls: accepted.tls,
        record: worker.access_log.enabled().then(Box::default),
        worker,
        client,
    };
    loop {
        let table = conn.worker.table();
        let Some(index) = table.listener_index(listener_name) else {
            break; // listener removed by a swap: finish with this connection
        };
        let (Some(listener), Some(stats)) = (
            table.table.listeners.get(index),
            table.listener_stats.get(index),
        ) else {
            break;
        };
        let ListenerMode::Http(http) = &listener.mode else {
            break;
        };
        let next = conn.one_request(&table, index, http, stats, &drain).await;
        conn.log_request(listener_name);
        match next {
            Next::KeepAlive => continue,
            Next::Close => break,
            Next::Upgrade(upstream) => {
                let worker = conn.worker.clone();
                let pending = std::mem::take(&mut conn.buf);
                let Conn { client, .. } = conn;
                upgrade(client, upstream, pending, http.idle_timeout, &worker).await;
                return;
            }
        }
    }
}

async fn upgrade(
    client: ClientIo,
    mut upstream: UpstreamIo,
    pending: Vec<u8>,
    idle: std::time::Duration,
    worker: &Worker,
) {
    let (written, _) = crate::forward::l4::write_prefix(&mut upstream, pending).await;
    if written.is_ok() {
        crate::forward::l4::relay_io(client, upstream, idle, false, &worker.buffers).await;
    }
}

/// Policy view of a request: its facts plus the peer's identity.
struct Subject<'a> {
    facts: &'a Facts<'a>,
    peer: Option<&'a SpiffeId>,
}

impl AuthzFacts for Subject<'_> {
    fn peer(&self) -> Option<&SpiffeId> {
        self.peer
    }
    fn method(&self) -> Option<&[u8]> {
        Some(RequestFacts::method(self.facts))
    }
    fn path(&self) -> Option<&[u8]> {
        Some(RequestFacts::path(self.facts))
    }
    fn header(&self, lower_name: &str) -> Option<&[u8]> {
        RequestFacts::header(self.facts, lower_name)
    }
}

/// Evaluate one target's policies, count and log the decision; `true` allows.
pub(crate) fn authorize(
    table: &WorkerTable,
    listener: &str,
    policies: &Policies,
    subject: &impl AuthzFacts,
) -> bool {
    let (allowed, policy, slot) = match policies.evaluate(subject) {
        Decision::None => return true,
        Decision::Allow { policy, slot } => (true, policy, slot),
        Decision::Deny { policy, slot } => (false, policy, slot),
    };
    if let Some(stats) = table.policy_stats.get(slot) {
        if allowed {
            stats.allowed.inc();
        } else {
            stats.denied.inc();
        }
    }
    let peer = subject.peer().map(SpiffeId::as_str).unwrap_or("-");
    if allowed {
        tracing::debug!(listener, policy, peer, decision = "allow", "authorization");
    } else {
        tracing::info!(listener, policy, peer, decision = "deny", "authorization");
    }
    allowed
}

/// Routing view over a parsed head.
struct Facts<'a> {
    buf: &'a [u8],
    head: &'a RequestHead,
    fields: &'a [HeaderSpan],
}

impl RequestFacts for Facts<'_> {
    fn method(&self) -> &[u8] {
        self.head.method_span.get(self.buf)
    }
    fn host(&self) -> Option<&[u8]> {
        self.head
            .host
            .map(|span| route::strip_port(span.get(self.buf)))
    }
    fn path(&self) -> &[u8] {
        route::target_path(self.head.target.get(self.buf))
    }
    fn header(&self, lower_name: &str) -> Option<&[u8]> {
        ringmesh_http1::header_value(self.buf, self.fields, lower_name)
    }
}

impl Conn {
    async fn one_request(
        &mut self,
        table: &WorkerTable,
        listener_index: usize,
        http: &HttpTable,
        stats: &ListenerStats,
        drain: &CancelHandle,
    ) -> Next {
        let head = match self.read_head(http, drain).await {
            Ok(Some(head)) => head,
            Ok(None) => return Next::Close,
            Err(err) => {
                stats.requests.inc();
                if let Some(record) = self.record.as_deref_mut() {
                    record.begin_unparsed(Instant::now());
                }
                return self.reply_error(&err, stats).await;
            }
        };
        let started = Instant::now();
        stats.requests.inc();
        if let Some(record) = self.record.as_deref_mut() {
            record.begin(started, &self.buf, &head, &self.request_fields);
        }
        let facts = Facts {
            buf: &self.buf,
            head: &head,
            fields: &self.request_fields,
        };
        let listener = table.table.listeners.get(listener_index);
        if let Some(listener) = listener.filter(|l| !l.policies.is_empty()) {
            let subject = Subject {
                facts: &facts,
                peer: self.peer.as_ref(),
            };
            if !authorize(table, &listener.name, &listener.policies, &subject) {
                self.note_detail("forbidden");
                return self
                    .reply_local(&head, 403, b"forbidden by policy\n", stats)
                    .await;
            }
        }
        let Some(route_index) = route::select_index(http, &facts) else {
            let err = ProxyError::new(Side::Local, Kind::NoRoute);
            self.note_detail(err.label());
            return self
                .reply_local(&head, err.status(), err.reason().as_bytes(), stats)
                .await;
        };
        let Some(route) = http.routes.get(route_index) else {
            return Next::Close;
        };
        if let Some(record) = self.record.as_deref_mut() {
            record.set_route(&route.name);
        }
        if let Some(listener) = listener.filter(|_| !route.policies.is_empty()) {
            let subject = Subject {
                facts: &facts,
                peer: self.peer.as_ref(),
            };
            if !authorize(table, &listener.name, &route.policies, &subject) {
                self.note_detail("forbidden");
                return self
                    .reply_local(&head, 403, b"forbidden by policy\n", stats)
                    .await;
            }
        }
        if !table.admit_request(listener_index, route_index, started) {
            stats.rate_limited.inc();
            self.note_detail("rate_limited");
            return self
                .reply_local(&head, 429, b"rate limit exceeded\n", stats)
                .await;
        }
        if let Some(fault) = &route.fault {
            match fault.decide(self.worker.random()) {
                FaultAction::None => {}
                FaultAction::Delay(delay) => monoio::time::sleep(delay).await,
                FaultAction::Abort(status) => {
                    self.note_detail("fault_abort");
                    return self
                        .reply_local(&head, status, b"fault injected\n", stats)
                        .await;
                }
                FaultAction::Both(delay, status) => {
                    monoio::time::sleep(delay).await;
                    self.note_detail("fault_abort");
                    return self
                        .reply_local(&head, status, b"fault injected\n", stats)
                        .await;
                }
            }
        }
        if let BodyFraming::Length(n) = head.body {
            if n > route.max_body {
                let err = ProxyError::new(Side::Downstream, Kind::BodyTooLarge);
                return self.reply_error(&err, stats).await;
            }
        }
        let cluster = match &route.action {
            Action::Direct(direct) => {
                self.note_detail("direct_response");
                let (status, body) = (direct.status, direct.body.clone());
                return self
                    .reply_local(&head, status, body.as_bytes(), stats)
                    .await;
            }
            Action::Cluster(index) => *index,
            Action::Split(split) => match split.pick(self.worker.random() as u32) {
                Some(index) => index,
                None => {
                    let err = ProxyError::new(Side::Local, Kind::NoEndpoint);
                    return self.reply_error(&err, stats).await;
                }
            },
        };
        exchange::forward(
            self,
            table,
            listener_index,
            http,
            stats,
            &head,
            route,
            cluster,
            started,
        )
        .await
    }

    /// The next request head, `None` when the client closed or went idle, or the
    /// error to answer with.
    async fn read_head(
        &mut self,
        http: &HttpTable,
        drain: &CancelHandle,
    ) -> Result<Option<RequestHead>, ProxyError> {
        // The header-read deadline starts with the request's first byte.
        let mut head_deadline =
            (!self.buf.is_empty()).then(|| Instant::now() + http.header_read_timeout);
        loop {
            match ringmesh_http1::parse_request(
                &self.buf,
                &http.codec_limits,
                &mut self.request_fields,
            ) {
                Ok(Parsed::Complete(head)) => return Ok(Some(head)),
                Ok(Parsed::Partial) => {}
                Err(err) => {
                    return Err(ProxyError::new(
                        Side::Downstream,
                        Kind::BadRequest {
                            status: err.status(),
                            reason: err.reason(),
                        },
                    ))
                }
            }
            let outcome = match head_deadline {
                Some(deadline) => {
                    io::read_more(&mut self.client, &mut self.buf, Some(deadline)).await
                }
                None => {
                    if self.worker.draining.get() {
                        return Ok(None);
                    }
                    let idle_deadline = Instant::now() + http.idle_timeout;
                    io::read_idle(
                        &mut self.client,
                        &mut self.buf,
                        Some(idle_deadline),
                        drain,
                        &self.worker.draining,
                    )
                    .await
                }
            };
            match outcome {
                ReadOutcome::Data(_) => {
                    head_deadline.get_or_insert_with(|| Instant::now() + http.header_read_timeout);
                }
                ReadOutcome::TimedOut if head_deadline.is_some() => {
                    return Err(ProxyError::new(Side::Downstream, Kind::HeadTimeout));
                }
                ReadOutcome::Eof | ReadOutcome::TimedOut | ReadOutcome::Failed(_) => {
                    return Ok(None)
                }
            }
        }
    }

    /// Answer a request that will not be forwarded. The connection stays open only
    /// when the request has no body (an unread body would be taken for the next request).
    async fn reply_local(
        &mut self,
        head: &RequestHead,
        status: u16,
        body: &[u8],
        stats: &ListenerStats,
    ) -> Next {
        let has_body = !matches!(head.body, BodyFraming::None | BodyFraming::Length(0));
        let keep_alive = head.keep_alive && !has_body && !self.worker.draining.get();
        if keep_alive {
            let consumed = head.head_len.min(self.buf.len());
            self.buf.drain(..consumed);
        }
        self.write_local(status, body, !keep_alive, stats).await;
        if keep_alive {
            Next::KeepAlive
        } else {
            Next::Close
        }
    }

    /// Answer an error and close: after a malformed request nothing more on this
    /// connection can be trusted.
    pub(crate) async fn reply_error(&mut self, err: &ProxyError, stats: &ListenerStats) -> Next {
        if let Kind::Overflow(overflow) = err.kind {
            return self.reply_overflow(overflow, stats).await;
        }
        self.note_detail(err.label());
        let mut reason = err.reason();
        reason.push('\n');
        self.write_local(err.status(), reason.as_bytes(), true, stats)
            .await;
        Next::Close
    }

    /// 503 from a circuit breaker, naming the limit that was reached.
    pub(crate) async fn reply_overflow(
        &mut self,
        overflow: Overflow,
        stats: &ListenerStats,
    ) -> Next {
        self.note_detail(overflow.0.name());
        self.note_response(503, 0);
        self.out.clear();
        let (name, value) = overflow.header();
        let body = format!("circuit breaker open: {}\n", overflow.0.name());
        ringmesh_http1::write_simple_response(
            &mut self.out,
            503,
            "text/plain",
            body.as_bytes(),
            true,
            &[(name, value.as_bytes())],
        );
        stats.response(503);
        let out = std::mem::take(&mut self.out);
        let (_, returned) = io::write_all(&mut self.client, out, None).await;
        if let Some(out) = returned {
            self.out = out;
        }
        Next::Close
    }

    async fn write_local(&mut self, status: u16, body: &[u8], close: bool, stats: &ListenerStats) {
        self.note_response(status, body.len() as u64);
        self.out.clear();
        ringmesh_http1::write_simple_response(
            &mut self.out,
            status,
            "text/plain",
            body,
            close,
            &[],
        );
        stats.response(status);
        let out = std::mem::take(&mut self.out);
        let (_, returned) = io::write_all(&mut self.client, out, None).await;
        if let Some(out) = returned {
            self.out = out;
        }
    }

    /// Why the proxy answered itself, for the access log (the first reason wins).
    fn note_detail(&mut self, detail: &'static str) {
        if let Some(record) = self.record.as_deref_mut() {
            if record.detail.is_empty() {
                record.detail = detail;
            }
        }
    }

    fn note_response(&mut self, status: u16, body_bytes: u64) {
        if let Some(record) = self.record.as_deref_mut() {
            record.status = status;
            record.bytes_sent = body_bytes;
        }
    }
}
