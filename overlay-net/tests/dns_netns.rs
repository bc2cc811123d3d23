//! The embedded resolver at its real address, 127.0.0.11:53, inside two real
//! network namespaces at once, served by this one test process: each
//! namespace is answered for its own networks, and names outside the overlay
//! are forwarded from the host's namespace to a resolver the task namespaces
//! themselves cannot reach.
//!
//! Needs root (a new network namespace per simulated task): runs when
//! `SHOAL_E2E_PRIVILEGED=1` (CI sets it) and then fails without root;
//! reports itself skipped otherwise. The namespaces are made with
//! `unshare(CLONE_NEWNET)` on a short-lived thread and have no name, so
//! nothing is left behind: each goes when its last socket closes.

// A test crate: its helpers unwrap like its tests (the workspace denies
// unwrap_used in everything else).
#![allow(clippy::unwrap_used)]

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use nix::sched::{unshare, CloneFlags};
use shoal_overlay_net::dns::{self, BoundSockets, ServeConfig, RESOLVER_ADDR, RESOLVER_PORT};
use shoal_overlay_net::model::{
    EndpointMode, Ipv4Subnet, NodeView, OverlayNetwork, ServiceEndpoint,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::timeout;

const REPLY_DEADLINE: Duration = Duration::from_secs(10);
const WEB_VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
const DB_VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const OUTSIDE_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 99);

fn privileged(test: &str) -> bool {
    if std::env::var("SHOAL_E2E_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!("SKIPPED {test}: needs root; set SHOAL_E2E_PRIVILEGED=1 to run it (CI does)");
        return false;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "SHOAL_E2E_PRIVILEGED=1 but this test does not run as root"
    );
    true
}

fn view() -> NodeView {
    let network = |id: &str, name: &str, third: u8| OverlayNetwork {
        id: id.into(),
        name: name.into(),
        vni: 4096 + u32::from(third),
        subnet: Ipv4Subnet {
            addr: Ipv4Addr::new(10, 0, third, 0),
            prefix_len: 24,
        },
        gateway: Ipv4Addr::new(10, 0, third, 1),
        mtu: None,
        internal: false,
    };
    let service = |name: &str, network_id: &str, vip: Ipv4Addr, third: u8| ServiceEndpoint {
        service_id: format!("id-{name}"),
        name: format!("app_{name}"),
        aliases: vec![name.into()],
        network_id: network_id.into(),
        mode: EndpointMode::Vip,
        vip: Some(vip),
        backends: vec![
            Ipv4Addr::new(10, 0, third, 10),
            Ipv4Addr::new(10, 0, third, 11),
        ],
    };
    NodeView {
        node_id: "node-1".into(),
        networks: vec![
            network("net-app", "app_appnet", 1),
            network("net-db", "app_dbnet", 2),
        ],
        services: vec![
            service("web", "net-app", WEB_VIP, 1),
            service("db", "net-db", DB_VIP, 2),
        ],
        ..NodeView::default()
    }
}

/// What a task's namespace holds for the test: the resolver's sockets at
/// 127.0.0.11:53, and a client's UDP socket and TCP connection to them.
struct TaskNamespace {
    resolver: BoundSockets,
    client_udp: std::net::UdpSocket,
    client_tcp: std::net::TcpStream,
    /// Whether the host-namespace listener was reachable from inside.
    reached_host_listener: bool,
}

/// A fresh network namespace with loopback up, entered by a thread of its
/// own that makes the sockets there and ends: the sockets keep it.
fn new_task_namespace(host_listener: SocketAddr) -> TaskNamespace {
    std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        // `ip` run from this thread runs in its namespace.
        let up = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .expect("run ip");
        assert!(up.success(), "ip link set lo up");
        let resolver = BoundSockets::bind(SocketAddr::from((RESOLVER_ADDR, RESOLVER_PORT)))
            .expect("bind 127.0.0.11:53");
        let client_udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client_udp.connect((RESOLVER_ADDR, RESOLVER_PORT)).unwrap();
        client_udp.set_nonblocking(true).unwrap();
        // Completes in the kernel's backlog; the resolver accepts it later.
        let client_tcp = std::net::TcpStream::connect((RESOLVER_ADDR, RESOLVER_PORT)).unwrap();
        client_tcp.set_nonblocking(true).unwrap();
        let reached_host_listener = match std::net::TcpStream::connect(host_listener) {
            Ok(_) => true,
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
                false
            }
        };
        TaskNamespace {
            resolver,
            client_udp,
            client_tcp,
            reached_host_listener,
        }
    })
    .join()
    .expect("namespace thread")
}

fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Message::new();
    q.set_id(id).set_recursion_desired(true);
    q.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    q.to_vec().unwrap()
}

fn a_addrs(reply: &Message) -> Vec<Ipv4Addr> {
    reply
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

async fn ask_udp(client: &UdpSocket, id: u16, name: &str) -> Message {
    client.send(&query(id, name)).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let n = timeout(REPLY_DEADLINE, client.recv(&mut buf))
        .await
        .expect("a reply")
        .unwrap();
    let reply = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(reply.id(), id);
    reply
}

/// A resolver on the host's loopback: `example.test` is 127.0.0.99,
/// anything else NXDOMAIN. Returns its address.
async fn start_host_upstream() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            let q = Message::from_vec(&buf[..n]).unwrap();
            let mut reply = Message::new();
            reply
                .set_id(q.id())
                .set_message_type(MessageType::Response)
                .set_recursion_available(true);
            reply.add_queries(q.queries().iter().cloned());
            let name = q.queries()[0].name().clone();
            if name.to_ascii() == "example.test." {
                reply.add_answer(Record::from_rdata(name, 30, RData::A(A(OUTSIDE_ADDR))));
            } else {
                reply.set_response_code(ResponseCode::NXDomain);
            }
            let _ = socket.send_to(&reply.to_vec().unwrap(), peer).await;
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_answers_at_127_0_0_11_in_each_task_namespace() {
    if !privileged("one_process_answers_at_127_0_0_11_in_each_task_namespace") {
        return;
    }
    let upstream = start_host_upstream().await;
    let host_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host_listener_addr = host_listener.local_addr().unwrap();

    let (_view_tx, view_rx) = watch::channel(Arc::new(view()));
    let mut clients = Vec::new();
    let mut resolvers = Vec::new();
    for asker in ["net-app", "net-db"] {
        let ns = new_task_namespace(host_listener_addr);
        assert!(
            !ns.reached_host_listener,
            "a task namespace must not reach the host's loopback"
        );
        let (udp, tcp) = ns.resolver.into_tokio().unwrap();
        let config = ServeConfig::new(vec![asker.into()], vec![upstream]);
        resolvers.push(tokio::spawn(dns::serve(udp, tcp, view_rx.clone(), config)));
        clients.push((
            UdpSocket::from_std(ns.client_udp).unwrap(),
            tokio::net::TcpStream::from_std(ns.client_tcp).unwrap(),
        ));
    }

    // The task on appnet: its own service by VIP; db is not on its networks
    // and goes to the upstream, which does not know it.
    let (app_udp, app_tcp) = &mut clients[0];
    assert_eq!(a_addrs(&ask_udp(app_udp, 1, "web").await), [WEB_VIP]);
    let db = ask_udp(app_udp, 2, "db").await;
    assert_eq!(db.response_code(), ResponseCode::NXDomain);
    // An outside name, forwarded from the host namespace to a resolver this
    // namespace cannot reach itself.
    assert_eq!(
        a_addrs(&ask_udp(app_udp, 3, "example.test").await),
        [OUTSIDE_ADDR]
    );
    // TCP at 127.0.0.11:53 too.
    let framed = {
        let q = query(4, "tasks.web");
        let mut f = (q.len() as u16).to_be_bytes().to_vec();
        f.extend_from_slice(&q);
        f
    };
    app_tcp.write_all(&framed).await.unwrap();
    let mut len = [0u8; 2];
    timeout(REPLY_DEADLINE, app_tcp.read_exact(&mut len))
        .await
        .expect("a TCP reply")
        .unwrap();
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    app_tcp.read_exact(&mut msg).await.unwrap();
    let mut tasks = a_addrs(&Message::from_vec(&msg).unwrap());
    tasks.sort();
    assert_eq!(
        tasks,
        [Ipv4Addr::new(10, 0, 1, 10), Ipv4Addr::new(10, 0, 1, 11)]
    );

    // The task on dbnet, same address 127.0.0.11:53 in its own namespace,
    // sees the other side.
    let (db_udp, _) = &clients[1];
    assert_eq!(a_addrs(&ask_udp(db_udp, 5, "db").await), [DB_VIP]);
    assert_eq!(
        ask_udp(db_udp, 6, "web").await.response_code(),
        ResponseCode::NXDomain
    );

    for r in resolvers {
        r.abort();
    }
}
