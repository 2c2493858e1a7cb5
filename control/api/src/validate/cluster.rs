//! Validation of one `[[cluster]]` and its endpoints.

use super::at::At;
use super::resilience::{circuit_breaker, hash_key, health_check, outlier, retry_budget};
use super::scalar::{duration_ms, int_in, name, socket_addr, AddrUse};
use crate::error::Errors;
use crate::file::{BalanceFile, ClusterFile, EndpointValue};
use crate::snapshot::{Balance, HashKey};
use crate::validated::{ValidCluster, ValidEndpoint};

const MAX_ENDPOINT_WEIGHT: i64 = 65_535;
const MAX_IDLE_CEILING: i64 = 10_000;

pub(crate) fn cluster(errors: &mut Errors, at: At<'_>, file: &ClusterFile) -> Option<ValidCluster> {
    let before = errors.0.len();
    let name = name(errors, at.key("name"), &file.name);
    let connect_timeout_ms = file
        .connect_timeout
        .as_ref()
        .and_then(|d| duration_ms(errors, at.key("connect_timeout"), d, false));
    let max_idle_per_endpoint = file.max_idle_per_endpoint.and_then(|n| {
        int_in(
            errors,
            at.key("max_idle_per_endpoint"),
            n,
            0,
            MAX_IDLE_CEILING,
        )
    });
    let pool_idle_timeout_ms = file
        .pool_idle_timeout
        .as_ref()
        .and_then(|d| duration_ms(errors, at.key("pool_idle_timeout"), d, false));
    let endpoints = endpoints(errors, at.key("endpoints"), &file.endpoints);
    let hash_key = balance_hash_key(errors, at, file);
    let slow_start_ms = file
        .slow_start
        .as_ref()
        .and_then(|d| duration_ms(errors, at.key("slow_start"), d, true));
    let health_check = file
        .health_check
        .as_ref()
        .and_then(|h| health_check(errors, at.key("health_check"), h));
    let outlier = file
        .outlier
        .as_ref()
        .and_then(|o| outlier(errors, at.key("outlier"), o));
    let circuit_breaker = file
        .circuit_breaker
        .as_ref()
        .and_then(|b| circuit_breaker(errors, at.key("circuit_breaker"), b));
    let retry_budget = file
        .retry_budget
        .as_ref()
        .and_then(|b| retry_budget(errors, at.key("retry_budget"), b));
    let tls = file
        .tls
        .as_ref()
        .and_then(|t| super::security::cluster_tls(errors, at.key("tls"), t));
    if errors.0.len() != before {
        return None;
    }
    Some(ValidCluster {
        name: name?.to_string(),
        balance: file.balance.map(|b| match b {
            BalanceFile::RoundRobin => Balance::RoundRobin,
            BalanceFile::P2cEwma => Balance::P2cEwma,
            BalanceFile::LeastRequest => Balance::LeastRequest,
            BalanceFile::RingHash => Balance::RingHash,
            BalanceFile::Maglev => Balance::Maglev,
        }),
        connect_timeout_ms,
        max_idle_per_endpoint,
        pool_idle_timeout_ms,
        endpoints,
        hash_key,
        slow_start_ms,
        health_check,
        outlier,
        circuit_breaker,
        retry_budget,
        tls,
    })
}

/// `hash_key` goes with the hashing balancers, both ways.
fn balance_hash_key(errors: &mut Errors, at: At<'_>, file: &ClusterFile) -> Option<HashKey> {
    let hashing = match file.balance {
        Some(BalanceFile::RingHash) => Some("ring_hash"),
        Some(BalanceFile::Maglev) => Some("maglev"),
        _ => None,
    };
    let path = at.key("hash_key");
    match (&file.hash_key, hashing) {
        (Some(key), Some(_)) => hash_key(errors, path, key),
        (None, Some(balance)) => {
            errors.add_hint(
                path,
                format!("balance = \"{balance}\" needs a hash_key"),
                "add hash_key = { header = \"x-user\" }, { cookie = \"sid\" } or { source_ip = true }",
            );
            None
        }
        (Some(_), None) => {
            errors.add_hint(
                path,
                "hash_key is only for balance = \"ring_hash\" or \"maglev\"",
                "remove it, or set balance = \"ring_hash\"",
            );
            None
        }
        (None, None) => None,
    }
}

fn endpoints(
    errors: &mut Errors,
    at: At<'_>,
    file: &Option<Vec<EndpointValue>>,
) -> Vec<ValidEndpoint> {
    let mut out = Vec::new();
    let Some(list) = file else {
        errors.add_hint(
            at,
            "a cluster needs endpoints",
            "add endpoints = [\"127.0.0.1:9000\"]",
        );
        return out;
    };
    if list.is_empty() {
        errors.add_hint(
            at,
            "endpoints is empty",
            "add at least one, such as \"127.0.0.1:9000\"",
        );
    }
    let mut seen: foldhash::HashMap<std::net::SocketAddr, usize> =
        foldhash::HashMap::with_capacity_and_hasher(list.len(), Default::default());
    for (i, value) in list.iter().enumerate() {
        let (addr_at, text, weight) = match value {
            EndpointValue::Addr(text) => (None, text, None),
            EndpointValue::Table(t) => (Some("addr"), &t.addr, t.weight),
        };
        let entry_at = at.index(i);
        let key_at;
        let addr_at = match addr_at {
            Some(key) => {
                key_at = entry_at.key(key);
                key_at
            }
            None => entry_at,
        };
        let addr = socket_addr(errors, addr_at, text, AddrUse::Connect);
        let weight =
            weight.and_then(|w| int_in(errors, entry_at.key("weight"), w, 1, MAX_ENDPOINT_WEIGHT));
        let Some(addr) = addr else { continue };
        if let Some(first) = seen.get(&addr) {
            errors.add_hint(
                addr_at,
                format!("duplicate endpoint {addr}"),
                format!("also at {at}[{first}]; give one entry a weight instead"),
            );
            continue;
        }
        seen.insert(addr, i);
        out.push(ValidEndpoint { addr, weight });
    }
    out
}
