//! Seeded simulations of the pieces working together the way the request path will
//! use them: balance over endpoints not ejected, forward, classify, retry within the
//! budget, report outcomes to outlier detection.

use super::outlier::{panic_mode, Outcome, OutlierConfig, OutlierDetector};
use super::retry::{
    backoff, should_retry, Decision, Failure, RetryBudget, RetryBudgetConfig, RetryOn, RetryPolicy,
};
use super::XorShift64;
use std::time::{Duration, Instant};

/// Per-endpoint chance (parts per 1000) that an attempt fails with 503.
struct Upstreams {
    failure_per_mille: Vec<u64>,
    outcome_on_failure: Outcome,
}

impl Upstreams {
    fn attempt(&self, index: usize, roll: u64) -> Outcome {
        if roll % 1000 < self.failure_per_mille[index] {
            self.outcome_on_failure
        } else {
            Outcome::Status(200)
        }
    }
}

struct Client {
    outlier: OutlierDetector,
    budget: RetryBudget,
    policy: RetryPolicy,
    /// Endpoints in service, rebuilt only when an ejection starts or ends.
    candidates: Vec<usize>,
    valid_until: Option<Instant>,
    cursor: usize,
    rng: XorShift64,
}

#[derive(Default, Debug)]
struct Tally {
    requests: u64,
    succeeded: u64,
    retries: u64,
    attempts_per_endpoint: [u64; 3],
    failures_per_endpoint: [u64; 3],
    /// Failures endpoint 2 had served when it was first ejected.
    first_ejection_after: Option<u64>,
    backoff_total: Duration,
}

impl Client {
    fn new(endpoints: usize, seed: u64) -> Self {
        let t0 = Instant::now();
        let mut client = Client {
            outlier: OutlierDetector::new(
                OutlierConfig {
                    max_ejection_percent: 34,
                    ..OutlierConfig::default()
                },
                endpoints,
            ),
            budget: RetryBudget::new(RetryBudgetConfig::default()),
            policy: RetryPolicy {
                retry_on: RetryOn::STATUS_5XX,
                max_retries: 2,
                ..RetryPolicy::default()
            },
            candidates: Vec::with_capacity(endpoints),
            valid_until: None,
            cursor: 0,
            rng: XorShift64::new(seed),
        };
        client.refresh(t0);
        client
    }

    fn refresh(&mut self, now: Instant) {
        let total = self.outlier.len();
        if panic_mode(total - self.outlier.ejected_count(now), total, 50) {
            self.candidates.clear();
            self.candidates.extend(0..total);
        } else {
            self.outlier.available_into(now, &mut self.candidates);
        }
        self.valid_until = self.outlier.next_return(now);
    }

    /// Round robin over the candidates, skipping the endpoint that just failed.
    fn pick(&mut self, now: Instant, avoid: Option<usize>) -> usize {
        if self.valid_until.is_some_and(|until| now >= until) {
            self.refresh(now);
        }
        for _ in 0..self.candidates.len() {
            self.cursor = self.cursor.wrapping_add(1);
            let pick = self.candidates[self.cursor % self.candidates.len()];
            if Some(pick) != avoid {
                return pick;
            }
        }
        self.candidates[0]
    }

    fn request(&mut self, upstreams: &Upstreams, now: Instant, tally: &mut Tally) {
        tally.requests += 1;
        self.budget.deposit(now);
        let mut attempt = 0;
        let mut avoid = None;
        loop {
            let endpoint = self.pick(now, avoid);
            let outcome = upstreams.attempt(endpoint, self.rng.next_u64());
            tally.attempts_per_endpoint[endpoint] += 1;
            if self.outlier.record(endpoint, outcome, now).is_some() {
                if endpoint == 2 && tally.first_ejection_after.is_none() {
                    tally.first_ejection_after = Some(tally.failures_per_endpoint[2] + 1);
                }
                self.refresh(now);
            }
            let failure = match outcome {
                Outcome::Status(status) if status < 500 => {
                    tally.succeeded += 1;
                    return;
                }
                Outcome::Status(status) => Failure::Status(status),
                Outcome::ConnectFailure => Failure::ConnectFailure,
                Outcome::Reset => Failure::Reset,
                Outcome::Timeout => Failure::Timeout,
            };
            tally.failures_per_endpoint[endpoint] += 1;
            let decision = should_retry(&self.policy, attempt, failure, true, true, false);
            if decision != Decision::Retry || !self.budget.try_withdraw(now) {
                return;
            }
            // The simulated clock does not wait; the delay is only checked for bounds.
            tally.backoff_total += backoff(&self.policy, attempt, self.rng.next_u64());
            tally.retries += 1;
            attempt += 1;
            avoid = Some(endpoint);
        }
    }
}

/// Three endpoints, one of which fails half its requests: retries hide its
/// failures, outlier detection takes it out of rotation quickly, and the client sees
/// at least 99.9% success over 20,000 requests, for each of several seeds.
#[test]
fn one_flaky_endpoint_is_ejected_and_hidden_by_retries() {
    let upstreams = Upstreams {
        failure_per_mille: vec![0, 0, 500],
        outcome_on_failure: Outcome::Status(503),
    };
    for seed in 1..=8u64 {
        let mut client = Client::new(3, seed.wrapping_mul(0x1234_5678_9abc));
        let mut tally = Tally::default();
        let t0 = Instant::now();
        for step in 0..20_000u64 {
            // 100 requests per second: 200 s, long enough for several ejections to end.
            client.request(
                &upstreams,
                t0 + Duration::from_millis(step * 10),
                &mut tally,
            );
        }
        let success = tally.succeeded as f64 / tally.requests as f64;
        assert!(
            success >= 0.999,
            "seed {seed}: success {success}: {tally:?}"
        );
        // Five failures in a row at 50% take ~31 failures on average; 150 is far
        // out in the tail.
        let first = tally.first_ejection_after.unwrap();
        assert!(first <= 150, "seed {seed}: ejected after {first} failures");
        // Out of rotation most of the time: far below its fair third of the attempts.
        let attempts: u64 = tally.attempts_per_endpoint.iter().sum();
        assert!(
            tally.attempts_per_endpoint[2] * 10 < attempts,
            "seed {seed}: {tally:?}"
        );
        assert!(tally.retries <= tally.requests / 5 + 10 * 210, "{tally:?}");
        let longest = Duration::from_millis(50) * u32::try_from(tally.retries).unwrap();
        assert!(tally.backoff_total <= longest);
    }
}

/// Every endpoint refuses connections: outlier detection may eject only up to its
/// cap (then panic mode uses everyone), and the budget keeps retries near 20% of
/// requests instead of the 200% that `max_retries = 2` would allow.
#[test]
fn total_outage_keeps_retries_within_budget() {
    let upstreams = Upstreams {
        failure_per_mille: vec![1000, 1000, 1000],
        outcome_on_failure: Outcome::ConnectFailure,
    };
    let mut client = Client::new(3, 0x9999);
    let mut tally = Tally::default();
    let t0 = Instant::now();
    for step in 0..20_000u64 {
        // 1,000 requests per second for 20 s.
        let now = t0 + Duration::from_millis(step);
        client.request(&upstreams, now, &mut tally);
        assert!(client.outlier.ejected_count(now) <= 1);
    }
    assert_eq!(tally.succeeded, 0);
    let bound = tally.requests / 5 + 10 * (20 + 10);
    assert!(tally.retries <= bound, "{} > {bound}", tally.retries);
    assert!(tally.retries >= tally.requests / 6, "{tally:?}");
}

/// Without outlier detection's help (ejection disabled), retries alone still hide a
/// 50%-failing endpoint almost completely, because a retry goes elsewhere.
#[test]
fn retries_alone_mask_most_failures() {
    let upstreams = Upstreams {
        failure_per_mille: vec![0, 0, 500],
        outcome_on_failure: Outcome::Status(503),
    };
    let mut client = Client::new(3, 77);
    client.outlier = OutlierDetector::new(
        OutlierConfig {
            max_ejection_percent: 0,
            ..OutlierConfig::default()
        },
        3,
    );
    let mut tally = Tally::default();
    let t0 = Instant::now();
    for step in 0..20_000u64 {
        client.request(
            &upstreams,
            t0 + Duration::from_millis(step * 10),
            &mut tally,
        );
    }
    assert!(
        tally.succeeded as f64 / tally.requests as f64 >= 0.999,
        "{tally:?}"
    );
    // Round robin hands the bad endpoint every third attempt, and a retry uses one
    // of the other two's turns: per cycle of 3 attempts, 2.5 requests and 0.5
    // failures, so about 20% of requests are retried.
    let ratio = tally.retries as f64 / tally.requests as f64;
    assert!((0.17..0.23).contains(&ratio), "{ratio}");
}
