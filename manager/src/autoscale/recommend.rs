//! The raw recommendation: for each metric, `ceil(tasks × average / target)`,
//! with the HPA's tolerance and its conservative treatment of what is not
//! known, then the largest across metrics.
//!
//! What is not known never argues for the direction the known samples point:
//! - scaling up, tasks without a sample, unready tasks and slots with no task
//!   at all count as idle (0), so a burst on the few tasks that report does
//!   not multiply;
//! - scaling down, a ready task without a sample counts as exactly at target,
//!   and while any slot is unready or has no task nothing is removed: a node
//!   that died, or replicas still starting, must never read as low load.
//!
//! A metric without a single sample gives no recommendation at all, so a
//! missing metric can never scale a service down.

use std::collections::BTreeMap;

use super::model::{Metric, MetricReading, Policy};

/// One task's load over the metric window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskLoad {
    /// Running and (where it has a health check) healthy.
    pub ready: bool,
    /// Averages over the window, in each metric's unit (see [`Metric`]).
    pub samples: BTreeMap<Metric, f64>,
}

/// The service's tasks as the leader last saw them. A slot of the service
/// with no task here (its node is down, its task is being replaced) is simply
/// absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    pub tasks: Vec<TaskLoad>,
}

/// One reading per metric that has at least one sample.
pub fn readings(policy: &Policy, observation: &Observation, current: u64) -> Vec<MetricReading> {
    policy
        .targets
        .iter()
        .filter(|t| t.value > 0.0)
        .filter_map(|t| reading(t.metric, t.value, policy.tolerance, observation, current))
        .collect()
}

fn reading(
    metric: Metric,
    target: f64,
    tolerance: f64,
    observation: &Observation,
    current: u64,
) -> Option<MetricReading> {
    let ready: Vec<&TaskLoad> = observation.tasks.iter().filter(|t| t.ready).collect();
    let sampled: Vec<f64> = ready
        .iter()
        .filter_map(|t| t.samples.get(&metric).copied())
        .collect();
    if sampled.is_empty() {
        return None;
    }
    let sum: f64 = sampled.iter().sum();
    let average = sum / sampled.len() as f64;
    let ratio = average / target;
    let ready_unsampled = (ready.len() - sampled.len()) as f64;
    let unready = (observation.tasks.len() - ready.len()) as f64;
    let absent = current.saturating_sub(observation.tasks.len() as u64) as f64;

    let keep = MetricReading {
        metric,
        value: average,
        target,
        recommended: current,
    };
    if (ratio - 1.0).abs() <= tolerance {
        return Some(keep);
    }
    let recommended = if ratio > 1.0 {
        // Everything unknown counts as idle.
        let count = sampled.len() as f64 + ready_unsampled + unready + absent;
        let ratio = sum / count / target;
        if ratio <= 1.0 + tolerance {
            return Some(keep);
        }
        (ratio * count).ceil() as u64
    } else {
        if unready > 0.0 || absent > 0.0 {
            return Some(keep);
        }
        // A ready task without a sample counts as exactly at target.
        let count = sampled.len() as f64 + ready_unsampled;
        let ratio = (sum + ready_unsampled * target) / count / target;
        if ratio >= 1.0 - tolerance {
            return Some(keep);
        }
        ((ratio * count).ceil() as u64).max(1)
    };
    Some(MetricReading {
        recommended,
        ..keep
    })
}
