//! Routing: a pure function from a request's host, path, method and headers to the
//! first matching route of an HTTP listener's table. No IO, no allocation.

use crate::table::{HttpTable, Matcher, PathMatcher, Route, ValueMatcher};
use ringmesh_api::snapshot::HostMatch;

/// What routing needs to know about a request.
pub trait RequestFacts {
    fn method(&self) -> &[u8];
    /// Host without port, as sent (any case).
    fn host(&self) -> Option<&[u8]>;
    /// Path without query.
    fn path(&self) -> &[u8];
    /// First value of a header; `lower_name` is lower-case.
    fn header(&self, lower_name: &str) -> Option<&[u8]>;
}

/// The first route whose matcher accepts the request, in declared order.
pub fn select<'t>(table: &'t HttpTable, request: &impl RequestFacts) -> Option<&'t Route> {
    table
        .routes
        .iter()
        .find(|route| matches(&route.matcher, request))
}

/// Index of the first route that accepts the request.
pub fn select_index(table: &HttpTable, request: &impl RequestFacts) -> Option<usize> {
    table
        .routes
        .iter()
        .position(|route| matches(&route.matcher, request))
}

pub fn matches(matcher: &Matcher, request: &impl RequestFacts) -> bool {
    if let Some(host) = &matcher.host {
        let Some(request_host) = request.host() else {
            return false;
        };
        let accepted = match host {
            HostMatch::Exact(exact) => request_host.eq_ignore_ascii_case(exact.as_bytes()),
            HostMatch::Suffix(suffix) => {
                request_host.len() > suffix.len()
                    && ends_with_ignore_case(request_host, suffix.as_bytes())
            }
        };
        if !accepted {
            return false;
        }
    }
    if let Some(path) = &matcher.path {
        let request_path = request.path();
        let accepted = match path {
            PathMatcher::Exact(exact) => request_path == exact.as_bytes(),
            PathMatcher::Prefix(prefix) => request_path.starts_with(prefix.as_bytes()),
            PathMatcher::Regex(regex) => regex.is_match(request_path),
        };
        if !accepted {
            return false;
        }
    }
    if !matcher.methods.is_empty()
        && !matcher
            .methods
            .iter()
            .any(|method| method.as_bytes() == request.method())
    {
        return false;
    }
    matcher.headers.iter().all(
        |wanted| match (request.header(&wanted.name), &wanted.value) {
            (None, _) => false,
            (Some(_), ValueMatcher::Present) => true,
            (Some(value), ValueMatcher::Exact(exact)) => value == exact.as_bytes(),
            (Some(value), ValueMatcher::Regex(regex)) => regex.is_match(value),
        },
    )
}

fn ends_with_ignore_case(haystack: &[u8], suffix: &[u8]) -> bool {
    haystack.len() >= suffix.len()
        && haystack[haystack.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// Host header value without the port (`[::1]:80` → `[::1]`, `a.b:80` → `a.b`).
pub fn strip_port(host: &[u8]) -> &[u8] {
    if host.first() == Some(&b'[') {
        return match host.iter().position(|b| *b == b']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.iter().rposition(|b| *b == b':') {
        Some(colon) => &host[..colon],
        None => host,
    }
}

/// Path part of a request target: origin-form `/a?b` → `/a`; absolute-form
/// `http://h/a?b` → `/a`; `*` stays `*`.
pub fn target_path(target: &[u8]) -> &[u8] {
    let without_query = match target.iter().position(|b| *b == b'?' || *b == b'#') {
        Some(end) => &target[..end],
        None => target,
    };
    if without_query.first() == Some(&b'/') || without_query == b"*" {
        return without_query;
    }
    // absolute-form: skip "scheme://authority"
    let after_scheme = match find(without_query, b"://") {
        Some(at) => &without_query[at + 3..],
        None => return without_query,
    };
    match after_scheme.iter().position(|b| *b == b'/') {
        Some(slash) => &after_scheme[slash..],
        None => b"/",
    }
}

/// Authority of an absolute-form target (`http://h:1/x` → `h:1`).
pub fn target_authority(target: &[u8]) -> Option<&[u8]> {
    let at = find(target, b"://")?;
    let rest = &target[at + 3..];
    let end = rest
        .iter()
        .position(|b| matches!(*b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Action, HeaderMatcher, HttpTable, Route};
    use regex::bytes::Regex;
    use ringmesh_api::snapshot::{DirectResponse, ForwardHeaders, HeaderOps, HttpLimits};
    use std::time::Duration;

    struct Req {
        method: &'static str,
        host: Option<&'static str>,
        path: &'static str,
        headers: Vec<(&'static str, &'static str)>,
    }

    impl RequestFacts for Req {
        fn method(&self) -> &[u8] {
            self.method.as_bytes()
        }
        fn host(&self) -> Option<&[u8]> {
            self.host.map(str::as_bytes)
        }
        fn path(&self) -> &[u8] {
            self.path.as_bytes()
        }
        fn header(&self, lower_name: &str) -> Option<&[u8]> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(lower_name))
                .map(|(_, v)| v.as_bytes())
        }
    }

    fn req(method: &'static str, host: &'static str, path: &'static str) -> Req {
        Req {
            method,
            host: Some(host),
            path,
            headers: vec![],
        }
    }

    fn route(name: &str, matcher: Matcher) -> Route {
        Route {
            name: name.into(),
            matcher,
            action: Action::Direct(DirectResponse {
                status: 200,
                body: name.into(),
                content_type: "text/plain".into(),
            }),
            timeout: None,
            max_body: 1 << 20,
            request_headers: HeaderOps::default(),
            response_headers: HeaderOps::default(),
            retry: crate::resilience::retry::RetryPolicy::default(),
            max_replay_body: 0,
            rate_limit: None,
            fault: None,
            policies: Default::default(),
        }
    }

    fn table(routes: Vec<Route>) -> HttpTable {
        HttpTable {
            limits: HttpLimits {
                max_request_line: 8192,
                max_header_bytes: 65536,
                max_headers: 100,
                header_read_timeout_ms: 10_000,
                idle_timeout_ms: 60_000,
                max_body_bytes: 1 << 20,
            },
            codec_limits: ringmesh_http1::Limits {
                max_request_line: 8192,
                max_header_bytes: 65536,
                max_headers: 100,
            },
            forwarding: ForwardHeaders {
                x_forwarded_for: true,
                x_forwarded_proto: true,
                via: None,
                request_id: true,
            },
            via_value: None,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            routes,
        }
    }

    fn pick<'t>(table: &'t HttpTable, request: &Req) -> Option<&'t str> {
        select(table, request).map(|r| r.name.as_str())
    }

    #[test]
    fn host_exact_and_suffix_ignore_case() {
        let t = table(vec![
            route(
                "exact",
                Matcher {
                    host: Some(HostMatch::Exact("api.example.com".into())),
                    ..Default::default()
                },
            ),
            route(
                "suffix",
                Matcher {
                    host: Some(HostMatch::Suffix(".example.com".into())),
                    ..Default::default()
                },
            ),
        ]);
        assert_eq!(pick(&t, &req("GET", "API.example.com", "/")), Some("exact"));
        assert_eq!(
            pick(&t, &req("GET", "www.example.com", "/")),
            Some("suffix")
        );
        assert_eq!(pick(&t, &req("GET", "example.com", "/")), None);
        assert_eq!(pick(&t, &req("GET", "badexample.com", "/")), None);
    }

    #[test]
    fn paths_methods_headers_in_declared_order() {
        let t = table(vec![
            route(
                "exact",
                Matcher {
                    path: Some(PathMatcher::Exact("/a".into())),
                    ..Default::default()
                },
            ),
            route(
                "regex",
                Matcher {
                    path: Some(PathMatcher::Regex(Regex::new("^(?:/u/[0-9]+)$").unwrap())),
                    ..Default::default()
                },
            ),
            route(
                "post",
                Matcher {
                    path: Some(PathMatcher::Prefix("/a".into())),
                    methods: vec!["POST".into()],
                    ..Default::default()
                },
            ),
            route(
                "canary",
                Matcher {
                    headers: vec![HeaderMatcher {
                        name: "x-env".into(),
                        value: ValueMatcher::Exact("canary".into()),
                    }],
                    ..Default::default()
                },
            ),
            route(
                "prefix",
                Matcher {
                    path: Some(PathMatcher::Prefix("/a".into())),
                    ..Default::default()
                },
            ),
        ]);
        assert_eq!(pick(&t, &req("GET", "h", "/a")), Some("exact"));
        assert_eq!(pick(&t, &req("GET", "h", "/u/42")), Some("regex"));
        assert_eq!(pick(&t, &req("GET", "h", "/u/42x")), None);
        assert_eq!(pick(&t, &req("POST", "h", "/ab")), Some("post"));
        assert_eq!(pick(&t, &req("GET", "h", "/ab")), Some("prefix"));
        let mut canary = req("GET", "h", "/ab");
        canary.headers.push(("X-Env", "canary"));
        assert_eq!(pick(&t, &canary), Some("canary"));
    }

    #[test]
    fn header_present_and_regex() {
        let t = table(vec![
            route(
                "present",
                Matcher {
                    headers: vec![HeaderMatcher {
                        name: "x-debug".into(),
                        value: ValueMatcher::Present,
                    }],
                    ..Default::default()
                },
            ),
            route(
                "re",
                Matcher {
                    headers: vec![HeaderMatcher {
                        name: "x-v".into(),
                        value: ValueMatcher::Regex(Regex::new("^(?:v[12])$").unwrap()),
                    }],
                    ..Default::default()
                },
            ),
        ]);
        let mut r = req("GET", "h", "/");
        assert_eq!(pick(&t, &r), None);
        r.headers.push(("x-v", "v2"));
        assert_eq!(pick(&t, &r), Some("re"));
        r.headers.push(("x-debug", ""));
        assert_eq!(pick(&t, &r), Some("present"));
    }

    #[test]
    fn no_host_fails_host_match() {
        let t = table(vec![route(
            "h",
            Matcher {
                host: Some(HostMatch::Exact("a".into())),
                ..Default::default()
            },
        )]);
        let r = Req {
            method: "GET",
            host: None,
            path: "/",
            headers: vec![],
        };
        assert_eq!(pick(&t, &r), None);
    }

    #[test]
    fn target_and_host_helpers() {
        assert_eq!(target_path(b"/a/b?x=1"), b"/a/b");
        assert_eq!(target_path(b"http://h:8/a?x"), b"/a");
        assert_eq!(target_path(b"http://h"), b"/");
        assert_eq!(target_path(b"*"), b"*");
        assert_eq!(target_authority(b"http://h:8/a"), Some(&b"h:8"[..]));
        assert_eq!(strip_port(b"a.b:80"), b"a.b");
        assert_eq!(strip_port(b"[::1]:80"), b"[::1]");
        assert_eq!(strip_port(b"a.b"), b"a.b");
    }
}
