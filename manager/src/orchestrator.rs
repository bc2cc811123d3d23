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
    Meta, NodeAvailability, NodeState, RestartCondition, RestartPolicy, Service, ServiceMode, Task,
    TaskState, TaskStatus,
};

use crate::store::{is_terminal, ClusterState, Command};

mod rollout;
mod slots;

pub(crate) use slots::observed;
use slots::{created_at, ended_at, ended_on_its_own, SlotKey};

/// Dead tasks kept per slot when the cluster spec does not say.
pub const DEFAULT_TASK_HISTORY: usize = 5;

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
    // Rollout decisions (pause, rollback, completion), proposed last.
    let mut extra = Vec::new();
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
        let policy = spec
            .task
            .as_ref()
            .and_then(|t| t.restart_policy)
            .unwrap_or_default();
        // The slots this service should fill: replica numbers, or one per
        // eligible node for a global service.
        let wanted_keys: Vec<SlotKey> = match spec.mode() {
            ServiceMode::Replicated => (1..=spec.replicas).map(SlotKey::Replica).collect(),
            ServiceMode::Global => global_nodes(state, service)
                .into_iter()
                .map(SlotKey::Node)
                .collect(),
        };
        let wanted_set: HashSet<&SlotKey> = wanted_keys.iter().collect();
        let tasks = by_service
            .get(service.id.as_str())
            .cloned()
            .unwrap_or_default();
        let mut slots: BTreeMap<SlotKey, Vec<&Task>> = BTreeMap::new();
        for task in tasks.iter().copied() {
            slots.entry(SlotKey::of(task)).or_default().push(task);
        }
        let keep = history_limit.max(policy.max_attempts as usize + 1);
        let target = spec.task.as_ref();
        // Per slot: the task that holds it (`live`), and during a start-first
        // update the old task that keeps serving until its replacement runs.
        let mut live: BTreeMap<&SlotKey, &Task> = BTreeMap::new();
        let mut outgoing: BTreeMap<&SlotKey, &Task> = BTreeMap::new();
        let mut dead_by_key: BTreeMap<&SlotKey, Vec<&Task>> = BTreeMap::new();
        for (key, slot_tasks) in &slots {
            let mut dead: Vec<&Task> = Vec::new();
            let mut candidates: Vec<&Task> = Vec::new();
            for task in slot_tasks {
                let wanted = task.desired_state <= TaskState::Running as i32;
                let alive = !is_terminal(observed(task))
                    && !node_gone(task)
                    && !drained.contains(task.node_id.as_str());
                if wanted && alive && wanted_set.contains(key) {
                    candidates.push(task);
                    continue;
                }
                if wanted {
                    retire.push(task.id.clone());
                }
                dead.push(task);
            }
            // Newest first: the task of the current spec, if any, holds the slot.
            candidates.sort_by_key(|t| std::cmp::Reverse(created_at(t)));
            let holder = candidates
                .iter()
                .position(|t| t.spec.as_ref() == target)
                .unwrap_or(0);
            if !candidates.is_empty() {
                let holder = candidates.remove(holder);
                live.insert(key, holder);
                // Start-first: the newest older task serves until the new one runs.
                if holder.spec.as_ref() == target && observed(holder) != TaskState::Running {
                    if let Some(i) = candidates
                        .iter()
                        .position(|t| observed(t) == TaskState::Running)
                    {
                        outgoing.insert(key, candidates.remove(i));
                    }
                }
                retire.extend(candidates.iter().map(|t| t.id.clone()));
            }
            // Newest first; keep the history (and what restart counting needs).
            dead.sort_by_key(|t| std::cmp::Reverse(created_at(t)));
            delete.extend(
                dead.iter()
                    .skip(keep)
                    .filter(|t| settled(t))
                    .map(|t| t.id.clone()),
            );
            dead_by_key.insert(key, dead);
        }

        // The rollout of a spec change: see `rollout`.
        let plan = rollout::plan(&rollout::Slots {
            service,
            wanted: &wanted_keys,
            live: &live,
            outgoing: &outgoing,
            dead: &dead_by_key,
            tasks: &tasks,
            ingress: crate::network::ingress::publishes_ingress(service)
                .then(|| crate::network::ingress::ingress_network(state))
                .flatten()
                .map(|n| n.id.as_str()),
            now_ms,
        });
        retire.extend(plan.stop.iter().map(|k| live[k].id.clone()));
        extra.extend(plan.commands);
        // Sets: both are asked about for every slot, and a 10,000-replica
        // rollout with parallelism 0 fills them all.
        let updating: HashSet<&SlotKey> = plan.stop.iter().copied().collect();
        let started_beside: HashSet<&SlotKey> = plan.start_beside.iter().copied().collect();

        for key in &wanted_keys {
            let start_beside = started_beside.contains(key);
            if live.contains_key(key) && !start_beside {
                continue;
            }
            let dead = dead_by_key.get(key).map(Vec::as_slice).unwrap_or(&[]);
            if !start_beside {
                // Stop first: a slot's new task starts once its old one stopped
                // (unless the old one's node is gone and will never report).
                let stopping = dead.iter().any(|t| {
                    t.desired_state > TaskState::Running as i32
                        && !t.node_id.is_empty()
                        && !is_terminal(observed(t))
                        && !node_gone(t)
                });
                if stopping || updating.contains(key) {
                    continue;
                }
                if !may_restart(&policy, dead, now_ms) {
                    continue;
                }
            } else if dead.first().is_some_and(|t| t.spec.as_ref() == target)
                && !may_restart(&policy, dead, now_ms)
            {
                // Start-first after a failed attempt at the new spec: the
                // restart policy paces the next one (else a failing version
                // under failure action "continue" would be retried at once,
                // forever).
                continue;
            }
            let mut task = new_task(service, key.slot(), now_ms, new_id());
            if let SlotKey::Node(node_id) = key {
                // A global task's node is fixed: it is created assigned.
                task.node_id = node_id.clone();
                if let Some(status) = task.status.as_mut() {
                    status.state = TaskState::Assigned as i32;
                    status.message = "assigned by the global orchestrator".into();
                }
            }
            create.push(task);
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
    // Forget old history before adding tasks, so a slot never shows more
    // than the history limit plus its live task.
    if !delete.is_empty() {
        commands.push(Command::DeleteTasks { task_ids: delete });
    }
    if !create.is_empty() {
        commands.push(Command::CreateTasks(create));
    }
    commands.extend(extra);
    commands
}

/// Default pause before a task that ended is replaced, as Swarm's.
pub const DEFAULT_RESTART_DELAY_MS: u64 = 5_000;

/// Nodes a global service runs on: not drained, not removed, with the
/// runtime, meeting the constraints. Down nodes keep their task (it is not
/// moved anywhere: that is what global means).
fn global_nodes(state: &ClusterState, service: &Service) -> Vec<String> {
    let task = service
        .spec
        .as_ref()
        .and_then(|s| s.task.clone())
        .unwrap_or_default();
    let constraints: Vec<shoal_scheduler::Constraint> = task
        .placement
        .as_ref()
        .map(|p| {
            p.constraints
                .iter()
                .filter_map(|c| shoal_scheduler::Constraint::parse(c).ok())
                .collect()
        })
        .unwrap_or_default();
    state
        .nodes
        .values()
        .filter(|n| {
            let view = crate::scheduling::node_view(n);
            view.availability != shoal_scheduler::Availability::Drain
                && view.runtimes.iter().any(|r| r == &task.runtime)
                && constraints.iter().all(|c| c.matches(&view))
        })
        .map(|n| n.id.clone())
        .collect()
}

/// Whether a slot whose tasks are `dead` (newest first) gets a new task now,
/// under the service's restart policy. Tasks that were moved or stopped by
/// the cluster (node lost, drained, scaled, updated) are always replaced;
/// the policy governs tasks that ended on their own.
fn may_restart(policy: &RestartPolicy, dead: &[&Task], now_ms: i64) -> bool {
    let Some(last) = dead.first() else {
        return true;
    };
    if !ended_on_its_own(last) {
        return true;
    }
    match policy.condition() {
        RestartCondition::None => return false,
        RestartCondition::OnFailure if observed(last) == TaskState::Complete => return false,
        _ => {}
    }
    if policy.max_attempts > 0 {
        let window_start = if policy.window_ms > 0 {
            now_ms - policy.window_ms as i64
        } else {
            i64::MIN
        };
        let attempts = dead
            .iter()
            .filter(|t| ended_on_its_own(t) && ended_at(t) >= window_start)
            .count() as u64;
        // The first run is not a restart: N restarts mean N + 1 runs.
        if attempts > policy.max_attempts {
            return false;
        }
    }
    let delay = if policy.delay_set || policy.delay_ms > 0 {
        policy.delay_ms
    } else {
        DEFAULT_RESTART_DELAY_MS
    };
    now_ms >= ended_at(last) + delay as i64
}

/// A fresh task for `slot`, pending placement.
pub fn new_task(service: &Service, slot: u64, now_ms: i64, id: String) -> Task {
    // The task spec and the name only: the service spec also holds the
    // update, rollback and endpoint configs, copied for nothing per task.
    let spec = service.spec.as_ref();
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
        spec: spec.and_then(|s| s.task.clone()),
        spec_version: service.spec_version,
        desired_state: TaskState::Running as i32,
        status: Some(TaskStatus {
            state: TaskState::Pending as i32,
            timestamp_ms: now_ms,
            message: "pending task scheduling".into(),
            err: String::new(),
            exit_code: 0,
        }),
        service_name: spec.map(|s| s.name.clone()).unwrap_or_default(),
        running_since_ms: 0,
        // Addresses come from the leader's allocator pass (`network::allocate`).
        networks: Vec::new(),
        host_ports: crate::network::ports::host_ports(service),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod model;
