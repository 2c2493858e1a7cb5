//! SPIFFE ID rules as the control process needs them: checking a trust domain,
//! checking that an ID is valid and belongs to the node's trust domain, and the
//! default ID of a node (`spiffe://TD/ns/default/sa/NODE`).
//!
//! The rules are the SPIFFE ID specification's, the same the dataplane enforces
//! on SVIDs (`dataplane/src/tls/spiffe.rs`): scheme exactly `spiffe://`, trust
//! domain of lower-case `[a-z0-9.-_]`, path segments of `[A-Za-z0-9.-_]`, never
//! empty, `.` or `..`, no query, fragment, port or user info, 2048 bytes at most.
//! The control process cannot depend on the dataplane crate, hence this copy of
//! the checks; an ID it accepts is one the dataplane accepts.

/// The longest SPIFFE ID the specification allows.
pub const MAX_SPIFFE_ID: usize = 2048;
/// The longest trust domain name the specification allows.
pub const MAX_TRUST_DOMAIN: usize = 255;
const SCHEME: &str = "spiffe://";

/// Checks a trust domain name (`example.org`, not `spiffe://example.org`).
pub fn check_trust_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Err("the trust domain is empty".into());
    }
    if domain.len() > MAX_TRUST_DOMAIN {
        return Err(format!(
            "the trust domain is longer than {MAX_TRUST_DOMAIN} bytes"
        ));
    }
    if let Some(bad) = domain
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "trust domain {domain:?} contains {bad:?}: only lower-case letters, digits, '.', '-' and '_' are allowed"
        ));
    }
    Ok(())
}

/// Checks one path segment of a SPIFFE ID.
pub fn check_segment(segment: &str) -> Result<(), String> {
    if segment.is_empty() {
        return Err("a path segment is empty (double or trailing '/')".into());
    }
    if segment == "." || segment == ".." {
        return Err(format!("path segment {segment:?} is not allowed"));
    }
    if let Some(bad) = segment
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "path segment {segment:?} contains {bad:?}: only letters, digits, '.', '-' and '_' are allowed"
        ));
    }
    Ok(())
}

/// Checks that `id` is a SPIFFE ID with a non-empty path (a workload, not a
/// trust domain) in `trust_domain`.
pub fn check_workload_id(id: &str, trust_domain: &str) -> Result<(), String> {
    if id.len() > MAX_SPIFFE_ID {
        return Err(format!("the ID is longer than {MAX_SPIFFE_ID} bytes"));
    }
    let rest = id
        .strip_prefix(SCHEME)
        .ok_or_else(|| format!("{id:?} does not start with `spiffe://`"))?;
    let (domain, path) = match rest.split_once('/') {
        Some((domain, path)) => (domain, Some(path)),
        None => (rest, None),
    };
    check_trust_domain(domain).map_err(|err| format!("{id:?}: {err}"))?;
    if domain != trust_domain {
        return Err(format!(
            "{id:?} is in trust domain {domain:?}, not this CA's {trust_domain:?}"
        ));
    }
    let Some(path) = path else {
        return Err(format!(
            "{id:?} has no path: a workload ID looks like spiffe://{trust_domain}/ns/NAMESPACE/sa/NAME"
        ));
    };
    path.split('/')
        .try_for_each(check_segment)
        .map_err(|err| format!("{id:?}: {err}"))
}

/// The ID a node gets when no mapping names it.
pub fn default_id(trust_domain: &str, node: &str) -> Result<String, String> {
    check_segment(node).map_err(|err| {
        format!("node name {node:?} cannot be a SPIFFE ID segment ({err}); map it in --identities")
    })?;
    Ok(format!("{SCHEME}{trust_domain}/ns/default/sa/{node}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_domains() {
        assert!(check_trust_domain("mesh.example").is_ok());
        assert!(check_trust_domain("a_b-c.1").is_ok());
        for bad in ["", "Mesh", "mesh:443", "user@mesh", "spiffe://mesh", "a/b"] {
            assert!(check_trust_domain(bad).is_err(), "{bad}");
        }
        assert!(check_trust_domain(&"a".repeat(256)).is_err());
    }

    #[test]
    fn workload_ids_must_be_in_the_trust_domain() {
        assert!(check_workload_id("spiffe://td/ns/prod/sa/web", "td").is_ok());
        let cases = [
            ("spiffe://other/ns/a", "trust domain \"other\""),
            ("spiffe://td", "no path"),
            ("spiffe://td/", "empty"),
            ("spiffe://td/a//b", "empty"),
            ("spiffe://td/a/../b", "not allowed"),
            ("spiffe://td/a?x=1", "contains '?'"),
            ("spiffe://td/a#f", "contains '#'"),
            ("https://td/a", "spiffe://"),
            ("SPIFFE://td/a", "spiffe://"),
            ("spiffe://TD/a", "contains 'T'"),
        ];
        for (id, expected) in cases {
            let err = check_workload_id(id, "td").unwrap_err();
            assert!(err.contains(expected), "{id}: {err}");
        }
        let long = format!("spiffe://td/{}", "a".repeat(MAX_SPIFFE_ID));
        assert!(check_workload_id(&long, "td").is_err());
    }

    #[test]
    fn default_ids() {
        assert_eq!(
            default_id("td", "web-1").unwrap(),
            "spiffe://td/ns/default/sa/web-1"
        );
        let err = default_id("td", "node:1").unwrap_err();
        assert!(err.contains("--identities"), "{err}");
        assert!(default_id("td", "..").is_err());
    }
}
