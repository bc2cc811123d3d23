//! The dispatcher: agents' sessions with the managers.
//!
//! An agent opens a session (reporting its description), heartbeats at the
//! period the dispatcher gives it, and keeps an assignment stream open. The
//! dispatcher records a node Ready when its session starts and Down when its
//! heartbeats stop for three periods (six after a leader change, see
//! [`expired`]). Sessions live in memory on the leader; only the Ready/Down
//! transitions go through Raft.

use std::collections::HashMap;
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
use tokio::sync::mpsc;
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

struct Session {
    id: String,
    last_heartbeat: Instant,
    /// Dropping this ends the agent's session stream.
    _stream: mpsc::Sender<Result<SessionMessage, Status>>,
}

pub struct Dispatcher {
    raft: Raft,
    store: Arc<SharedStore>,
    config: ManagerConfig,
    // std Mutex: held only for map updates, never across an await.
    sessions: Mutex<HashMap<String, Session>>,
    /// Task load from heartbeats, for the autoscaler (memory only).
    load: Mutex<crate::metrics::LoadWindow>,
    /// Nodes' volumes from heartbeats, and removals asked (memory only).
    volumes: Mutex<crate::volumes::VolumeInventory>,
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl Dispatcher {
    pub fn new(raft: Raft, store: Arc<SharedStore>, config: ManagerConfig) -> Self {
        Dispatcher {
            raft,
            store,
            config,
            sessions: Mutex::new(HashMap::new()),
            load: Mutex::new(Default::default()),
            volumes: Mutex::new(Default::default()),
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
        self.sessions.lock().expect("sessions lock").remove(node_id);
    }

    /// Whether `session_id` is `node_id`'s current session.
    pub fn check_session(&self, node_id: &str, session_id: &str) -> Result<(), Status> {
        let sessions = self.sessions.lock().expect("sessions lock");
        match sessions.get(node_id) {
            Some(s) if s.id == session_id => Ok(()),
            _ => Err(Status::not_found(format!(
                "session {session_id} of node {node_id} is not known to the leader: open a new session"
            ))),
        }
    }

    /// Marks Down every Ready node whose heartbeats stopped. Runs for the
    /// manager's lifetime and acts only while this manager leads; see
    /// [`expired`] for the grace each node gets.
    pub async fn run_expiry(self: Arc<Self>) {
        let mut leading_since: Option<Instant> = None;
        loop {
            let period = self.heartbeat_period();
            tokio::time::sleep(period / 4).await;
            if !self.is_leader() {
                leading_since = None;
                // Sessions belong to a leader: a manager that lost the lead
                // ends them (their streams close), so each agent moves on to
                // the new leader instead of heartbeating a follower that no
                // longer records anything for it.
                let ended = std::mem::take(&mut *self.sessions.lock().expect("sessions lock"));
                if !ended.is_empty() {
                    tracing::info!(
                        sessions = ended.len(),
                        "not the leader any more: ending agent sessions"
                    );
                }
                continue;
            }
            let now = Instant::now();
            let since = *leading_since.get_or_insert(now);
            let ready: Vec<String> = self.store.read(|s| {
                s.nodes
                    .values()
                    .filter(|n| {
                        n.status
                            .as_ref()
                            .is_some_and(|st| st.state() == NodeState::Ready)
                    })
                    .map(|n| n.id.clone())
                    .collect()
            });
            let expired: Vec<String> = {
                let mut sessions = self.sessions.lock().expect("sessions lock");
                let heartbeats: HashMap<&str, Instant> = sessions
                    .iter()
                    .map(|(id, s)| (id.as_str(), s.last_heartbeat))
                    .collect();
                let down = expired(&ready, &heartbeats, since, now, period);
                // A session whose heartbeats stopped is over.
                sessions.retain(|_, s| {
                    now.duration_since(s.last_heartbeat) <= period * MISSED_HEARTBEATS
                });
                down
            };
            for node_id in expired {
                tracing::info!(node = %node_id, "heartbeat failure: marking node down");
                let command = Command::NodeDown {
                    node_id: node_id.clone(),
                    message: "heartbeat failure".into(),
                    at_ms: crate::now_ms(),
                };
                if let Err(e) = crate::raft::propose(&self.raft, command).await {
                    tracing::warn!(node = %node_id, error = %e, "could not mark node down");
                }
            }
        }
    }
}

/// Missed periods a new leader allows a node before marking it Down, when
/// the node has no session with it yet (Swarm's 6x after a leader change).
pub const LEADER_CHANGE_GRACE_HEARTBEATS: u32 = 6;

/// The Ready nodes to mark Down at `now`, for a leader that leads since
/// `leading_since`. A node heartbeating to this leader is Down after
/// [`MISSED_HEARTBEATS`] periods of silence. A node without a session here
/// — every node, right after a leader change — is Down only once this
/// leader has led for [`LEADER_CHANGE_GRACE_HEARTBEATS`] periods: its agent
/// first has to notice that the old leader is gone (a heartbeat timeout),
/// find the new one and open a session, and marking a healthy node Down
/// stops every task it runs and piles them onto whichever node comes back
/// first.
pub fn expired(
    ready: &[String],
    heartbeats: &HashMap<&str, Instant>,
    leading_since: Instant,
    now: Instant,
    period: Duration,
) -> Vec<String> {
    let leader_grace = period * LEADER_CHANGE_GRACE_HEARTBEATS;
    let session_grace = period * MISSED_HEARTBEATS;
    ready
        .iter()
        .filter(|id| match heartbeats.get(id.as_str()) {
            // A heartbeat from before this leadership belongs to an earlier
            // term of this manager (sessions are pruned only while it
            // leads): it says nothing about the node now, so the node gets
            // the leader-change grace like one without a session. Counting
            // it marked healthy nodes Down at once when a manager led again
            // after a partition (found by the namespace partition suite).
            Some(last) if *last >= leading_since => now.duration_since(*last) > session_grace,
            _ => now.duration_since(leading_since) > leader_grace,
        })
        .cloned()
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
        crate::raft::propose(
            &self.raft,
            Command::NodeSessionStarted {
                node_id: peer.node_id.clone(),
                description,
                addr,
                at_ms: crate::now_ms(),
            },
        )
        .await?;
        let session_id = shoal_security::token::random_base36(16);
        let (tx, rx) = mpsc::channel(4);
        let view = SessionView::of(&self.store, &self.raft, &peer.node_id);
        let first = SessionMessage {
            session_id: session_id.clone(),
            heartbeat_period_ms: self.heartbeat_period().as_millis() as u64,
            ..view.message(&peer.node_id)
        };
        tx.send(Ok(first)).await.ok();
        // Tell the agent whenever what it was told changes: the role the
        // swarm wants its node in, the managers (a demoted one must not be
        // accepted as a manager any more), the roots to trust.
        {
            let tx = tx.clone();
            let store = self.store.clone();
            let raft = self.raft.clone();
            let node_id = peer.node_id.clone();
            let mut last = view;
            let mut changes = store.changes();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tx.closed() => break,
                        changed = changes.changed() => if changed.is_err() { break },
                    }
                    let now = SessionView::of(&store, &raft, &node_id);
                    if now != last {
                        let message = now.message(&node_id);
                        last = now;
                        if tx.send(Ok(message)).await.is_err() {
                            break;
                        }
                    }
                }
            });
        }
        self.sessions.lock().expect("sessions lock").insert(
            peer.node_id.clone(),
            Session {
                id: session_id,
                last_heartbeat: Instant::now(),
                _stream: tx,
            },
        );
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
            match sessions.get_mut(&peer.node_id) {
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
        tokio::spawn(async move {
            let mut changes = store.changes();
            type Key = (Vec<(String, i32, usize)>, NetworkView);
            let mut last_key: Option<Key> = None;
            loop {
                let (tasks, network) = store.read(|s| {
                    (
                        assigned_tasks(s, &node_id),
                        crate::network::view::node_view(s, &node_id),
                    )
                });
                // The attachments count too: a task's addresses are part
                // of what the agent needs.
                let key: Key = (
                    tasks
                        .iter()
                        .map(|t| (t.id.clone(), t.desired_state, t.networks.len()))
                        .collect(),
                    network.clone(),
                );
                if last_key.as_ref() != Some(&key) {
                    let message = AssignmentsMessage {
                        tasks,
                        network: Some(network),
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
            crate::raft::propose(
                &self.raft,
                Command::UpdateTaskStatuses {
                    node_id: peer.node_id,
                    updates,
                },
            )
            .await?;
        }
        Ok(Response::new(UpdateTaskStatusResponse {}))
    }
}

/// What a session tells its agent besides its ID and heartbeat period.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SessionView {
    desired_role: shoal_proto::v1::NodeRole,
    manager_addrs: Vec<String>,
    manager_node_ids: Vec<String>,
    trust_bundle_pem: String,
    signing_root_pem: String,
}

impl SessionView {
    fn of(store: &SharedStore, raft: &Raft, node_id: &str) -> Self {
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
        SessionView {
            desired_role: desired_role(store, node_id),
            manager_addrs: crate::raft::member_addrs(raft),
            manager_node_ids,
            trust_bundle_pem: trust.0,
            signing_root_pem: trust.1,
        }
    }

    fn message(&self, node_id: &str) -> SessionMessage {
        SessionMessage {
            session_id: String::new(),
            node_id: node_id.to_string(),
            managers: self.manager_addrs.clone(),
            heartbeat_period_ms: 0,
            desired_role: self.desired_role as i32,
            manager_node_ids: self.manager_node_ids.clone(),
            trust_bundle_pem: self.trust_bundle_pem.clone(),
            signing_root_pem: self.signing_root_pem.clone(),
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
        .filter(|t| {
            t.node_id == node_id
                && ((t.desired_state <= TaskState::Running as i32
                    // A task to run is delivered once it has its addresses
                    // (a global task is created placed, before the
                    // allocator's pass).
                    && crate::network::fully_attached(t))
                    || (t.desired_state > TaskState::Running as i32
                        && !is_terminal(crate::orchestrator::observed(t))))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn after_a_leader_change_nodes_without_a_session_get_six_periods() {
        let period = Duration::from_secs(1);
        let t0 = Instant::now();
        let ready = ids(&["a", "b"]);
        let none = HashMap::new();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Three periods, the old grace: nobody is Down yet.
        assert!(expired(&ready, &none, t0, at(3_500), period).is_empty());
        assert!(expired(&ready, &none, t0, at(6_000), period).is_empty());
        assert_eq!(expired(&ready, &none, t0, at(6_001), period), ready);
    }

    #[test]
    fn a_node_heartbeating_to_this_leader_is_down_after_three_silent_periods() {
        let period = Duration::from_secs(1);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let ready = ids(&["a", "b"]);
        // a opened a session at +1 s and last heartbeat at +2 s; b has none.
        let heartbeats: HashMap<&str, Instant> = [("a", at(2_000))].into_iter().collect();
        assert!(expired(&ready, &heartbeats, t0, at(5_000), period).is_empty());
        assert_eq!(
            expired(&ready, &heartbeats, t0, at(5_001), period),
            ids(&["a"])
        );
        assert_eq!(expired(&ready, &heartbeats, t0, at(6_001), period), ready);
        // Only Ready nodes are ever marked.
        assert!(expired(&[], &heartbeats, t0, at(60_000), period).is_empty());
    }

    #[test]
    fn heartbeats_from_an_earlier_leadership_do_not_count() {
        let period = Duration::from_secs(1);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let ready = ids(&["a", "b"]);
        // This manager led before (a heartbeat at +0), lost the lead, and
        // leads again since +20 s: a is judged as having no session yet.
        let heartbeats: HashMap<&str, Instant> = [("a", at(0))].into_iter().collect();
        assert!(expired(&ready, &heartbeats, at(20_000), at(20_250), period).is_empty());
        assert!(expired(&ready, &heartbeats, at(20_000), at(26_000), period).is_empty());
        assert_eq!(
            expired(&ready, &heartbeats, at(20_000), at(26_001), period),
            ready
        );
    }
}
