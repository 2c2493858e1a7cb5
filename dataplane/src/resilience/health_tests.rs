use super::*;

fn config(initial: Health) -> HealthConfig {
    HealthConfig {
        initial,
        ..HealthConfig::default()
    }
}

#[test]
fn thresholds_flip_state_with_hysteresis() {
    let t0 = Instant::now();
    let mut checker = HealthChecker::new(config(Health::Healthy), 2, t0, 1);
    assert!(checker.is_healthy(0));
    assert_eq!(checker.record(0, false, t0), None);
    assert_eq!(checker.record(0, false, t0), None);
    // A success in between starts the count again.
    assert_eq!(checker.record(0, true, t0), None);
    assert_eq!(checker.record(0, false, t0), None);
    assert_eq!(checker.record(0, false, t0), None);
    assert_eq!(
        checker.record(0, false, t0),
        Some(Transition {
            index: 0,
            to: Health::Unhealthy
        })
    );
    assert_eq!(checker.record(0, false, t0), None);
    assert_eq!(checker.record(0, true, t0), None);
    assert_eq!(
        checker.record(0, true, t0),
        Some(Transition {
            index: 0,
            to: Health::Healthy
        })
    );
    assert_eq!(checker.state(1), Some(Health::Healthy));
    assert_eq!(checker.state(2), None);
    assert_eq!(checker.record(2, true, t0), None);
}

#[test]
fn initial_unhealthy_needs_healthy_threshold() {
    let t0 = Instant::now();
    let mut checker = HealthChecker::new(config(Health::Unhealthy), 1, t0, 1);
    assert!(!checker.is_healthy(0));
    assert_eq!(checker.record(0, true, t0), None);
    assert_eq!(
        checker.record(0, true, t0).map(|t| t.to),
        Some(Health::Healthy)
    );
}

#[test]
fn first_probes_spread_over_one_interval() {
    let t0 = Instant::now();
    let checker = HealthChecker::new(HealthConfig::default(), 100, t0, 7);
    let interval = HealthConfig::default().interval;
    assert_eq!(checker.due(t0 + interval).count(), 100);
    let half = checker.due(t0 + interval / 2).count();
    assert!((35..=65).contains(&half), "{half}");
    assert!(checker.next_due().is_some_and(|at| at < t0 + interval / 10));
}

#[test]
fn probing_endpoints_are_not_due_and_jitter_stays_in_bounds() {
    let t0 = Instant::now();
    let interval = Duration::from_secs(10);
    let cfg = HealthConfig {
        interval,
        jitter_percent: 20,
        ..HealthConfig::default()
    };
    let mut checker = HealthChecker::new(cfg, 1, t0, 3);
    let mut now = t0 + interval;
    let (mut shortest, mut longest) = (Duration::MAX, Duration::ZERO);
    for _ in 0..2_000 {
        assert_eq!(checker.due(now).collect::<Vec<_>>(), vec![0]);
        checker.begin(0);
        assert_eq!(checker.due(now).count(), 0);
        assert_eq!(checker.next_due(), None);
        checker.record(0, true, now);
        let next = checker.next_due().unwrap();
        let wait = next - now;
        shortest = shortest.min(wait);
        longest = longest.max(wait);
        assert!(checker.due(next - Duration::from_nanos(1)).next().is_none());
        now = next;
    }
    assert!(shortest >= Duration::from_secs(8) && shortest < Duration::from_millis(8_100));
    assert!(longest <= Duration::from_secs(12) && longest > Duration::from_millis(11_900));
}

/// One endpoint goes down at 60 s and comes back at 120 s; the checker, probing every
/// 5 s ± 10%, notices each change within its threshold's worth of probes.
#[test]
fn simulated_outage_is_detected_and_recovery_noticed() {
    let t0 = Instant::now();
    let mut checker = HealthChecker::new(HealthConfig::default(), 3, t0, 0xabc);
    let down = t0 + Duration::from_secs(60);
    let up = t0 + Duration::from_secs(120);
    let mut transitions = Vec::new();
    let mut now = t0;
    while now < t0 + Duration::from_secs(180) {
        let due: Vec<usize> = checker.due(now).collect();
        for index in due {
            checker.begin(index);
            let alive = index != 1 || now < down || now >= up;
            if let Some(change) = checker.record(index, alive, now) {
                transitions.push((change, now));
            }
        }
        now += Duration::from_millis(100);
    }
    assert_eq!(transitions.len(), 2, "{transitions:?}");
    let (went_down, at_down) = transitions[0];
    assert_eq!(went_down.index, 1);
    assert_eq!(went_down.to, Health::Unhealthy);
    // Three failed probes, each at most 5.5 s apart (plus one period until the first).
    assert!(
        at_down - down <= Duration::from_millis(3 * 5_500 + 100),
        "{:?}",
        at_down - down
    );
    let (came_back, at_up) = transitions[1];
    assert_eq!(came_back.to, Health::Healthy);
    assert!(
        at_up - up <= Duration::from_millis(2 * 5_500 + 100),
        "{:?}",
        at_up - up
    );
    assert!(checker.is_healthy(0) && checker.is_healthy(1) && checker.is_healthy(2));
}

#[test]
fn rebuild_keeps_state_of_endpoints_that_stay() {
    let t0 = Instant::now();
    let mut old = HealthChecker::new(config(Health::Healthy), 2, t0, 9);
    for _ in 0..3 {
        old.record(1, false, t0);
    }
    assert!(!old.is_healthy(1));
    let next = old.next_due().unwrap();
    // New table: [old 1, new endpoint that starts unhealthy].
    let new = old.rebuild(config(Health::Unhealthy), 2, |i| (i == 0).then_some(1), t0);
    assert_eq!(new.state(0), Some(Health::Unhealthy));
    assert_eq!(new.state(1), Some(Health::Unhealthy));
    assert!(new.next_due().unwrap() <= next);
    assert!(new.due(t0 + HealthConfig::default().interval).count() == 2);
}
