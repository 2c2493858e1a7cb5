//! Validation of `[[listener.route]]`: what a route matches, what it does, and the
//! header edits it applies.

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
    at: &str,
    file: &RouteFile,
    clusters: &ClusterNames<'_>,
) -> Option<ValidRoute> {
    let before = errors.0.len();
    if let Some(name) = &file.name {
        if name.trim().is_empty() || name.chars().any(char::is_control) {
            errors.add(
                format!("{at}.name"),
                "name is empty or contains a control character",
            );
        }
    }
    let matcher = route_match(errors, at, file);
    let action = action(errors, at, file, clusters);
    let timeout_ms = file
        .timeout
        .as_ref()
        .and_then(|t| duration_ms(errors, &format!("{at}.timeout"), t, false));
    let max_body_bytes = file
        .max_body
        .as_ref()
        .and_then(|s| size_in(errors, &format!("{at}.max_body"), s, 0, u64::MAX));
    let request_headers = header_ops(
        errors,
        &format!("{at}.request_headers"),
        &file.request_headers,
    );
    let response_headers = header_ops(
        errors,
        &format!("{at}.response_headers"),
        &file.response_headers,
    );
    // Retries and faults act on the upstream request, which a direct route never makes.
    let direct = file.direct.is_some() && file.cluster.is_none() && file.split.is_none();
    for (key, set) in [
        ("retry", file.retry.is_some()),
        ("fault", file.fault.is_some()),
    ] {
        if direct && set {
            errors.add_hint(
                format!("{at}.{key}"),
                format!("{key} is not allowed on a direct route"),
                "a direct response is answered by the proxy itself; remove it",
            );
        }
    }
    let retry = file
        .retry
        .as_ref()
        .filter(|_| !direct)
        .and_then(|r| retry(errors, &format!("{at}.retry"), r, timeout_ms));
    let fault = file
        .fault
        .as_ref()
        .filter(|_| !direct)
        .and_then(|f| fault(errors, &format!("{at}.fault"), f));
    let rate_limit = file
        .rate_limit
        .as_ref()
        .and_then(|r| rate_limit(errors, &format!("{at}.rate_limit"), r));
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

fn route_match(errors: &mut Errors, at: &str, file: &RouteFile) -> Option<RouteMatch> {
    let mut out = RouteMatch::default();
    if let Some(pattern) = &file.host {
        out.host = host(errors, &format!("{at}.host"), pattern);
    }
    let paths: Vec<(&str, &String)> = [
        ("path", &file.path),
        ("path_prefix", &file.path_prefix),
        ("path_regex", &file.path_regex),
    ]
    .into_iter()
    .filter_map(|(key, value)| value.as_ref().map(|v| (key, v)))
    .collect();
    match paths.as_slice() {
        [] => {}
        [(key, value)] => {
            let key_path = format!("{at}.{key}");
            out.path = match *key {
                "path" => path(errors, &key_path, value, false),
                "path_prefix" => path(errors, &key_path, value, true),
                _ => anchored_regex(errors, &key_path, value).map(PathMatch::Regex),
            };
        }
        [_, (second, _), ..] => {
            let keys: Vec<&str> = paths.iter().map(|(k, _)| *k).collect();
            errors.add_hint(
                format!("{at}.{second}"),
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
                format!("{at}.methods"),
                "methods is empty and would match nothing",
                "omit methods to match any method",
            );
        }
        for (i, m) in methods.iter().enumerate() {
            if let Some(m) = method(errors, &format!("{at}.methods[{i}]"), m) {
                if !out.methods.contains(&m) {
                    out.methods.push(m);
                }
            }
        }
    }
    for (i, h) in file.headers.iter().flatten().enumerate() {
        if let Some(h) = header_match(errors, &format!("{at}.headers[{i}]"), h) {
            out.headers.push(h);
        }
    }
    Some(out)
}

fn header_match(errors: &mut Errors, at: &str, file: &HeaderMatchFile) -> Option<HeaderMatch> {
    let name = header_name(errors, &format!("{at}.name"), &file.name);
    let value = match (&file.value, &file.regex, file.present) {
        (Some(v), None, None) => {
            header_value(errors, &format!("{at}.value"), v).map(HeaderValueMatch::Exact)
        }
        (None, Some(r), None) => {
            anchored_regex(errors, &format!("{at}.regex"), r).map(HeaderValueMatch::Regex)
        }
        (None, None, Some(true)) => Some(HeaderValueMatch::Present),
        (None, None, Some(false)) => {
            errors.add_hint(
                format!("{at}.present"),
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
    at: &str,
    file: &RouteFile,
    clusters: &ClusterNames<'_>,
) -> Option<RouteAction> {
    match (&file.cluster, &file.split, &file.direct) {
        (Some(name), None, None) => clusters
            .resolve(errors, &format!("{at}.cluster"), name)
            .map(RouteAction::Cluster),
        (None, Some(split), None) => split_action(errors, &format!("{at}.split"), split, clusters),
        (None, None, Some(direct)) => direct_action(errors, &format!("{at}.direct"), direct),
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
    at: &str,
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
        let cluster = clusters.resolve(errors, &format!("{at}[{i}].cluster"), &entry.cluster);
        let weight: Option<u32> = int_in(
            errors,
            &format!("{at}[{i}].weight"),
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

fn direct_action(errors: &mut Errors, at: &str, direct: &DirectFile) -> Option<RouteAction> {
    let before = errors.0.len();
    let status: Option<u16> = int_in(errors, &format!("{at}.status"), direct.status, 200, 599);
    let body = direct.body.clone().unwrap_or_default();
    if body.len() > MAX_DIRECT_BODY {
        errors.add_hint(
            format!("{at}.body"),
            format!("body is {} bytes, more than {MAX_DIRECT_BODY}", body.len()),
            "serve large content from an upstream",
        );
    }
    if matches!(status, Some(204 | 304)) && !body.is_empty() {
        errors.add_hint(
            format!("{at}.body"),
            format!("status {} cannot have a body", direct.status),
            "remove body",
        );
    }
    let content_type = match &direct.content_type {
        Some(ct) if ct.trim().is_empty() => {
            errors.add(format!("{at}.content_type"), "content_type is empty");
            None
        }
        Some(ct) => header_value(errors, &format!("{at}.content_type"), ct),
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

fn header_ops(errors: &mut Errors, at: &str, file: &Option<HeaderOpsFile>) -> HeaderOps {
    let mut out = HeaderOps::default();
    let Some(file) = file else {
        return out;
    };
    let mut removed = BTreeSet::new();
    for (i, name) in file.remove.iter().enumerate() {
        if let Some(name) = editable_header_name(errors, &format!("{at}.remove[{i}]"), name) {
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
        for (name, value) in map {
            let path = format!("{at}.{key}.{}", quote_key(name));
            let name = editable_header_name(errors, &path, name);
            let value = header_value(errors, &path, value);
            if let (Some(name), Some(value)) = (name, value) {
                if !seen.insert(name.clone()) {
                    errors.add_hint(
                        &path,
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

/// Keys that are not bare TOML keys are written quoted in paths, as in the file.
fn quote_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}
