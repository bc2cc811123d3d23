//! Lookups per second of the embedded DNS resolver: A queries for VIP names
//! over UDP on loopback, N concurrent clients each asking, awaiting the
//! reply, and asking again, against a view of 200 services on 4 networks.
//!
//!     cargo bench -p shoal-overlay-net --bench dns
//!
//! `SHOAL_DNS_BENCH_SECS` sets the seconds per client count (default 3).
//! Prints one line per client count; the resolver and the clients share
//! the machine's cores, so the figure is a floor for the resolver alone.

// A test crate: its helpers unwrap like its tests (the workspace denies
// unwrap_used in everything else).
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use shoal_overlay_net::dns::{self, ServeConfig};
use shoal_overlay_net::model::{
    EndpointMode, Ipv4Subnet, NodeView, OverlayNetwork, ServiceEndpoint,
};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

const NETWORKS: u8 = 4;
const SERVICES_PER_NETWORK: u8 = 50;

fn view() -> NodeView {
    let mut view = NodeView {
        node_id: "bench".into(),
        ..NodeView::default()
    };
    for n in 0..NETWORKS {
        view.networks.push(OverlayNetwork {
            id: format!("net-{n}"),
            name: format!("stack_net{n}"),
            vni: 4096 + u32::from(n),
            subnet: Ipv4Subnet {
                addr: Ipv4Addr::new(10, 0, n, 0),
                prefix_len: 24,
            },
            gateway: Ipv4Addr::new(10, 0, n, 1),
            mtu: None,
            internal: false,
        });
        for s in 0..SERVICES_PER_NETWORK {
            view.services.push(ServiceEndpoint {
                service_id: format!("svc-{n}-{s}"),
                name: format!("stack_svc{n}x{s}"),
                aliases: vec![format!("svc{n}x{s}")],
                network_id: format!("net-{n}"),
                mode: EndpointMode::Vip,
                vip: Some(Ipv4Addr::new(10, 0, n, 2 + s)),
                backends: (0..3).map(|t| Ipv4Addr::new(10, 0, n, 100 + t)).collect(),
            });
        }
    }
    view
}

fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Message::new();
    q.set_id(id).set_recursion_desired(true);
    q.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    q.to_vec().unwrap()
}

async fn run_clients(server: SocketAddr, clients: usize, run_for: Duration) -> f64 {
    // The asker is on the last two networks: names it can see.
    let names: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..SERVICES_PER_NETWORK)
            .flat_map(|s| [format!("svc2x{s}"), format!("stack_svc3x{s}")])
            .enumerate()
            .map(|(i, name)| query(i as u16, &name))
            .collect(),
    );
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (names, done, stop) = (names.clone(), done.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            socket.connect(server).await.unwrap();
            let mut buf = vec![0u8; 1500];
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let q = &names[i % names.len()];
                socket.send(q).await.unwrap();
                let n = socket.recv(&mut buf).await.unwrap();
                assert!(n > 12 && buf[..2] == q[..2], "a reply to the query");
                assert_eq!(buf[3] & 0x0f, 0, "NOERROR");
                done.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    tokio::time::sleep(run_for).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let secs: u64 = std::env::var("SHOAL_DNS_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = udp.local_addr().unwrap();
        let (_view_tx, view_rx) = watch::channel(Arc::new(view()));
        let config = ServeConfig::new(vec!["net-2".into(), "net-3".into()], vec![]);
        let resolver = tokio::spawn(dns::serve(udp, tcp, view_rx, config));

        println!(
            "embedded DNS, A lookups of VIP names over UDP on loopback \
             ({} services, {} networks, {secs} s per row, {} cores):",
            usize::from(NETWORKS) * usize::from(SERVICES_PER_NETWORK),
            NETWORKS,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
        );
        for clients in [1, 4, 16, 64] {
            let rate = run_clients(server, clients, Duration::from_secs(secs)).await;
            println!("  {clients:>3} concurrent clients: {rate:>9.0} lookups/s");
        }
        resolver.abort();
    });
}
