//! The embedded resolver of one task: serves DNS over UDP and TCP on
//! sockets the caller has already bound inside the task's namespace.
//!
//! A socket stays in the namespace it was created in, whichever thread uses
//! it later; so the agent binds 127.0.0.11:53 in each task's namespace (with
//! the netns helper) and hands the sockets to [`serve`], and one daemon
//! process serves every task of the node from its own runtime, with no
//! process or thread per task. Dropping the `serve` future (aborting its
//! task) stops everything it started: in-flight forwards and TCP
//! connections live in its own task sets.
//!
//! Every query reads the view at that moment (`watch::Receiver::borrow`),
//! so a view the managers push is seen by the next query, with no restart.
//!
//! Bounded by construction: at most [`ServeConfig::max_tcp_connections`]
//! TCP connections (more are closed at once), each closed after
//! [`ServeConfig::tcp_idle_timeout`] without a complete query, and at most
//! [`ServeConfig::max_inflight_forwards`] queries waiting on upstreams (more
//! get REFUSED at once, as Docker answers past its own cap). Local answers
//! never wait on anything. Packets that do not decode, and responses, are
//! dropped without a reply.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::timeout;

use super::answer::{answer, encode_within, max_reply_len, reply_to, Answer};
use super::forward::{forward, read_framed, write_framed};
use crate::model::NodeView;

/// The view the managers pushed, as the agent shares it with every resolver.
pub type ViewReceiver = watch::Receiver<Arc<NodeView>>;

/// How one task's resolver behaves. [`ServeConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The asking task's networks (IDs), in its attachment order: the only
    /// networks whose names it is answered.
    pub asker_networks: Vec<String>,
    /// Where names outside the overlay go: the node's resolvers, from
    /// [`super::upstreams_from_resolv_conf`]. Empty: such names get SERVFAIL.
    pub upstreams: Vec<SocketAddr>,
    /// How long one upstream gets to answer before the next is tried. Three
    /// upstreams times this stays under glibc's 5 s per-try timeout.
    pub upstream_timeout: Duration,
    /// TCP connections served at once; a connection past it is closed.
    pub max_tcp_connections: usize,
    /// Queries waiting on upstreams at once; a query past it gets REFUSED.
    pub max_inflight_forwards: usize,
    /// A TCP connection without a complete query for this long is closed.
    pub tcp_idle_timeout: Duration,
}

impl ServeConfig {
    pub fn new(asker_networks: Vec<String>, upstreams: Vec<SocketAddr>) -> Self {
        Self {
            asker_networks,
            upstreams,
            upstream_timeout: Duration::from_millis(1500),
            max_tcp_connections: 64,
            max_inflight_forwards: 256,
            tcp_idle_timeout: Duration::from_secs(10),
        }
    }
}

/// What the packet handler decided for one received packet.
#[derive(Debug)]
pub enum Handled {
    /// Undecodable, or not a query: no reply at all.
    Drop,
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Forward to the upstreams; the reply may be at most `reply_limit` bytes.
    Forward { query: Message, reply_limit: usize },
}

/// The packet handler: from one received datagram (or TCP message) to what
/// to do with it. Pure; never panics whatever the bytes (property-tested).
pub fn handle_packet(
    view: &NodeView,
    asker_networks: &[String],
    packet: &[u8],
    over_tcp: bool,
    rotation: u64,
) -> Handled {
    let Ok(query) = Message::from_vec(packet) else {
        return Handled::Drop;
    };
    if query.message_type() != MessageType::Query {
        return Handled::Drop;
    }
    let reply_limit = max_reply_len(&query, over_tcp);
    match answer(view, asker_networks, &query, rotation) {
        Answer::Reply(reply) => match encode_within(&reply, reply_limit) {
            Some(bytes) => Handled::Reply(bytes),
            None => Handled::Drop,
        },
        Answer::Forward => Handled::Forward { query, reply_limit },
        Answer::ForwardingDenied(reply) => {
            tracing::debug!(
                question = ?query.queries().first(),
                "embedded DNS: not forwarding for a task on internal networks only"
            );
            encode_within(&reply, reply_limit).map_or(Handled::Drop, Handled::Reply)
        }
    }
}

/// The resolver's two sockets, bound with the standard library so that no
/// runtime is needed where they are made: on a thread that has entered the
/// task's namespace (whose loopback must be up, or 127.0.0.11 cannot be
/// bound). They stay in that namespace after the thread leaves it.
#[derive(Debug)]
pub struct BoundSockets {
    pub udp: std::net::UdpSocket,
    pub tcp: std::net::TcpListener,
}

impl BoundSockets {
    /// Binds UDP and TCP on `addr` (normally [`super::RESOLVER_ADDR`]:
    /// [`super::RESOLVER_PORT`]) in the calling thread's namespace, both
    /// non-blocking, ready for [`BoundSockets::into_tokio`].
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let udp = std::net::UdpSocket::bind(addr)?;
        udp.set_nonblocking(true)?;
        let tcp = std::net::TcpListener::bind(addr)?;
        tcp.set_nonblocking(true)?;
        Ok(Self { udp, tcp })
    }

    /// The tokio sockets for [`serve`]; must be called inside a runtime.
    pub fn into_tokio(self) -> io::Result<(UdpSocket, TcpListener)> {
        Ok((
            UdpSocket::from_std(self.udp)?,
            TcpListener::from_std(self.tcp)?,
        ))
    }
}

/// Serves DNS on `udp` and `tcp` (both already bound, normally to
/// 127.0.0.11:53 inside the task's namespace) until the future is dropped
/// or a socket fails for good.
pub async fn serve(
    udp: UdpSocket,
    tcp: TcpListener,
    view: ViewReceiver,
    config: ServeConfig,
) -> io::Result<()> {
    let udp = Arc::new(udp);
    let resolver = Arc::new(Resolver::new(view, config));
    let connection_slots = Arc::new(Semaphore::new(resolver.config.max_tcp_connections));
    let mut forwards = JoinSet::new();
    let mut connections = JoinSet::new();
    let mut buf = vec![0u8; usize::from(u16::MAX)];
    loop {
        tokio::select! {
            received = udp.recv_from(&mut buf) => {
                let (n, peer) = match received {
                    Ok(got) => got,
                    Err(e) if is_transient(&e) => {
                        tracing::debug!(error = %e, "embedded DNS: UDP receive");
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let packet = &buf[..n];
                match resolver.handle(packet, false) {
                    Handled::Drop => {}
                    Handled::Reply(bytes) => send_udp(&udp, &bytes, peer).await,
                    Handled::Forward { query, reply_limit } => {
                        match resolver.forward_slots.clone().try_acquire_owned() {
                            Ok(slot) => {
                                let (resolver, udp, packet) =
                                    (resolver.clone(), udp.clone(), packet.to_vec());
                                forwards.spawn(async move {
                                    let bytes = resolver
                                        .forward(&packet, &query, false, reply_limit)
                                        .await;
                                    drop(slot);
                                    send_udp(&udp, &bytes, peer).await;
                                });
                            }
                            Err(_) => {
                                let bytes = resolver.refuse(&query, reply_limit);
                                send_udp(&udp, &bytes, peer).await;
                            }
                        }
                    }
                }
            }
            accepted = tcp.accept() => {
                let (stream, peer) = match accepted {
                    Ok(got) => got,
                    Err(e) => {
                        // Out of file descriptors and the like: back off a
                        // little instead of spinning on accept.
                        tracing::warn!(error = %e, "embedded DNS: TCP accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                match connection_slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        let resolver = resolver.clone();
                        connections.spawn(async move {
                            resolver.serve_connection(stream).await;
                            drop(slot);
                        });
                    }
                    Err(_) => {
                        if resolver.busy_log.allow(Instant::now()) {
                            tracing::warn!(
                                %peer,
                                max = resolver.config.max_tcp_connections,
                                "embedded DNS: too many TCP connections; closing the new one"
                            );
                        }
                        drop(stream);
                    }
                }
            }
            Some(_) = forwards.join_next() => {}
            Some(_) = connections.join_next() => {}
        }
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
    )
}

async fn send_udp(udp: &UdpSocket, bytes: &[u8], peer: SocketAddr) {
    if let Err(e) = udp.send_to(bytes, peer).await {
        tracing::debug!(%peer, error = %e, "embedded DNS: UDP send");
    }
}

/// The state one task's resolver shares between its UDP loop, its TCP
/// connections and its forwards.
struct Resolver {
    view: ViewReceiver,
    config: ServeConfig,
    /// Grows by one per query: the round-robin of multi-address answers.
    rotation: AtomicU64,
    forward_slots: Arc<Semaphore>,
    servfail_log: Throttle,
    busy_log: Throttle,
}

impl Resolver {
    fn new(view: ViewReceiver, config: ServeConfig) -> Self {
        Self {
            view,
            forward_slots: Arc::new(Semaphore::new(config.max_inflight_forwards)),
            config,
            rotation: AtomicU64::new(0),
            servfail_log: Throttle::default(),
            busy_log: Throttle::default(),
        }
    }

    fn handle(&self, packet: &[u8], over_tcp: bool) -> Handled {
        // One snapshot per query; the borrow is released at once, so the
        // agent's next push never waits on a query.
        let view = self.view.borrow().clone();
        let rotation = self.rotation.fetch_add(1, Ordering::Relaxed);
        handle_packet(
            &view,
            &self.config.asker_networks,
            packet,
            over_tcp,
            rotation,
        )
    }

    /// Forwards and returns the bytes for the client: the upstream's reply,
    /// or SERVFAIL with one log line saying what each upstream did.
    async fn forward(
        &self,
        packet: &[u8],
        query: &Message,
        over_tcp: bool,
        reply_limit: usize,
    ) -> Vec<u8> {
        match forward(
            packet,
            query,
            over_tcp,
            reply_limit,
            &self.config.upstreams,
            self.config.upstream_timeout,
        )
        .await
        {
            Ok(bytes) => bytes,
            Err(failed) => {
                if self.servfail_log.allow(Instant::now()) {
                    let question = query.queries().first();
                    tracing::warn!(
                        name = %question.map(|q| q.name().to_string()).unwrap_or_default(),
                        r#type = %question.map(|q| q.query_type().to_string()).unwrap_or_default(),
                        "embedded DNS: no upstream resolver answered; replying SERVFAIL ({failed})"
                    );
                }
                encode_within(&reply_to(query, ResponseCode::ServFail), reply_limit)
                    .unwrap_or_default()
            }
        }
    }

    fn refuse(&self, query: &Message, reply_limit: usize) -> Vec<u8> {
        if self.busy_log.allow(Instant::now()) {
            tracing::warn!(
                max = self.config.max_inflight_forwards,
                "embedded DNS: too many queries waiting on upstream resolvers; replying REFUSED"
            );
        }
        encode_within(&reply_to(query, ResponseCode::Refused), reply_limit).unwrap_or_default()
    }

    /// One TCP connection: length-prefixed queries answered in order until
    /// the client closes, goes idle, or sends a frame that is not a query.
    async fn serve_connection(&self, mut stream: TcpStream) {
        let idle = self.config.tcp_idle_timeout;
        let _ = stream.set_nodelay(true);
        loop {
            let packet = match timeout(idle, read_framed(&mut stream)).await {
                Ok(Ok(Some(packet))) => packet,
                _ => return,
            };
            let reply = match self.handle(&packet, true) {
                Handled::Drop => return,
                Handled::Reply(bytes) => bytes,
                Handled::Forward { query, reply_limit } => {
                    match self.forward_slots.clone().try_acquire_owned() {
                        Ok(_slot) => self.forward(&packet, &query, true, reply_limit).await,
                        Err(_) => self.refuse(&query, reply_limit),
                    }
                }
            };
            if reply.is_empty() {
                return;
            }
            match timeout(idle, write_framed(&mut stream, &reply)).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
    }
}

/// At most one log line per interval for a condition that can repeat per
/// query (a dead upstream, a flood), so that it cannot flood the log.
#[derive(Default)]
struct Throttle {
    last: Mutex<Option<Instant>>,
}

const LOG_EVERY: Duration = Duration::from_secs(2);

impl Throttle {
    fn allow(&self, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if log_due(*last, now) {
            *last = Some(now);
            true
        } else {
            false
        }
    }
}

fn log_due(last: Option<Instant>, now: Instant) -> bool {
    // A match, not `Option::is_none_or`: that needs Rust 1.82, the MSRV is 1.80.
    match last {
        None => true,
        Some(at) => now.saturating_duration_since(at) >= LOG_EVERY,
    }
}

#[cfg(test)]
mod tests {
    use super::super::lookup::tests::voting_view;
    use super::*;
    use hickory_proto::op::{Edns, Query};
    use hickory_proto::rr::{Name, RecordType};
    use proptest::prelude::*;

    fn query_bytes(name: &str, qtype: RecordType, edns: bool) -> Vec<u8> {
        let mut q = Message::new();
        q.set_id(7).set_recursion_desired(true);
        q.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        if edns {
            q.set_edns(Edns::new());
        }
        q.to_vec().unwrap()
    }

    fn front() -> Vec<String> {
        vec!["net-front".into()]
    }

    #[test]
    fn a_local_name_is_answered_a_foreign_one_forwarded_a_response_dropped() {
        let view = voting_view();
        match handle_packet(
            &view,
            &front(),
            &query_bytes("vote", RecordType::A, false),
            false,
            0,
        ) {
            Handled::Reply(bytes) => {
                let m = Message::from_vec(&bytes).unwrap();
                assert_eq!(m.answers().len(), 1);
            }
            other => panic!("{other:?}"),
        }
        match handle_packet(
            &view,
            &front(),
            &query_bytes("example.com", RecordType::A, true),
            false,
            0,
        ) {
            Handled::Forward { reply_limit, .. } => assert_eq!(reply_limit, 512),
            other => panic!("{other:?}"),
        }
        let mut response = Message::from_vec(&query_bytes("vote", RecordType::A, false)).unwrap();
        response.set_message_type(MessageType::Response);
        assert!(matches!(
            handle_packet(&view, &front(), &response.to_vec().unwrap(), false, 0),
            Handled::Drop
        ));
        assert!(matches!(
            handle_packet(&view, &front(), b"\x00\x07", false, 0),
            Handled::Drop
        ));
    }

    #[test]
    fn the_log_throttle_lets_one_line_through_per_interval() {
        let t0 = Instant::now();
        assert!(log_due(None, t0));
        assert!(!log_due(Some(t0), t0 + LOG_EVERY / 2));
        assert!(log_due(Some(t0), t0 + LOG_EVERY));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Arbitrary bytes never panic the handler.
        #[test]
        fn any_bytes_are_handled_without_panicking(
            packet in proptest::collection::vec(any::<u8>(), 0..600),
            over_tcp in any::<bool>(),
            rotation in any::<u64>(),
        ) {
            let _ = handle_packet(&voting_view(), &front(), &packet, over_tcp, rotation);
        }

        /// Nor do valid queries with bytes flipped, cut or appended, which
        /// get past the header into the question and record parsers.
        #[test]
        fn damaged_queries_are_handled_without_panicking(
            name in prop::sample::select(vec!["vote", "tasks.vote", "db", "example.com", "worker.voting_frontend"]),
            edns in any::<bool>(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
            cut in any::<prop::sample::Index>(),
            tail in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut packet = query_bytes(name, RecordType::A, edns);
            for (at, byte) in flips {
                let i = at.index(packet.len());
                packet[i] = byte;
            }
            packet.truncate(cut.index(packet.len() + 1));
            packet.extend(tail);
            let _ = handle_packet(&voting_view(), &front(), &packet, false, 0);
        }
    }
}
