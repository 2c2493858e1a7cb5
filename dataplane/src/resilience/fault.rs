//! Fault injection: whether a request gets an added delay, an aborted answer, or
//! both, decided from one random roll so a test can replay it.

use super::Chance;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelayFault {
    pub delay: Duration,
    pub chance: Chance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortFault {
    /// The status the proxy answers with instead of forwarding.
    pub status: u16,
    pub chance: Chance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultPolicy {
    pub delay: Option<DelayFault>,
    pub abort: Option<AbortFault>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    None,
    Delay(Duration),
    Abort(u16),
    /// Wait, then answer with the status (as Envoy does when both fire).
    Both(Duration, u16),
}

impl FaultPolicy {
    /// Decides for one request. The delay and the abort draw on different halves of
    /// `roll`, so the two fire independently: at 10% and 20% both hit 2% of requests.
    pub fn decide(&self, roll: u64) -> FaultAction {
        let delay = self
            .delay
            .filter(|fault| fault.chance.hits(roll as u32))
            .map(|fault| fault.delay);
        let abort = self
            .abort
            .filter(|fault| fault.chance.hits((roll >> 32) as u32))
            .map(|fault| fault.status);
        match (delay, abort) {
            (None, None) => FaultAction::None,
            (Some(delay), None) => FaultAction::Delay(delay),
            (None, Some(status)) => FaultAction::Abort(status),
            (Some(delay), Some(status)) => FaultAction::Both(delay, status),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.delay.is_none() && self.abort.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resilience::XorShift64;

    fn policy(delay_percent: u32, abort_percent: u32) -> FaultPolicy {
        FaultPolicy {
            delay: Some(DelayFault {
                delay: Duration::from_millis(200),
                chance: Chance::percent(delay_percent),
            }),
            abort: Some(AbortFault {
                status: 503,
                chance: Chance::percent(abort_percent),
            }),
        }
    }

    #[test]
    fn empty_policy_never_fires() {
        let empty = FaultPolicy::default();
        assert!(empty.is_empty());
        assert_eq!(empty.decide(0), FaultAction::None);
        assert_eq!(empty.decide(u64::MAX), FaultAction::None);
    }

    #[test]
    fn always_and_never() {
        let d = Duration::from_millis(200);
        assert_eq!(policy(100, 100).decide(7), FaultAction::Both(d, 503));
        assert_eq!(policy(100, 0).decide(7), FaultAction::Delay(d));
        assert_eq!(policy(0, 100).decide(7), FaultAction::Abort(503));
        assert_eq!(policy(0, 0).decide(7), FaultAction::None);
    }

    #[test]
    fn rates_are_independent_and_as_configured() {
        let p = policy(10, 20);
        let mut rng = XorShift64::new(31);
        let (mut delay, mut abort, mut both, mut none) = (0u32, 0u32, 0u32, 0u32);
        for _ in 0..100_000 {
            match p.decide(rng.next_u64()) {
                FaultAction::None => none += 1,
                FaultAction::Delay(_) => delay += 1,
                FaultAction::Abort(_) => abort += 1,
                FaultAction::Both(..) => both += 1,
            }
        }
        // Expected: both 2%, delay only 8%, abort only 18%, none 72%.
        assert!((1_700..2_300).contains(&both), "{both}");
        assert!((7_400..8_600).contains(&delay), "{delay}");
        assert!((17_200..18_800).contains(&abort), "{abort}");
        assert!((71_000..73_000).contains(&none), "{none}");
    }

    #[test]
    fn same_roll_same_decision() {
        let p = policy(50, 50);
        for roll in [0u64, 1, 1 << 31, 1 << 63, u64::MAX, 0xdead_beef_cafe] {
            assert_eq!(p.decide(roll), p.decide(roll));
        }
    }
}
