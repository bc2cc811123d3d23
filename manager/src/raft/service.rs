//! The server side of Raft RPCs and of managers joining and leaving the
//! group, open to manager certificates only.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use shoal_proto::v1::raft_server::Raft as RaftRpc;
use shoal_proto::v1::{
    JoinClusterRequest, JoinClusterResponse, LeaveClusterRequest, LeaveClusterResponse, NodeRole,
    RaftMessage,
};
use shoal_security::Role;
use tonic::{Request, Response, Status};

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};

use super::types::TypeConfig;
use crate::store::Command;
use crate::{auth, Manager};

pub struct RaftService {
    manager: Arc<Manager>,
}

impl RaftService {
    pub fn new(manager: Arc<Manager>) -> Self {
        RaftService { manager }
    }

    /// Decodes a Raft RPC from a manager whose certificate speaks for the
    /// Raft member the message claims to come from (`sender` reads that
    /// member's ID off the message): one manager cannot vote or lead in
    /// another's name.
    fn decode<T: DeserializeOwned>(
        &self,
        request: Request<RaftMessage>,
        sender: impl FnOnce(&T) -> Option<u64>,
    ) -> Result<T, Status> {
        let peer = auth::require_peer(&request, self.manager.store(), &[Role::Manager])?;
        let rpc: T = bincode::deserialize(&request.into_inner().data)
            .map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))?;
        let store = self.manager.store();
        // Before this manager has state, the Raft IDs its join response
        // named stand in for the store's.
        let registered = store
            .read(|s| {
                s.nodes
                    .get(&peer.node_id)
                    .and_then(|n| n.manager_status.as_ref())
                    .map(|m| m.raft_id)
            })
            .or_else(|| store.founding_manager(&peer.node_id));
        if let Some(problem) = sender_mismatch(&peer.node_id, registered, sender(&rpc)) {
            return Err(Status::permission_denied(problem));
        }
        Ok(rpc)
    }

    /// The caller's node, which must be a manager with this Raft ID.
    fn member_node<T>(&self, request: &Request<T>, raft_id: u64) -> Result<String, Status> {
        let peer = auth::require_peer(request, self.manager.store(), &[Role::Manager])?;
        let matches = self.manager.store().read(|s| {
            s.nodes.get(&peer.node_id).is_some_and(|n| {
                n.role() == NodeRole::Manager
                    && n.manager_status
                        .as_ref()
                        .is_some_and(|m| m.raft_id == raft_id)
            })
        });
        if !matches {
            return Err(Status::permission_denied(format!(
                "node {} is not registered as the manager with raft ID {raft_id}",
                peer.node_id
            )));
        }
        Ok(peer.node_id)
    }
}

/// Why a Raft message from `node_id` is refused, if it is: the store
/// registers that node as Raft member `registered` and the message claims
/// to come from `claimed` (pure). A node the store does not register (yet)
/// was already vetted by the certificate check.
fn sender_mismatch(node_id: &str, registered: Option<u64>, claimed: Option<u64>) -> Option<String> {
    match (registered, claimed) {
        (Some(registered), Some(claimed)) if registered != claimed => Some(format!(
            "node {node_id} is raft member {registered} but sent a message as raft member {claimed}"
        )),
        _ => None,
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Response<RaftMessage>, Status> {
    bincode::serialize(value)
        .map(|data| Response::new(RaftMessage { data }))
        .map_err(|e| Status::internal(format!("cannot encode raft reply: {e}")))
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.decode(request, |r: &AppendEntriesRequest<TypeConfig>| {
            r.vote.leader_id().voted_for()
        })?;
        // Heard from the leader: a follower counts it reachable (it sends no
        // RPCs of its own to count), so its quorum view stays truthful.
        self.manager.heard_from(rpc.vote.leader_id().node_id);
        encode(&self.manager.raft().append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.decode(request, |r: &VoteRequest<u64>| {
            r.vote.leader_id().voted_for()
        })?;
        // A candidate is alive: during an election it is what a follower hears.
        self.manager.heard_from(rpc.vote.leader_id().node_id);
        encode(&self.manager.raft().vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.decode(request, |r: &InstallSnapshotRequest<TypeConfig>| {
            r.vote.leader_id().voted_for()
        })?;
        encode(&self.manager.raft().install_snapshot(rpc).await)
    }

    async fn join_cluster(
        &self,
        request: Request<JoinClusterRequest>,
    ) -> Result<Response<JoinClusterResponse>, Status> {
        let node_id = self.member_node(&request, request.get_ref().raft_id)?;
        if !self.manager.is_leader() {
            return Err(self.manager.not_leader_status().await);
        }
        let JoinClusterRequest { raft_id, addr } = request.into_inner();
        tracing::info!(node = %node_id, raft_id, %addr, "adding a manager");
        if let Err(e) = self.manager.add_manager(raft_id, &addr).await {
            // Leave no half-made manager: the node and its certificate go.
            let _ = self
                .manager
                .propose(Command::RemoveNode {
                    node_id: node_id.clone(),
                })
                .await;
            return Err(e.into());
        }
        Ok(Response::new(JoinClusterResponse {
            managers: self.manager.manager_addrs(),
        }))
    }

    async fn leave_cluster(
        &self,
        request: Request<LeaveClusterRequest>,
    ) -> Result<Response<LeaveClusterResponse>, Status> {
        let node_id = self.member_node(&request, request.get_ref().raft_id)?;
        if !self.manager.is_leader() {
            return Err(self.manager.not_leader_status().await);
        }
        let LeaveClusterRequest { raft_id, force } = request.into_inner();
        self.manager.remove_manager(raft_id, force).await?;
        // The node stays listed (Down once its agent stops) until `node rm`.
        self.manager
            .propose(Command::SetNodeRole {
                node_id,
                role: NodeRole::Worker,
                manager_status: None,
                at_ms: crate::now_ms(),
            })
            .await?;
        Ok(Response::new(LeaveClusterResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::sender_mismatch;

    #[test]
    fn a_manager_may_speak_only_as_its_own_raft_member() {
        assert_eq!(sender_mismatch("n1", Some(7), Some(7)), None);
        let refused = sender_mismatch("n1", Some(7), Some(8)).unwrap();
        assert!(refused.contains("raft member 7 but sent a message as raft member 8"));
        // Not registered yet (a manager still catching up): the certificate decided.
        assert_eq!(sender_mismatch("n1", None, Some(8)), None);
    }
}
