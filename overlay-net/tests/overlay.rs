//! The overlay on real kernel devices: two namespace hosts, a VXLAN network
//! between them, tasks in namespaces of their own (root only, gated by
//! `SHOAL_E2E_PRIVILEGED=1`; see `hosts` for the harness).

// A test crate: its helpers unwrap like its tests (the workspace denies
// unwrap_used in everything else).
#![allow(clippy::unwrap_used)]

mod hosts;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hosts::{
    named_namespaces, privileged, tcp_ask, tcp_echo, tcp_probe, tcp_whoami, udp_echo, udp_probe,
    underlay, Hosts,
};
use shoal_overlay_net::model::{
    Endpoint, EndpointMode, Ipv4Subnet, LocalTask, NodeView, OverlayNetwork, Peer, ServiceEndpoint,
    TaskNetns,
};
use shoal_overlay_net::netns::NetNs;
use shoal_overlay_net::{names, overlay_support, OverlayNode};

const VNI: u32 = 4097;

fn network(id: &str, vni: u32, third: u8, internal: bool) -> OverlayNetwork {
    OverlayNetwork {
        id: id.to_string(),
        name: format!("{id}-name"),
        vni,
        subnet: Ipv4Subnet {
            addr: Ipv4Addr::new(10, 0, third, 0),
            prefix_len: 24,
        },
        gateway: Ipv4Addr::new(10, 0, third, 1),
        mtu: None,
        internal,
    }
}

fn endpoint(task: &str, node: &str, net: &str, addr: Ipv4Addr) -> Endpoint {
    Endpoint {
        task_id: task.to_string(),
        node_id: node.to_string(),
        network_id: net.to_string(),
        addr,
    }
}

fn addr(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 1, last)
}

/// The view of node `me` (1 or 2): network `n1`; t1 on node 1 at .2, t2 and
/// t3 on node 2 at .3 and .4.
fn view(me: u8) -> NodeView {
    let other = 3 - me;
    NodeView {
        node_id: format!("node{me}"),
        vtep: Some(IpAddr::V4(underlay(me))),
        networks: vec![network("n1", VNI, 1, false)],
        peers: vec![Peer {
            node_id: format!("node{other}"),
            vtep: IpAddr::V4(underlay(other)),
            networks: vec!["n1".to_string()],
        }],
        endpoints: vec![
            endpoint("t1", "node1", "n1", addr(2)),
            endpoint("t2", "node2", "n1", addr(3)),
            endpoint("t3", "node2", "n1", addr(4)),
        ],
        services: vec![],
    }
}

fn task(id: &str, ns: &str, networks: &[&str]) -> LocalTask {
    LocalTask {
        task_id: id.to_string(),
        netns: TaskNetns::Named(ns.to_string()),
        networks: networks.iter().map(|n| n.to_string()).collect(),
    }
}

fn mac(a: Ipv4Addr) -> String {
    let [x, y, z, w] = a.octets();
    format!("02:42:{x:02x}:{y:02x}:{z:02x}:{w:02x}")
}

/// The FDB lines shoal pushes for a remote address behind `vtep`.
fn pushed_fdb(a: Ipv4Addr, vtep: Ipv4Addr) -> Vec<String> {
    vec![
        format!("{} dst {vtep} self permanent", mac(a)),
        format!("{} master shbr-{VNI} static", mac(a)),
    ]
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn sock(a: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(a), port)
}

const PATIENCE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_on_two_hosts_talk_over_vxlan_with_only_the_pushed_entries() {
    if !privileged("tasks_on_two_hosts_talk_over_vxlan_with_only_the_pushed_entries") {
        return;
    }
    let mut hosts = Hosts::new();
    let (t1, t2, t3) = (
        hosts.task_ns("t1"),
        hosts.task_ns("t2"),
        hosts.task_ns("t3"),
    );
    let node1 = OverlayNode::in_netns(&hosts.host_ns(1)).await.unwrap();
    let node2 = OverlayNode::in_netns(&hosts.host_ns(2)).await.unwrap();
    let tasks1 = vec![task("t1", &t1, &["n1"])];
    let tasks2 = vec![task("t2", &t2, &["n1"]), task("t3", &t3, &["n1"])];
    let report = node1.reconcile(&view(1), &tasks1).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    node2.reconcile(&view(2), &tasks2).await.unwrap();

    // The devices, as `ip` sees them.
    let details = hosts.ip(1, &["-d", "link", "show", "shvx-4097"]);
    for expected in [
        "mtu 1450",
        "master shbr-4097",
        "vxlan id 4097 local 192.168.251.1",
        "dstport 4789",
        "nolearning",
        "proxy",
    ] {
        assert!(details.contains(expected), "{expected:?} not in {details}");
    }
    assert!(
        details.contains("learning off"),
        "bridge port learns: {details}"
    );
    let bridge = hosts.ip(1, &["addr", "show", "shbr-4097"]);
    assert!(bridge.contains("inet 10.0.1.1/24"), "{bridge}");
    let inside = must_in(&t1, &["addr", "show", "eth0"]);
    assert!(inside.contains("inet 10.0.1.2/24"), "{inside}");
    assert!(inside.contains(&mac(addr(2))), "{inside}");
    assert!(inside.contains("mtu 1450"), "{inside}");
    assert!(must_in(&t1, &["route"]).contains("default via 10.0.1.1 dev eth0"));

    // TCP and UDP both ways across the tunnel.
    tcp_echo(&t2, sock(addr(3), 7000));
    udp_echo(&t2, sock(addr(3), 7001));
    tcp_echo(&t1, sock(addr(2), 7000));
    tcp_probe(&t1, sock(addr(3), 7000)).unwrap();
    udp_probe(&t1, sock(addr(3), 7001), PATIENCE).unwrap();
    tcp_probe(&t2, sock(addr(2), 7000)).unwrap();

    // Exactly the pushed entries, nothing learned — after traffic flowed.
    let mut want = pushed_fdb(addr(3), underlay(2));
    want.extend(pushed_fdb(addr(4), underlay(2)));
    assert_eq!(hosts.fdb(1, "shvx-4097"), sorted(want));
    assert_eq!(
        hosts.neighbours(1, "shvx-4097"),
        sorted(vec![
            format!("10.0.1.3 lladdr {} PERMANENT", mac(addr(3))),
            format!("10.0.1.4 lladdr {} PERMANENT", mac(addr(4))),
        ])
    );
    assert_eq!(
        hosts.fdb(2, "shvx-4097"),
        sorted(pushed_fdb(addr(2), underlay(1)))
    );

    // Applying again, or from a restarted daemon (a new executor), changes
    // nothing and duplicates nothing.
    let links_before = hosts.links(1);
    assert_eq!(
        node1.reconcile(&view(1), &tasks1).await.unwrap().applied,
        vec![]
    );
    drop(node1);
    let restarted = OverlayNode::in_netns(&hosts.host_ns(1)).await.unwrap();
    assert_eq!(
        restarted
            .reconcile(&view(1), &tasks1)
            .await
            .unwrap()
            .applied,
        vec![]
    );
    assert_eq!(hosts.links(1), links_before);
    assert_eq!(hosts.fdb(1, "shvx-4097").len(), 4);
    assert_eq!(
        must_in(&t1, &["-o", "addr", "show", "eth0"])
            .matches("inet ")
            .count(),
        1
    );
    tcp_probe(&t1, sock(addr(3), 7000)).unwrap();
}

/// `ip ARGS…` inside a named namespace.
fn must_in(ns: &str, args: &[&str]) -> String {
    let mut all = vec!["-n", ns];
    all.extend(args);
    hosts::must("ip", &all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_changes_remove_entries_and_the_last_task_removes_the_devices() {
    if !privileged("view_changes_remove_entries_and_the_last_task_removes_the_devices") {
        return;
    }
    let mut hosts = Hosts::new();
    let (t1, t2, t3) = (
        hosts.task_ns("t1"),
        hosts.task_ns("t2"),
        hosts.task_ns("t3"),
    );
    let node1 = OverlayNode::in_netns(&hosts.host_ns(1)).await.unwrap();
    let node2 = OverlayNode::in_netns(&hosts.host_ns(2)).await.unwrap();
    let tasks1 = vec![task("t1", &t1, &["n1"])];
    node1.reconcile(&view(1), &tasks1).await.unwrap();
    node2
        .reconcile(
            &view(2),
            &[task("t2", &t2, &["n1"]), task("t3", &t3, &["n1"])],
        )
        .await
        .unwrap();
    tcp_echo(&t3, sock(addr(4), 7000));
    tcp_probe(&t1, sock(addr(4), 7000)).unwrap();

    // t3 gone from the view: node 1 forgets exactly its entries.
    let mut without_t3 = view(1);
    without_t3.endpoints.retain(|e| e.task_id != "t3");
    node1.reconcile(&without_t3, &tasks1).await.unwrap();
    assert_eq!(
        hosts.fdb(1, "shvx-4097"),
        sorted(pushed_fdb(addr(3), underlay(2)))
    );
    assert_eq!(hosts.neighbours(1, "shvx-4097").len(), 1);
    // And t1 can no longer reach it (the ARP proxy has no answer).
    assert!(tcp_probe(&t1, sock(addr(4), 7000)).is_err());

    // The peer gone: no entries at all, and the view's problem is said.
    let mut no_peer = view(1);
    no_peer.peers.clear();
    let report = node1.reconcile(&no_peer, &tasks1).await.unwrap();
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
    assert_eq!(hosts.fdb(1, "shvx-4097"), Vec::<String>::new());
    assert_eq!(hosts.neighbours(1, "shvx-4097"), Vec::<String>::new());

    // The peer back, then the last local task gone: the devices go.
    node1.reconcile(&view(1), &tasks1).await.unwrap();
    assert_eq!(hosts.fdb(1, "shvx-4097").len(), 4);
    let veth = names::host_veth_name("t1", "n1");
    assert!(hosts.links(1).contains(&veth));
    node1.reconcile(&view(1), &[]).await.unwrap();
    let left = hosts.links(1);
    for gone in ["shvx-4097", "shbr-4097", veth.as_str()] {
        assert!(!left.iter().any(|l| l == gone), "{gone} left in {left:?}");
    }
    assert!(!must_in(&t1, &["-o", "link", "show"]).contains("eth0"));

    // A node leaving: cleanup_all leaves only the underlay behind.
    node2.cleanup_all().await.unwrap();
    assert_eq!(
        sorted(hosts.links(2)),
        sorted(vec!["lo".to_string(), "ul0".to_string()])
    );
    assert_eq!(hosts.links(1), vec!["lo".to_string(), "ul0".to_string()]);
    // Cleaning up what is already clean is fine.
    assert_eq!(node2.cleanup_all().await.unwrap(), vec![]);

    // And the namespaces go with the harness.
    let tag = hosts.tag.clone();
    drop(hosts);
    assert!(
        !named_namespaces().iter().any(|n| n.contains(&tag)),
        "{:?}",
        named_namespaces()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_network_has_no_way_out_and_a_task_gets_one_interface_per_network() {
    if !privileged("an_internal_network_has_no_way_out_and_a_task_gets_one_interface_per_network") {
        return;
    }
    let mut hosts = Hosts::new();
    let (inner, both) = (hosts.task_ns("inner"), hosts.task_ns("both"));
    let node1 = OverlayNode::in_netns(&hosts.host_ns(1)).await.unwrap();
    let mut v = view(1);
    v.networks.push(network("back", 4098, 2, true));
    v.endpoints.push(endpoint(
        "inner",
        "node1",
        "back",
        Ipv4Addr::new(10, 0, 2, 2),
    ));
    v.endpoints.push(endpoint(
        "both",
        "node1",
        "back",
        Ipv4Addr::new(10, 0, 2, 3),
    ));
    v.endpoints.push(endpoint("both", "node1", "n1", addr(9)));
    let tasks = vec![
        task("inner", &inner, &["back"]),
        task("both", &both, &["back", "n1"]),
    ];
    let report = node1.reconcile(&v, &tasks).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    // "both": eth0 on the internal network, eth1 on n1 with the default route.
    let links = must_in(&both, &["-o", "addr", "show"]);
    assert!(
        links.contains("eth0    inet 10.0.2.3/24") || links.contains("eth0 inet 10.0.2.3/24"),
        "{links}"
    );
    assert!(links.contains("10.0.1.9/24"), "{links}");
    assert!(must_in(&both, &["route"]).contains("default via 10.0.1.1 dev eth1"));
    // The internal network's bridge holds no address, its task no route out.
    assert!(!hosts
        .ip(1, &["addr", "show", "shbr-4098"])
        .contains("inet "));
    assert!(!must_in(&inner, &["route"]).contains("default"));

    // Outside the overlay: the host's underlay address. A task on n1
    // reaches it through its gateway; the internal-only task cannot.
    tcp_echo(hosts.host(1), sock(underlay(1), 7002));
    tcp_probe(&both, sock(underlay(1), 7002)).unwrap();
    let refused = tcp_probe(&inner, sock(underlay(1), 7002)).unwrap_err();
    assert!(refused.contains("unreachable"), "{refused}");
    // Tasks on the internal network still reach each other.
    tcp_echo(&inner, sock(Ipv4Addr::new(10, 0, 2, 2), 7003));
    tcp_probe(&both, sock(Ipv4Addr::new(10, 0, 2, 2), 7003)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_is_plumbed_through_its_pid() {
    if !privileged("a_container_is_plumbed_through_its_pid") {
        return;
    }
    let mut hosts = Hosts::new();
    // A process in a namespace of its own, standing in for a container's
    // init; the named namespace is removed at once so only the PID leads there.
    let scratch = hosts.task_ns("ctr");
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &scratch, "sleep", "60"])
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = child.id();
    let scratch_ns = NetNs::open(&scratch).unwrap();
    // `ip netns exec` execs in place: the PID's namespace becomes the
    // scratch one as soon as it has setns'd; poll until it is.
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let same = std::fs::metadata(format!("/proc/{pid}/ns/net"))
            .and_then(|m| Ok((m, std::fs::metadata(scratch_ns.path())?)))
            .map(|(a, b)| {
                use std::os::unix::fs::MetadataExt;
                a.ino() == b.ino()
            })
            .unwrap_or(false);
        if same {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the process never entered its namespace"
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the stand-in container exited: {status}");
        }
        std::thread::yield_now();
    }
    let _child = Kill(child);
    drop(scratch_ns);
    NetNs::delete(&scratch).unwrap();

    let mut v = view(1);
    v.endpoints.push(endpoint("ctr", "node1", "n1", addr(20)));
    let t1 = hosts.task_ns("t1");
    let node1 = OverlayNode::in_netns(&hosts.host_ns(1)).await.unwrap();
    let tasks = vec![
        task("t1", &t1, &["n1"]),
        LocalTask {
            task_id: "ctr".to_string(),
            netns: TaskNetns::Pid(pid),
            networks: vec!["n1".to_string()],
        },
    ];
    node1.reconcile(&v, &tasks).await.unwrap();
    let net = format!("--net=/proc/{pid}/ns/net");
    let inside = hosts::must("nsenter", &[&net, "ip", "-o", "addr"]);
    assert!(inside.contains("10.0.1.20/24"), "{inside}");
    // The task next to it reaches it over the node's bridge.
    let ctr_ns = format!("/proc/{pid}/ns/net");
    let listener = NetNs::open_path(ctr_ns.into())
        .unwrap()
        .run(|| std::net::TcpListener::bind("10.0.1.20:7004"))
        .unwrap()
        .unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            use std::io::{Read, Write};
            let mut s = s;
            let mut buf = [0u8; 5];
            if s.read_exact(&mut buf).is_ok() {
                let _ = s.write_all(&buf);
            }
        }
    });
    tcp_probe(&t1, sock(addr(20), 7004)).unwrap();
}

#[tokio::test]
async fn this_machine_supports_overlay_networks() {
    if !privileged("this_machine_supports_overlay_networks") {
        return;
    }
    overlay_support().await.unwrap();
    // The probe worked in a namespace of its own: none of its devices is here.
    let links = hosts::link_names(&hosts::must("ip", &["-o", "link", "show"]));
    assert!(!links.iter().any(|l| l.starts_with("probe")), "{links:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_passes_a_forward_drop_policy_and_leaves_the_overlay_masqueraded() {
    if !privileged("traffic_passes_a_forward_drop_policy_and_leaves_the_overlay_masqueraded") {
        return;
    }
    let mut hosts = Hosts::new();
    let (t1, t2, outside) = (
        hosts.task_ns("t1"),
        hosts.task_ns("t2"),
        hosts.task_ns("out"),
    );
    // Host 1 as Docker leaves a machine: FORWARD policy DROP, and bridged
    // frames pass through it (br_netfilter's default in a new namespace).
    hosts::must(
        "ip",
        &[
            "netns",
            "exec",
            hosts.host(1),
            "iptables",
            "-P",
            "FORWARD",
            "DROP",
        ],
    );
    // "Outside": a namespace beyond host 1 on 192.168.252.0/24, with no
    // route back to the overlay's subnet — only a masqueraded packet can
    // get an answer.
    let (a, b) = (format!("soe{}a", hosts.tag), format!("soe{}b", hosts.tag));
    hosts::must(
        "ip",
        &["link", "add", &a, "type", "veth", "peer", "name", &b],
    );
    hosts::must("ip", &["link", "set", &a, "netns", hosts.host(1)]);
    hosts::must("ip", &["link", "set", &b, "netns", &outside]);
    hosts.ip(1, &["addr", "add", "192.168.252.1/24", "dev", &a]);
    hosts.ip(1, &["link", "set", &a, "up"]);
    must_in(&outside, &["addr", "add", "192.168.252.2/24", "dev", &b]);
    must_in(&outside, &["link", "set", &b, "up"]);

    let node1 = OverlayNode::in_netns(&hosts.host_ns(1)).await.unwrap();
    let node2 = OverlayNode::in_netns(&hosts.host_ns(2)).await.unwrap();
    let tasks1 = vec![task("t1", &t1, &["n1"])];
    node1.reconcile(&view(1), &tasks1).await.unwrap();
    node2
        .reconcile(&view(2), &[task("t2", &t2, &["n1"])])
        .await
        .unwrap();

    // Overlay traffic crosses host 1's bridge despite the DROP policy.
    let forward = hosts::must(
        "ip",
        &["netns", "exec", hosts.host(1), "iptables", "-S", "FORWARD"],
    );
    assert!(forward.starts_with("-P FORWARD DROP"), "{forward}");
    assert!(forward.contains("shoal overlay"), "{forward}");
    tcp_echo(&t2, sock(addr(3), 7000));
    tcp_probe(&t1, sock(addr(3), 7000)).unwrap();

    // Out of the overlay: the outside sees host 1's address, not the task's.
    let server = NetNs::open(&outside)
        .unwrap()
        .run(|| std::net::TcpListener::bind("192.168.252.2:7005"))
        .unwrap()
        .unwrap();
    std::thread::spawn(move || {
        use std::io::Write;
        for mut s in server.incoming().flatten() {
            let peer = s.peer_addr().unwrap().ip().to_string();
            let _ = s.write_all(peer.as_bytes());
        }
    });
    let seen = NetNs::open(&t1)
        .unwrap()
        .run(|| {
            use std::io::Read;
            let mut s = std::net::TcpStream::connect_timeout(
                &"192.168.252.2:7005".parse().unwrap(),
                Duration::from_secs(3),
            )
            .map_err(|e| e.to_string())?;
            let mut peer = String::new();
            s.read_to_string(&mut peer).map_err(|e| e.to_string())?;
            Ok::<_, String>(peer)
        })
        .unwrap()
        .unwrap();
    assert_eq!(seen, "192.168.252.1");

    // The last task gone: shoal's table and FORWARD rules go with it.
    node1.reconcile(&view(1), &[]).await.unwrap();
    let tables = hosts::must(
        "ip",
        &["netns", "exec", hosts.host(1), "nft", "list", "tables"],
    );
    assert!(!tables.contains("inet shoal"), "{tables}");
    let forward = hosts::must(
        "ip",
        &["netns", "exec", hosts.host(1), "iptables", "-S", "FORWARD"],
    );
    assert!(!forward.contains("shoal"), "{forward}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_vip_balances_over_its_backends_and_follows_the_view() {
    if !privileged("a_service_vip_balances_over_its_backends_and_follows_the_view") {
        return;
    }
    let mut hosts = Hosts::new();
    let (t1, t2, t3) = (
        hosts.task_ns("t1"),
        hosts.task_ns("t2"),
        hosts.task_ns("t3"),
    );
    let node1 = OverlayNode::in_netns(&hosts.host_ns(1)).await.unwrap();
    let node2 = OverlayNode::in_netns(&hosts.host_ns(2)).await.unwrap();
    let vip = Ipv4Addr::new(10, 0, 1, 100);
    let with_service = |me: u8, backends: Vec<Ipv4Addr>| {
        let mut v = view(me);
        v.services.push(ServiceEndpoint {
            service_id: "web-id".into(),
            name: "web".into(),
            aliases: vec![],
            network_id: "n1".into(),
            mode: EndpointMode::Vip,
            vip: Some(vip),
            backends,
        });
        v
    };
    let tasks1 = vec![task("t1", &t1, &["n1"])];
    node1
        .reconcile(&with_service(1, vec![addr(3), addr(4)]), &tasks1)
        .await
        .unwrap();
    node2
        .reconcile(
            &view(2),
            &[task("t2", &t2, &["n1"]), task("t3", &t3, &["n1"])],
        )
        .await
        .unwrap();
    tcp_whoami(&t2, sock(addr(3), 8000));
    tcp_whoami(&t3, sock(addr(4), 8000));
    udp_echo(&t2, sock(addr(3), 8001));
    udp_echo(&t3, sock(addr(4), 8001));

    // New connections to the VIP land on both backends (each pick is a coin
    // toss: 200 connections missing one has probability 2^-199).
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        seen.insert(tcp_ask(&t1, sock(vip, 8000)).unwrap());
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen, ["10.0.1.3", "10.0.1.4"].map(String::from).into());
    // UDP too, and the answer comes back from the VIP.
    udp_probe(&t1, sock(vip, 8001), PATIENCE).unwrap();

    // t3 leaves the backends: no new connection reaches it.
    node1
        .reconcile(&with_service(1, vec![addr(3)]), &tasks1)
        .await
        .unwrap();
    for _ in 0..20 {
        assert_eq!(tcp_ask(&t1, sock(vip, 8000)).unwrap(), "10.0.1.3");
    }
    // No backends: the VIP answers nothing, and the task's table is gone.
    node1
        .reconcile(&with_service(1, vec![]), &tasks1)
        .await
        .unwrap();
    assert!(tcp_ask(&t1, sock(vip, 8000)).is_err());
    let tables = hosts::must("ip", &["netns", "exec", &t1, "nft", "list", "tables"]);
    assert!(!tables.contains("shoal-vip"), "{tables}");
}
