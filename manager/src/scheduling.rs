//! The adapter between the store and the pure `shoal_scheduler` crate: builds
//! node views and the pending batch, and turns decisions into commands.

use shoal_proto::v1::{NodeAvailability, NodeState, TaskState};
use shoal_scheduler::{schedule, Availability, NodeView, Placed, TaskRequest};

use crate::store::{is_terminal, ClusterState, Command};

/// The commands that place every pending task that fits somewhere, and record
/// why the others do not (only when the reason changed, so this settles).
pub fn schedule_pending(state: &ClusterState, now_ms: i64) -> Vec<Command> {
    let pending: Vec<TaskRequest> = state
        .tasks
        .values()
        .filter(|t| {
            t.node_id.is_empty()
                && t.desired_state <= TaskState::Running as i32
                && t.status
                    .as_ref()
                    .is_some_and(|s| s.state() == TaskState::Pending)
        })
        .map(|t| TaskRequest {
            id: t.id.clone(),
            service_id: t.service_id.clone(),
            runtime: t
                .spec
                .as_ref()
                .map(|s| s.runtime.clone())
                .unwrap_or_default(),
        })
        .collect();
    if pending.is_empty() {
        return Vec::new();
    }
    let nodes: Vec<NodeView> = state
        .nodes
        .values()
        .map(|n| NodeView {
            id: n.id.clone(),
            ready: n
                .status
                .as_ref()
                .is_some_and(|s| s.state() == NodeState::Ready),
            availability: match n
                .spec
                .as_ref()
                .map(|s| s.availability())
                .unwrap_or_default()
            {
                NodeAvailability::Active => Availability::Active,
                NodeAvailability::Pause => Availability::Pause,
                NodeAvailability::Drain => Availability::Drain,
            },
            runtimes: n
                .description
                .as_ref()
                .map(|d| d.runtimes.clone())
                .unwrap_or_default(),
        })
        .collect();
    let placed: Vec<Placed> = state
        .tasks
        .values()
        .filter(|t| {
            !t.node_id.is_empty()
                && t.desired_state <= TaskState::Running as i32
                && !is_terminal(t.status.as_ref().map(|s| s.state()).unwrap_or_default())
        })
        .map(|t| Placed {
            service_id: t.service_id.clone(),
            node_id: t.node_id.clone(),
        })
        .collect();
    let decisions = schedule(&nodes, &placed, &pending);
    let unplaced: Vec<(String, String)> = decisions
        .unplaced
        .into_iter()
        .filter(|(id, reason)| {
            state
                .tasks
                .get(id)
                .and_then(|t| t.status.as_ref())
                .map(|s| &s.err)
                != Some(reason)
        })
        .collect();
    let mut commands = Vec::new();
    if !decisions.assigned.is_empty() {
        commands.push(Command::AssignTasks {
            assignments: decisions.assigned,
            at_ms: now_ms,
        });
    }
    if !unplaced.is_empty() {
        commands.push(Command::SetPendingReasons {
            reasons: unplaced,
            at_ms: now_ms,
        });
    }
    commands
}
