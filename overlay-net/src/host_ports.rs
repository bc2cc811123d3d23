//! Host-mode published ports of tasks on overlay networks
//! (`--publish mode=host,published=8080,target=80`): the node answers on
//! the published port only while a local task binds it, straight to that
//! task — no mesh, no other node.
//!
//! One DNAT per binding in the node's namespace, as Docker's `DOCKER` chain
//! does for `docker run -p`: connections to any local address (prerouting)
//! and the node's own connections to its non-loopback addresses (output)
//! go to the task's address on the network that carries its default route,
//! so its replies come back through the same bridge, where conntrack undoes
//! the DNAT. No SNAT: the task sees the client's address. The table is
//! replaced whole in one `nft` transaction whenever the local bindings
//! change; open connections live on in conntrack.
//!
//! A task on internal networks only has no route to a client, so it has
//! no binding (Docker does not publish ports of such containers either);
//! the caller decides that ([`binding_address`]).

use std::net::Ipv4Addr;

use crate::ingress::{
    ingress_error, local_dnat_script, nft_apply, IngressError, LocalDnat, Protocol,
};
use crate::model::OverlayNetwork;

/// The table in the node's namespace.
pub const TABLE: &str = "shoal-hostports";

/// One task's host-mode port on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostBinding {
    pub protocol: Protocol,
    pub published: u16,
    pub target: u16,
    /// The task's address the port leads to.
    pub addr: Ipv4Addr,
}

/// The address a task's host-mode ports lead to: its address on the first
/// of its networks that is not internal, which is where its default route
/// points (`crate::reconcile`). `attachments` are the task's networks in
/// order, with its address on each; `None` on internal networks only.
pub fn binding_address(
    attachments: &[(String, Ipv4Addr)],
    networks: &[OverlayNetwork],
) -> Option<Ipv4Addr> {
    attachments
        .iter()
        .find(|(id, _)| networks.iter().any(|n| &n.id == id && !n.internal))
        .map(|(_, addr)| *addr)
}

/// The nft script that makes the node's table hold exactly `bindings`
/// (removing it when there are none). Sorted, so that equal sets give
/// equal scripts.
pub fn rules(bindings: &[HostBinding]) -> String {
    let mut bindings = bindings.to_vec();
    bindings.sort();
    bindings.dedup_by_key(|b| (b.protocol, b.published));
    let dnats: Vec<LocalDnat> = bindings
        .iter()
        .map(|b| LocalDnat {
            protocol: b.protocol,
            published: b.published,
            to: format!("{}:{}", b.addr, b.target),
        })
        .collect();
    local_dnat_script(TABLE, &dnats)
}

/// Makes the calling thread's namespace (the node's) hold `bindings`.
pub fn apply(bindings: &[HostBinding]) -> Result<(), IngressError> {
    nft_apply(&rules(bindings))
}

impl crate::OverlayNode {
    /// Makes the node's table hold exactly `bindings`.
    pub async fn apply_host_ports(
        &self,
        bindings: &[HostBinding],
    ) -> Result<(), crate::OverlayError> {
        let bindings = bindings.to_vec();
        self.run_blocking(move || apply(&bindings))
            .await?
            .map_err(ingress_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::lookup::tests::network;

    #[test]
    fn ports_lead_to_the_address_on_the_first_network_out() {
        let networks = [
            network("back", "back", true),
            network("front", "front", false),
        ];
        let attachments = [
            ("back".to_string(), Ipv4Addr::new(10, 0, 2, 7)),
            ("front".to_string(), Ipv4Addr::new(10, 0, 1, 7)),
        ];
        assert_eq!(
            binding_address(&attachments, &networks),
            Some(Ipv4Addr::new(10, 0, 1, 7))
        );
        assert_eq!(binding_address(&attachments[..1], &networks), None);
    }

    #[test]
    fn rules_dnat_each_port_for_remote_and_own_connections_and_none_remove_the_table() {
        let binding = |protocol, published, last| HostBinding {
            protocol,
            published,
            target: 80,
            addr: Ipv4Addr::new(10, 0, 1, last),
        };
        let script = rules(&[
            binding(Protocol::Udp, 9090, 8),
            binding(Protocol::Tcp, 8080, 7),
        ]);
        let tcp = "fib daddr type local tcp dport 8080 dnat to 10.0.1.7:80";
        let udp = "fib daddr type local udp dport 9090 dnat to 10.0.1.8:80";
        assert_eq!(script.matches(tcp).count(), 2, "{script}");
        assert_eq!(script.matches(udp).count(), 2, "{script}");
        assert!(
            script.contains(&format!("ip daddr != 127.0.0.0/8 {tcp}")),
            "{script}"
        );
        assert!(script.find(tcp) < script.find(udp), "sorted: {script}");
        assert_eq!(
            rules(&[]),
            format!("table ip {TABLE} {{}}\ndelete table ip {TABLE}\n")
        );
    }
}
