//! The control API: what `shoal node …` and `shoal swarm join-token` call.
//!
//! Served on the daemon's unix socket and, over TCP, to manager certificates
//! only. Reads come from this manager's applied store; writes go through Raft.
//! Requests that name a node accept, as docker does, an ID, a unique ID
//! prefix or a hostname.

use std::sync::Arc;

use shoal_proto::v1::control_server::Control;
use shoal_proto::v1::{
    Cluster, GetClusterRequest, GetNodeRequest, ListNodesRequest, ListNodesResponse, Node,
    NodeRole, NodeState, Reachability, RemoveNodeRequest, RemoveNodeResponse,
    RotateJoinTokenRequest,
};
use shoal_security::{JoinToken, Role};
use tonic::{Request, Response, Status};

use crate::store::{ClusterState, Command};
use crate::{auth, Manager};

pub struct ControlService {
    manager: Arc<Manager>,
    /// Over TCP the caller must hold a manager certificate; on the local
    /// socket file permissions are the check.
    require_certificate: bool,
}

impl ControlService {
    pub fn new(manager: Arc<Manager>, require_certificate: bool) -> Self {
        ControlService {
            manager,
            require_certificate,
        }
    }

    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        if self.require_certificate {
            auth::require_peer(request, self.manager.store(), &[Role::Manager])?;
        }
        Ok(())
    }

    /// Fills in leader and reachability, which the store does not keep.
    fn with_manager_status(&self, mut node: Node) -> Node {
        if let Some(status) = node.manager_status.as_mut() {
            let metrics = self.manager.raft().metrics().borrow().clone();
            status.leader = metrics.current_leader == Some(status.raft_id);
            let reachable = status.leader
                || metrics
                    .replication
                    .as_ref()
                    .is_some_and(|r| r.get(&status.raft_id).is_some_and(|m| m.is_some()));
            status.reachability = if reachable {
                Reachability::Reachable
            } else {
                Reachability::Unreachable
            } as i32;
        }
        node
    }
}

/// Finds a node by ID, hostname or unique ID prefix.
pub fn resolve_node<'a>(state: &'a ClusterState, reference: &str) -> Result<&'a Node, Status> {
    if reference.is_empty() {
        return Err(Status::invalid_argument(
            "a node ID or hostname is required",
        ));
    }
    if let Some(node) = state.nodes.get(reference) {
        return Ok(node);
    }
    let hostname = |n: &&Node| {
        n.description
            .as_ref()
            .is_some_and(|d| d.hostname == reference)
    };
    let prefix = |n: &&Node| n.id.starts_with(reference);
    for matcher in [&hostname as &dyn Fn(&&Node) -> bool, &prefix] {
        let found: Vec<&Node> = state.nodes.values().filter(matcher).collect();
        match found.len() {
            0 => continue,
            1 => return Ok(found[0]),
            n => {
                return Err(Status::failed_precondition(format!(
                    "node {reference} is ambiguous ({n} matches): use the full node ID"
                )))
            }
        }
    }
    Err(Status::not_found(format!("No such node: {reference}")))
}

#[tonic::async_trait]
impl Control for ControlService {
    async fn list_nodes(
        &self,
        request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        self.authorize(&request)?;
        let nodes = self
            .manager
            .store()
            .read(|s| s.nodes.values().cloned().collect::<Vec<_>>());
        let nodes = nodes
            .into_iter()
            .map(|n| self.with_manager_status(n))
            .collect();
        Ok(Response::new(ListNodesResponse { nodes }))
    }

    async fn get_node(&self, request: Request<GetNodeRequest>) -> Result<Response<Node>, Status> {
        self.authorize(&request)?;
        let reference = request.into_inner().node;
        let node = self
            .manager
            .store()
            .read(|s| resolve_node(s, &reference).cloned())?;
        Ok(Response::new(self.with_manager_status(node)))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeResponse>, Status> {
        self.authorize(&request)?;
        let RemoveNodeRequest { node, force } = request.into_inner();
        let node = self
            .manager
            .store()
            .read(|s| resolve_node(s, &node).cloned())?;
        if node.role() == NodeRole::Manager {
            return Err(Status::failed_precondition(format!(
                "node {} is a swarm manager and a member of the Raft group: \
                 demote it to a worker (`shoal node demote`) before removing it",
                node.id
            )));
        }
        let state = node.status.as_ref().map(|s| s.state()).unwrap_or_default();
        if state != NodeState::Down && !force {
            return Err(Status::failed_precondition(format!(
                "node {} is not down and can't be removed: stop it or run `shoal swarm leave` on it first, \
                 or use --force",
                node.id
            )));
        }
        self.manager
            .propose(Command::RemoveNode {
                node_id: node.id.clone(),
            })
            .await?;
        self.manager.dispatcher().end_session(&node.id);
        Ok(Response::new(RemoveNodeResponse { node_id: node.id }))
    }

    async fn get_cluster(
        &self,
        request: Request<GetClusterRequest>,
    ) -> Result<Response<Cluster>, Status> {
        self.authorize(&request)?;
        let cluster = self
            .manager
            .store()
            .read(|s| s.cluster.clone())
            .ok_or_else(|| Status::unavailable("the swarm is still being initialized"))?;
        Ok(Response::new(redact(cluster)))
    }

    async fn rotate_join_token(
        &self,
        request: Request<RotateJoinTokenRequest>,
    ) -> Result<Response<Cluster>, Status> {
        self.authorize(&request)?;
        let role = request.into_inner().role();
        let digest = self
            .manager
            .store()
            .read(|s| {
                s.cluster
                    .as_ref()
                    .and_then(|c| c.root_ca.as_ref())
                    .map(|ca| ca.digest.clone())
            })
            .ok_or_else(|| Status::unavailable("the swarm is still being initialized"))?;
        self.manager
            .propose(Command::SetJoinToken {
                role,
                token: JoinToken::generate(&digest).to_string(),
                at_ms: crate::now_ms(),
            })
            .await?;
        let cluster = self
            .manager
            .store()
            .read(|s| s.cluster.clone())
            .unwrap_or_default();
        Ok(Response::new(redact(cluster)))
    }
}

/// The cluster object without the CA's private key.
fn redact(mut cluster: Cluster) -> Cluster {
    if let Some(ca) = cluster.root_ca.as_mut() {
        ca.key_pem.clear();
    }
    cluster
}
