use super::*;
use crate::resilience::XorShift64;

fn policy() -> RetryPolicy {
    RetryPolicy {
        retry_on: RetryOn::STATUS_5XX,
        max_retries: 3,
        ..RetryPolicy::default()
    }
}

#[test]
fn retry_on_classes() {
    let gateway = RetryPolicy {
        retry_on: RetryOn::GATEWAY_ERROR,
        max_retries: 2,
        ..RetryPolicy::default()
    };
    let retry = |p: &RetryPolicy, f| should_retry(p, 0, f, true, true, false);
    assert_eq!(retry(&gateway, Failure::Status(503)), Decision::Retry);
    assert_eq!(retry(&gateway, Failure::ConnectFailure), Decision::Retry);
    assert_eq!(retry(&gateway, Failure::Timeout), Decision::Retry);
    assert_eq!(
        retry(&gateway, Failure::Status(500)),
        Decision::GiveUp(GiveUp::NotRetriable)
    );
    assert_eq!(
        retry(&gateway, Failure::Reset),
        Decision::GiveUp(GiveUp::NotRetriable)
    );
    assert_eq!(retry(&policy(), Failure::Status(500)), Decision::Retry);
    assert_eq!(retry(&policy(), Failure::Reset), Decision::Retry);
    assert_eq!(
        retry(&policy(), Failure::Status(429)),
        Decision::GiveUp(GiveUp::NotRetriable)
    );
    let statuses = RetryPolicy {
        retry_on: RetryOn::from_name("retriable-status-codes").unwrap(),
        retriable_statuses: Box::new([409, 429]),
        ..policy()
    };
    assert_eq!(retry(&statuses, Failure::Status(429)), Decision::Retry);
    assert_eq!(
        retry(&statuses, Failure::Status(503)),
        Decision::GiveUp(GiveUp::NotRetriable)
    );
    let connect_only = RetryPolicy {
        retry_on: RetryOn::CONNECT_FAILURE,
        ..policy()
    };
    assert_eq!(
        retry(&connect_only, Failure::ConnectFailure),
        Decision::Retry
    );
    assert_eq!(
        retry(&connect_only, Failure::Timeout),
        Decision::GiveUp(GiveUp::NotRetriable)
    );
    assert_eq!(
        retry(
            &RetryPolicy {
                retry_on: RetryOn::NONE,
                ..policy()
            },
            Failure::Status(500)
        ),
        Decision::GiveUp(GiveUp::NotRetriable)
    );
}

#[test]
fn retry_on_names_and_sets() {
    let set = RetryOn::from_name("5xx").unwrap() | RetryOn::from_name("reset").unwrap();
    assert!(set.contains(RetryOn::STATUS_5XX) && set.contains(RetryOn::RESET));
    assert!(!set.contains(RetryOn::GATEWAY_ERROR));
    assert!(!set.contains(RetryOn::NONE));
    assert_eq!(
        RetryOn::from_name("gateway-error"),
        Some(RetryOn::GATEWAY_ERROR)
    );
    assert_eq!(
        RetryOn::from_name("connect-failure"),
        Some(RetryOn::CONNECT_FAILURE)
    );
    assert_eq!(RetryOn::from_name("bogus"), None);
}

#[test]
fn safety_rules() {
    let p = policy();
    let started = should_retry(&p, 0, Failure::Reset, true, true, true);
    assert_eq!(started, Decision::GiveUp(GiveUp::ResponseStarted));
    assert_eq!(
        should_retry(&p, 3, Failure::Status(503), true, true, false),
        Decision::GiveUp(GiveUp::Exhausted)
    );
    assert_eq!(
        should_retry(&p, 2, Failure::Status(503), true, true, false),
        Decision::Retry
    );
    assert_eq!(
        should_retry(&p, 0, Failure::ConnectFailure, true, false, false),
        Decision::GiveUp(GiveUp::BodyNotReplayable)
    );
    // POST: a reset may come after the upstream acted on it; a refused connect not.
    assert_eq!(
        should_retry(&p, 0, Failure::Reset, false, true, false),
        Decision::GiveUp(GiveUp::NotIdempotent)
    );
    assert_eq!(
        should_retry(&p, 0, Failure::ConnectFailure, false, true, false),
        Decision::Retry
    );
    let overridden = RetryPolicy {
        retry_non_idempotent: true,
        ..policy()
    };
    assert_eq!(
        should_retry(&overridden, 0, Failure::Reset, false, true, false),
        Decision::Retry
    );
    assert_eq!(GiveUp::BudgetExhausted.as_str(), "retry_budget_exhausted");
}

#[test]
fn grpc_codes_retry_only_when_listed_and_even_for_post() {
    let names = ["unavailable", "resource-exhausted"];
    let grpc = RetryPolicy {
        retry_on: names
            .iter()
            .map(|n| RetryOn::from_name(n).unwrap())
            .fold(RetryOn::NONE, |all, one| all | one),
        ..policy()
    };
    assert!(grpc.retry_on.any_grpc());
    assert!(!policy().retry_on.any_grpc());
    // UNAVAILABLE (14) and RESOURCE_EXHAUSTED (8) are listed; a POST is retried.
    for code in [14, 8] {
        assert_eq!(
            should_retry(&grpc, 0, Failure::Grpc(code), false, true, false),
            Decision::Retry,
            "grpc-status {code}"
        );
    }
    // OK, INVALID_ARGUMENT, INTERNAL (not listed) and unknown codes are answers.
    for code in [0, 3, 13, 99] {
        assert_eq!(
            should_retry(&grpc, 0, Failure::Grpc(code), false, true, false),
            Decision::GiveUp(GiveUp::NotRetriable),
            "grpc-status {code}"
        );
    }
    // A gRPC failure is never an HTTP status class, and vice versa.
    assert_eq!(
        should_retry(&grpc, 0, Failure::Status(503), true, true, false),
        Decision::GiveUp(GiveUp::NotRetriable)
    );
    assert_eq!(
        should_retry(&policy(), 0, Failure::Grpc(14), true, true, false),
        Decision::GiveUp(GiveUp::NotRetriable)
    );
    // The other limits still hold.
    assert_eq!(
        should_retry(&grpc, 0, Failure::Grpc(14), false, false, false),
        Decision::GiveUp(GiveUp::BodyNotReplayable)
    );
    for name in ["cancelled", "deadline-exceeded", "internal"] {
        assert!(RetryOn::from_name(name).unwrap().any_grpc(), "{name}");
    }
}

#[test]
fn backoff_is_full_jitter_under_a_growing_capped_ceiling() {
    let p = RetryPolicy {
        backoff_base: Duration::from_millis(25),
        backoff_max: Duration::from_millis(250),
        ..policy()
    };
    let mut rng = XorShift64::new(99);
    for (attempt, ceiling_ms) in [
        (0u32, 25u64),
        (1, 50),
        (2, 100),
        (3, 200),
        (4, 250),
        (40, 250),
        (200, 250),
    ] {
        let ceiling = Duration::from_millis(ceiling_ms);
        let mut sum = Duration::ZERO;
        let mut below_tenth = 0;
        for _ in 0..10_000 {
            let delay = backoff(&p, attempt, rng.next_u64());
            assert!(delay <= ceiling, "{attempt}: {delay:?}");
            sum += delay;
            if delay < ceiling / 10 {
                below_tenth += 1;
            }
        }
        // Uniform over [0, ceiling]: mean near half, about 10% in the first tenth.
        let mean = sum / 10_000;
        assert!(
            mean > ceiling * 45 / 100 && mean < ceiling * 55 / 100,
            "{attempt}: {mean:?}"
        );
        assert!(
            (800..1_200).contains(&below_tenth),
            "{attempt}: {below_tenth}"
        );
    }
    let zero = RetryPolicy {
        backoff_base: Duration::ZERO,
        ..policy()
    };
    assert_eq!(backoff(&zero, 5, 12345), Duration::ZERO);
}

#[test]
fn budget_reserve_allows_a_burst_then_refuses() {
    let t0 = Instant::now();
    let mut budget = RetryBudget::new(RetryBudgetConfig::default());
    // 10/s × 10 s of reserve, and no requests yet.
    assert_eq!(budget.available(t0), 100);
    let granted = (0..1_000).filter(|_| budget.try_withdraw(t0)).count();
    assert_eq!(granted, 100);
    // Five requests buy one retry (ratio 0.2).
    for _ in 0..5 {
        budget.deposit(t0);
    }
    assert!(budget.try_withdraw(t0));
    assert!(!budget.try_withdraw(t0));
    // After the ttl the withdrawals age out and the reserve is whole again.
    assert_eq!(budget.available(t0 + Duration::from_secs(10)), 100);
}

/// Every attempt fails; each request would retry up to 3 times. Over a minute of
/// 1,000 requests per second the budget holds retries to
/// `ratio × requests + reserve per window`, in every window as in total.
#[test]
fn total_failure_keeps_retries_within_budget() {
    let config = RetryBudgetConfig::default();
    let mut budget = RetryBudget::new(config);
    let p = RetryPolicy {
        max_retries: 3,
        ..policy()
    };
    let t0 = Instant::now();
    let mut rng = XorShift64::new(0x5eed);
    let (mut requests, mut retries) = (0u64, 0u64);
    // Per-second tallies, to check every 10 s window.
    let mut per_second = vec![(0u64, 0u64); 60];
    for step in 0..60_000u64 {
        // Arrivals jittered within their millisecond.
        let now = t0 + Duration::from_micros(step * 1_000 + rng.next_u64() % 1_000);
        budget.deposit(now);
        requests += 1;
        let second = (step / 1_000) as usize;
        per_second[second].0 += 1;
        let mut attempt = 0;
        while should_retry(&p, attempt, Failure::Status(503), true, true, false) == Decision::Retry
            && budget.try_withdraw(now)
        {
            retries += 1;
            per_second[second].1 += 1;
            attempt += 1;
        }
    }
    let bound = (config.ratio * requests as f64) as u64 + 10 * (60 + 10);
    assert!(retries <= bound, "{retries} > {bound}");
    // The budget is used, not just refused: without it there would be 180,000.
    assert!(
        retries >= (config.ratio * requests as f64 * 0.95) as u64,
        "{retries}"
    );
    for window in per_second.windows(9) {
        let (sent, retried) = window
            .iter()
            .fold((0, 0), |(a, b), (sent, retried)| (a + sent, b + retried));
        assert!(retried <= sent / 5 + 100 + 200, "{window:?}");
    }
}

#[test]
fn budget_worker_share_and_degenerate_configs() {
    let share = RetryBudgetConfig::default().for_worker(4);
    assert_eq!(share.min_retries_per_sec, 3);
    assert_eq!(share.ratio, 0.2);
    let t0 = Instant::now();
    // No floor and no ratio: never a retry.
    let mut none = RetryBudget::new(RetryBudgetConfig {
        ratio: f64::NAN,
        min_retries_per_sec: 0,
        ttl: Duration::ZERO,
    });
    none.deposit(t0);
    assert!(!none.try_withdraw(t0));
    // A long pause clears the window wholesale.
    let mut budget = RetryBudget::new(RetryBudgetConfig {
        ratio: 1.0,
        min_retries_per_sec: 0,
        ttl: Duration::from_secs(1),
    });
    budget.deposit(t0);
    assert_eq!(budget.available(t0 + Duration::from_millis(500)), 1);
    assert_eq!(budget.available(t0 + Duration::from_secs(3600)), 0);
}
