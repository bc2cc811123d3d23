//! The replicated orchestrator: keeps exactly `replicas` live tasks per
//! replicated service, one per slot 1..=replicas. Orchestrators create and
//! retire tasks; they never pick nodes (the scheduler does).
//!
//! [`reconcile`] is a pure function of the store: it returns the commands that
//! move the cluster towards the specs and is called again after every change
//! (level-triggered), so a missed or repeated event changes nothing. Its writes
//! are idempotent: the store refuses a second live task in a slot.
//!
//! A slot is *live* while its task is desired Running, has not ended, and its
//! node is not Down. A task that ended, failed, or sits on a Down node is
//! retired (desired Shutdown) and its slot gets a new task. Scaling down
//! retires the highest slots. Dead tasks are kept per slot up to the history
//! limit, then deleted once their node has let go of them.

use std::collections::{BTreeMap, HashSet};

use shoal_proto::v1::{
    Meta, NodeAvailability, NodeState, Service, ServiceMode, Task, TaskState, TaskStatus,
};

use crate::store::{is_terminal, ClusterState, Command};

/// Dead tasks kept per slot when the cluster spec does not say.
pub const DEFAULT_TASK_HISTORY: usize = 5;

fn observed(task: &Task) -> TaskState {
    task.status.as_ref().map(|s| s.state()).unwrap_or_default()
}

/// The commands that bring every replicated service to its spec.
/// `new_id` names new tasks (randomness is an input).
pub fn reconcile(
    state: &ClusterState,
    now_ms: i64,
    new_id: &mut dyn FnMut() -> String,
) -> Vec<Command> {
    let down: HashSet<&str> = state
        .nodes
        .values()
        .filter(|n| {
            n.status
                .as_ref()
                .is_some_and(|s| s.state() == NodeState::Down)
        })
        .map(|n| n.id.as_str())
        .collect();
    // Tasks on a drained node are moved: retired here, replaced elsewhere.
    let drained: HashSet<&str> = state
        .nodes
        .values()
        .filter(|n| {
            n.spec
                .as_ref()
                .is_some_and(|s| s.availability() == NodeAvailability::Drain)
        })
        .map(|n| n.id.as_str())
        .collect();
    let node_gone = |task: &Task| {
        !task.node_id.is_empty()
            && (down.contains(task.node_id.as_str()) || !state.nodes.contains_key(&task.node_id))
    };
    // A dead task may be forgotten once nothing runs it any more.
    let settled =
        |task: &Task| task.node_id.is_empty() || is_terminal(observed(task)) || node_gone(task);
    let history_limit = state
        .cluster
        .as_ref()
        .and_then(|c| c.spec.as_ref())
        .and_then(|s| s.orchestration.as_ref())
        .map(|o| o.task_history_limit as usize)
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_TASK_HISTORY);

    let mut by_service: BTreeMap<&str, Vec<&Task>> = BTreeMap::new();
    for task in state.tasks.values() {
        by_service
            .entry(task.service_id.as_str())
            .or_default()
            .push(task);
    }

    let mut retire = Vec::new();
    let mut create = Vec::new();
    let mut delete = Vec::new();
    for (service_id, tasks) in &by_service {
        if !state.services.contains_key(*service_id) {
            // Removed service: its tasks were asked to stop; forget them once stopped.
            delete.extend(tasks.iter().filter(|t| settled(t)).map(|t| t.id.clone()));
        }
    }
    for service in state.services.values() {
        let Some(spec) = service.spec.as_ref() else {
            continue;
        };
        if spec.mode() != ServiceMode::Replicated {
            continue;
        }
        let replicas = spec.replicas;
        let tasks = by_service
            .get(service.id.as_str())
            .cloned()
            .unwrap_or_default();
        let mut slots: BTreeMap<u64, Vec<&Task>> = BTreeMap::new();
        for task in tasks {
            slots.entry(task.slot).or_default().push(task);
        }
        let mut live_slots = HashSet::new();
        for (slot, slot_tasks) in &slots {
            let mut dead: Vec<&Task> = Vec::new();
            for task in slot_tasks {
                let wanted = task.desired_state <= TaskState::Running as i32;
                let alive = !is_terminal(observed(task))
                    && !node_gone(task)
                    && !drained.contains(task.node_id.as_str());
                if wanted && alive && *slot <= replicas && !live_slots.contains(slot) {
                    live_slots.insert(*slot);
                    continue;
                }
                if wanted {
                    retire.push(task.id.clone());
                }
                dead.push(task);
            }
            // Newest first; keep `history_limit` of them.
            dead.sort_by_key(|t| std::cmp::Reverse(t.meta.map(|m| m.created_at_ms).unwrap_or(0)));
            delete.extend(
                dead.iter()
                    .skip(history_limit)
                    .filter(|t| settled(t))
                    .map(|t| t.id.clone()),
            );
        }
        for slot in 1..=replicas {
            if !live_slots.contains(&slot) {
                create.push(new_task(service, slot, now_ms, new_id()));
            }
        }
    }

    let mut commands = Vec::new();
    if !retire.is_empty() {
        commands.push(Command::SetTasksDesiredState {
            task_ids: retire,
            state: TaskState::Shutdown,
            at_ms: now_ms,
        });
    }
    if !create.is_empty() {
        commands.push(Command::CreateTasks(create));
    }
    if !delete.is_empty() {
        commands.push(Command::DeleteTasks { task_ids: delete });
    }
    commands
}

/// A fresh task for `slot`, pending placement.
pub fn new_task(service: &Service, slot: u64, now_ms: i64, id: String) -> Task {
    let spec = service.spec.clone().unwrap_or_default();
    Task {
        id,
        meta: Some(Meta {
            version: 1,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        }),
        service_id: service.id.clone(),
        slot,
        node_id: String::new(),
        spec: spec.task,
        spec_version: service.spec_version,
        desired_state: TaskState::Running as i32,
        status: Some(TaskStatus {
            state: TaskState::Pending as i32,
            timestamp_ms: now_ms,
            message: "pending task scheduling".into(),
            err: String::new(),
            exit_code: 0,
        }),
        service_name: spec.name,
    }
}

#[cfg(test)]
mod tests;
