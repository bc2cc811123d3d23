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

use crate::store::Command;
use crate::{auth, Manager};

pub struct RaftService {
    manager: Arc<Manager>,
}

impl RaftService {
    pub fn new(manager: Arc<Manager>) -> Self {
        RaftService { manager }
    }

    fn decode<T: DeserializeOwned>(&self, request: Request<RaftMessage>) -> Result<T, Status> {
        auth::require_peer(&request, self.manager.store(), &[Role::Manager])?;
        bincode::deserialize(&request.into_inner().data)
            .map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))
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
        let rpc: openraft::raft::AppendEntriesRequest<crate::raft::types::TypeConfig> =
            self.decode(request)?;
        // Heard from the leader: a follower counts it reachable (it sends no
        // RPCs of its own to count), so its quorum view stays truthful.
        self.manager.heard_from(rpc.vote.leader_id().node_id);
        encode(&self.manager.raft().append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: openraft::raft::VoteRequest<u64> = self.decode(request)?;
        // A candidate is alive: during an election it is what a follower hears.
        self.manager.heard_from(rpc.vote.leader_id().node_id);
        encode(&self.manager.raft().vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.decode(request)?;
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
