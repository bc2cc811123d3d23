//! The routing mesh on real kernel devices: two namespace hosts joined by
//! the ingress overlay, a client outside the cluster on each, backends in
//! task namespaces (root only, gated by `SHOAL_E2E_PRIVILEGED=1`; see
//! `hosts` for the harness).

// A test crate: its helpers unwrap like its tests (the workspace denies
// unwrap_used in everything else).
#![allow(clippy::unwrap_used)]

mod hosts;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hosts::{privileged, tcp_ask, tcp_echo, tcp_peer, udp_ask, udp_peer, underlay, Hosts};
use shoal_overlay_net::ingress::{self, IngressView, Protocol, PublishedPort};
use shoal_overlay_net::model::{
    Endpoint, Ipv4Subnet, LocalTask, NodeView, OverlayNetwork, Peer, TaskNetns,
};
use shoal_overlay_net::OverlayNode;

const INGRESS: &str = "ingress";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn sock(a: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(a), port)
}

fn ingress_network() -> OverlayNetwork {
    OverlayNetwork {
        id: INGRESS.into(),
        name: "ingress".into(),
        vni: 4321,
        subnet: Ipv4Subnet {
            addr: ip("10.255.0.0"),
            prefix_len: 16,
        },
        gateway: ip("10.255.0.1"),
        mtu: None,
        internal: false,
    }
}

/// Backend `web.1` on node 2 at .10, `web.2` on node 1 at .11; sandboxes
/// .2 (node 1) and .3 (node 2).
fn backends() -> Vec<(&'static str, u8, Ipv4Addr)> {
    vec![
        ("web1", 2, ip("10.255.0.10")),
        ("web2", 1, ip("10.255.0.11")),
    ]
}

fn mesh(backends: &[Ipv4Addr]) -> IngressView {
    IngressView {
        network: ingress_network(),
        sandboxes: vec![
            ("node1".into(), ip("10.255.0.2")),
            ("node2".into(), ip("10.255.0.3")),
        ],
        ports: vec![
            PublishedPort {
                service_id: "web".into(),
                protocol: Protocol::Tcp,
                published: 8080,
                target: 80,
                backends: backends.to_vec(),
            },
            PublishedPort {
                service_id: "web".into(),
                protocol: Protocol::Udp,
                published: 5353,
                target: 53,
                backends: backends.to_vec(),
            },
        ],
    }
}

fn view(me: u8) -> NodeView {
    let other = 3 - me;
    NodeView {
        node_id: format!("node{me}"),
        vtep: Some(IpAddr::V4(underlay(me))),
        networks: vec![ingress_network()],
        peers: vec![Peer {
            node_id: format!("node{other}"),
            vtep: IpAddr::V4(underlay(other)),
            networks: vec![INGRESS.into()],
        }],
        endpoints: backends()
            .into_iter()
            .map(|(task, node, addr)| Endpoint {
                task_id: task.into(),
                node_id: format!("node{node}"),
                network_id: INGRESS.into(),
                addr,
            })
            .collect(),
        services: vec![],
    }
}

struct Cluster {
    hosts: Hosts,
    nodes: Vec<OverlayNode>,
    sandboxes: Vec<String>,
    tasks: Vec<Vec<LocalTask>>,
}

impl Cluster {
    async fn new() -> Cluster {
        let mut hosts = Hosts::new();
        let sandboxes = vec![hosts.task_ns("sb1"), hosts.task_ns("sb2")];
        let mut tasks = vec![Vec::new(), Vec::new()];
        for (task, node, addr) in backends() {
            let ns = hosts.task_ns(task);
            tcp_peer(&ns, sock(addr, 80), task);
            udp_peer(&ns, sock(addr, 53), task);
            // The benchmark's keep-alive exchanges, and its direct path's
            // new connections (see `bench_mesh_against_direct`).
            tcp_echo(&ns, sock(addr, 81));
            tcp_peer(&ns, sock(addr, 82), task);
            tasks[usize::from(node - 1)].push(LocalTask {
                task_id: task.into(),
                netns: TaskNetns::Named(ns),
                networks: vec![INGRESS.into()],
            });
        }
        let mut nodes = Vec::new();
        for i in 1..=2u8 {
            nodes.push(OverlayNode::in_netns(&hosts.host_ns(i)).await.unwrap());
        }
        Cluster {
            hosts,
            nodes,
            sandboxes,
            tasks,
        }
    }

    /// What the agent of each node does with a pushed view: plumb the
    /// overlay with the sandbox in it, then the mesh's tables.
    async fn apply(&self, mesh: &IngressView) {
        for i in 0..2 {
            let mut v = view(i as u8 + 1);
            let mut tasks = self.tasks[i].clone();
            ingress::with_sandbox(&mut v, &mut tasks, mesh, &self.sandboxes[i]);
            let report = self.nodes[i].reconcile(&v, &tasks).await.unwrap();
            assert!(report.problems.is_empty(), "{:?}", report.problems);
            self.nodes[i]
                .apply_ingress(
                    mesh,
                    &v.node_id,
                    &TaskNetns::Named(self.sandboxes[i].clone()),
                )
                .await
                .unwrap();
            for task in &self.tasks[i] {
                self.nodes[i]
                    .apply_ingress_return(mesh, task)
                    .await
                    .unwrap();
            }
        }
    }
}

/// Who answered `n` connections from `client` to `entry`, and every source
/// address the backends saw.
fn ask_many(client: &str, entry: SocketAddr, n: usize) -> (BTreeMap<String, usize>, Vec<String>) {
    let mut answered = BTreeMap::new();
    let mut seen = Vec::new();
    for _ in 0..n {
        let answer = tcp_ask(client, entry).unwrap_or_else(|e| panic!("via {entry}: {e}"));
        let (who, peer) = answer.split_once(' ').expect("NAME PEER");
        *answered.entry(who.to_string()).or_insert(0) += 1;
        if !seen.iter().any(|s| s == peer) {
            seen.push(peer.to_string());
        }
    }
    (answered, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_answers_and_the_backend_sees_the_clients_own_address() {
    if !privileged("every_node_answers_and_the_backend_sees_the_clients_own_address") {
        return;
    }
    let mut cluster = Cluster::new().await;
    let (client1, addr1) = cluster.hosts.client(1);
    let (client2, addr2) = cluster.hosts.client(2);
    let all: Vec<Ipv4Addr> = backends().into_iter().map(|(_, _, a)| a).collect();
    cluster.apply(&mesh(&all)).await;

    // Entering at either node, each client's connections reach both
    // backends (one on the entry node, one across the overlay), and every
    // backend saw the client's own address, not a node's.
    for (client, addr, entry) in [
        (&client1, addr1, ip("192.168.11.1")),
        (&client2, addr2, ip("192.168.12.1")),
    ] {
        let (answered, seen) = ask_many(client, sock(entry, 8080), 40);
        assert_eq!(answered.len(), 2, "entering at {entry}: {answered:?}");
        assert_eq!(seen, vec![addr.to_string()], "entering at {entry}");
    }
    // UDP too.
    let answer = udp_ask(
        &client1,
        sock(ip("192.168.11.1"), 5353),
        Duration::from_secs(10),
    )
    .unwrap();
    assert!(answer.ends_with(&format!(" {addr1}")), "{answer}");

    // Applying the same view again changes nothing a client notices.
    cluster.apply(&mesh(&all)).await;
    assert_eq!(
        ask_many(&client1, sock(ip("192.168.11.1"), 8080), 4).1,
        vec![addr1.to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_leaves_gets_no_new_connection_and_unpublishing_removes_the_rules() {
    if !privileged(
        "a_backend_that_leaves_gets_no_new_connection_and_unpublishing_removes_the_rules",
    ) {
        return;
    }
    let mut cluster = Cluster::new().await;
    // Entering at node 1, which then has no replica left.
    let (client, addr) = cluster.hosts.client(1);
    let entry = sock(ip("192.168.11.1"), 8080);
    let all: Vec<Ipv4Addr> = backends().into_iter().map(|(_, _, a)| a).collect();
    cluster.apply(&mesh(&all)).await;
    assert_eq!(ask_many(&client, entry, 40).0.len(), 2);

    // web2 (node 1's) leaves: every new connection goes to web1 on node 2.
    cluster.apply(&mesh(&[ip("10.255.0.10")])).await;
    let (answered, seen) = ask_many(&client, entry, 30);
    assert_eq!(answered.keys().collect::<Vec<_>>(), vec!["web1"]);
    assert_eq!(seen, vec![addr.to_string()]);

    // Nothing published: the node's table is gone.
    cluster
        .apply(&IngressView {
            ports: vec![],
            ..mesh(&[])
        })
        .await;
    let listed = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            cluster.hosts.host(1),
            "nft",
            "list",
            "tables",
        ])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(!listed.contains(ingress::TABLE), "{listed}");
    assert!(tcp_ask(&client, entry).is_err(), "port 8080 still answers");
}

/// The mesh's cost, printed (never asserted): requests per second and
/// p50/p99 latency of 8 parallel clients, each request a new TCP
/// connection answered by one backend on node 2, entering at node 1 (no
/// replica there) through the mesh, against the same client going to the
/// task's own address over the same hosts. Run it with
/// `SHOAL_E2E_PRIVILEGED=1 cargo nextest run -p shoal-overlay-net --test ingress
/// --run-ignored only --no-capture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: prints figures"]
async fn bench_mesh_against_direct() {
    if !privileged("bench_mesh_against_direct") {
        return;
    }
    let mut cluster = Cluster::new().await;
    let (client, _) = cluster.hosts.client(1);
    let backend = ip("10.255.0.10");
    let mut view = mesh(&[backend]);
    view.ports.push(PublishedPort {
        service_id: "echo".into(),
        protocol: Protocol::Tcp,
        published: 8081,
        target: 81,
        backends: vec![backend],
    });
    cluster.apply(&view).await;
    // The direct path: node 2 routes replies to the client's subnet back
    // through node 1 (the mesh needs no such route).
    cluster.hosts.ip(
        2,
        &["route", "add", "192.168.11.0/24", "via", "192.168.251.1"],
    );
    let new_connections = |to: SocketAddr| {
        let client = client.clone();
        measure(bench_threads(), 400, move || {
            let client = client.clone();
            move || {
                tcp_ask(&client, to).expect("a request");
            }
        })
    };
    report(
        "new connection per request (connections/s)",
        // Not port 80, where the mesh leads: the client picks source ports
        // per destination, and the mesh's destination is the entry node,
        // so the same client port reaches the backend on both paths. The
        // backend, which closes first, holds each direct connection in
        // TIME_WAIT for a minute, and a mesh SYN landing on one is
        // answered with an old ACK and retried (about 7 % of them, ~12 ms
        // each, measured with the client's TCPSynRetrans counter).
        new_connections(sock(backend, 82)),
        new_connections(sock(ip("192.168.11.1"), 8080)),
    );
    // Requests over kept-alive connections, as wrk sends them: 8 clients,
    // each one connection and 2,000 request/answer exchanges of 16 bytes.
    let keep_alive = |to: SocketAddr| {
        let client = client.clone();
        measure(bench_threads(), 2000, move || {
            use std::io::{Read, Write};
            let mut stream = shoal_overlay_net::netns::NetNs::open(&client)
                .unwrap()
                .run(move || std::net::TcpStream::connect_timeout(&to, Duration::from_secs(3)))
                .unwrap()
                .expect("a connection");
            stream.set_nodelay(true).unwrap();
            let mut buf = [0u8; 16];
            move || {
                stream.write_all(b"GET / 1234567890").unwrap();
                stream.read_exact(&mut buf).unwrap();
            }
        })
    };
    report(
        "kept-alive connections (requests/s)",
        keep_alive(sock(backend, 81)),
        keep_alive(sock(ip("192.168.11.1"), 8081)),
    );
}

/// The client threads of the mesh benchmark: `SHOAL_BENCH_THREADS`, 8 by
/// default.
fn bench_threads() -> usize {
    std::env::var("SHOAL_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(8)
}

/// Requests/s and the p50 and p99 latency of `threads` clients at once,
/// each making `per` timed requests with the request function its own
/// `open` returns (called in the client's thread, untimed).
fn measure<O, R>(threads: usize, per: usize, open: O) -> (f64, Duration, Duration)
where
    O: Fn() -> R + Clone + Send + 'static,
    R: FnMut(),
{
    let start = std::time::Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let open = open.clone();
            std::thread::spawn(move || {
                let mut request = open();
                let mut lat = Vec::with_capacity(per);
                for _ in 0..per {
                    let t = std::time::Instant::now();
                    request();
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    let rps = lat.len() as f64 / secs;
    (rps, lat[lat.len() / 2], lat[lat.len() * 99 / 100])
}

fn report(load: &str, direct: (f64, Duration, Duration), meshed: (f64, Duration, Duration)) {
    println!(
        "{load}:\ndirect: {:.0} req/s p50 {:?} p99 {:?}\nmesh (entering at a node without a replica): {:.0} req/s p50 {:?} p99 {:?}\nratio mesh/direct: {:.2}",
        direct.0, direct.1, direct.2, meshed.0, meshed.1, meshed.2, meshed.0 / direct.0
    );
}
