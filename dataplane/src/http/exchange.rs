//! Forwarding one request: pick an endpoint, send the rewritten head and the body
//! (replaying once on a fresh connection when a pooled one turns out dead), read the
//! response head, relay the response, and return the connection to the pool.

use super::attempts::{self, Delivered, Given};
use super::body::{Body, BodyError};
use super::io::{self, ReadOutcome, WriteOutcome};
use super::upstream::Sent;
use super::{Conn, Next};
use crate::balance::ClusterRuntime;
use crate::error::{Kind, ProxyError, Side};
use crate::metrics::ListenerStats;
use crate::resilience::breaker::Kind as Slot;
use crate::resilience::retry::RetryOn;
use crate::state::WorkerTable;
use crate::table::{HttpTable, Route};
use ringmesh_api::snapshot::HashKey;
use ringmesh_http1::{BodyFraming, HeadEdits, RequestHead};
use std::time::Instant;

#[allow(clippy::too_many_arguments)]
pub(super) async fn forward(
    conn: &mut Conn,
    table: &WorkerTable,
    listener_index: usize,
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
    if let Some(record) = conn.record.as_deref_mut() {
        record.set_cluster(&cluster.name);
    }
    let origin = match crate::forward::origin_of(table, cluster_index) {
        Ok(origin) => origin,
        Err(err) => return conn.reply_error(&err, stats).await,
    };
    // Circuit breaker: at most this many requests in flight to the cluster.
    let _request_slot = match cluster.breaker.try_acquire(Slot::Requests) {
        Ok(slot) => slot,
        Err(overflow) => {
            cluster.stats.overflows.inc();
            return conn.reply_overflow(overflow, stats).await;
        }
    };
    cluster.retry_budget.borrow_mut().deposit(started);
    let sent = Sent {
        method: head.method,
        http10: head.minor_version == 0,
        keep_alive: head.keep_alive,
        upgrade: head.upgrade,
        expect_continue: head.expect_continue,
    };
    let deadline = route.timeout.map(|timeout| started + timeout);
    let hash = affinity_hash(conn, &cluster, head);

    // A body small enough to hold is read whole first, so a retry can send it again.
    if let Err(next) = hold_body_for_replay(conn, http, head, route, stats).await {
        return next;
    }
    // Head and whatever body bytes arrived with it go out in one write.
    let mut body = Body::new(head.body, route.max_body);
    let identity_header = table
        .table
        .listeners
        .get(listener_index)
        .and_then(|l| l.identity_header.as_deref());
    write_upstream_head(conn, http, head, route, identity_header);
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

    let delivered = attempts::deliver(
        conn, &cluster, route, http, &sent, &mut body, replayable, hash, deadline, origin,
    )
    .await;
    let Delivered {
        mut upstream,
        endpoint,
        mut response_buf,
        response,
        tries,
        in_flight,
    } = match delivered {
        Ok(delivered) => delivered,
        Err(Given::Reply(err)) => return conn.reply_error(&err, stats).await,
        Err(Given::ClientGone) => {
            conn.note_detail("client_gone");
            return Next::Close;
        }
    };
    if let Some(record) = conn.record.as_deref_mut() {
        record.endpoint = Some(endpoint.addr);
        record.attempts = tries;
        record.bytes_received = body.taken();
    }
    let mut tries_text = [0u8; 10];
    let tries_len = write_decimal(&mut tries_text, tries);
    let attempts_header: [(&str, &[u8]); 1] = [("x-ringmesh-attempts", &tries_text[..tries_len])];
    let response_extra: &[(&str, &[u8])] = if tries > 1 { &attempts_header } else { &[] };

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
        extra: response_extra,
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
    conn.note_response(response.status, 0);

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
        match io::read_more(&mut upstream, &mut response_buf, idle).await {
            ReadOutcome::Data(_) => {}
            ReadOutcome::Eof if response_body.finish_at_eof() => break,
            // Truncated or stalled after the head went out: all we can do is close.
            _ => {
                conn.note_detail("upstream_cut_body");
                conn.note_body(&response_body);
                return Next::Close;
            }
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
    conn.note_body(&response_body);
    if cluster.tracks_latency() {
        in_flight.finish(started.elapsed());
    }
    if upstream_clean && response.keep_alive && body.is_complete() {
        endpoint.idle.put(upstream, cluster.max_idle_per_endpoint);
    }
    if client_keep_alive && body.is_complete() {
        Next::KeepAlive
    } else {
        Next::Close
    }
}

/// Rewrite the request head into `conn.out`.
fn write_upstream_head(
    conn: &mut Conn,
    http: &HttpTable,
    head: &RequestHead,
    route: &Route,
    identity_header: Option<&str>,
) {
    let request_id = conn.worker.next_request_id();
    let has_request_id =
        ringmesh_http1::header_value(&conn.buf, &conn.request_fields, "x-request-id").is_some();
    let mut extra: [(&str, &[u8]); 4] = [("", b""); 4];
    let mut count = 0;
    if http.forwarding.x_forwarded_proto {
        let proto: &[u8] = if conn.client.is_tls() {
            b"https"
        } else {
            b"http"
        };
        extra[count] = ("x-forwarded-proto", proto);
        count += 1;
    }
    // Any copy sent by the client was put on the route's remove list at build.
    if let (Some(header), Some(peer)) = (identity_header, conn.peer.as_ref()) {
        extra[count] = (header, peer.as_str().as_bytes());
        count += 1;
    }
    if let Some(via) = &http.via_value {
        extra[count] = ("via", via);
        count += 1;
    }
    if http.forwarding.request_id && !has_request_id {
        extra[count] = ("x-request-id", &request_id);
        count += 1;
        if let Some(record) = conn.record.as_deref_mut() {
            record.request_id.extend_from_slice(&request_id);
        }
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

/// The affinity key's hash for ring hash / Maglev clusters.
fn affinity_hash(conn: &Conn, cluster: &ClusterRuntime, _head: &RequestHead) -> Option<u64> {
    let key: &[u8] = match cluster.hash_key.as_ref()? {
        HashKey::Header(name) => {
            ringmesh_http1::header_value(&conn.buf, &conn.request_fields, name)?
        }
        HashKey::Cookie(name) => {
            let cookies = ringmesh_http1::header_value(&conn.buf, &conn.request_fields, "cookie")?;
            cookie_value(cookies, name.as_bytes())?
        }
        HashKey::SourceIp => conn.client_ip.as_bytes(),
    };
    Some(crate::balance::ring_hash::key_hash(key))
}

/// The value of cookie `name` in a `Cookie` header (`a=1; b=2`).
fn cookie_value<'a>(cookies: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    cookies.split(|b| *b == b';').find_map(|pair| {
        let pair = pair.strip_prefix(b" ").unwrap_or(pair);
        let eq = pair.iter().position(|b| *b == b'=')?;
        (&pair[..eq] == name).then(|| &pair[eq + 1..])
    })
}

/// Read a small `Content-Length` body completely before sending, so the request
/// can be replayed on a retry. Bodies over the route's replay limit, chunked bodies
/// and routes without retries stream as usual.
async fn hold_body_for_replay(
    conn: &mut Conn,
    http: &HttpTable,
    head: &RequestHead,
    route: &Route,
    stats: &ListenerStats,
) -> Result<(), Next> {
    let BodyFraming::Length(length) = head.body else {
        return Ok(());
    };
    // A connect failure leaves the body unread in the client socket, so retrying
    // only those needs nothing held; other conditions need the body kept.
    let beyond_connect =
        route.retry.retry_on.union(RetryOn::CONNECT_FAILURE) != RetryOn::CONNECT_FAILURE;
    if route.retry.max_retries == 0 || !beyond_connect || length > route.max_replay_body {
        return Ok(());
    }
    let wanted = head.head_len + length as usize;
    if conn.buf.len() >= wanted {
        return Ok(());
    }
    if head.expect_continue {
        let (_, returned) = io::write_all(&mut conn.client, CONTINUE_HELD, None).await;
        if returned.is_none() {
            return Err(Next::Close);
        }
    }
    conn.buf.reserve(wanted.saturating_sub(conn.buf.len()));
    while conn.buf.len() < wanted {
        let idle = Some(Instant::now() + http.idle_timeout);
        match io::read_more(&mut conn.client, &mut conn.buf, idle).await {
            ReadOutcome::Data(_) => {}
            ReadOutcome::TimedOut => {
                let err = ProxyError::new(Side::Downstream, Kind::HeadTimeout);
                return Err(conn.reply_error(&err, stats).await);
            }
            _ => return Err(Next::Close),
        }
    }
    Ok(())
}

const CONTINUE_HELD: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Decimal digits of `value` into `out`; returns how many were written.
fn write_decimal(out: &mut [u8; 10], value: u32) -> usize {
    let mut digits = [0u8; 10];
    let mut n = value;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 || len == digits.len() {
            break;
        }
    }
    for (slot, digit) in out.iter_mut().zip(digits[..len].iter().rev()) {
        *slot = *digit;
    }
    len
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

pub(super) fn body_error(err: BodyError) -> ProxyError {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_decimals() {
        assert_eq!(
            cookie_value(b"a=1; sid=xyz; b=2", b"sid"),
            Some(&b"xyz"[..])
        );
        assert_eq!(cookie_value(b"a=1", b"sid"), None);
        let mut out = [0u8; 10];
        let len = write_decimal(&mut out, 305);
        assert_eq!(&out[..len], b"305");
        let len = write_decimal(&mut out, 0);
        assert_eq!(&out[..len], b"0");
    }

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
