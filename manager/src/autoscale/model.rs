//! What the controller works with: the policy in force, the metrics and
//! their targets, one reading per metric, and the decision with what held
//! it.

use std::fmt;

/// What a service's load is measured by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// CPU use of a task, as a percentage of its CPU reservation when it has
    /// one, else of one core (Docker's `stats` convention).
    Cpu,
    /// Memory in use, as a percentage of the task's memory limit, else of
    /// its reservation.
    Memory,
    /// Requests (HTTP) or new connections (L4) per second per task.
    Rps,
}

impl Metric {
    fn name(self) -> &'static str {
        match self {
            Metric::Cpu => "cpu",
            Metric::Memory => "memory",
            Metric::Rps => "rps",
        }
    }

    /// Formats a value of this metric the way an operator writes it.
    fn show(self, value: f64) -> String {
        match self {
            Metric::Cpu | Metric::Memory => format!("{value:.0} %"),
            Metric::Rps => format!("{value:.0}/s"),
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A target value for one metric: the per-task average the controller steers to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    pub metric: Metric,
    pub value: f64,
}

/// How far, and how fast, a service may move in one direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepLimit {
    /// Most tasks added (or removed) per period…
    pub max_tasks: u64,
    /// …or most percent of the count at the start of the period, whichever
    /// allows more (the HPA's default `selectPolicy: Max`).
    pub max_percent: u64,
    pub period_ms: i64,
}

/// An autoscaled service's policy (`--autoscale-*`).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub min: u64,
    pub max: u64,
    pub targets: Vec<Target>,
    /// Ratios within `1 ± tolerance` of the target change nothing.
    pub tolerance: f64,
    /// Scale-up is to the lowest recommendation of this window (default 0:
    /// react at once).
    pub scale_up_window_ms: i64,
    /// Scale-down is to the highest recommendation of this window (default
    /// 300 s): a dip in load must last that long to remove tasks.
    pub scale_down_window_ms: i64,
    pub scale_up_limit: StepLimit,
    pub scale_down_limit: StepLimit,
}

impl Policy {
    /// The HPA's defaults around the operator's bounds and targets.
    pub fn new(min: u64, max: u64, targets: Vec<Target>) -> Policy {
        Policy {
            min,
            max,
            targets,
            tolerance: 0.1,
            scale_up_window_ms: 0,
            scale_down_window_ms: 300_000,
            scale_up_limit: StepLimit {
                max_tasks: 4,
                max_percent: 100,
                period_ms: 15_000,
            },
            scale_down_limit: StepLimit {
                max_tasks: 0,
                max_percent: 100,
                period_ms: 15_000,
            },
        }
    }
}

/// The figures behind one metric's recommendation, for the event text.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricReading {
    pub metric: Metric,
    /// The per-task average the recommendation used.
    pub value: f64,
    pub target: f64,
    pub recommended: u64,
}

/// What the controller decided this round and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub from: u64,
    pub to: u64,
    /// The recommendation before stabilisation and step limits.
    pub recommended: u64,
    pub readings: Vec<MetricReading>,
    /// Why `to` differs from `recommended`, if it does.
    pub held_by: Option<Hold>,
}

/// Why the controller did not go straight to its recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The service is in a rolling update or rollback: its transient tasks
    /// say nothing about load.
    Updating,
    /// No metric had a sample: nothing is known, so nothing changes.
    NoMetrics,
    /// A higher recommendation within the scale-down window.
    ScaleDownWindow,
    /// A lower recommendation within the scale-up window.
    ScaleUpWindow,
    /// The step limit of the current period.
    StepLimit,
    /// The policy's `min` or `max`.
    Bounds,
}

impl Decision {
    pub fn changes(&self) -> bool {
        self.from != self.to
    }
}

impl fmt::Display for Decision {
    /// "scaled 3 → 7: cpu 182 % of 60 % target".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes() {
            write!(f, "scaled {} → {}", self.from, self.to)?;
        } else {
            write!(f, "kept {}", self.from)?;
        }
        let mut sep = ": ";
        for reading in &self.readings {
            write!(
                f,
                "{sep}{} {} of {} target",
                reading.metric,
                reading.metric.show(reading.value),
                reading.metric.show(reading.target)
            )?;
            sep = ", ";
        }
        match self.held_by {
            None => Ok(()),
            Some(hold) => {
                let why = match hold {
                    Hold::Updating => "the service is updating",
                    Hold::NoMetrics => "no metric has samples yet",
                    Hold::ScaleDownWindow => "held by the scale-down window",
                    Hold::ScaleUpWindow => "held by the scale-up window",
                    Hold::StepLimit => "limited by the step limit",
                    Hold::Bounds => "bounded by min/max",
                };
                write!(f, " (recommended {}; {why})", self.recommended)
            }
        }
    }
}
