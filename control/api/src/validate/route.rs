//! Validation of `[[listener.route]]`: what a route matches, what it does, and the
//! header edits it applies.

use super::at::At;
use super::http::{
    anchored_regex, editable_header_name, header_name, header_value, host, method, path,
};
use super::resilience::{fault, rate_limit, retry};
use super::scalar::{duration_ms, int_in, size_in};
use super::ClusterNames;
use crate::error::Errors;
use crate::file::{DirectFile, HeaderMatchFile, HeaderOpsFile, RouteFile, SplitFile};
use crate::snapshot::{
    DirectResponse, HeaderMatch, HeaderOps, HeaderValueMatch, PathMatch, RouteAction, RouteMatch,
    WeightedCluster,
};
use crate::validated::ValidRoute;
use std::collections::BTreeSet;

/// A direct response is meant for health checks and short notices; anything larger
/// belongs on an upstream.
const MAX_DIRECT_BODY: usize = 64 * 1024;

pub(crate) fn route(
    errors: &mut Errors,
    at: At<'_>,
    file: &RouteFile,
    clusters: &ClusterNames<'_>,
) -> Option<ValidRoute> {
    let before = errors.0.len();
    if let Some(name) = &file.name {
        if name.trim().is_empty() || name.chars().any(char::is_control) {
            errors.add(
                at.key("name"),
                "name is empty or contains a control character",
            );
        }
    }
    let matcher = route_match(errors, at, file);
    let action = action(errors, at, file, clusters);
    let timeout_ms = file
        .timeout
        .as_ref()
        .and_then(|t| duration_ms(errors, at.key("timeout"), t, false));
    let max_body_bytes = file
        .max_body
        .as_ref()
        .and_then(|s| size_in(errors, at.key("max_body"), s, 0, u64::MAX));
    let request_headers = header_ops(errors, at.key("request_headers"), &file.request_headers);
    let response_headers = header_ops(errors, at.key("response_headers"), &file.response_headers);
    // Retries and faults act on the upstream request, which a direct route never makes.
    let direct = file.direct.is_some() && file.cluster.is_none() && file.split.is_none();
    for (key, set) in [
        ("retry", file.retry.is_some()),
        ("fault", file.fault.is_some()),
    ] {
        if direct && set {
            errors.add_hint(
                at.key(key),
                format!("{key} is not allowed on a direct route"),
                "a direct response is answered by the proxy itself; remove it",
            );
        }
    }
    let retry = file
        .retry
        .as_ref()
        .filter(|_| !direct)
        .and_then(|r| retry(errors, at.key("retry"), r, timeout_ms));
    let fault = file
        .fault
        .as_ref()
        .filter(|_| !direct)
        .and_then(|f| fault(errors, at.key("fault"), f));
    let rate_limit = file
        .rate_limit
        .as_ref()
        .and_then(|r| rate_limit(errors, at.key("rate_limit"), r));
    if errors.0.len() != before {
        return None;
    }
    Some(ValidRoute {
        name: file.name.clone(),
        matcher: matcher?,
        action: action?,
        timeout_ms,
        max_body_bytes,
        request_headers,
        response_headers,
        retry,
        rate_limit,
        fault,
        policies: Vec::new(),
    })
}

fn route_match(errors: &mut Errors, at: At<'_>, file: &RouteFile) -> Option<RouteMatch> {
    let mut out = RouteMatch::default();
    if let Some(pattern) = &file.host {
        out.host = host(errors, at.key("host"), pattern);
    }
    let candidates = [
        ("path", &file.path),
        ("path_prefix", &file.path_prefix),
        ("path_regex", &file.path_regex),
    ];
    let mut given = candidates
        .iter()
        .filter_map(|(key, value)| value.as_ref().map(|v| (*key, v)));
    match (given.next(), given.next()) {
        (None, _) => {}
        (Some((key, value)), None) => {
            let key_path = at.key(key);
            out.path = match key {
                "path" => path(errors, key_path, value, false),
                "path_prefix" => path(errors, key_path, value, true),
                _ => anchored_regex(errors, key_path, value).map(PathMatch::Regex),
            };
        }
        (Some(_), Some((second, _))) => {
            let keys: Vec<&str> = candidates
                .iter()
                .filter(|(_, value)| value.is_some())
                .map(|(k, _)| *k)
                .collect();
            errors.add_hint(
                at.key(second),
                format!(
                    "a route takes at most one of path, path_prefix, path_regex; found {}",
                    keys.join(", ")
                ),
                "keep one; use path_regex to express more than one shape",
            );
        }
    }
    if let Some(methods) = &file.methods {
        if methods.is_empty() {
            errors.add_hint(
                at.key("methods"),
                "methods is empty and would match nothing",
                "omit methods to match any method",
            );
        }
        let methods_at = at.key("methods");
        for (i, m) in methods.iter().enumerate() {
            if let Some(m) = method(errors, methods_at.index(i), m) {
                if !out.methods.contains(&m) {
                    out.methods.push(m);
                }
            }
        }
    }
    let headers_at = at.key("headers");
    for (i, h) in file.headers.iter().flatten().enumerate() {
        if let Some(h) = header_match(errors, headers_at.index(i), h) {
            out.headers.push(h);
        }
    }
    Some(out)
}

fn header_match(errors: &mut Errors, at: At<'_>, file: &HeaderMatchFile) -> Option<HeaderMatch> {
    let name = header_name(errors, at.key("name"), &file.name);
    let value = match (&file.value, &file.regex, file.present) {
        (Some(v), None, None) => {
            header_value(errors, at.key("value"), v).map(HeaderValueMatch::Exact)
        }
        (None, Some(r), None) => {
            anchored_regex(errors, at.key("regex"), r).map(HeaderValueMatch::Regex)
        }
        (None, None, Some(true)) => Some(HeaderValueMatch::Present),
        (None, None, Some(false)) => {
            errors.add_hint(
                at.key("present"),
                "present = false is not supported",
                "a header match can only require a header; remove this match",
            );
            None
        }
        _ => {
            errors.add_hint(
                at,
                "a header match needs exactly one of value, regex, present",
                "write { name = \"x-env\", value = \"canary\" }",
            );
            None
        }
    };
    Some(HeaderMatch {
        name: name?,
        value: value?,
    })
}

fn action(
    errors: &mut Errors,
    at: At<'_>,
    file: &RouteFile,
    clusters: &ClusterNames<'_>,
) -> Option<RouteAction> {
    match (&file.cluster, &file.split, &file.direct) {
        (Some(name), None, None) => clusters
            .resolve(errors, at.key("cluster"), name)
            .map(RouteAction::Cluster),
        (None, Some(split), None) => split_action(errors, at.key("split"), split, clusters),
        (None, None, Some(direct)) => direct_action(errors, at.key("direct"), direct),
        (None, None, None) => {
            errors.add_hint(
                at,
                "a route needs one of cluster, split, direct",
                "add cluster = \"<name>\" to forward matching requests",
            );
            None
        }
        _ => {
            let found: Vec<&str> = [
                ("cluster", file.cluster.is_some()),
                ("split", file.split.is_some()),
                ("direct", file.direct.is_some()),
            ]
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(k, _)| k)
            .collect();
            errors.add_hint(
                at,
                format!(
                    "a route takes exactly one of cluster, split, direct; found {}",
                    found.join(", ")
                ),
                "keep one, or write a second route",
            );
            None
        }
    }
}

fn split_action(
    errors: &mut Errors,
    at: At<'_>,
    split: &[SplitFile],
    clusters: &ClusterNames<'_>,
) -> Option<RouteAction> {
    if split.is_empty() {
        errors.add_hint(
            at,
            "split is empty",
            "write [{ cluster = \"a\", weight = 1 }]",
        );
        return None;
    }
    let before = errors.0.len();
    let mut out = Vec::with_capacity(split.len());
    let mut total: u64 = 0;
    for (i, entry) in split.iter().enumerate() {
        let cluster = clusters.resolve(errors, at.index(i).key("cluster"), &entry.cluster);
        let weight: Option<u32> = int_in(
            errors,
            at.index(i).key("weight"),
            entry.weight,
            1,
            i64::from(u32::MAX),
        );
        if let Some(w) = weight {
            total += u64::from(w);
        }
        if let (Some(cluster), Some(weight)) = (cluster, weight) {
            out.push(WeightedCluster { cluster, weight });
        }
    }
    if total > u64::from(u32::MAX) {
        errors.add_hint(
            at,
            format!("split weights add up to {total}, more than {}", u32::MAX),
            "weights are relative; divide them by a common factor",
        );
    }
    (errors.0.len() == before).then_some(RouteAction::Split(out))
}

fn direct_action(errors: &mut Errors, at: At<'_>, direct: &DirectFile) -> Option<RouteAction> {
    let before = errors.0.len();
    let status: Option<u16> = int_in(errors, at.key("status"), direct.status, 200, 599);
    let body = direct.body.clone().unwrap_or_default();
    if body.len() > MAX_DIRECT_BODY {
        errors.add_hint(
            at.key("body"),
            format!("body is {} bytes, more than {MAX_DIRECT_BODY}", body.len()),
            "serve large content from an upstream",
        );
    }
    if matches!(status, Some(204 | 304)) && !body.is_empty() {
        errors.add_hint(
            at.key("body"),
            format!("status {} cannot have a body", direct.status),
            "remove body",
        );
    }
    let content_type = match &direct.content_type {
        Some(ct) if ct.trim().is_empty() => {
            errors.add(at.key("content_type"), "content_type is empty");
            None
        }
        Some(ct) => header_value(errors, at.key("content_type"), ct),
        None => Some(crate::defaults::DIRECT_CONTENT_TYPE.to_string()),
    };
    if errors.0.len() != before {
        return None;
    }
    Some(RouteAction::Direct(DirectResponse {
        status: status?,
        body,
        content_type: content_type?,
    }))
}

fn header_ops(errors: &mut Errors, at: At<'_>, file: &Option<HeaderOpsFile>) -> HeaderOps {
    let mut out = HeaderOps::default();
    let Some(file) = file else {
        return out;
    };
    let mut removed = BTreeSet::new();
    let remove_at = at.key("remove");
    for (i, name) in file.remove.iter().enumerate() {
        if let Some(name) = editable_header_name(errors, remove_at.index(i), name) {
            if removed.insert(name.clone()) {
                out.remove.push(name);
            }
        }
    }
    for (key, map, list) in [
        ("set", &file.set, &mut out.set),
        ("add", &file.add, &mut out.add),
    ] {
        let mut seen = BTreeSet::new();
        let map_at = at.key(key);
        for (name, value) in map {
            let path = map_at.quoted(name);
            let name = editable_header_name(errors, path, name);
            let value = header_value(errors, path, value);
            if let (Some(name), Some(value)) = (name, value) {
                if !seen.insert(name.clone()) {
                    errors.add_hint(
                        path,
                        format!("header \"{name}\" appears twice"),
                        "header names are case-insensitive; keep one",
                    );
                    continue;
                }
                list.push((name, value));
            }
        }
    }
    out
}
