//! Nodes, services, tasks and the swarm as Docker shows them (read only:
//! shoal → Docker).
//!
//! Versions: a service's `Version.Index` is shoal's *spec version* — the
//! number `UpdateService` checks — so `POST /services/{id}/update?version=N`
//! is optimistic exactly as Swarm's is. Nodes and the swarm show the store's
//! object version.

use std::collections::HashMap;

use bollard::models as d;
use serde::Serialize;
use shoal_proto::v1 as s;

use super::spec::{service_spec_to_docker, task_spec_to_docker};
use super::time::{ms_to_ns, timestamp};

fn meta_times(meta: &Option<s::Meta>) -> (Option<String>, Option<String>) {
    let meta = meta.unwrap_or_default();
    (
        Some(timestamp(meta.created_at_ms)),
        Some(timestamp(meta.updated_at_ms)),
    )
}

fn object_version(index: u64) -> Option<d::ObjectVersion> {
    Some(d::ObjectVersion { index: Some(index) })
}

pub fn node_to_docker(n: &s::Node) -> d::Node {
    let (created_at, updated_at) = meta_times(&n.meta);
    let spec = n.spec.clone().unwrap_or_default();
    let description = n.description.clone().unwrap_or_default();
    let status = n.status.clone().unwrap_or_default();
    d::Node {
        id: Some(n.id.clone()),
        version: object_version(n.meta.as_ref().map_or(0, |m| m.version)),
        created_at,
        updated_at,
        spec: Some(d::NodeSpec {
            name: None,
            labels: Some(spec.labels.clone()),
            role: Some(match spec.desired_role() {
                s::NodeRole::Manager => d::NodeSpecRoleEnum::MANAGER,
                s::NodeRole::Worker => d::NodeSpecRoleEnum::WORKER,
            }),
            availability: Some(match spec.availability() {
                s::NodeAvailability::Active => d::NodeSpecAvailabilityEnum::ACTIVE,
                s::NodeAvailability::Pause => d::NodeSpecAvailabilityEnum::PAUSE,
                s::NodeAvailability::Drain => d::NodeSpecAvailabilityEnum::DRAIN,
            }),
        }),
        description: Some(d::NodeDescription {
            hostname: Some(description.hostname.clone()),
            platform: description.platform.as_ref().map(|p| d::Platform {
                architecture: Some(p.architecture.clone()),
                os: Some(p.os.clone()),
            }),
            resources: description.resources.as_ref().map(|r| d::ResourceObject {
                nano_cpus: Some(r.nano_cpus),
                memory_bytes: Some(r.memory_bytes),
                generic_resources: None,
            }),
            engine: Some(d::EngineDescription {
                engine_version: Some(description.engine_version.clone()),
                labels: Some(HashMap::new()),
                plugins: None,
            }),
            tls_info: None,
        }),
        status: Some(d::NodeStatus {
            state: Some(match status.state() {
                s::NodeState::Unknown => d::NodeState::UNKNOWN,
                s::NodeState::Down => d::NodeState::DOWN,
                s::NodeState::Ready => d::NodeState::READY,
                s::NodeState::Disconnected => d::NodeState::DISCONNECTED,
            }),
            message: Some(status.message.clone()),
            addr: Some(status.addr.clone()),
        }),
        manager_status: n.manager_status.as_ref().map(|m| d::ManagerStatus {
            leader: Some(m.leader),
            reachability: Some(match m.reachability() {
                s::Reachability::Unknown => d::Reachability::UNKNOWN,
                s::Reachability::Unreachable => d::Reachability::UNREACHABLE,
                s::Reachability::Reachable => d::Reachability::REACHABLE,
            }),
            addr: Some(m.addr.clone()),
        }),
    }
}

/// A service as Docker's API returns it; bollard's model lacks
/// `PreviousSpec`, which `docker service inspect` shows.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceView {
    #[serde(flatten)]
    pub service: d::Service,
    #[serde(rename = "PreviousSpec", skip_serializing_if = "Option::is_none")]
    pub previous_spec: Option<d::ServiceSpec>,
}

/// `counts` (running, desired) fills `ServiceStatus`, which
/// `GET /services?status=true` adds for `service ls`'s REPLICAS.
pub fn service_to_docker(service: &s::Service, counts: Option<(u64, u64)>) -> ServiceView {
    let (created_at, updated_at) = meta_times(&service.meta);
    use d::ServiceUpdateStatusStateEnum as U;
    let update_status = service.update_status.as_ref().and_then(|u| {
        let state = match u.state() {
            s::UpdateState::Unknown => return None,
            s::UpdateState::Updating => U::UPDATING,
            s::UpdateState::Paused => U::PAUSED,
            s::UpdateState::Completed => U::COMPLETED,
            s::UpdateState::RollbackStarted => U::ROLLBACK_STARTED,
            s::UpdateState::RollbackPaused => U::ROLLBACK_PAUSED,
            s::UpdateState::RollbackCompleted => U::ROLLBACK_COMPLETED,
        };
        Some(d::ServiceUpdateStatus {
            state: Some(state),
            started_at: (u.started_at_ms > 0).then(|| timestamp(u.started_at_ms)),
            completed_at: (u.completed_at_ms > 0).then(|| timestamp(u.completed_at_ms)),
            message: Some(u.message.clone()),
        })
    });
    ServiceView {
        service: d::Service {
            id: Some(service.id.clone()),
            version: object_version(service.spec_version),
            created_at,
            updated_at,
            spec: service.spec.as_ref().map(service_spec_to_docker),
            endpoint: Some(super::attachments::endpoint_to_docker(
                service.spec.as_ref().and_then(|s| s.endpoint.as_ref()),
                service.endpoint.as_ref(),
            )),
            update_status,
            service_status: counts.map(|(running, desired)| d::ServiceServiceStatus {
                running_tasks: Some(running),
                desired_tasks: Some(desired),
                completed_tasks: Some(0),
            }),
            job_status: None,
        },
        previous_spec: service.previous_spec.as_ref().map(service_spec_to_docker),
    }
}

pub fn task_state(state: s::TaskState) -> d::TaskState {
    use s::TaskState as T;
    match state {
        T::New => d::TaskState::NEW,
        T::Pending => d::TaskState::PENDING,
        T::Assigned => d::TaskState::ASSIGNED,
        T::Accepted => d::TaskState::ACCEPTED,
        T::Preparing => d::TaskState::PREPARING,
        T::Starting => d::TaskState::STARTING,
        T::Running => d::TaskState::RUNNING,
        T::Complete => d::TaskState::COMPLETE,
        T::Shutdown => d::TaskState::SHUTDOWN,
        T::Failed => d::TaskState::FAILED,
        T::Rejected => d::TaskState::REJECTED,
        T::Orphaned => d::TaskState::ORPHANED,
    }
}

/// The name Docker's API would accept for a desired-state filter value.
pub fn task_state_name(state: s::TaskState) -> String {
    serde_json::to_value(task_state(state))
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub fn task_to_docker(t: &s::Task) -> d::Task {
    let (created_at, updated_at) = meta_times(&t.meta);
    let status = t.status.clone().unwrap_or_default();
    d::Task {
        id: Some(t.id.clone()),
        version: object_version(t.meta.as_ref().map_or(0, |m| m.version)),
        created_at,
        updated_at,
        name: None,
        labels: Some(HashMap::new()),
        spec: t.spec.as_ref().map(task_spec_to_docker),
        service_id: Some(t.service_id.clone()),
        slot: (t.slot != 0).then_some(t.slot as i64),
        node_id: (!t.node_id.is_empty()).then(|| t.node_id.clone()),
        assigned_generic_resources: None,
        status: Some(d::TaskStatus {
            timestamp: Some(timestamp(status.timestamp_ms)),
            state: Some(task_state(status.state())),
            message: Some(status.message.clone()),
            err: (!status.err.is_empty()).then(|| status.err.clone()),
            container_status: Some(d::ContainerStatus {
                container_id: None,
                pid: None,
                exit_code: Some(status.exit_code as i64),
            }),
            port_status: None,
        }),
        desired_state: Some(task_state(t.desired_state())),
        job_iteration: None,
    }
}

pub fn swarm_spec_to_docker(c: &s::Cluster) -> d::SwarmSpec {
    let spec = c.spec.clone().unwrap_or_default();
    d::SwarmSpec {
        name: Some(if spec.name.is_empty() {
            "default".to_string()
        } else {
            spec.name.clone()
        }),
        labels: Some(HashMap::new()),
        orchestration: Some(d::SwarmSpecOrchestration {
            task_history_retention_limit: spec
                .orchestration
                .as_ref()
                .map(|o| o.task_history_limit as i64),
        }),
        raft: spec.raft.as_ref().map(|r| d::SwarmSpecRaft {
            snapshot_interval: Some(r.snapshot_interval),
            ..Default::default()
        }),
        dispatcher: Some(d::SwarmSpecDispatcher {
            heartbeat_period: spec
                .dispatcher
                .as_ref()
                .map(|d| ms_to_ns(d.heartbeat_period_ms)),
        }),
        ca_config: Some(d::SwarmSpecCaConfig {
            node_cert_expiry: Some(
                (spec.node_cert_expiry_secs as i64).saturating_mul(1_000_000_000),
            ),
            ..Default::default()
        }),
        encryption_config: None,
        task_defaults: None,
    }
}

/// `GET /swarm`: the cluster with its join tokens (managers only).
pub fn swarm_to_docker(c: &s::Cluster) -> d::Swarm {
    let (created_at, updated_at) = meta_times(&c.meta);
    let tokens = c.join_tokens.clone().unwrap_or_default();
    d::Swarm {
        id: Some(c.id.clone()),
        version: object_version(c.meta.as_ref().map_or(0, |m| m.version)),
        created_at,
        updated_at,
        spec: Some(swarm_spec_to_docker(c)),
        tls_info: Some(d::TlsInfo {
            trust_root: c.root_ca.as_ref().map(|ca| ca.cert_pem.clone()),
            ..Default::default()
        }),
        root_rotation_in_progress: Some(false),
        data_path_port: None,
        default_addr_pool: None,
        subnet_size: None,
        join_tokens: Some(d::JoinTokens {
            worker: Some(tokens.worker),
            manager: Some(tokens.manager),
        }),
    }
}

/// The `ClusterInfo` in `/info`'s Swarm section: the swarm without tokens.
pub fn cluster_info(c: &s::Cluster) -> d::ClusterInfo {
    let swarm = swarm_to_docker(c);
    d::ClusterInfo {
        id: swarm.id,
        version: swarm.version,
        created_at: swarm.created_at,
        updated_at: swarm.updated_at,
        spec: swarm.spec,
        tls_info: swarm.tls_info,
        root_rotation_in_progress: swarm.root_rotation_in_progress,
        data_path_port: None,
        default_addr_pool: None,
        subnet_size: None,
    }
}

/// A network as Docker's API shows it: an overlay of swarm scope, its
/// allocated subnet as the IPAM config.
pub fn network_to_docker(n: &s::Network) -> d::Network {
    let spec = n.spec.clone().unwrap_or_default();
    let ipam = n.ipam.clone().or(spec.ipam.clone()).unwrap_or_default();
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    d::Network {
        name: Some(spec.name.clone()),
        id: Some(n.id.clone()),
        created: Some(timestamp(n.meta.as_ref().map_or(0, |m| m.created_at_ms))),
        scope: Some("swarm".into()),
        driver: Some(if spec.driver.is_empty() {
            "overlay".into()
        } else {
            spec.driver.clone()
        }),
        enable_ipv4: Some(true),
        enable_ipv6: Some(false),
        ipam: Some(d::Ipam {
            driver: Some("default".into()),
            config: Some(vec![d::IpamConfig {
                subnet: nonempty(&ipam.subnet),
                ip_range: nonempty(&ipam.ip_range),
                gateway: nonempty(&ipam.gateway),
                auxiliary_addresses: None,
            }]),
            options: None,
        }),
        internal: Some(spec.internal),
        attachable: Some(spec.attachable),
        ingress: Some(false),
        options: Some(spec.driver_opts.clone()),
        labels: Some(spec.labels.clone()),
        ..Default::default()
    }
}
