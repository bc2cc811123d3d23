//! Who holds which address on every network, rebuilt from the store
//! ([`usage`]), and what every part of the managers' network code reads of
//! the stored objects: a network's checked addressing and name, a
//! service's networks and endpoint mode, whether a task holds its
//! addresses, and which network is the routing mesh's.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use shoal_proto::v1::{Network, ResolutionMode, Service, Task, TaskState};

use super::ipam::{self, Addressing};
use crate::store::{is_terminal, ClusterState};

/// The ingress network's name, as Docker names it.
pub const INGRESS_NAME: &str = "ingress";

/// The ingress network of the cluster, if it exists.
pub fn ingress_network(state: &ClusterState) -> Option<&Network> {
    state
        .networks
        .values()
        .find(|n| n.spec.as_ref().is_some_and(|s| s.name == INGRESS_NAME))
}

/// Every node's sandbox address.
pub fn sandboxes(state: &ClusterState) -> BTreeMap<String, Ipv4Addr> {
    state
        .nodes
        .values()
        .filter_map(|n| Some((n.id.clone(), ipam::address_of(&n.ingress_sandbox_addr)?)))
        .collect()
}

/// The checked addressing of a stored network.
pub fn addressing(network: &Network) -> Option<Addressing> {
    let ipam = network.ipam.as_ref()?;
    Addressing::new(&ipam.subnet, &ipam.gateway, &ipam.ip_range).ok()
}

/// Whether `task` holds its addresses: it has not ended, and it is either
/// wanted or placed (a placed task may still run until its node says it
/// stopped, so its address is not free before that).
pub fn holds_addresses(task: &Task) -> bool {
    let observed = task.status.as_ref().map(|s| s.state()).unwrap_or_default();
    !is_terminal(observed)
        && (task.desired_state <= TaskState::Running as i32 || !task.node_id.is_empty())
}

/// The networks (IDs) a service's spec attaches it to, in order.
pub fn spec_networks(service: &Service) -> Vec<String> {
    service
        .spec
        .as_ref()
        .and_then(|s| s.task.as_ref())
        .map(|t| t.networks.iter().map(|n| n.target.clone()).collect())
        .unwrap_or_default()
}

/// Whether a service wants VIPs (the default) or round-robin DNS.
pub fn endpoint_mode(service: &Service) -> ResolutionMode {
    service
        .spec
        .as_ref()
        .and_then(|s| s.endpoint.as_ref())
        .map(|e| e.mode())
        .unwrap_or_default()
}

/// Who holds an address (for messages and `network inspect`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    Gateway,
    Vip {
        service_id: String,
    },
    Task {
        task_id: String,
    },
    /// A node's ingress sandbox (on the ingress network only).
    Sandbox {
        node_id: String,
    },
}

/// Every taken address per network ID, rebuilt from the store.
#[derive(Debug, Default, Clone)]
pub struct Usage {
    pub taken: HashMap<String, BTreeMap<u32, Holder>>,
}

impl Usage {
    pub fn taken_set(&self, network_id: &str) -> BTreeSet<u32> {
        self.taken
            .get(network_id)
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default()
    }

    pub fn holder(&self, network_id: &str, addr: Ipv4Addr) -> Option<&Holder> {
        self.taken.get(network_id)?.get(&u32::from(addr))
    }

    pub fn take(&mut self, network_id: &str, addr: Ipv4Addr, holder: Holder) {
        self.taken
            .entry(network_id.to_string())
            .or_default()
            .insert(u32::from(addr), holder);
    }
}

/// What is taken on every network: gateways, the VIPs of existing services,
/// the addresses of tasks that hold theirs ([`holds_addresses`]). Only
/// networks that exist count: an attachment to a removed network holds
/// nothing.
pub fn usage(state: &ClusterState) -> Usage {
    let mut usage = Usage::default();
    for network in state.networks.values() {
        if let Some(a) = addressing(network) {
            usage.take(&network.id, a.gateway, Holder::Gateway);
        }
    }
    for service in state.services.values() {
        for vip in service.endpoint.iter().flat_map(|e| &e.virtual_ips) {
            if let (true, Some(addr)) = (
                state.networks.contains_key(&vip.network_id),
                ipam::address_of(&vip.addr),
            ) {
                usage.take(
                    &vip.network_id,
                    addr,
                    Holder::Vip {
                        service_id: service.id.clone(),
                    },
                );
            }
        }
    }
    if let Some(network) = ingress_network(state) {
        for (node_id, addr) in sandboxes(state) {
            usage.take(
                &network.id,
                addr,
                Holder::Sandbox {
                    node_id: node_id.to_string(),
                },
            );
        }
    }
    for task in state.tasks.values().filter(|t| !t.networks.is_empty()) {
        if !holds_addresses(task) {
            continue;
        }
        for attachment in &task.networks {
            if !state.networks.contains_key(&attachment.network_id) {
                continue;
            }
            for addr in attachment
                .addresses
                .iter()
                .filter_map(|a| ipam::address_of(a))
            {
                usage.take(
                    &attachment.network_id,
                    addr,
                    Holder::Task {
                        task_id: task.id.clone(),
                    },
                );
            }
        }
    }
    usage
}

/// A network's name, or its ID when it has no spec.
pub fn network_name(network: &Network) -> String {
    network
        .spec
        .as_ref()
        .map(|s| s.name.clone())
        .unwrap_or_else(|| network.id.clone())
}
