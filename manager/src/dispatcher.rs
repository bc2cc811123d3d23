//! The dispatcher: agents' sessions with the managers.
//!
//! An agent opens a session (reporting its description), heartbeats at the
//! period the dispatcher gives it, and keeps an assignment stream open. The
//! dispatcher records a node Ready when its session starts and Down when the
//! session is lost: at once (after a short reconnect grace) when its
//! connection closes, or when its heartbeats stop for three periods (six
//! after a leader change); see [`expired`]. Sessions live in memory on the
//! leader; only the Ready/Down transitions go through Raft.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use shoal_proto::v1::dispatcher_server::Dispatcher as DispatcherRpc;
use shoal_proto::v1::{
    AssignmentsMessage, AssignmentsRequest, HeartbeatRequest, HeartbeatResponse, NetworkView,
    NodeState, SessionMessage, SessionRequest, Task, TaskState, TaskStatus,
    UpdateTaskStatusRequest, UpdateTaskStatusResponse,
};
use shoal_security::Role;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::raft::types::Raft;
use crate::store::{is_terminal, ClusterState, Command, SharedStore};
use crate::{auth, ManagerConfig};

/// Default heartbeat period; a node is Down after [`MISSED_HEARTBEATS`] of them.
pub const DEFAULT_HEARTBEAT_PERIOD: Duration = Duration::from_secs(1);
/// Missed periods before a node is marked Down.
pub const MISSED_HEARTBEATS: u32 = 3;
/// Session closes within [`FLAP_WINDOW`] from which a node's closed
/// connections no longer count and only its heartbeats do.
pub const FLAP_LIMIT: usize = 3;
/// See [`FLAP_LIMIT`].
pub const FLAP_WINDOW: Duration = Duration::from_secs(60);

/// How long a node whose session stream ended may take to open a new one
/// before it is Down: a quarter of the heartbeat period (250 ms by
/// default). A crashed daemon's kernel closes its connections at once, so
/// this, not the heartbeat window, bounds how soon its tasks are replaced;
/// an agent that only reconnects (its manager restarted its stream, a
/// brief network reset) is back within it and keeps its tasks. It scales
/// with the period so that an operator who slows heartbeats for a flaky
/// network slows this too.
pub fn reconnect_grace(period: Duration) -> Duration {
    period / 4
}

struct Session {
    id: String,
    last_heartbeat: Instant,
    /// When the agent's session stream ended (the connection closed).
    closed_at: Option<Instant>,
    /// Dropping this ends the agent's session stream.
    _stream: mpsc::Sender<Result<SessionMessage, Status>>,
    /// Dropping this stops the task that forwards updates into the stream
    /// (it holds a sender too, so without it the stream would stay open).
    _stop: oneshot::Sender<()>,
}

/// The leader's sessions, and when each node's sessions recently closed.
#[derive(Default)]
struct Sessions {
    live: HashMap<String, Session>,
    closes: HashMap<String, VecDeque<Instant>>,
}

impl Sessions {
    /// `node_id`'s session `session_id` ended at `now` (its stream closed).
    fn closed(&mut self, node_id: &str, session_id: &str, now: Instant) {
        let Some(session) = self.live.get_mut(node_id).filter(|s| s.id == session_id) else {
            // A newer session replaced it, or it was ended here.
            return;
        };
        session.closed_at = Some(now);
        let closes = self.closes.entry(node_id.to_string()).or_default();
        closes.push_back(now);
        while closes.len() > FLAP_LIMIT {
            closes.pop_front();
        }
    }

    /// What [`expired`] needs of each session at `now`.
    fn seen(&self, now: Instant) -> HashMap<&str, Seen> {
        self.live
            .iter()
            .map(|(id, s)| {
                let closes: Vec<Instant> = self
                    .closes
                    .get(id)
                    .map(|c| c.iter().copied().collect())
                    .unwrap_or_default();
                (
                    id.as_str(),
                    Seen {
                        last_heartbeat: s.last_heartbeat,
                        closed_at: s.closed_at,
                        flapping: flapping(&closes, now),
                    },
                )
            })
            .collect()
    }
}

/// Whether closes at `closes` (oldest first) within [`FLAP_WINDOW`] of `now`
/// reach [`FLAP_LIMIT`]: a node whose connection keeps breaking is judged
/// by its heartbeats alone, so a flapping link does not move its tasks
/// every time it drops for a moment longer than the reconnect grace.
pub fn flapping(closes: &[Instant], now: Instant) -> bool {
    closes
        .iter()
        .filter(|at| now.duration_since(**at) <= FLAP_WINDOW)
        .count()
        >= FLAP_LIMIT
}

pub struct Dispatcher {
    raft: Raft,
    /// Every write (session start and loss, task statuses) goes through it.
    proposer: crate::proposer::Proposer,
    store: Arc<SharedStore>,
    config: ManagerConfig,
    // std Mutex: held only for map updates, never across an await.
    sessions: Arc<Mutex<Sessions>>,
    /// Woken when a session stream closes, so the expiry loop judges the
    /// node as soon as its reconnect grace ends instead of at its next tick.
    closed: Arc<Notify>,
    /// Task load from heartbeats, for the autoscaler (memory only).
    load: Mutex<crate::metrics::LoadWindow>,
    /// Nodes' volumes from heartbeats, and removals asked (memory only).
    volumes: Mutex<crate::volumes::VolumeInventory>,
    /// What every session says about the cluster, once per store version.
    session_parts: Arc<PerVersion<ClusterSessionPart>>,
    /// The routing mesh's part of every node's view, once per store version.
    meshes: Arc<PerVersion<crate::network::ingress::Mesh>>,
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl Dispatcher {
    pub fn new(
        raft: Raft,
        proposer: crate::proposer::Proposer,
        store: Arc<SharedStore>,
        config: ManagerConfig,
    ) -> Self {
        Dispatcher {
            raft,
            proposer,
            store,
            config,
            sessions: Arc::new(Mutex::new(Sessions::default())),
            closed: Arc::new(Notify::new()),
            load: Mutex::new(Default::default()),
            volumes: Mutex::new(Default::default()),
            session_parts: Arc::default(),
            meshes: Arc::default(),
        }
    }

    /// The heartbeat period from the cluster spec.
    pub fn heartbeat_period(&self) -> Duration {
        self.store
            .read(|s| {
                s.cluster
                    .as_ref()
                    .and_then(|c| c.spec.as_ref())
                    .and_then(|s| s.dispatcher.as_ref())
                    .map(|d| d.heartbeat_period_ms)
            })
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_HEARTBEAT_PERIOD)
    }

    fn is_leader(&self) -> bool {
        crate::raft::is_leader(&self.raft, self.config.raft_id)
    }

    fn require_leader(&self) -> Result<(), Status> {
        if self.is_leader() {
            return Ok(());
        }
        let leader = crate::raft::current_leader(&self.raft).map(|(_, addr)| addr);
        Err(crate::raft::not_leader(leader.as_deref()))
    }

    /// Runs `f` on the task load heartbeats brought (see [`crate::metrics`]).
    pub fn with_load<R>(&self, f: impl FnOnce(&mut crate::metrics::LoadWindow) -> R) -> R {
        f(&mut self.load.lock().expect("load lock"))
    }

    /// Runs `f` on the nodes' volumes as heartbeats reported them (see
    /// [`crate::volumes`]).
    pub fn with_volumes<R>(&self, f: impl FnOnce(&mut crate::volumes::VolumeInventory) -> R) -> R {
        f(&mut self.volumes.lock().expect("volumes lock"))
    }

    /// Ends the session of `node_id`, if any (its stream closes).
    pub fn end_session(&self, node_id: &str) {
        self.sessions
            .lock()
            .expect("sessions lock")
            .live
            .remove(node_id);
    }

    /// Whether `session_id` is `node_id`'s current session.
    pub fn check_session(&self, node_id: &str, session_id: &str) -> Result<(), Status> {
        let sessions = self.sessions.lock().expect("sessions lock");
        match sessions.live.get(node_id) {
            Some(s) if s.id == session_id => Ok(()),
            _ => Err(Status::not_found(format!(
                "session {session_id} of node {node_id} is not known to the leader: open a new session"
            ))),
        }
    }

    /// Marks Down every Ready node whose session is lost. Runs for the
    /// manager's lifetime and acts only while this manager leads; see
    /// [`expired`] for the grace each node gets.
    pub async fn run_expiry(self: Arc<Self>) {
        let mut leading_since: Option<Instant> = None;
        loop {
            // Leadership is noted before any wait: a wake-up for a closed
            // stream skips the judging below, and a leadership first noted
            // only when judging would count the sessions opened meanwhile
            // as from an earlier term (and give them the long grace).
            if self.is_leader() {
                leading_since.get_or_insert_with(Instant::now);
            } else {
                leading_since = None;
                // Sessions belong to a leader: a manager that lost the lead
                // ends them (their streams close), so each agent moves on to
                // the new leader instead of heartbeating a follower that no
                // longer records anything for it.
                let ended = std::mem::take(&mut *self.sessions.lock().expect("sessions lock"));
                if !ended.live.is_empty() {
                    tracing::info!(
                        sessions = ended.live.len(),
                        "not the leader any more: ending agent sessions"
                    );
                }
            }
            let period = self.heartbeat_period();
            let tick = period / 4;
            let wait = {
                let sessions = self.sessions.lock().expect("sessions lock");
                let now = Instant::now();
                next_deadline(&sessions.seen(now), period)
                    .map(|at| at.saturating_duration_since(now))
                    .map_or(tick, |d| d.min(tick))
            };
            let due = Instant::now() + wait;
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.closed.notified() => continue,
            }
            let now = Instant::now();
            // Time this manager could not watch (its runtime starved, e.g.
            // applying 100,000 new tasks) is not the nodes' silence: their
            // heartbeats were queued meanwhile, and judging them on waking
            // marked 920 of 1,000 healthy simulated nodes down at once.
            let stalled = stall(due, now, tick);
            if !stalled.is_zero() {
                let mut sessions = self.sessions.lock().expect("sessions lock");
                for session in sessions.live.values_mut() {
                    session.last_heartbeat = (session.last_heartbeat + stalled).min(now);
                    session.closed_at = session.closed_at.map(|at| (at + stalled).min(now));
                }
                leading_since = leading_since.map(|at| (at + stalled).min(now));
                tracing::warn!(
                    stalled_ms = stalled.as_millis() as u64,
                    "the heartbeat judge woke late: the time does not count against the nodes"
                );
            }
            let Some(since) = leading_since.filter(|_| self.is_leader()) else {
                continue;
            };
            // Each Ready node with the session start the store holds: a
            // judgement applies only to that session (see
            // `Command::NodeSessionLost`). Read before the sessions, which a
            // new session enters before its start is written.
            let ready: HashMap<String, i64> = self.store.read(|s| {
                s.nodes
                    .values()
                    .filter_map(|n| {
                        let st = n.status.as_ref()?;
                        (st.state() == NodeState::Ready)
                            .then(|| (n.id.clone(), st.session_started_at_ms))
                    })
                    .collect()
            });
            let lost: Vec<(String, Loss)> = {
                let mut guard = self.sessions.lock().expect("sessions lock");
                let sessions = &mut *guard;
                let ids: Vec<String> = ready.keys().cloned().collect();
                let lost = expired(&ids, &sessions.seen(now), since, now, period);
                // A session whose heartbeats stopped, or whose stream closed
                // and was judged, is over.
                let grace = reconnect_grace(period);
                let Sessions { live, closes } = sessions;
                live.retain(|id, s| {
                    let flaps: Vec<Instant> = closes
                        .get(id)
                        .map(|c| c.iter().copied().collect())
                        .unwrap_or_default();
                    now.duration_since(s.last_heartbeat) <= period * MISSED_HEARTBEATS
                        && (flapping(&flaps, now)
                            || s.closed_at.is_none_or(|at| now.duration_since(at) <= grace))
                });
                closes.retain(|_, c| {
                    c.back()
                        .is_some_and(|at| now.duration_since(*at) <= FLAP_WINDOW)
                });
                lost
            };
            // Proposed together, so that the proposer batches them into
            // one Raft entry: one at a time, each waited for its commit and
            // the applies and leader passes between, and a tenth of 1,000
            // nodes lost at once took 13.9 s to be marked down at 20,000
            // tasks (128.7 s at 100,000) instead of one write's time.
            let proposer = &self.proposer;
            let proposals = lost.into_iter().map(|(node_id, loss)| {
                let message = loss.to_string();
                tracing::info!(node = %node_id, "{message}: marking node down");
                let command = Command::NodeSessionLost {
                    node_id: node_id.clone(),
                    message,
                    session_started_at_ms: ready.get(&node_id).copied().unwrap_or_default(),
                    at_ms: crate::now_ms(),
                };
                async move {
                    if let Err(e) = proposer.propose(command).await {
                        tracing::warn!(node = %node_id, error = %e, "could not mark node down");
                    }
                }
            });
            futures::future::join_all(proposals).await;
        }
    }
}

/// How much later than `due` (beyond `tolerance`) the expiry loop woke at
/// `woke`: time in which it, and the heartbeats queued for it, could not
/// run.
pub fn stall(due: Instant, woke: Instant, tolerance: Duration) -> Duration {
    woke.saturating_duration_since(due)
        .saturating_sub(tolerance)
}

/// What the expiry loop knows of one node's session with this leader.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub last_heartbeat: Instant,
    /// When its session stream ended, if it did.
    pub closed_at: Option<Instant>,
    /// Its sessions closed often lately (see [`flapping`]).
    pub flapping: bool,
}

/// Why a node was judged lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Its connection closed and no new session came within the grace.
    ConnectionClosed,
    /// No heartbeat for the heartbeat window (or none since a leader change).
    Heartbeats,
}

impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Loss::ConnectionClosed => "connection closed",
            Loss::Heartbeats => "heartbeat failure",
        })
    }
}

/// The earliest moment a closed session's reconnect grace ends, for the
/// expiry loop to wake at (the heartbeat window is served by its tick).
pub fn next_deadline(sessions: &HashMap<&str, Seen>, period: Duration) -> Option<Instant> {
    sessions
        .values()
        .filter(|s| !s.flapping)
        .filter_map(|s| s.closed_at)
        .min()
        // Just past the end: `expired` wants the grace strictly exceeded.
        .map(|at| at + reconnect_grace(period) + Duration::from_millis(1))
}

/// Missed periods a new leader allows a node before marking it Down, when
/// the node has no session with it yet (Swarm's 6x after a leader change).
pub const LEADER_CHANGE_GRACE_HEARTBEATS: u32 = 6;

/// The Ready nodes to mark Down at `now`, and why, for a leader that leads
/// since `leading_since`.
///
/// - A node whose session stream with this leader closed (a crashed daemon's
///   kernel closes its connections at once) is Down once
///   [`reconnect_grace`] passed without a new session, unless its
///   connection is [`flapping`]: then only heartbeats count.
/// - A node heartbeating to this leader is Down after [`MISSED_HEARTBEATS`]
///   periods of silence: a silent node (cut off, its connection never
///   closed) waits for this window.
/// - A node without a session here — every node, right after a leader
///   change — is Down only once this leader has led for
///   [`LEADER_CHANGE_GRACE_HEARTBEATS`] periods: its agent first has to
///   notice that the old leader is gone (a heartbeat timeout), find the new
///   one and open a session, and marking a healthy node Down stops every
///   task it runs and piles them onto whichever node comes back first.
pub fn expired(
    ready: &[String],
    sessions: &HashMap<&str, Seen>,
    leading_since: Instant,
    now: Instant,
    period: Duration,
) -> Vec<(String, Loss)> {
    let leader_grace = period * LEADER_CHANGE_GRACE_HEARTBEATS;
    let session_grace = period * MISSED_HEARTBEATS;
    let reconnect = reconnect_grace(period);
    ready
        .iter()
        .filter_map(|id| {
            let loss = match sessions.get(id.as_str()) {
                // A heartbeat from before this leadership belongs to an
                // earlier term of this manager (sessions are pruned only
                // while it leads): it says nothing about the node now, so
                // the node gets the leader-change grace like one without a
                // session. Counting it marked healthy nodes Down at once
                // when a manager led again after a partition (found by the
                // namespace partition suite).
                Some(s) if s.last_heartbeat >= leading_since => match s.closed_at {
                    Some(at) if !s.flapping && now.duration_since(at) > reconnect => {
                        Some(Loss::ConnectionClosed)
                    }
                    _ if now.duration_since(s.last_heartbeat) > session_grace => {
                        Some(Loss::Heartbeats)
                    }
                    _ => None,
                },
                _ => (now.duration_since(leading_since) > leader_grace).then_some(Loss::Heartbeats),
            };
            loss.map(|l| (id.clone(), l))
        })
        .collect()
}

#[tonic::async_trait]
impl DispatcherRpc for Dispatcher {
    type SessionStream = ResponseStream<SessionMessage>;
    type AssignmentsStream = ResponseStream<AssignmentsMessage>;

    async fn session(
        &self,
        request: Request<SessionRequest>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let peer = auth::require_peer(&request, &self.store, &[Role::Manager, Role::Worker])?;
        self.require_leader()?;
        // The address the node advertised when it joined wins; otherwise the
        // address its session comes from.
        let advertised = self.store.read(|s| {
            s.nodes
                .get(&peer.node_id)
                .and_then(|n| n.status.as_ref())
                .map(|st| st.addr.clone())
                .filter(|a| !a.is_empty())
        });
        let addr = advertised.unwrap_or_else(|| {
            shoal_security::tls::peer_addr(&request)
                .map(|a| a.ip().to_string())
                .unwrap_or_default()
        });
        let description = request.into_inner().description.unwrap_or_default();
        crate::worker_input::check_description(&description)?;
        let session_id = shoal_security::token::random_base36(16);
        let (tx, rx) = mpsc::channel(4);
        let (stop, stopped) = oneshot::channel();
        // The session enters the map before its start is written: the
        // expiry loop reads the store first, so once it sees this start it
        // also sees this session, and never judges it by the one it
        // replaces (see `Command::NodeSessionLost`).
        self.sessions.lock().expect("sessions lock").live.insert(
            peer.node_id.clone(),
            Session {
                id: session_id.clone(),
                last_heartbeat: Instant::now(),
                closed_at: None,
                _stream: tx.clone(),
                _stop: stop,
            },
        );
        let started = self
            .proposer
            .propose(Command::NodeSessionStarted {
                node_id: peer.node_id.clone(),
                description,
                addr,
                at_ms: crate::now_ms(),
            })
            .await;
        if let Err(e) = started {
            let mut sessions = self.sessions.lock().expect("sessions lock");
            if sessions
                .live
                .get(&peer.node_id)
                .is_some_and(|s| s.id == session_id)
            {
                sessions.live.remove(&peer.node_id);
            }
            return Err(e.into());
        }
        let mut changes = self.store.changes();
        let version = *changes.borrow_and_update();
        let view = SessionView::of(
            self.session_parts
                .at(version, || ClusterSessionPart::of(&self.store, &self.raft)),
            &self.store,
            &peer.node_id,
        );
        let first = SessionMessage {
            session_id: session_id.clone(),
            heartbeat_period_ms: self.heartbeat_period().as_millis() as u64,
            ..view.message(&peer.node_id)
        };
        tx.send(Ok(first)).await.ok();
        // Tell the agent whenever what it was told changes: the role the
        // swarm wants its node in, the managers (a demoted one must not be
        // accepted as a manager any more), the roots to trust. When the
        // agent's end of the stream goes away (its connection closed), say
        // so: the expiry loop then judges the node without waiting for its
        // heartbeats to stop.
        {
            let store = self.store.clone();
            let raft = self.raft.clone();
            let node_id = peer.node_id.clone();
            let sessions = self.sessions.clone();
            let closed = self.closed.clone();
            let session_id = session_id.clone();
            let session_parts = self.session_parts.clone();
            let mut last = view;
            let mut stopped = stopped;
            tokio::spawn(async move {
                let agent_gone = loop {
                    tokio::select! {
                        _ = tx.closed() => break true,
                        // The session was ended here (or replaced).
                        _ = &mut stopped => break false,
                        changed = changes.changed() => if changed.is_err() { break false },
                    }
                    let version = *changes.borrow_and_update();
                    let now = SessionView::of(
                        session_parts.at(version, || ClusterSessionPart::of(&store, &raft)),
                        &store,
                        &node_id,
                    );
                    if now != last {
                        let message = now.message(&node_id);
                        last = now;
                        if tx.send(Ok(message)).await.is_err() {
                            break true;
                        }
                    }
                };
                if agent_gone {
                    tracing::info!(node = %node_id, "session stream closed");
                    sessions.lock().expect("sessions lock").closed(
                        &node_id,
                        &session_id,
                        Instant::now(),
                    );
                    closed.notify_one();
                }
            });
        }
        tracing::info!(node = %peer.node_id, "session started");
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let peer = auth::require_peer(&request, &self.store, &[Role::Manager, Role::Worker])?;
        // Only the leader's heartbeats count: a follower (say, a leader
        // deposed while partitioned, whose own agent still reaches it over
        // loopback) says who leads instead, and the agent goes there.
        self.require_leader()?;
        let HeartbeatRequest {
            session_id,
            usage,
            volumes,
            volume_removals,
        } = request.into_inner();
        {
            let mut sessions = self.sessions.lock().expect("sessions lock");
            match sessions.live.get_mut(&peer.node_id) {
                Some(s) if s.id == session_id => s.last_heartbeat = Instant::now(),
                _ => {
                    return Err(Status::not_found(format!(
                        "session {session_id} of node {} is not known to the leader: open a new session",
                        peer.node_id
                    )))
                }
            }
        }
        if !usage.is_empty() {
            // Load stays in this manager's memory: it never goes through Raft.
            self.with_load(|load| load.record(&peer.node_id, &usage, crate::now_ms()));
        }
        let remove_volumes = self.with_volumes(|inventory| {
            let now = crate::now_ms();
            if let Some(report) = volumes {
                inventory.report(&peer.node_id, report.volumes, now);
            }
            if !volume_removals.is_empty() {
                inventory.answered(&peer.node_id, volume_removals, now);
            }
            inventory.removals_for(&peer.node_id)
        });
        Ok(Response::new(HeartbeatResponse {
            period_ms: self.heartbeat_period().as_millis() as u64,
            remove_volumes,
        }))
    }

    async fn assignments(
        &self,
        request: Request<AssignmentsRequest>,
    ) -> Result<Response<Self::AssignmentsStream>, Status> {
        let peer = auth::require_peer(&request, &self.store, &[Role::Manager, Role::Worker])?;
        self.check_session(&peer.node_id, &request.get_ref().session_id)?;
        // The full assignment set, re-sent whenever a task is added to or
        // taken from this node or its desired state moves.
        let (tx, rx) = mpsc::channel(4);
        let store = self.store.clone();
        let node_id = peer.node_id.clone();
        let meshes = self.meshes.clone();
        tokio::spawn(async move {
            let mut changes = store.changes();
            // Secrets count by ID: their data never changes.
            type Key = (Vec<(String, i32, usize)>, NetworkView, Vec<String>);
            let mut last_key: Option<Key> = None;
            let mut last_marks = None;
            loop {
                // Read before the state: the mesh cached for it is then of
                // a state at least as new (see `PerVersion`).
                let version = *changes.borrow_and_update();
                // Nothing this node's set is made of changed since it was
                // last built (most writes are other nodes' task statuses).
                let marks = store.assignment_marks(&node_id);
                if last_key.is_some() && last_marks == Some(marks) {
                    tokio::select! {
                        _ = tx.closed() => break,
                        changed = changes.changed() => if changed.is_err() { break },
                    }
                    continue;
                }
                last_marks = Some(marks);
                // The node's own tasks through the store's per-node index:
                // every session recomputes on every applied change, so
                // scanning all tasks here cost sessions × tasks per change.
                let (tasks, network, (secrets, configs)) =
                    store.read_node_tasks(&node_id, |s, ids| {
                        let tasks = assigned_among(s, ids);
                        // A node with no task on a network has an empty view;
                        // only the others need the full computation.
                        let mut network = if ids
                            .iter()
                            .filter_map(|id| s.tasks.get(id))
                            .all(|t| t.networks.is_empty())
                        {
                            NetworkView::default()
                        } else {
                            crate::network::view::node_view(s, &node_id)
                        };
                        meshes
                            .at(version, || crate::network::ingress::Mesh::of(s))
                            .add_to(&node_id, &mut network);
                        let granted = granted_to(s, &tasks);
                        (tasks, network, granted)
                    });
                // The attachments count too: a task's addresses are part
                // of what the agent needs.
                let key: Key = (
                    tasks
                        .iter()
                        .map(|t| (t.id.clone(), t.desired_state, t.networks.len()))
                        .collect(),
                    network.clone(),
                    secrets
                        .iter()
                        .map(|s| s.id.clone())
                        .chain(configs.iter().map(|c| c.id.clone()))
                        .collect(),
                );
                if last_key.as_ref() != Some(&key) {
                    let message = AssignmentsMessage {
                        tasks,
                        network: Some(network),
                        secrets,
                        configs,
                    };
                    if tx.send(Ok(message)).await.is_err() {
                        break;
                    }
                    last_key = Some(key);
                }
                tokio::select! {
                    _ = tx.closed() => break,
                    changed = changes.changed() => if changed.is_err() { break },
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn update_task_status(
        &self,
        request: Request<UpdateTaskStatusRequest>,
    ) -> Result<Response<UpdateTaskStatusResponse>, Status> {
        let peer = auth::require_peer(&request, &self.store, &[Role::Manager, Role::Worker])?;
        self.require_leader()?;
        self.check_session(&peer.node_id, &request.get_ref().session_id)?;
        let updates: Vec<(String, TaskStatus)> = request
            .into_inner()
            .updates
            .into_iter()
            .filter_map(|u| u.status.map(|s| (u.task_id, s)))
            .collect();
        let updates = crate::worker_input::bound_statuses(updates)?;
        if !updates.is_empty() {
            self.proposer
                .propose(Command::UpdateTaskStatuses {
                    node_id: peer.node_id,
                    updates,
                })
                .await?;
        }
        Ok(Response::new(UpdateTaskStatusResponse {}))
    }
}

/// What a session tells its agent besides its ID and heartbeat period.
#[derive(Debug, Clone)]
struct SessionView {
    desired_role: shoal_proto::v1::NodeRole,
    cluster: Arc<ClusterSessionPart>,
}

impl PartialEq for SessionView {
    fn eq(&self, other: &Self) -> bool {
        self.desired_role == other.desired_role
            && (Arc::ptr_eq(&self.cluster, &other.cluster) || self.cluster == other.cluster)
    }
}

/// The part of every session's message that is the same for all nodes: the
/// managers and the roots to trust.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClusterSessionPart {
    manager_addrs: Vec<String>,
    manager_node_ids: Vec<String>,
    trust_bundle_pem: String,
    signing_root_pem: String,
}

impl ClusterSessionPart {
    fn of(store: &SharedStore, raft: &Raft) -> Self {
        let (manager_node_ids, trust) = store.read(|s| {
            let ids = s
                .nodes
                .values()
                .filter(|n| n.role() == shoal_proto::v1::NodeRole::Manager)
                .map(|n| n.id.clone())
                .collect();
            let trust = s.cluster.as_ref().map(|c| {
                (
                    crate::store::rotation::trust_bundle(c),
                    crate::store::rotation::signing_root(c).cert_pem,
                )
            });
            (ids, trust.unwrap_or_default())
        });
        ClusterSessionPart {
            manager_addrs: crate::raft::member_addrs(raft),
            manager_node_ids,
            trust_bundle_pem: trust.0,
            signing_root_pem: trust.1,
        }
    }
}

/// A value computed once per applied store version and shared by every
/// session loop. Each applied change wakes every session; what is the same
/// for all of them is built by the first to ask for that version and
/// handed to the others.
/// - The session part ([`ClusterSessionPart`]): computed in each session,
///   it read every node and rebuilt the trust bundle sessions × nodes times
///   per change, which at 500 nodes under a stream of status writes was
///   most of the leader's CPU.
/// - The routing mesh ([`crate::network::ingress::Mesh`]): building it
///   scans every task. A session reads the version before the state, so
///   what is cached under a version is of a state at least that new; a
///   session that saw an older state is woken by the newer version and
///   recomputes its view.
struct PerVersion<T> {
    // std Mutex: held only to read or swap the Arc, never across an await.
    latest: Mutex<Option<(u64, Arc<T>)>>,
}

impl<T> Default for PerVersion<T> {
    fn default() -> Self {
        PerVersion {
            latest: Mutex::new(None),
        }
    }
}

impl<T> PerVersion<T> {
    fn at(&self, version: u64, build: impl FnOnce() -> T) -> Arc<T> {
        let mut latest = self.latest.lock().expect("per-version cache lock");
        match latest.as_ref() {
            Some((cached, value)) if *cached == version => value.clone(),
            _ => {
                let value = Arc::new(build());
                *latest = Some((version, value.clone()));
                value
            }
        }
    }
}

impl SessionView {
    fn of(cluster: Arc<ClusterSessionPart>, store: &SharedStore, node_id: &str) -> Self {
        SessionView {
            desired_role: desired_role(store, node_id),
            cluster,
        }
    }

    fn message(&self, node_id: &str) -> SessionMessage {
        SessionMessage {
            session_id: String::new(),
            node_id: node_id.to_string(),
            managers: self.cluster.manager_addrs.clone(),
            heartbeat_period_ms: 0,
            desired_role: self.desired_role as i32,
            manager_node_ids: self.cluster.manager_node_ids.clone(),
            trust_bundle_pem: self.cluster.trust_bundle_pem.clone(),
            signing_root_pem: self.cluster.signing_root_pem.clone(),
        }
    }
}

/// The role the swarm wants `node_id` in.
fn desired_role(store: &SharedStore, node_id: &str) -> shoal_proto::v1::NodeRole {
    store.read(|s| {
        s.nodes
            .get(node_id)
            .and_then(|n| n.spec.as_ref())
            .map(|spec| spec.desired_role())
            .unwrap_or_default()
    })
}

/// The tasks a node must know about: assigned to it and either desired to
/// run, or retired but not yet seen to end. Retired tasks stay in the set
/// until the node reports them terminal: a task retired before its node ever
/// received it (the agent was down, or the set was in flight) would otherwise
/// never be reported, and its slot would wait for it forever. The agent runs
/// the tasks desired to run and stops (or reports stopped, if it never started
/// them) the others; a task leaving the set is also a signal to stop it. A
/// task on overlay networks is delivered only once it has an address on
/// each of them.
pub fn assigned_tasks(state: &ClusterState, node_id: &str) -> Vec<Task> {
    state
        .tasks
        .values()
        .filter(|t| t.node_id == node_id && is_assigned(state, t))
        .cloned()
        .collect()
}

/// [`assigned_tasks`] of the node whose task IDs are `ids` (the store's
/// per-node index).
pub fn assigned_among(state: &ClusterState, ids: &std::collections::BTreeSet<String>) -> Vec<Task> {
    ids.iter()
        .filter_map(|id| state.tasks.get(id))
        .filter(|t| is_assigned(state, t))
        .cloned()
        .collect()
}

/// The secrets and configs that `tasks` to run are granted (with their
/// data), each once: what a node receives with its assignments, and all it
/// ever receives of them. Retired tasks get none: their node is stopping them.
pub fn granted_to(
    state: &ClusterState,
    tasks: &[Task],
) -> (Vec<shoal_proto::v1::Secret>, Vec<shoal_proto::v1::Config>) {
    let mut secrets = std::collections::BTreeMap::new();
    let mut configs = std::collections::BTreeMap::new();
    for spec in tasks
        .iter()
        .filter(|t| t.desired_state <= TaskState::Running as i32)
        .filter_map(|t| t.spec.as_ref())
    {
        for grant in &spec.secrets {
            if let Some(secret) = state.secrets.get(&grant.secret_id) {
                secrets.insert(secret.id.clone(), secret.clone());
            }
        }
        for grant in &spec.configs {
            if let Some(config) = state.configs.get(&grant.config_id) {
                configs.insert(config.id.clone(), config.clone());
            }
        }
    }
    (
        secrets.into_values().collect(),
        configs.into_values().collect(),
    )
}

fn is_assigned(state: &ClusterState, t: &Task) -> bool {
    (t.desired_state <= TaskState::Running as i32
        // A task to run is delivered once it has its addresses (a global
        // task is created placed, before the allocator's pass).
        && crate::network::ready_to_place(state, t))
        || (t.desired_state > TaskState::Running as i32
            && !is_terminal(crate::orchestrator::observed(t)))
}

#[cfg(test)]
mod tests;
