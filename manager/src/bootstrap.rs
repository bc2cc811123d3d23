//! A new cluster's first objects (`swarm init`), pure: the cluster object
//! with the manager's defaults and the first manager's node, from the
//! operator's parameters, the time and what was drawn at random (IDs, root
//! CA, tokens). [`new_node`] is also how the CA service records a node that
//! joins.

use shoal_proto::v1::{
    Cluster, ClusterSpec, DispatcherConfig, EncryptionConfig, JoinTokens, ManagerStatus, Meta,
    Node, NodeAvailability, NodeDescription, NodeProvisioning, NodeRole, NodeSpec, NodeState,
    NodeStatus, OrchestrationConfig, RaftConfig, RootCa,
};

use crate::ca_service::{certificate_record, host_of, DEFAULT_NODE_CERT_EXPIRY};
use crate::dispatcher::DEFAULT_HEARTBEAT_PERIOD;
use crate::orchestrator::DEFAULT_TASK_HISTORY;

/// What the operator chose at `swarm init` (already validated).
#[derive(Debug, Clone, Default)]
pub struct ClusterParams {
    /// This node's hostname.
    pub hostname: String,
    /// The manager's advertised `IP:PORT`.
    pub advertise_addr: String,
    /// 0: the dispatcher's default.
    pub dispatcher_heartbeat_ms: u64,
    pub raft: RaftConfig,
    /// The unlock key (`--autolock`), as `swarm unlock` takes it.
    pub unlock_key: Option<String>,
    pub node_provisioning: Option<NodeProvisioning>,
    pub default_address_pool: Vec<String>,
    pub subnet_size: u32,
}

/// What `swarm init` drew at random: IDs, the root CA and what it signed.
#[derive(Debug, Clone, Default)]
pub struct ClusterIds {
    pub cluster_id: String,
    pub node_id: String,
    pub raft_id: u64,
    pub root_ca: RootCa,
    pub worker_token: String,
    pub manager_token: String,
    /// The first manager's certificate, signed by `root_ca`.
    pub node_cert_pem: String,
}

/// The cluster object and the first manager's node.
pub fn new_cluster(params: &ClusterParams, now: i64, ids: &ClusterIds) -> (Cluster, Node) {
    let heartbeat_period_ms = if params.dispatcher_heartbeat_ms > 0 {
        params.dispatcher_heartbeat_ms
    } else {
        DEFAULT_HEARTBEAT_PERIOD.as_millis() as u64
    };
    let cluster = Cluster {
        id: ids.cluster_id.clone(),
        meta: Some(new_meta(now)),
        spec: Some(ClusterSpec {
            name: "default".into(),
            dispatcher: Some(DispatcherConfig {
                heartbeat_period_ms,
            }),
            orchestration: Some(OrchestrationConfig {
                task_history_limit: DEFAULT_TASK_HISTORY as u64,
            }),
            node_cert_expiry_secs: DEFAULT_NODE_CERT_EXPIRY.as_secs(),
            raft: Some(params.raft),
            encryption: Some(EncryptionConfig {
                auto_lock_managers: params.unlock_key.is_some(),
            }),
            node_provisioning: params.node_provisioning.clone(),
            // Bind mounts from anywhere, as Docker, until restricted.
            mounts: None,
        }),
        root_ca: Some(ids.root_ca.clone()),
        join_tokens: Some(JoinTokens {
            worker: ids.worker_token.clone(),
            manager: ids.manager_token.clone(),
        }),
        removed_nodes: Vec::new(),
        unlock_key: params.unlock_key.clone().unwrap_or_default(),
        root_rotation: None,
        default_address_pool: params.default_address_pool.clone(),
        subnet_size: params.subnet_size,
        provisioning_status: None,
    };
    let node = new_node(
        NewNode {
            node_id: &ids.node_id,
            hostname: &params.hostname,
            role: NodeRole::Manager,
            advertise_addr: &params.advertise_addr,
            raft_id: ids.raft_id,
            cert_pem: &ids.node_cert_pem,
            root_digest: &ids.root_ca.digest,
            message: "",
        },
        now,
    );
    (cluster, node)
}

/// A node as the cluster first records it.
pub struct NewNode<'a> {
    pub node_id: &'a str,
    pub hostname: &'a str,
    pub role: NodeRole,
    /// `IP:PORT` (a manager's Raft address) or what the node announced.
    pub advertise_addr: &'a str,
    /// Managers only.
    pub raft_id: u64,
    pub cert_pem: &'a str,
    pub root_digest: &'a str,
    /// The status message until its first session.
    pub message: &'a str,
}

/// The node object for a node that was just given its certificate.
pub fn new_node(node: NewNode<'_>, now: i64) -> Node {
    Node {
        id: node.node_id.to_string(),
        meta: Some(new_meta(now)),
        spec: Some(NodeSpec {
            desired_role: node.role as i32,
            availability: NodeAvailability::Active as i32,
            labels: Default::default(),
        }),
        role: node.role as i32,
        description: Some(NodeDescription {
            hostname: node.hostname.to_string(),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            state: NodeState::Unknown as i32,
            message: node.message.to_string(),
            addr: host_of(node.advertise_addr),
            ..Default::default()
        }),
        manager_status: (node.role == NodeRole::Manager).then(|| ManagerStatus {
            raft_id: node.raft_id,
            addr: node.advertise_addr.to_string(),
            ..Default::default()
        }),
        certificate: certificate_record(node.cert_pem, node.root_digest),
        // The leader's allocator gives it one once it reports overlay support.
        ingress_sandbox_addr: String::new(),
    }
}

fn new_meta(now: i64) -> Meta {
    Meta {
        version: 1,
        created_at_ms: now,
        updated_at_ms: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_cluster_takes_the_managers_defaults_and_names_its_first_manager() {
        let params = ClusterParams {
            hostname: "m1".into(),
            advertise_addr: "127.0.0.1:2377".into(),
            ..Default::default()
        };
        let ids = ClusterIds {
            cluster_id: "c".into(),
            node_id: "n".into(),
            raft_id: 9,
            ..Default::default()
        };
        let (cluster, node) = new_cluster(&params, 1_000, &ids);
        let spec = cluster.spec.unwrap();
        assert_eq!(
            spec.orchestration.unwrap().task_history_limit,
            DEFAULT_TASK_HISTORY as u64
        );
        assert_eq!(
            spec.dispatcher.unwrap().heartbeat_period_ms,
            DEFAULT_HEARTBEAT_PERIOD.as_millis() as u64
        );
        assert!(!spec.encryption.unwrap().auto_lock_managers);
        assert_eq!(cluster.meta.unwrap().created_at_ms, 1_000);
        assert_eq!(node.role(), NodeRole::Manager);
        assert_eq!(node.status.unwrap().addr, "127.0.0.1");
        let manager = node.manager_status.unwrap();
        assert_eq!(
            (manager.raft_id, manager.addr.as_str()),
            (9, "127.0.0.1:2377")
        );
    }
}
