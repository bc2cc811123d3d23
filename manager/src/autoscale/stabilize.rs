//! From a raw recommendation to the count the service is set to: bounds,
//! stabilisation windows and step limits (the HPA's `behavior`).
//!
//! Scale-down goes only to the *highest* recommendation of the scale-down
//! window, scale-up only to the *lowest* of the scale-up window, so a load
//! that oscillates faster than the window moves nothing. Step limits bound
//! the change per period relative to the count at the period's start, taken
//! from the recorded scale events.

use std::collections::VecDeque;

use super::model::{Decision, Hold, Policy, StepLimit};

/// How long recommendations and events are kept at most (the longest window
/// or period a policy may set is far below this).
const KEEP_MS: i64 = 3_600_000;

/// What the controller recommended and did for one service, newest last.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    recommendations: VecDeque<(i64, u64)>,
    /// (time, from, to) of every change the controller made.
    events: VecDeque<(i64, u64, u64)>,
}

impl History {
    /// A history for a service the controller has not watched before (a new
    /// leader, a newly autoscaled service): as if `current` had been
    /// recommended just now: the scale-down window then holds the count for
    /// a whole window, so nothing is removed before the window has really
    /// been observed.
    pub fn seeded(current: u64, now_ms: i64) -> History {
        let mut history = History::default();
        history.recommendations.push_back((now_ms, current));
        history
    }

    /// Records the outcome of [`super::decide`] taken at `now_ms`.
    pub fn record(&mut self, decision: &Decision, now_ms: i64) {
        if decision.held_by != Some(Hold::Updating) && decision.held_by != Some(Hold::NoMetrics) {
            self.recommendations
                .push_back((now_ms, decision.recommended));
        }
        if decision.changes() {
            self.events.push_back((now_ms, decision.from, decision.to));
        }
        let horizon = now_ms - KEEP_MS;
        while self.recommendations.front().is_some_and(|r| r.0 < horizon) {
            self.recommendations.pop_front();
        }
        while self.events.front().is_some_and(|e| e.0 < horizon) {
            self.events.pop_front();
        }
    }

    /// The recent scale events: (time, from, to).
    pub fn events(&self) -> impl Iterator<Item = (i64, u64, u64)> + '_ {
        self.events.iter().copied()
    }

    /// The count at the start of the period ending now: the current count with
    /// the changes made within the period undone.
    fn count_at_period_start(&self, current: u64, period_ms: i64, now_ms: i64) -> u64 {
        let since = now_ms - period_ms;
        let delta: i64 = self
            .events
            .iter()
            .filter(|e| e.0 > since)
            .map(|e| e.2 as i64 - e.1 as i64)
            .sum();
        (current as i64 - delta).max(0) as u64
    }
}

/// The count to set now, and what held it back from the recommendation.
pub fn stabilize(
    policy: &Policy,
    history: &History,
    current: u64,
    recommended: u64,
    now_ms: i64,
) -> (u64, Option<Hold>) {
    let bounded = recommended.clamp(policy.min, policy.max.max(policy.min));
    let mut to = current;
    let mut held_by = (bounded != recommended).then_some(Hold::Bounds);

    // The windows look at this round's recommendation too.
    let in_window = |window_ms: i64| {
        history
            .recommendations
            .iter()
            .filter(move |r| r.0 > now_ms - window_ms)
            .map(|r| r.1.clamp(policy.min, policy.max.max(policy.min)))
            .chain(std::iter::once(bounded))
    };
    let up_to = in_window(policy.scale_up_window_ms)
        .min()
        .unwrap_or(bounded);
    let down_to = in_window(policy.scale_down_window_ms)
        .max()
        .unwrap_or(bounded);
    if up_to > current {
        to = up_to;
        if up_to < bounded {
            held_by = Some(Hold::ScaleUpWindow);
        }
    } else if down_to < current {
        to = down_to;
        if down_to > bounded {
            held_by = Some(Hold::ScaleDownWindow);
        }
    } else if bounded != current && held_by.is_none() {
        held_by = Some(if bounded > current {
            Hold::ScaleUpWindow
        } else {
            Hold::ScaleDownWindow
        });
    }

    // Bounds win over everything: a service below min (or above max) is
    // brought inside at once, whatever the windows say.
    if current < policy.min {
        return (policy.min, held_by);
    }
    if current > policy.max.max(policy.min) {
        return (policy.max.max(policy.min), held_by);
    }

    if to > current {
        let cap = step_cap(&policy.scale_up_limit, history, current, now_ms, true);
        if to > cap {
            to = cap.max(current);
            held_by = Some(Hold::StepLimit);
        }
    } else if to < current {
        let floor = step_cap(&policy.scale_down_limit, history, current, now_ms, false);
        if to < floor {
            to = floor.min(current);
            held_by = Some(Hold::StepLimit);
        }
    }
    (to, held_by)
}

/// Scaling up: the most tasks allowed now; down: the fewest.
fn step_cap(limit: &StepLimit, history: &History, current: u64, now_ms: i64, up: bool) -> u64 {
    let start = history.count_at_period_start(current, limit.period_ms, now_ms);
    let by_percent = (start as f64 * limit.max_percent as f64 / 100.0).ceil() as u64;
    let step = limit.max_tasks.max(by_percent);
    if up {
        start.saturating_add(step)
    } else {
        start.saturating_sub(step)
    }
}
