use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;
use shoal_proto::v1::{
    Cluster, EndpointSpec, IpamConfig, NetworkAttachmentConfig, NetworkSpec, Node, NodeStatus,
    ResolutionMode, Service, ServiceSpec, TaskSpec, TaskState, TaskStatus,
};

use super::*;
use crate::orchestrator::new_task;
use crate::store::{ClusterState, Command, StoreEvent};

fn apply(state: &mut ClusterState, command: Command) -> crate::store::CommandResult {
    let mut events: Vec<StoreEvent> = Vec::new();
    state.apply(command, &mut events)
}

fn net_spec(name: &str, subnet: &str) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        ipam: (!subnet.is_empty()).then(|| IpamConfig {
            subnet: subnet.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn create_network(state: &mut ClusterState, name: &str, subnet: &str) -> String {
    let network = spec::plan(state, net_spec(name, subnet), format!("net-{name}"), 1).unwrap();
    let id = network.id.clone();
    apply(state, Command::CreateNetwork(network)).unwrap();
    id
}

fn service_on(id: &str, networks: &[&str], mode: ResolutionMode) -> Service {
    Service {
        id: id.into(),
        spec: Some(ServiceSpec {
            name: id.into(),
            replicas: 1,
            task: Some(TaskSpec {
                runtime: "process".into(),
                command: vec!["sleep".into()],
                networks: networks
                    .iter()
                    .map(|n| NetworkAttachmentConfig {
                        target: n.to_string(),
                        aliases: vec![],
                    })
                    .collect(),
                ..Default::default()
            }),
            endpoint: Some(EndpointSpec {
                mode: mode as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        spec_version: 1,
        ..Default::default()
    }
}

fn add_task(state: &mut ClusterState, service: &str, slot: u64) -> String {
    let id = format!("{service}-t{slot}-{}", state.tasks.len());
    let task = new_task(&state.services[service].clone(), slot, 1, id.clone());
    apply(state, Command::CreateTasks(vec![task])).unwrap();
    id
}

fn run_allocator(state: &mut ClusterState) {
    for command in allocate(state, 2) {
        apply(state, command).unwrap();
    }
}

fn addr(state: &ClusterState, task: &str) -> String {
    state.tasks[task].networks[0].addresses[0].clone()
}

fn end(state: &mut ClusterState, task: &str) {
    let t = state.tasks.get_mut(task).unwrap();
    t.desired_state = TaskState::Shutdown as i32;
    t.status = Some(TaskStatus {
        state: TaskState::Shutdown as i32,
        ..Default::default()
    });
}

/// No two holders of one address on one network; every stored address
/// assignable. Checked from the raw objects, not through `usage`.
fn assert_unique(state: &ClusterState) {
    let mut seen: HashSet<(String, String)> = HashSet::new();
    for network in state.networks.values() {
        let a = addressing(network).unwrap();
        assert!(seen.insert((network.id.clone(), a.gateway.to_string())));
    }
    for service in state.services.values() {
        for vip in service.endpoint.iter().flat_map(|e| &e.virtual_ips) {
            let a = ipam::address_of(&vip.addr).unwrap().to_string();
            assert!(
                seen.insert((vip.network_id.clone(), a.clone())),
                "VIP {a} of {} handed out twice",
                service.id
            );
        }
    }
    for task in state.tasks.values().filter(|t| holds_addresses(t)) {
        for attachment in &task.networks {
            let a = ipam::address_of(&attachment.addresses[0]).unwrap();
            let network = &state.networks[&attachment.network_id];
            assert!(addressing(network).unwrap().assignable(a));
            assert!(
                seen.insert((attachment.network_id.clone(), a.to_string())),
                "{a} of task {} handed out twice",
                task.id
            );
        }
    }
}

#[test]
fn networks_get_subnets_from_the_pool_and_unique_vnis() {
    let mut state = ClusterState::default();
    let a = create_network(&mut state, "a", "");
    let b = create_network(&mut state, "b", "");
    let c = create_network(&mut state, "c", "10.0.2.0/23");
    let d = create_network(&mut state, "d", "");
    let subnet = |id: &str| state.networks[id].ipam.clone().unwrap().subnet;
    assert_eq!(
        [subnet(&a), subnet(&b), subnet(&c), subnet(&d)],
        ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/23", "10.0.4.0/24"]
    );
    let vnis: Vec<u32> = state.networks.values().map(|n| n.vni).collect();
    assert_eq!(vnis.iter().collect::<HashSet<_>>().len(), 4);
    assert!(vnis.iter().all(|v| *v >= 4096));
    assert_eq!(state.networks[&a].ipam.clone().unwrap().gateway, "10.0.0.1");
}

#[test]
fn bad_networks_are_refused_with_reasons() {
    let mut state = ClusterState::default();
    create_network(&mut state, "front", "10.9.0.0/16");
    let plan = |state: &ClusterState, spec: NetworkSpec| {
        spec::plan(state, spec, "x".into(), 1).unwrap_err()
    };
    assert_eq!(
        plan(&state, net_spec("front", "")),
        "network with name front already exists"
    );
    assert!(plan(&state, net_spec("other", "10.9.3.0/24")).contains("overlaps with network front"));
    assert!(plan(&state, net_spec("other", "10.9.3.7/24")).contains("it should be 10.9.3.0/24"));
    assert!(plan(&state, net_spec("other", "banana")).contains("CIDR"));
    let mut gateway = net_spec("other", "10.10.0.0/24");
    gateway.ipam.as_mut().unwrap().gateway = "10.11.0.1".into();
    assert!(plan(&state, gateway).contains("not in the subnet"));
    let mut bridge = net_spec("other", "");
    bridge.driver = "bridge".into();
    assert!(plan(&state, bridge).contains("not supported"));
    let mut mtu = net_spec("other", "");
    mtu.driver_opts.insert("mtu".into(), "huge".into());
    assert!(plan(&state, mtu).contains("MTU"));
    assert!(plan(&state, net_spec("bad name", "")).contains("invalid network name"));

    // A small default pool runs out and says so.
    let mut small = ClusterState {
        cluster: Some(Cluster {
            default_address_pool: vec!["192.168.50.0/23".into()],
            subnet_size: 24,
            ..Default::default()
        }),
        ..Default::default()
    };
    create_network(&mut small, "one", "");
    create_network(&mut small, "two", "");
    assert!(plan(&small, net_spec("three", "")).contains("no free /24 left"));

    // The store refuses a plan made before a concurrent create took the subnet.
    let stale = spec::plan(&state, net_spec("late", ""), "late".into(), 1).unwrap();
    create_network(&mut state, "early", "");
    let err = apply(&mut state, Command::CreateNetwork(stale)).unwrap_err();
    assert!(err.to_string().contains("overlaps") || err.to_string().contains("VXLAN"));
}

#[test]
fn tasks_and_vips_get_unique_addresses_released_when_they_end() {
    let mut state = ClusterState::default();
    let net = create_network(&mut state, "app", "10.5.0.0/29");
    apply(
        &mut state,
        Command::CreateService(service_on("web", &[&net], ResolutionMode::Vip)),
    )
    .unwrap();
    let tasks: Vec<String> = (1..=3)
        .map(|slot| add_task(&mut state, "web", slot))
        .collect();
    run_allocator(&mut state);
    assert_unique(&state);
    let vip = &state.services["web"].endpoint.as_ref().unwrap().virtual_ips[0];
    assert_eq!(vip.addr, "10.5.0.2/29");
    let got: Vec<String> = tasks.iter().map(|t| addr(&state, t)).collect();
    assert_eq!(got, ["10.5.0.3/29", "10.5.0.4/29", "10.5.0.5/29"]);
    assert!(tasks.iter().all(|t| fully_attached(&state.tasks[t])));

    // The subnet holds 6 hosts: gateway, VIP, 3 tasks, one left.
    let fourth = add_task(&mut state, "web", 4);
    let fifth = add_task(&mut state, "web", 5);
    run_allocator(&mut state);
    assert_eq!(addr(&state, &fourth), "10.5.0.6/29");
    assert!(state.tasks[&fifth].networks.is_empty());
    let reason = state.tasks[&fifth].status.clone().unwrap().err;
    assert!(
        reason.starts_with("no free address on network app (10.5.0.0/29)"),
        "{reason}"
    );

    // A task that ended frees its address for the waiting one.
    end(&mut state, &tasks[1]);
    run_allocator(&mut state);
    assert_eq!(addr(&state, &fifth), "10.5.0.4/29");
    assert!(state.tasks[&fifth].status.clone().unwrap().err.is_empty());
    assert_unique(&state);

    // A dnsrr service gets no VIP; switching a service to dnsrr drops it.
    let mut web = state.services["web"].clone();
    web.spec.as_mut().unwrap().endpoint = Some(EndpointSpec {
        mode: ResolutionMode::Dnsrr as i32,
        ..Default::default()
    });
    state.services.insert("web".into(), web);
    run_allocator(&mut state);
    assert!(state.services["web"]
        .endpoint
        .as_ref()
        .unwrap()
        .virtual_ips
        .is_empty());
}

#[test]
fn a_stale_decision_never_hands_out_a_taken_address() {
    let mut state = ClusterState::default();
    let net = create_network(&mut state, "app", "10.6.0.0/24");
    apply(
        &mut state,
        Command::CreateService(service_on("web", &[&net], ResolutionMode::Dnsrr)),
    )
    .unwrap();
    let first = add_task(&mut state, "web", 1);
    let second = add_task(&mut state, "web", 2);
    // Two decisions from the same snapshot (a pass in flight and a new
    // leader's first pass): the second must not commit the same address.
    let mut only_first = state.clone();
    only_first.tasks.remove(&second);
    let mut only_second = state.clone();
    only_second.tasks.remove(&first);
    let a = allocate(&only_first, 2);
    let b = allocate(&only_second, 2);
    for command in a.into_iter().chain(b) {
        apply(&mut state, command).unwrap();
    }
    assert_unique(&state);
    assert!(state.tasks[&first].networks.len() == 1);
    // The loser got nothing and is decided again by the next pass.
    assert!(state.tasks[&second].networks.is_empty());
    run_allocator(&mut state);
    assert_eq!(addr(&state, &second), "10.6.0.3/24");
}

#[test]
fn a_network_in_use_is_not_removed() {
    let mut state = ClusterState::default();
    let net = create_network(&mut state, "app", "");
    apply(
        &mut state,
        Command::CreateService(service_on("web", &[&net], ResolutionMode::Vip)),
    )
    .unwrap();
    let err = apply(
        &mut state,
        Command::RemoveNetwork {
            network_id: net.clone(),
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("in use by service web"), "{err}");
    apply(
        &mut state,
        Command::RemoveService {
            service_id: "web".into(),
        },
    )
    .unwrap();
    apply(&mut state, Command::RemoveNetwork { network_id: net }).unwrap();
    assert!(state.networks.is_empty());
}

#[test]
fn the_node_view_has_peers_endpoints_and_running_backends() {
    let mut state = ClusterState::default();
    for (id, addr) in [
        ("n1", "192.0.2.1"),
        ("n2", "192.0.2.2"),
        ("n3", "192.0.2.3"),
    ] {
        state.nodes.insert(
            id.into(),
            Node {
                id: id.into(),
                status: Some(NodeStatus {
                    addr: addr.into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
    }
    let front = create_network(&mut state, "front", "10.7.0.0/24");
    let back = create_network(&mut state, "back", "10.8.0.0/24");
    let mut vote = service_on("voting_vote", &[&front], ResolutionMode::Vip);
    vote.spec
        .as_mut()
        .unwrap()
        .labels
        .insert("com.docker.stack.namespace".into(), "voting".into());
    apply(&mut state, Command::CreateService(vote)).unwrap();
    apply(
        &mut state,
        Command::CreateService(service_on("db", &[&back], ResolutionMode::Vip)),
    )
    .unwrap();
    let v1 = add_task(&mut state, "voting_vote", 1);
    let v2 = add_task(&mut state, "voting_vote", 2);
    let d1 = add_task(&mut state, "db", 1);
    run_allocator(&mut state);
    for (task, node, running) in [(&v1, "n1", true), (&v2, "n2", false), (&d1, "n3", true)] {
        let t = state.tasks.get_mut(task).unwrap();
        t.node_id = node.into();
        if running {
            t.status.as_mut().unwrap().state = TaskState::Running as i32;
        }
    }
    let view = view::node_view(&state, "n1");
    assert_eq!(view.networks.len(), 1);
    assert_eq!(view.networks[0].name, "front");
    assert_eq!(view.networks[0].subnet, "10.7.0.0/24");
    assert_eq!(view.networks[0].gateway, "10.7.0.1");
    // n2 shares front; n3 is only on back.
    assert_eq!(view.peers.len(), 1);
    assert_eq!(view.peers[0].node_id, "n2");
    assert_eq!(view.peers[0].vtep, "192.0.2.2");
    let endpoints: BTreeMap<&str, &str> = view
        .endpoints
        .iter()
        .map(|e| (e.task_id.as_str(), e.addr.as_str()))
        .collect();
    assert_eq!(endpoints.len(), 2);
    assert!(endpoints.contains_key(v1.as_str()) && endpoints.contains_key(v2.as_str()));
    assert_eq!(view.services.len(), 1);
    let svc = &view.services[0];
    assert_eq!(svc.name, "voting_vote");
    assert_eq!(svc.aliases, ["vote"]);
    assert_eq!(svc.vip, "10.7.0.2");
    // Only the running task is a backend.
    assert_eq!(svc.backends, [endpoints[v1.as_str()].to_string()]);
    // A node with no task on a network sees nothing.
    state.nodes.insert("n4".into(), Node::default());
    assert_eq!(view::node_view(&state, "n4"), Default::default());
}

#[derive(Debug, Clone)]
enum Step {
    AddTask(usize),
    EndTask(usize),
    Allocate,
    /// A decision made earlier (from a snapshot `lag` steps old) applied now,
    /// as after a leader change or with a pass in flight.
    StaleAllocate(usize),
    ToggleMode,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0usize..2).prop_map(Step::AddTask),
        2 => any::<usize>().prop_map(Step::EndTask),
        3 => Just(Step::Allocate),
        2 => (1usize..6).prop_map(Step::StaleAllocate),
        1 => Just(Step::ToggleMode),
    ]
}

proptest! {
    /// Whatever the interleaving of task churn, allocation passes and stale
    /// decisions, no address is ever held twice on a network, and every task
    /// that can have addresses gets them once a fresh pass runs.
    #[test]
    fn addresses_are_never_handed_out_twice(steps in proptest::collection::vec(step(), 1..60)) {
        let mut state = ClusterState::default();
        let net = create_network(&mut state, "small", "10.20.0.0/28");
        let other = create_network(&mut state, "other", "10.21.0.0/29");
        apply(&mut state, Command::CreateService(service_on("a", &[&net], ResolutionMode::Vip))).unwrap();
        apply(&mut state, Command::CreateService(service_on("b", &[&net, &other], ResolutionMode::Vip))).unwrap();
        let mut history: Vec<ClusterState> = vec![state.clone()];
        let mut slot = 0;
        for step in steps {
            match step {
                Step::AddTask(s) => {
                    slot += 1;
                    add_task(&mut state, ["a", "b"][s], slot);
                }
                Step::EndTask(n) => {
                    let live: Vec<String> = state.tasks.values().filter(|t| holds_addresses(t)).map(|t| t.id.clone()).collect();
                    if !live.is_empty() {
                        end(&mut state, &live[n % live.len()]);
                    }
                }
                Step::Allocate => run_allocator(&mut state),
                Step::StaleAllocate(lag) => {
                    let old = &history[history.len().saturating_sub(lag)];
                    for command in allocate(old, 2) {
                        apply(&mut state, command).unwrap();
                    }
                }
                Step::ToggleMode => {
                    let mut b = state.services["b"].clone();
                    let e = b.spec.as_mut().unwrap().endpoint.as_mut().unwrap();
                    e.mode = if e.mode == 0 { 1 } else { 0 };
                    state.services.insert("b".into(), b);
                }
            }
            assert_unique(&state);
            history.push(state.clone());
        }
        // A VIP dropped by a pass is free for the next one (a pass frees
        // nothing for its own decisions).
        run_allocator(&mut state);
        run_allocator(&mut state);
        assert_unique(&state);
        // After a fresh pass every live task is attached unless its network is full.
        let usage = usage(&state);
        for task in state.tasks.values().filter(|t| holds_addresses(t) && t.desired_state <= TaskState::Running as i32) {
            if !fully_attached(task) {
                let full = task.spec.as_ref().unwrap().networks.iter().any(|w| {
                    let a = addressing(&state.networks[&w.target]).unwrap();
                    a.first_free(&usage.taken_set(&w.target)).is_none()
                });
                prop_assert!(full, "task {} left without an address", task.id);
            }
        }
    }
}
