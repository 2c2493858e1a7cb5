//! Validation of the resilience tables: a route's `retry`, `rate_limit` and
//! `fault`, a listener's `rate_limit`, and a cluster's `hash_key`, `health_check`,
//! `outlier`, `circuit_breaker` and `retry_budget`. Values that depend on each
//! other are compared as they will be compiled, defaults included, so a single
//! written key that clashes with a default is caught too.

use super::at::At;
use super::http::{cookie_name, header_name};
use super::scalar::{duration_ms, int_in, required, size_in};
use crate::defaults;
use crate::error::Errors;
use crate::file::{
    BreakerFile, FaultFile, HashKeyFile, HealthCheckFile, OutlierFile, Protocol, RateLimitFile,
    RetryBudgetFile, RetryFile,
};
use crate::snapshot::HashKey;
use crate::suggest::closest;
use crate::validated::{
    ValidBreaker, ValidFault, ValidHealthCheck, ValidHealthCheckKind, ValidOutlier, ValidRateLimit,
    ValidRetry, ValidRetryBudget,
};

/// The conditions `retry.on` may name, as the dataplane spells them.
pub const RETRY_CONDITIONS: &[&str] = &[
    "connect-failure",
    "reset",
    "gateway-error",
    "5xx",
    "retriable-status-codes",
    // gRPC status codes, for answers that carry `grpc-status` in their head.
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];
const RETRIABLE_STATUS_CODES: &str = "retriable-status-codes";
const MAX_RETRY_ATTEMPTS: i64 = 10;
const MAX_RETRY_PERCENT: i64 = 1_000;
const MAX_THRESHOLD: i64 = 1_000;
const MAX_CONSECUTIVE: i64 = 1_000;
const U32_MAX: i64 = u32::MAX as i64;

pub(crate) fn rate_limit(
    errors: &mut Errors,
    at: At<'_>,
    file: &RateLimitFile,
) -> Option<ValidRateLimit> {
    let rps_at = at.key("requests_per_second");
    let requests_per_second = required(errors, rps_at, &file.requests_per_second)
        .and_then(|n| int_in(errors, rps_at, *n, 1, U32_MAX));
    let burst = file
        .burst
        .and_then(|n| int_in(errors, at.key("burst"), n, 1, U32_MAX));
    if file.burst.is_some() && burst.is_none() {
        return None;
    }
    Some(ValidRateLimit {
        requests_per_second: requests_per_second?,
        burst,
    })
}

pub(crate) fn retry(
    errors: &mut Errors,
    at: At<'_>,
    file: &RetryFile,
    route_timeout_ms: Option<u64>,
) -> Option<ValidRetry> {
    let before = errors.0.len();
    let attempts: Option<u32> = file
        .attempts
        .and_then(|n| int_in(errors, at.key("attempts"), n, 0, MAX_RETRY_ATTEMPTS));
    if attempts == Some(0) {
        let others: Vec<&str> = [
            ("on", file.on.is_some()),
            ("statuses", file.statuses.is_some()),
            ("per_try_timeout", file.per_try_timeout.is_some()),
            ("backoff_base", file.backoff_base.is_some()),
            ("backoff_max", file.backoff_max.is_some()),
            ("non_idempotent", file.non_idempotent.is_some()),
            ("max_body", file.max_body.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(k, _)| k)
        .collect();
        if !others.is_empty() {
            errors.add_hint(
                at.key("attempts"),
                format!(
                    "attempts = 0 turns retries off, so {} would do nothing",
                    others.join(", ")
                ),
                "remove the other retry keys, or allow at least one attempt",
            );
        }
    }
    let retry_on = file
        .on
        .as_ref()
        .and_then(|on| conditions(errors, at.key("on"), on));
    let statuses = statuses(errors, at, file);
    let per_try_timeout_ms = file
        .per_try_timeout
        .as_ref()
        .and_then(|d| duration_ms(errors, at.key("per_try_timeout"), d, false));
    if let (Some(per_try), Some(timeout)) = (per_try_timeout_ms, route_timeout_ms) {
        if per_try >= timeout {
            errors.add_hint(
                at.key("per_try_timeout"),
                format!(
                    "per_try_timeout ({per_try}ms) is not shorter than the route's timeout ({timeout}ms)"
                ),
                "the route's timeout covers every try; lower per_try_timeout or raise timeout",
            );
        }
    }
    let backoff_base_ms = file
        .backoff_base
        .as_ref()
        .and_then(|d| duration_ms(errors, at.key("backoff_base"), d, false));
    let backoff_max_ms = file
        .backoff_max
        .as_ref()
        .and_then(|d| duration_ms(errors, at.key("backoff_max"), d, false));
    let base_ok = file.backoff_base.is_none() || backoff_base_ms.is_some();
    let max_ok = file.backoff_max.is_none() || backoff_max_ms.is_some();
    let base = backoff_base_ms.unwrap_or(defaults::RETRY_BACKOFF_BASE_MS);
    let max = backoff_max_ms.unwrap_or(defaults::RETRY_BACKOFF_MAX_MS);
    if base_ok && max_ok && base > max {
        let key = if file.backoff_max.is_some() {
            "backoff_max"
        } else {
            "backoff_base"
        };
        errors.add_hint(
            at.key(key),
            format!("backoff_base ({base}ms) is longer than backoff_max ({max}ms)"),
            "backoff grows from backoff_base up to backoff_max; raise backoff_max or lower backoff_base",
        );
    }
    let max_replay_body_bytes = file
        .max_body
        .as_ref()
        .and_then(|s| size_in(errors, at.key("max_body"), s, 0, u64::MAX));
    if errors.0.len() != before {
        return None;
    }
    Some(ValidRetry {
        attempts,
        retry_on,
        statuses,
        per_try_timeout_ms,
        backoff_base_ms,
        backoff_max_ms,
        non_idempotent: file.non_idempotent,
        max_replay_body_bytes,
    })
}

/// `retry.on`: known names only, duplicates dropped.
fn conditions(errors: &mut Errors, at: At<'_>, on: &[String]) -> Option<Vec<String>> {
    let before = errors.0.len();
    if on.is_empty() {
        errors.add_hint(
            at,
            "on is empty, so no failure would be retried",
            format!(
                "omit on for the default ({}), or set attempts = 0 to turn retries off",
                defaults::RETRY_ON.join(", ")
            ),
        );
    }
    let mut out: Vec<String> = Vec::new();
    for (i, condition) in on.iter().enumerate() {
        if !RETRY_CONDITIONS.contains(&condition.as_str()) {
            let mut hint = String::new();
            if let Some(near) = closest(condition, RETRY_CONDITIONS.iter().copied()) {
                hint.push_str(&format!("did you mean \"{near}\"? "));
            }
            hint.push_str(&format!("expected one of: {}", RETRY_CONDITIONS.join(", ")));
            errors.add_hint(
                at.index(i),
                format!("unknown retry condition \"{condition}\""),
                hint,
            );
            continue;
        }
        if !out.contains(condition) {
            out.push(condition.clone());
        }
    }
    (errors.0.len() == before).then_some(out)
}

/// `retry.statuses`, which goes with `retriable-status-codes` both ways.
fn statuses(errors: &mut Errors, at: At<'_>, file: &RetryFile) -> Vec<u16> {
    let mut out = Vec::new();
    let wanted = file
        .on
        .iter()
        .flatten()
        .position(|c| c == RETRIABLE_STATUS_CODES);
    match (&file.statuses, wanted) {
        (None, None) => {}
        (None, Some(i)) => errors.add_hint(
            at.key("on").index(i),
            format!("\"{RETRIABLE_STATUS_CODES}\" needs statuses"),
            "add statuses = [503]",
        ),
        (Some(_), None) => errors.add_hint(
            at.key("statuses"),
            format!("statuses only apply with \"{RETRIABLE_STATUS_CODES}\" in on"),
            format!("add \"{RETRIABLE_STATUS_CODES}\" to on, or remove statuses"),
        ),
        (Some(list), Some(_)) => {
            if list.is_empty() {
                errors.add_hint(
                    at.key("statuses"),
                    "statuses is empty",
                    "add the statuses to retry, such as [503]",
                );
            }
            for (i, status) in list.iter().enumerate() {
                let status: Option<u16> =
                    int_in(errors, at.key("statuses").index(i), *status, 400, 599);
                if let Some(status) = status.filter(|s| !out.contains(s)) {
                    out.push(status);
                }
            }
        }
    }
    out
}

pub(crate) fn fault(errors: &mut Errors, at: At<'_>, file: &FaultFile) -> Option<ValidFault> {
    let before = errors.0.len();
    if file.delay.is_none()
        && file.delay_percent.is_none()
        && file.abort_status.is_none()
        && file.abort_percent.is_none()
    {
        errors.add_hint(
            at,
            "fault injects nothing",
            "add delay = \"50ms\" or abort_status = 503, or remove fault",
        );
        return None;
    }
    let delay_ms = file
        .delay
        .as_ref()
        .and_then(|d| duration_ms(errors, at.key("delay"), d, false));
    let delay_percent = percent_of(
        errors,
        at,
        ("delay_percent", file.delay_percent),
        ("delay", file.delay.is_some()),
        "delay = \"50ms\"",
    );
    let abort_status: Option<u16> = file
        .abort_status
        .and_then(|s| int_in(errors, at.key("abort_status"), s, 200, 599));
    let abort_percent = percent_of(
        errors,
        at,
        ("abort_percent", file.abort_percent),
        ("abort_status", file.abort_status.is_some()),
        "abort_status = 503",
    );
    if errors.0.len() != before {
        return None;
    }
    Some(ValidFault {
        delay_ms,
        delay_percent,
        abort_status,
        abort_percent,
    })
}

/// A fault's percentage: 0 to 100, fractions allowed, only with its fault.
fn percent_of(
    errors: &mut Errors,
    at: At<'_>,
    (key, value): (&str, Option<f64>),
    (fault_key, fault_set): (&str, bool),
    example: &str,
) -> Option<f64> {
    let value = value?;
    let path = at.key(key);
    if !fault_set {
        errors.add_hint(
            path,
            format!("{key} needs {fault_key}"),
            format!("add {example}, or remove {key}"),
        );
        return None;
    }
    if !value.is_finite() || !(0.0..=100.0).contains(&value) {
        errors.add_hint(
            path,
            format!("{value} is out of range"),
            "use a percentage from 0 to 100, such as 0.5 or 10",
        );
        return None;
    }
    Some(value)
}

pub(crate) fn hash_key(errors: &mut Errors, at: At<'_>, file: &HashKeyFile) -> Option<HashKey> {
    match (&file.header, &file.cookie, file.source_ip) {
        (Some(name), None, None) => {
            header_name(errors, at.key("header"), name).map(HashKey::Header)
        }
        (None, Some(name), None) => {
            cookie_name(errors, at.key("cookie"), name).map(HashKey::Cookie)
        }
        (None, None, Some(true)) => Some(HashKey::SourceIp),
        (None, None, Some(false)) => {
            errors.add_hint(
                at.key("source_ip"),
                "source_ip = false is not a hash key",
                "write source_ip = true, or hash on a header or cookie instead",
            );
            None
        }
        _ => {
            errors.add_hint(
                at,
                "a hash_key needs exactly one of header, cookie, source_ip",
                "write { header = \"x-user\" }, { cookie = \"sid\" } or { source_ip = true }",
            );
            None
        }
    }
}

pub(crate) fn health_check(
    errors: &mut Errors,
    at: At<'_>,
    file: &HealthCheckFile,
) -> Option<ValidHealthCheck> {
    let before = errors.0.len();
    let protocol = required(errors, at.key("protocol"), &file.protocol).copied();
    let kind = match protocol {
        Some(Protocol::Tcp) => {
            let http_only = [
                ("path", file.path.is_some()),
                ("expect_status", file.expect_status.is_some()),
            ];
            for (key, _) in http_only.iter().filter(|(_, set)| *set) {
                errors.add_hint(
                    at.key(key),
                    format!("{key} is only for http health checks"),
                    "remove it, or set protocol = \"http\"",
                );
            }
            Some(ValidHealthCheckKind::Tcp)
        }
        Some(Protocol::Https | Protocol::Tls | Protocol::TlsPassthrough) => {
            errors.add_hint(
                at.key("protocol"),
                "health checks speak tcp or http",
                "use protocol = \"tcp\" or \"http\"",
            );
            None
        }
        Some(Protocol::Http) => {
            let path = match &file.path {
                Some(p) => check_path(errors, at.key("path"), p),
                None => {
                    errors.add_hint(
                        at.key("path"),
                        "an http health check needs a path",
                        "add path = \"/healthz\"",
                    );
                    None
                }
            };
            let expect_status = file
                .expect_status
                .and_then(|s| int_in(errors, at.key("expect_status"), s, 200, 599));
            path.map(|path| ValidHealthCheckKind::Http {
                path,
                expect_status,
            })
        }
        None => None,
    };
    let interval_ms = file
        .interval
        .as_ref()
        .and_then(|d| duration_ms(errors, at.key("interval"), d, false));
    let timeout_ms = file
        .timeout
        .as_ref()
        .and_then(|d| duration_ms(errors, at.key("timeout"), d, false));
    let interval_ok = file.interval.is_none() || interval_ms.is_some();
    let timeout_ok = file.timeout.is_none() || timeout_ms.is_some();
    let interval = interval_ms.unwrap_or(defaults::HEALTH_CHECK_INTERVAL_MS);
    let timeout = timeout_ms.unwrap_or(defaults::HEALTH_CHECK_TIMEOUT_MS);
    if interval_ok && timeout_ok && timeout >= interval {
        let key = if file.timeout.is_some() {
            "timeout"
        } else {
            "interval"
        };
        errors.add_hint(
            at.key(key),
            format!("timeout ({timeout}ms) is not shorter than interval ({interval}ms)"),
            "a check must end before the next one starts; lower timeout or raise interval",
        );
    }
    let healthy_threshold = file
        .healthy_threshold
        .and_then(|n| int_in(errors, at.key("healthy_threshold"), n, 1, MAX_THRESHOLD));
    let unhealthy_threshold = file
        .unhealthy_threshold
        .and_then(|n| int_in(errors, at.key("unhealthy_threshold"), n, 1, MAX_THRESHOLD));
    let jitter_percent = file
        .jitter_percent
        .and_then(|n| int_in(errors, at.key("jitter_percent"), n, 0, 100));
    if errors.0.len() != before {
        return None;
    }
    Some(ValidHealthCheck {
        kind: kind?,
        interval_ms,
        timeout_ms,
        healthy_threshold,
        unhealthy_threshold,
        jitter_percent,
    })
}

/// The request target of an HTTP health check: a path, optionally with a query.
fn check_path(errors: &mut Errors, at: At<'_>, text: &str) -> Option<String> {
    if !text.starts_with('/') {
        errors.add_hint(
            at,
            format!("path {text:?} does not start with '/'"),
            format!("write \"/{}\"", text.trim_start_matches('/')),
        );
        return None;
    }
    if text.contains('#') || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        errors.add_hint(
            at,
            format!("path {text:?} contains '#', whitespace or a control character"),
            "write the path as sent on the request line, such as \"/healthz\"",
        );
        return None;
    }
    Some(text.to_string())
}

pub(crate) fn outlier(errors: &mut Errors, at: At<'_>, file: &OutlierFile) -> Option<ValidOutlier> {
    let before = errors.0.len();
    let consecutive = |errors: &mut Errors, key: &str, value: Option<i64>| -> Option<u32> {
        value.and_then(|n| int_in(errors, at.key(key), n, 0, MAX_CONSECUTIVE))
    };
    let consecutive_5xx = consecutive(errors, "consecutive_5xx", file.consecutive_5xx);
    let consecutive_gateway_failure = consecutive(
        errors,
        "consecutive_gateway_failure",
        file.consecutive_gateway_failure,
    );
    let consecutive_connect_failure = consecutive(
        errors,
        "consecutive_connect_failure",
        file.consecutive_connect_failure,
    );
    let all_off = consecutive_5xx.unwrap_or(defaults::OUTLIER_CONSECUTIVE_5XX) == 0
        && consecutive_gateway_failure.unwrap_or(defaults::OUTLIER_CONSECUTIVE_GATEWAY_FAILURE)
            == 0
        && consecutive_connect_failure.unwrap_or(0) == 0;
    if errors.0.len() == before && all_off {
        errors.add_hint(
            at,
            "every outlier check is off",
            "remove outlier to turn detection off, or set a consecutive_* key above 0",
        );
    }
    let base_ejection_time_ms = file
        .base_ejection_time
        .as_ref()
        .and_then(|d| duration_ms(errors, at.key("base_ejection_time"), d, false));
    let max_ejection_time_ms = file
        .max_ejection_time
        .as_ref()
        .and_then(|d| duration_ms(errors, at.key("max_ejection_time"), d, false));
    let base_ok = file.base_ejection_time.is_none() || base_ejection_time_ms.is_some();
    let max_ok = file.max_ejection_time.is_none() || max_ejection_time_ms.is_some();
    let base = base_ejection_time_ms.unwrap_or(defaults::OUTLIER_BASE_EJECTION_TIME_MS);
    let max = max_ejection_time_ms.unwrap_or(defaults::OUTLIER_MAX_EJECTION_TIME_MS);
    if base_ok && max_ok && max < base {
        let key = if file.max_ejection_time.is_some() {
            "max_ejection_time"
        } else {
            "base_ejection_time"
        };
        errors.add_hint(
            at.key(key),
            format!("max_ejection_time ({max}ms) is shorter than base_ejection_time ({base}ms)"),
            "ejections grow from base_ejection_time up to max_ejection_time; raise max_ejection_time or lower base_ejection_time",
        );
    }
    let max_ejection_percent = file
        .max_ejection_percent
        .and_then(|n| int_in(errors, at.key("max_ejection_percent"), n, 0, 100));
    let interval_ms = file
        .interval
        .as_ref()
        .and_then(|d| duration_ms(errors, at.key("interval"), d, false));
    let panic_threshold_percent = file
        .panic_threshold
        .and_then(|n| int_in(errors, at.key("panic_threshold"), n, 0, 100));
    if errors.0.len() != before {
        return None;
    }
    Some(ValidOutlier {
        consecutive_5xx,
        consecutive_gateway_failure,
        consecutive_connect_failure,
        base_ejection_time_ms,
        max_ejection_time_ms,
        max_ejection_percent,
        interval_ms,
        panic_threshold_percent,
    })
}

pub(crate) fn circuit_breaker(
    errors: &mut Errors,
    at: At<'_>,
    file: &BreakerFile,
) -> Option<ValidBreaker> {
    let before = errors.0.len();
    let limit = |errors: &mut Errors, key: &str, value: Option<i64>| -> Option<u32> {
        value.and_then(|n| int_in(errors, at.key(key), n, 1, U32_MAX))
    };
    let out = ValidBreaker {
        max_connections: limit(errors, "max_connections", file.max_connections),
        max_pending_requests: limit(errors, "max_pending_requests", file.max_pending_requests),
        max_requests: limit(errors, "max_requests", file.max_requests),
        max_retries: limit(errors, "max_retries", file.max_retries),
    };
    (errors.0.len() == before).then_some(out)
}

pub(crate) fn retry_budget(
    errors: &mut Errors,
    at: At<'_>,
    file: &RetryBudgetFile,
) -> Option<ValidRetryBudget> {
    let before = errors.0.len();
    let out = ValidRetryBudget {
        percent: file
            .percent
            .and_then(|n| int_in(errors, at.key("percent"), n, 0, MAX_RETRY_PERCENT)),
        min_per_second: file
            .min_per_second
            .and_then(|n| int_in(errors, at.key("min_per_second"), n, 0, U32_MAX)),
    };
    (errors.0.len() == before).then_some(out)
}
