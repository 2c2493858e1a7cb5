use super::*;

fn config() -> OutlierConfig {
    OutlierConfig {
        max_ejection_percent: 50,
        ..OutlierConfig::default()
    }
}

fn fail_n(
    detector: &mut OutlierDetector,
    index: usize,
    outcome: Outcome,
    n: u32,
    now: Instant,
) -> Option<Ejected> {
    let mut last = None;
    for _ in 0..n {
        last = detector.record(index, outcome, now);
    }
    last
}

#[test]
fn five_consecutive_5xx_eject_for_base_time() {
    let t0 = Instant::now();
    let mut detector = OutlierDetector::new(config(), 4);
    assert_eq!(fail_n(&mut detector, 1, Outcome::Status(500), 4, t0), None);
    let ejected = detector.record(1, Outcome::Status(500), t0).unwrap();
    assert_eq!(ejected.reason, EjectReason::Consecutive5xx);
    assert_eq!(ejected.until, t0 + Duration::from_secs(30));
    assert_eq!(ejected.times, 1);
    assert!(detector.is_ejected(1, t0 + Duration::from_secs(29)));
    assert!(!detector.is_ejected(1, t0 + Duration::from_secs(30)));
    assert_eq!(detector.available(t0).collect::<Vec<_>>(), vec![0, 2, 3]);
    assert_eq!(detector.ejected_count(t0), 1);
    assert_eq!(detector.next_return(t0), Some(ejected.until));
}

#[test]
fn a_success_resets_the_streak() {
    let t0 = Instant::now();
    let mut detector = OutlierDetector::new(config(), 4);
    fail_n(&mut detector, 0, Outcome::Status(503), 4, t0);
    detector.record(0, Outcome::Status(200), t0);
    assert_eq!(fail_n(&mut detector, 0, Outcome::Status(503), 4, t0), None);
    // 4xx is the client's problem, not the endpoint's.
    detector.record(0, Outcome::Status(404), t0);
    assert_eq!(fail_n(&mut detector, 0, Outcome::Status(500), 4, t0), None);
    assert!(!detector.is_ejected(0, t0));
}

#[test]
fn reasons_are_specific() {
    let t0 = Instant::now();
    let mut detector = OutlierDetector::new(config(), 6);
    let connect = fail_n(&mut detector, 0, Outcome::ConnectFailure, 5, t0).unwrap();
    assert_eq!(connect.reason, EjectReason::ConsecutiveConnectFailure);
    let gateway = fail_n(&mut detector, 1, Outcome::Timeout, 5, t0).unwrap();
    assert_eq!(gateway.reason, EjectReason::ConsecutiveGatewayFailure);
    let only_gateway = OutlierConfig {
        consecutive_5xx: None,
        consecutive_connect_failure: None,
        ..config()
    };
    let mut detector = OutlierDetector::new(only_gateway, 6);
    // 500s are not gateway errors: no ejection however many.
    assert_eq!(fail_n(&mut detector, 2, Outcome::Status(500), 50, t0), None);
    let reset = fail_n(&mut detector, 2, Outcome::Reset, 5, t0).unwrap();
    assert_eq!(reset.reason.as_str(), "consecutive_gateway_failure");
}

#[test]
fn repeated_ejections_grow_up_to_the_cap_and_are_forgiven() {
    let t0 = Instant::now();
    let cfg = OutlierConfig {
        max_ejection_time: Duration::from_secs(100),
        ..config()
    };
    let mut detector = OutlierDetector::new(cfg, 4);
    let mut now = t0;
    let mut durations = Vec::new();
    for _ in 0..5 {
        let ejected = fail_n(&mut detector, 2, Outcome::Status(502), 5, now).unwrap();
        durations.push(ejected.until - now);
        now = ejected.until;
    }
    let secs: Vec<u64> = durations.iter().map(Duration::as_secs).collect();
    assert_eq!(secs, vec![30, 60, 90, 100, 100]);
    // Three quiet intervals (30 s) forgive three of the five ejections.
    now += Duration::from_secs(30);
    let ejected = fail_n(&mut detector, 2, Outcome::Status(502), 5, now).unwrap();
    assert_eq!(ejected.times, 3);
    assert_eq!(ejected.until - now, Duration::from_secs(90));
}

#[test]
fn outcomes_while_ejected_are_ignored() {
    let t0 = Instant::now();
    let mut detector = OutlierDetector::new(config(), 4);
    let ejected = fail_n(&mut detector, 0, Outcome::Status(500), 5, t0).unwrap();
    assert_eq!(fail_n(&mut detector, 0, Outcome::Status(500), 20, t0), None);
    // Back with clean counters: four more failures are not enough.
    assert_eq!(
        fail_n(&mut detector, 0, Outcome::Status(500), 4, ejected.until),
        None
    );
    assert!(!detector.is_ejected(0, ejected.until));
}

#[test]
fn max_ejection_percent_holds_and_frees_up() {
    let t0 = Instant::now();
    let cfg = OutlierConfig {
        max_ejection_percent: 10,
        ..OutlierConfig::default()
    };
    // 10% of 5 rounds down to 0, but one endpoint may always go.
    let mut detector = OutlierDetector::new(cfg, 5);
    assert!(fail_n(&mut detector, 0, Outcome::Status(500), 5, t0).is_some());
    assert_eq!(fail_n(&mut detector, 1, Outcome::Status(500), 10, t0), None);
    assert_eq!(detector.ejected_count(t0), 1);
    // Once the first is back, endpoint 1's very next failure ejects it.
    let later = t0 + Duration::from_secs(30);
    let ejected = detector.record(1, Outcome::Status(500), later).unwrap();
    assert_eq!(ejected.index, 1);

    let disabled = OutlierConfig {
        max_ejection_percent: 0,
        ..OutlierConfig::default()
    };
    let mut detector = OutlierDetector::new(disabled, 5);
    assert_eq!(fail_n(&mut detector, 0, Outcome::Status(500), 10, t0), None);
}

#[test]
fn never_more_than_the_cap_under_total_failure() {
    let t0 = Instant::now();
    let mut detector = OutlierDetector::new(config(), 10);
    let mut now = t0;
    for step in 0..10_000u64 {
        detector.record((step % 10) as usize, Outcome::ConnectFailure, now);
        assert!(detector.ejected_count(now) <= 5);
        now += Duration::from_millis(7);
    }
}

#[test]
fn panic_threshold() {
    assert!(!panic_mode(5, 10, 50));
    assert!(panic_mode(4, 10, 50));
    assert!(!panic_mode(0, 10, 0));
    assert!(!panic_mode(0, 0, 50));
    let t0 = Instant::now();
    let mut detector = OutlierDetector::new(config(), 2);
    fail_n(&mut detector, 0, Outcome::Status(500), 5, t0);
    assert!(!detector.in_panic(t0, 50));
    assert!(detector.in_panic(t0, 51));
    let mut list = Vec::with_capacity(2);
    detector.available_into(t0, &mut list);
    assert_eq!(list, vec![1]);
    assert_eq!(detector.record(9, Outcome::Status(500), t0), None);
}

#[test]
fn rebuild_keeps_state_of_endpoints_that_stay() {
    let t0 = Instant::now();
    let mut old = OutlierDetector::new(config(), 3);
    fail_n(&mut old, 0, Outcome::Status(500), 5, t0);
    fail_n(&mut old, 2, Outcome::Status(500), 4, t0);
    // New table: [old 2, new, old 0].
    let map = [Some(2), None, Some(0)];
    let roomy = OutlierConfig {
        max_ejection_percent: 100,
        ..config()
    };
    let mut new = old.rebuild(roomy, 3, |i| map[i]);
    assert!(new.is_ejected(2, t0));
    assert!(!new.is_ejected(0, t0) && !new.is_ejected(1, t0));
    // Old 2's streak of four carries over: one more failure ejects it.
    assert!(new.record(0, Outcome::Status(500), t0).is_some());
    assert_eq!(new.len(), 3);
}
