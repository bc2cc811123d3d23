//! `service create/ls/inspect/update/rm` and `service ps`, served on the
//! leader (reads also on any manager with `--local`).

use shoal_proto::v1::{
    CreateServiceRequest, GetServiceRequest, ListServicesRequest, ListServicesResponse,
    ListTasksRequest, ListTasksResponse, Meta, RemoveServiceRequest, RemoveServiceResponse,
    Service, ServiceInfo, TaskInfo, TaskState, UpdateServiceRequest,
};
use tonic::{Request, Response, Status};

use super::nodes::resolve_node;
use super::{grants, networks, ControlService};
use crate::store::{ClusterState, Command};

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

impl ControlService {
    pub(super) async fn create_service_here(
        &self,
        request: Request<CreateServiceRequest>,
    ) -> Result<Response<Service>, Status> {
        self.create_service_impl(request.into_inner())
            .await
            .map(Response::new)
    }

    pub(super) async fn list_services_here(
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

    pub(super) async fn get_service_here(
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

    pub(super) async fn update_service_here(
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
                grants::resolve_spec_grants(s, &mut spec)?;
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

    pub(super) async fn remove_service_here(
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

    pub(super) async fn list_tasks_here(
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

    async fn create_service_impl(&self, request: CreateServiceRequest) -> Result<Service, Status> {
        let mut spec = request
            .spec
            .ok_or_else(|| Status::invalid_argument("a service spec is required"))?;
        crate::spec::validate_service_spec(&spec).map_err(Status::invalid_argument)?;
        self.check_mounts(&spec)?;
        self.manager.store().read(|s| {
            networks::resolve_spec_networks(s, &mut spec)?;
            grants::resolve_spec_grants(s, &mut spec)
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
