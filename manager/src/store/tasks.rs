//! Applying task commands. Observed states only move forward, and never out
//! of a terminal state: a late "running" after "shutdown" is dropped here,
//! where every manager applies it, not only in the agent.

use std::collections::{HashMap, HashSet};

use shoal_proto::v1::{Task, TaskSpec, TaskState, TaskStatus};

use super::state::{bump, Change, ClusterState, CommandResult, StoreEvent};

/// Whether `state` is one a task never leaves.
pub fn is_terminal(state: TaskState) -> bool {
    state > TaskState::Running
}

/// `service.slot.taskid`, as Docker names tasks.
pub fn task_name(task: &Task) -> String {
    format!("{}.{}.{}", task.service_name, task.slot, task.id)
}

/// Whether a task still holds its slot: desired to run and not dead.
fn holds_slot(task: &Task) -> bool {
    task.desired_state <= TaskState::Running as i32
        && !is_terminal(task.status.as_ref().map(|s| s.state()).unwrap_or_default())
}

impl ClusterState {
    pub(super) fn create_tasks(
        &mut self,
        tasks: Vec<Task>,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        // A replica is keyed by its slot, a global task by its node.
        let key = |t: &Task| {
            if t.slot > 0 {
                (t.service_id.clone(), t.slot.to_string())
            } else {
                (t.service_id.clone(), format!("node:{}", t.node_id))
            }
        };
        // Only the slots these tasks would fill are looked up, without
        // copying anything for the others: at 100,000 tasks, copying every
        // live task's key and spec on each apply made every piece of a
        // large creation (`store::chunks`) cost a pass over them all.
        let mut wanted: HashMap<&str, (HashSet<u64>, HashSet<&str>)> = HashMap::new();
        for t in &tasks {
            let (slots, nodes) = wanted.entry(t.service_id.as_str()).or_default();
            if t.slot > 0 {
                slots.insert(t.slot);
            } else {
                nodes.insert(t.node_id.as_str());
            }
        }
        let mut held: HashMap<(String, String), Vec<Option<TaskSpec>>> = HashMap::new();
        for task in self.tasks.values() {
            let Some((slots, nodes)) = wanted.get(task.service_id.as_str()) else {
                continue;
            };
            let wanted_here = if task.slot > 0 {
                slots.contains(&task.slot)
            } else {
                nodes.contains(task.node_id.as_str())
            };
            if wanted_here && holds_slot(task) {
                held.entry(key(task)).or_default().push(task.spec.clone());
            }
        }
        drop(wanted);
        for task in tasks {
            if self.tasks.contains_key(&task.id) || !self.services.contains_key(&task.service_id) {
                continue;
            }
            // A slot holds one live task per task spec: a repeated or stale
            // orchestrator write (e.g. across a leader change) is a no-op,
            // while a start-first update may start the new spec's task
            // beside the old one.
            let specs = held.entry(key(&task)).or_default();
            if specs.contains(&task.spec) {
                continue;
            }
            specs.push(task.spec.clone());
            events.push(StoreEvent::Task(Change::Created, task.clone()));
            self.tasks.insert(task.id.clone(), task);
        }
        Ok(())
    }

    pub(super) fn set_tasks_desired_state(
        &mut self,
        task_ids: &[String],
        state: TaskState,
        at_ms: i64,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        for id in task_ids {
            if let Some(task) = self.tasks.get_mut(id) {
                if task.desired_state < state as i32 {
                    task.desired_state = state as i32;
                    bump(&mut task.meta, at_ms);
                    events.push(StoreEvent::Task(Change::Updated, task.clone()));
                }
            }
        }
        Ok(())
    }

    pub(super) fn assign_tasks(
        &mut self,
        assignments: Vec<(String, String)>,
        at_ms: i64,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        for (task_id, node_id) in assignments {
            if !self.nodes.contains_key(&node_id) {
                continue;
            }
            let Some(task) = self.tasks.get_mut(&task_id) else {
                continue;
            };
            let status = task.status.get_or_insert_with(Default::default);
            if status.state() != TaskState::Pending
                || !task.node_id.is_empty()
                || task.desired_state > TaskState::Running as i32
            {
                continue;
            }
            task.node_id = node_id;
            *status = TaskStatus {
                state: TaskState::Assigned as i32,
                timestamp_ms: at_ms,
                message: "scheduler assigned task to node".into(),
                err: String::new(),
                exit_code: 0,
            };
            bump(&mut task.meta, at_ms);
            events.push(StoreEvent::Task(Change::Updated, task.clone()));
        }
        Ok(())
    }

    pub(super) fn set_pending_reasons(
        &mut self,
        reasons: Vec<(String, String)>,
        at_ms: i64,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        for (task_id, reason) in reasons {
            let Some(task) = self.tasks.get_mut(&task_id) else {
                continue;
            };
            let status = task.status.get_or_insert_with(Default::default);
            if status.state() != TaskState::Pending || status.err == reason {
                continue;
            }
            status.err = reason;
            bump(&mut task.meta, at_ms);
            events.push(StoreEvent::Task(Change::Updated, task.clone()));
        }
        Ok(())
    }

    pub(super) fn update_task_statuses(
        &mut self,
        node_id: &str,
        updates: Vec<(String, TaskStatus)>,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        for (task_id, new) in updates {
            let Some(task) = self.tasks.get_mut(&task_id) else {
                continue;
            };
            // One writer per fact: only the node holding the task reports it.
            if task.node_id != node_id {
                continue;
            }
            let current = task.status.get_or_insert_with(Default::default);
            if is_terminal(current.state()) || new.state <= current.state {
                continue;
            }
            let at_ms = new.timestamp_ms;
            if new.state() == TaskState::Running && task.running_since_ms == 0 {
                task.running_since_ms = at_ms;
            }
            *current = new;
            bump(&mut task.meta, at_ms);
            events.push(StoreEvent::Task(Change::Updated, task.clone()));
        }
        Ok(())
    }

    pub(super) fn delete_tasks(
        &mut self,
        task_ids: &[String],
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        for id in task_ids {
            if let Some(task) = self.tasks.remove(id) {
                events.push(StoreEvent::Task(Change::Removed, task));
            }
        }
        Ok(())
    }
}
