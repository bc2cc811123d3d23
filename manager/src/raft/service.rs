//! The server side of Raft RPCs, open to manager certificates only.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use shoal_proto::v1::raft_server::Raft as RaftRpc;
use shoal_proto::v1::RaftMessage;
use shoal_security::Role;
use tonic::{Request, Response, Status};

use super::types::Raft;
use crate::auth;
use crate::store::SharedStore;

pub struct RaftService {
    raft: Raft,
    store: Arc<SharedStore>,
}

impl RaftService {
    pub fn new(raft: Raft, store: Arc<SharedStore>) -> Self {
        RaftService { raft, store }
    }

    fn decode<T: DeserializeOwned>(&self, request: Request<RaftMessage>) -> Result<T, Status> {
        auth::require_peer(&request, &self.store, &[Role::Manager])?;
        bincode::deserialize(&request.into_inner().data)
            .map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))
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
        let rpc = self.decode(request)?;
        encode(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.decode(request)?;
        encode(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.decode(request)?;
        encode(&self.raft.install_snapshot(rpc).await)
    }
}
