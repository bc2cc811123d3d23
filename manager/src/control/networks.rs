//! The control API's network calls (`network create|ls|inspect|rm`) and the
//! network half of `service create|update`: targets named by name or ID
//! stored as IDs, unknown networks refused, a new service's VIPs allocated
//! with it.

use shoal_proto::v1::{
    CreateNetworkRequest, Endpoint, GetNetworkRequest, ListNetworksRequest, ListNetworksResponse,
    Network, NetworkAddress, NetworkInfo, RemoveNetworkRequest, RemoveNetworkResponse, Service,
    ServiceSpec,
};
use tonic::{Request, Response, Status};

use super::ControlService;
use crate::network::{self, Holder};
use crate::store::{ClusterState, Command, StoreError};

/// Finds a network by ID, name or unique ID prefix.
pub fn resolve_network<'a>(
    state: &'a ClusterState,
    reference: &str,
) -> Result<&'a Network, Status> {
    if reference.is_empty() {
        return Err(Status::invalid_argument("a network name or ID is required"));
    }
    if let Some(network) = state.networks.get(reference) {
        return Ok(network);
    }
    if let Some(network) = state
        .networks
        .values()
        .find(|n| n.spec.as_ref().is_some_and(|s| s.name == reference))
    {
        return Ok(network);
    }
    let found: Vec<&Network> = state
        .networks
        .values()
        .filter(|n| n.id.starts_with(reference))
        .collect();
    match found.len() {
        1 => Ok(found[0]),
        0 => Err(Status::not_found(format!(
            "network {reference} not found: create it with `shoal network create {reference}`, or see `shoal network ls`"
        ))),
        n => Err(Status::failed_precondition(format!(
            "network {reference} is ambiguous ({n} matches): use the full ID or the name"
        ))),
    }
}

/// Rewrites the spec's network targets to IDs, refusing unknown networks,
/// a network named twice and bad aliases.
pub fn resolve_spec_networks(state: &ClusterState, spec: &mut ServiceSpec) -> Result<(), Status> {
    let Some(task) = spec.task.as_mut() else {
        return Ok(());
    };
    let mut seen = Vec::new();
    for attachment in &mut task.networks {
        let network = resolve_network(state, &attachment.target)?;
        if seen.contains(&network.id) {
            return Err(Status::invalid_argument(format!(
                "network {} is given twice: attach a service to a network once (aliases go with it)",
                attachment.target
            )));
        }
        for alias in &attachment.aliases {
            crate::spec::validate_alias(alias).map_err(Status::invalid_argument)?;
        }
        seen.push(network.id.clone());
        attachment.target = network.id.clone();
    }
    Ok(())
}

/// The VIPs a new or changed service would have, or why it cannot get one.
pub fn plan_vips(state: &ClusterState, service: &Service) -> Result<Option<Endpoint>, Status> {
    let mut usage = network::usage(state);
    match network::service_vips(state, service, &mut usage) {
        (_, Some(name)) => Err(Status::resource_exhausted(format!(
            "network {name} has no free address left for the service's virtual IP: remove services from it, or use a network with a larger subnet (or --endpoint-mode dnsrr)"
        ))),
        (virtual_ips, None) if virtual_ips.is_empty() && service.endpoint.is_none() => Ok(None),
        (virtual_ips, None) => Ok(Some(Endpoint {
            virtual_ips,
            ports: network::ports::endpoint_ports(service).to_vec(),
        })),
    }
}

/// The published ports a new or changed service would get (the same
/// function the store applies), or why not: a clash naming the holder, a
/// bad number, a service only on internal networks.
pub fn check_published_ports(
    state: &ClusterState,
    service: &Service,
) -> Result<Vec<shoal_proto::v1::PortConfig>, Status> {
    let wanted = network::ports::spec_ports(service);
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let attached: Vec<&Network> = network::spec_networks(service)
        .iter()
        .filter_map(|id| state.networks.get(id))
        .collect();
    if !attached.is_empty()
        && attached
            .iter()
            .all(|n| n.spec.as_ref().is_some_and(|s| s.internal))
    {
        let names: Vec<String> = attached.iter().map(|n| network::network_name(n)).collect();
        return Err(Status::invalid_argument(format!(
            "the service publishes ports but is only on internal network(s) {}: an internal network has no way in from outside; attach it to a non-internal network too, or drop --publish",
            names.join(", ")
        )));
    }
    network::ports::assign_ports(
        state,
        &service.id,
        wanted,
        network::ports::endpoint_ports(service),
    )
    .map_err(|m| {
        if m.contains("already in use") {
            Status::already_exists(m)
        } else {
            Status::invalid_argument(m)
        }
    })
}

/// Who holds which address on `network` (gateway, VIPs, tasks), in address order.
fn addresses(state: &ClusterState, network: &Network) -> Vec<NetworkAddress> {
    let usage = network::usage(state);
    let Some(taken) = usage.taken.get(&network.id) else {
        return Vec::new();
    };
    let prefix = network::addressing(network)
        .map(|a| a.subnet.prefix())
        .unwrap_or(32);
    let service_name = |id: &str| {
        state
            .services
            .get(id)
            .and_then(|s| s.spec.as_ref())
            .map(|s| s.name.clone())
            .unwrap_or_default()
    };
    taken
        .iter()
        .map(|(addr, holder)| {
            let addr = format!("{}/{prefix}", std::net::Ipv4Addr::from(*addr));
            match holder {
                Holder::Gateway => NetworkAddress {
                    kind: "gateway".into(),
                    addr,
                    ..Default::default()
                },
                Holder::Vip { service_id } => NetworkAddress {
                    kind: "vip".into(),
                    addr,
                    service_id: service_id.clone(),
                    service_name: service_name(service_id),
                    ..Default::default()
                },
                Holder::Sandbox { node_id } => NetworkAddress {
                    kind: "sandbox".into(),
                    addr,
                    node_id: node_id.clone(),
                    ..Default::default()
                },
                Holder::Task { task_id } => {
                    let task = state.tasks.get(task_id).cloned().unwrap_or_default();
                    NetworkAddress {
                        kind: "task".into(),
                        addr,
                        service_name: service_name(&task.service_id),
                        service_id: task.service_id.clone(),
                        task_name: format!("{}.{}", task.service_name, task.slot),
                        task_id: task.id,
                        node_id: task.node_id,
                    }
                }
            }
        })
        .collect()
}

fn store_status(e: crate::ManagerError) -> Status {
    match e {
        crate::ManagerError::Store(StoreError::Conflict(m)) => Status::failed_precondition(m),
        other => other.into(),
    }
}

impl ControlService {
    pub(super) async fn create_network_here(
        &self,
        request: Request<CreateNetworkRequest>,
    ) -> Result<Response<Network>, Status> {
        let spec = request
            .into_inner()
            .spec
            .ok_or_else(|| Status::invalid_argument("a network spec is required"))?;
        if spec.name == network::ingress::INGRESS_NAME {
            return Err(Status::invalid_argument(
                "the name ingress is reserved for the routing mesh's network, which the managers create with the first published port: choose another name",
            ));
        }
        // A concurrent create may take the subnet or VXLAN ID chosen here;
        // the store refuses it, and the choice is made again.
        let mut attempt = 0;
        loop {
            let id = crate::new_id();
            let now = crate::now_ms();
            let network = self
                .manager
                .store()
                .read(|s| network::spec::plan(s, spec.clone(), id, now))
                .map_err(|e| {
                    if e.contains("already exists") {
                        Status::already_exists(e)
                    } else {
                        Status::invalid_argument(e)
                    }
                })?;
            match self
                .manager
                .propose(Command::CreateNetwork(network.clone()))
                .await
            {
                Ok(()) => return Ok(Response::new(network)),
                Err(crate::ManagerError::Store(StoreError::Conflict(m)))
                    if attempt < 3 && !m.contains("already exists") =>
                {
                    attempt += 1;
                }
                Err(e) => return Err(store_status(e)),
            }
        }
    }

    pub(super) async fn list_networks_here(
        &self,
        _request: Request<ListNetworksRequest>,
    ) -> Result<Response<ListNetworksResponse>, Status> {
        let networks = self
            .manager
            .store()
            .read(|s| s.networks.values().cloned().collect());
        Ok(Response::new(ListNetworksResponse { networks }))
    }

    pub(super) async fn get_network_here(
        &self,
        request: Request<GetNetworkRequest>,
    ) -> Result<Response<NetworkInfo>, Status> {
        let reference = request.into_inner().network;
        let info = self.manager.store().read(|s| {
            let network = resolve_network(s, &reference)?;
            Ok::<_, Status>(NetworkInfo {
                network: Some(network.clone()),
                addresses: addresses(s, network),
            })
        })?;
        Ok(Response::new(info))
    }

    pub(super) async fn remove_network_here(
        &self,
        request: Request<RemoveNetworkRequest>,
    ) -> Result<Response<RemoveNetworkResponse>, Status> {
        let reference = request.into_inner().network;
        let (id, name, users) = self.manager.store().read(|s| {
            let network = resolve_network(s, &reference)?;
            Ok::<_, Status>((
                network.id.clone(),
                network::network_name(network),
                s.services_using(&network.id),
            ))
        })?;
        if name == network::ingress::INGRESS_NAME {
            return Err(Status::failed_precondition(
                "the ingress network carries the routing mesh of published ports and cannot be removed (with no port published it carries nothing)",
            ));
        }
        if !users.is_empty() {
            return Err(Status::failed_precondition(format!(
                "network {name} is in use by service{} {}: remove {} or detach {} with `shoal service update --network-rm {name}` first",
                if users.len() == 1 { "" } else { "s" },
                users.join(", "),
                if users.len() == 1 { "it" } else { "them" },
                if users.len() == 1 { "it" } else { "them" },
            )));
        }
        self.manager
            .propose(Command::RemoveNetwork {
                network_id: id.clone(),
            })
            .await
            .map_err(store_status)?;
        Ok(Response::new(RemoveNetworkResponse { network_id: id }))
    }
}
