//! Forwarding one request: pick an endpoint, send the rewritten head and the body
//! (replaying once on a fresh connection when a pooled one turns out dead), read the
//! response head, relay the response, and return the connection to the pool.

use super::body::{Body, BodyError};
use super::io::{self, ReadOutcome, WriteOutcome};
use super::{Conn, Next};
use crate::balance::{ClusterRuntime, EndpointRuntime, InFlight};
use crate::error::{Kind, ProxyError, Side};
use crate::forward::{self, Upstream};
use crate::metrics::ListenerStats;
use crate::state::WorkerTable;
use crate::table::{HttpTable, Route};
use ringmesh_http1::{BodyFraming, HeadEdits, Method, Parsed, RequestHead, ResponseHead};
use std::rc::Rc;
use std::time::Instant;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Facts about the request that outlive its head's bytes in the client buffer.
struct Sent {
    method: Method,
    /// HTTP/1.0 client: cannot read chunked framing.
    http10: bool,
    keep_alive: bool,
    upgrade: bool,
    expect_continue: bool,
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn forward(
    conn: &mut Conn,
    table: &WorkerTable,
    http: &HttpTable,
    stats: &ListenerStats,
    head: &RequestHead,
    route: &Route,
    cluster_index: usize,
    started: Instant,
) -> Next {
    let Some(cluster) = table.clusters.get(cluster_index).cloned() else {
        return conn
            .reply_error(&ProxyError::new(Side::Local, Kind::NoEndpoint), stats)
            .await;
    };
    let Some(endpoint) = cluster.pick(conn.worker.random()).cloned() else {
        return conn
            .reply_error(&ProxyError::new(Side::Local, Kind::NoEndpoint), stats)
            .await;
    };
    let sent = Sent {
        method: head.method,
        http10: head.minor_version == 0,
        keep_alive: head.keep_alive,
        upgrade: head.upgrade,
        expect_continue: head.expect_continue,
    };
    let deadline = route.timeout.map(|timeout| started + timeout);

    // Head and whatever body bytes arrived with it go out in one write.
    let mut body = Body::new(head.body, route.max_body);
    write_upstream_head(conn, http, head, route);
    if head.minor_version == 0 {
        downgrade_request_line(&mut conn.out);
    }
    let initial = match body.take(conn.buf.get(head.head_len..).unwrap_or(&[])) {
        Ok(n) => n,
        Err(err) => return conn.reply_error(&body_error(err), stats).await,
    };
    let body_end = head.head_len + initial;
    if let Some(bytes) = conn.buf.get(head.head_len..body_end) {
        conn.out.extend_from_slice(bytes);
    }
    conn.buf.drain(..body_end.min(conn.buf.len()));
    // Everything needed to send the request again is in `out`.
    let replayable = body.is_complete();

    let in_flight = InFlight::start(&endpoint);
    let mut attempts = 0;
    let (mut upstream, mut response_buf, response) = loop {
        attempts += 1;
        let fresh_only = attempts > 1;
        match exchange_head(
            conn, &cluster, &endpoint, &mut body, &sent, http, deadline, fresh_only,
        )
        .await
        {
            Ok(done) => break done,
            Err(Failure::Stale) if replayable && attempts == 1 => continue,
            Err(Failure::Stale) => {
                let err = ProxyError::new(Side::Upstream, Kind::UpstreamClosedEarly);
                return conn.reply_error(&err, stats).await;
            }
            Err(Failure::Reply(err)) => return conn.reply_error(&err, stats).await,
            Err(Failure::ClientGone) => return Next::Close,
        }
    };

    let upgraded = sent.upgrade && response.status == 101;
    // A chunked response to an HTTP/1.0 client loses its framing and ends at close.
    let dechunk = sent.http10 && matches!(response.body, BodyFraming::Chunked);
    let client_keep_alive = sent.keep_alive
        && !dechunk
        && !conn.worker.draining.get()
        && !matches!(response.body, BodyFraming::UntilClose);
    let dechunk_remove: Vec<String>;
    let remove: &[String] = if dechunk {
        dechunk_remove = route
            .response_headers
            .remove
            .iter()
            .cloned()
            .chain(std::iter::once("transfer-encoding".to_string()))
            .collect();
        &dechunk_remove
    } else {
        &route.response_headers.remove
    };
    conn.out.clear();
    let edits = HeadEdits {
        remove,
        set: &route.response_headers.set,
        add: &route.response_headers.add,
        keep_upgrade: upgraded,
        connection_close: !client_keep_alive && !upgraded,
        ..HeadEdits::default()
    };
    ringmesh_http1::write_response_head(
        &mut conn.out,
        &response_buf,
        &response,
        &conn.response_fields,
        &edits,
    );
    stats.response(response.status);

    let mut response_body = Body::new(response.body, u64::MAX);
    let after_head = response_buf.get(response.head_len..).unwrap_or(&[]);
    let initial = if upgraded {
        conn.out.extend_from_slice(after_head);
        after_head.len()
    } else {
        let out = &mut conn.out;
        let taken = response_body.take_with(after_head, |payload| {
            if dechunk {
                out.extend_from_slice(&after_head[payload]);
            }
        });
        match taken {
            Ok(n) => {
                if !dechunk {
                    out.extend_from_slice(&after_head[..n]);
                }
                n
            }
            Err(_) => {
                let err =
                    ProxyError::new(Side::Upstream, Kind::BadResponse("invalid chunked framing"));
                return conn.reply_error(&err, stats).await;
            }
        }
    };
    // Bytes beyond the body mean the upstream is out of step: never reuse it.
    let mut upstream_clean = after_head.len() == initial;
    let out = std::mem::take(&mut conn.out);
    let (written, returned) = io::write_all(&mut conn.client, out, None).await;
    conn.out = returned.unwrap_or_default();
    if !matches!(written, WriteOutcome::Done) {
        conn.worker.buffers.give(response_buf);
        return Next::Close;
    }
    if upgraded {
        conn.worker.buffers.give(response_buf);
        return Next::Upgrade(upstream);
    }

    while !response_body.is_complete() {
        response_buf.clear();
        let idle = Some(Instant::now() + http.idle_timeout);
        match io::read_more(&mut upstream, &mut response_buf, idle, None).await {
            ReadOutcome::Data(_) => {}
            ReadOutcome::Eof if response_body.finish_at_eof() => break,
            // Truncated or stalled after the head went out: all we can do is close.
            _ => return Next::Close,
        }
        let written = if dechunk {
            conn.out.clear();
            let out = &mut conn.out;
            let input = &response_buf;
            let Ok(n) =
                response_body.take_with(input, |payload| out.extend_from_slice(&input[payload]))
            else {
                return Next::Close;
            };
            upstream_clean &= n == response_buf.len();
            let out = std::mem::take(&mut conn.out);
            let (written, returned) = io::write_all(&mut conn.client, out, None).await;
            conn.out = returned.unwrap_or_default();
            written
        } else {
            let Ok(n) = response_body.take(&response_buf) else {
                return Next::Close;
            };
            upstream_clean &= n == response_buf.len();
            io::write_range(&mut conn.client, &mut response_buf, 0, n, None).await
        };
        if !matches!(written, WriteOutcome::Done) {
            return Next::Close;
        }
    }
    conn.worker.buffers.give(response_buf);
    in_flight.finish(started.elapsed());
    if upstream_clean && response.keep_alive && body.is_complete() {
        endpoint.idle.put(upstream, cluster.max_idle_per_endpoint);
    }
    if client_keep_alive && body.is_complete() {
        Next::KeepAlive
    } else {
        Next::Close
    }
}

enum Failure {
    /// A pooled connection failed before any response byte: the upstream most
    /// likely closed it while idle.
    Stale,
    Reply(ProxyError),
    ClientGone,
}

/// Rewrite the request head into `conn.out`.
fn write_upstream_head(conn: &mut Conn, http: &HttpTable, head: &RequestHead, route: &Route) {
    let request_id = conn.worker.next_request_id();
    let has_request_id =
        ringmesh_http1::header_value(&conn.buf, &conn.request_fields, "x-request-id").is_some();
    let mut extra: [(&str, &[u8]); 3] = [("", b""); 3];
    let mut count = 0;
    if http.forwarding.x_forwarded_proto {
        extra[count] = ("x-forwarded-proto", b"http");
        count += 1;
    }
    if let Some(via) = &http.via_value {
        extra[count] = ("via", via);
        count += 1;
    }
    if http.forwarding.request_id && !has_request_id {
        extra[count] = ("x-request-id", &request_id);
        count += 1;
    }
    let edits = HeadEdits {
        remove: &route.request_headers.remove,
        set: &route.request_headers.set,
        add: &route.request_headers.add,
        forwarded_for: http
            .forwarding
            .x_forwarded_for
            .then_some(conn.client_ip.as_str()),
        extra: &extra[..count],
        keep_upgrade: head.upgrade,
        connection_close: false,
    };
    conn.out.clear();
    ringmesh_http1::write_request_head(
        &mut conn.out,
        &conn.buf,
        head,
        &conn.request_fields,
        &edits,
    );
}

/// An HTTP/1.0 client cannot read a chunked response, and the body is relayed
/// unchanged: ask the upstream in HTTP/1.0 too, so it answers with a length or
/// closes (as nginx does by default).
fn downgrade_request_line(out: &mut [u8]) {
    let Some(line_end) = out.windows(2).position(|w| w == b"\r\n") else {
        return;
    };
    if let Some(version) = out.get_mut(line_end.saturating_sub(8)..line_end) {
        if version == b"HTTP/1.1" {
            version.copy_from_slice(b"HTTP/1.0");
        }
    }
}

fn body_error(err: BodyError) -> ProxyError {
    match err {
        BodyError::TooLarge => ProxyError::new(Side::Downstream, Kind::BodyTooLarge),
        BodyError::Framing(chunk) => ProxyError::new(
            Side::Downstream,
            Kind::BadRequest {
                status: 400,
                reason: match chunk {
                    ringmesh_http1::ChunkError::SizeOverflow => "chunk size too large",
                    _ => "invalid chunked body",
                },
            },
        ),
    }
}

fn timed_out(deadline: Option<Instant>) -> ProxyError {
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
async fn exchange_head(
    conn: &mut Conn,
    cluster: &Rc<ClusterRuntime>,
    endpoint: &Rc<EndpointRuntime>,
    body: &mut Body,
    sent: &Sent,
    http: &HttpTable,
    deadline: Option<Instant>,
    fresh_only: bool,
) -> Result<(monoio::net::TcpStream, Vec<u8>, ResponseHead), Failure> {
    let checkout = async {
        if fresh_only {
            forward::connect(cluster, endpoint)
                .await
                .map(|stream| Upstream {
                    stream,
                    reused: false,
                })
        } else {
            forward::checkout(cluster, endpoint).await
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
        match io::read_more(&mut conn.client, &mut conn.buf, idle, None).await {
            ReadOutcome::Data(_) => {}
            _ => return Err(Failure::ClientGone),
        }
        let n = match body.take(&conn.buf) {
            Ok(n) => n,
            Err(err) => return Err(Failure::Reply(body_error(err))),
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
        match io::read_more(&mut stream, &mut response_buf, wait, None).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downgrade_touches_only_the_request_line() {
        let mut out = b"GET / HTTP/1.1\r\nx: HTTP/1.1\r\n\r\n".to_vec();
        downgrade_request_line(&mut out);
        assert_eq!(&out[..], b"GET / HTTP/1.0\r\nx: HTTP/1.1\r\n\r\n");
        let mut odd = b"GET".to_vec();
        downgrade_request_line(&mut odd);
        assert_eq!(&odd[..], b"GET");
    }
}
