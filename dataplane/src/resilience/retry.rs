//! Retries: whether a failed attempt may be sent again (policy), how long to wait
//! first (exponential backoff with full jitter), and whether the cluster can afford
//! it (a retry budget that caps retries as a share of requests).
//!
//! The budget is the Finagle/Linkerd token model rather than Envoy's concurrency
//! model. Envoy allows retries while `active_retries < budget% × active_requests`,
//! which bounds retries in flight, not retries sent: against an upstream that refuses
//! connections in microseconds, a 20% concurrency budget still allows tens of
//! thousands of retries per second. The token model bounds the thing that overloads a
//! failing upstream, the retry *rate*: within any `ttl` window, retries ≤
//! `ratio × requests + min_retries_per_sec × ttl`. It needs no shared counters, only
//! this worker's own window, so each worker enforces the ratio on its own traffic.

use super::later;
use std::time::{Duration, Instant};

/// The failure classes a route retries on; combine with `|`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryOn(u16);

impl RetryOn {
    pub const NONE: RetryOn = RetryOn(0);
    /// The connection could not be established (the request never left).
    pub const CONNECT_FAILURE: RetryOn = RetryOn(1);
    /// The connection broke or the per-try timeout fired before a response.
    pub const RESET: RetryOn = RetryOn(1 << 1);
    /// 502, 503 or 504, and local failures that map to them (connect failure 503,
    /// per-try timeout 504).
    pub const GATEWAY_ERROR: RetryOn = RetryOn(1 << 2);
    /// Any 5xx, and every local failure.
    pub const STATUS_5XX: RetryOn = RetryOn(1 << 3);
    /// The statuses listed in `RetryPolicy::retriable_statuses`.
    pub const STATUSES: RetryOn = RetryOn(1 << 4);
    /// gRPC answers whose `grpc-status` is one of these (gRPC reports failures
    /// with HTTP 200; a trailers-only answer carries the status in its head).
    pub const GRPC_CANCELLED: RetryOn = RetryOn(1 << 5);
    pub const GRPC_DEADLINE_EXCEEDED: RetryOn = RetryOn(1 << 6);
    pub const GRPC_INTERNAL: RetryOn = RetryOn(1 << 7);
    pub const GRPC_RESOURCE_EXHAUSTED: RetryOn = RetryOn(1 << 8);
    pub const GRPC_UNAVAILABLE: RetryOn = RetryOn(1 << 9);
    const GRPC_ANY: RetryOn = RetryOn(0b11111 << 5);

    pub const fn union(self, other: RetryOn) -> RetryOn {
        RetryOn(self.0 | other.0)
    }

    pub const fn contains(self, other: RetryOn) -> bool {
        other.0 != 0 && self.0 & other.0 == other.0
    }

    /// Envoy's `retry_on` names, for configuration.
    /// Whether any gRPC status is retried (only then is `grpc-status` looked at).
    pub const fn any_grpc(self) -> bool {
        self.0 & RetryOn::GRPC_ANY.0 != 0
    }

    pub fn from_name(name: &str) -> Option<RetryOn> {
        Some(match name {
            "connect-failure" => RetryOn::CONNECT_FAILURE,
            "reset" => RetryOn::RESET,
            "gateway-error" => RetryOn::GATEWAY_ERROR,
            "5xx" => RetryOn::STATUS_5XX,
            "retriable-status-codes" => RetryOn::STATUSES,
            "cancelled" => RetryOn::GRPC_CANCELLED,
            "deadline-exceeded" => RetryOn::GRPC_DEADLINE_EXCEEDED,
            "internal" => RetryOn::GRPC_INTERNAL,
            "resource-exhausted" => RetryOn::GRPC_RESOURCE_EXHAUSTED,
            "unavailable" => RetryOn::GRPC_UNAVAILABLE,
            _ => return None,
        })
    }
}

impl std::ops::BitOr for RetryOn {
    type Output = RetryOn;
    fn bitor(self, other: RetryOn) -> RetryOn {
        self.union(other)
    }
}

/// Why an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    ConnectFailure,
    Reset,
    /// The per-try timeout fired.
    Timeout,
    /// The upstream answered with this status.
    Status(u16),
    /// A gRPC answer with this `grpc-status` code.
    Grpc(u32),
}

impl Failure {
    fn matches(self, retry_on: RetryOn, statuses: &[u16]) -> bool {
        let classes = match self {
            Failure::ConnectFailure => {
                RetryOn::CONNECT_FAILURE | RetryOn::GATEWAY_ERROR | RetryOn::STATUS_5XX
            }
            Failure::Reset => RetryOn::RESET | RetryOn::STATUS_5XX,
            Failure::Timeout => RetryOn::RESET | RetryOn::GATEWAY_ERROR | RetryOn::STATUS_5XX,
            Failure::Status(status) => {
                let mut classes = RetryOn::NONE;
                if (500..600).contains(&status) {
                    classes = classes | RetryOn::STATUS_5XX;
                }
                if matches!(status, 502..=504) {
                    classes = classes | RetryOn::GATEWAY_ERROR;
                }
                if statuses.contains(&status) {
                    classes = classes | RetryOn::STATUSES;
                }
                classes
            }
            Failure::Grpc(code) => match code {
                1 => RetryOn::GRPC_CANCELLED,
                4 => RetryOn::GRPC_DEADLINE_EXCEEDED,
                8 => RetryOn::GRPC_RESOURCE_EXHAUSTED,
                13 => RetryOn::GRPC_INTERNAL,
                14 => RetryOn::GRPC_UNAVAILABLE,
                _ => RetryOn::NONE,
            },
        };
        retry_on.0 & classes.0 != 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub retry_on: RetryOn,
    /// Used when `retry_on` contains `STATUSES`. Built with the route, never per request.
    pub retriable_statuses: Box<[u16]>,
    /// Retries after the first attempt (so at most `max_retries + 1` attempts).
    pub max_retries: u32,
    pub per_try_timeout: Option<Duration>,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// The route says its non-idempotent requests (POST, PATCH) are safe to repeat.
    pub retry_non_idempotent: bool,
}

impl Default for RetryPolicy {
    /// Envoy's defaults: one retry, 25 ms base and 250 ms maximum backoff.
    fn default() -> Self {
        RetryPolicy {
            retry_on: RetryOn::CONNECT_FAILURE | RetryOn::RESET | RetryOn::GATEWAY_ERROR,
            retriable_statuses: Box::new([]),
            max_retries: 1,
            per_try_timeout: None,
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_millis(250),
            retry_non_idempotent: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Retry,
    GiveUp(GiveUp),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// The policy does not retry this kind of failure.
    NotRetriable,
    /// `max_retries` reached.
    Exhausted,
    /// Part of the response already went to the client; a second one cannot follow.
    ResponseStarted,
    /// The body was streamed and not kept, so it cannot be sent again.
    BodyNotReplayable,
    /// The upstream may have acted on a non-idempotent request.
    NotIdempotent,
    /// The cluster's retry budget is spent (decided by `RetryBudget`).
    BudgetExhausted,
}

impl GiveUp {
    pub fn as_str(self) -> &'static str {
        match self {
            GiveUp::NotRetriable => "not_retriable",
            GiveUp::Exhausted => "retries_exhausted",
            GiveUp::ResponseStarted => "response_started",
            GiveUp::BodyNotReplayable => "body_not_replayable",
            GiveUp::NotIdempotent => "not_idempotent",
            GiveUp::BudgetExhausted => "retry_budget_exhausted",
        }
    }
}

/// Whether attempt number `attempt` (0 for the first try) may be followed by a retry.
/// The budget is asked separately, and last, so that a retry the policy forbids never
/// spends a token.
///
/// A body that cannot be replayed is never retried: its bytes are gone. A
/// non-idempotent method is retried only when the upstream cannot have seen it (the
/// connection never opened) or the route says it is safe.
pub fn should_retry(
    policy: &RetryPolicy,
    attempt: u32,
    failure: Failure,
    method_idempotent: bool,
    body_replayable: bool,
    response_started: bool,
) -> Decision {
    let give_up = if response_started {
        GiveUp::ResponseStarted
    } else if !failure.matches(policy.retry_on, &policy.retriable_statuses) {
        GiveUp::NotRetriable
    } else if attempt >= policy.max_retries {
        GiveUp::Exhausted
    } else if !body_replayable {
        GiveUp::BodyNotReplayable
    } else if !method_idempotent
        && !policy.retry_non_idempotent
        && failure != Failure::ConnectFailure
        // gRPC calls are POSTs; listing a gRPC code is the route owner saying the
        // call is safe to repeat when it fails that way (as gRPC's own retry policy).
        && !matches!(failure, Failure::Grpc(_))
    {
        GiveUp::NotIdempotent
    } else {
        return Decision::Retry;
    };
    Decision::GiveUp(give_up)
}

/// The wait before retry number `attempt + 1`: uniform in
/// `[0, min(backoff_max, backoff_base × 2^attempt)]`. Full jitter spreads the retries
/// of many clients that failed together, so they do not return in lockstep.
pub fn backoff(policy: &RetryPolicy, attempt: u32, roll: u64) -> Duration {
    let base = policy.backoff_base.as_nanos();
    let ceiling = base
        .checked_shl(attempt.min(64))
        .filter(|grown| grown >> attempt.min(64) == base)
        .unwrap_or(u128::MAX)
        .min(policy.backoff_max.as_nanos());
    let nanos = u128::from(roll) % ceiling.saturating_add(1);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudgetConfig {
    /// Retries allowed per request (0.2: at most one retry per five requests).
    pub ratio: f64,
    /// Retries always allowed per second, so a worker with little traffic can still
    /// retry. Split it between workers as with rate limits.
    pub min_retries_per_sec: u32,
    /// How long a request's deposit (and a retry's withdrawal) counts.
    pub ttl: Duration,
}

impl Default for RetryBudgetConfig {
    /// Linkerd's defaults.
    fn default() -> Self {
        RetryBudgetConfig {
            ratio: 0.2,
            min_retries_per_sec: 10,
            ttl: Duration::from_secs(10),
        }
    }
}

impl RetryBudgetConfig {
    /// This worker's share: the ratio applies to the worker's own requests as is, the
    /// floor is divided among workers (rounded up, so every worker can retry).
    pub fn for_worker(&self, workers: usize) -> RetryBudgetConfig {
        let workers = u32::try_from(workers.max(1)).unwrap_or(u32::MAX);
        RetryBudgetConfig {
            min_retries_per_sec: self.min_retries_per_sec.div_ceil(workers),
            ..*self
        }
    }
}

/// Time slices the window is kept in: deposits age out a slice at a time.
const SLICES: usize = 10;
/// Token amounts are kept in thousandths so a ratio like 0.2 is exact.
const MILLI: i64 = 1000;

/// A window of deposits (one `ratio` per request) and withdrawals (one per retry),
/// plus a standing reserve of `min_retries_per_sec × ttl`. A retry is allowed while
/// the reserve plus the window's balance covers one whole token.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    /// Milli-tokens each original request adds (`ratio × 1000`).
    deposit_milli: i64,
    reserve: i64,
    slice_len: Duration,
    /// Net milli-tokens per slice; `current` is the slice `now` falls in.
    slices: [i64; SLICES],
    current: usize,
    /// Start of the current slice; `None` until the first call.
    current_start: Option<Instant>,
}

impl RetryBudget {
    pub fn new(config: RetryBudgetConfig) -> Self {
        let ratio = if config.ratio.is_finite() {
            config.ratio.clamp(0.0, 1000.0)
        } else {
            0.0
        };
        let ttl = config.ttl.max(Duration::from_millis(SLICES as u64));
        let reserve = i128::from(config.min_retries_per_sec)
            * i128::from(MILLI)
            * ttl.as_nanos().min(i64::MAX as u128) as i128
            / 1_000_000_000;
        let reserve = i64::try_from(reserve).unwrap_or(i64::MAX);
        RetryBudget {
            deposit_milli: (ratio * MILLI as f64).round() as i64,
            reserve,
            slice_len: ttl / SLICES as u32,
            slices: [0; SLICES],
            current: 0,
            current_start: None,
        }
    }

    /// Counts an original request (not a retry).
    pub fn deposit(&mut self, now: Instant) {
        self.add(now, self.deposit_milli);
    }

    /// Takes one retry from the budget if it has one.
    pub fn try_withdraw(&mut self, now: Instant) -> bool {
        if self.balance_milli(now) < MILLI {
            return false;
        }
        self.add(now, -MILLI);
        true
    }

    /// Whole retries the budget would allow right now.
    pub fn available(&mut self, now: Instant) -> u64 {
        u64::try_from(self.balance_milli(now) / MILLI).unwrap_or(0)
    }

    fn balance_milli(&mut self, now: Instant) -> i64 {
        self.advance(now);
        self.slices
            .iter()
            .fold(self.reserve, |sum, slice| sum.saturating_add(*slice))
    }

    fn add(&mut self, now: Instant, milli: i64) {
        self.advance(now);
        if let Some(slice) = self.slices.get_mut(self.current) {
            *slice = slice.saturating_add(milli);
        }
    }

    /// Moves the window forward to `now`, clearing the slices that aged out.
    fn advance(&mut self, now: Instant) {
        let Some(start) = self.current_start else {
            self.current_start = Some(now);
            return;
        };
        let elapsed = now.saturating_duration_since(start);
        let steps = elapsed.as_nanos() / self.slice_len.as_nanos().max(1);
        if steps == 0 {
            return;
        }
        if steps >= SLICES as u128 {
            // Everything aged out; where the slice boundaries fall no longer matters.
            self.slices = [0; SLICES];
            self.current = 0;
            self.current_start = Some(now);
            return;
        }
        // `steps` < SLICES here, so these conversions are exact.
        let steps = steps as usize;
        for _ in 0..steps {
            self.current = (self.current + 1) % SLICES;
            if let Some(slice) = self.slices.get_mut(self.current) {
                *slice = 0;
            }
        }
        self.current_start = Some(later(start, self.slice_len * steps as u32));
    }
}

#[cfg(test)]
#[path = "retry_tests.rs"]
mod tests;
