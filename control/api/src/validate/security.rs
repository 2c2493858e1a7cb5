//! Validation of the TLS, mesh and authorization keys: listener certificates and
//! ALPN, `tls_passthrough` SNI routes, `[[...policy]]` tables, cluster TLS
//! origination and `[mesh]`. File paths are only checked to be non-empty here;
//! the dataplane reads them (and reports unreadable ones with their TOML path)
//! before it binds anything.

use super::at::At;
use super::http::{header_name, header_value, method};
use super::ClusterNames;
use crate::error::Errors;
use crate::file::{
    ClusterTlsFile, ListenerTlsFile, MeshFile, MeshModeFile, PolicyFile, SniRouteFile,
};
use crate::snapshot::{
    AuthzAction, AuthzPolicy, CertificateSpec, ListenerTls, MeshMode, MeshSpec, SniRoute,
    UpstreamTls,
};
use std::collections::HashSet;

/// ALPN ids the dataplane can serve behind TLS termination.
const KNOWN_ALPN: &[&str] = &["http/1.1", "h2"];

fn file_path(errors: &mut Errors, at: At<'_>, value: &Option<String>) -> Option<String> {
    match value {
        None => {
            errors.add(at, "required key is missing");
            None
        }
        Some(path) if path.trim().is_empty() => {
            errors.add_hint(at, "file path is empty", "write the path of a PEM file");
            None
        }
        Some(path) => Some(path.clone()),
    }
}

/// `host.domain` or `*.domain`, lower-cased; `None` (with an error) otherwise.
pub(crate) fn sni_name(errors: &mut Errors, at: At<'_>, name: &str) -> Option<String> {
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    let host = lower.strip_prefix("*.").unwrap_or(&lower);
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        errors.add_hint(
            at,
            format!("{name:?} is not a server name"),
            "write host.domain, or *.domain for one label of wildcard",
        );
        return None;
    }
    Some(lower)
}

/// A SPIFFE ID (`pattern`: `*` may stand for a whole path segment).
pub(crate) fn spiffe(errors: &mut Errors, at: At<'_>, text: &str, pattern: bool) -> Option<String> {
    let hint = if pattern {
        "write spiffe://trust.domain/path, with * for one whole segment (spiffe://td/ns/*/sa/web)"
    } else {
        "write spiffe://trust.domain/path"
    };
    let Some(rest) = text.strip_prefix("spiffe://") else {
        errors.add_hint(at, format!("{text:?} is not a SPIFFE ID"), hint);
        return None;
    };
    let (domain, path) = rest.split_once('/').unwrap_or((rest, ""));
    // A final `/**` (patterns only) matches one or more remaining segments.
    let path = match path.strip_suffix("**") {
        Some(body) if pattern && (body.is_empty() || body.ends_with('/')) => {
            body.trim_end_matches('/')
        }
        _ => path,
    };
    let domain_ok = !domain.is_empty()
        && domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
    let segments_ok = path.is_empty()
        || path.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && ((pattern && seg == "*")
                    || seg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)))
        });
    if !domain_ok || !segments_ok {
        errors.add_hint(at, format!("{text:?} is not a valid SPIFFE ID"), hint);
        return None;
    }
    Some(text.to_string())
}

pub(crate) fn listener_tls(
    errors: &mut Errors,
    at: At<'_>,
    file: Option<&ListenerTlsFile>,
) -> Option<ListenerTls> {
    let Some(file) = file else {
        errors.add_hint(
            at,
            "a TLS-terminating listener needs certificates",
            "add tls = { certificates = [{ cert = \"server.pem\", key = \"server.key\" }] }",
        );
        return None;
    };
    let before = errors.0.len();
    let mut certificates = Vec::new();
    let list = file.certificates.as_deref().unwrap_or(&[]);
    if list.is_empty() {
        errors.add_hint(
            at.key("certificates"),
            "no certificate given",
            "add certificates = [{ cert = \"server.pem\", key = \"server.key\" }]",
        );
    }
    let mut names = HashSet::new();
    let certificates_at = at.key("certificates");
    for (i, cert) in list.iter().enumerate() {
        let cat = certificates_at.index(i);
        let pem = file_path(errors, cat.key("cert"), &cert.cert);
        let key = file_path(errors, cat.key("key"), &cert.key);
        let mut sni = Vec::new();
        let sni_at = cat.key("sni");
        for (j, name) in cert.sni.iter().flatten().enumerate() {
            let nat = sni_at.index(j);
            if let Some(name) = sni_name(errors, nat, name) {
                if !names.insert(name.clone()) {
                    errors.add_hint(
                        nat,
                        format!("{name} is served by two certificates"),
                        "give each name to one certificate",
                    );
                }
                sni.push(name);
            }
        }
        if let (Some(cert), Some(key)) = (pem, key) {
            certificates.push(CertificateSpec { cert, key, sni });
        }
    }
    let alpn = match &file.alpn {
        None => vec!["http/1.1".to_string()],
        Some(list) => {
            for (i, id) in list.iter().enumerate() {
                if !KNOWN_ALPN.contains(&id.as_str()) {
                    errors.add_hint(
                        at.key("alpn").index(i),
                        format!("unknown ALPN id {id:?}"),
                        "use \"http/1.1\"",
                    );
                }
            }
            list.clone()
        }
    };
    (errors.0.len() == before).then_some(ListenerTls { certificates, alpn })
}

pub(crate) fn mesh_mode(mode: Option<MeshModeFile>) -> Option<MeshMode> {
    mode.map(|m| match m {
        MeshModeFile::Strict => MeshMode::Strict,
        MeshModeFile::Permissive => MeshMode::Permissive,
    })
}

/// Policies of a listener or route; `http` says whether path/method/header
/// conditions make sense (not on TCP listeners).
pub(crate) fn policies(
    errors: &mut Errors,
    at: At<'_>,
    list: Option<&Vec<PolicyFile>>,
    http: bool,
) -> Vec<AuthzPolicy> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let policy_at = at.key("policy");
    for (i, p) in list.into_iter().flatten().enumerate() {
        let pat = policy_at.index(i);
        let before = errors.0.len();
        let name = p.name.clone().unwrap_or_else(|| format!("policy{i}"));
        if name.trim().is_empty() || name.chars().any(|c| c.is_control() || c == '"') {
            errors.add(
                pat.key("name"),
                "name is empty or has a control character or quote",
            );
        } else if !seen.insert(name.clone()) {
            errors.add_hint(
                pat.key("name"),
                format!("duplicate policy name \"{name}\""),
                "policy names appear in metrics and logs; make them unique",
            );
        }
        let action = match p.action.as_deref() {
            Some("allow") => Some(AuthzAction::Allow),
            Some("deny") => Some(AuthzAction::Deny),
            Some(other) => {
                errors.add_hint(
                    pat.key("action"),
                    format!("unknown action {other:?}"),
                    "use \"allow\" or \"deny\"",
                );
                None
            }
            None => {
                errors.add_hint(
                    pat.key("action"),
                    "required key is missing",
                    "add action = \"allow\" or \"deny\"",
                );
                None
            }
        };
        let peers: Vec<String> = p
            .peers
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(j, peer)| spiffe(errors, pat.key("peers").index(j), peer, true))
            .collect();
        if !http {
            for (key, set) in [
                ("paths", p.paths.is_some()),
                ("methods", p.methods.is_some()),
                ("headers", p.headers.is_some()),
            ] {
                if set {
                    errors.add_hint(
                        format!("{pat}.{key}"),
                        format!("{key} is only for http policies"),
                        "a TCP connection has no request; match on peers only",
                    );
                }
            }
        }
        let mut paths = Vec::new();
        for (j, path) in p.paths.iter().flatten().enumerate() {
            if !path.starts_with('/') {
                errors.add_hint(
                    pat.key("paths").index(j),
                    format!("path {path:?} does not start with /"),
                    "write /exact or /prefix/*",
                );
            } else if path.trim_end_matches('*').contains('*') {
                errors.add_hint(
                    pat.key("paths").index(j),
                    format!("path {path:?} has * other than at its end"),
                    "only a trailing * (prefix) is supported",
                );
            } else {
                paths.push(path.clone());
            }
        }
        let methods: Vec<String> = p
            .methods
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(j, m)| method(errors, pat.key("methods").index(j), m))
            .collect();
        let mut headers = Vec::new();
        let headers_at = pat.key("headers");
        for (j, h) in p.headers.iter().flatten().enumerate() {
            let hat = headers_at.index(j);
            let name = header_name(errors, hat.key("name"), &h.name);
            let value = header_value(errors, hat.key("value"), &h.value);
            if let (Some(name), Some(value)) = (name, value) {
                headers.push((name.to_ascii_lowercase(), value));
            }
        }
        if errors.0.len() != before {
            continue;
        }
        if let Some(action) = action {
            out.push(AuthzPolicy {
                name,
                action,
                peers,
                paths,
                methods,
                headers,
            });
        }
    }
    out
}

pub(crate) fn sni_routes(
    errors: &mut Errors,
    at: At<'_>,
    list: Option<&Vec<SniRouteFile>>,
    clusters: &ClusterNames<'_>,
) -> Vec<SniRoute> {
    let mut out = Vec::new();
    let sni_at = at.key("sni_routes");
    for (i, r) in list.into_iter().flatten().enumerate() {
        let rat = sni_at.index(i);
        let sni = sni_name(errors, rat.key("sni"), &r.sni);
        let cluster = clusters.resolve(errors, rat.key("cluster"), &r.cluster);
        if let (Some(sni), Some(cluster)) = (sni, cluster) {
            out.push(SniRoute { sni, cluster });
        }
    }
    out
}

pub(crate) fn cluster_tls(
    errors: &mut Errors,
    at: At<'_>,
    file: &ClusterTlsFile,
) -> Option<UpstreamTls> {
    let before = errors.0.len();
    let mesh = file.mesh.unwrap_or(false);
    let nonempty = |errors: &mut Errors, key: &str, v: &Option<String>| match v {
        Some(text) if text.trim().is_empty() => {
            errors.add(at.key(key), "value is empty");
            None
        }
        other => other.clone(),
    };
    let ca = nonempty(errors, "ca", &file.ca);
    let client_cert = nonempty(errors, "client_cert", &file.client_cert);
    let client_key = nonempty(errors, "client_key", &file.client_key);
    let server_name = file
        .server_name
        .as_ref()
        .and_then(|n| sni_name(errors, at.key("server_name"), n))
        .filter(|n| {
            let wildcard = n.starts_with("*.");
            if wildcard {
                errors.add(at.key("server_name"), "a server name cannot be a wildcard");
            }
            !wildcard
        });
    let spiffe_id = file
        .spiffe_id
        .as_ref()
        .and_then(|id| spiffe(errors, at.key("spiffe_id"), id, false));
    if !mesh && ca.is_none() {
        errors.add_hint(
            at.key("ca"),
            "TLS origination needs a CA bundle to verify the upstream",
            "add ca = \"ca.pem\", or mesh = true to use the mesh trust bundle",
        );
    }
    if !mesh && server_name.is_none() && spiffe_id.is_none() && file.server_name.is_none() {
        errors.add_hint(
            at.key("server_name"),
            "TLS origination needs the name the upstream must prove",
            "add server_name = \"api.internal\" or spiffe_id = \"spiffe://td/ns/x/sa/y\"",
        );
    }
    if client_cert.is_some() != client_key.is_some() {
        let missing = if client_cert.is_some() {
            "client_key"
        } else {
            "client_cert"
        };
        errors.add_hint(
            at.key(missing),
            "client_cert and client_key go together",
            format!("add {missing}"),
        );
    }
    if mesh && client_cert.is_some() {
        errors.add_hint(
            at.key("client_cert"),
            "a mesh cluster presents this dataplane's SVID",
            "remove client_cert/client_key, or mesh = true",
        );
    }
    (errors.0.len() == before).then_some(UpstreamTls {
        ca,
        server_name,
        spiffe_id,
        mesh,
        client_cert,
        client_key,
    })
}

pub(crate) fn mesh(errors: &mut Errors, file: Option<&MeshFile>) -> Option<MeshSpec> {
    let file = file?;
    let before = errors.0.len();
    let trust_domain = match &file.trust_domain {
        Some(td) => spiffe(
            errors,
            At::Path("mesh.trust_domain"),
            &format!("spiffe://{td}"),
            false,
        )
        .filter(|_| !td.contains('/'))
        .map(|_| td.clone()),
        None => {
            errors.add_hint(
                At::Path("mesh.trust_domain"),
                "required key is missing",
                "add trust_domain = \"example.org\"",
            );
            None
        }
    };
    let given = [&file.cert, &file.key, &file.bundle];
    let any = given.iter().any(|v| v.is_some());
    let (mut cert, mut key, mut bundle) = (None, None, None);
    if any {
        cert = file_path(errors, At::Path("mesh.cert"), &file.cert);
        key = file_path(errors, At::Path("mesh.key"), &file.key);
        bundle = file_path(errors, At::Path("mesh.bundle"), &file.bundle);
    }
    if errors.0.len() != before {
        return None;
    }
    Some(MeshSpec {
        trust_domain: trust_domain?,
        cert,
        key,
        bundle,
    })
}

/// `identity_header`: a valid header name, lower-cased.
pub(crate) fn identity_header(
    errors: &mut Errors,
    at: At<'_>,
    name: &Option<String>,
) -> Option<String> {
    let name = name.as_ref()?;
    header_name(errors, at, name).map(|n| n.to_ascii_lowercase())
}

#[cfg(test)]
#[path = "security_tests.rs"]
mod tests;
