//! The routing mesh's part of a node's network view (pure): the ingress
//! network, every node's sandbox address on it, and per ingress-mode
//! published port the ingress addresses of the service's serving tasks.
//!
//! The ingress network is the one named [`INGRESS_NAME`] (Docker's). The
//! view is the same for every node — each node answers on every published
//! port — so it is built once per change and needs no node ID. Sandbox
//! addresses are an input: they are the managers' allocation (held per
//! node), not derived here.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use shoal_proto::v1::{
    IngressPort, IngressSandbox, IngressView, Network, OverlayNetwork, PublishMode,
};

use super::{ipam, ports, spec::mtu, view::serving};
use crate::store::ClusterState;

/// The ingress network's name, as Docker names it.
pub const INGRESS_NAME: &str = "ingress";

/// The ingress network of the cluster, if it exists.
pub fn ingress_network(state: &ClusterState) -> Option<&Network> {
    state
        .networks
        .values()
        .find(|n| n.spec.as_ref().is_some_and(|s| s.name == INGRESS_NAME))
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
                .filter(|t| t.service_id == service.id && !t.node_id.is_empty() && serving(t))
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
            });
        }
    }
    if published.is_empty() {
        return None;
    }
    published.sort_by(|a, b| (&a.protocol, a.published).cmp(&(&b.protocol, b.published)));
    let spec = network.spec.clone().unwrap_or_default();
    let addressing = network.ipam.clone().unwrap_or_default();
    Some(IngressView {
        network: Some(OverlayNetwork {
            id: network.id.clone(),
            name: spec.name.clone(),
            vni: network.vni,
            subnet: addressing.subnet,
            gateway: addressing.gateway,
            mtu: mtu(&spec).ok().flatten().unwrap_or(0),
            internal: false,
        }),
        sandboxes: sandboxes
            .iter()
            .map(|(node_id, addr)| IngressSandbox {
                node_id: node_id.clone(),
                addr: addr.to_string(),
            })
            .collect(),
        ports: published,
    })
}

#[cfg(test)]
mod tests {
    use shoal_proto::v1::{
        Endpoint, NetworkAttachment, NetworkSpec, PortConfig, PortProtocol, Service, Task,
        TaskState, TaskStatus,
    };

    use super::*;

    fn state_with(desired: [TaskState; 2]) -> ClusterState {
        let mut state = ClusterState::default();
        state.networks.insert(
            "ing".into(),
            Network {
                id: "ing".into(),
                spec: Some(NetworkSpec {
                    name: INGRESS_NAME.into(),
                    ..Default::default()
                }),
                vni: 4096,
                ..Default::default()
            },
        );
        state.services.insert(
            "web".into(),
            Service {
                id: "web".into(),
                endpoint: Some(Endpoint {
                    ports: vec![PortConfig {
                        protocol: PortProtocol::Tcp as i32,
                        target_port: 80,
                        published_port: 8080,
                        publish_mode: PublishMode::Ingress as i32,
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        for (i, d) in desired.iter().enumerate() {
            let id = format!("t{i}");
            state.tasks.insert(
                id.clone(),
                Task {
                    id,
                    service_id: "web".into(),
                    node_id: "n1".into(),
                    desired_state: *d as i32,
                    status: Some(TaskStatus {
                        state: TaskState::Running as i32,
                        ..Default::default()
                    }),
                    networks: vec![NetworkAttachment {
                        network_id: "ing".into(),
                        addresses: vec![format!("10.255.0.{}/24", 10 + i)],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            );
        }
        state
    }

    #[test]
    fn a_published_port_lists_the_running_tasks_and_a_stopping_one_leaves_first() {
        let sandboxes = BTreeMap::from([("n1".to_string(), Ipv4Addr::new(10, 255, 0, 2))]);
        let all = ingress_view(&state_with([TaskState::Running; 2]), &sandboxes).unwrap();
        assert_eq!(all.ports[0].published, 8080);
        assert_eq!(all.ports[0].protocol, "tcp");
        assert_eq!(all.ports[0].backends, vec!["10.255.0.10", "10.255.0.11"]);
        assert_eq!(all.sandboxes[0].addr, "10.255.0.2");
        // Desired shutdown, still observed running: no longer a backend.
        let stopping = state_with([TaskState::Running, TaskState::Shutdown]);
        let view = ingress_view(&stopping, &sandboxes).unwrap();
        assert_eq!(view.ports[0].backends, vec!["10.255.0.10"]);
    }

    #[test]
    fn nothing_published_or_no_ingress_network_means_no_mesh() {
        let mut state = state_with([TaskState::Running; 2]);
        state.services.get_mut("web").unwrap().endpoint = None;
        assert!(ingress_view(&state, &BTreeMap::new()).is_none());
        let mut state = state_with([TaskState::Running; 2]);
        state.networks.clear();
        assert!(ingress_view(&state, &BTreeMap::new()).is_none());
    }
}
