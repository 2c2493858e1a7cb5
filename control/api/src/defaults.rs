//! The defaults of docs/config.md, in one place so validation (which checks values
//! against each other) and compilation (which fills them in) cannot disagree.

pub const DRAIN_TIMEOUT_MS: u64 = 10_000;

pub const MAX_CONNECTIONS: u32 = 10_000;
pub const TCP_IDLE_TIMEOUT_MS: u64 = 3_600_000;
pub const HTTP_IDLE_TIMEOUT_MS: u64 = 60_000;
pub const SPLICE: bool = false;

pub const MAX_REQUEST_LINE: u32 = 8 * 1024;
pub const MAX_HEADER_BYTES: u32 = 64 * 1024;
pub const MAX_HEADERS: u32 = 100;
pub const HEADER_READ_TIMEOUT_MS: u64 = 10_000;
pub const MAX_BODY_BYTES: u64 = 100 * 1024 * 1024;
pub const X_FORWARDED_FOR: bool = true;
pub const X_FORWARDED_PROTO: bool = true;
pub const VIA: &str = "ringmesh";
pub const REQUEST_ID: bool = true;

pub const DIRECT_CONTENT_TYPE: &str = "text/plain";

pub const CONNECT_TIMEOUT_MS: u64 = 1_000;
pub const MAX_IDLE_PER_ENDPOINT: u32 = 64;
pub const POOL_IDLE_TIMEOUT_MS: u64 = 30_000;
pub const ENDPOINT_WEIGHT: u32 = 1;
pub const SLOW_START_MS: u64 = 0;

pub const HEALTH_CHECK_INTERVAL_MS: u64 = 5_000;
pub const HEALTH_CHECK_TIMEOUT_MS: u64 = 1_000;
pub const HEALTHY_THRESHOLD: u32 = 2;
pub const UNHEALTHY_THRESHOLD: u32 = 3;
pub const HEALTH_CHECK_JITTER_PERCENT: u8 = 10;
pub const HEALTH_CHECK_EXPECT_STATUS: u16 = 200;

/// Used when a present `outlier` table leaves the key out; `0` turns a check off.
pub const OUTLIER_CONSECUTIVE_5XX: u32 = 5;
pub const OUTLIER_CONSECUTIVE_GATEWAY_FAILURE: u32 = 5;
pub const OUTLIER_BASE_EJECTION_TIME_MS: u64 = 30_000;
pub const OUTLIER_MAX_EJECTION_TIME_MS: u64 = 300_000;
pub const OUTLIER_MAX_EJECTION_PERCENT: u8 = 50;
pub const OUTLIER_INTERVAL_MS: u64 = 10_000;
pub const OUTLIER_PANIC_THRESHOLD_PERCENT: u8 = 50;

// Circuit breaker and retry budget defaults are `BreakerSpec::default()` and
// `RetryBudgetSpec::default()` in the snapshot, which the dataplane shares.

/// Used when a route has a `retry` table; a route without one compiles to no
/// `RetrySpec`, and the dataplane retries once on connect failure only.
pub const RETRY_ATTEMPTS: u32 = 2;
pub const RETRY_ON: &[&str] = &["connect-failure", "reset", "gateway-error"];
pub const RETRY_BACKOFF_BASE_MS: u64 = 25;
pub const RETRY_BACKOFF_MAX_MS: u64 = 250;
pub const RETRY_NON_IDEMPOTENT: bool = false;
pub const RETRY_MAX_BODY_BYTES: u64 = 64 * 1024;

/// A fault written without its percentage applies to every request.
pub const FAULT_PERCENT: f64 = 100.0;

/// `burst` when a rate limit leaves it out: a tenth of a second's worth, at least 1.
pub fn rate_limit_burst(requests_per_second: u32) -> u32 {
    (requests_per_second / 10).max(1)
}
