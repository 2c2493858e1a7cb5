//! Checks that follow HTTP's grammar: header names and values, methods, host
//! patterns, paths and regexes. Accepted values come back normalised (names lower
//! case, methods upper case) so the dataplane compares bytes without folding case.

use super::at::At;
use crate::error::Errors;
use crate::snapshot::{HostMatch, PathMatch};

/// RFC 9110 `tchar`: what header names and methods may contain.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn is_token(text: &str) -> bool {
    !text.is_empty() && text.chars().all(is_tchar)
}

/// Headers the proxy itself manages per hop; editing them would break framing or
/// connection handling rather than change what the upstream or client sees.
const PROXY_OWNED: &[&str] = &[
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub(crate) fn header_name(errors: &mut Errors, path: At<'_>, name: &str) -> Option<String> {
    if !is_token(name) {
        errors.add_hint(
            path,
            format!("{name:?} is not a valid header name"),
            "header names are letters, digits and !#$%&'*+-.^_`|~, with no spaces or colons",
        );
        return None;
    }
    Some(name.to_ascii_lowercase())
}

/// A header name the config may edit.
pub(crate) fn editable_header_name(
    errors: &mut Errors,
    path: At<'_>,
    name: &str,
) -> Option<String> {
    let lower = header_name(errors, path, name)?;
    if PROXY_OWNED.contains(&lower.as_str()) {
        errors.add_hint(
            path,
            format!("header \"{lower}\" cannot be edited"),
            "the proxy sets hop-by-hop and framing headers itself",
        );
        return None;
    }
    Some(lower)
}

/// A cookie name (RFC 6265 `cookie-name` is a token), kept as written: cookie names
/// are case-sensitive.
pub(crate) fn cookie_name(errors: &mut Errors, path: At<'_>, name: &str) -> Option<String> {
    if !is_token(name) {
        errors.add_hint(
            path,
            format!("{name:?} is not a valid cookie name"),
            "cookie names are letters, digits and !#$%&'*+-.^_`|~, with no spaces, '=' or ';'",
        );
        return None;
    }
    Some(name.to_string())
}

pub(crate) fn header_value(errors: &mut Errors, path: At<'_>, value: &str) -> Option<String> {
    if value.contains(['\r', '\n', '\0']) {
        errors.add_hint(
            path,
            "header value contains CR, LF or NUL",
            "a header value is a single line; these bytes would split or end the header",
        );
        return None;
    }
    Some(value.to_string())
}

pub(crate) fn method(errors: &mut Errors, path: At<'_>, method: &str) -> Option<String> {
    if !is_token(method) {
        errors.add_hint(
            path,
            format!("{method:?} is not a valid method"),
            "write a method name such as \"GET\"",
        );
        return None;
    }
    Some(method.to_ascii_uppercase())
}

/// `api.example.com` or `*.example.com`, case-insensitive, without a port.
pub(crate) fn host(errors: &mut Errors, path: At<'_>, pattern: &str) -> Option<HostMatch> {
    let mut lower = pattern.to_ascii_lowercase();
    let suffix = lower.starts_with("*.");
    let name = if suffix { &lower[2..] } else { &lower[..] };
    if name.contains(':') {
        errors.add_hint(
            path,
            format!("host {pattern:?} has a port"),
            "the port in a request's Host is ignored; write the name alone",
        );
        return None;
    }
    if name.contains('*') {
        errors.add_hint(
            path,
            format!("host {pattern:?} has a wildcard that is not a leading \"*.\""),
            "write an exact host or a suffix such as \"*.example.com\"; omit host to match any",
        );
        return None;
    }
    let labels_ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if !labels_ok {
        errors.add_hint(
            path,
            format!("{pattern:?} is not a host name"),
            "write a name such as \"api.example.com\" or \"*.example.com\"",
        );
        return None;
    }
    // The one allocation becomes the stored value: `*.example.com` → `.example.com`.
    Some(if suffix {
        lower.remove(0);
        HostMatch::Suffix(lower)
    } else {
        HostMatch::Exact(lower)
    })
}

/// An exact path or prefix: what the request target's path is compared with.
pub(crate) fn path(errors: &mut Errors, at: At<'_>, text: &str, prefix: bool) -> Option<PathMatch> {
    if !text.starts_with('/') {
        errors.add_hint(
            at,
            format!("path {text:?} does not start with '/'"),
            format!("write \"/{}\"", text.trim_start_matches('/')),
        );
        return None;
    }
    if text.contains(['?', '#']) {
        errors.add_hint(
            at,
            format!("path {text:?} contains '?' or '#'"),
            "paths are matched without the query string",
        );
        return None;
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        errors.add(
            at,
            format!("path {text:?} contains whitespace or a control character"),
        );
        return None;
    }
    Some(if prefix {
        PathMatch::Prefix(text.to_string())
    } else {
        PathMatch::Exact(text.to_string())
    })
}

/// Compiles `pattern` anchored at both ends and returns the anchored source, which
/// is what the snapshot carries so the dataplane compiles exactly what was checked.
pub(crate) fn anchored_regex(errors: &mut Errors, at: At<'_>, pattern: &str) -> Option<String> {
    let anchored = format!("^(?:{pattern})$");
    match regex::Regex::new(&anchored) {
        Ok(_) => Some(anchored),
        Err(regex::Error::Syntax(text)) => {
            // The regex crate's message is a multi-line drawing; its last line says why.
            let reason = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid")
                .trim()
                .trim_start_matches("error: ");
            errors.add(at, format!("invalid regex {pattern:?}: {reason}"));
            None
        }
        Err(regex::Error::CompiledTooBig(limit)) => {
            errors.add_hint(
                at,
                format!("regex {pattern:?} is too large"),
                format!("compiled regexes are limited to {limit} bytes; simplify it"),
            );
            None
        }
        Err(other) => {
            errors.add(at, format!("invalid regex {pattern:?}: {other}"));
            None
        }
    }
}
