//! Validation of one `[[listener]]`: its kind, the keys that kind allows, and the
//! HTTP limits checked against each other.

use super::at::At;
use super::resilience::rate_limit;
use super::route::route;
use super::scalar::{duration_ms, int_in, name, required, size_in, socket_addr, AddrUse};
use super::security;
use super::ClusterNames;
use crate::defaults;
use crate::error::Errors;
use crate::file::{ListenerFile, Protocol, ViaValue};
use crate::snapshot::MeshMode;
use crate::validated::{default_route_name, ValidHttp, ValidListener, ValidListenerKind};
use std::borrow::Cow;

const MAX_CONNECTIONS: i64 = 1_000_000;
/// Big enough for any real request head; heads beyond it are an abuse vector.
const MAX_HEADER_BYTES_CEILING: u64 = 1024 * 1024;
const MIN_HEADER_BYTES: u64 = 256;
const MIN_REQUEST_LINE: u64 = 64;
const MAX_HEADERS_CEILING: i64 = 10_000;

pub(crate) fn listener(
    errors: &mut Errors,
    at: At<'_>,
    file: &ListenerFile,
    clusters: &ClusterNames<'_>,
) -> Option<ValidListener> {
    let before = errors.0.len();
    let name = name(errors, at.key("name"), &file.name);
    let bind = required(errors, at.key("bind"), &file.bind)
        .and_then(|b| socket_addr(errors, at.key("bind"), b, AddrUse::Bind));
    let protocol = required(errors, at.key("protocol"), &file.protocol).copied();
    let max_connections = file
        .max_connections
        .and_then(|n| int_in(errors, at.key("max_connections"), n, 1, MAX_CONNECTIONS));
    let idle_timeout_ms = file
        .idle_timeout
        .as_ref()
        .and_then(|d| duration_ms(errors, at.key("idle_timeout"), d, false));
    let rate_limit = file
        .rate_limit
        .as_ref()
        .and_then(|r| rate_limit(errors, at.key("rate_limit"), r));
    let kind = match protocol {
        Some(Protocol::Tcp | Protocol::Tls | Protocol::TlsPassthrough) => tcp(
            errors,
            at,
            file,
            clusters,
            protocol == Some(Protocol::TlsPassthrough),
        ),
        Some(Protocol::Http | Protocol::Https) => {
            http(errors, at, file, clusters).map(ValidListenerKind::Http)
        }
        None => None,
    };
    let terminates = matches!(protocol, Some(Protocol::Https | Protocol::Tls));
    let tls = if terminates {
        security::listener_tls(errors, at.key("tls"), file.tls.as_ref())
    } else {
        if file.tls.is_some() {
            errors.add_hint(
                at.key("tls"),
                "tls is only for https and tls listeners",
                "set protocol = \"https\" (HTTP) or \"tls\" (L4) to terminate TLS",
            );
        }
        None
    };
    let mesh = security::mesh_mode(file.mesh);
    let passthrough = protocol == Some(Protocol::TlsPassthrough);
    if mesh.is_some() && (terminates || passthrough) {
        errors.add_hint(
            at.key("mesh"),
            "mesh is only for tcp and http listeners",
            "a mesh listener terminates mTLS with this dataplane's SVID; remove tls or mesh",
        );
    }
    let http_kind = matches!(protocol, Some(Protocol::Http | Protocol::Https));
    let identity_header =
        security::identity_header(errors, at.key("identity_header"), &file.identity_header);
    if identity_header.is_some() && !http_kind {
        errors.add_hint(
            at.key("identity_header"),
            "identity_header is only for http and https listeners",
            "remove it",
        );
    }
    if file.policy.is_some() && passthrough {
        errors.add_hint(
            at.key("policy"),
            "policies need a terminated connection",
            "a tls_passthrough listener never sees the peer's identity; remove the policies",
        );
    }
    let policies = security::policies(errors, at, file.policy.as_ref(), http_kind);
    let peer_rules = policies.iter().any(|p| !p.peers.is_empty());
    if peer_rules && mesh.is_none() {
        errors.add_hint(
            at.key("policy"),
            "policies on peers need a mesh listener",
            "add mesh = \"strict\" so clients present SPIFFE IDs",
        );
    }
    if errors.0.len() != before {
        return None;
    }
    Some(ValidListener {
        name: name?.to_string(),
        bind: bind?,
        max_connections,
        idle_timeout_ms,
        rate_limit,
        kind: kind?,
        tls,
        mesh,
        identity_header,
        policies,
    })
}

/// The listener's effective mesh mode, for route policies that check peers.
pub(crate) fn has_mesh(file: &ListenerFile) -> bool {
    security::mesh_mode(file.mesh)
        .is_some_and(|m| matches!(m, MeshMode::Strict | MeshMode::Permissive))
}

fn tcp(
    errors: &mut Errors,
    at: At<'_>,
    file: &ListenerFile,
    clusters: &ClusterNames<'_>,
    passthrough: bool,
) -> Option<ValidListenerKind> {
    if file.sni_routes.is_some() && !passthrough {
        errors.add_hint(
            at.key("sni_routes"),
            "sni_routes are only for tls_passthrough listeners",
            "set protocol = \"tls_passthrough\"",
        );
    }
    let sni_routes = if passthrough {
        security::sni_routes(errors, at, file.sni_routes.as_ref(), clusters)
    } else {
        Vec::new()
    };
    let http_only = [
        ("max_request_line", file.max_request_line.is_some()),
        ("max_header_bytes", file.max_header_bytes.is_some()),
        ("max_headers", file.max_headers.is_some()),
        ("header_read_timeout", file.header_read_timeout.is_some()),
        ("max_body", file.max_body.is_some()),
        ("x_forwarded_for", file.x_forwarded_for.is_some()),
        ("x_forwarded_proto", file.x_forwarded_proto.is_some()),
        ("via", file.via.is_some()),
        ("request_id", file.request_id.is_some()),
    ];
    for (key, _) in http_only.iter().filter(|(_, set)| *set) {
        errors.add_hint(
            at.key(key),
            format!("{key} is only for http listeners"),
            "remove it, or set protocol = \"http\"",
        );
    }
    if file.route.is_some() {
        errors.add_hint(
            at.key("route"),
            "routes are only for http listeners",
            "a tcp listener forwards everything to its cluster; set protocol = \"http\" to route",
        );
    }
    let cluster = match &file.cluster {
        Some(cluster) => clusters.resolve(errors, at.key("cluster"), cluster),
        None => {
            errors.add_hint(
                at.key("cluster"),
                "a tcp listener needs a cluster",
                "add cluster = \"<name>\"",
            );
            None
        }
    };
    Some(ValidListenerKind::Tcp {
        cluster: cluster?,
        splice: file.splice,
        passthrough,
        sni_routes,
    })
}

fn http(
    errors: &mut Errors,
    at: At<'_>,
    file: &ListenerFile,
    clusters: &ClusterNames<'_>,
) -> Option<ValidHttp> {
    let before = errors.0.len();
    if file.cluster.is_some() {
        errors.add_hint(
            at.key("cluster"),
            "cluster is not allowed on an http listener",
            "add a route instead: [[listener.route]] with cluster = \"<name>\"",
        );
    }
    if file.splice.is_some() {
        errors.add_hint(
            at.key("splice"),
            "splice is only for tcp listeners",
            "remove it",
        );
    }
    let max_header_bytes = file.max_header_bytes.as_ref().and_then(|s| {
        size_in(
            errors,
            at.key("max_header_bytes"),
            s,
            MIN_HEADER_BYTES,
            MAX_HEADER_BYTES_CEILING,
        )
    });
    let header_ceiling = max_header_bytes.unwrap_or(u64::from(defaults::MAX_HEADER_BYTES));
    let max_request_line = file.max_request_line.as_ref().and_then(|s| {
        size_in(
            errors,
            at.key("max_request_line"),
            s,
            MIN_REQUEST_LINE,
            MAX_HEADER_BYTES_CEILING,
        )
    });
    let line = max_request_line.unwrap_or(u64::from(defaults::MAX_REQUEST_LINE));
    // Only meaningful when both values are otherwise valid; compare effective values
    // so a lowered max_header_bytes alone is caught against the default line limit.
    let both_ok = file.max_header_bytes.is_none() || max_header_bytes.is_some();
    let line_ok = file.max_request_line.is_none() || max_request_line.is_some();
    if both_ok && line_ok && line > header_ceiling {
        let key = if file.max_request_line.is_some() {
            "max_request_line"
        } else {
            "max_header_bytes"
        };
        errors.add_hint(
            at.key(key),
            format!("max_request_line ({line}) is larger than max_header_bytes ({header_ceiling})"),
            "the request line is part of the head; raise max_header_bytes or lower max_request_line",
        );
    }
    let max_headers = file
        .max_headers
        .and_then(|n| int_in(errors, at.key("max_headers"), n, 1, MAX_HEADERS_CEILING));
    let header_read_timeout_ms = file
        .header_read_timeout
        .as_ref()
        .and_then(|d| duration_ms(errors, at.key("header_read_timeout"), d, false));
    let max_body_bytes = file
        .max_body
        .as_ref()
        .and_then(|s| size_in(errors, at.key("max_body"), s, 0, u64::MAX));
    let via = match &file.via {
        None => None,
        Some(ViaValue::Off) => Some(None),
        Some(ViaValue::Name(v)) => {
            let ok = !v.is_empty() && v.chars().all(|c| c.is_ascii_graphic());
            if !ok {
                errors.add_hint(
                    at.key("via"),
                    format!("via {v:?} is not a single visible word"),
                    "write a name such as \"ringmesh\", or false to add no Via",
                );
            }
            Some(Some(v.clone()))
        }
    };
    let route_count = file.route.as_ref().map_or(0, Vec::len);
    let mut routes = Vec::with_capacity(route_count);
    // Borrowed names: only routes without one get a (generated) owned name.
    let mut names: foldhash::HashMap<Cow<'_, str>, usize> =
        foldhash::HashMap::with_capacity_and_hasher(route_count, Default::default());
    let routes_at = at.key("route");
    for (i, r) in file.route.iter().flatten().enumerate() {
        let route_at = routes_at.index(i);
        let effective = match r.name.as_deref() {
            Some(name) => Cow::Borrowed(name),
            None => Cow::Owned(default_route_name(i)),
        };
        if let Some(first) = names.get(&effective) {
            errors.add_hint(
                route_at.key("name"),
                format!("duplicate route name \"{effective}\""),
                format!("also used by {at}.route[{first}]; route names appear in metrics"),
            );
        } else {
            names.insert(effective, i);
        }
        if let Some(mut r) = route(errors, route_at, r, clusters) {
            r.policies = security::policies(errors, route_at, r_file_policy(file, i), true);
            if r.policies.iter().any(|p| !p.peers.is_empty()) && !has_mesh(file) {
                errors.add_hint(
                    route_at.key("policy"),
                    "policies on peers need a mesh listener",
                    "add mesh = \"strict\" to the listener so clients present SPIFFE IDs",
                );
            }
            routes.push(r);
        }
    }
    if errors.0.len() != before {
        return None;
    }
    Some(ValidHttp {
        max_request_line: max_request_line.and_then(|v| u32::try_from(v).ok()),
        max_header_bytes: max_header_bytes.and_then(|v| u32::try_from(v).ok()),
        max_headers,
        header_read_timeout_ms,
        max_body_bytes,
        x_forwarded_for: file.x_forwarded_for,
        x_forwarded_proto: file.x_forwarded_proto,
        via,
        request_id: file.request_id,
        routes,
    })
}

fn r_file_policy(file: &ListenerFile, route: usize) -> Option<&Vec<crate::file::PolicyFile>> {
    file.route
        .as_ref()
        .and_then(|routes| routes.get(route))
        .and_then(|r| r.policy.as_ref())
}
