//! The node's view of the overlay, as the managers push it.
//!
//! These are the inputs of everything in this crate: the kernel plumbing
//! (devices, forwarding entries, task namespaces), the nftables rules (VIP
//! load balancing, masquerade, isolation of internal networks) and the
//! embedded DNS resolver. They carry only what the managers decided; nothing
//! here is learned from the network, which is why forwarding cannot go stale.
//! The agent converts the dispatcher's wire messages into these types.

use std::net::{IpAddr, Ipv4Addr};

/// An IPv4 subnet: `addr/prefix_len`, `addr` being the network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Subnet {
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
}

/// One overlay network that has at least one task on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayNetwork {
    /// The managers' network ID (stable for the network's lifetime).
    pub id: String,
    /// The operator's name, e.g. `voting_frontend`.
    pub name: String,
    /// VXLAN network identifier, unique in the cluster, chosen by the managers.
    pub vni: u32,
    pub subnet: Ipv4Subnet,
    /// The gateway address: the network's bridge on every node holds it.
    pub gateway: Ipv4Addr,
    /// MTU of the task interfaces; `None` derives it from the underlay
    /// (underlay MTU minus the 50 bytes of VXLAN over IPv4).
    pub mtu: Option<u32>,
    /// No route out of the overlay (Compose `internal: true`).
    pub internal: bool,
}

/// Another node that has tasks on one of this node's networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub node_id: String,
    /// The node's VTEP: its advertise (underlay) address.
    pub vtep: IpAddr,
    /// The networks (IDs) this peer has tasks on.
    pub networks: Vec<String>,
}

/// A task's address on one network, on whichever node runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub task_id: String,
    pub node_id: String,
    pub network_id: String,
    pub addr: Ipv4Addr,
}

/// How a service is found by name on a network (Docker's endpoint modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointMode {
    /// The name resolves to one virtual IP, load-balanced over the backends.
    Vip,
    /// The name resolves to the backends' own addresses (round-robin DNS).
    Dnsrr,
}

/// A service attached to a network: its names, its VIP and its backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEndpoint {
    pub service_id: String,
    /// The service's name, e.g. `voting_vote`.
    pub name: String,
    /// Further names on this network: the stack-less short name (`vote`),
    /// network aliases.
    pub aliases: Vec<String>,
    pub network_id: String,
    pub mode: EndpointMode,
    /// The service's virtual IP on this network (`Vip` mode only).
    pub vip: Option<Ipv4Addr>,
    /// Addresses of the service's running, healthy tasks on this network:
    /// the VIP's load-balancing targets and the answers for `tasks.NAME`.
    pub backends: Vec<Ipv4Addr>,
}

/// Everything this node needs to know about the overlay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeView {
    pub node_id: String,
    /// This node's own VTEP (its advertise address): the source of its VXLAN
    /// packets and the address peers send to. `None` until the node knows it;
    /// nothing is created without it.
    pub vtep: Option<IpAddr>,
    pub networks: Vec<OverlayNetwork>,
    pub peers: Vec<Peer>,
    /// Endpoints of tasks on every node (this one included) on this node's
    /// networks.
    pub endpoints: Vec<Endpoint>,
    pub services: Vec<ServiceEndpoint>,
}

/// Where a local task's network namespace is. The agent knows this, not the
/// managers: it creates the namespace (process tasks) or the engine does
/// (containers, started on the `none` network).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TaskNetns {
    /// A named namespace, `/run/netns/NAME`.
    Named(String),
    /// The namespace of a running process (a container's init).
    Pid(u32),
}

/// A task running on this node that is on one or more overlay networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTask {
    pub task_id: String,
    pub netns: TaskNetns,
    /// The task's networks (IDs) in the order of its spec: the first gets
    /// `eth0`, the next `eth1`, …; the first non-internal one carries the
    /// default route. Its addresses are the view's endpoints of this task.
    pub networks: Vec<String>,
}

/// The MAC address of a task's interface, derived from its IPv4 address as
/// Docker does (`02:42:` then the four address bytes). Every node derives the
/// same MAC for the same address, so the managers never have to send MACs.
pub fn mac_for(addr: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = addr.octets();
    [0x02, 0x42, a, b, c, d]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_is_derived_from_the_address() {
        assert_eq!(
            mac_for(Ipv4Addr::new(10, 0, 1, 5)),
            [0x02, 0x42, 10, 0, 1, 5]
        );
    }
}
