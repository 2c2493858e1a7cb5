//! Tries and retries of one request: pick an endpoint (a different one after a
//! failure where possible), run one try under its per-try deadline, tell outlier
//! detection how it went, and decide with the route's retry policy, the cluster's
//! retry budget and its breaker whether to try again after a jittered backoff.

use super::body::Body;
use super::upstream::{exchange_head, Failure, Sent};
use super::Conn;
use crate::balance::{ClusterRuntime, EndpointRuntime, InFlight};
use crate::error::{Kind, ProxyError, Side};
use crate::resilience::breaker::{Guard, Kind as Slot};
use crate::resilience::outlier::Outcome;
use crate::resilience::retry::{self, Decision, Failure as TryFailure};
use crate::table::{HttpTable, Route};
use ringmesh_http1::ResponseHead;
use std::rc::Rc;
use std::time::Instant;

/// A response head received from an upstream, ready to relay.
pub(super) struct Delivered {
    pub upstream: crate::stream::UpstreamIo,
    pub endpoint: Rc<EndpointRuntime>,
    pub response_buf: Vec<u8>,
    pub response: ResponseHead,
    /// Tries made, the first included.
    pub tries: u32,
    pub in_flight: InFlight,
}

pub(super) enum Given {
    /// No usable response: answer the client with this error.
    Reply(ProxyError),
    /// The client went away meanwhile.
    ClientGone,
}

/// What a try's result means for retrying and for outlier detection.
fn classify(err: &ProxyError) -> Option<(TryFailure, Outcome)> {
    match err.kind {
        Kind::ConnectRefused(_) | Kind::ConnectTimeout => {
            Some((TryFailure::ConnectFailure, Outcome::ConnectFailure))
        }
        Kind::UpstreamReset(_) | Kind::UpstreamClosedEarly | Kind::BadResponse(_) => {
            Some((TryFailure::Reset, Outcome::Reset))
        }
        Kind::RouteTimeout => Some((TryFailure::Timeout, Outcome::Timeout)),
        // Nothing of the request was sent before the handshake failed.
        Kind::UpstreamTls(..) => Some((TryFailure::ConnectFailure, Outcome::ConnectFailure)),
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn deliver(
    conn: &mut Conn,
    cluster: &Rc<ClusterRuntime>,
    route: &Route,
    http: &HttpTable,
    sent: &Sent,
    body: &mut Body,
    replayable: bool,
    hash: Option<u64>,
    deadline: Option<Instant>,
    origin: Option<crate::forward::Origin<'_>>,
) -> Result<Delivered, Given> {
    let policy = &route.retry;
    let idempotent = sent.method.is_idempotent();
    let mut tries: u32 = 0;
    let mut avoid: Option<usize> = None;
    // Held while a retry is in flight: the breaker's "max active retries".
    let mut _retry_slot: Option<Guard> = None;
    loop {
        let Some(index) = cluster.pick(conn.worker.random(), hash, avoid) else {
            return Err(Given::Reply(ProxyError::new(Side::Local, Kind::NoEndpoint)));
        };
        let Some(endpoint) = cluster.endpoint(index).cloned() else {
            return Err(Given::Reply(ProxyError::new(Side::Local, Kind::NoEndpoint)));
        };
        tries += 1;
        let try_deadline = match (deadline, policy.per_try_timeout) {
            (Some(all), Some(each)) => Some(all.min(Instant::now() + each)),
            (None, Some(each)) => Some(Instant::now() + each),
            (all, None) => all,
        };
        let in_flight = InFlight::start(&endpoint);
        let mut outcome = exchange_head(
            conn,
            cluster,
            &endpoint,
            body,
            sent,
            http,
            try_deadline,
            false,
            origin,
        )
        .await;
        if matches!(outcome, Err(Failure::Stale)) && replayable {
            // The pooled connection was closed while idle; the request never got
            // there, so this is the same try on a fresh connection.
            outcome = exchange_head(
                conn,
                cluster,
                &endpoint,
                body,
                sent,
                http,
                try_deadline,
                true,
                origin,
            )
            .await;
        }
        let (failure, given) = match outcome {
            Ok((upstream, response_buf, response)) => {
                cluster.record(index, Outcome::Status(response.status));
                let failure = match grpc_failure(policy, &response_buf, &conn.response_fields) {
                    Some(code) => TryFailure::Grpc(code),
                    None => TryFailure::Status(response.status),
                };
                let retry = if response.status >= 500 || matches!(failure, TryFailure::Grpc(_)) {
                    decide(
                        cluster, route, failure, tries, idempotent, replayable, deadline,
                    )
                } else {
                    None
                };
                let Some(slot) = retry else {
                    return Ok(Delivered {
                        upstream,
                        endpoint,
                        response_buf,
                        response,
                        tries,
                        in_flight,
                    });
                };
                // The answer is discarded: its connection (body unread) is closed.
                conn.worker.buffers.give(response_buf);
                drop(upstream);
                (failure, Err(slot))
            }
            Err(Failure::ClientGone) => return Err(Given::ClientGone),
            Err(Failure::Stale) => {
                let err = ProxyError::new(Side::Upstream, Kind::UpstreamClosedEarly);
                cluster.record(index, Outcome::Reset);
                (TryFailure::Reset, Ok(err))
            }
            Err(Failure::Reply(err)) => match classify(&err) {
                Some((failure, outcome)) => {
                    cluster.record(index, outcome);
                    (failure, Ok(err))
                }
                None => return Err(Given::Reply(err)),
            },
        };
        // `given`: the error to answer with unless a retry is allowed, or the
        // retry slot already granted for a retriable status.
        let slot = match given {
            Err(slot) => slot,
            Ok(err) => match decide(
                cluster, route, failure, tries, idempotent, replayable, deadline,
            ) {
                Some(slot) => slot,
                None => return Err(Given::Reply(err)),
            },
        };
        _retry_slot = Some(slot);
        drop(in_flight);
        avoid = Some(index);
        let pause = retry::backoff(policy, tries - 1, conn.worker.random());
        let pause = match deadline {
            Some(at) => pause.min(at.saturating_duration_since(Instant::now())),
            None => pause,
        };
        if !pause.is_zero() {
            monoio::time::sleep(pause).await;
        }
    }
}

/// A gRPC failure code (`grpc-status` other than 0 in the response head) when the
/// route retries on any gRPC code; the header is not looked at otherwise.
fn grpc_failure(
    policy: &retry::RetryPolicy,
    head: &[u8],
    fields: &[ringmesh_http1::HeaderSpan],
) -> Option<u32> {
    if !policy.retry_on.any_grpc() {
        return None;
    }
    let value = ringmesh_http1::header_value(head, fields, "grpc-status")?;
    let code: u32 = std::str::from_utf8(value).ok()?.trim().parse().ok()?;
    (code != 0).then_some(code)
}

/// Whether to try again: the policy, then the breaker's retry slots, then the
/// budget (last, so a refused retry spends no token).
#[allow(clippy::too_many_arguments)]
fn decide(
    cluster: &ClusterRuntime,
    route: &Route,
    failure: TryFailure,
    tries: u32,
    idempotent: bool,
    replayable: bool,
    deadline: Option<Instant>,
) -> Option<Guard> {
    if deadline.is_some_and(|at| Instant::now() >= at) {
        return None;
    }
    // Nothing of the body was sent when the connect failed: it can always go again.
    let replayable = replayable || failure == TryFailure::ConnectFailure;
    let decision = retry::should_retry(
        &route.retry,
        tries - 1,
        failure,
        idempotent,
        replayable,
        false,
    );
    if decision != Decision::Retry {
        return None;
    }
    let Ok(slot) = cluster.breaker.try_acquire(Slot::Retries) else {
        cluster.stats.overflows.inc();
        return None;
    };
    if !cluster
        .retry_budget
        .borrow_mut()
        .try_withdraw(Instant::now())
    {
        cluster.stats.retries_budget_exhausted.inc();
        return None;
    }
    cluster.stats.retries.inc();
    Some(slot)
}
