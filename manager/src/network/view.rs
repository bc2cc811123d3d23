//! The overlay as one node needs it (pure): the networks its tasks are on,
//! the other nodes with tasks on those networks (VTEP = their advertise
//! address), every endpoint on them, and each attached service's names, VIP
//! and running backends. The dispatcher sends it with the node's tasks.

use std::collections::{BTreeMap, BTreeSet};

use shoal_proto::v1::{
    Network, NetworkView, OverlayEndpoint, OverlayNetwork, OverlayPeer, ServiceEndpoint, Task,
    TaskState,
};

use super::usage::{endpoint_mode, holds_addresses, ingress_network};
use super::{ipam, spec::mtu};
use crate::store::ClusterState;

/// Docker's label naming a service's stack: its tasks also answer to the
/// name without the `STACK_` prefix.
const NAMESPACE_LABEL: &str = "com.docker.stack.namespace";

/// Tasks that take part in the overlay: placed on a node and still holding
/// their addresses.
fn placed(task: &Task) -> bool {
    !task.node_id.is_empty() && !task.networks.is_empty() && holds_addresses(task)
}

/// A backend: desired and observed Running (RUNNING means healthy for a
/// task with a health check).
pub(super) fn serving(task: &Task) -> bool {
    task.desired_state == TaskState::Running as i32
        && task
            .status
            .as_ref()
            .is_some_and(|s| s.state() == TaskState::Running)
}

/// A stored network as a node's view carries it.
pub(super) fn wire_network(network: &Network) -> OverlayNetwork {
    let spec = network.spec.clone().unwrap_or_default();
    let ipam = network.ipam.clone().unwrap_or_default();
    OverlayNetwork {
        id: network.id.clone(),
        name: spec.name.clone(),
        vni: network.vni,
        subnet: ipam.subnet,
        gateway: ipam.gateway,
        mtu: mtu(&spec).ok().flatten().unwrap_or(0),
        internal: spec.internal,
    }
}

/// A node's VTEP: the address recorded in its status, if any.
pub(super) fn vtep_of(state: &ClusterState, node_id: &str) -> Option<String> {
    state
        .nodes
        .get(node_id)
        .and_then(|n| n.status.as_ref())
        .map(|s| s.addr.clone())
        .filter(|a| !a.is_empty())
}

/// The view for `node_id`. Deterministic (sorted), so the dispatcher can
/// compare it with the last one sent.
///
/// The ingress network is left out: its peers and endpoints are the mesh's
/// ([`super::ingress::Mesh::add_to`] adds them).
pub fn node_view(state: &ClusterState, node_id: &str) -> NetworkView {
    let ingress = ingress_network(state).map(|n| n.id.as_str());
    let mine: BTreeSet<&str> = state
        .tasks
        .values()
        .filter(|t| t.node_id == node_id && placed(t))
        .flat_map(|t| t.networks.iter().map(|a| a.network_id.as_str()))
        .filter(|id| state.networks.contains_key(*id) && Some(*id) != ingress)
        .collect();
    let mut view = NetworkView::default();
    if mine.is_empty() {
        return view;
    }
    for id in &mine {
        let network = &state.networks[*id];
        view.networks.push(wire_network(network));
    }
    let mut peers: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut backends: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for task in state.tasks.values().filter(|t| placed(t)) {
        for attachment in &task.networks {
            if !mine.contains(attachment.network_id.as_str()) {
                continue;
            }
            if task.node_id != node_id {
                peers
                    .entry(task.node_id.as_str())
                    .or_default()
                    .insert(attachment.network_id.as_str());
            }
            for addr in attachment
                .addresses
                .iter()
                .filter_map(|a| ipam::address_of(a))
            {
                view.endpoints.push(OverlayEndpoint {
                    task_id: task.id.clone(),
                    node_id: task.node_id.clone(),
                    network_id: attachment.network_id.clone(),
                    addr: addr.to_string(),
                });
                if serving(task) {
                    backends
                        .entry((task.service_id.as_str(), attachment.network_id.as_str()))
                        .or_default()
                        .push(addr.to_string());
                }
            }
        }
    }
    for (peer, networks) in peers {
        // A node without a recorded address cannot be reached: it is left
        // out rather than sent with an empty VTEP.
        let Some(vtep) = vtep_of(state, peer) else {
            continue;
        };
        view.peers.push(OverlayPeer {
            node_id: peer.to_string(),
            vtep,
            network_ids: networks.into_iter().map(String::from).collect(),
        });
    }
    for service in state.services.values() {
        let Some(spec) = service.spec.as_ref() else {
            continue;
        };
        let short = spec
            .labels
            .get(NAMESPACE_LABEL)
            .and_then(|stack| spec.name.strip_prefix(&format!("{stack}_")))
            .map(String::from);
        for attachment in spec.task.iter().flat_map(|t| &t.networks) {
            if !mine.contains(attachment.target.as_str()) {
                continue;
            }
            let mut aliases: Vec<String> = short.iter().cloned().collect();
            for alias in &attachment.aliases {
                if !aliases.contains(alias) && alias != &spec.name {
                    aliases.push(alias.clone());
                }
            }
            let vip = service
                .endpoint
                .iter()
                .flat_map(|e| &e.virtual_ips)
                .find(|v| v.network_id == attachment.target)
                .and_then(|v| ipam::address_of(&v.addr))
                .map(|a| a.to_string())
                .unwrap_or_default();
            let mut list = backends
                .remove(&(service.id.as_str(), attachment.target.as_str()))
                .unwrap_or_default();
            list.sort();
            view.services.push(ServiceEndpoint {
                service_id: service.id.clone(),
                name: spec.name.clone(),
                aliases,
                network_id: attachment.target.clone(),
                mode: endpoint_mode(service) as i32,
                vip,
                backends: list,
            });
        }
    }
    view.endpoints.sort_by(|a, b| {
        (&a.network_id, &a.addr, &a.task_id).cmp(&(&b.network_id, &b.addr, &b.task_id))
    });
    view
}
