//! The control API: what `shoal node …`, `shoal service …`, `shoal swarm …`
//! (inspect, update, join-token, ca), `network`, `secret`, `config` and
//! `volume` call.
//!
//! Served on the daemon's unix socket and, over TCP, to manager certificates
//! only. Every call takes one path ([`routing`]): served here when this
//! manager leads (reads confirm the leadership first) or a local read was
//! asked for, else forwarded to the leader. Writes go through
//! [`Manager::propose`]. Requests that name an object accept, as docker
//! does, an ID, a unique ID prefix or a name (a hostname for nodes).
//!
//! # Layout
//! - [`routing`]: serve here or forward to the leader, retries, lookups.
//! - [`policy`]: whether a node may be removed or change role (pure).
//! - [`nodes`], [`services`], [`cluster`], [`networks`], [`secrets`] (and
//!   configs), [`volumes`]: the handlers, run where [`routing`] decides.
//! - [`grants`]: what secret and config objects and a spec's grants must
//!   be (pure checks over the store).

use std::sync::Arc;

use shoal_proto::v1::{self, control_server::Control, Node, Reachability};
use shoal_security::Role;
use tonic::{Request, Response, Status};

use crate::{auth, Manager};

mod cluster;
mod grants;
mod networks;
mod nodes;
pub mod policy;
mod routing;
mod secrets;
mod services;
mod volumes;
pub use grants::{config_path, resolve_config, resolve_secret, secret_path};
pub use networks::resolve_network;
pub use nodes::resolve_node;
use routing::{created_network, created_service, updated_service, Call, Served, READ};
pub use routing::{is_committed_update, FORWARDED, LEADER_HINT};
pub use services::resolve_service;

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
            status.leader = status.raft_id != 0 && metrics.current_leader == Some(status.raft_id);
            let member = metrics
                .membership_config
                .membership()
                .voter_ids()
                .any(|id| id == status.raft_id);
            let reachable = member && self.manager.is_reachable(status.raft_id);
            status.reachability = if reachable {
                Reachability::Reachable
            } else {
                Reachability::Unreachable
            } as i32;
        }
        node
    }
}

/// Each call: authorize, then serve here or forward ([`ControlService::serve`]).
#[tonic::async_trait]
impl Control for ControlService {
    async fn update_cluster(
        &self,
        request: Request<v1::UpdateClusterRequest>,
    ) -> Result<Response<v1::Cluster>, Status> {
        let call: Call<_, _> =
            |mut leader, r| Box::pin(async move { leader.update_cluster(r).await });
        self.serve(request, Served::Write, call, None, |r| {
            self.update_cluster_here(r)
        })
        .await
    }

    async fn list_nodes(
        &self,
        request: Request<v1::ListNodesRequest>,
    ) -> Result<Response<v1::ListNodesResponse>, Status> {
        let call: Call<_, _> = |mut leader, r| Box::pin(async move { leader.list_nodes(r).await });
        self.serve(request, READ, call, None, |r| self.list_nodes_here(r))
            .await
    }

    async fn get_node(
        &self,
        request: Request<v1::GetNodeRequest>,
    ) -> Result<Response<v1::Node>, Status> {
        let call: Call<_, _> = |mut leader, r| Box::pin(async move { leader.get_node(r).await });
        self.serve(request, READ, call, None, |r| self.get_node_here(r))
            .await
    }

    async fn remove_node(
        &self,
        request: Request<v1::RemoveNodeRequest>,
    ) -> Result<Response<v1::RemoveNodeResponse>, Status> {
        let call: Call<_, _> = |mut leader, r| Box::pin(async move { leader.remove_node(r).await });
        self.serve(request, Served::Write, call, None, |r| {
            self.remove_node_here(r)
        })
        .await
    }

    async fn update_node(
        &self,
        request: Request<v1::UpdateNodeRequest>,
    ) -> Result<Response<v1::Node>, Status> {
        let call: Call<_, _> = |mut leader, r| Box::pin(async move { leader.update_node(r).await });
        self.serve(request, Served::Write, call, None, |r| {
            self.update_node_here(r)
        })
        .await
    }

    async fn get_cluster(
        &self,
        request: Request<v1::GetClusterRequest>,
    ) -> Result<Response<v1::Cluster>, Status> {
        let call: Call<_, _> = |mut leader, r| Box::pin(async move { leader.get_cluster(r).await });
        self.serve(request, READ, call, None, |r| self.get_cluster_here(r))
            .await
    }

    async fn rotate_join_token(
        &self,
        request: Request<v1::RotateJoinTokenRequest>,
    ) -> Result<Response<v1::Cluster>, Status> {
        let call: Call<_, _> =
            |mut leader, r| Box::pin(async move { leader.rotate_join_token(r).await });
        self.serve(request, Served::Write, call, None, |r| {
            self.rotate_join_token_here(r)
        })
        .await
    }

    async fn create_service(
        &self,
        request: Request<v1::CreateServiceRequest>,
    ) -> Result<Response<v1::Service>, Status> {
        let call: Call<_, _> =
            |mut leader, r| Box::pin(async move { leader.create_service(r).await });
        self.serve(request, Served::Write, call, Some(created_service), |r| {
            self.create_service_here(r)
        })
        .await
    }

    async fn list_services(
        &self,
        request: Request<v1::ListServicesRequest>,
    ) -> Result<Response<v1::ListServicesResponse>, Status> {
        let served = Served::Read {
            local: request.get_ref().local,
        };
        let call: Call<_, _> =
            |mut leader, r| Box::pin(async move { leader.list_services(r).await });
        self.serve(request, served, call, None, |r| self.list_services_here(r))
            .await
    }

    async fn get_service(
        &self,
        request: Request<v1::GetServiceRequest>,
    ) -> Result<Response<v1::ServiceInfo>, Status> {
        let call: Call<_, _> = |mut leader, r| Box::pin(async move { leader.get_service(r).await });
        self.serve(request, READ, call, None, |r| self.get_service_here(r))
            .await
    }

    async fn update_service(
        &self,
        request: Request<v1::UpdateServiceRequest>,
    ) -> Result<Response<v1::Service>, Status> {
        let call: Call<_, _> =
            |mut leader, r| Box::pin(async move { leader.update_service(r).await });
        self.serve(request, Served::Write, call, Some(updated_service), |r| {
            self.update_service_here(r)
        })
        .await
    }

    async fn remove_service(
        &self,
        request: Request<v1::RemoveServiceRequest>,
    ) -> Result<Response<v1::RemoveServiceResponse>, Status> {
        let call: Call<_, _> =
            |mut leader, r| Box::pin(async move { leader.remove_service(r).await });
        self.serve(request, Served::Write, call, None, |r| {
            self.remove_service_here(r)
        })
        .await
    }

    async fn list_tasks(
        &self,
        request: Request<v1::ListTasksRequest>,
    ) -> Result<Response<v1::ListTasksResponse>, Status> {
        let call: Call<_, _> = |mut leader, r| Box::pin(async move { leader.list_tasks(r).await });
        self.serve(request, READ, call, None, |r| self.list_tasks_here(r))
            .await
    }

    async fn create_network(
        &self,
        request: Request<v1::CreateNetworkRequest>,
    ) -> Result<Response<v1::Network>, Status> {
        let call: Call<_, _> =
            |mut leader, r| Box::pin(async move { leader.create_network(r).await });
        self.serve(request, Served::Write, call, Some(created_network), |r| {
            self.create_network_here(r)
        })
        .await
    }

    async fn list_networks(
        &self,
        request: Request<v1::ListNetworksRequest>,
    ) -> Result<Response<v1::ListNetworksResponse>, Status> {
        let call: Call<_, _> =
            |mut leader, r| Box::pin(async move { leader.list_networks(r).await });
        self.serve(request, READ, call, None, |r| self.list_networks_here(r))
            .await
    }

    async fn get_network(
        &self,
        request: Request<v1::GetNetworkRequest>,
    ) -> Result<Response<v1::NetworkInfo>, Status> {
        let call: Call<_, _> = |mut leader, r| Box::pin(async move { leader.get_network(r).await });
        self.serve(request, READ, call, None, |r| self.get_network_here(r))
            .await
    }

    async fn remove_network(
        &self,
        request: Request<v1::RemoveNetworkRequest>,
    ) -> Result<Response<v1::RemoveNetworkResponse>, Status> {
        let call: Call<_, _> =
            |mut leader, r| Box::pin(async move { leader.remove_network(r).await });
        self.serve(request, Served::Write, call, None, |r| {
            self.remove_network_here(r)
        })
        .await
    }

    async fn create_secret(
        &self,
        request: Request<v1::CreateSecretRequest>,
    ) -> Result<Response<v1::Secret>, Status> {
        let call: Call<_, _> =
            |mut leader, r| Box::pin(async move { leader.create_secret(r).await });
        self.serve(request, Served::Write, call, None, |r| {
            self.create_secret_here(r)
        })
        .await
    }

    async fn list_secrets(
        &self,
        request: Request<v1::ListSecretsRequest>,
    ) -> Result<Response<v1::ListSecretsResponse>, Status> {
        let call: Call<_, _> =
            |mut leader, r| Box::pin(async move { leader.list_secrets(r).await });
        self.serve(request, READ, call, None, |r| self.list_secrets_here(r))
            .await
    }

    async fn get_secret(
        &self,
        request: Request<v1::GetSecretRequest>,
    ) -> Result<Response<v1::Secret>, Status> {
        let call: Call<_, _> = |mut leader, r| Box::pin(async move { leader.get_secret(r).await });
        self.serve(request, READ, call, None, |r| self.get_secret_here(r))
            .await
    }

    async fn remove_secret(
        &self,
        request: Request<v1::RemoveSecretRequest>,
    ) -> Result<Response<v1::RemoveSecretResponse>, Status> {
        let call: Call<_, _> =
            |mut leader, r| Box::pin(async move { leader.remove_secret(r).await });
        self.serve(request, Served::Write, call, None, |r| {
            self.remove_secret_here(r)
        })
        .await
    }

    async fn create_config(
        &self,
        request: Request<v1::CreateConfigRequest>,
    ) -> Result<Response<v1::Config>, Status> {
        let call: Call<_, _> =
            |mut leader, r| Box::pin(async move { leader.create_config(r).await });
        self.serve(request, Served::Write, call, None, |r| {
            self.create_config_here(r)
        })
        .await
    }

    async fn list_configs(
        &self,
        request: Request<v1::ListConfigsRequest>,
    ) -> Result<Response<v1::ListConfigsResponse>, Status> {
        let call: Call<_, _> =
            |mut leader, r| Box::pin(async move { leader.list_configs(r).await });
        self.serve(request, READ, call, None, |r| self.list_configs_here(r))
            .await
    }

    async fn get_config(
        &self,
        request: Request<v1::GetConfigRequest>,
    ) -> Result<Response<v1::Config>, Status> {
        let call: Call<_, _> = |mut leader, r| Box::pin(async move { leader.get_config(r).await });
        self.serve(request, READ, call, None, |r| self.get_config_here(r))
            .await
    }

    async fn remove_config(
        &self,
        request: Request<v1::RemoveConfigRequest>,
    ) -> Result<Response<v1::RemoveConfigResponse>, Status> {
        let call: Call<_, _> =
            |mut leader, r| Box::pin(async move { leader.remove_config(r).await });
        self.serve(request, Served::Write, call, None, |r| {
            self.remove_config_here(r)
        })
        .await
    }

    async fn list_volumes(
        &self,
        request: Request<v1::ListVolumesRequest>,
    ) -> Result<Response<v1::ListVolumesResponse>, Status> {
        let call: Call<_, _> =
            |mut leader, r| Box::pin(async move { leader.list_volumes(r).await });
        self.serve(request, Served::LeaderMemory, call, None, |r| {
            self.list_volumes_here(r)
        })
        .await
    }

    async fn remove_volume(
        &self,
        request: Request<v1::RemoveVolumeRequest>,
    ) -> Result<Response<v1::RemoveVolumeResponse>, Status> {
        let call: Call<_, _> =
            |mut leader, r| Box::pin(async move { leader.remove_volume(r).await });
        self.serve(request, Served::Write, call, None, |r| {
            self.remove_volume_here(r)
        })
        .await
    }
}
