//! The routing mesh, managers' side (pure): the ingress network, every
//! node's sandbox address on it, which tasks join it, and the mesh's part
//! of each node's network view.
//!
//! - The ingress network is the one named [`INGRESS_NAME`] (Docker's). The
//!   leader creates it with the first service that publishes a port in
//!   ingress mode ([`ensure_network`]), on 10.255.0.0/16 unless that is
//!   taken (then from the default pools); it stays afterwards, as Docker's
//!   does, and users can neither create nor remove a network of that name.
//! - A node that can do overlay networking gets a **sandbox address** on it
//!   ([`allocate_sandboxes`]), held by the node object
//!   (`Node.ingress_sandbox_addr`): removing the node releases it.
//! - Tasks of a service with ingress-mode ports get an address on it
//!   ([`network_for`]; `network::wanted_networks`) before they are placed.
//!   A task placed on a node without a sandbox (no overlay there) runs
//!   without its mesh interface and is no backend: nothing could reach it.
//! - [`Mesh`] is computed once per store version and shared by every
//!   session; [`Mesh::add_to`] puts one node's part into its view.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use shoal_proto::v1::{
    IngressPort, IngressSandbox, IngressView, IpamConfig, Network, NetworkSpec, NetworkView, Node,
    OverlayEndpoint, OverlayNetwork, OverlayPeer, PublishMode, Service, Task,
};

use super::usage::{addressing, holds_addresses, Holder, Usage};
use super::view::{serving, vtep_of, wire_network};
use super::{ipam, ports, spec};
use crate::store::{ClusterState, Command};

pub use super::usage::{ingress_network, sandboxes, INGRESS_NAME};
/// The ingress network's subnet when it is free (Docker uses 10.0.0.0/24;
/// a /24 caps the mesh at 254 tasks and nodes together).
pub const INGRESS_SUBNET: &str = "10.255.0.0/16";

/// Whether a service publishes a port in ingress mode (allocated).
pub fn publishes_ingress(service: &Service) -> bool {
    ports::endpoint_ports(service)
        .iter()
        .any(|p| p.publish_mode == PublishMode::Ingress as i32 && p.published_port != 0)
}

/// The ingress network `task` needs an address on: its service publishes
/// in ingress mode and the network exists.
pub fn network_for<'a>(state: &'a ClusterState, task: &Task) -> Option<&'a Network> {
    let service = state.services.get(&task.service_id)?;
    if !publishes_ingress(service) {
        return None;
    }
    ingress_network(state)
}

/// The ingress network to create, when a service publishes in ingress mode
/// and there is none yet.
pub fn ensure_network(state: &ClusterState, id: String, now_ms: i64) -> Option<Command> {
    if ingress_network(state).is_some() || !state.services.values().any(publishes_ingress) {
        return None;
    }
    let spec_on = |subnet: &str| NetworkSpec {
        name: INGRESS_NAME.into(),
        driver: spec::OVERLAY.into(),
        ipam: Some(IpamConfig {
            subnet: subnet.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let network = spec::plan(state, spec_on(INGRESS_SUBNET), id.clone(), now_ms)
        .or_else(|_| spec::plan(state, spec_on(""), id, now_ms));
    match network {
        Ok(network) => Some(Command::CreateNetwork(network)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot create the ingress network");
            None
        }
    }
}

/// Whether a node can hold a sandbox: it reported overlay support and has
/// an address to be reached at.
fn overlay_capable(node: &Node) -> bool {
    node.description
        .as_ref()
        .and_then(|d| d.overlay.as_ref())
        .is_some_and(|o| o.supported)
        && node.status.as_ref().is_some_and(|s| !s.addr.is_empty())
}

/// Sandbox addresses for capable nodes that have none, taken from `usage`.
pub fn allocate_sandboxes(state: &ClusterState, usage: &mut Usage) -> Option<Command> {
    let network = ingress_network(state)?;
    let a = addressing(network)?;
    let mut assignments = Vec::new();
    for node in state
        .nodes
        .values()
        .filter(|n| n.ingress_sandbox_addr.is_empty() && overlay_capable(n))
    {
        let Some(addr) = a.first_free(&usage.taken_set(&network.id)) else {
            tracing::warn!(network = %a.subnet, "the ingress network has no address left for a node's sandbox");
            break;
        };
        usage.take(
            &network.id,
            addr,
            Holder::Sandbox {
                node_id: node.id.clone(),
            },
        );
        assignments.push((node.id.clone(), a.subnet.with_prefix(addr)));
    }
    (!assignments.is_empty()).then_some(Command::SetIngressSandboxes { assignments })
}

/// The mesh's part of every node's view, computed once per store version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mesh {
    /// The ingress network, if it exists.
    pub network: Option<OverlayNetwork>,
    /// Every node with a sandbox and an address (the ingress network's
    /// peers: each sandbox reaches backends on every node).
    pub peers: Vec<OverlayPeer>,
    /// The tasks on the ingress network placed on sandbox nodes.
    pub endpoints: Vec<OverlayEndpoint>,
    /// Node IDs that have a placed task on the ingress network.
    pub task_nodes: std::collections::BTreeSet<String>,
    /// What is published, `None` when nothing is (nodes remove their mesh).
    pub view: Option<IngressView>,
}

impl Mesh {
    pub fn of(state: &ClusterState) -> Mesh {
        let Some(network) = ingress_network(state) else {
            return Mesh::default();
        };
        let sandboxes = sandboxes(state);
        let peers: Vec<OverlayPeer> = sandboxes
            .keys()
            .filter_map(|id| {
                Some(OverlayPeer {
                    node_id: id.clone(),
                    vtep: vtep_of(state, id)?,
                    network_ids: vec![network.id.clone()],
                })
            })
            .collect();
        let mut endpoints = Vec::new();
        let mut task_nodes = std::collections::BTreeSet::new();
        for task in state
            .tasks
            .values()
            .filter(|t| !t.node_id.is_empty() && holds_addresses(t))
        {
            for attachment in task.networks.iter().filter(|a| a.network_id == network.id) {
                task_nodes.insert(task.node_id.clone());
                if !sandboxes.contains_key(&task.node_id) {
                    continue;
                }
                for addr in attachment
                    .addresses
                    .iter()
                    .filter_map(|a| ipam::address_of(a))
                {
                    endpoints.push(OverlayEndpoint {
                        task_id: task.id.clone(),
                        node_id: task.node_id.clone(),
                        network_id: network.id.clone(),
                        addr: addr.to_string(),
                    });
                }
            }
        }
        endpoints.sort_by(|a, b| (&a.addr, &a.task_id).cmp(&(&b.addr, &b.task_id)));
        Mesh {
            network: Some(wire_network(network)),
            peers,
            endpoints,
            task_nodes,
            view: ingress_view(state, &sandboxes),
        }
    }

    /// Adds the mesh to `node_id`'s view (built by `view::node_view`, which
    /// leaves the ingress network out): the published ports for every node
    /// (each answers on every port: through its sandbox, or in userspace by
    /// forwarding to a node that has one), and the network, its peers and
    /// endpoints when the node has a sandbox and something is published or
    /// the node has tasks on it.
    pub fn add_to(&self, node_id: &str, view: &mut NetworkView) {
        let Some(network) = self.network.as_ref() else {
            return;
        };
        view.ingress = self.view.clone();
        let has_sandbox = self.peers.iter().any(|p| p.node_id == node_id);
        let serves = has_sandbox && self.view.is_some();
        if !serves && !self.task_nodes.contains(node_id) {
            return;
        }
        view.networks.push(network.clone());
        for peer in self.peers.iter().filter(|p| p.node_id != node_id) {
            match view.peers.iter_mut().find(|p| p.node_id == peer.node_id) {
                Some(existing) => existing.network_ids.push(network.id.clone()),
                None => view.peers.push(peer.clone()),
            }
        }
        view.peers.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        view.endpoints.extend(self.endpoints.iter().cloned());
    }
}

/// The mesh's view, or `None` when no service publishes an ingress-mode
/// port or there is no ingress network yet (a node then removes its mesh).
/// Deterministic (sorted), so the dispatcher can compare it with the last
/// one sent. Backends are the ingress addresses of tasks desired and
/// observed running (running means healthy for a task with a health
/// check): a task being stopped leaves at once.
pub fn ingress_view(
    state: &ClusterState,
    sandboxes: &BTreeMap<String, Ipv4Addr>,
) -> Option<IngressView> {
    let network = ingress_network(state)?;
    let mut published = Vec::new();
    for service in state.services.values() {
        for p in ports::endpoint_ports(service) {
            if p.publish_mode != PublishMode::Ingress as i32 || p.published_port == 0 {
                continue;
            }
            let mut backends: Vec<String> = state
                .tasks
                .values()
                // A task on a node without a sandbox is not on the mesh.
                .filter(|t| {
                    t.service_id == service.id && sandboxes.contains_key(&t.node_id) && serving(t)
                })
                .flat_map(|t| &t.networks)
                .filter(|a| a.network_id == network.id)
                .flat_map(|a| a.addresses.iter().filter_map(|x| ipam::address_of(x)))
                .map(|a| a.to_string())
                .collect();
            backends.sort();
            backends.dedup();
            published.push(IngressPort {
                service_id: service.id.clone(),
                protocol: ports::protocol_name(p.protocol).to_string(),
                published: p.published_port,
                target: p.target_port,
                backends,
                proxy_protocol: ports::wants_proxy_protocol(service),
            });
        }
    }
    if published.is_empty() {
        return None;
    }
    published.sort_by(|a, b| (&a.protocol, a.published).cmp(&(&b.protocol, b.published)));
    Some(IngressView {
        network: Some(wire_network(network)),
        sandboxes: sandboxes
            .iter()
            .map(|(node_id, addr)| IngressSandbox {
                node_id: node_id.clone(),
                addr: addr.to_string(),
                vtep: vtep_of(state, node_id).unwrap_or_default(),
            })
            .collect(),
        ports: published,
    })
}

#[cfg(test)]
mod tests;
