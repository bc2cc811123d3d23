//! TCP throughput and connection-setup latency task → task across two
//! namespace hosts over the overlay (VXLAN), against the same two hosts over
//! their underlay veth; prints the ratio (target: overlay ≥ 0.9 of underlay
//! throughput). Root only:
//!
//!     cargo bench -p shoal-overlay-net --bench overlay
//!
//! Each measurement is bounded in time (throughput) or count (latency), and
//! every address is inside namespaces the bench creates.

// A test crate: its helpers unwrap like its tests (the workspace denies
// unwrap_used in everything else).
#![allow(clippy::unwrap_used)]

#[path = "../tests/hosts/mod.rs"]
mod hosts;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use hosts::{underlay, Hosts};
use shoal_overlay_net::model::{
    Endpoint, Ipv4Subnet, LocalTask, NodeView, OverlayNetwork, Peer, TaskNetns,
};
use shoal_overlay_net::netns::NetNs;
use shoal_overlay_net::OverlayNode;

const SECONDS: u64 = 5;
const CONNECTIONS: usize = 500;

fn view(me: u8) -> NodeView {
    let other = 3 - me;
    let endpoint = |task: &str, node: u8, last: u8| Endpoint {
        task_id: task.into(),
        node_id: format!("node{node}"),
        network_id: "bench".into(),
        addr: Ipv4Addr::new(10, 0, 9, last),
    };
    NodeView {
        node_id: format!("node{me}"),
        vtep: Some(IpAddr::V4(underlay(me))),
        networks: vec![OverlayNetwork {
            id: "bench".into(),
            name: "bench".into(),
            vni: 9000,
            subnet: Ipv4Subnet {
                addr: Ipv4Addr::new(10, 0, 9, 0),
                prefix_len: 24,
            },
            gateway: Ipv4Addr::new(10, 0, 9, 1),
            mtu: None,
            internal: false,
        }],
        peers: vec![Peer {
            node_id: format!("node{other}"),
            vtep: IpAddr::V4(underlay(other)),
            networks: vec!["bench".into()],
        }],
        endpoints: vec![endpoint("a", 1, 2), endpoint("b", 2, 3)],
        services: vec![],
    }
}

/// A server in `ns` that discards what it reads and closes when the peer does.
fn sink(ns: &str, addr: SocketAddr) {
    let listener = NetNs::open(ns)
        .unwrap()
        .run(move || TcpListener::bind(addr))
        .unwrap()
        .unwrap();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 256 * 1024];
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
}

/// Bytes per second written from `ns` to `to` for `SECONDS`.
fn throughput(ns: &str, to: SocketAddr) -> f64 {
    NetNs::open(ns)
        .unwrap()
        .run(move || {
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(3)).expect("connect");
            let buf = vec![0x5au8; 256 * 1024];
            let start = Instant::now();
            let mut sent = 0u64;
            while start.elapsed() < Duration::from_secs(SECONDS) {
                s.write_all(&buf).expect("write");
                sent += buf.len() as u64;
            }
            sent as f64 / start.elapsed().as_secs_f64()
        })
        .unwrap()
}

/// Connect-to-accepted latencies (µs, sorted) of `CONNECTIONS` connections.
fn connect_latencies(ns: &str, to: SocketAddr) -> Vec<f64> {
    NetNs::open(ns)
        .unwrap()
        .run(move || {
            let mut all: Vec<f64> = (0..CONNECTIONS)
                .map(|_| {
                    let start = Instant::now();
                    let s =
                        TcpStream::connect_timeout(&to, Duration::from_secs(3)).expect("connect");
                    let took = start.elapsed().as_secs_f64() * 1e6;
                    drop(s);
                    took
                })
                .collect();
            all.sort_by(f64::total_cmp);
            all
        })
        .unwrap()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("overlay bench: needs root (network namespaces, VXLAN); skipped");
        return;
    }
    let mut hosts = Hosts::new();
    let (a, b) = (hosts.task_ns("a"), hosts.task_ns("b"));
    let node1 = OverlayNode::in_netns(&hosts.host_ns(1)).await.unwrap();
    let node2 = OverlayNode::in_netns(&hosts.host_ns(2)).await.unwrap();
    let task = |id: &str, ns: &str| LocalTask {
        task_id: id.into(),
        netns: TaskNetns::Named(ns.into()),
        networks: vec!["bench".into()],
    };
    node1.reconcile(&view(1), &[task("a", &a)]).await.unwrap();
    node2.reconcile(&view(2), &[task("b", &b)]).await.unwrap();

    let overlay_to = SocketAddr::from((Ipv4Addr::new(10, 0, 9, 3), 9000));
    let underlay_to = SocketAddr::from((underlay(2), 9000));
    sink(&b, overlay_to);
    sink(hosts.host(2), underlay_to);

    let under = throughput(hosts.host(1), underlay_to);
    let over = throughput(&a, overlay_to);
    let under_lat = connect_latencies(hosts.host(1), underlay_to);
    let over_lat = connect_latencies(&a, overlay_to);

    let gbit = |bps: f64| bps * 8.0 / 1e9;
    println!(
        "overlay bench: two namespace hosts, veth underlay (MTU 1500), VXLAN overlay (MTU 1450)"
    );
    println!("TCP throughput ({SECONDS} s, one stream):");
    println!("  underlay host→host   {:8.2} Gbit/s", gbit(under));
    println!("  overlay  task→task   {:8.2} Gbit/s", gbit(over));
    println!(
        "  ratio overlay/underlay {:.2} (target ≥ 0.90)",
        over / under
    );
    println!("TCP connection setup ({CONNECTIONS} connections, µs):");
    println!(
        "  underlay  median {:7.1}  p99 {:7.1}",
        pct(&under_lat, 0.5),
        pct(&under_lat, 0.99)
    );
    println!(
        "  overlay   median {:7.1}  p99 {:7.1}",
        pct(&over_lat, 0.5),
        pct(&over_lat, 0.99)
    );
    println!(
        "  ratio overlay/underlay (median) {:.2}",
        pct(&over_lat, 0.5) / pct(&under_lat, 0.5)
    );
    node1.cleanup_all().await.unwrap();
    node2.cleanup_all().await.unwrap();
}
