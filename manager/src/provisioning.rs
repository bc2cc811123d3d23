//! When to call the operator's machine hooks (pure: the store snapshot, the
//! leader's memory of idle nodes and the clock are passed in).
//!
//! - **Provisioner**: tasks pending for lack of resources (the scheduler's
//!   reason says "insufficient cpu|memory") for longer than the threshold
//!   make a [`Shortfall`]; it is handed to the hook unless a call is in
//!   flight or the cool-down after the last one runs.
//! - **Decommissioner**: a worker that is Ready, active and without tasks
//!   for the idle window is drained and handed to the hook, one at a time,
//!   never below the floor and never while tasks wait for capacity.
//!
//! Single-flight across leaders: a call is recorded in Raft
//! (`Command::StartProvisionerCall`) *before* it runs, and only the leader
//! that recorded it runs it. A new leader that finds a call recorded cannot
//! know whether its predecessor's process still runs, so it waits until the
//! call's deadline (plus [`LOST_GRACE_MS`]) and then records it lost
//! ([`Action::Expire`]), which starts the cool-down. So a leader change never
//! runs the hook twice for the same shortfall. Running the commands is
//! [`crate::provisioner`]'s job.

use std::collections::HashMap;

use serde::Serialize;
use shoal_proto::v1::{
    Node, NodeAvailability, NodeProvisioning, NodeRole, NodeState, ProvisionerCall,
    ProvisioningEvent, ProvisioningStatus, TaskState,
};

use crate::store::{is_terminal, ClusterState};

pub mod settings;

pub const DEFAULT_PENDING_THRESHOLD_MS: u64 = 30_000;
pub const DEFAULT_TIMEOUT_MS: u64 = 10 * 60_000;
/// Long enough for a typical machine to boot and join.
pub const DEFAULT_COOLDOWN_MS: u64 = 3 * 60_000;
pub const DEFAULT_IDLE_WINDOW_MS: u64 = 10 * 60_000;
/// A call recorded by another leader is taken as lost this long after its
/// deadline: the leader that ran it kills it at the deadline and records the
/// result, which should win.
pub const LOST_GRACE_MS: i64 = 5_000;
/// Events kept in `ProvisioningStatus.events`.
pub const EVENTS_KEPT: usize = 10;

pub const PROVISION: &str = "provision";
pub const DECOMMISSION: &str = "decommission";

/// The cluster's hook settings with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub provisioner: Option<String>,
    pub pending_threshold_ms: i64,
    pub timeout_ms: i64,
    pub cooldown_ms: i64,
    pub decommissioner: Option<String>,
    pub idle_window_ms: i64,
    pub min_nodes: u64,
}

impl Settings {
    pub fn from_spec(spec: Option<&NodeProvisioning>) -> Settings {
        let spec = spec.cloned().unwrap_or_default();
        let or = |v: u64, default: u64| (if v == 0 { default } else { v }) as i64;
        let command = |c: String| (!c.trim().is_empty()).then_some(c);
        Settings {
            provisioner: command(spec.provisioner),
            pending_threshold_ms: or(spec.pending_threshold_ms, DEFAULT_PENDING_THRESHOLD_MS),
            timeout_ms: or(spec.timeout_ms, DEFAULT_TIMEOUT_MS),
            cooldown_ms: or(spec.cooldown_ms, DEFAULT_COOLDOWN_MS),
            decommissioner: command(spec.decommissioner),
            idle_window_ms: or(spec.idle_window_ms, DEFAULT_IDLE_WINDOW_MS),
            min_nodes: spec.min_nodes,
        }
    }

    pub fn of(state: &ClusterState) -> Settings {
        Settings::from_spec(
            state
                .cluster
                .as_ref()
                .and_then(|c| c.spec.as_ref())
                .and_then(|s| s.node_provisioning.as_ref()),
        )
    }
}

/// What the provisioner is told (its stdin, with the join details the
/// runner adds). Serialized as the operator's script sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shortfall {
    /// Pending tasks that do not fit anywhere for lack of resources.
    pub tasks: u64,
    /// Their reservations added up.
    pub nano_cpus: u64,
    pub memory_bytes: u64,
    /// The largest single reservations: a new machine must hold at least
    /// this to take any of them.
    pub largest_task: Reservation,
    pub services: Vec<ServiceShortfall>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reservation {
    pub nano_cpus: u64,
    pub memory_bytes: u64,
}

/// The pending tasks of one service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceShortfall {
    pub service_id: String,
    pub service: String,
    pub tasks: u64,
    /// Per task.
    pub reservation: Reservation,
    /// Placement constraints the new node must meet ("node.labels.zone==eu").
    pub constraints: Vec<String>,
    pub runtime: String,
    /// The scheduler's reason for the oldest task.
    pub reason: String,
    pub pending_since_ms: i64,
}

impl Shortfall {
    /// "2 tasks pending: 1 cpu, 512 MiB memory".
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.nano_cpus > 0 {
            parts.push(format!("{} cpu", self.nano_cpus as f64 / 1e9));
        }
        if self.memory_bytes > 0 {
            parts.push(format!("{} MiB memory", self.memory_bytes / (1 << 20)));
        }
        let what = if parts.is_empty() {
            String::new()
        } else {
            format!(": {}", parts.join(", "))
        };
        format!(
            "{} task{} pending{what}",
            self.tasks,
            if self.tasks == 1 { "" } else { "s" }
        )
    }
}

/// Whether the scheduler's reason says capacity is what is missing.
pub fn lacks_resources(reason: &str) -> bool {
    reason.contains("insufficient cpu") || reason.contains("insufficient memory")
}

/// The tasks pending for lack of resources since at least the threshold, or
/// `None` when there are none.
pub fn shortfall(state: &ClusterState, settings: &Settings, now_ms: i64) -> Option<Shortfall> {
    let mut by_service: Vec<ServiceShortfall> = Vec::new();
    let mut total = Shortfall {
        tasks: 0,
        nano_cpus: 0,
        memory_bytes: 0,
        largest_task: Reservation::default(),
        services: Vec::new(),
    };
    let mut tasks: Vec<_> = state
        .tasks
        .values()
        .filter(|t| {
            t.node_id.is_empty()
                && t.desired_state <= TaskState::Running as i32
                && t.status
                    .as_ref()
                    .is_some_and(|s| s.state() == TaskState::Pending && lacks_resources(&s.err))
        })
        .filter(|t| {
            let since = t.meta.as_ref().map(|m| m.created_at_ms).unwrap_or(now_ms);
            now_ms - since >= settings.pending_threshold_ms
        })
        .collect();
    // Oldest first, so each service's reason and time are its oldest task's.
    tasks.sort_by_key(|t| (t.meta.as_ref().map(|m| m.created_at_ms), t.id.clone()));
    for task in tasks {
        let spec = task.spec.clone().unwrap_or_default();
        let r = spec
            .resources
            .as_ref()
            .and_then(|r| r.reservations)
            .unwrap_or_default();
        let reservation = Reservation {
            nano_cpus: r.nano_cpus.max(0) as u64,
            memory_bytes: r.memory_bytes.max(0) as u64,
        };
        total.tasks += 1;
        total.nano_cpus += reservation.nano_cpus;
        total.memory_bytes += reservation.memory_bytes;
        total.largest_task.nano_cpus = total.largest_task.nano_cpus.max(reservation.nano_cpus);
        total.largest_task.memory_bytes = total
            .largest_task
            .memory_bytes
            .max(reservation.memory_bytes);
        if let Some(s) = by_service
            .iter_mut()
            .find(|s| s.service_id == task.service_id)
        {
            s.tasks += 1;
            continue;
        }
        let placement = spec.placement.clone().unwrap_or_default();
        by_service.push(ServiceShortfall {
            service_id: task.service_id.clone(),
            service: task.service_name.clone(),
            tasks: 1,
            reservation,
            constraints: placement.constraints.clone(),
            runtime: spec.runtime.clone(),
            reason: task
                .status
                .as_ref()
                .map(|s| s.err.clone())
                .unwrap_or_default(),
            pending_since_ms: task
                .meta
                .as_ref()
                .map(|m| m.created_at_ms)
                .unwrap_or(now_ms),
        });
    }
    if total.tasks == 0 {
        return None;
    }
    total.services = by_service;
    Some(total)
}

/// What the leader does about a hook this round.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Record the call in Raft, then (only once recorded) run it.
    Start(ProvisionerCall),
    /// A call recorded by an earlier leader outlived its deadline: record it
    /// lost, which ends it and starts the cool-down.
    Expire(ProvisionerCall),
}

/// A call found in flight: expired once past its deadline and the grace,
/// else it blocks everything.
fn in_flight(call: Option<&ProvisionerCall>, now_ms: i64) -> Option<Option<Action>> {
    let call = call?;
    Some((now_ms >= call.deadline_ms + LOST_GRACE_MS).then(|| Action::Expire(call.clone())))
}

/// The provisioner's decision: `None` waits (no hook, nothing pending long
/// enough, a call in flight, or the cool-down after the last one).
pub fn decide_provision(
    settings: &Settings,
    status: &ProvisioningStatus,
    shortfall: Option<&Shortfall>,
    now_ms: i64,
    call_id: &mut dyn FnMut() -> String,
) -> Option<Action> {
    if let Some(decided) = in_flight(status.provision_in_flight.as_ref(), now_ms) {
        return decided;
    }
    settings.provisioner.as_ref()?;
    let shortfall = shortfall?;
    if status.provision_ended_ms > 0 && now_ms < status.provision_ended_ms + settings.cooldown_ms {
        return None;
    }
    Some(Action::Start(ProvisionerCall {
        id: call_id(),
        kind: PROVISION.into(),
        started_ms: now_ms,
        deadline_ms: now_ms + settings.timeout_ms,
        node_id: String::new(),
        tasks: shortfall.tasks,
    }))
}

/// The leader's memory of when each node was first seen without tasks. A
/// new leader starts empty, so a leader change only ever delays a
/// decommission (by the idle window), never hastens it.
#[derive(Debug, Default)]
pub struct IdleNodes {
    since: HashMap<String, i64>,
}

impl IdleNodes {
    /// Notes which nodes are idle at `now_ms`; a node with a task forgets.
    pub fn observe(&mut self, state: &ClusterState, now_ms: i64) {
        let busy: std::collections::HashSet<&str> = state
            .tasks
            .values()
            .filter(|t| {
                !t.node_id.is_empty()
                    && t.desired_state <= TaskState::Running as i32
                    && !is_terminal(t.status.as_ref().map(|s| s.state()).unwrap_or_default())
            })
            .map(|t| t.node_id.as_str())
            .collect();
        self.since
            .retain(|id, _| state.nodes.contains_key(id) && !busy.contains(id.as_str()));
        for id in state.nodes.keys() {
            if !busy.contains(id.as_str()) {
                self.since.entry(id.clone()).or_insert(now_ms);
            }
        }
    }

    pub fn idle_since(&self, node_id: &str) -> Option<i64> {
        self.since.get(node_id).copied()
    }

    pub fn clear(&mut self) {
        self.since.clear();
    }
}

/// Ready and active: a node that takes tasks.
fn serving(node: &Node) -> bool {
    node.status
        .as_ref()
        .is_some_and(|s| s.state() == NodeState::Ready)
        && node
            .spec
            .as_ref()
            .map(|s| s.availability())
            .unwrap_or_default()
            == NodeAvailability::Active
}

/// The decommissioner's decision: the longest-idle worker past the window,
/// unless that would leave fewer serving nodes than the floor (at least
/// one), tasks are waiting for capacity, or a hook call is in flight.
pub fn decide_decommission(
    settings: &Settings,
    status: &ProvisioningStatus,
    state: &ClusterState,
    idle: &IdleNodes,
    now_ms: i64,
    call_id: &mut dyn FnMut() -> String,
) -> Option<Action> {
    if let Some(decided) = in_flight(status.decommission_in_flight.as_ref(), now_ms) {
        return decided;
    }
    settings.decommissioner.as_ref()?;
    // Capacity is short or being added: removing some now would be absurd.
    if status.provision_in_flight.is_some()
        || state.tasks.values().any(|t| {
            t.node_id.is_empty()
                && t.desired_state <= TaskState::Running as i32
                && t.status
                    .as_ref()
                    .is_some_and(|s| s.state() == TaskState::Pending && lacks_resources(&s.err))
        })
    {
        return None;
    }
    let serving_nodes = state.nodes.values().filter(|n| serving(n)).count() as u64;
    if serving_nodes <= settings.min_nodes.max(1) {
        return None;
    }
    let node = state
        .nodes
        .values()
        .filter(|n| n.role() == NodeRole::Worker && serving(n))
        .filter_map(|n| Some((idle.idle_since(&n.id)?, n)))
        .filter(|(since, _)| now_ms - since >= settings.idle_window_ms)
        .min_by_key(|(since, n)| (*since, n.id.clone()))
        .map(|(_, n)| n)?;
    Some(Action::Start(ProvisionerCall {
        id: call_id(),
        kind: DECOMMISSION.into(),
        started_ms: now_ms,
        deadline_ms: now_ms + settings.timeout_ms,
        node_id: node.id.clone(),
        tasks: 0,
    }))
}

/// The event recorded for a call an earlier leader never finished.
pub fn lost_event(call: &ProvisionerCall, now_ms: i64) -> ProvisioningEvent {
    ProvisioningEvent {
        at_ms: now_ms,
        kind: call.kind.clone(),
        message: format!(
            "{}er call {} lost: its leader changed before it reported (taken as ended at its deadline)",
            call.kind, call.id
        ),
        exit_code: -1,
        stderr: String::new(),
        node_id: call.node_id.clone(),
    }
}

#[cfg(test)]
mod tests;
