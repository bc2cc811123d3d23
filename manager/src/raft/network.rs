//! The client side of Raft RPCs: one lazily connected mutual-TLS channel per
//! peer manager, which presents the node's current certificate whenever it
//! (re)connects. Requests and replies are openraft's own types, bincode-encoded.

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shoal_proto::v1::raft_client::RaftClient;
use shoal_proto::v1::RaftMessage;
use shoal_security::SharedCredentials;
use tonic::transport::Channel;

use std::sync::Arc;

use super::types::TypeConfig;
use crate::peers::PeerHealth;

type RpcError<E = openraft::error::Infallible> = RPCError<u64, BasicNode, RaftError<u64, E>>;

/// Makes connections to peer managers with this manager's certificate.
pub struct Network {
    credentials: SharedCredentials,
    health: Arc<PeerHealth>,
}

impl Network {
    pub fn new(credentials: SharedCredentials, health: Arc<PeerHealth>) -> Self {
        Network {
            credentials,
            health,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerConnection {
        PeerConnection {
            target,
            addr: node.addr.clone(),
            credentials: self.credentials.clone(),
            client: None,
            health: self.health.clone(),
        }
    }
}

pub struct PeerConnection {
    target: u64,
    addr: String,
    credentials: SharedCredentials,
    client: Option<RaftClient<Channel>>,
    health: Arc<PeerHealth>,
}

impl PeerConnection {
    fn client<E: std::error::Error>(&mut self) -> Result<RaftClient<Channel>, RpcError<E>> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let channel = shoal_security::tls::channel(
            &self.addr,
            std::time::Duration::from_secs(1),
            &self.credentials,
        )
        .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let client = RaftClient::new(channel).max_decoding_message_size(usize::MAX);
        self.client = Some(client.clone());
        Ok(client)
    }
}

fn encode<T: Serialize, E: std::error::Error>(value: &T) -> Result<RaftMessage, RpcError<E>> {
    bincode::serialize(value)
        .map(|data| RaftMessage { data })
        .map_err(|e| RPCError::Network(NetworkError::new(&e)))
}

fn decode<T: DeserializeOwned, E>(
    reply: Result<tonic::Response<RaftMessage>, tonic::Status>,
    health: &PeerHealth,
    target: u64,
) -> Result<T, RpcError<E>>
where
    E: std::error::Error + DeserializeOwned,
{
    // Every failed call counts as "unreachable": openraft then backs off
    // before retrying instead of spinning on a peer that refuses us.
    let reply = reply.map_err(|status| RPCError::Unreachable(Unreachable::new(&status)))?;
    health.record_ok(target);
    let result: Result<T, RaftError<u64, E>> = bincode::deserialize(&reply.into_inner().data)
        .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
    result.map_err(|e| RPCError::RemoteError(openraft::error::RemoteError::new(0, e)))
}

fn with_ttl<T>(message: T, option: &RPCOption) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(option.hard_ttl());
    request
}

/// The most bytes of entries one AppendEntries carries (more when a single
/// entry is larger). openraft gives every AppendEntries one heartbeat
/// interval (50 ms) to complete, whatever it carries, and sends up to 300
/// entries in one: a follower that lagged by a few large entries (a
/// service of 320 tasks with 16 KB specs is 5 MB) was sent them all at
/// once, timed out, was sent the same again, and never caught up, while
/// the missing acknowledgements cost the leader its lease and the cluster
/// elected leaders in a loop. A bounded prefix is sent instead and
/// reported as a partial success, and openraft sends the rest next.
pub const MAX_APPEND_BYTES: u64 = 256 * 1024;

/// How many of the entries, of these encoded sizes, one AppendEntries
/// carries: the longest prefix within `budget` bytes, and at least one.
pub fn entries_within(sizes: &[u64], budget: u64) -> usize {
    let mut total = 0u64;
    let mut count = 0;
    for size in sizes {
        total = total.saturating_add(*size);
        if count > 0 && total > budget {
            break;
        }
        count += 1;
    }
    count
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcError> {
        let sizes: Vec<u64> = rpc
            .entries
            .iter()
            .map(|e| bincode::serialized_size(e).unwrap_or(u64::MAX))
            .collect();
        let sending = entries_within(&sizes, MAX_APPEND_BYTES);
        let cut = sending < rpc.entries.len();
        rpc.entries.truncate(sending);
        let last_sent = rpc.entries.last().map(|e| e.log_id);
        let mut client = self.client()?;
        let reply = client
            .append_entries(with_ttl(encode(&rpc)?, &option))
            .await;
        match decode(reply, &self.health, self.target)? {
            AppendEntriesResponse::Success if cut => {
                Ok(AppendEntriesResponse::PartialSuccess(last_sent))
            }
            other => Ok(other),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RpcError<InstallSnapshotError>> {
        let mut client = self.client()?;
        let reply = client
            .install_snapshot(with_ttl(encode(&rpc)?, &option))
            .await;
        decode(reply, &self.health, self.target)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RpcError> {
        let mut client = self.client()?;
        let reply = client.vote(with_ttl(encode(&rpc)?, &option)).await;
        decode(reply, &self.health, self.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_append_carries_the_prefix_within_its_budget_and_never_nothing() {
        assert_eq!(entries_within(&[], 100), 0);
        assert_eq!(entries_within(&[40, 40, 40], 100), 2);
        assert_eq!(entries_within(&[40, 60, 1], 100), 2);
        assert_eq!(entries_within(&[10, 20, 30], 100), 3);
        // One entry larger than the budget still goes, alone.
        assert_eq!(entries_within(&[500, 1], 100), 1);
    }
}
