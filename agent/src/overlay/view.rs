//! From the dispatcher's `NetworkView` (wire) to overlay-net's `NodeView`.
//!
//! Pure. Entries the managers would never send (an unparsable subnet or
//! address) are skipped with a warning rather than failing the whole view:
//! one bad entry must not take every other task off the network.

use std::net::{IpAddr, Ipv4Addr};

use shoal_overlay_net::model::{
    Endpoint, EndpointMode, Ipv4Subnet, NodeView, OverlayNetwork, Peer, ServiceEndpoint,
};
use shoal_proto::v1::{NetworkView, OverlayNetwork as WireNetwork, ResolutionMode};

/// The node's view: `wire` plus what only the node knows (its ID and VTEP).
pub fn node_view(node_id: &str, vtep: Option<IpAddr>, wire: &NetworkView) -> NodeView {
    let networks = wire.networks.iter().filter_map(overlay_network).collect();
    let peers = wire
        .peers
        .iter()
        .filter_map(|p| {
            Some(Peer {
                node_id: p.node_id.clone(),
                vtep: p.vtep.parse().ok()?,
                networks: p.network_ids.clone(),
            })
        })
        .collect();
    let endpoints = wire
        .endpoints
        .iter()
        .filter_map(|e| {
            Some(Endpoint {
                task_id: e.task_id.clone(),
                node_id: e.node_id.clone(),
                network_id: e.network_id.clone(),
                addr: bare_addr(&e.addr)?,
            })
        })
        .collect();
    let services = wire
        .services
        .iter()
        .map(|s| ServiceEndpoint {
            service_id: s.service_id.clone(),
            name: s.name.clone(),
            aliases: s.aliases.clone(),
            network_id: s.network_id.clone(),
            mode: if s.mode == ResolutionMode::Dnsrr as i32 {
                EndpointMode::Dnsrr
            } else {
                EndpointMode::Vip
            },
            vip: bare_addr(&s.vip),
            backends: s.backends.iter().filter_map(|b| bare_addr(b)).collect(),
        })
        .collect();
    NodeView {
        node_id: node_id.to_string(),
        vtep,
        networks,
        peers,
        endpoints,
        services,
    }
}

/// One wire network as overlay-net's; `None` (said in the log) when its
/// subnet or gateway does not parse.
pub fn overlay_network(n: &WireNetwork) -> Option<OverlayNetwork> {
    let Some(subnet) = parse_subnet(&n.subnet) else {
        tracing::warn!(network = %n.name, subnet = %n.subnet, "skipping a network with a malformed subnet");
        return None;
    };
    let Ok(gateway) = n.gateway.parse::<Ipv4Addr>() else {
        tracing::warn!(network = %n.name, gateway = %n.gateway, "skipping a network with a malformed gateway");
        return None;
    };
    Some(OverlayNetwork {
        id: n.id.clone(),
        name: n.name.clone(),
        vni: n.vni,
        subnet,
        gateway,
        mtu: (n.mtu > 0).then_some(n.mtu),
        internal: n.internal,
    })
}

/// `10.0.1.0/24`.
fn parse_subnet(text: &str) -> Option<Ipv4Subnet> {
    let (addr, len) = text.split_once('/')?;
    let prefix_len: u8 = len.parse().ok()?;
    (prefix_len <= 32).then_some(())?;
    Some(Ipv4Subnet {
        addr: addr.parse().ok()?,
        prefix_len,
    })
}

/// `10.0.1.5`, also accepting `10.0.1.5/24`; empty is `None`.
pub fn bare_addr(text: &str) -> Option<Ipv4Addr> {
    text.split('/').next()?.parse().ok()
}

/// The VTEP from the node's advertise address (`IP` or `IP:PORT`);
/// `None` when it names no usable address.
pub fn vtep_of(advertise_addr: &str) -> Option<IpAddr> {
    let ip = advertise_addr
        .parse::<std::net::SocketAddr>()
        .map(|s| s.ip())
        .or_else(|_| advertise_addr.parse::<IpAddr>())
        .ok()?;
    (!ip.is_unspecified()).then_some(ip)
}

#[cfg(test)]
mod tests {
    use shoal_proto::v1::{OverlayEndpoint, OverlayNetwork as WireNetwork, OverlayPeer};

    use super::*;

    #[test]
    fn converts_the_wire_view_and_skips_malformed_entries() {
        let wire = NetworkView {
            networks: vec![
                WireNetwork {
                    id: "n1".into(),
                    name: "appnet".into(),
                    vni: 4096,
                    subnet: "10.0.1.0/24".into(),
                    gateway: "10.0.1.1".into(),
                    mtu: 0,
                    internal: true,
                },
                WireNetwork {
                    id: "bad".into(),
                    subnet: "10.0.2.0".into(),
                    gateway: "10.0.2.1".into(),
                    ..Default::default()
                },
            ],
            peers: vec![OverlayPeer {
                node_id: "b".into(),
                vtep: "10.77.0.2".into(),
                network_ids: vec!["n1".into()],
            }],
            endpoints: vec![
                OverlayEndpoint {
                    task_id: "t1".into(),
                    node_id: "b".into(),
                    network_id: "n1".into(),
                    addr: "10.0.1.5".into(),
                },
                OverlayEndpoint {
                    task_id: "t2".into(),
                    addr: "nonsense".into(),
                    ..Default::default()
                },
            ],
            services: vec![shoal_proto::v1::ServiceEndpoint {
                service_id: "s".into(),
                name: "web".into(),
                network_id: "n1".into(),
                mode: ResolutionMode::Dnsrr as i32,
                vip: String::new(),
                backends: vec!["10.0.1.5".into()],
                ..Default::default()
            }],
            ingress: None,
        };
        let vtep = vtep_of("10.77.0.1:2377");
        let view = node_view("a", vtep, &wire);
        assert_eq!(view.vtep, Some("10.77.0.1".parse().unwrap()));
        assert_eq!(view.networks.len(), 1);
        assert_eq!(view.networks[0].mtu, None);
        assert!(view.networks[0].internal);
        assert_eq!(view.endpoints.len(), 1);
        assert_eq!(view.services[0].mode, EndpointMode::Dnsrr);
        assert_eq!(view.services[0].vip, None);
        assert_eq!(view.peers[0].vtep, "10.77.0.2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn vtep_needs_a_real_address() {
        assert_eq!(vtep_of("0.0.0.0:2377"), None);
        assert_eq!(vtep_of("garbage"), None);
        assert_eq!(vtep_of("10.0.0.4"), Some("10.0.0.4".parse().unwrap()));
    }
}
