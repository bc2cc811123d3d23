//! Autoscaling decisions: how many replicas a service should have, given its
//! policy, the load its tasks report and what was decided before.
//!
//! This is Kubernetes' HPA algorithm with its known fixes, as a pure
//! function: the leader's loop feeds it observations and the clock, and turns
//! the [`Decision`] into an ordinary scale write. Nothing here reads the clock,
//! the store or the network.
//!
//! - [`recommend`]: the raw recommendation per metric (ratio to target,
//!   tolerance, how unready tasks and missing samples are counted), the
//!   largest across metrics winning.
//! - [`stabilize`]: stabilisation windows and step limits over the history of
//!   recommendations and scale events, which is what keeps a service from
//!   flapping.
//! - [`model`]: the policy in force, metrics, readings and decisions.
//! - [`policy`]: the stored policy (`--autoscale-*`): validation, and the
//!   [`Policy`] with defaults filled in.
//!
//! The history lives in the leader's memory. A new leader seeds it with the
//! current replica count as if it had been recommended over the whole
//! scale-down window ([`History::seeded`]), so a leader change can never make
//! a service scale down earlier than the window allows.

pub mod model;
pub mod policy;
pub mod recommend;
pub mod stabilize;

#[cfg(test)]
mod tests;

pub use model::{Decision, Hold, Metric, MetricReading, Policy, StepLimit, Target};
pub use recommend::{Observation, TaskLoad};
pub use stabilize::History;

/// Said wherever an `--autoscale-rps` target is shown or decided on: no
/// component counts requests until the ingress mesh exists, so the target is
/// kept but never acted on (a missing metric never scales).
pub const RPS_UNMEASURED: &str = "no request metric: needs the ingress mesh";

/// One round of the controller: the replica count `policy` asks for now.
///
/// `current` is the service's replica count, `updating` whether a rolling
/// update or rollback is in progress. Record the result with
/// [`History::record`] before the next round.
pub fn decide(
    policy: &Policy,
    history: &History,
    observation: &Observation,
    current: u64,
    updating: bool,
    now_ms: i64,
) -> Decision {
    let readings = recommend::readings(policy, observation, current);
    if updating {
        return Decision {
            from: current,
            to: current,
            recommended: current,
            readings,
            held_by: Some(Hold::Updating),
        };
    }
    if readings.is_empty() {
        return Decision {
            from: current,
            to: current,
            recommended: current,
            readings,
            held_by: Some(Hold::NoMetrics),
        };
    }
    let recommended = readings
        .iter()
        .map(|r| r.recommended)
        .max()
        .unwrap_or(current);
    let (to, held_by) = stabilize::stabilize(policy, history, current, recommended, now_ms);
    Decision {
        from: current,
        to,
        recommended,
        readings,
        held_by,
    }
}
