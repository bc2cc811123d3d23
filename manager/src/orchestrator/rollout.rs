//! Rolling updates and rollbacks, as Swarm does them, decided from the store
//! alone (level-triggered): which out-of-date slots to replace now, and when
//! a rollout pauses, rolls back or completes.
//!
//! - A slot is *out of date* while its task was made from another task spec
//!   than the service's (`service update --force` bumps `force_update`, so
//!   every slot is). Slots are replaced in slot order, at most `parallelism`
//!   in progress at once. A slot is in progress until its task of the new
//!   spec has been RUNNING for `delay` (so the delay separates batches), and a
//!   slot that is down for any other reason counts too: the service never has
//!   fewer than `replicas - parallelism` tasks running because of an update.
//! - stop-first retires the old task and the slot gets its new task once the
//!   old one stopped; start-first creates the new task beside the old one,
//!   which is retired once the new one runs (RUNNING means healthy when the
//!   task has a health check).
//! - A *failure* is a task of the new spec, created since the rollout
//!   started, that ended on its own (failed, rejected, or exited) before it
//!   had run for `monitor`. When failures exceed `max_failure_ratio` of the
//!   slots, the failure action applies: pause (the update stops where it is),
//!   rollback (the previous spec becomes the spec, rolled out with the
//!   rollback config), or continue. A rollback that fails pauses.
//! - The rollout completes once every slot runs the new spec and the newest
//!   of them has run for `monitor` without a failure.
//!
//! The rollout's state lives in the service's `UpdateStatus`, written by the
//! store when a spec changes and by the commands returned here; nothing is
//! remembered between passes, so a new leader carries on where the old one was.

use std::collections::{BTreeMap, HashMap};

use shoal_proto::v1::{
    Service, Task, TaskState, UpdateConfig, UpdateFailureAction, UpdateOrder, UpdateState,
    UpdateStatus,
};

use super::slots::{created_at, ended_at, ended_on_its_own, observed, SlotKey};
use crate::store::Command;

/// How long a new task is watched for failure when the config does not say (Swarm's).
pub const DEFAULT_MONITOR_MS: u64 = 5_000;

/// One service's slots as the orchestrator sorted them.
pub(super) struct Slots<'a> {
    pub service: &'a Service,
    /// The slots the service should fill, in order.
    pub wanted: &'a [SlotKey],
    /// The task holding each slot (of the new spec when one was started).
    pub live: &'a BTreeMap<&'a SlotKey, &'a Task>,
    /// Start-first: the old task still serving beside a new one that does not run yet.
    pub outgoing: &'a BTreeMap<&'a SlotKey, &'a Task>,
    /// Each slot's dead tasks, newest first.
    pub dead: &'a BTreeMap<&'a SlotKey, Vec<&'a Task>>,
    /// Every task of the service.
    pub tasks: &'a [&'a Task],
    /// The ingress network's ID when the service publishes a port in
    /// ingress mode: a placed task without an address on it is outdated
    /// (it was started before the port was published, and no connection
    /// through the mesh can reach it), as a task of an older spec is.
    pub ingress: Option<&'a str>,
    pub now_ms: i64,
}

/// What the rollout does in this pass.
#[derive(Debug, Default)]
pub(super) struct Plan<'a> {
    /// Stop-first: slots whose old task is retired now (their new task comes
    /// once it stopped).
    pub stop: Vec<&'a SlotKey>,
    /// Start-first: slots that get a task of the new spec beside the old one.
    pub start_beside: Vec<&'a SlotKey>,
    /// Pause, rollback or completion.
    pub commands: Vec<Command>,
}

/// The update (or rollback) config in force, with Swarm's defaults filled in.
#[derive(Debug, Clone, Copy)]
struct Config {
    parallelism: usize,
    delay_ms: i64,
    monitor_ms: i64,
    failure_action: UpdateFailureAction,
    max_failure_ratio: f64,
    order: UpdateOrder,
}

impl Config {
    fn of(config: Option<&UpdateConfig>) -> Config {
        let c = config.copied().unwrap_or(UpdateConfig {
            parallelism: 1,
            ..Default::default()
        });
        Config {
            parallelism: if c.parallelism == 0 {
                usize::MAX
            } else {
                c.parallelism as usize
            },
            delay_ms: c.delay_ms as i64,
            monitor_ms: if c.monitor_ms == 0 {
                DEFAULT_MONITOR_MS
            } else {
                c.monitor_ms
            } as i64,
            failure_action: c.failure_action(),
            max_failure_ratio: c.max_failure_ratio,
            order: c.order(),
        }
    }
}

pub(super) fn plan<'a>(slots: &Slots<'a>) -> Plan<'a> {
    let mut plan = Plan::default();
    let service = slots.service;
    let Some(spec) = service.spec.as_ref() else {
        return plan;
    };
    let target = spec.task.as_ref();
    let status = service.update_status.clone().unwrap_or_default();
    let state = status.state();
    let rolling_back = matches!(
        state,
        UpdateState::RollbackStarted | UpdateState::RollbackPaused
    );
    let config = Config::of(if rolling_back {
        spec.rollback_config.as_ref()
    } else {
        spec.update_config.as_ref()
    });
    let active = matches!(state, UpdateState::Updating | UpdateState::RollbackStarted);
    let mut paused = matches!(state, UpdateState::Paused | UpdateState::RollbackPaused);

    if active && config.failure_action != UpdateFailureAction::Continue {
        let failed = failures(slots, target, status.started_at_ms, config.monitor_ms);
        let total = slots.wanted.len().max(1) as f64;
        if let Some(first) = failed.first() {
            if failed.len() as f64 / total > config.max_failure_ratio {
                plan.commands
                    .push(on_failure(service, &status, config, first, slots.now_ms));
                paused = true;
            }
        }
    }

    let host_ports = crate::network::ports::host_ports(service);
    let target_by_version = target_spec_by_version(slots.tasks, target);
    let is_current = |t: &Task| {
        target_by_version
            .get(&t.spec_version)
            .copied()
            .unwrap_or_else(|| t.spec.as_ref() == target)
            && t.host_ports == host_ports
            && slots.ingress.is_none_or(|id| {
                t.node_id.is_empty() || t.networks.iter().any(|a| a.network_id == id)
            })
    };
    if !paused {
        let settled = |t: &Task| {
            is_current(t)
                && observed(t) == TaskState::Running
                && slots.now_ms >= t.running_since_ms + config.delay_ms
        };
        let continue_past_failure = config.failure_action == UpdateFailureAction::Continue;
        let in_progress = slots
            .wanted
            .iter()
            .filter(|key| match slots.live.get(key) {
                Some(t) if settled(t) => false,
                // Not touched yet, and serving.
                Some(t) if !is_current(t) => observed(t) != TaskState::Running,
                Some(_) => true,
                None => {
                    // With failure action "continue", a slot whose new task
                    // failed no longer holds the rollout back.
                    let last = slots.dead.get(key).and_then(|d| d.first());
                    !(continue_past_failure
                        && last.is_some_and(|t| is_current(t) && ended_on_its_own(t)))
                }
            })
            .count();
        let mut budget = config.parallelism.saturating_sub(in_progress);
        for key in slots.wanted {
            if budget == 0 {
                break;
            }
            let Some(task) = slots.live.get(key) else {
                continue;
            };
            if is_current(task) {
                continue;
            }
            match config.order {
                UpdateOrder::StopFirst => plan.stop.push(key),
                UpdateOrder::StartFirst => plan.start_beside.push(key),
            }
            budget -= 1;
        }
    }

    if active && !paused {
        let since = status.started_at_ms;
        let done = slots.outgoing.is_empty()
            && plan.stop.is_empty()
            && plan.start_beside.is_empty()
            && slots.wanted.iter().all(|key| {
                slots.live.get(key).is_some_and(|t| {
                    is_current(t)
                        && observed(t) == TaskState::Running
                        && (created_at(t) < since
                            || slots.now_ms >= t.running_since_ms + config.monitor_ms)
                })
            });
        if done {
            let (state, message) = if rolling_back {
                (UpdateState::RollbackCompleted, "rollback completed")
            } else {
                (UpdateState::Completed, "update completed")
            };
            plan.commands.push(Command::SetUpdateStatus {
                service_id: service.id.clone(),
                expected_version: service.spec_version,
                status: UpdateStatus {
                    state: state as i32,
                    started_at_ms: status.started_at_ms,
                    completed_at_ms: slots.now_ms,
                    message: message.into(),
                },
            });
        }
    }
    plan
}

/// For each spec version among `tasks`, whether its tasks were made from
/// the `target` spec. A task's spec is the service's at the version it was
/// made from (`new_task` copies it and nothing changes it after), so the
/// deep comparison is made once per version instead of once per task and
/// use: during a rolling update of 100,000 tasks these comparisons were a
/// fifth of the leader's CPU (issue 20). Debug builds check the premise on
/// every task. (Host ports are not keyed so: the endpoint they come from is
/// written apart from the spec, so they are compared per task, cheaply.)
fn target_spec_by_version(
    tasks: &[&Task],
    target: Option<&shoal_proto::v1::TaskSpec>,
) -> HashMap<u64, bool> {
    let mut by_version: HashMap<u64, bool> = HashMap::new();
    for t in tasks {
        let matches = *by_version
            .entry(t.spec_version)
            .or_insert_with(|| t.spec.as_ref() == target);
        debug_assert_eq!(
            matches,
            t.spec.as_ref() == target,
            "task {} has another spec than the other tasks of spec version {}",
            t.id,
            t.spec_version
        );
    }
    by_version
}

/// Tasks of the new spec, created since the rollout started, that ended on
/// their own before running for `monitor_ms`; earliest end first.
fn failures<'a>(
    slots: &Slots<'a>,
    target: Option<&shoal_proto::v1::TaskSpec>,
    since_ms: i64,
    monitor_ms: i64,
) -> Vec<&'a Task> {
    let mut failed: Vec<&Task> = slots
        .tasks
        .iter()
        .copied()
        .filter(|t| {
            t.spec.as_ref() == target
                && created_at(t) >= since_ms
                && ended_on_its_own(t)
                && (t.running_since_ms == 0 || ended_at(t) - t.running_since_ms < monitor_ms)
        })
        .collect();
    failed.sort_by_key(|t| ended_at(t));
    failed
}

/// The failure action's command.
fn on_failure(
    service: &Service,
    status: &UpdateStatus,
    config: Config,
    failed: &Task,
    now_ms: i64,
) -> Command {
    let rolling_back = status.state() == UpdateState::RollbackStarted;
    if config.failure_action == UpdateFailureAction::Rollback && !rolling_back {
        return Command::RollbackService {
            service_id: service.id.clone(),
            expected_version: service.spec_version,
            message: format!(
                "update rolled back due to failure or early termination of task {}",
                failed.id
            ),
            at_ms: now_ms,
        };
    }
    let (state, what) = if rolling_back {
        (UpdateState::RollbackPaused, "rollback")
    } else {
        (UpdateState::Paused, "update")
    };
    Command::SetUpdateStatus {
        service_id: service.id.clone(),
        expected_version: service.spec_version,
        status: UpdateStatus {
            state: state as i32,
            started_at_ms: status.started_at_ms,
            completed_at_ms: 0,
            message: format!(
                "{what} paused due to failure or early termination of task {}",
                failed.id
            ),
        },
    }
}

#[cfg(test)]
mod tests;
