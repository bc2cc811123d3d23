//! The adapter between the store and the pure `shoal_scheduler` crate: builds
//! node views and the pending batch, and turns decisions into commands.

use std::collections::HashMap;

use shoal_proto::v1::PortProtocol;
use shoal_proto::v1::{MountType, Node, NodeAvailability, NodeRole, NodeState, Task, TaskState};
use shoal_scheduler::{
    schedule, Availability, Constraint, HostPort, NodeView, Placed, Placement, Platform,
    Preference, Resources, Role, TaskRequest,
};

use crate::store::{is_terminal, ClusterState, Command};

fn reservations(task: &Task) -> Resources {
    let r = task
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.reservations);
    Resources {
        nano_cpus: r.map(|r| r.nano_cpus.max(0) as u64).unwrap_or(0),
        memory_bytes: r.map(|r| r.memory_bytes.max(0) as u64).unwrap_or(0),
    }
}

/// The host-mode ports a task binds on its node: the ones it was made with
/// (a change of the service's ports is rolled out as new tasks).
fn host_ports(task: &Task) -> Vec<HostPort> {
    task.host_ports
        .iter()
        .map(|p| HostPort {
            port: p.published_port,
            udp: p.protocol == PortProtocol::Udp as i32,
        })
        .collect()
}

/// The placement rules of a task. Specs were validated when accepted, so a
/// rule that does not parse here is skipped rather than blocking the task.
fn placement(task: &Task) -> Placement {
    let Some(p) = task.spec.as_ref().and_then(|s| s.placement.as_ref()) else {
        return Placement::default();
    };
    Placement {
        constraints: p
            .constraints
            .iter()
            .filter_map(|c| Constraint::parse(c).ok())
            .collect(),
        preferences: p
            .preferences
            .iter()
            .filter_map(|c| Preference::parse(c).ok())
            .collect(),
        max_replicas_per_node: p.max_replicas_per_node,
    }
}

pub fn node_view(n: &Node) -> NodeView {
    let description = n.description.clone().unwrap_or_default();
    let platform = description.platform.clone().unwrap_or_default();
    let resources = description.resources.unwrap_or_default();
    let spec = n.spec.clone().unwrap_or_default();
    NodeView {
        id: n.id.clone(),
        hostname: description.hostname.clone(),
        role: if n.role() == NodeRole::Manager {
            Role::Manager
        } else {
            Role::Worker
        },
        labels: spec.labels.clone().into_iter().collect(),
        platform: Platform {
            os: platform.os,
            arch: platform.architecture,
        },
        ready: n
            .status
            .as_ref()
            .is_some_and(|s| s.state() == NodeState::Ready),
        availability: match spec.availability() {
            NodeAvailability::Active => Availability::Active,
            NodeAvailability::Pause => Availability::Pause,
            NodeAvailability::Drain => Availability::Drain,
        },
        runtimes: description.runtimes.clone(),
        // An agent that does not report it (older, or not probed) is
        // taken as capable: the agent is the one that knows.
        overlay_unavailable: description
            .overlay
            .as_ref()
            .filter(|o| !o.supported)
            .map(|o| {
                if o.reason.is_empty() {
                    "overlay networking not available".to_string()
                } else {
                    format!("overlay networking not available ({})", o.reason)
                }
            }),
        secrets_unavailable: description
            .secrets
            .as_ref()
            .filter(|c| !c.supported)
            .map(|c| format!("cannot hold secrets off disk ({})", c.reason)),
        // An agent that does not report it predates mounts: tasks that
        // need them would fail there.
        mounts_unavailable: match description.mounts.as_ref() {
            Some(m) if m.supported => None,
            Some(m) if !m.reason.is_empty() => {
                Some(format!("process mounts not available ({})", m.reason))
            }
            _ => Some("process mounts not available (the agent does not support them)".into()),
        },
        resources: Resources {
            nano_cpus: resources.nano_cpus.max(0) as u64,
            memory_bytes: resources.memory_bytes.max(0) as u64,
        },
    }
}

/// Whether a task keeps data on its node: a named volume of the local
/// driver (the engine's or a process volume directory).
fn has_local_volume(task: &Task) -> bool {
    task.spec.as_ref().is_some_and(|s| {
        s.mounts.iter().any(|m| {
            m.r#type == MountType::Volume as i32
                && !m.source.is_empty()
                && crate::spec::mounts::driver_of(m) == "local"
        })
    })
}

/// A process task that needs a private mount namespace on its node.
fn needs_mounts(task: &Task) -> bool {
    task.spec.as_ref().is_some_and(|s| {
        s.runtime == "process" && (!s.mounts.is_empty() || s.read_only || !s.user.is_empty())
    })
}

/// For each (service, slot) whose tasks have a local volume, the node of
/// its latest placed task: where the slot's data is.
fn volume_nodes(state: &ClusterState) -> HashMap<(&str, u64), &str> {
    let mut latest: HashMap<(&str, u64), (i64, &str)> = HashMap::new();
    for t in state.tasks.values() {
        if t.node_id.is_empty() || t.slot == 0 || !has_local_volume(t) {
            continue;
        }
        let created = t.meta.as_ref().map(|m| m.created_at_ms).unwrap_or_default();
        let entry = latest
            .entry((t.service_id.as_str(), t.slot))
            .or_insert((created, t.node_id.as_str()));
        if created > entry.0 {
            *entry = (created, t.node_id.as_str());
        }
    }
    latest.into_iter().map(|(k, (_, n))| (k, n)).collect()
}

/// The commands that place every pending task that fits somewhere, and record
/// why the others do not (only when the reason changed, so this settles).
pub fn schedule_pending(state: &ClusterState, now_ms: i64) -> Vec<Command> {
    let volume_nodes = volume_nodes(state);
    let pending: Vec<TaskRequest> = state
        .tasks
        .values()
        .filter(|t| {
            t.node_id.is_empty()
                && t.desired_state <= TaskState::Running as i32
                && t.status
                    .as_ref()
                    .is_some_and(|s| s.state() == TaskState::Pending)
                // Waiting for its addresses (the allocator says why).
                && crate::network::ready_to_place(state, t)
        })
        .map(|t| TaskRequest {
            id: t.id.clone(),
            service_id: t.service_id.clone(),
            runtime: t
                .spec
                .as_ref()
                .map(|s| s.runtime.clone())
                .unwrap_or_default(),
            placement: placement(t),
            reservations: reservations(t),
            needs_overlay: t.spec.as_ref().is_some_and(|s| !s.networks.is_empty()),
            needs_secrets: t
                .spec
                .as_ref()
                .is_some_and(|s| !s.secrets.is_empty() || !s.configs.is_empty()),
            host_ports: host_ports(t),
            needs_mounts: needs_mounts(t),
            preferred_node: has_local_volume(t)
                .then(|| volume_nodes.get(&(t.service_id.as_str(), t.slot)))
                .flatten()
                .map(|n| n.to_string()),
        })
        .collect();
    if pending.is_empty() {
        return Vec::new();
    }
    let nodes: Vec<NodeView> = state.nodes.values().map(node_view).collect();
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
            reservations: reservations(t),
            host_ports: host_ports(t),
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
