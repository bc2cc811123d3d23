//! The embedded DNS resolver served for real on loopback sockets (UDP and
//! TCP, ephemeral ports on 127.0.0.1), with a fake upstream resolver started
//! by each test on loopback too. Nothing here leaves 127.0.0.0/8.

// A test crate: its helpers unwrap like its tests (the workspace denies
// unwrap_used in everything else).
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use shoal_overlay_net::dns::{self, ServeConfig};
use shoal_overlay_net::model::{
    EndpointMode, Ipv4Subnet, NodeView, OverlayNetwork, ServiceEndpoint,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// How long a test waits for any one reply before failing (not a speed
/// assertion: a generous bound so a broken server fails instead of hanging).
const REPLY_DEADLINE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- the view

fn network(id: &str, name: &str, internal: bool) -> OverlayNetwork {
    OverlayNetwork {
        id: id.into(),
        name: name.into(),
        vni: 4097,
        subnet: Ipv4Subnet {
            addr: Ipv4Addr::new(10, 0, 1, 0),
            prefix_len: 24,
        },
        gateway: Ipv4Addr::new(10, 0, 1, 1),
        mtu: None,
        internal,
    }
}

fn vip_service(name: &str, alias: &str, network_id: &str, vip: Ipv4Addr) -> ServiceEndpoint {
    ServiceEndpoint {
        service_id: format!("id-{name}"),
        name: name.into(),
        aliases: vec![alias.into()],
        network_id: network_id.into(),
        mode: EndpointMode::Vip,
        vip: Some(vip),
        backends: vec![Ipv4Addr::new(10, 0, 1, 10), Ipv4Addr::new(10, 0, 1, 11)],
    }
}

/// `app_web` (alias `web`) on `appnet`; `app_db` on `dbnet`, which the
/// asking task is not on; `vault` on the internal `privnet`.
fn view_with_web_vip(vip: Ipv4Addr) -> NodeView {
    NodeView {
        node_id: "node-1".into(),
        networks: vec![
            network("net-app", "app_appnet", false),
            network("net-db", "app_dbnet", false),
            network("net-priv", "app_privnet", true),
        ],
        services: vec![
            vip_service("app_web", "web", "net-app", vip),
            vip_service("app_db", "db", "net-db", Ipv4Addr::new(10, 0, 2, 2)),
            vip_service("vault", "vault", "net-priv", Ipv4Addr::new(10, 0, 3, 2)),
        ],
        ..NodeView::default()
    }
}

const WEB_VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);

// ---------------------------------------------------------------- the resolver

struct Resolver {
    udp: SocketAddr,
    tcp: SocketAddr,
    view: watch::Sender<Arc<NodeView>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_resolver(view: NodeView, config: ServeConfig) -> Resolver {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (udp_addr, tcp_addr) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
    let (tx, rx) = watch::channel(Arc::new(view));
    let task = tokio::spawn(dns::serve(udp, tcp, rx, config));
    Resolver {
        udp: udp_addr,
        tcp: tcp_addr,
        view: tx,
        task,
    }
}

fn config(asker: &[&str], upstreams: Vec<SocketAddr>) -> ServeConfig {
    let mut config = ServeConfig::new(asker.iter().map(|s| s.to_string()).collect(), upstreams);
    // Short, so the dead-upstream tests finish soon; no test asserts on it.
    config.upstream_timeout = Duration::from_millis(300);
    config
}

fn query(id: u16, name: &str, qtype: RecordType, edns_payload: Option<u16>) -> Vec<u8> {
    let mut q = Message::new();
    q.set_id(id).set_recursion_desired(true);
    q.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(payload) = edns_payload {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        q.set_edns(edns);
    }
    q.to_vec().unwrap()
}

async fn ask_udp_from(socket: &UdpSocket, server: SocketAddr, packet: &[u8]) -> Message {
    socket.send_to(packet, server).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, _) = timeout(REPLY_DEADLINE, socket.recv_from(&mut buf))
        .await
        .expect("a UDP reply")
        .unwrap();
    let reply = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(reply.id(), u16::from_be_bytes([packet[0], packet[1]]));
    reply
}

async fn ask_udp(server: SocketAddr, name: &str, qtype: RecordType, edns: Option<u16>) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    ask_udp_from(&socket, server, &query(0x5151, name, qtype, edns)).await
}

async fn ask_tcp_on(stream: &mut TcpStream, packet: &[u8]) -> Option<Message> {
    let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(packet);
    stream.write_all(&framed).await.ok()?;
    let mut len = [0u8; 2];
    timeout(REPLY_DEADLINE, stream.read_exact(&mut len))
        .await
        .expect("a TCP reply or a close")
        .ok()?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut msg).await.ok()?;
    Some(Message::from_vec(&msg).unwrap())
}

async fn ask_tcp(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let mut stream = TcpStream::connect(server).await.unwrap();
    ask_tcp_on(&mut stream, &query(0x7272, name, qtype, None))
        .await
        .expect("a TCP reply")
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

// ---------------------------------------------------------------- fake upstream

#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    /// `example.test` → 127.0.0.99; `big.test` → truncated over UDP, 60
    /// records over TCP; anything else NXDOMAIN.
    Answer,
    /// Receives and never replies.
    Silent,
    /// Replies SERVFAIL to everything.
    ServFail,
}

struct FakeUpstream {
    addr: SocketAddr,
    udp_queries: Arc<AtomicUsize>,
    tcp_queries: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

const BIG_ANSWER_RECORDS: u8 = 60;

fn upstream_reply(query: &Message, behaviour: Behaviour, over_tcp: bool) -> Message {
    let mut reply = Message::new();
    reply
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true);
    reply.add_queries(query.queries().iter().cloned());
    if let Some(edns) = query.extensions() {
        reply.set_edns(edns.clone());
    }
    let name = query.queries()[0].name().clone();
    let record = |addr: Ipv4Addr| Record::from_rdata(name.clone(), 30, RData::A(A(addr)));
    match (behaviour, name.to_ascii().to_ascii_lowercase().as_str()) {
        (Behaviour::ServFail, _) => {
            reply.set_response_code(ResponseCode::ServFail);
        }
        (_, "example.test.") => {
            reply.add_answer(record(Ipv4Addr::new(127, 0, 0, 99)));
        }
        (_, "big.test.") if !over_tcp => {
            reply.set_truncated(true);
        }
        (_, "big.test.") => {
            for i in 0..BIG_ANSWER_RECORDS {
                reply.add_answer(record(Ipv4Addr::new(127, 0, 1, i)));
            }
        }
        _ => {
            reply.set_response_code(ResponseCode::NXDomain);
        }
    }
    reply
}

async fn start_upstream(behaviour: Behaviour) -> FakeUpstream {
    // UDP and TCP on the same port, as a real resolver: take a free UDP
    // port, then the same TCP port (retried if something else holds it).
    let (udp, tcp) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
            break (udp, tcp);
        }
    };
    let addr = udp.local_addr().unwrap();
    let (udp_queries, tcp_queries) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));

    let counter = udp_queries.clone();
    let udp_task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        loop {
            let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                continue;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            if behaviour == Behaviour::Silent {
                continue;
            }
            let q = Message::from_vec(&buf[..n]).unwrap();
            let bytes = upstream_reply(&q, behaviour, false).to_vec().unwrap();
            let _ = udp.send_to(&bytes, peer).await;
        }
    });
    let counter = tcp_queries.clone();
    let tcp_task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = tcp.accept().await else {
                continue;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut len = [0u8; 2];
                while stream.read_exact(&mut len).await.is_ok() {
                    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    if stream.read_exact(&mut msg).await.is_err() {
                        return;
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    if behaviour == Behaviour::Silent {
                        continue;
                    }
                    let q = Message::from_vec(&msg).unwrap();
                    let bytes = upstream_reply(&q, behaviour, true).to_vec().unwrap();
                    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&bytes);
                    if stream.write_all(&framed).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    FakeUpstream {
        addr,
        udp_queries,
        tcp_queries,
        tasks: vec![udp_task, tcp_task],
    }
}

/// A loopback address where nothing listens: the port of a socket that
/// was just closed, so UDP gets port-unreachable and TCP a refusal.
async fn dead_upstream() -> SocketAddr {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.local_addr().unwrap()
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn service_names_are_answered_from_the_view_over_udp_and_tcp() {
    let r = start_resolver(view_with_web_vip(WEB_VIP), config(&["net-app"], vec![])).await;

    for name in ["app_web", "web", "WEB.", "web.app_appnet"] {
        let reply = ask_udp(r.udp, name, RecordType::A, None).await;
        assert_eq!(reply.response_code(), ResponseCode::NoError, "{name}");
        assert_eq!(a_addrs(&reply), [WEB_VIP], "{name}");
    }
    let tasks = ask_tcp(r.tcp, "tasks.web", RecordType::A).await;
    let mut addrs = a_addrs(&tasks);
    addrs.sort();
    assert_eq!(
        addrs,
        [Ipv4Addr::new(10, 0, 1, 10), Ipv4Addr::new(10, 0, 1, 11)]
    );

    let aaaa = ask_udp(r.udp, "web", RecordType::AAAA, None).await;
    assert_eq!(aaaa.response_code(), ResponseCode::NoError);
    assert!(aaaa.answers().is_empty());
}

#[tokio::test]
async fn a_view_update_is_seen_by_the_next_query() {
    let r = start_resolver(view_with_web_vip(WEB_VIP), config(&["net-app"], vec![])).await;
    assert_eq!(
        a_addrs(&ask_udp(r.udp, "web", RecordType::A, None).await),
        [WEB_VIP]
    );

    let moved = Ipv4Addr::new(10, 0, 1, 200);
    r.view.send(Arc::new(view_with_web_vip(moved))).unwrap();
    assert_eq!(
        a_addrs(&ask_udp(r.udp, "web", RecordType::A, None).await),
        [moved]
    );
    assert_eq!(
        a_addrs(&ask_tcp(r.tcp, "web", RecordType::A).await),
        [moved]
    );

    // The service leaves the view: its name is no longer ours.
    let mut gone = view_with_web_vip(moved);
    gone.services.retain(|s| s.name != "app_web");
    r.view.send(Arc::new(gone)).unwrap();
    let reply = ask_udp(r.udp, "web", RecordType::A, None).await;
    assert_eq!(
        reply.response_code(),
        ResponseCode::ServFail,
        "no upstream to ask"
    );
}

#[tokio::test]
async fn other_names_are_forwarded_to_the_upstream_over_udp_and_tcp() {
    let up = start_upstream(Behaviour::Answer).await;
    let r = start_resolver(
        view_with_web_vip(WEB_VIP),
        config(&["net-app"], vec![up.addr]),
    )
    .await;

    let reply = ask_udp(r.udp, "example.test", RecordType::A, None).await;
    assert_eq!(a_addrs(&reply), [Ipv4Addr::new(127, 0, 0, 99)]);
    assert_eq!(up.udp_queries.load(Ordering::SeqCst), 1);

    let reply = ask_tcp(r.tcp, "example.test", RecordType::A).await;
    assert_eq!(a_addrs(&reply), [Ipv4Addr::new(127, 0, 0, 99)]);
    assert_eq!(
        up.tcp_queries.load(Ordering::SeqCst),
        1,
        "TCP clients are forwarded over TCP"
    );

    let reply = ask_udp(r.udp, "nowhere.test", RecordType::A, None).await;
    assert_eq!(
        reply.response_code(),
        ResponseCode::NXDomain,
        "upstream's NXDOMAIN passed on"
    );
    assert_eq!(reply.queries()[0].name().to_ascii(), "nowhere.test.");

    // Local names never reach the upstream.
    let before = up.udp_queries.load(Ordering::SeqCst);
    ask_udp(r.udp, "web", RecordType::A, None).await;
    ask_udp(r.udp, "web", RecordType::AAAA, None).await;
    assert_eq!(up.udp_queries.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn names_on_networks_the_task_does_not_share_are_forwarded_not_answered() {
    let up = start_upstream(Behaviour::Answer).await;
    let r = start_resolver(
        view_with_web_vip(WEB_VIP),
        config(&["net-app"], vec![up.addr]),
    )
    .await;

    for name in ["db", "tasks.db", "app_db", "db.app_dbnet"] {
        let reply = ask_udp(r.udp, name, RecordType::A, None).await;
        assert_eq!(reply.response_code(), ResponseCode::NXDomain, "{name}");
        assert!(a_addrs(&reply).is_empty(), "{name}");
    }
    assert_eq!(
        up.udp_queries.load(Ordering::SeqCst),
        4,
        "each went upstream"
    );
}

#[tokio::test]
async fn a_task_on_internal_networks_only_is_not_forwarded() {
    let up = start_upstream(Behaviour::Answer).await;
    let r = start_resolver(
        view_with_web_vip(WEB_VIP),
        config(&["net-priv"], vec![up.addr]),
    )
    .await;

    let reply = ask_udp(r.udp, "example.test", RecordType::A, None).await;
    assert_eq!(reply.response_code(), ResponseCode::ServFail);
    assert_eq!(up.udp_queries.load(Ordering::SeqCst), 0);
    let reply = ask_udp(r.udp, "vault", RecordType::A, None).await;
    assert_eq!(a_addrs(&reply), [Ipv4Addr::new(10, 0, 3, 2)]);
}

#[tokio::test]
async fn a_dead_or_silent_upstream_gives_servfail() {
    let silent = start_upstream(Behaviour::Silent).await;
    for upstream in [dead_upstream().await, silent.addr] {
        let r = start_resolver(
            view_with_web_vip(WEB_VIP),
            config(&["net-app"], vec![upstream]),
        )
        .await;
        let reply = ask_udp(r.udp, "example.test", RecordType::A, None).await;
        assert_eq!(reply.response_code(), ResponseCode::ServFail, "{upstream}");
        let reply = ask_tcp(r.tcp, "example.test", RecordType::A).await;
        assert_eq!(
            reply.response_code(),
            ResponseCode::ServFail,
            "{upstream} over TCP"
        );
    }
    assert!(silent.udp_queries.load(Ordering::SeqCst) >= 1);

    // And with no upstream at all.
    let r = start_resolver(view_with_web_vip(WEB_VIP), config(&["net-app"], vec![])).await;
    let reply = ask_udp(r.udp, "example.test", RecordType::A, None).await;
    assert_eq!(reply.response_code(), ResponseCode::ServFail);
}

#[tokio::test]
async fn a_failing_upstream_makes_way_for_the_next() {
    let failing = start_upstream(Behaviour::ServFail).await;
    let good = start_upstream(Behaviour::Answer).await;
    let upstreams = vec![dead_upstream().await, failing.addr, good.addr];
    let r = start_resolver(view_with_web_vip(WEB_VIP), config(&["net-app"], upstreams)).await;

    let reply = ask_udp(r.udp, "example.test", RecordType::A, None).await;
    assert_eq!(a_addrs(&reply), [Ipv4Addr::new(127, 0, 0, 99)]);
    assert_eq!(failing.udp_queries.load(Ordering::SeqCst), 1);
    assert_eq!(good.udp_queries.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_truncated_upstream_answer_is_retried_over_tcp() {
    let up = start_upstream(Behaviour::Answer).await;
    let r = start_resolver(
        view_with_web_vip(WEB_VIP),
        config(&["net-app"], vec![up.addr]),
    )
    .await;

    // A client that accepts 4096 bytes gets the whole answer over UDP.
    let reply = ask_udp(r.udp, "big.test", RecordType::A, Some(4096)).await;
    assert!(!reply.truncated());
    assert_eq!(a_addrs(&reply).len(), usize::from(BIG_ANSWER_RECORDS));
    assert_eq!(up.udp_queries.load(Ordering::SeqCst), 1);
    assert_eq!(up.tcp_queries.load(Ordering::SeqCst), 1, "retried over TCP");

    // A plain 512-byte client gets what fits, flagged truncated.
    let reply = ask_udp(r.udp, "big.test", RecordType::A, None).await;
    assert!(reply.truncated());
    let kept = a_addrs(&reply).len();
    assert!(
        kept > 0 && kept < usize::from(BIG_ANSWER_RECORDS),
        "kept {kept}"
    );

    // Over TCP the client gets everything.
    let reply = ask_tcp(r.tcp, "big.test", RecordType::A).await;
    assert!(!reply.truncated());
    assert_eq!(a_addrs(&reply).len(), usize::from(BIG_ANSWER_RECORDS));
}

#[tokio::test]
async fn malformed_packets_get_no_reply_and_the_server_keeps_serving() {
    let r = start_resolver(view_with_web_vip(WEB_VIP), config(&["net-app"], vec![])).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for garbage in [
        &b""[..],
        b"\x01",
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
    ] {
        socket.send_to(garbage, r.udp).await.unwrap();
    }
    // A response sent to the resolver is not answered either (no loops).
    let mut response = Message::from_vec(&query(1, "web", RecordType::A, None)).unwrap();
    response.set_message_type(MessageType::Response);
    socket
        .send_to(&response.to_vec().unwrap(), r.udp)
        .await
        .unwrap();

    // The next reply on this socket is the one to the valid query: none of
    // the packets before it got one (UDP on loopback keeps the order).
    let reply = ask_udp_from(&socket, r.udp, &query(2, "web", RecordType::A, None)).await;
    assert_eq!(a_addrs(&reply), [WEB_VIP]);

    // Garbage on TCP closes that connection only.
    let mut stream = TcpStream::connect(r.tcp).await.unwrap();
    assert!(ask_tcp_on(&mut stream, b"\x12\x34garbage").await.is_none());
    assert_eq!(
        a_addrs(&ask_tcp(r.tcp, "web", RecordType::A).await),
        [WEB_VIP]
    );
}

#[tokio::test]
async fn tcp_connections_beyond_the_cap_are_closed() {
    let mut cfg = config(&["net-app"], vec![]);
    cfg.max_tcp_connections = 2;
    let r = start_resolver(view_with_web_vip(WEB_VIP), cfg).await;

    let mut first = TcpStream::connect(r.tcp).await.unwrap();
    let mut second = TcpStream::connect(r.tcp).await.unwrap();
    // Both are served (which also means both were accepted, in order).
    let q = query(3, "web", RecordType::A, None);
    assert!(ask_tcp_on(&mut first, &q).await.is_some());
    assert!(ask_tcp_on(&mut second, &q).await.is_some());

    let mut third = TcpStream::connect(r.tcp).await.unwrap();
    assert!(
        ask_tcp_on(&mut third, &q).await.is_none(),
        "closed without a reply"
    );
    assert!(
        ask_tcp_on(&mut first, &q).await.is_some(),
        "the others still served"
    );

    // A slot freed is usable again: poll until the server saw the close.
    drop(first);
    let deadline = tokio::time::Instant::now() + REPLY_DEADLINE;
    loop {
        let mut again = TcpStream::connect(r.tcp).await.unwrap();
        if ask_tcp_on(&mut again, &q).await.is_some() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "slot never freed");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn forwards_beyond_the_cap_are_refused() {
    let silent = start_upstream(Behaviour::Silent).await;
    let mut cfg = config(&["net-app"], vec![silent.addr]);
    cfg.max_inflight_forwards = 1;
    cfg.upstream_timeout = Duration::from_secs(2);
    let r = start_resolver(view_with_web_vip(WEB_VIP), cfg).await;

    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // The first forward takes the only slot (the resolver handles datagrams
    // in order, so it holds the slot before the second is read) and waits on
    // the silent upstream; the second is refused at once, so its reply comes
    // first; local names are still answered meanwhile.
    socket
        .send_to(&query(10, "one.test", RecordType::A, None), r.udp)
        .await
        .unwrap();
    let refused = ask_udp_from(&socket, r.udp, &query(11, "two.test", RecordType::A, None)).await;
    assert_eq!(refused.response_code(), ResponseCode::Refused);
    let local = ask_udp_from(&socket, r.udp, &query(12, "web", RecordType::A, None)).await;
    assert_eq!(a_addrs(&local), [WEB_VIP]);

    let mut buf = vec![0u8; 65535];
    let (n, _) = timeout(REPLY_DEADLINE, socket.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let first = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(
        (first.id(), first.response_code()),
        (10, ResponseCode::ServFail)
    );
}
