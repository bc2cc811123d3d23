//! What a task is to the orchestrator and its rollouts: the slot it
//! fills, its observed state, and when it was created and ended (and
//! whether it ended by itself).

use shoal_proto::v1::{Task, TaskState};

/// The task's observed state (Pending without a status).
pub(crate) fn observed(task: &Task) -> TaskState {
    task.status.as_ref().map(|s| s.state()).unwrap_or_default()
}

pub(super) fn created_at(task: &Task) -> i64 {
    task.meta.map(|m| m.created_at_ms).unwrap_or(0)
}

/// When the task's observed state last changed (for a dead task: when it ended).
pub(super) fn ended_at(task: &Task) -> i64 {
    task.status.as_ref().map(|s| s.timestamp_ms).unwrap_or(0)
}

/// Whether the task ended by itself (exited, failed, was rejected), as
/// opposed to being stopped by the cluster. The restart policy and a
/// rollout's failure count are about these.
pub(super) fn ended_on_its_own(task: &Task) -> bool {
    matches!(
        observed(task),
        TaskState::Complete | TaskState::Failed | TaskState::Rejected
    )
}

/// What a task fills: a replica slot, or a node (global services).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum SlotKey {
    Replica(u64),
    Node(String),
}

impl SlotKey {
    pub(super) fn of(task: &Task) -> SlotKey {
        if task.slot > 0 {
            SlotKey::Replica(task.slot)
        } else {
            SlotKey::Node(task.node_id.clone())
        }
    }

    pub(super) fn slot(&self) -> u64 {
        match self {
            SlotKey::Replica(slot) => *slot,
            SlotKey::Node(_) => 0,
        }
    }
}
