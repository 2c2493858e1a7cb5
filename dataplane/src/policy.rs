//! Resilience settings of a snapshot compiled into the runtime policies the request
//! path uses: retry policy, fault injection, hash tables for affinity, outlier and
//! health-check configuration. Built once per table, off the request path.

use crate::balance::maglev::{Maglev, DEFAULT_TABLE_SIZE};
use crate::balance::ring_hash::{RingConfig, RingEndpoint, RingHash};
use crate::resilience::breaker::Limits;
use crate::resilience::fault::{AbortFault, DelayFault, FaultPolicy};
use crate::resilience::health::{Health, HealthConfig};
use crate::resilience::outlier::OutlierConfig;
use crate::resilience::retry::{RetryBudgetConfig, RetryOn, RetryPolicy};
use crate::resilience::Chance;
use ringmesh_api::snapshot::{
    Balance, BreakerSpec, ClusterSpec, FaultSpec, HealthCheckSpec, OutlierSpec, RetryBudgetSpec,
    RetrySpec,
};
use std::time::Duration;

/// Default for routes without a `retry` table: one retry, only when the connection
/// could not be opened (the upstream never saw the request).
pub const DEFAULT_MAX_REPLAY_BODY: u64 = 64 * 1024;

pub fn retry_policy(spec: Option<&RetrySpec>) -> Result<(RetryPolicy, u64), String> {
    let Some(spec) = spec else {
        let policy = RetryPolicy {
            retry_on: RetryOn::CONNECT_FAILURE,
            max_retries: 1,
            ..RetryPolicy::default()
        };
        return Ok((policy, DEFAULT_MAX_REPLAY_BODY));
    };
    let mut retry_on = RetryOn::NONE;
    for name in &spec.retry_on {
        let condition =
            RetryOn::from_name(name).ok_or_else(|| format!("unknown retry condition {name:?}"))?;
        retry_on = retry_on | condition;
    }
    let policy = RetryPolicy {
        retry_on,
        retriable_statuses: spec.statuses.clone().into_boxed_slice(),
        max_retries: spec.attempts,
        per_try_timeout: spec.per_try_timeout_ms.map(Duration::from_millis),
        backoff_base: Duration::from_millis(spec.backoff_base_ms),
        backoff_max: Duration::from_millis(spec.backoff_max_ms.max(spec.backoff_base_ms)),
        retry_non_idempotent: spec.non_idempotent,
    };
    Ok((policy, spec.max_replay_body_bytes))
}

pub fn fault_policy(spec: Option<&FaultSpec>) -> Option<FaultPolicy> {
    let spec = spec?;
    let per_million =
        |percent: f64| Chance::per_million((percent.clamp(0.0, 100.0) * 10_000.0) as u32);
    let policy = FaultPolicy {
        delay: spec.delay_ms.map(|ms| DelayFault {
            delay: Duration::from_millis(ms),
            chance: per_million(spec.delay_percent),
        }),
        abort: spec.abort_status.map(|status| AbortFault {
            status,
            chance: per_million(spec.abort_percent),
        }),
    };
    (!policy.is_empty()).then_some(policy)
}

/// Immutable affinity table shared by every worker.
#[derive(Debug)]
pub enum HashTable {
    Ring(RingHash),
    Maglev(Maglev),
}

impl HashTable {
    pub fn pick(&self, hash: u64) -> Option<usize> {
        match self {
            HashTable::Ring(ring) => ring.pick(hash),
            HashTable::Maglev(maglev) => maglev.pick(hash),
        }
    }
}

pub fn hash_table(cluster: &ClusterSpec) -> Result<Option<HashTable>, String> {
    let endpoints: Vec<RingEndpoint> = cluster
        .endpoints
        .iter()
        .map(|e| RingEndpoint {
            key: e.id.0,
            weight: e.weight.max(1),
        })
        .collect();
    match cluster.balance {
        Balance::RingHash => Ok(Some(HashTable::Ring(RingHash::build(
            &endpoints,
            RingConfig::default(),
        )))),
        Balance::Maglev => Maglev::build(&endpoints, DEFAULT_TABLE_SIZE)
            .map(|table| Some(HashTable::Maglev(table)))
            .map_err(|err| format!("cluster {:?}: {err}", cluster.name)),
        _ => Ok(None),
    }
}

/// Outlier detection plus its panic threshold.
#[derive(Debug, Clone, Copy)]
pub struct OutlierPolicy {
    pub config: OutlierConfig,
    pub panic_threshold_percent: u8,
}

pub fn outlier_policy(spec: Option<&OutlierSpec>) -> Option<OutlierPolicy> {
    let spec = spec?;
    Some(OutlierPolicy {
        config: OutlierConfig {
            consecutive_5xx: spec.consecutive_5xx,
            consecutive_gateway_failure: spec.consecutive_gateway_failure,
            consecutive_connect_failure: spec.consecutive_connect_failure,
            base_ejection_time: Duration::from_millis(spec.base_ejection_time_ms),
            max_ejection_time: Duration::from_millis(
                spec.max_ejection_time_ms.max(spec.base_ejection_time_ms),
            ),
            max_ejection_percent: spec.max_ejection_percent,
            interval: Duration::from_millis(spec.interval_ms.max(1)),
        },
        panic_threshold_percent: spec.panic_threshold_percent,
    })
}

pub fn breaker_limits(spec: &BreakerSpec) -> Limits {
    Limits {
        max_connections: spec.max_connections,
        max_pending_requests: spec.max_pending_requests,
        max_requests: spec.max_requests,
        max_retries: spec.max_retries,
    }
}

pub fn retry_budget(spec: &RetryBudgetSpec) -> RetryBudgetConfig {
    RetryBudgetConfig {
        ratio: f64::from(spec.percent) / 100.0,
        min_retries_per_sec: spec.min_per_second,
        ..RetryBudgetConfig::default()
    }
}

pub fn health_config(spec: &HealthCheckSpec) -> HealthConfig {
    HealthConfig {
        interval: Duration::from_millis(spec.interval_ms.max(1)),
        jitter_percent: spec.jitter_percent,
        healthy_threshold: spec.healthy_threshold.max(1),
        unhealthy_threshold: spec.unhealthy_threshold.max(1),
        // Endpoints serve until probes say otherwise: a config push must not
        // refuse all traffic while the first probes are out.
        initial: Health::Healthy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_retry_means_one_connect_retry() {
        let (policy, replay) = retry_policy(None).unwrap();
        assert_eq!(policy.max_retries, 1);
        assert!(policy.retry_on.contains(RetryOn::CONNECT_FAILURE));
        assert!(!policy.retry_on.contains(RetryOn::GATEWAY_ERROR));
        assert_eq!(replay, DEFAULT_MAX_REPLAY_BODY);
    }

    #[test]
    fn named_conditions_compile() {
        let spec = RetrySpec {
            attempts: 3,
            retry_on: vec!["5xx".into(), "reset".into()],
            statuses: vec![],
            per_try_timeout_ms: Some(100),
            backoff_base_ms: 10,
            backoff_max_ms: 5,
            non_idempotent: false,
            max_replay_body_bytes: 1024,
        };
        let (policy, replay) = retry_policy(Some(&spec)).unwrap();
        assert!(policy.retry_on.contains(RetryOn::STATUS_5XX));
        assert_eq!(policy.backoff_max, Duration::from_millis(10));
        assert_eq!(replay, 1024);
        let bad = RetrySpec {
            retry_on: vec!["sometimes".into()],
            ..spec
        };
        assert!(retry_policy(Some(&bad)).is_err());
    }

    #[test]
    fn fault_percentages() {
        let spec = FaultSpec {
            delay_ms: Some(5),
            delay_percent: 100.0,
            abort_status: None,
            abort_percent: 0.0,
        };
        let policy = fault_policy(Some(&spec)).unwrap();
        assert!(policy.delay.is_some() && policy.abort.is_none());
        let none = FaultSpec {
            delay_ms: None,
            delay_percent: 0.0,
            abort_status: None,
            abort_percent: 0.0,
        };
        assert!(fault_policy(Some(&none)).is_none());
    }
}
