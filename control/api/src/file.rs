//! The config file as written: serde types mirroring docs/config.md key for key.
//!
//! Values whose checks need context (addresses, durations, sizes, numbers with
//! ranges) are kept raw here so validation can report every bad one at once with its
//! path, instead of serde stopping at the first. Unknown keys are rejected everywhere.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub runtime: Option<RuntimeFile>,
    #[serde(default)]
    pub listener: Vec<ListenerFile>,
    #[serde(default)]
    pub cluster: Vec<ClusterFile>,
    pub mesh: Option<MeshFile>,
}

/// `[mesh]`: trust domain, and optionally file-based SVID and bundle.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshFile {
    pub trust_domain: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub bundle: Option<String>,
}

/// `tls = { certificates = [...], alpn = ["http/1.1"] }` on https/tls listeners.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsFile {
    pub certificates: Option<Vec<CertificateFile>>,
    pub alpn: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFile {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub sni: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeshModeFile {
    Strict,
    Permissive,
}

/// `[[listener.policy]]` / `[[listener.route.policy]]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub name: Option<String>,
    pub action: Option<String>,
    pub peers: Option<Vec<String>>,
    pub paths: Option<Vec<String>>,
    pub methods: Option<Vec<String>>,
    pub headers: Option<Vec<PolicyHeaderFile>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyHeaderFile {
    pub name: String,
    pub value: String,
}

/// `{ sni = "a.example.com", cluster = "a" }` on tls_passthrough listeners.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SniRouteFile {
    pub sni: String,
    pub cluster: String,
}

/// `tls = { ca, server_name | spiffe_id | mesh = true, client_cert, client_key }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterTlsFile {
    pub ca: Option<String>,
    pub server_name: Option<String>,
    pub spiffe_id: Option<String>,
    pub mesh: Option<bool>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeFile {
    pub workers: Option<i64>,
    pub drain_timeout: Option<DurationValue>,
    pub admin: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Tcp,
    Http,
    /// TLS-terminating HTTP.
    Https,
    /// TLS-terminating L4.
    Tls,
    /// L4 routed by the ClientHello's SNI, not terminated.
    TlsPassthrough,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerFile {
    pub name: Option<String>,
    pub bind: Option<String>,
    pub protocol: Option<Protocol>,
    pub max_connections: Option<i64>,
    pub cluster: Option<String>,
    pub idle_timeout: Option<DurationValue>,
    pub splice: Option<bool>,
    pub rate_limit: Option<RateLimitFile>,
    // HTTP-only keys.
    pub max_request_line: Option<SizeValue>,
    pub max_header_bytes: Option<SizeValue>,
    pub max_headers: Option<i64>,
    pub header_read_timeout: Option<DurationValue>,
    pub max_body: Option<SizeValue>,
    pub x_forwarded_for: Option<bool>,
    pub x_forwarded_proto: Option<bool>,
    pub via: Option<ViaValue>,
    pub request_id: Option<bool>,
    pub route: Option<Vec<RouteFile>>,
    // TLS, mesh and authorization.
    pub tls: Option<ListenerTlsFile>,
    pub sni_routes: Option<Vec<SniRouteFile>>,
    pub mesh: Option<MeshModeFile>,
    pub identity_header: Option<String>,
    pub policy: Option<Vec<PolicyFile>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub name: Option<String>,
    pub host: Option<String>,
    pub path: Option<String>,
    pub path_prefix: Option<String>,
    pub path_regex: Option<String>,
    pub methods: Option<Vec<String>>,
    pub headers: Option<Vec<HeaderMatchFile>>,
    pub cluster: Option<String>,
    pub split: Option<Vec<SplitFile>>,
    pub direct: Option<DirectFile>,
    pub timeout: Option<DurationValue>,
    pub max_body: Option<SizeValue>,
    pub request_headers: Option<HeaderOpsFile>,
    pub response_headers: Option<HeaderOpsFile>,
    pub retry: Option<RetryFile>,
    pub rate_limit: Option<RateLimitFile>,
    pub fault: Option<FaultFile>,
    pub policy: Option<Vec<PolicyFile>>,
}

/// `retry = { attempts = 2, on = ["connect-failure", "reset"], ... }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryFile {
    pub attempts: Option<i64>,
    pub on: Option<Vec<String>>,
    pub statuses: Option<Vec<i64>>,
    pub per_try_timeout: Option<DurationValue>,
    pub backoff_base: Option<DurationValue>,
    pub backoff_max: Option<DurationValue>,
    pub non_idempotent: Option<bool>,
    pub max_body: Option<SizeValue>,
}

/// `rate_limit = { requests_per_second = 1000, burst = 100 }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFile {
    pub requests_per_second: Option<i64>,
    pub burst: Option<i64>,
}

/// `fault = { delay = "50ms", delay_percent = 10, abort_status = 503, abort_percent = 1 }`.
/// Percentages may be integers or floats (`0.5`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultFile {
    pub delay: Option<DurationValue>,
    pub delay_percent: Option<f64>,
    pub abort_status: Option<i64>,
    pub abort_percent: Option<f64>,
}

/// `{ name = "x-env", value = "canary" }`, `{ name, regex }` or `{ name, present = true }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatchFile {
    pub name: String,
    pub value: Option<String>,
    pub regex: Option<String>,
    pub present: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitFile {
    pub cluster: String,
    pub weight: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectFile {
    pub status: i64,
    pub body: Option<String>,
    pub content_type: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderOpsFile {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BalanceFile {
    RoundRobin,
    P2cEwma,
    LeastRequest,
    RingHash,
    Maglev,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    pub name: Option<String>,
    pub balance: Option<BalanceFile>,
    pub connect_timeout: Option<DurationValue>,
    pub max_idle_per_endpoint: Option<i64>,
    pub pool_idle_timeout: Option<DurationValue>,
    pub endpoints: Option<Vec<EndpointValue>>,
    pub hash_key: Option<HashKeyFile>,
    pub slow_start: Option<DurationValue>,
    pub health_check: Option<HealthCheckFile>,
    pub outlier: Option<OutlierFile>,
    pub circuit_breaker: Option<BreakerFile>,
    pub retry_budget: Option<RetryBudgetFile>,
    pub tls: Option<ClusterTlsFile>,
}

/// `{ header = "x-user" }`, `{ cookie = "sid" }` or `{ source_ip = true }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashKeyFile {
    pub header: Option<String>,
    pub cookie: Option<String>,
    pub source_ip: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckFile {
    pub protocol: Option<Protocol>,
    pub path: Option<String>,
    pub expect_status: Option<i64>,
    pub interval: Option<DurationValue>,
    pub timeout: Option<DurationValue>,
    pub healthy_threshold: Option<i64>,
    pub unhealthy_threshold: Option<i64>,
    pub jitter_percent: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierFile {
    pub consecutive_5xx: Option<i64>,
    pub consecutive_gateway_failure: Option<i64>,
    pub consecutive_connect_failure: Option<i64>,
    pub base_ejection_time: Option<DurationValue>,
    pub max_ejection_time: Option<DurationValue>,
    pub max_ejection_percent: Option<i64>,
    pub interval: Option<DurationValue>,
    pub panic_threshold: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerFile {
    pub max_connections: Option<i64>,
    pub max_pending_requests: Option<i64>,
    pub max_requests: Option<i64>,
    pub max_retries: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryBudgetFile {
    pub percent: Option<i64>,
    pub min_per_second: Option<i64>,
}

/// `"127.0.0.1:9000"` or `{ addr = "127.0.0.1:9000", weight = 3 }`.
///
/// Deserialized by hand rather than with `#[serde(untagged)]`: untagged enums
/// replace every inner error (unknown key, wrong type) with "did not match any
/// variant", which tells the user nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointValue {
    Addr(String),
    Table(EndpointTable),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointTable {
    pub addr: String,
    pub weight: Option<i64>,
}

impl<'de> Deserialize<'de> for EndpointValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EndpointVisitor;
        impl<'de> Visitor<'de> for EndpointVisitor {
            type Value = EndpointValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address string or a table { addr, weight }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(EndpointValue::Addr(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                EndpointTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(EndpointValue::Table)
            }
        }
        deserializer.deserialize_any(EndpointVisitor)
    }
}

/// A size as written: bytes as an integer, or a string with a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SizeValue {
    Bytes(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for SizeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = SizeValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size: bytes as an integer, or a string such as \"64KiB\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(SizeValue::Bytes(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(SizeValue::Bytes(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(SizeValue::Text(v.to_string()))
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

/// A duration as written. A bare integer is kept so validation can say which unit
/// to add, rather than serde's "expected a string".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationValue {
    Text(String),
    Unitless(i64),
}

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = DurationValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"10s\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(DurationValue::Unitless(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(DurationValue::Unitless(
                    i64::try_from(v).unwrap_or(i64::MAX),
                ))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(DurationValue::Text(v.to_string()))
            }
        }
        deserializer.deserialize_any(DurationVisitor)
    }
}

/// `via = "name"` or `via = false`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViaValue {
    Name(String),
    Off,
}

impl<'de> Deserialize<'de> for ViaValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ViaVisitor;
        impl Visitor<'_> for ViaVisitor {
            type Value = ViaValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                if v {
                    Err(E::custom(
                        "via = true is not a value; write a name such as \"ringmesh\", or false",
                    ))
                } else {
                    Ok(ViaValue::Off)
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ViaValue::Name(v.to_string()))
            }
        }
        deserializer.deserialize_any(ViaVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_forms() {
        #[derive(Deserialize)]
        struct T {
            e: Vec<EndpointValue>,
        }
        let t: T =
            toml::from_str(r#"e = ["1.2.3.4:5", { addr = "1.2.3.4:6", weight = 3 }]"#).unwrap();
        assert_eq!(t.e[0], EndpointValue::Addr("1.2.3.4:5".into()));
        assert_eq!(
            t.e[1],
            EndpointValue::Table(EndpointTable {
                addr: "1.2.3.4:6".into(),
                weight: Some(3)
            })
        );
        let bad = toml::from_str::<T>(r#"e = [{ addr = "1.2.3.4:6", wieght = 3 }]"#);
        assert!(bad
            .err()
            .unwrap()
            .message()
            .contains("unknown field `wieght`"));
    }

    #[test]
    fn scalar_forms() {
        #[derive(Deserialize)]
        struct T {
            s: Vec<SizeValue>,
            d: Vec<DurationValue>,
            v: Vec<ViaValue>,
        }
        let t: T = toml::from_str(
            r#"s = [12, "4kB"]
d = ["1s", 5]
v = ["x", false]"#,
        )
        .unwrap();
        assert_eq!(t.s, [SizeValue::Bytes(12), SizeValue::Text("4kB".into())]);
        assert_eq!(
            t.d,
            [DurationValue::Text("1s".into()), DurationValue::Unitless(5)]
        );
        assert_eq!(t.v, [ViaValue::Name("x".into()), ViaValue::Off]);
        let bad = toml::from_str::<T>("s = []\nd = []\nv = [true]");
        assert!(bad.err().unwrap().message().contains("via = true"));
    }
}
