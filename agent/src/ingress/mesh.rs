//! The managers' ingress view (wire) as this node serves it (pure): the
//! kernel mesh's input (`shoal_overlay_net::ingress::IngressView`) and, on
//! a node whose path is userspace, the proxy's ports, forwarding to the
//! nodes whose kernel mesh serves them.
//!
//! Entries the managers would never send (an unparsable address, an
//! unknown protocol, a port out of range) are skipped with a warning, as
//! the overlay view's are: one bad entry must not unpublish the others.

use std::net::{IpAddr, SocketAddr};

use shoal_overlay_net::ingress::{IngressView, Protocol, PublishedPort};
use shoal_proto::v1::IngressView as WireIngress;

use super::proxy::{self, ProxiedPort};
use crate::overlay::view::{bare_addr, overlay_network};

fn protocol(name: &str) -> Option<Protocol> {
    match name {
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        _ => None,
    }
}

/// The kernel mesh's view; `None` when the wire view carries no usable
/// ingress network (the node then removes its mesh).
pub fn mesh_view(wire: &WireIngress) -> Option<IngressView> {
    let network = overlay_network(wire.network.as_ref()?)?;
    let sandboxes = wire
        .sandboxes
        .iter()
        .filter_map(|s| Some((s.node_id.clone(), bare_addr(&s.addr)?)))
        .collect();
    let ports = wire
        .ports
        .iter()
        .filter_map(|p| {
            let (Some(protocol), Ok(published), Ok(target)) = (
                protocol(&p.protocol),
                u16::try_from(p.published),
                u16::try_from(p.target),
            ) else {
                tracing::warn!(port = p.published, protocol = %p.protocol, "skipping a malformed published port");
                return None;
            };
            Some(PublishedPort {
                service_id: p.service_id.clone(),
                protocol,
                published,
                target,
                backends: p.backends.iter().filter_map(|b| bare_addr(b)).collect(),
            })
        })
        .collect();
    Some(IngressView {
        network,
        sandboxes,
        ports,
    })
}

/// The userspace proxy's ports on node `me` when it serves published ports
/// without the kernel mesh: each port forwards to the same port of every
/// other node that has a sandbox (its own node address, the VTEP), whose
/// mesh balances it over the backends. Task addresses are no use here: a
/// node without the kernel mesh is not on the ingress network. The client's
/// address is lost on this hop (the backend sees this node's), unless the
/// service asked for a PROXY protocol header (`IngressPort.proxy_protocol`),
/// which carries it ahead.
pub fn entry_ports(wire: &WireIngress, me: &str) -> Vec<ProxiedPort> {
    let entries: Vec<IpAddr> = wire
        .sandboxes
        .iter()
        .filter(|s| s.node_id != me)
        .filter_map(|s| s.vtep.parse().ok())
        .collect();
    wire.ports
        .iter()
        .filter_map(|p| {
            let protocol = match protocol(&p.protocol)? {
                Protocol::Tcp => proxy::Protocol::Tcp,
                Protocol::Udp => proxy::Protocol::Udp,
            };
            let published = u16::try_from(p.published).ok().filter(|p| *p != 0)?;
            Some(ProxiedPort {
                protocol,
                published,
                backends: entries
                    .iter()
                    .map(|ip| SocketAddr::new(*ip, published))
                    .collect(),
                proxy_protocol: p.proxy_protocol && protocol == proxy::Protocol::Tcp,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use shoal_proto::v1::{IngressPort, IngressSandbox, OverlayNetwork as WireNetwork};

    use super::*;

    fn wire() -> WireIngress {
        WireIngress {
            network: Some(WireNetwork {
                id: "ing".into(),
                name: "ingress".into(),
                vni: 4096,
                subnet: "10.255.0.0/24".into(),
                gateway: "10.255.0.1".into(),
                mtu: 0,
                internal: false,
            }),
            sandboxes: vec![
                IngressSandbox {
                    node_id: "n1".into(),
                    addr: "10.255.0.2".into(),
                    vtep: "10.77.0.1".into(),
                },
                IngressSandbox {
                    node_id: "n2".into(),
                    addr: "10.255.0.3".into(),
                    vtep: "10.77.0.2".into(),
                },
            ],
            ports: vec![
                IngressPort {
                    service_id: "web".into(),
                    protocol: "tcp".into(),
                    published: 8080,
                    target: 80,
                    backends: vec!["10.255.0.10".into(), "junk".into()],
                    proxy_protocol: true,
                },
                IngressPort {
                    service_id: "bad".into(),
                    protocol: "sctp".into(),
                    published: 9,
                    target: 9,
                    backends: vec![],
                    proxy_protocol: false,
                },
            ],
        }
    }

    #[test]
    fn the_wire_view_becomes_the_mesh() {
        let view = mesh_view(&wire()).unwrap();
        assert_eq!(view.network.subnet.prefix_len, 24);
        assert_eq!(
            view.sandboxes[0],
            ("n1".to_string(), Ipv4Addr::new(10, 255, 0, 2))
        );
        assert_eq!(view.ports.len(), 1, "the unknown protocol is skipped");
        assert_eq!(view.ports[0].backends, vec![Ipv4Addr::new(10, 255, 0, 10)]);
    }

    #[test]
    fn a_userspace_node_forwards_each_port_to_the_other_sandbox_nodes() {
        let ports = entry_ports(&wire(), "n2");
        assert_eq!(ports.len(), 1, "the unknown protocol is skipped");
        assert_eq!(ports[0].published, 8080);
        assert_eq!(
            ports[0].backends,
            vec!["10.77.0.1:8080".parse::<SocketAddr>().unwrap()],
            "the published port of every sandbox node but itself"
        );
        assert!(ports[0].proxy_protocol, "as the service asked");
    }

    #[test]
    fn no_network_means_no_mesh() {
        let mut w = wire();
        w.network = None;
        assert!(mesh_view(&w).is_none());
    }
}
