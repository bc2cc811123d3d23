//! The control API: what `shoal node …` and `shoal swarm join-token` call.
//!
//! Served on the daemon's unix socket and, over TCP, to manager certificates
//! only. Reads come from this manager's applied store; writes go through Raft.
//! Requests that name a node accept, as docker does, an ID, a unique ID
//! prefix or a hostname.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;
use tonic::transport::Channel;

use shoal_proto::v1::control_server::Control;
use shoal_proto::v1::{control_client::ControlClient, NodeAvailability};
use shoal_proto::v1::{
    Cluster, CreateNetworkRequest, CreateServiceRequest, GetClusterRequest, GetNetworkRequest,
    GetNodeRequest, GetServiceRequest, ListNetworksRequest, ListNetworksResponse, ListNodesRequest,
    ListNodesResponse, ListServicesRequest, ListServicesResponse, ListTasksRequest,
    ListTasksResponse, Meta, Network, NetworkInfo, Node, NodeRole, NodeState, Reachability,
    RemoveNetworkRequest, RemoveNetworkResponse, RemoveNodeRequest, RemoveNodeResponse,
    RemoveServiceRequest, RemoveServiceResponse, RotateJoinTokenRequest, Service, ServiceInfo,
    TaskInfo, TaskState, UpdateClusterRequest, UpdateNodeRequest, UpdateServiceRequest,
};
use shoal_proto::v1::{
    ListVolumesRequest, ListVolumesResponse, RemoveVolumeRequest, RemoveVolumeResponse,
};
use shoal_security::{JoinToken, Role};
use tonic::{Request, Response, Status};

use crate::store::{ClusterState, Command};
use crate::{auth, Manager};

mod networks;
mod secrets;
mod volumes;
pub use networks::resolve_network;
pub use secrets::{config_path, resolve_config, resolve_secret, secret_path};

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

/// Finds a service by ID, name or unique ID prefix.
pub fn resolve_service<'a>(
    state: &'a ClusterState,
    reference: &str,
) -> Result<&'a Service, Status> {
    if reference.is_empty() {
        return Err(Status::invalid_argument("a service name or ID is required"));
    }
    if let Some(service) = state.services.get(reference) {
        return Ok(service);
    }
    if let Some(service) = state.service_by_name(reference) {
        return Ok(service);
    }
    let found: Vec<&Service> = state
        .services
        .values()
        .filter(|s| s.id.starts_with(reference))
        .collect();
    match found.len() {
        1 => Ok(found[0]),
        0 => Err(Status::not_found(format!("No such service: {reference}"))),
        n => Err(Status::failed_precondition(format!(
            "service {reference} is ambiguous ({n} matches): use the full ID or the name"
        ))),
    }
}

/// A service with its running and desired task counts.
fn service_info(state: &ClusterState, service: &Service) -> ServiceInfo {
    let running = state
        .tasks
        .values()
        .filter(|t| {
            t.service_id == service.id
                && t.desired_state == TaskState::Running as i32
                && t.status
                    .as_ref()
                    .is_some_and(|s| s.state() == TaskState::Running)
        })
        .count() as u64;
    let desired = match service.spec.as_ref().map(|s| s.mode()) {
        Some(shoal_proto::v1::ServiceMode::Global) => state
            .tasks
            .values()
            .filter(|t| t.service_id == service.id && t.desired_state == TaskState::Running as i32)
            .count() as u64,
        _ => service.spec.as_ref().map(|s| s.replicas).unwrap_or(0),
    };
    ServiceInfo {
        service: Some(service.clone()),
        running_tasks: running,
        desired_tasks: desired,
    }
}

/// The handlers proper, run on the leader (or locally for stale reads).
impl ControlService {
    async fn list_nodes_here(
        &self,
        _request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
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

    async fn get_node_here(
        &self,
        request: Request<GetNodeRequest>,
    ) -> Result<Response<Node>, Status> {
        let reference = request.into_inner().node;
        let node = self
            .manager
            .store()
            .read(|s| resolve_node(s, &reference).cloned())?;
        Ok(Response::new(self.with_manager_status(node)))
    }

    async fn remove_node_here(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeResponse>, Status> {
        let RemoveNodeRequest { node, force } = request.into_inner();
        let node = self
            .manager
            .store()
            .read(|s| resolve_node(s, &node).cloned())?;
        let in_raft = node.manager_status.as_ref().is_some_and(|m| {
            m.raft_id != 0
                && self
                    .manager
                    .raft()
                    .metrics()
                    .borrow()
                    .membership_config
                    .membership()
                    .voter_ids()
                    .any(|id| id == m.raft_id)
        });
        if node.role() == NodeRole::Manager && in_raft {
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

    async fn get_cluster_here(
        &self,
        _request: Request<GetClusterRequest>,
    ) -> Result<Response<Cluster>, Status> {
        let cluster = self
            .manager
            .store()
            .read(|s| s.cluster.clone())
            .ok_or_else(|| Status::unavailable("the swarm is still being initialized"))?;
        Ok(Response::new(redact(cluster)))
    }

    async fn rotate_join_token_here(
        &self,
        request: Request<RotateJoinTokenRequest>,
    ) -> Result<Response<Cluster>, Status> {
        let role = request.into_inner().role();
        // Tokens name the root that signs now (the new one during a rotation).
        let digest = self
            .manager
            .store()
            .read(|s| {
                s.cluster
                    .as_ref()
                    .map(|c| crate::store::rotation::signing_root(c).digest)
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

    async fn create_service_here(
        &self,
        request: Request<CreateServiceRequest>,
    ) -> Result<Response<Service>, Status> {
        self.create_service_impl(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_services_here(
        &self,
        _request: Request<ListServicesRequest>,
    ) -> Result<Response<ListServicesResponse>, Status> {
        let services = self.manager.store().read(|s| {
            s.services
                .values()
                .map(|svc| service_info(s, svc))
                .collect()
        });
        Ok(Response::new(ListServicesResponse { services }))
    }

    async fn get_service_here(
        &self,
        request: Request<GetServiceRequest>,
    ) -> Result<Response<ServiceInfo>, Status> {
        let reference = request.into_inner().service;
        let info = self
            .manager
            .store()
            .read(|s| resolve_service(s, &reference).map(|svc| service_info(s, svc)))?;
        Ok(Response::new(info))
    }

    async fn update_service_here(
        &self,
        request: Request<UpdateServiceRequest>,
    ) -> Result<Response<Service>, Status> {
        let request = request.into_inner();
        let id = self
            .manager
            .store()
            .read(|s| resolve_service(s, &request.service).map(|svc| svc.id.clone()))?;
        let command = if request.rollback {
            Command::RollbackService {
                service_id: id.clone(),
                expected_version: request.expected_spec_version,
                message: "manually requested rollback".into(),
                at_ms: crate::now_ms(),
            }
        } else {
            let mut spec = request
                .spec
                .ok_or_else(|| Status::invalid_argument("a service spec is required"))?;
            crate::spec::validate_service_spec(&spec).map_err(Status::invalid_argument)?;
            self.check_mounts(&spec)?;
            self.manager.store().read(|s| {
                networks::resolve_spec_networks(s, &mut spec)?;
                secrets::resolve_spec_grants(s, &mut spec)?;
                // A network added must have room for the VIP; the leader's
                // allocator then hands it out.
                let mut changed = s.services.get(&id).cloned().unwrap_or_default();
                changed.spec = Some(spec.clone());
                networks::plan_vips(s, &changed)?;
                networks::check_published_ports(s, &changed).map(|_| ())
            })?;
            Command::UpdateServiceSpec {
                service_id: id.clone(),
                spec,
                expected_version: request.expected_spec_version,
                at_ms: crate::now_ms(),
            }
        };
        self.manager.propose(command).await?;
        let service = self
            .manager
            .store()
            .read(|s| s.services.get(&id).cloned())
            .ok_or_else(|| Status::not_found(format!("No such service: {}", request.service)))?;
        Ok(Response::new(service))
    }

    async fn remove_service_here(
        &self,
        request: Request<RemoveServiceRequest>,
    ) -> Result<Response<RemoveServiceResponse>, Status> {
        let reference = request.into_inner().service;
        let id = self
            .manager
            .store()
            .read(|s| resolve_service(s, &reference).map(|svc| svc.id.clone()))?;
        self.manager
            .propose(Command::RemoveService {
                service_id: id.clone(),
            })
            .await?;
        Ok(Response::new(RemoveServiceResponse { service_id: id }))
    }

    async fn list_tasks_here(
        &self,
        request: Request<ListTasksRequest>,
    ) -> Result<Response<ListTasksResponse>, Status> {
        let ListTasksRequest { service, node } = request.into_inner();
        let tasks = self.manager.store().read(|s| {
            let service_id = if service.is_empty() {
                None
            } else {
                Some(resolve_service(s, &service)?.id.clone())
            };
            let node_id = if node.is_empty() {
                None
            } else {
                Some(resolve_node(s, &node)?.id.clone())
            };
            Ok::<_, Status>(
                s.tasks
                    .values()
                    .filter(|t| service_id.as_ref().is_none_or(|id| &t.service_id == id))
                    .filter(|t| node_id.as_ref().is_none_or(|id| &t.node_id == id))
                    .map(|t| TaskInfo {
                        task: Some(t.clone()),
                        node_hostname: s
                            .nodes
                            .get(&t.node_id)
                            .and_then(|n| n.description.as_ref())
                            .map(|d| d.hostname.clone())
                            .unwrap_or_default(),
                    })
                    .collect(),
            )
        })?;
        Ok(Response::new(ListTasksResponse { tasks }))
    }
}

#[tonic::async_trait]
impl Control for ControlService {
    async fn update_cluster(
        &self,
        request: Request<UpdateClusterRequest>,
    ) -> Result<Response<Cluster>, Status> {
        self.authorize(&request)?;
        if self.route(&request, false, false).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.update_cluster(request).await });
            return self.forward(request.into_inner(), call, None).await;
        }
        let request = request.into_inner();
        if let Some(ms) = request.dispatcher_heartbeat_ms {
            if !(100..=3_600_000).contains(&ms) {
                return Err(Status::invalid_argument(format!(
                    "invalid --dispatcher-heartbeat {ms}ms: expected between 100ms and 1h"
                )));
            }
        }
        if let Some(limit) = request.task_history_limit {
            if limit > 100 {
                return Err(Status::invalid_argument(format!(
                    "invalid --task-history-limit {limit}: expected at most 100"
                )));
            }
        }
        if let Some(secs) = request.node_cert_expiry_secs {
            crate::ca_service::validate_cert_expiry(secs).map_err(Status::invalid_argument)?;
        }
        let provisioning = self.manager.store().read(|s| {
            crate::provisioning::settings::merge(
                s.cluster
                    .as_ref()
                    .and_then(|c| c.spec.as_ref())
                    .and_then(|spec| spec.node_provisioning.clone()),
                &request,
            )
        });
        let provisioning = provisioning.map_err(Status::invalid_argument)?;
        if request.set_bind_prefixes {
            crate::spec::mounts::validate_bind_prefixes(&request.bind_prefixes)
                .map_err(Status::invalid_argument)?;
        }
        let autolock = self.manager.store().read(|s| {
            s.cluster.as_ref().map(|c| {
                crate::raft::encryption::autolock_change(
                    c,
                    request.autolock,
                    request.rotate_unlock_key,
                )
            })
        });
        let autolock = match autolock {
            Some(change) => change.map_err(Status::failed_precondition)?,
            None => None,
        };
        // The root rotation first, as it is the one part refused by the
        // cluster's state (a rotation in progress): a refusal then leaves
        // everything as it was.
        if request.rotate_root_ca {
            self.start_root_rotation().await?;
        }
        if request.dispatcher_heartbeat_ms.is_some() || request.task_history_limit.is_some() {
            self.manager
                .propose(Command::UpdateClusterSpec {
                    dispatcher_heartbeat_ms: request.dispatcher_heartbeat_ms,
                    task_history_limit: request.task_history_limit,
                    at_ms: crate::now_ms(),
                })
                .await?;
        }
        if let Some(spec) = provisioning {
            self.manager
                .propose(Command::SetNodeProvisioning {
                    spec,
                    at_ms: crate::now_ms(),
                })
                .await?;
        }
        if let Some((enabled, unlock_key)) = autolock {
            self.manager
                .propose(Command::SetAutolock {
                    enabled,
                    unlock_key,
                    at_ms: crate::now_ms(),
                })
                .await?;
        }
        if request.set_bind_prefixes {
            self.manager
                .propose(Command::SetMountPolicy {
                    policy: shoal_proto::v1::MountPolicy {
                        bind_prefixes: request.bind_prefixes.clone(),
                    },
                    at_ms: crate::now_ms(),
                })
                .await?;
        }
        if let Some(secs) = request.node_cert_expiry_secs {
            self.manager
                .propose(Command::SetNodeCertExpiry {
                    secs,
                    at_ms: crate::now_ms(),
                })
                .await?;
        }
        let cluster = self
            .manager
            .store()
            .read(|s| s.cluster.clone())
            .unwrap_or_default();
        Ok(Response::new(redact(cluster)))
    }

    async fn list_nodes(
        &self,
        request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        self.authorize(&request)?;
        let local = false;
        if self.route(&request, local, true).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.list_nodes(request).await });
            return self.forward(request.into_inner(), call, None).await;
        }
        self.list_nodes_here(request).await
    }

    async fn get_node(&self, request: Request<GetNodeRequest>) -> Result<Response<Node>, Status> {
        self.authorize(&request)?;
        let local = false;
        if self.route(&request, local, true).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.get_node(request).await });
            return self.forward(request.into_inner(), call, None).await;
        }
        self.get_node_here(request).await
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeResponse>, Status> {
        self.authorize(&request)?;
        let local = false;
        if self.route(&request, local, false).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.remove_node(request).await });
            return self.forward(request.into_inner(), call, None).await;
        }
        self.remove_node_here(request).await
    }

    async fn get_cluster(
        &self,
        request: Request<GetClusterRequest>,
    ) -> Result<Response<Cluster>, Status> {
        self.authorize(&request)?;
        let local = false;
        if self.route(&request, local, true).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.get_cluster(request).await });
            return self.forward(request.into_inner(), call, None).await;
        }
        self.get_cluster_here(request).await
    }

    async fn rotate_join_token(
        &self,
        request: Request<RotateJoinTokenRequest>,
    ) -> Result<Response<Cluster>, Status> {
        self.authorize(&request)?;
        let local = false;
        if self.route(&request, local, false).await? {
            let call: Call<_, _> = |mut leader, request| {
                Box::pin(async move { leader.rotate_join_token(request).await })
            };
            return self.forward(request.into_inner(), call, None).await;
        }
        self.rotate_join_token_here(request).await
    }

    async fn create_service(
        &self,
        request: Request<CreateServiceRequest>,
    ) -> Result<Response<Service>, Status> {
        self.authorize(&request)?;
        let local = false;
        if self.route(&request, local, false).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.create_service(request).await });
            return self
                .forward(request.into_inner(), call, Some(created_service))
                .await;
        }
        self.create_service_here(request).await
    }

    async fn list_services(
        &self,
        request: Request<ListServicesRequest>,
    ) -> Result<Response<ListServicesResponse>, Status> {
        self.authorize(&request)?;
        let local = request.get_ref().local;
        if self.route(&request, local, true).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.list_services(request).await });
            return self.forward(request.into_inner(), call, None).await;
        }
        self.list_services_here(request).await
    }

    async fn get_service(
        &self,
        request: Request<GetServiceRequest>,
    ) -> Result<Response<ServiceInfo>, Status> {
        self.authorize(&request)?;
        let local = false;
        if self.route(&request, local, true).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.get_service(request).await });
            return self.forward(request.into_inner(), call, None).await;
        }
        self.get_service_here(request).await
    }

    async fn update_service(
        &self,
        request: Request<UpdateServiceRequest>,
    ) -> Result<Response<Service>, Status> {
        self.authorize(&request)?;
        let local = false;
        if self.route(&request, local, false).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.update_service(request).await });
            let lookup: Lookup<_, _> = updated_service;
            return self.forward(request.into_inner(), call, Some(lookup)).await;
        }
        self.update_service_here(request).await
    }

    async fn remove_service(
        &self,
        request: Request<RemoveServiceRequest>,
    ) -> Result<Response<RemoveServiceResponse>, Status> {
        self.authorize(&request)?;
        let local = false;
        if self.route(&request, local, false).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.remove_service(request).await });
            return self.forward(request.into_inner(), call, None).await;
        }
        self.remove_service_here(request).await
    }

    async fn list_tasks(
        &self,
        request: Request<ListTasksRequest>,
    ) -> Result<Response<ListTasksResponse>, Status> {
        self.authorize(&request)?;
        let local = false;
        if self.route(&request, local, true).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.list_tasks(request).await });
            return self.forward(request.into_inner(), call, None).await;
        }
        self.list_tasks_here(request).await
    }

    async fn create_network(
        &self,
        request: Request<CreateNetworkRequest>,
    ) -> Result<Response<Network>, Status> {
        self.authorize(&request)?;
        if self.route(&request, false, false).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.create_network(request).await });
            return self
                .forward(request.into_inner(), call, Some(created_network))
                .await;
        }
        self.create_network_here(request).await
    }

    async fn list_networks(
        &self,
        request: Request<ListNetworksRequest>,
    ) -> Result<Response<ListNetworksResponse>, Status> {
        self.authorize(&request)?;
        if self.route(&request, false, true).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.list_networks(request).await });
            return self.forward(request.into_inner(), call, None).await;
        }
        self.list_networks_here(request).await
    }

    async fn get_network(
        &self,
        request: Request<GetNetworkRequest>,
    ) -> Result<Response<NetworkInfo>, Status> {
        self.authorize(&request)?;
        if self.route(&request, false, true).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.get_network(request).await });
            return self.forward(request.into_inner(), call, None).await;
        }
        self.get_network_here(request).await
    }

    async fn remove_network(
        &self,
        request: Request<RemoveNetworkRequest>,
    ) -> Result<Response<RemoveNetworkResponse>, Status> {
        self.authorize(&request)?;
        if self.route(&request, false, false).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.remove_network(request).await });
            return self.forward(request.into_inner(), call, None).await;
        }
        self.remove_network_here(request).await
    }

    async fn update_node(
        &self,
        request: Request<UpdateNodeRequest>,
    ) -> Result<Response<Node>, Status> {
        self.authorize(&request)?;
        let local = false;
        if self.route(&request, local, false).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.update_node(request).await });
            return self.forward(request.into_inner(), call, None).await;
        }
        self.update_node_here(request).await
    }

    async fn create_secret(
        &self,
        request: Request<shoal_proto::v1::CreateSecretRequest>,
    ) -> Result<Response<shoal_proto::v1::Secret>, Status> {
        self.authorize(&request)?;
        if self.route(&request, false, false).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.create_secret(request).await });
            return self.forward(request.into_inner(), call, None).await;
        }
        self.create_secret_here(request).await
    }

    async fn list_secrets(
        &self,
        request: Request<shoal_proto::v1::ListSecretsRequest>,
    ) -> Result<Response<shoal_proto::v1::ListSecretsResponse>, Status> {
        self.authorize(&request)?;
        if self.route(&request, false, true).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.list_secrets(request).await });
            return self.forward(request.into_inner(), call, None).await;
        }
        self.list_secrets_here(request).await
    }

    async fn get_secret(
        &self,
        request: Request<shoal_proto::v1::GetSecretRequest>,
    ) -> Result<Response<shoal_proto::v1::Secret>, Status> {
        self.authorize(&request)?;
        if self.route(&request, false, true).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.get_secret(request).await });
            return self.forward(request.into_inner(), call, None).await;
        }
        self.get_secret_here(request).await
    }

    async fn remove_secret(
        &self,
        request: Request<shoal_proto::v1::RemoveSecretRequest>,
    ) -> Result<Response<shoal_proto::v1::RemoveSecretResponse>, Status> {
        self.authorize(&request)?;
        if self.route(&request, false, false).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.remove_secret(request).await });
            return self.forward(request.into_inner(), call, None).await;
        }
        self.remove_secret_here(request).await
    }

    async fn create_config(
        &self,
        request: Request<shoal_proto::v1::CreateConfigRequest>,
    ) -> Result<Response<shoal_proto::v1::Config>, Status> {
        self.authorize(&request)?;
        if self.route(&request, false, false).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.create_config(request).await });
            return self.forward(request.into_inner(), call, None).await;
        }
        self.create_config_here(request).await
    }

    async fn list_configs(
        &self,
        request: Request<shoal_proto::v1::ListConfigsRequest>,
    ) -> Result<Response<shoal_proto::v1::ListConfigsResponse>, Status> {
        self.authorize(&request)?;
        if self.route(&request, false, true).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.list_configs(request).await });
            return self.forward(request.into_inner(), call, None).await;
        }
        self.list_configs_here(request).await
    }

    async fn get_config(
        &self,
        request: Request<shoal_proto::v1::GetConfigRequest>,
    ) -> Result<Response<shoal_proto::v1::Config>, Status> {
        self.authorize(&request)?;
        if self.route(&request, false, true).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.get_config(request).await });
            return self.forward(request.into_inner(), call, None).await;
        }
        self.get_config_here(request).await
    }

    async fn remove_config(
        &self,
        request: Request<shoal_proto::v1::RemoveConfigRequest>,
    ) -> Result<Response<shoal_proto::v1::RemoveConfigResponse>, Status> {
        self.authorize(&request)?;
        if self.route(&request, false, false).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.remove_config(request).await });
            return self.forward(request.into_inner(), call, None).await;
        }
        self.remove_config_here(request).await
    }

    async fn list_volumes(
        &self,
        request: Request<ListVolumesRequest>,
    ) -> Result<Response<ListVolumesResponse>, Status> {
        self.authorize(&request)?;
        // The inventory is in the leader's memory: even a read goes there.
        if !self.manager.is_leader() && self.route(&request, false, true).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.list_volumes(request).await });
            return self.forward(request.into_inner(), call, None).await;
        }
        self.list_volumes_here(request).await
    }

    async fn remove_volume(
        &self,
        request: Request<RemoveVolumeRequest>,
    ) -> Result<Response<RemoveVolumeResponse>, Status> {
        self.authorize(&request)?;
        if self.route(&request, false, false).await? {
            let call: Call<_, _> =
                |mut leader, request| Box::pin(async move { leader.remove_volume(request).await });
            return self.forward(request.into_inner(), call, None).await;
        }
        self.remove_volume_here(request).await
    }
}

impl ControlService {
    async fn create_service_impl(&self, request: CreateServiceRequest) -> Result<Service, Status> {
        let mut spec = request
            .spec
            .ok_or_else(|| Status::invalid_argument("a service spec is required"))?;
        crate::spec::validate_service_spec(&spec).map_err(Status::invalid_argument)?;
        self.check_mounts(&spec)?;
        self.manager.store().read(|s| {
            networks::resolve_spec_networks(s, &mut spec)?;
            secrets::resolve_spec_grants(s, &mut spec)
        })?;
        if self
            .manager
            .store()
            .read(|s| s.service_by_name(&spec.name).is_some())
        {
            return Err(Status::already_exists(format!(
                "name conflicts with an existing object: service {} already exists",
                spec.name
            )));
        }
        let now = crate::now_ms();
        let service = Service {
            id: crate::new_id(),
            meta: Some(Meta {
                version: 1,
                created_at_ms: now,
                updated_at_ms: now,
            }),
            spec: Some(spec),
            previous_spec: None,
            spec_version: 1,
            update_status: None,
            endpoint: None,
            autoscale_events: Vec::new(),
        };
        // The VIPs are allocated with the service, so that `create` says
        // at once when a network is full and `inspect` shows them at once.
        // The leader's allocator may take a chosen address for a task
        // meanwhile: the store then refuses the service, and the VIPs are
        // chosen again.
        let mut service = service;
        let mut attempt = 0;
        loop {
            // Plan from nothing: a VIP refused last time must not be kept.
            service.endpoint = None;
            service.endpoint = self.manager.store().read(|s| {
                let mut endpoint = networks::plan_vips(s, &service)?;
                let ports = networks::check_published_ports(s, &service)?;
                if !ports.is_empty() {
                    endpoint.get_or_insert_with(Default::default).ports = ports;
                }
                Ok::<_, Status>(endpoint)
            })?;
            match self
                .manager
                .propose(Command::CreateService(service.clone()))
                .await
            {
                Err(crate::ManagerError::Store(crate::store::StoreError::Conflict(m)))
                    if attempt < 5 && m.starts_with("virtual IP") =>
                {
                    attempt += 1;
                }
                other => {
                    other?;
                    return Ok(service);
                }
            }
        }
    }
}

/// One forwarded control call, sent to a leader's client.
type Call<Req, Resp> =
    fn(ControlClient<Channel>, Request<Req>) -> BoxFuture<'static, Result<Response<Resp>, Status>>;
/// Looks up, on the new leader, whether a call that may have committed did.
type Lookup<Req, Resp> = fn(ControlClient<Channel>, Req) -> BoxFuture<'static, Option<Resp>>;

/// How long a forwarded call keeps looking for a leader that answers.
const FORWARD_PATIENCE: Duration = crate::manager::LEADER_PATIENCE;
/// How long a retry waits for a leader other than the one that just failed.
const ELECTION_WAIT: Duration = Duration::from_secs(1);

/// Whether a forwarded call's failure is the connection's or a leader
/// change's (worth sending again), rather than the leader's own answer.
/// "no quorum" from the leader itself is final: it already waited.
fn retryable(status: &Status) -> bool {
    match status.code() {
        tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::DeadlineExceeded => true,
        tonic::Code::Unavailable => !status.message().starts_with("no quorum"),
        _ => false,
    }
}

/// The create's lookup: a service of that name with exactly that spec is
/// the one the lost attempt created.
fn created_service(
    mut leader: ControlClient<Channel>,
    request: CreateServiceRequest,
) -> BoxFuture<'static, Option<Service>> {
    Box::pin(async move {
        let spec = request.spec?;
        let lookup = GetServiceRequest {
            service: spec.name.clone(),
        };
        let info = leader
            .get_service(forwarded(Request::new(lookup)))
            .await
            .ok()?
            .into_inner();
        info.service.filter(|s| s.spec.as_ref() == Some(&spec))
    })
}

/// The update's lookup: an update that carries the spec version it expects
/// and committed before its reply was lost shows as exactly its spec, one
/// version on. Sending it again would fail as a version conflict — with the
/// caller's own write.
fn updated_service(
    mut leader: ControlClient<Channel>,
    request: UpdateServiceRequest,
) -> BoxFuture<'static, Option<Service>> {
    Box::pin(async move {
        let lookup = GetServiceRequest {
            service: request.service.clone(),
        };
        let info = leader
            .get_service(forwarded(Request::new(lookup)))
            .await
            .ok()?
            .into_inner();
        info.service
            .filter(|stored| is_committed_update(&request, stored))
    })
}

/// Whether `stored` is what `request` makes of the version it expects: the
/// spec it sends at the next version. Only for updates that name a version
/// (an unconditional one is harmless to repeat) and change the spec (one
/// that does not keeps the version, so its repeat does not conflict); a
/// rollback's result is not known from the request.
pub fn is_committed_update(request: &UpdateServiceRequest, stored: &Service) -> bool {
    !request.rollback
        && request.expected_spec_version != 0
        && request.spec.is_some()
        && stored.spec_version == request.expected_spec_version + 1
        && stored.spec == request.spec
}

/// The network create's lookup: a network of that name with exactly that
/// spec (the driver filled in) is the one the lost attempt created.
fn created_network(
    mut leader: ControlClient<Channel>,
    request: CreateNetworkRequest,
) -> BoxFuture<'static, Option<Network>> {
    Box::pin(async move {
        let mut spec = request.spec?;
        if spec.driver.is_empty() {
            spec.driver = crate::network::spec::OVERLAY.into();
        }
        let lookup = GetNetworkRequest {
            network: spec.name.clone(),
        };
        let info = leader
            .get_network(forwarded(Request::new(lookup)))
            .await
            .ok()?
            .into_inner();
        info.network.filter(|n| n.spec.as_ref() == Some(&spec))
    })
}

/// Metadata marking a call one manager forwarded to another, so that two
/// managers that disagree about the leader never bounce a call forever.
pub const FORWARDED: &str = "x-shoal-forwarded";
pub use shoal_proto::LEADER_HINT;

/// The request, marked as forwarded, for the leader.
fn forwarded<T>(request: Request<T>) -> Request<T> {
    let mut out = Request::new(request.into_inner());
    out.metadata_mut()
        .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
    out
}

impl ControlService {
    /// Where a call is served: `None` here (this manager leads, or a local
    /// read was asked for), or a client to the leader. Reads served by the
    /// leader are linearizable: it confirms its leadership first.
    async fn route<T>(
        &self,
        request: &Request<T>,
        local: bool,
        read: bool,
    ) -> Result<bool, Status> {
        if local {
            return Ok(false);
        }
        if self.manager.is_leader() && !read {
            // A write is linearizable by going through the log.
            return Ok(false);
        }
        if self.manager.is_leader() {
            // A missed heartbeat round (a busy peer) is no reason to fail a
            // read: try a few rounds before saying the quorum is gone.
            let mut attempt = 0;
            loop {
                match self.manager.raft().ensure_linearizable().await {
                    Ok(_) => break,
                    Err(_) if attempt < 5 => {
                        attempt += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    Err(e) => {
                        return Err(self.forward_error(Status::unavailable(format!(
                            "cannot confirm leadership: {e}"
                        ))))
                    }
                }
            }

            return Ok(false);
        }
        if request.metadata().get(FORWARDED).is_some() {
            return Err(Status::unavailable(
                "this manager is not the leader either (a leader change is in progress): retry",
            ));
        }
        Ok(true)
    }

    /// Forwards a call to the leader. When the leader's connection breaks,
    /// or the leader is lost while the call is in flight (its heartbeats
    /// stopped and an election began — a silent partition never breaks the
    /// connection), the call is sent again to the new leader as soon as one
    /// is known, within [`FORWARD_PATIENCE`]. A call that may have committed
    /// is not repeated blindly: `lookup` (creates, versioned updates) first
    /// asks the new leader whether its effect is already there. Other writes
    /// are safe to repeat (they set fields).
    async fn forward<Req, Resp>(
        &self,
        message: Req,
        call: Call<Req, Resp>,
        lookup: Option<Lookup<Req, Resp>>,
    ) -> Result<Response<Resp>, Status>
    where
        Req: Clone + Send + 'static,
        Resp: Send + 'static,
    {
        let deadline = Instant::now() + FORWARD_PATIENCE;
        let mut failed: Option<u64> = None;
        let mut last: Option<Status> = None;
        loop {
            // A new leader first; the same one again only after an election's
            // worth of waiting (its connection may just have been reset).
            let other = deadline.min(Instant::now() + ELECTION_WAIT);
            let leader = match self.manager.leader_other_than(failed, other).await {
                Some(leader) => Some(leader),
                None => self.manager.leader_other_than(None, deadline).await,
            };
            let Some((leader, addr)) = leader else {
                return Err(match last {
                    Some(status) => self.forward_error(status),
                    None => self.manager.no_leader_error(FORWARD_PATIENCE).into(),
                });
            };
            let client = self.manager.control_at(&addr)?;
            if let (Some(lookup), true) = (lookup, failed.is_some()) {
                if let Some(found) = lookup(client.clone(), message.clone()).await {
                    return Ok(Response::new(found));
                }
            }
            let outcome = tokio::select! {
                outcome = call(client, forwarded(Request::new(message.clone()))) => Some(outcome),
                _ = self.manager.leader_lost(leader) => None,
            };
            let status = match outcome {
                Some(Ok(response)) => return Ok(response),
                Some(Err(status)) if !retryable(&status) => return Err(self.forward_error(status)),
                Some(Err(status)) => status,
                None => Status::unavailable(format!(
                    "the leader at {addr} was lost while the call was in flight"
                )),
            };
            tracing::info!(leader = %addr, error = %status.message(), "forwarded call failed; retrying against the next leader");
            failed = Some(leader);
            last = Some(status);
            if Instant::now() >= deadline {
                return Err(self.forward_error(last.expect("a failure")));
            }
        }
    }

    /// A forwarded call that failed in transport: say what an operator can act on.
    fn forward_error(&self, status: Status) -> Status {
        let transport = matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown
        ) && !status.message().starts_with("no quorum");
        if !transport {
            return status;
        }
        let quorum = self.manager.quorum();
        if !quorum.has_majority() {
            return crate::ManagerError::NoQuorum {
                reachable: quorum.reachable,
                total: quorum.voters.len(),
                majority: quorum.majority(),
            }
            .into();
        }
        Status::unavailable(format!(
            "the leader could not be reached ({}): a leader change is probably in progress; retry",
            status.message()
        ))
    }

    /// `node promote` / `node demote`. Demotion removes the manager from the
    /// Raft group here (refused if it is the last one, or if the rest would
    /// lose quorum, unless forced); promotion records the wish, and the
    /// node's daemon — told over its session — gets a manager certificate
    /// and joins the group itself.
    async fn change_role(&self, node: &Node, role: NodeRole, force: bool) -> Result<(), Status> {
        let desired = node
            .spec
            .as_ref()
            .map(|s| s.desired_role())
            .unwrap_or_default();
        match role {
            NodeRole::Manager
                if node.role() == NodeRole::Manager || desired == NodeRole::Manager =>
            {
                Ok(())
            }
            NodeRole::Manager => {
                let ready = node
                    .status
                    .as_ref()
                    .is_some_and(|s| s.state() == NodeState::Ready);
                if !ready {
                    return Err(Status::failed_precondition(format!(
                        "node {} is not Ready: only a running node can be promoted (its daemon joins the Raft group)",
                        node.id
                    )));
                }
                self.manager
                    .propose(Command::SetDesiredRole {
                        node_id: node.id.clone(),
                        role: NodeRole::Manager,
                        at_ms: crate::now_ms(),
                    })
                    .await?;
                Ok(())
            }
            NodeRole::Worker if node.role() == NodeRole::Worker => {
                if desired == NodeRole::Manager {
                    self.manager
                        .propose(Command::SetDesiredRole {
                            node_id: node.id.clone(),
                            role: NodeRole::Worker,
                            at_ms: crate::now_ms(),
                        })
                        .await?;
                }
                Ok(())
            }
            NodeRole::Worker => {
                let raft_id = node.manager_status.as_ref().map(|m| m.raft_id).unwrap_or(0);
                if raft_id != 0 && self.manager.quorum().voters.len() <= 1 {
                    return Err(Status::failed_precondition(format!(
                        "node {} is the last manager of the swarm: it cannot be demoted \
                         (promote another node first)",
                        node.id
                    )));
                }
                if raft_id != 0 && self.manager.quorum().leader == Some(raft_id) {
                    // Removing the leader from its own group would leave the
                    // role change without a leader to record it.
                    return Err(Status::failed_precondition(format!(
                        "node {} is the current leader: demote it once another manager leads \
                         (e.g. after restarting it), or demote the other managers",
                        node.id
                    )));
                }
                if raft_id != 0 {
                    self.manager
                        .remove_manager(raft_id, force)
                        .await
                        .map_err(|e| match e {
                            crate::ManagerError::Store(crate::store::StoreError::Conflict(m)) => {
                                Status::failed_precondition(m)
                            }
                            other => other.into(),
                        })?;
                }
                self.manager
                    .propose(Command::SetNodeRole {
                        node_id: node.id.clone(),
                        role: NodeRole::Worker,
                        manager_status: None,
                        at_ms: crate::now_ms(),
                    })
                    .await?;
                Ok(())
            }
        }
    }

    async fn update_node_here(
        &self,
        request: Request<UpdateNodeRequest>,
    ) -> Result<Response<Node>, Status> {
        let request = request.into_inner();
        let node = self
            .manager
            .store()
            .read(|s| resolve_node(s, &request.node).cloned())?;
        if let Some(role) = request.role {
            let role = NodeRole::try_from(role)
                .map_err(|_| Status::invalid_argument(format!("unknown role {role}")))?;
            self.change_role(&node, role, request.force).await?;
            let updated = self
                .manager
                .store()
                .read(|s| s.nodes.get(&node.id).cloned())
                .ok_or_else(|| Status::not_found(format!("No such node: {}", request.node)))?;
            return Ok(Response::new(self.with_manager_status(updated)));
        }
        let mut label_add = Vec::new();
        for entry in &request.label_add {
            let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            if k.is_empty() {
                return Err(Status::invalid_argument(format!(
                    "invalid --label-add {entry:?}: expected KEY=VALUE or KEY"
                )));
            }
            label_add.push((k.to_string(), v.to_string()));
        }
        let labels = node
            .spec
            .as_ref()
            .map(|s| s.labels.clone())
            .unwrap_or_default();
        for key in &request.label_rm {
            if !labels.contains_key(key) && !label_add.iter().any(|(k, _)| k == key) {
                return Err(Status::invalid_argument(format!(
                    "label {key} does not exist on node {}: nothing to remove",
                    node.id
                )));
            }
        }
        let availability = match request.availability {
            Some(a) => Some(
                NodeAvailability::try_from(a)
                    .map_err(|_| Status::invalid_argument(format!("unknown availability {a}")))?,
            ),
            None => None,
        };
        self.manager
            .propose(Command::UpdateNodeSpec {
                node_id: node.id.clone(),
                availability,
                label_add,
                label_rm: request.label_rm,
                at_ms: crate::now_ms(),
            })
            .await?;
        let updated = self
            .manager
            .store()
            .read(|s| s.nodes.get(&node.id).cloned())
            .ok_or_else(|| Status::not_found(format!("No such node: {}", request.node)))?;
        Ok(Response::new(self.with_manager_status(updated)))
    }
}

/// The cluster object without the CA's private keys and the unlock key
/// (only `swarm unlock-key` on a manager's local socket shows it).
fn redact(mut cluster: Cluster) -> Cluster {
    if let Some(ca) = cluster.root_ca.as_mut() {
        ca.key_pem.clear();
    }
    cluster.unlock_key.clear();
    if let Some(ca) = cluster
        .root_rotation
        .as_mut()
        .and_then(|r| r.new_root.as_mut())
    {
        ca.key_pem.clear();
    }
    cluster
}

impl ControlService {
    /// `swarm ca --rotate` on the leader: a new root and its cross-signed
    /// certificate (keys are random, so they are made here and not in the
    /// state machine), and join tokens naming the new root.
    async fn start_root_rotation(&self) -> Result<(), Status> {
        let cluster = self
            .manager
            .store()
            .read(|s| s.cluster.clone())
            .ok_or_else(|| Status::unavailable("the swarm is still being initialized"))?;
        if cluster.root_rotation.is_some() {
            let (on_new, total) = self
                .manager
                .store()
                .read(crate::store::rotation::progress)
                .unwrap_or_default();
            return Err(Status::failed_precondition(format!(
                "a root CA rotation is already in progress ({on_new} of {total} nodes on the \
                 new root): wait for it to finish; a node that is down holds it up until it \
                 comes back or is removed with `shoal node rm`"
            )));
        }
        let current = cluster.root_ca.clone().unwrap_or_default();
        let current = shoal_security::RootCa {
            cert_pem: current.cert_pem,
            key_pem: current.key_pem,
        };
        let (new_root, cross_signed_pem) = current
            .successor(&cluster.id)
            .map_err(|e| Status::internal(format!("could not create the new root CA: {e}")))?;
        let digest = new_root.digest();
        let command = Command::StartRootRotation {
            rotation: shoal_proto::v1::RootRotation {
                new_root: Some(shoal_proto::v1::RootCa {
                    cert_pem: new_root.cert_pem.clone(),
                    key_pem: new_root.key_pem.clone(),
                    digest: digest.clone(),
                }),
                cross_signed_pem,
            },
            join_tokens: shoal_proto::v1::JoinTokens {
                worker: JoinToken::generate(&digest).to_string(),
                manager: JoinToken::generate(&digest).to_string(),
            },
            at_ms: crate::now_ms(),
        };
        self.manager.propose(command).await?;
        tracing::info!(new_root = %digest, "root CA rotation started");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use shoal_proto::v1::{Service, ServiceSpec, UpdateServiceRequest};

    use super::is_committed_update;

    fn spec(replicas: u64) -> ServiceSpec {
        ServiceSpec {
            name: "web".into(),
            replicas,
            ..Default::default()
        }
    }

    fn update(expected: u64, replicas: u64) -> UpdateServiceRequest {
        UpdateServiceRequest {
            service: "web".into(),
            spec: Some(spec(replicas)),
            expected_spec_version: expected,
            rollback: false,
        }
    }

    fn stored(version: u64, replicas: u64) -> Service {
        Service {
            spec: Some(spec(replicas)),
            spec_version: version,
            ..Default::default()
        }
    }

    #[test]
    fn an_update_that_committed_is_recognised_by_its_spec_one_version_on() {
        assert!(is_committed_update(&update(4, 3), &stored(5, 3)));
    }

    #[test]
    fn anything_else_is_not_taken_for_the_callers_write() {
        // Not committed yet: still at the expected version.
        assert!(!is_committed_update(&update(4, 3), &stored(4, 1)));
        // Another writer's spec at the next version.
        assert!(!is_committed_update(&update(4, 3), &stored(5, 2)));
        // The same spec, but further on: another write came in between.
        assert!(!is_committed_update(&update(4, 3), &stored(6, 3)));
        // Unconditional updates and rollbacks are not looked up.
        assert!(!is_committed_update(&update(0, 3), &stored(1, 3)));
        let mut rollback = update(4, 3);
        rollback.rollback = true;
        assert!(!is_committed_update(&rollback, &stored(5, 3)));
    }
}
