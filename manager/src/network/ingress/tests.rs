use shoal_proto::v1::{
    Endpoint, NetworkAttachment, NetworkSpec, PortConfig, PortProtocol, Service, Task, TaskState,
    TaskStatus,
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

fn capable_node(id: &str, addr: &str, supported: bool) -> Node {
    Node {
        id: id.into(),
        description: Some(shoal_proto::v1::NodeDescription {
            overlay: Some(shoal_proto::v1::OverlayCapability {
                supported,
                reason: String::new(),
            }),
            ..Default::default()
        }),
        status: Some(shoal_proto::v1::NodeStatus {
            addr: addr.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn the_ingress_network_comes_with_the_first_published_port_and_only_once() {
    let mut state = state_with([TaskState::Running; 2]);
    state.networks.clear();
    let Some(Command::CreateNetwork(network)) = ensure_network(&state, "ing2".into(), 5) else {
        panic!("no ingress network planned");
    };
    assert_eq!(network.spec.as_ref().unwrap().name, INGRESS_NAME);
    assert_eq!(network.ipam.as_ref().unwrap().subnet, INGRESS_SUBNET);
    state.networks.insert(network.id.clone(), network);
    assert!(ensure_network(&state, "ing3".into(), 6).is_none());
    // Nothing published: none is created.
    let mut quiet = state_with([TaskState::Running; 2]);
    quiet.networks.clear();
    quiet.services.get_mut("web").unwrap().endpoint = None;
    assert!(ensure_network(&quiet, "ing4".into(), 7).is_none());
}

#[test]
fn capable_nodes_get_distinct_sandboxes_and_tasks_wait_for_their_mesh_address() {
    let mut state = state_with([TaskState::Running; 2]);
    state.networks.get_mut("ing").unwrap().ipam = Some(IpamConfig {
        subnet: "10.255.0.0/24".into(),
        gateway: "10.255.0.1".into(),
        ..Default::default()
    });
    for node in [
        capable_node("n1", "10.77.0.1", true),
        capable_node("n2", "10.77.0.2", true),
        capable_node("n3", "10.77.0.3", false),
    ] {
        state.nodes.insert(node.id.clone(), node);
    }
    let mut usage = super::super::usage(&state);
    let Some(Command::SetIngressSandboxes { assignments }) = allocate_sandboxes(&state, &mut usage)
    else {
        panic!("no sandboxes allocated");
    };
    let nodes: Vec<&str> = assignments.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(nodes, ["n1", "n2"], "the node without overlay gets none");
    assert_ne!(assignments[0].1, assignments[1].1);
    // Neither the gateway nor a task's address.
    for (_, addr) in &assignments {
        assert!(!["10.255.0.1/24", "10.255.0.10/24", "10.255.0.11/24"].contains(&addr.as_str()));
    }
    // A task of the published service is not placed before it has an
    // address on the ingress network.
    let mut task = state.tasks["t0"].clone();
    task.networks.clear();
    assert!(!crate::network::ready_to_place(&state, &task));
    let wanted = crate::network::wanted_networks(&state, &task);
    assert_eq!(wanted.len(), 1);
    assert_eq!(wanted[0].target, "ing");
    assert!(crate::network::ready_to_place(&state, &state.tasks["t0"]));
}

#[test]
fn only_sandbox_nodes_join_the_mesh_network_and_every_node_gets_the_ports() {
    let mut state = state_with([TaskState::Running; 2]);
    let mut n1 = capable_node("n1", "10.77.0.1", true);
    n1.ingress_sandbox_addr = "10.255.0.2/24".into();
    let mut n2 = capable_node("n2", "10.77.0.2", true);
    n2.ingress_sandbox_addr = "10.255.0.3/24".into();
    let n3 = capable_node("n3", "10.77.0.3", false);
    for node in [n1, n2, n3] {
        state.nodes.insert(node.id.clone(), node);
    }
    let mesh = Mesh::of(&state);
    let mut view = NetworkView::default();
    mesh.add_to("n2", &mut view);
    assert!(view.ingress.is_some(), "n2 has a sandbox: it serves");
    assert_eq!(view.networks.len(), 1);
    let peers: Vec<&str> = view.peers.iter().map(|p| p.node_id.as_str()).collect();
    assert_eq!(peers, ["n1"], "every other sandbox node, not itself");
    assert_eq!(view.endpoints.len(), 2, "the backends on n1");
    assert_eq!(
        view.ingress.as_ref().unwrap().sandboxes[0].vtep,
        "10.77.0.1"
    );
    // No sandbox, no task: the published ports only, to serve them in
    // userspace through the sandbox nodes.
    let mut userspace = NetworkView::default();
    mesh.add_to("n3", &mut userspace);
    assert!(userspace.networks.is_empty() && userspace.peers.is_empty());
    assert_eq!(userspace.ingress, mesh.view);
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
