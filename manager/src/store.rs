//! The cluster store: the objects the managers agree on (cluster, nodes,
//! services, tasks), the commands that change them, and the watch stream of
//! applied changes.
//!
//! `ClusterState::apply` is the Raft state machine's only write path. It is
//! deterministic: no clock, no randomness, no files; timestamps and IDs come
//! inside the command, chosen by the proposer. A command that cannot apply
//! (an unknown node, say) changes nothing and returns an error that travels
//! back to the proposer — the same on every manager.
//!
//! Commands are field-targeted ("one writer per fact"): managers write desired
//! state and assignments, agents' reports write observed task status, and no
//! command overwrites the other side's fields.
//!
//! Raft I/O lives in [`crate::raft`]; this module knows nothing about logs.
//!
//! # Layout
//! - `nodes.rs`, `services.rs`, `tasks.rs`, `networks.rs`: apply, per
//!   object kind (`networks.rs` also holds the address checks).
//! - [`secrets`]: secrets and configs (immutable, refused while granted).
//! - [`shared`]: the applied state as the manager reads and watches it.
//! - `state.rs`: the objects ([`ClusterState`]), the events and the
//!   errors, which every part of the store names.

pub mod chunks;
mod networks;
mod nodes;
mod provisioning;
pub mod rotation;
pub mod secrets;
mod services;
mod shared;
mod state;
mod tasks;

pub use shared::{AssignmentMarks, SharedStore};
pub(crate) use state::bump;
pub use state::{Applied, Change, ClusterState, CommandResult, ObjectKind, StoreError, StoreEvent};
pub use tasks::{is_terminal, task_name};

use serde::{Deserialize, Serialize};
use shoal_proto::v1::{
    Cluster, ManagerStatus, Network, NetworkAttachment, Node, NodeAvailability, NodeDescription,
    NodeRole, Service, ServiceSpec, Task, TaskState, TaskStatus, UpdateStatus, VirtualIp,
};

/// Every change the cluster store can apply. Variants are only ever added at
/// the end: their index is part of the on-disk log format.
// Commands live only between proposal and apply; boxing the large variants
// would save nothing that matters and clutter every constructor.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Command {
    /// Creates the cluster object at `swarm init`.
    CreateCluster(Cluster),
    /// Replaces one join token (rotation).
    SetJoinToken {
        role: NodeRole,
        token: String,
        at_ms: i64,
    },
    /// Adds a node that was just issued a certificate.
    CreateNode(Node),
    /// A node's agent opened a session: record what it reported, mark it Ready.
    NodeSessionStarted {
        node_id: String,
        description: NodeDescription,
        addr: String,
        at_ms: i64,
    },
    /// A node stopped heartbeating.
    NodeDown {
        node_id: String,
        message: String,
        at_ms: i64,
    },
    /// `node rm`: the node is forgotten and its certificate refused from now on.
    RemoveNode { node_id: String },
    /// Adds a service; its name must be free.
    CreateService(Service),
    /// Replaces a service's spec, keeping the previous one.
    UpdateServiceSpec {
        service_id: String,
        spec: ServiceSpec,
        /// Non-zero: apply only if the service is still at this version.
        expected_version: u64,
        at_ms: i64,
    },
    /// Removes a service; its tasks are asked to shut down.
    RemoveService { service_id: String },
    /// Orchestrator: new tasks. A task for a slot that already has a live
    /// task is skipped, so a repeated write never duplicates a replica.
    CreateTasks(Vec<Task>),
    /// Orchestrator: moves tasks' desired state forward.
    SetTasksDesiredState {
        task_ids: Vec<String>,
        state: TaskState,
        at_ms: i64,
    },
    /// Scheduler: pending tasks placed on nodes.
    AssignTasks {
        assignments: Vec<(String, String)>,
        at_ms: i64,
    },
    /// Scheduler: why pending tasks could not be placed.
    SetPendingReasons {
        reasons: Vec<(String, String)>,
        at_ms: i64,
    },
    /// Agents (through the dispatcher): observed task states, forward only.
    UpdateTaskStatuses {
        node_id: String,
        updates: Vec<(String, TaskStatus)>,
    },
    /// Orchestrator: forgets dead tasks beyond the history limit.
    DeleteTasks { task_ids: Vec<String> },
    /// `node update`: availability and labels.
    UpdateNodeSpec {
        node_id: String,
        availability: Option<NodeAvailability>,
        label_add: Vec<(String, String)>,
        label_rm: Vec<String>,
        at_ms: i64,
    },
    /// A node's role changed (a manager joined, was promoted or demoted).
    SetNodeRole {
        node_id: String,
        role: NodeRole,
        manager_status: Option<ManagerStatus>,
        at_ms: i64,
    },
    /// `swarm init --force-new-cluster`: a surviving manager's state loaded
    /// into a new Raft group. Applies only to an empty store.
    RestoreState(Box<ClusterState>),
    /// Several independent commands in one log entry (the manager batches
    /// concurrent proposals); each applies, or fails, on its own.
    Batch(Vec<Command>),
    /// `swarm update`: heartbeat period and task history limit.
    UpdateClusterSpec {
        dispatcher_heartbeat_ms: Option<u64>,
        task_history_limit: Option<u64>,
        at_ms: i64,
    },
    /// `node promote`: the node should become a manager (its daemon acts on it).
    SetDesiredRole {
        node_id: String,
        role: NodeRole,
        at_ms: i64,
    },
    /// `service rollback`, or an update's failure action: the previous spec
    /// becomes the spec (and the current one the previous), and the rollout
    /// back starts. Applies only at `expected_version` (0: any), so a repeated
    /// automatic rollback never swaps twice.
    RollbackService {
        service_id: String,
        expected_version: u64,
        message: String,
        at_ms: i64,
    },
    /// Orchestrator: an update paused or completed. Applies only while the
    /// service is still at `expected_version`: a newer spec has its own rollout.
    SetUpdateStatus {
        service_id: String,
        expected_version: u64,
        status: UpdateStatus,
    },
    /// `swarm update --cert-expiry`: the lifetime of certificates issued
    /// from now on (nodes renew into it).
    SetNodeCertExpiry { secs: u64, at_ms: i64 },
    /// A certificate was issued to the node (promotion, renewal): its
    /// validity, for `node ls` to warn about.
    SetNodeCertificate {
        node_id: String,
        certificate: shoal_proto::v1::NodeCertificate,
    },
    /// `swarm update --autolock`, `swarm unlock-key --rotate`: whether
    /// managers keep their Raft store key only under the unlock key, and
    /// that key (empty when off). Every manager re-wraps its own key to match.
    SetAutolock {
        enabled: bool,
        unlock_key: String,
        at_ms: i64,
    },
    /// `swarm ca --rotate`: a new root (made by the proposer) signs from now
    /// on, both roots are trusted, and the join tokens name the new root.
    /// The rotation ends by itself (see [`rotation`]).
    StartRootRotation {
        rotation: shoal_proto::v1::RootRotation,
        join_tokens: shoal_proto::v1::JoinTokens,
        at_ms: i64,
    },
    /// `network create`: a network with its subnet and VXLAN ID, chosen by
    /// the leader; refused if the name, the VNI or the subnet is taken.
    CreateNetwork(Network),
    /// `network rm`: refused while a service's spec names the network.
    RemoveNetwork { network_id: String },
    /// Leader: addresses for live tasks that have none. A task whose
    /// addresses are taken by now (a concurrent decision) is skipped, and
    /// the next pass decides again.
    AttachTasks {
        attachments: Vec<(String, Vec<NetworkAttachment>)>,
        at_ms: i64,
    },
    /// Leader: a service's VIPs after its networks or endpoint mode changed.
    /// Skipped if a new VIP is taken by now.
    SetServiceVips {
        service_id: String,
        virtual_ips: Vec<VirtualIp>,
    },
    /// The autoscaler changed an autoscaled service's replica count: sets
    /// `replicas` (keeping the previous spec, so a rollback still goes to the
    /// operator's last spec) and appends `event` to the service's short
    /// history. Applies only at `expected_version` and while the service is
    /// still autoscaled, so a decision about a spec the operator changed
    /// meanwhile is refused.
    AutoscaleService {
        service_id: String,
        expected_version: u64,
        replicas: u64,
        event: shoal_proto::v1::AutoscaleEvent,
    },
    /// `swarm update --node-provisioner …`: the hooks' settings, whole (the
    /// control service merges the flags given into the stored ones).
    SetNodeProvisioning {
        spec: shoal_proto::v1::NodeProvisioning,
        at_ms: i64,
    },
    /// The leader is about to run a hook: records the call (refused while
    /// one of its kind is in flight, so it runs once). A decommission also
    /// drains its node.
    StartProvisionerCall {
        call: shoal_proto::v1::ProvisionerCall,
        at_ms: i64,
    },
    /// A hook's call ended (or was found lost): clears it if it is still the
    /// one in flight (a second report changes nothing) and appends `event`.
    /// `reactivate` makes a node drained for a failed decommission active
    /// again.
    EndProvisionerCall {
        call_id: String,
        kind: String,
        event: shoal_proto::v1::ProvisioningEvent,
        reactivate: bool,
    },
    /// The dispatcher judged a node's session lost (its connection closed,
    /// or its heartbeats stopped): Down, unless the node opened a newer
    /// session since the judgement. `session_started_at_ms` is the session
    /// start the dispatcher saw in the store when it judged; a reconnect
    /// that landed meanwhile changed it, and the command is then a no-op
    /// (without it, a node that reconnected just as its grace ran out would
    /// stay Down with a live session).
    NodeSessionLost {
        node_id: String,
        message: String,
        session_started_at_ms: i64,
        at_ms: i64,
    },
    /// `secret create`: refused if the name is taken or the data too large.
    CreateSecret(shoal_proto::v1::Secret),
    /// `secret rm`: refused while a service's spec grants it.
    RemoveSecret { secret_id: String },
    /// `config create`: as secrets.
    CreateConfig(shoal_proto::v1::Config),
    /// `config rm`: refused while a service's spec grants it.
    RemoveConfig { config_id: String },
    /// `swarm update --bind-mount-prefix`: the host paths bind mounts may
    /// name from now on (empty: any). Existing services keep running.
    SetMountPolicy {
        policy: shoal_proto::v1::MountPolicy,
        at_ms: i64,
    },
    /// Leader: ingress sandbox addresses (CIDR form) for nodes that have
    /// none. A node that has one by now, is gone, or whose address is taken
    /// by then is skipped, and the next pass decides again.
    SetIngressSandboxes { assignments: Vec<(String, String)> },
}

impl ClusterState {
    /// Applies `command`, appending the resulting changes to `events`.
    pub fn apply(&mut self, command: Command, events: &mut Vec<StoreEvent>) -> CommandResult {
        // Commands that change which nodes hold which root's certificate
        // may complete a root rotation.
        let may_finish_rotation = matches!(
            command,
            Command::CreateNode(_)
                | Command::RemoveNode { .. }
                | Command::SetNodeCertificate { .. }
        );
        let result = self.apply_one(command, events);
        if result.is_ok() && may_finish_rotation {
            self.finish_root_rotation_if_done(events);
        }
        result
    }

    fn apply_one(&mut self, command: Command, events: &mut Vec<StoreEvent>) -> CommandResult {
        match command {
            Command::CreateCluster(cluster) => self.create_cluster(cluster, events),
            Command::SetJoinToken { role, token, at_ms } => {
                self.set_join_token(role, token, at_ms, events)
            }
            Command::CreateNode(node) => self.create_node(node, events),
            Command::NodeSessionStarted {
                node_id,
                description,
                addr,
                at_ms,
            } => self.node_session_started(&node_id, description, addr, at_ms, events),
            Command::NodeDown {
                node_id,
                message,
                at_ms,
            } => self.node_down(&node_id, message, at_ms, events),
            Command::RemoveNode { node_id } => self.remove_node(&node_id, events),
            Command::CreateService(service) => self.create_service(service, events),
            Command::UpdateServiceSpec {
                service_id,
                spec,
                expected_version,
                at_ms,
            } => self.update_service_spec(&service_id, spec, expected_version, at_ms, events),
            Command::RemoveService { service_id } => self.remove_service(&service_id, events),
            Command::RollbackService {
                service_id,
                expected_version,
                message,
                at_ms,
            } => self.rollback_service(&service_id, expected_version, message, at_ms, events),
            Command::SetUpdateStatus {
                service_id,
                expected_version,
                status,
            } => self.set_update_status(&service_id, expected_version, status, events),
            Command::CreateTasks(tasks) => self.create_tasks(tasks, events),
            Command::SetTasksDesiredState {
                task_ids,
                state,
                at_ms,
            } => self.set_tasks_desired_state(&task_ids, state, at_ms, events),
            Command::AssignTasks { assignments, at_ms } => {
                self.assign_tasks(assignments, at_ms, events)
            }
            Command::SetPendingReasons { reasons, at_ms } => {
                self.set_pending_reasons(reasons, at_ms, events)
            }
            Command::UpdateTaskStatuses { node_id, updates } => {
                self.update_task_statuses(&node_id, updates, events)
            }
            Command::DeleteTasks { task_ids } => self.delete_tasks(&task_ids, events),
            Command::UpdateNodeSpec {
                node_id,
                availability,
                label_add,
                label_rm,
                at_ms,
            } => self.update_node_spec(&node_id, availability, label_add, label_rm, at_ms, events),
            Command::SetNodeRole {
                node_id,
                role,
                manager_status,
                at_ms,
            } => self.set_node_role(&node_id, role, manager_status, at_ms, events),
            Command::UpdateClusterSpec {
                dispatcher_heartbeat_ms,
                task_history_limit,
                at_ms,
            } => {
                let cluster = self.cluster.as_mut().ok_or(StoreError::NotFound {
                    kind: ObjectKind::Cluster,
                    id: String::new(),
                })?;
                let spec = cluster.spec.get_or_insert_with(Default::default);
                if let Some(ms) = dispatcher_heartbeat_ms {
                    spec.dispatcher
                        .get_or_insert_with(Default::default)
                        .heartbeat_period_ms = ms;
                }
                if let Some(limit) = task_history_limit {
                    spec.orchestration
                        .get_or_insert_with(Default::default)
                        .task_history_limit = limit;
                }
                bump(&mut cluster.meta, at_ms);
                events.push(StoreEvent::ClusterUpdated(cluster.clone()));
                Ok(())
            }
            Command::SetDesiredRole {
                node_id,
                role,
                at_ms,
            } => {
                let node = self.nodes.get_mut(&node_id).ok_or(StoreError::NotFound {
                    kind: ObjectKind::Node,
                    id: node_id.clone(),
                })?;
                node.spec.get_or_insert_with(Default::default).desired_role = role as i32;
                bump(&mut node.meta, at_ms);
                events.push(StoreEvent::Node(Change::Updated, node.clone()));
                Ok(())
            }
            Command::Batch(commands) => {
                for command in commands {
                    self.apply(command, events)?;
                }
                Ok(())
            }
            Command::SetNodeCertExpiry { secs, at_ms } => {
                let cluster = self.cluster.as_mut().ok_or(StoreError::NotFound {
                    kind: ObjectKind::Cluster,
                    id: String::new(),
                })?;
                cluster
                    .spec
                    .get_or_insert_with(Default::default)
                    .node_cert_expiry_secs = secs;
                bump(&mut cluster.meta, at_ms);
                events.push(StoreEvent::ClusterUpdated(cluster.clone()));
                Ok(())
            }
            Command::SetAutolock {
                enabled,
                unlock_key,
                at_ms,
            } => {
                let cluster = self.cluster.as_mut().ok_or(StoreError::NotFound {
                    kind: ObjectKind::Cluster,
                    id: String::new(),
                })?;
                if enabled && unlock_key.is_empty() {
                    return Err(StoreError::Conflict("autolock needs an unlock key".into()));
                }
                cluster
                    .spec
                    .get_or_insert_with(Default::default)
                    .encryption
                    .get_or_insert_with(Default::default)
                    .auto_lock_managers = enabled;
                cluster.unlock_key = if enabled { unlock_key } else { String::new() };
                bump(&mut cluster.meta, at_ms);
                events.push(StoreEvent::ClusterUpdated(cluster.clone()));
                Ok(())
            }
            Command::SetNodeCertificate {
                node_id,
                certificate,
            } => {
                let node = self.nodes.get_mut(&node_id).ok_or(StoreError::NotFound {
                    kind: ObjectKind::Node,
                    id: node_id.clone(),
                })?;
                // Not a spec change: the version stays, so that writers
                // holding the node's version are not refused for it.
                node.certificate = Some(certificate);
                events.push(StoreEvent::Node(Change::Updated, node.clone()));
                Ok(())
            }
            Command::StartRootRotation {
                rotation,
                join_tokens,
                at_ms,
            } => self.start_root_rotation(rotation, join_tokens, at_ms, events),
            Command::CreateNetwork(network) => self.create_network(network, events),
            Command::RemoveNetwork { network_id } => self.remove_network(&network_id, events),
            Command::AttachTasks { attachments, at_ms } => {
                self.attach_tasks(attachments, at_ms, events)
            }
            Command::SetIngressSandboxes { assignments } => {
                self.set_ingress_sandboxes(assignments, events)
            }
            Command::SetServiceVips {
                service_id,
                virtual_ips,
            } => self.set_service_vips(&service_id, virtual_ips, events),
            Command::AutoscaleService {
                service_id,
                expected_version,
                replicas,
                event,
            } => self.autoscale_service(&service_id, expected_version, replicas, event, events),
            Command::SetNodeProvisioning { spec, at_ms } => {
                self.set_node_provisioning(spec, at_ms, events)
            }
            Command::StartProvisionerCall { call, at_ms } => {
                self.start_provisioner_call(call, at_ms, events)
            }
            Command::EndProvisionerCall {
                call_id,
                kind,
                event,
                reactivate,
            } => self.end_provisioner_call(&call_id, &kind, event, reactivate, events),
            Command::NodeSessionLost {
                node_id,
                message,
                session_started_at_ms,
                at_ms,
            } => {
                let current = self
                    .nodes
                    .get(&node_id)
                    .and_then(|n| n.status.as_ref())
                    .map(|st| st.session_started_at_ms);
                if current.is_some_and(|c| c != session_started_at_ms) {
                    return Ok(());
                }
                self.node_down(&node_id, message, at_ms, events)
            }
            Command::CreateSecret(secret) => self.create_secret(secret, events),
            Command::RemoveSecret { secret_id } => self.remove_secret(&secret_id, events),
            Command::CreateConfig(config) => self.create_config(config, events),
            Command::RemoveConfig { config_id } => self.remove_config(&config_id, events),
            Command::SetMountPolicy { policy, at_ms } => {
                let cluster = self.cluster.as_mut().ok_or(StoreError::NotFound {
                    kind: ObjectKind::Cluster,
                    id: String::new(),
                })?;
                cluster.spec.get_or_insert_with(Default::default).mounts = Some(policy);
                bump(&mut cluster.meta, at_ms);
                events.push(StoreEvent::ClusterUpdated(cluster.clone()));
                Ok(())
            }
            Command::RestoreState(state) => {
                if self.cluster.is_some() {
                    return Err(StoreError::Conflict(
                        "a restored state can only be loaded into an empty store".into(),
                    ));
                }
                *self = *state;
                events.push(StoreEvent::Reset);
                Ok(())
            }
        }
    }

    /// Whether `node_id` was removed with `node rm` (its certificate is refused).
    pub fn is_removed(&self, node_id: &str) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|c| c.removed_nodes.iter().any(|n| n == node_id))
    }

    /// The service named or identified by `name_or_id`.
    pub fn service_by_name(&self, name: &str) -> Option<&Service> {
        self.services
            .values()
            .find(|s| s.spec.as_ref().is_some_and(|spec| spec.name == name))
    }
}

#[cfg(test)]
mod tests;
