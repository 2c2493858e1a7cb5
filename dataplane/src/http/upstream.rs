//! One try upstream: take a pooled connection (or open one), send the rewritten head
//! and body, and read the final response head, with a deadline. A pooled connection
//! that turns out dead before any response byte is reported as `Stale` so the caller
//! can send again on a fresh one.

use super::body::Body;
use super::io::{self, ReadOutcome, WriteOutcome};
use super::Conn;
use crate::balance::{ClusterRuntime, EndpointRuntime};
use crate::error::{Kind, ProxyError, Side};
use crate::forward::{self, Upstream};
use crate::table::HttpTable;
use ringmesh_http1::{Method, Parsed, ResponseHead};
use std::rc::Rc;
use std::time::Instant;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Facts about the request that outlive its head's bytes in the client buffer.
pub(super) struct Sent {
    pub method: Method,
    /// HTTP/1.0 client: cannot read chunked framing.
    pub http10: bool,
    pub keep_alive: bool,
    pub upgrade: bool,
    pub expect_continue: bool,
}

pub(super) enum Failure {
    /// A pooled connection failed before any response byte: the upstream most
    /// likely closed it while idle.
    Stale,
    Reply(ProxyError),
    ClientGone,
}

pub(super) fn timed_out(deadline: Option<Instant>) -> ProxyError {
    if deadline.is_some_and(|at| Instant::now() >= at) {
        ProxyError::new(Side::Upstream, Kind::RouteTimeout)
    } else {
        ProxyError::new(Side::Upstream, Kind::UpstreamClosedEarly)
    }
}

/// Send the request (head in `conn.out`, then the rest of the body from the client)
/// and read the final response head. Returns the connection, the buffer holding the
/// response head (and any body bytes after it), and the parsed head.
#[allow(clippy::too_many_arguments)]
pub(super) async fn exchange_head(
    conn: &mut Conn,
    cluster: &Rc<ClusterRuntime>,
    endpoint: &Rc<EndpointRuntime>,
    body: &mut Body,
    sent: &Sent,
    http: &HttpTable,
    deadline: Option<Instant>,
    fresh_only: bool,
    origin: Option<forward::Origin<'_>>,
) -> Result<(crate::stream::UpstreamIo, Vec<u8>, ResponseHead), Failure> {
    let checkout = async {
        if fresh_only {
            forward::connect_io(cluster, endpoint, origin)
                .await
                .map(|stream| Upstream {
                    stream,
                    reused: false,
                })
        } else {
            forward::checkout(cluster, endpoint, origin).await
        }
    };
    let Upstream { mut stream, reused } = match io::by_deadline(deadline, checkout).await {
        Some(Ok(upstream)) => upstream,
        Some(Err(err)) => return Err(Failure::Reply(err)),
        None => {
            return Err(Failure::Reply(ProxyError::new(
                Side::Upstream,
                Kind::RouteTimeout,
            )))
        }
    };
    cluster.stats.requests.inc();
    let out = std::mem::take(&mut conn.out);
    let (written, returned) = io::write_all(&mut stream, out, deadline).await;
    conn.out = returned.unwrap_or_default();
    match written {
        WriteOutcome::Done => {}
        WriteOutcome::Failed(_) if reused => return Err(Failure::Stale),
        WriteOutcome::Failed(err) => return Err(Failure::Reply(ProxyError::upstream_io(err))),
        WriteOutcome::TimedOut => return Err(Failure::Reply(timed_out(deadline))),
    }

    // The rest of the body streams from the client as it arrives.
    let body_pending = !body.is_complete();
    if body_pending && sent.expect_continue {
        let (_, returned) = io::write_all(&mut conn.client, CONTINUE, None).await;
        if returned.is_none() {
            return Err(Failure::ClientGone);
        }
    }
    while !body.is_complete() {
        let idle = Some(Instant::now() + http.idle_timeout);
        match io::read_more(&mut conn.client, &mut conn.buf, idle).await {
            ReadOutcome::Data(_) => {}
            _ => return Err(Failure::ClientGone),
        }
        let n = match body.take(&conn.buf) {
            Ok(n) => n,
            Err(err) => return Err(Failure::Reply(super::exchange::body_error(err))),
        };
        match io::write_range(&mut stream, &mut conn.buf, 0, n, deadline).await {
            WriteOutcome::Done => {}
            WriteOutcome::Failed(err) => return Err(Failure::Reply(ProxyError::upstream_io(err))),
            WriteOutcome::TimedOut => return Err(Failure::Reply(timed_out(deadline))),
        }
        conn.buf.drain(..n.min(conn.buf.len()));
    }

    let mut response_buf = conn.worker.buffers.take();
    loop {
        match ringmesh_http1::parse_response(
            &response_buf,
            &http.codec_limits,
            sent.method,
            &mut conn.response_fields,
        ) {
            Ok(Parsed::Complete(head)) if head.status < 200 && head.status != 101 => {
                // Interim responses (100, 103) are not forwarded: the proxy already
                // answered Expect itself.
                response_buf.drain(..head.head_len.min(response_buf.len()));
                continue;
            }
            Ok(Parsed::Complete(head)) => return Ok((stream, response_buf, head)),
            Ok(Parsed::Partial) => {}
            Err(err) => {
                conn.worker.buffers.give(response_buf);
                return Err(Failure::Reply(ProxyError::new(
                    Side::Upstream,
                    Kind::BadResponse(err.reason()),
                )));
            }
        }
        let wait = deadline.or_else(|| Some(Instant::now() + http.idle_timeout));
        match io::read_more(&mut stream, &mut response_buf, wait).await {
            ReadOutcome::Data(_) => {}
            ReadOutcome::Eof | ReadOutcome::Failed(_)
                if reused && response_buf.is_empty() && !body_pending =>
            {
                conn.worker.buffers.give(response_buf);
                return Err(Failure::Stale);
            }
            ReadOutcome::Eof => {
                conn.worker.buffers.give(response_buf);
                return Err(Failure::Reply(ProxyError::new(
                    Side::Upstream,
                    Kind::UpstreamClosedEarly,
                )));
            }
            ReadOutcome::Failed(err) => {
                conn.worker.buffers.give(response_buf);
                return Err(Failure::Reply(ProxyError::upstream_io(err)));
            }
            ReadOutcome::TimedOut => return Err(Failure::Reply(timed_out(deadline))),
        }
    }
}
