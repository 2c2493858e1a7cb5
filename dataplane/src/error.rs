//! The data-path error: which side failed, what happened, whether a retry is safe,
//! and (in one place) the status code a client gets for it.

use std::fmt;
use std::io;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client: malformed request, went away, too slow.
    Downstream,
    /// The upstream: refused, reset, malformed response, too slow.
    Upstream,
    /// This proxy: no route, limit reached.
    Local,
}

#[derive(Debug)]
pub enum Kind {
    BadRequest {
        status: u16,
        reason: &'static str,
    },
    HeadTimeout,
    BodyTooLarge,
    ClientGone,
    NoRoute,
    NoEndpoint,
    ConnectRefused(io::Error),
    ConnectTimeout,
    /// The upstream connection failed before any response byte arrived.
    UpstreamReset(io::Error),
    UpstreamClosedEarly,
    BadResponse(&'static str),
    RouteTimeout,
    /// The TLS handshake with the upstream failed (reason label, detail).
    UpstreamTls(&'static str, String),
    /// An authorization policy refused the request (its name).
    Forbidden,
    /// A circuit breaker's limit was reached (the answer names it in a header).
    Overflow(crate::resilience::breaker::Overflow),
}

#[derive(Debug)]
pub struct ProxyError {
    pub side: Side,
    pub kind: Kind,
}

impl ProxyError {
    pub fn new(side: Side, kind: Kind) -> Self {
        ProxyError { side, kind }
    }

    pub fn connect(err: io::Error) -> Self {
        ProxyError::new(Side::Upstream, Kind::ConnectRefused(err))
    }

    pub fn upstream_io(err: io::Error) -> Self {
        ProxyError::new(Side::Upstream, Kind::UpstreamReset(err))
    }

    /// The status a client gets, if it can still get one.
    pub fn status(&self) -> u16 {
        match &self.kind {
            Kind::BadRequest { status, .. } => *status,
            Kind::HeadTimeout => 408,
            Kind::BodyTooLarge => 413,
            Kind::ClientGone => 400,
            Kind::NoRoute => 404,
            Kind::NoEndpoint
            | Kind::ConnectRefused(_)
            | Kind::ConnectTimeout
            | Kind::Overflow(_) => 503,
            Kind::UpstreamReset(_) | Kind::UpstreamClosedEarly | Kind::BadResponse(_) => 502,
            Kind::RouteTimeout => 504,
            Kind::UpstreamTls(..) => 502,
            Kind::Forbidden => 403,
        }
    }

    /// Whether sending the same request again (to a fresh connection) cannot cause
    /// it to be processed twice: the upstream never saw it or provably dropped it.
    pub fn retry_safe(&self) -> bool {
        matches!(self.kind, Kind::ConnectRefused(_) | Kind::ConnectTimeout)
    }

    /// A stable snake_case label for logs (the access log's `detail`).
    pub fn label(&self) -> &'static str {
        match &self.kind {
            Kind::BadRequest { .. } => "bad_request",
            Kind::HeadTimeout => "head_timeout",
            Kind::BodyTooLarge => "body_too_large",
            Kind::ClientGone => "client_gone",
            Kind::NoRoute => "no_route",
            Kind::NoEndpoint => "no_endpoint",
            Kind::ConnectRefused(_) => "connect_refused",
            Kind::ConnectTimeout => "connect_timeout",
            Kind::UpstreamReset(_) => "upstream_reset",
            Kind::UpstreamClosedEarly => "upstream_closed_early",
            Kind::BadResponse(_) => "bad_response",
            Kind::RouteTimeout => "route_timeout",
            Kind::UpstreamTls(..) => "upstream_tls",
            Kind::Forbidden => "forbidden",
            Kind::Overflow(overflow) => overflow.0.name(),
        }
    }

    pub fn reason(&self) -> String {
        match &self.kind {
            Kind::BadRequest { reason, .. } => (*reason).to_string(),
            Kind::HeadTimeout => "request head not received in time".into(),
            Kind::BodyTooLarge => "request body exceeds the route's limit".into(),
            Kind::ClientGone => "client closed the connection".into(),
            Kind::NoRoute => "no route matched this request".into(),
            Kind::NoEndpoint => "cluster has no endpoint".into(),
            Kind::ConnectRefused(err) => format!("upstream connect failed: {err}"),
            Kind::ConnectTimeout => "upstream connect timed out".into(),
            Kind::UpstreamReset(err) => format!("upstream connection failed: {err}"),
            Kind::UpstreamClosedEarly => "upstream closed the connection before responding".into(),
            Kind::BadResponse(reason) => format!("invalid upstream response: {reason}"),
            Kind::RouteTimeout => "upstream did not respond within the route timeout".into(),
            Kind::Overflow(overflow) => format!("circuit breaker open: {}", overflow.0.name()),
            Kind::UpstreamTls(reason, detail) => {
                format!("upstream TLS handshake failed ({reason}): {detail}")
            }
            Kind::Forbidden => "forbidden by policy".into(),
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.side, self.reason())
    }
}

impl std::error::Error for ProxyError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_live_in_one_place() {
        let cases = [
            (Kind::NoRoute, 404),
            (Kind::BodyTooLarge, 413),
            (Kind::HeadTimeout, 408),
            (Kind::ConnectTimeout, 503),
            (Kind::UpstreamClosedEarly, 502),
            (Kind::RouteTimeout, 504),
        ];
        for (kind, status) in cases {
            assert_eq!(ProxyError::new(Side::Local, kind).status(), status);
        }
        assert!(
            ProxyError::connect(io::Error::from(io::ErrorKind::ConnectionRefused)).retry_safe()
        );
        assert!(!ProxyError::new(Side::Upstream, Kind::UpstreamClosedEarly).retry_safe());
    }
}
