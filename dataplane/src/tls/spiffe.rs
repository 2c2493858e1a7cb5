//! SPIFFE identities: parsing and formatting SPIFFE IDs, matching them against
//! patterns with `*` segments, and reading the identity of an X.509-SVID leaf
//! while enforcing the X.509-SVID leaf rules.
//!
//! The rules follow the SPIFFE ID and X.509-SVID specifications: the scheme is
//! exactly `spiffe`, the trust domain is lower-case `[a-z0-9.-_]`, path segments
//! are non-empty `[A-Za-z0-9.-_]` and never `.` or `..`, there is no query,
//! fragment, port or user info, and the whole ID is at most 2048 bytes.

use std::fmt;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The longest SPIFFE ID the specification allows.
pub const MAX_SPIFFE_ID: usize = 2048;
/// The longest trust domain name the specification allows.
pub const MAX_TRUST_DOMAIN: usize = 255;
const SCHEME: &str = "spiffe://";

/// Why a string is not a SPIFFE ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeIdError {
    #[error("the scheme must be `spiffe://`")]
    WrongScheme,
    #[error("the trust domain is empty")]
    EmptyTrustDomain,
    #[error("the trust domain may hold only lower-case letters, digits, '.', '-' and '_' (no port or user info)")]
    BadTrustDomainChar,
    #[error("the trust domain is longer than 255 bytes")]
    TrustDomainTooLong,
    #[error("path segments may hold only letters, digits, '.', '-' and '_'")]
    BadPathChar,
    #[error("a path segment is empty (double or trailing '/')")]
    EmptySegment,
    #[error("a path segment is '.' or '..'")]
    DotSegment,
    #[error("the ID is longer than 2048 bytes")]
    TooLong,
}

/// A valid SPIFFE ID, stored in its canonical text form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    text: Box<str>,
    /// Byte length of `spiffe://` + trust domain: the path starts here.
    path_at: usize,
}

impl SpiffeId {
    pub fn parse(text: &str) -> Result<SpiffeId, SpiffeIdError> {
        let path_at = check(text, false)?;
        Ok(SpiffeId {
            text: text.into(),
            path_at,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn trust_domain(&self) -> &str {
        self.text
            .get(SCHEME.len()..self.path_at)
            .unwrap_or_default()
    }

    /// The path including its leading '/', or "" for a trust domain's own ID.
    pub fn path(&self) -> &str {
        self.text.get(self.path_at..).unwrap_or_default()
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.path().split('/').skip(1)
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({})", self.text)
    }
}

impl std::str::FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        SpiffeId::parse(text)
    }
}

/// Validate `text`; return where its path starts. `wildcards` admits `*` as a
/// whole path segment (patterns only).
fn check(text: &str, wildcards: bool) -> Result<usize, SpiffeIdError> {
    if text.len() > MAX_SPIFFE_ID {
        return Err(SpiffeIdError::TooLong);
    }
    let rest = text
        .strip_prefix(SCHEME)
        .ok_or(SpiffeIdError::WrongScheme)?;
    let domain_len = rest.find('/').unwrap_or(rest.len());
    let (domain, path) = rest.split_at(domain_len);
    if domain.is_empty() {
        return Err(SpiffeIdError::EmptyTrustDomain);
    }
    if domain.len() > MAX_TRUST_DOMAIN {
        return Err(SpiffeIdError::TrustDomainTooLong);
    }
    let domain_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b);
    if !domain.bytes().all(domain_char) {
        return Err(SpiffeIdError::BadTrustDomainChar);
    }
    if !path.is_empty() {
        for segment in path.split('/').skip(1) {
            check_segment(segment, wildcards)?;
        }
    }
    Ok(SCHEME.len() + domain_len)
}

fn check_segment(segment: &str, wildcards: bool) -> Result<(), SpiffeIdError> {
    if segment.is_empty() {
        return Err(SpiffeIdError::EmptySegment);
    }
    if segment == "." || segment == ".." {
        return Err(SpiffeIdError::DotSegment);
    }
    if wildcards && segment == "*" {
        return Ok(());
    }
    let path_char = |b: u8| b.is_ascii_alphanumeric() || b"._-".contains(&b);
    if !segment.bytes().all(path_char) {
        return Err(SpiffeIdError::BadPathChar);
    }
    Ok(())
}

/// A SPIFFE ID pattern for authorization: the trust domain is exact, each path
/// segment is exact or `*` (exactly one segment of any value), and a final `**`
/// segment matches one or more remaining segments.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SpiffePattern {
    text: Box<str>,
    path_at: usize,
}

impl SpiffePattern {
    pub fn parse(text: &str) -> Result<SpiffePattern, SpiffeIdError> {
        // `**` is validated here because `check` only knows single-segment `*`.
        let (body, deep) = match text.strip_suffix("/**") {
            Some(body) => (body, true),
            None => (text, false),
        };
        let path_at = check(body, true)?;
        if deep && body.len() < path_at {
            return Err(SpiffeIdError::EmptySegment);
        }
        Ok(SpiffePattern {
            text: text.into(),
            path_at,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, id: &SpiffeId) -> bool {
        if self.text.get(..self.path_at) != id.as_str().get(..id.path_at) {
            return false;
        }
        let mut wanted = self
            .text
            .get(self.path_at..)
            .unwrap_or_default()
            .split('/')
            .skip(1);
        let mut have = id.segments();
        loop {
            match (wanted.next(), have.next()) {
                (None, None) => return true,
                (Some("**"), Some(_)) => return true,
                (Some("*"), Some(_)) => {}
                (Some(want), Some(seg)) if want == seg => {}
                _ => return false,
            }
        }
    }
}

impl fmt::Display for SpiffePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for SpiffePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffePattern({})", self.text)
    }
}

/// Why a leaf certificate is not a valid X.509-SVID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SvidError {
    #[error("certificate cannot be parsed: {0}")]
    Malformed(String),
    #[error("leaf has no URI SAN: an X.509-SVID carries its SPIFFE ID as exactly one URI SAN")]
    NoUriSan,
    #[error("leaf has {0} URI SANs: an X.509-SVID must have exactly one")]
    MultipleUriSans(usize),
    #[error("URI SAN {0:?} is not a spiffe:// URI")]
    NotSpiffe(String),
    #[error("URI SAN {uri:?} is not a valid SPIFFE ID: {error}")]
    BadSpiffeId { uri: String, error: SpiffeIdError },
    #[error("SPIFFE ID {0} has an empty path: a workload SVID must name a workload")]
    EmptyPath(String),
    #[error("leaf is a CA certificate (basicConstraints CA=true)")]
    CaLeaf,
    #[error("leaf has no keyUsage extension (X.509-SVID requires digitalSignature)")]
    NoKeyUsage,
    #[error("leaf keyUsage lacks digitalSignature")]
    NoDigitalSignature,
    #[error("leaf keyUsage has keyCertSign or cRLSign, which only CA certificates may have")]
    SigningKeyUsage,
}

impl SvidError {
    /// A short, stable label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            SvidError::Malformed(_) => "bad_encoding",
            SvidError::NoUriSan
            | SvidError::MultipleUriSans(_)
            | SvidError::NotSpiffe(_)
            | SvidError::BadSpiffeId { .. }
            | SvidError::EmptyPath(_) => "not_svid",
            SvidError::CaLeaf => "ca_leaf",
            SvidError::NoKeyUsage | SvidError::NoDigitalSignature | SvidError::SigningKeyUsage => {
                "bad_key_usage"
            }
        }
    }
}

/// Read the SPIFFE ID of an X.509-SVID leaf, enforcing the leaf rules: exactly
/// one URI SAN, a valid `spiffe://` ID with a non-empty path, not a CA, and a
/// keyUsage with digitalSignature but neither keyCertSign nor cRLSign.
///
/// This checks structure only; the chain (signatures, validity period, trust
/// anchor) is the verifier's job (`tls::verify`).
pub fn svid_identity(leaf_der: &[u8]) -> Result<SpiffeId, SvidError> {
    let (_, cert) =
        X509Certificate::from_der(leaf_der).map_err(|err| SvidError::Malformed(err.to_string()))?;
    svid_identity_of(&cert)
}

pub(crate) fn svid_identity_of(cert: &X509Certificate<'_>) -> Result<SpiffeId, SvidError> {
    let malformed = |err: x509_parser::error::X509Error| SvidError::Malformed(err.to_string());
    let uris: Vec<&str> = match cert.subject_alternative_name().map_err(malformed)? {
        None => Vec::new(),
        Some(san) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::URI(uri) => Some(*uri),
                _ => None,
            })
            .collect(),
    };
    let uri = match uris.as_slice() {
        [] => return Err(SvidError::NoUriSan),
        [one] => *one,
        many => return Err(SvidError::MultipleUriSans(many.len())),
    };
    // The scheme is case-insensitive in URIs in general; "SPIFFE://" is still a
    // spiffe URI, just not a valid SPIFFE ID, and the error says so.
    if !uri
        .get(..SCHEME.len())
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case(SCHEME))
    {
        return Err(SvidError::NotSpiffe(uri.to_string()));
    }
    let id = SpiffeId::parse(uri).map_err(|error| SvidError::BadSpiffeId {
        uri: uri.to_string(),
        error,
    })?;
    if id.path().is_empty() {
        return Err(SvidError::EmptyPath(id.to_string()));
    }
    if let Some(constraints) = cert.basic_constraints().map_err(malformed)? {
        if constraints.value.ca {
            return Err(SvidError::CaLeaf);
        }
    }
    let usage = cert.key_usage().map_err(malformed)?;
    let usage = usage.ok_or(SvidError::NoKeyUsage)?.value;
    if usage.key_cert_sign() || usage.crl_sign() {
        return Err(SvidError::SigningKeyUsage);
    }
    if !usage.digital_signature() {
        return Err(SvidError::NoDigitalSignature);
    }
    Ok(id)
}

#[cfg(test)]
#[path = "spiffe_tests.rs"]
mod tests;
