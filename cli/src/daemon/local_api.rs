//! The daemon's unix socket: the local node API (swarm init/join/leave/info,
//! unlock and unlock-key) and the control API, which on a manager is
//! answered by its manager and on any other node refused with the message
//! Docker gives (on a locked manager: how to unlock it).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use shoal_proto::v1::control_server::{Control, ControlServer};
use shoal_proto::v1::local_node_server::{LocalNode, LocalNodeServer};
use shoal_proto::v1::logs_server::{Logs, LogsServer};
use shoal_proto::v1::UpdateNodeRequest;
use shoal_proto::v1::{
    Cluster, CreateServiceRequest, GetClusterRequest, GetNodeRequest, GetServiceRequest,
    InfoRequest, InfoResponse, InitRequest, InitResponse, JoinRequest, JoinResponse, LeaveRequest,
    LeaveResponse, ListNodesRequest, ListNodesResponse, ListServicesRequest, ListServicesResponse,
    ListTasksRequest, ListTasksResponse, Node as NodeObject, RemoveNodeRequest, RemoveNodeResponse,
    RemoveServiceRequest, RemoveServiceResponse, RotateJoinTokenRequest, Service, ServiceInfo,
    UpdateServiceRequest,
};
use shoal_proto::v1::{ExecRequest, ServiceLogsRequest};
use shoal_proto::v1::{GetUnlockKeyRequest, GetUnlockKeyResponse, UnlockRequest, UnlockResponse};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

use super::membership::Membership;
use super::private::SocketGroup;

/// Binds the daemon's socket. A stale socket file (no daemon answering) is
/// replaced; a live one means another daemon runs there. The daemon's umask
/// (077) creates the socket and any missing directory owner-only, so there
/// is no moment at which another user could connect; `group` then opens it
/// to that group (0660), and a directory the daemon creates for it is made
/// traversable by that group only.
pub fn bind(path: &Path, group: Option<SocketGroup>) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        let existed = dir.exists();
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the socket directory {}", dir.display()))?;
        if let (false, Some(group)) = (existed, group) {
            super::private::share_dir(dir, group)?;
        }
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "another shoal daemon is already listening on {}: stop it or choose another --socket",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot listen on the socket {}", path.display()))?;
    // Whoever can open the socket controls the swarm: owner, and a group
    // only when the operator named one.
    super::private::share_socket(path, group)?;
    Ok(listener)
}

pub async fn serve(
    node: Arc<Membership>,
    listener: UnixListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tonic::transport::Server::builder()
        .add_service(LocalNodeServer::new(LocalApi { node: node.clone() }))
        .add_service(LogsServer::new(LocalLogs { node: node.clone() }))
        .add_service(ControlServer::new(LocalControl { node }))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await
        .context("the local API server failed")
}

struct LocalApi {
    node: Arc<Membership>,
}

#[tonic::async_trait]
impl LocalNode for LocalApi {
    async fn init(&self, request: Request<InitRequest>) -> Result<Response<InitResponse>, Status> {
        self.node
            .init(request.into_inner())
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        self.node
            .join(request.into_inner())
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn leave(
        &self,
        request: Request<LeaveRequest>,
    ) -> Result<Response<LeaveResponse>, Status> {
        self.node
            .leave(request.into_inner().force)
            .await
            .map(|_| Response::new(LeaveResponse {}))
            .map_err(Status::from)
    }

    async fn info(&self, _request: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        Ok(Response::new(self.node.info().await))
    }

    async fn unlock(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        self.node
            .unlock(&request.into_inner().unlock_key)
            .await
            .map(|_| Response::new(UnlockResponse {}))
            .map_err(Status::from)
    }

    /// From this manager's own replica, never forwarded: the unlock key
    /// leaves a manager only through its owner-only socket.
    async fn get_unlock_key(
        &self,
        request: Request<GetUnlockKeyRequest>,
    ) -> Result<Response<GetUnlockKeyResponse>, Status> {
        let manager = LocalControl {
            node: self.node.clone(),
        }
        .manager()?;
        let min_version = request.into_inner().min_cluster_version;
        let deadline = tokio::time::Instant::now() + UNLOCK_KEY_PATIENCE;
        loop {
            let cluster = manager.store().read(|s| s.cluster.clone());
            let version = cluster
                .as_ref()
                .and_then(|c| c.meta.as_ref())
                .map_or(0, |m| m.version);
            match cluster {
                Some(cluster) if version >= min_version => {
                    return Ok(Response::new(GetUnlockKeyResponse {
                        unlock_key: cluster.unlock_key,
                    }))
                }
                _ if tokio::time::Instant::now() >= deadline => {
                    return Err(Status::unavailable(
                        "this manager has not yet applied the latest swarm update: retry",
                    ))
                }
                _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
    }
}

/// How long `swarm unlock-key` waits for this manager's replica to apply an
/// update made through another manager.
const UNLOCK_KEY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// The control API on the local socket: forwarded to this node's manager.
struct LocalControl {
    node: Arc<Membership>,
}

impl LocalControl {
    fn control(&self) -> Result<shoal_manager::control::ControlService, Status> {
        Ok(self.manager()?.local_control())
    }

    fn manager(&self) -> Result<Arc<shoal_manager::Manager>, Status> {
        if self.node.is_locked() {
            return Err(Status::failed_precondition(super::membership::LOCKED));
        }
        match self.node.manager() {
            Some(manager) => Ok(manager),
            None => Err(Status::failed_precondition(
                "This node is not a swarm manager. Worker nodes can't be used to view or modify \
                 cluster state. Run this command on a manager node, or use \"shoal swarm init\" \
                 if this node is not in a swarm yet.",
            )),
        }
    }
}

#[tonic::async_trait]
impl Control for LocalControl {
    async fn update_cluster(
        &self,
        request: Request<shoal_proto::v1::UpdateClusterRequest>,
    ) -> Result<Response<Cluster>, Status> {
        self.control()?.update_cluster(request).await
    }

    async fn list_nodes(
        &self,
        request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        self.control()?.list_nodes(request).await
    }

    async fn get_node(
        &self,
        request: Request<GetNodeRequest>,
    ) -> Result<Response<NodeObject>, Status> {
        self.control()?.get_node(request).await
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeResponse>, Status> {
        self.control()?.remove_node(request).await
    }

    async fn get_cluster(
        &self,
        request: Request<GetClusterRequest>,
    ) -> Result<Response<Cluster>, Status> {
        self.control()?.get_cluster(request).await
    }

    async fn rotate_join_token(
        &self,
        request: Request<RotateJoinTokenRequest>,
    ) -> Result<Response<Cluster>, Status> {
        self.control()?.rotate_join_token(request).await
    }

    async fn create_service(
        &self,
        request: Request<CreateServiceRequest>,
    ) -> Result<Response<Service>, Status> {
        self.control()?.create_service(request).await
    }

    async fn list_services(
        &self,
        request: Request<ListServicesRequest>,
    ) -> Result<Response<ListServicesResponse>, Status> {
        self.control()?.list_services(request).await
    }

    async fn get_service(
        &self,
        request: Request<GetServiceRequest>,
    ) -> Result<Response<ServiceInfo>, Status> {
        self.control()?.get_service(request).await
    }

    async fn update_service(
        &self,
        request: Request<UpdateServiceRequest>,
    ) -> Result<Response<Service>, Status> {
        self.control()?.update_service(request).await
    }

    async fn remove_service(
        &self,
        request: Request<RemoveServiceRequest>,
    ) -> Result<Response<RemoveServiceResponse>, Status> {
        self.control()?.remove_service(request).await
    }

    async fn list_tasks(
        &self,
        request: Request<ListTasksRequest>,
    ) -> Result<Response<ListTasksResponse>, Status> {
        self.control()?.list_tasks(request).await
    }

    async fn update_node(
        &self,
        request: Request<UpdateNodeRequest>,
    ) -> Result<Response<NodeObject>, Status> {
        self.control()?.update_node(request).await
    }

    async fn create_network(
        &self,
        request: Request<shoal_proto::v1::CreateNetworkRequest>,
    ) -> Result<Response<shoal_proto::v1::Network>, Status> {
        self.control()?.create_network(request).await
    }

    async fn list_networks(
        &self,
        request: Request<shoal_proto::v1::ListNetworksRequest>,
    ) -> Result<Response<shoal_proto::v1::ListNetworksResponse>, Status> {
        self.control()?.list_networks(request).await
    }

    async fn get_network(
        &self,
        request: Request<shoal_proto::v1::GetNetworkRequest>,
    ) -> Result<Response<shoal_proto::v1::NetworkInfo>, Status> {
        self.control()?.get_network(request).await
    }

    async fn remove_network(
        &self,
        request: Request<shoal_proto::v1::RemoveNetworkRequest>,
    ) -> Result<Response<shoal_proto::v1::RemoveNetworkResponse>, Status> {
        self.control()?.remove_network(request).await
    }

    async fn create_secret(
        &self,
        request: Request<shoal_proto::v1::CreateSecretRequest>,
    ) -> Result<Response<shoal_proto::v1::Secret>, Status> {
        self.control()?.create_secret(request).await
    }

    async fn list_secrets(
        &self,
        request: Request<shoal_proto::v1::ListSecretsRequest>,
    ) -> Result<Response<shoal_proto::v1::ListSecretsResponse>, Status> {
        self.control()?.list_secrets(request).await
    }

    async fn get_secret(
        &self,
        request: Request<shoal_proto::v1::GetSecretRequest>,
    ) -> Result<Response<shoal_proto::v1::Secret>, Status> {
        self.control()?.get_secret(request).await
    }

    async fn remove_secret(
        &self,
        request: Request<shoal_proto::v1::RemoveSecretRequest>,
    ) -> Result<Response<shoal_proto::v1::RemoveSecretResponse>, Status> {
        self.control()?.remove_secret(request).await
    }

    async fn create_config(
        &self,
        request: Request<shoal_proto::v1::CreateConfigRequest>,
    ) -> Result<Response<shoal_proto::v1::Config>, Status> {
        self.control()?.create_config(request).await
    }

    async fn list_configs(
        &self,
        request: Request<shoal_proto::v1::ListConfigsRequest>,
    ) -> Result<Response<shoal_proto::v1::ListConfigsResponse>, Status> {
        self.control()?.list_configs(request).await
    }

    async fn get_config(
        &self,
        request: Request<shoal_proto::v1::GetConfigRequest>,
    ) -> Result<Response<shoal_proto::v1::Config>, Status> {
        self.control()?.get_config(request).await
    }

    async fn remove_config(
        &self,
        request: Request<shoal_proto::v1::RemoveConfigRequest>,
    ) -> Result<Response<shoal_proto::v1::RemoveConfigResponse>, Status> {
        self.control()?.remove_config(request).await
    }

    async fn list_volumes(
        &self,
        request: Request<shoal_proto::v1::ListVolumesRequest>,
    ) -> Result<Response<shoal_proto::v1::ListVolumesResponse>, Status> {
        self.control()?.list_volumes(request).await
    }

    async fn remove_volume(
        &self,
        request: Request<shoal_proto::v1::RemoveVolumeRequest>,
    ) -> Result<Response<shoal_proto::v1::RemoveVolumeResponse>, Status> {
        self.control()?.remove_volume(request).await
    }
}

/// `service logs` and `service exec` on the local socket: answered by this
/// node's manager, refused elsewhere as the control API is.
struct LocalLogs {
    node: Arc<Membership>,
}

impl LocalLogs {
    fn logs(&self) -> Result<shoal_manager::logs::LogsService, Status> {
        match self.node.manager() {
            Some(manager) => Ok(manager.local_logs()),
            None => Err(LocalControl {
                node: self.node.clone(),
            }
            .control()
            .err()
            .unwrap_or_else(|| Status::failed_precondition("This node is not a swarm manager."))),
        }
    }
}

#[tonic::async_trait]
impl Logs for LocalLogs {
    type ServiceLogsStream = <shoal_manager::logs::LogsService as Logs>::ServiceLogsStream;
    type ExecStream = <shoal_manager::logs::LogsService as Logs>::ExecStream;

    async fn service_logs(
        &self,
        request: Request<ServiceLogsRequest>,
    ) -> Result<Response<Self::ServiceLogsStream>, Status> {
        self.logs()?.service_logs(request).await
    }

    async fn exec(
        &self,
        request: Request<ExecRequest>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        self.logs()?.exec(request).await
    }
}
