//! Pure task placement: given what the nodes are and what already runs where,
//! decide where each pending task goes, or say why it fits nowhere.
//!
//! No I/O, no async, no clock: the manager's scheduler loop builds the views,
//! calls [`schedule`], and writes the decisions through Raft. Orchestrators
//! decide *how many* tasks exist; this crate only decides *where*.
//!
//! Placement is Swarm's model. A filter pipeline ([`filter`]) — ready,
//! availability, runtime, overlay networking, resource reservations, constraints ([`constraint`]),
//! max replicas per node — keeps the nodes that can take a task, each filter
//! able to say why it rejects one. A task whose slot left data in a node's
//! named volume prefers that node when it passes them all. Among the others, spread preferences
//! ([`placement`]) choose the label value with the fewest tasks of the
//! service (level by level), then the node with the fewest tasks of the
//! service wins, then the one with the fewest tasks overall, then the lowest
//! node ID, so decisions are deterministic. A whole batch of pending tasks is
//! placed in one pass, each placement counting (tasks, reservations) for the
//! next; the `batch` module does it in O(log nodes) per task.
//!
//! # Layout
//! - [`constraint`]: `node.labels.zone==eu` and friends: parsing, matching.
//! - [`placement`]: a service's constraints, spread preferences and limit.
//! - [`nodes`]: the nodes as the manager sees them.
//! - [`model`]: pending and placed tasks, and the decisions.
//! - [`filter`]: node filters and their explanations.
//! - `batch`: the batch engine (spread trees of node heaps).

#![forbid(unsafe_code)]

mod batch;
pub mod constraint;
pub mod filter;
pub mod model;
pub mod nodes;
pub mod placement;

pub use constraint::{Constraint, ConstraintError, ConstraintKey, Operator};
pub use filter::{explain, Filter, NodeLoad};
pub use model::{Decisions, HostPort, Placed, TaskRequest};
pub use nodes::{Availability, NodeView, Platform, Resources, Role};
pub use placement::{Placement, Preference, PreferenceError};

/// Places `pending` on `nodes`, given the `placed` tasks already running.
/// Tasks are taken in order, each seeing the placements before it.
pub fn schedule(nodes: &[NodeView], placed: &[Placed], pending: &[TaskRequest]) -> Decisions {
    batch::schedule(nodes, placed, pending)
}

#[cfg(test)]
mod tests;
