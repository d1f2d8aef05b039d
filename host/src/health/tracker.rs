//! Thresholds and hysteresis: verdicts in a row move a backend between
//! healthy and unhealthy (ALB's `healthy-threshold` and
//! `unhealthy-threshold`). The interpreter judges single probes; this
//! decides what a run of them means.

use super::Verdict;
use crate::upstream::CheckState;

/// One backend's run of verdicts.
#[derive(Debug, Clone)]
pub struct Tracker {
    state: CheckState,
    /// The degraded weight, in thousandths, while degraded.
    permille: u32,
    /// Verdicts in a row that disagree with `state`.
    run: u32,
    healthy_threshold: u32,
    unhealthy_threshold: u32,
}

/// A change the tracker decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decided {
    /// The new state.
    pub state: CheckState,
    /// Its degraded weight in thousandths (1000 unless degraded).
    pub permille: u32,
}

// === impl Tracker ===

impl Tracker {
    /// A tracker starting from `state` (kept across reloads), with no run.
    pub fn new(state: CheckState, permille: u32, healthy: u32, unhealthy: u32) -> Self {
        Tracker {
            state,
            permille,
            run: 0,
            healthy_threshold: healthy.max(1),
            unhealthy_threshold: unhealthy.max(1),
        }
    }

    /// The current state.
    pub fn state(&self) -> CheckState {
        self.state
    }

    /// Counts one probe: its verdict, or `None` when the interpreter
    /// failed (a failed probe). Returns the new state and weight when
    /// they change.
    ///
    /// - From `unknown`, the first verdict decides at once.
    /// - A passing backend turns unhealthy after `unhealthy-threshold` bad
    ///   verdicts in a row; a good one in between starts the count over.
    /// - An unhealthy backend passes again after `healthy-threshold` good
    ///   verdicts in a row, healthy or degraded as the last one said.
    /// - A passing backend follows each good verdict's healthy or
    ///   degraded weight at once: it is not a failure.
    pub fn observe(&mut self, verdict: Option<&Verdict>) -> Option<Decided> {
        let good = verdict.filter(|verdict| verdict.is_good());
        let (state, permille) = match good {
            Some(Verdict::Degraded { permille, .. }) => (CheckState::Degraded, *permille),
            Some(_) => (CheckState::Healthy, 1000),
            None => (CheckState::Unhealthy, 1000),
        };
        let passing = matches!(self.state, CheckState::Healthy | CheckState::Degraded);
        let decided = match (self.state, good.is_some()) {
            (CheckState::Unknown, _) => true,
            (_, true) if passing => {
                self.run = 0;
                true
            }
            (_, false) if !passing => {
                self.run = 0;
                false
            }
            (_, true) => {
                self.run += 1;
                self.run >= self.healthy_threshold
            }
            (_, false) => {
                self.run += 1;
                self.run >= self.unhealthy_threshold
            }
        };
        if !decided || (state, permille) == (self.state, self.permille) {
            return None;
        }
        self.run = 0;
        self.state = state;
        self.permille = permille;
        Some(Decided { state, permille })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Option<Verdict> {
        Some(Verdict::Healthy("ok".into()))
    }

    fn unhealthy() -> Option<Verdict> {
        Some(Verdict::Unhealthy("503".into()))
    }

    fn degraded(permille: u32) -> Option<Verdict> {
        Some(Verdict::Degraded {
            permille,
            reason: "busy".into(),
        })
    }

    fn states(tracker: &mut Tracker, verdicts: &[Option<Verdict>]) -> Vec<Option<CheckState>> {
        verdicts
            .iter()
            .map(|verdict| {
                tracker
                    .observe(verdict.as_ref())
                    .map(|decided| decided.state)
            })
            .collect()
    }

    #[test]
    fn first_verdict_decides_unknown() {
        let mut tracker = Tracker::new(CheckState::Unknown, 1000, 2, 3);
        assert_eq!(
            states(&mut tracker, &[unhealthy()]),
            [Some(CheckState::Unhealthy)]
        );
        let mut tracker = Tracker::new(CheckState::Unknown, 1000, 2, 3);
        assert_eq!(
            states(&mut tracker, &[healthy()]),
            [Some(CheckState::Healthy)]
        );
    }

    #[test]
    fn exactly_the_thresholds_in_a_row() {
        let mut tracker = Tracker::new(CheckState::Healthy, 1000, 2, 3);
        let none = None;
        assert_eq!(
            states(
                &mut tracker,
                &[
                    unhealthy(),
                    unhealthy(),
                    healthy(),
                    unhealthy(),
                    unhealthy(),
                    None
                ]
            ),
            [none, none, none, none, none, Some(CheckState::Unhealthy)],
            "a good verdict starts the count over; a failed interpreter counts as bad"
        );
        assert_eq!(
            states(
                &mut tracker,
                &[healthy(), unhealthy(), healthy(), healthy()]
            ),
            [none, none, none, Some(CheckState::Healthy)]
        );
    }

    #[test]
    fn degraded_weight_follows_good_verdicts_at_once() {
        let mut tracker = Tracker::new(CheckState::Healthy, 1000, 2, 3);
        assert_eq!(
            tracker.observe(degraded(200).as_ref()),
            Some(Decided {
                state: CheckState::Degraded,
                permille: 200
            })
        );
        assert_eq!(tracker.observe(degraded(200).as_ref()), None, "no change");
        assert_eq!(
            tracker.observe(degraded(500).as_ref()).map(|d| d.permille),
            Some(500)
        );
        assert_eq!(
            tracker.observe(healthy().as_ref()).map(|d| d.state),
            Some(CheckState::Healthy)
        );
    }

    #[test]
    fn recovery_lands_on_the_last_verdicts_weight() {
        let mut tracker = Tracker::new(CheckState::Unhealthy, 1000, 2, 3);
        assert_eq!(tracker.observe(healthy().as_ref()), None);
        assert_eq!(
            tracker.observe(degraded(300).as_ref()),
            Some(Decided {
                state: CheckState::Degraded,
                permille: 300
            })
        );
    }
}
