//! Wiring of one manager: opens its Raft member, bootstraps a new cluster,
//! serves the mutual-TLS listener, and proposes commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, SnapshotPolicy};
use shoal_proto::v1::{
    ca_server::CaServer, control_client::ControlClient, control_server::ControlServer,
    dispatcher_server::DispatcherServer, raft_client::RaftClient, raft_server::RaftServer, Cluster,
    Node, RaftConfig,
};
use shoal_proto::v1::{log_broker_server::LogBrokerServer, logs_server::LogsServer};
use shoal_security::tls;
use shoal_security::SharedCredentials;

use crate::ca_service::CaService;
use crate::control::ControlService;
use crate::dispatcher::Dispatcher;
use crate::logs::{LogBrokerService, LogsService};
use crate::peers::PeerHealth;
use crate::raft::log_store::LogStore;
use crate::raft::network::Network;
use crate::raft::service::RaftService;
use crate::raft::state_machine::StateMachine;
use crate::raft::types::Raft;
use crate::raft::WRITE_TIMEOUT;
use crate::store::{Command, SharedStore};
use crate::ManagerError;

/// The largest Raft message a manager accepts from another: an
/// AppendEntries of up to openraft's 300 entries, each a batch of up to
/// [`crate::proposer::MAX_BATCH`] commands, or a `RestoreState` carrying a whole cluster.
/// Snapshots travel in chunks (openraft's 3 MiB default) and never come
/// near it. Only callers with a manager certificate get this far.
const RAFT_MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// HTTP/2 streams one connection may have open at once.
const MAX_STREAMS_PER_CONNECTION: u32 = 256;

/// How long a forwarded call waits for an election to end.
pub(crate) const LEADER_PATIENCE: Duration = Duration::from_secs(3);
/// How long a joining manager may take to catch up with the log.
const JOIN_CATCH_UP_TIMEOUT: Duration = Duration::from_secs(20);

/// Raft timing. The defaults suit a LAN: a new leader well under a second
/// after the old one vanishes.
#[derive(Debug, Clone)]
pub struct RaftTiming {
    pub heartbeat_interval: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// Entries between snapshots (log compaction).
    pub snapshot_interval: u64,
}

impl Default for RaftTiming {
    fn default() -> Self {
        // Followers refuse votes while the leader's lease (the maximum
        // election timeout) runs, so a failover takes about one to two
        // election timeouts: keep the range narrow and short for a LAN.
        RaftTiming {
            heartbeat_interval: Duration::from_millis(50),
            election_timeout_min: Duration::from_millis(300),
            election_timeout_max: Duration::from_millis(450),
            snapshot_interval: 1000,
        }
    }
}

impl RaftTiming {
    /// The timing a cluster spec asks for; zero fields keep the defaults.
    pub fn from_config(config: Option<&RaftConfig>) -> Self {
        let default = RaftTiming::default();
        let Some(c) = config else { return default };
        let ms = |v: u64, d: Duration| if v > 0 { Duration::from_millis(v) } else { d };
        let min = ms(c.election_timeout_min_ms, default.election_timeout_min);
        RaftTiming {
            heartbeat_interval: ms(c.heartbeat_interval_ms, default.heartbeat_interval),
            election_timeout_min: min,
            election_timeout_max: ms(c.election_timeout_max_ms, min * 3 / 2),
            snapshot_interval: if c.snapshot_interval > 0 {
                c.snapshot_interval
            } else {
                default.snapshot_interval
            },
        }
    }

    pub fn to_config(&self) -> RaftConfig {
        RaftConfig {
            heartbeat_interval_ms: self.heartbeat_interval.as_millis() as u64,
            election_timeout_min_ms: self.election_timeout_min.as_millis() as u64,
            election_timeout_max_ms: self.election_timeout_max.as_millis() as u64,
            snapshot_interval: self.snapshot_interval,
        }
    }

    /// Says what is wrong with a timing an operator asked for.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat_interval.is_zero()
            || self.election_timeout_min <= self.heartbeat_interval * 2
        {
            return Err(format!(
                "the election timeout ({:?}) must be more than twice the heartbeat interval ({:?})",
                self.election_timeout_min, self.heartbeat_interval
            ));
        }
        if self.election_timeout_max <= self.election_timeout_min {
            return Err("the maximum election timeout must exceed the minimum".into());
        }
        Ok(())
    }
}

pub use crate::proposer::{Proposer, Quorum};

/// Everything a manager needs to start; the daemon reads it from its data dir.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    pub data_dir: PathBuf,
    pub node_id: String,
    pub raft_id: u64,
    pub cluster_id: String,
    pub advertise_addr: String,
    /// Shared with the node's agent and renewal loop: a renewal swaps them
    /// and every new connection (listener and clients) uses the new ones.
    pub credentials: SharedCredentials,
    pub timing: RaftTiming,
    /// The swarm's unlock key, for a manager whose Raft store is autolocked
    /// (`swarm unlock`); `None` otherwise.
    pub unlock_key: Option<crate::raft::encryption::Kek>,
    /// For a manager that joins (or is promoted) now: the managers (node
    /// ID → Raft ID) its join response named, the only peers it admits
    /// until its store has state. Empty for a manager that resumes.
    pub founding_managers: std::collections::BTreeMap<String, u64>,
}

pub struct Manager {
    config: ManagerConfig,
    raft: Raft,
    store: Arc<SharedStore>,
    health: Arc<PeerHealth>,
    /// Every write goes through it (batched, refused at once without quorum).
    proposer: Proposer,
    /// Channel to the current leader, for forwarded control calls.
    leader_channel: std::sync::Mutex<Option<(String, tonic::transport::Channel)>>,
    dispatcher: Arc<Dispatcher>,
    broker: Arc<crate::logs::Broker>,
    /// This manager's Raft store keys, re-wrapped as the cluster's autolock
    /// setting says ([`crate::raft::key_follower`]).
    keys: Arc<std::sync::Mutex<crate::raft::encryption::RaftKeys>>,
    background: Vec<tokio::task::JoinHandle<()>>,
    /// The dispatcher's node judge (also in `background`), stopped first
    /// on the way out: see [`Manager::stop_judging_nodes`].
    judge: tokio::task::AbortHandle,
}

impl Manager {
    /// Opens (or creates) this manager's Raft member from its data dir.
    pub async fn open(config: ManagerConfig) -> Result<Arc<Self>, ManagerError> {
        let path = config.data_dir.join("raft");
        let storage_err = |e: &dyn std::fmt::Display| ManagerError::Storage {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let (db, keys) = match crate::raft::migrate::open_store(&path, config.unlock_key.as_ref()) {
            Ok(opened) => opened,
            Err(crate::raft::migrate::OpenError::Keys(e)) => return Err(e.into()),
            Err(e) => return Err(storage_err(&e)),
        };
        let dek = keys.dek().clone().unless_benchmark_disables();
        let log_store = LogStore::open(&db, dek.clone()).map_err(|e| storage_err(&e))?;
        let store = Arc::new(SharedStore::default());
        store.set_founding_managers(config.founding_managers.clone());
        let state_machine =
            StateMachine::open(&db, store.clone(), dek).map_err(|e| storage_err(&e))?;
        let timing = &config.timing;
        let raft_config = openraft::Config {
            cluster_name: config.cluster_id.clone(),
            heartbeat_interval: timing.heartbeat_interval.as_millis() as u64,
            election_timeout_min: timing.election_timeout_min.as_millis() as u64,
            election_timeout_max: timing.election_timeout_max.as_millis() as u64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(timing.snapshot_interval),
            max_in_snapshot_log_to_keep: timing.snapshot_interval / 10,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ManagerError::Raft {
            operation: "validating its configuration",
            message: e.to_string(),
        })?;
        let health = Arc::new(PeerHealth::default());
        let network = Network::new(config.credentials.clone(), health.clone());
        let raft = Raft::new(
            config.raft_id,
            Arc::new(raft_config),
            network,
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| ManagerError::Raft {
            operation: "starting",
            message: e.to_string(),
        })?;
        let (proposer, batcher) = Proposer::new(raft.clone(), config.raft_id, health.clone());
        let batcher = tokio::spawn(batcher);
        let dispatcher = Arc::new(Dispatcher::new(
            raft.clone(),
            proposer.clone(),
            store.clone(),
            config.clone(),
        ));
        let broker = Arc::new(crate::logs::Broker::new(store.clone(), dispatcher.clone()));
        let expiry = tokio::spawn(dispatcher.clone().run_expiry());
        let loops = tokio::spawn(crate::leader::run(
            raft.clone(),
            proposer.clone(),
            store.clone(),
            config.raft_id,
        ));
        let keys = Arc::new(std::sync::Mutex::new(keys));
        let key_follower = tokio::spawn(crate::raft::key_follower::run(
            store.clone(),
            keys.clone(),
            raft.clone(),
        ));
        let autoscaler = tokio::spawn(crate::autoscaler::run(
            raft.clone(),
            proposer.clone(),
            store.clone(),
            dispatcher.clone(),
            config.raft_id,
        ));
        let provisioner = tokio::spawn(crate::provisioner::run(
            raft.clone(),
            proposer.clone(),
            store.clone(),
            config.raft_id,
        ));
        Ok(Arc::new(Manager {
            config,
            raft,
            store,
            health,
            proposer,
            leader_channel: std::sync::Mutex::new(None),
            dispatcher,
            broker,
            keys,
            judge: expiry.abort_handle(),
            background: vec![
                expiry,
                loops,
                batcher,
                key_follower,
                autoscaler,
                provisioner,
            ],
        }))
    }

    /// Makes this manager the single member of a new cluster and writes the
    /// cluster object and its own node. Used by `swarm init`.
    pub async fn bootstrap(&self, cluster: Cluster, node: Node) -> Result<(), ManagerError> {
        self.initialize_single().await?;
        self.propose(Command::CreateCluster(cluster)).await?;
        self.propose(Command::CreateNode(node)).await
    }

    /// Commits `command` through Raft and returns once it applied here
    /// (see [`Proposer::propose`]).
    pub async fn propose(&self, command: Command) -> Result<(), ManagerError> {
        self.proposer.propose(command).await
    }

    /// Voters, how many of them answer (this manager included), and the leader.
    pub fn quorum(&self) -> Quorum {
        self.proposer.quorum()
    }

    /// The handle every write goes through.
    pub fn proposer(&self) -> &Proposer {
        &self.proposer
    }

    /// "Not the leader", carrying the leader's address in metadata so that
    /// agents and joining managers go straight there.
    pub async fn not_leader_status(&self) -> tonic::Status {
        match self.leader_addr(LEADER_PATIENCE).await {
            Ok((_, addr)) => crate::raft::not_leader(Some(&addr)),
            Err(e) => e.into(),
        }
    }

    /// A Raft RPC from peer `raft_id` arrived: it is reachable.
    pub fn heard_from(&self, raft_id: u64) {
        if raft_id != self.config.raft_id {
            self.health.record_ok(raft_id);
        }
    }

    /// Whether peer `raft_id` answered recently (this manager always does).
    pub fn is_reachable(&self, raft_id: u64) -> bool {
        raft_id == self.config.raft_id || self.health.is_reachable(raft_id)
    }

    /// The leader's address, waiting up to `patience` for an election to end.
    pub async fn leader_addr(&self, patience: Duration) -> Result<(u64, String), ManagerError> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            if let Some(leader) = crate::raft::current_leader(&self.raft) {
                return Ok(leader);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.no_leader_error(patience));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Why no leader could be found after waiting `waited`: "no quorum"
    /// only when a majority of managers really is out of reach (for longer
    /// than an election: reachability is the last 1.5 s), since that message
    /// points at `--force-new-cluster`; otherwise a retryable "election in
    /// progress".
    pub fn no_leader_error(&self, waited: Duration) -> ManagerError {
        let quorum = self.quorum();
        if quorum.has_majority() {
            ManagerError::NoLeaderYet {
                seconds: waited.as_secs().max(1),
                reachable: quorum.reachable,
                total: quorum.voters.len(),
            }
        } else {
            ManagerError::NoQuorum {
                reachable: quorum.reachable,
                total: quorum.voters.len(),
                majority: quorum.majority(),
            }
        }
    }

    /// The leader's ID and address once one is known that is not `failed`
    /// (the leader a forwarded call just lost), waiting until `deadline`.
    pub async fn leader_other_than(
        &self,
        failed: Option<u64>,
        deadline: tokio::time::Instant,
    ) -> Option<(u64, String)> {
        loop {
            if let Some((id, addr)) = crate::raft::current_leader(&self.raft) {
                if Some(id) != failed {
                    return Some((id, addr));
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Resolves once `leader` is no longer the leader this manager follows
    /// (it stepped down, or its heartbeats stopped and an election began).
    pub async fn leader_lost(&self, leader: u64) {
        let mut metrics = self.raft.metrics();
        loop {
            if metrics.borrow().current_leader != Some(leader) {
                return;
            }
            if metrics.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// A control client for the manager at `addr` (cached channel).
    pub fn control_at(
        &self,
        addr: &str,
    ) -> Result<ControlClient<tonic::transport::Channel>, ManagerError> {
        Ok(ControlClient::new(self.channel_to(addr)?)
            .max_decoding_message_size(shoal_proto::MAX_RESPONSE_BYTES))
    }

    /// A control client to the current leader (mutual TLS with this
    /// manager's certificate), reusing the channel while the leader stays.
    pub async fn leader_control(
        &self,
    ) -> Result<ControlClient<tonic::transport::Channel>, ManagerError> {
        let (_, addr) = self.leader_addr(LEADER_PATIENCE).await?;
        self.control_at(&addr)
    }

    /// A channel to the current leader (mutual TLS with this manager's
    /// certificate), for forwarded streaming calls.
    pub async fn leader_channel(&self) -> Result<tonic::transport::Channel, ManagerError> {
        let (_, addr) = self.leader_addr(LEADER_PATIENCE).await?;
        self.channel_to(&addr)
    }

    fn channel_to(&self, addr: &str) -> Result<tonic::transport::Channel, ManagerError> {
        let mut cached = self.leader_channel.lock().expect("leader channel lock");
        if let Some((cached_addr, channel)) = cached.as_ref() {
            if cached_addr == addr {
                return Ok(channel.clone());
            }
        }
        let channel = tls::channel(addr, Duration::from_secs(2), &self.config.credentials)?;
        *cached = Some((addr.to_string(), channel.clone()));
        Ok(channel)
    }

    /// A Raft RPC client to the current leader.
    pub async fn leader_raft(&self) -> Result<RaftClient<tonic::transport::Channel>, ManagerError> {
        let (_, addr) = self.leader_addr(LEADER_PATIENCE).await?;
        Ok(RaftClient::new(self.channel_to(&addr)?))
    }

    /// Leader side of a manager joining: add it as a learner (it catches up,
    /// by snapshot if the log was compacted), then make it a voter.
    pub async fn add_manager(&self, raft_id: u64, addr: &str) -> Result<(), ManagerError> {
        let raft_err = |operation: &'static str| {
            move |e: openraft::error::RaftError<
                u64,
                openraft::error::ClientWriteError<u64, BasicNode>,
            >| {
                ManagerError::Raft {
                    operation,
                    message: e.to_string(),
                }
            }
        };
        let not_caught_up = || ManagerError::Raft {
            operation: "catching up the new manager",
            message: format!(
                "it did not catch up within {} s: check that the managers can reach {addr}",
                JOIN_CATCH_UP_TIMEOUT.as_secs()
            ),
        };
        // Not openraft's blocking add_learner: its wait for the learner gives
        // up after openraft's default 500 ms and still answers Ok, so an
        // unreachable manager would become a voter and could cost the group
        // its quorum. The learner is added without blocking, and it becomes a
        // voter only once the leader has seen it hold the log up to its own
        // membership entry.
        let added = self
            .raft
            .add_learner(raft_id, BasicNode::new(addr), false)
            .await
            .map_err(raft_err("adding the new manager as a learner"))?;
        let membership_index = added.log_id.index;
        let caught_up = self
            .raft
            .wait(Some(JOIN_CATCH_UP_TIMEOUT))
            .metrics(
                |metrics| learner_holds(metrics, raft_id, membership_index),
                "the new manager to catch up",
            )
            .await;
        if caught_up.is_err() {
            self.forget_member(raft_id).await;
            return Err(not_caught_up());
        }
        let voters: std::collections::BTreeSet<u64> = [raft_id].into_iter().collect();
        if let Err(e) = self
            .raft
            .change_membership(openraft::ChangeMembers::AddVoterIds(voters), false)
            .await
        {
            self.forget_member(raft_id).await;
            return Err(raft_err("making the new manager a voter")(e));
        }
        Ok(())
    }

    /// Leader side of a manager leaving (or being demoted): remove it from the
    /// group. Refused when the remaining managers would lack a quorum, unless `force`.
    pub async fn remove_manager(&self, raft_id: u64, force: bool) -> Result<(), ManagerError> {
        let quorum = self.quorum();
        if !quorum.voters.contains(&raft_id) {
            self.forget_member(raft_id).await;
            return Ok(());
        }
        let remaining = quorum.voters.len() - 1;
        if remaining == 0 {
            return Err(ManagerError::Store(crate::store::StoreError::Conflict(
                "this is the last manager of the swarm: it cannot be removed or demoted                  (use `shoal swarm leave --force` on it to end the swarm)"
                    .into(),
            )));
        }
        let reachable_after = quorum
            .voters
            .iter()
            .filter(|id| **id != raft_id && self.is_reachable(**id))
            .count();
        if reachable_after < remaining / 2 + 1 && !force {
            return Err(ManagerError::Store(crate::store::StoreError::Conflict(format!(
                "removing this manager leaves {reachable_after} of {remaining} managers reachable:                  the swarm would lose its quorum; bring managers back first, or use --force"
            ))));
        }
        let voters: std::collections::BTreeSet<u64> = [raft_id].into_iter().collect();
        self.raft
            .change_membership(openraft::ChangeMembers::RemoveVoters(voters), false)
            .await
            .map_err(|e| ManagerError::Raft {
                operation: "removing a manager from the group",
                message: e.to_string(),
            })?;
        self.forget_member(raft_id).await;
        Ok(())
    }

    /// Drops a learner left behind by a failed join or a removal.
    async fn forget_member(&self, raft_id: u64) {
        let nodes: std::collections::BTreeSet<u64> = [raft_id].into_iter().collect();
        let _ = self
            .raft
            .change_membership(openraft::ChangeMembers::RemoveNodes(nodes), false)
            .await;
    }

    pub fn store(&self) -> &Arc<SharedStore> {
        &self.store
    }

    /// Whether this manager's store key is wrapped by the unlock key now
    /// (autolock in force here), rather than by the key file.
    pub fn autolocked(&self) -> bool {
        self.keys.lock().expect("keys lock").autolocked()
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn config(&self) -> &ManagerConfig {
        &self.config
    }

    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.dispatcher
    }

    pub fn broker(&self) -> &Arc<crate::logs::Broker> {
        &self.broker
    }

    /// The logs/exec API as served to the local socket.
    pub fn local_logs(self: &Arc<Self>) -> crate::logs::LogsService {
        crate::logs::LogsService::new(self.clone(), false)
    }

    /// Advertise addresses of every manager in the Raft membership.
    pub fn manager_addrs(&self) -> Vec<String> {
        crate::raft::member_addrs(&self.raft)
    }

    /// Whether this manager currently leads the Raft group.
    pub fn is_leader(&self) -> bool {
        crate::raft::is_leader(&self.raft, self.config.raft_id)
    }

    /// The control API as served to the local socket (no certificate check:
    /// file permissions guard the socket).
    pub fn local_control(self: &Arc<Self>) -> ControlService {
        ControlService::new(self.clone(), false)
    }

    /// `swarm init --force-new-cluster`: replaces this manager's Raft group
    /// with a new one of which it is the only member, keeping the applied
    /// state (cluster, nodes, services, tasks). The other managers' nodes stay
    /// listed, without Raft membership, until they are removed.
    pub async fn force_new_cluster(
        config: ManagerConfig,
        state: crate::store::ClusterState,
    ) -> Result<Arc<Self>, ManagerError> {
        let raft_dir = config.data_dir.join("raft");
        let old = config.data_dir.join("raft.old");
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(&raft_dir, &old).map_err(|e| ManagerError::Storage {
            path: raft_dir.display().to_string(),
            message: e.to_string(),
        })?;
        let manager = match Manager::open(config.clone()).await {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&raft_dir);
                let _ = std::fs::rename(&old, &raft_dir);
                return Err(e);
            }
        };
        let mut state = state;
        for node in state.nodes.values_mut() {
            if node.id != config.node_id {
                if let Some(status) = node.manager_status.as_mut() {
                    // No longer a Raft member: shown Unreachable until removed.
                    status.raft_id = 0;
                }
            }
        }
        let result = async {
            manager.initialize_single().await?;
            manager
                .propose(Command::RestoreState(Box::new(state)))
                .await
        }
        .await;
        if let Err(e) = result {
            manager.shutdown().await;
            drop(manager);
            let _ = std::fs::remove_dir_all(&raft_dir);
            let _ = std::fs::rename(&old, &raft_dir);
            return Err(e);
        }
        let _ = std::fs::remove_dir_all(&old);
        Ok(manager)
    }

    async fn initialize_single(&self) -> Result<(), ManagerError> {
        let members = [(
            self.config.raft_id,
            BasicNode::new(self.config.advertise_addr.clone()),
        )]
        .into_iter()
        .collect::<std::collections::BTreeMap<_, _>>();
        self.raft
            .initialize(members)
            .await
            .map_err(|e| ManagerError::Raft {
                operation: "initializing the cluster",
                message: e.to_string(),
            })?;
        self.raft
            .wait(Some(WRITE_TIMEOUT))
            .current_leader(self.config.raft_id, "this manager leads the new cluster")
            .await
            .map_err(|e| ManagerError::Raft {
                operation: "electing the first leader",
                message: e.to_string(),
            })?;
        Ok(())
    }

    /// Serves Raft, CA, dispatcher and control on `listener` with mutual TLS
    /// until `shutdown` resolves. Handshakes, connections without a
    /// certificate and calls before authentication are bounded by
    /// [`listener`](crate::listener); message sizes per service here.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ManagerError> {
        let acceptor = tls::server_acceptor(&self.config.credentials.current())?;
        let (acceptor_updates, acceptor) = tokio::sync::watch::channel(acceptor);
        tokio::spawn(follow_credentials(
            self.config.credentials.subscribe(),
            acceptor_updates,
        ));
        let incoming = crate::listener::incoming(listener, acceptor, Default::default());
        tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .http2_keepalive_interval(Some(Duration::from_secs(5)))
            .http2_keepalive_timeout(Some(Duration::from_secs(5)))
            // Streams per connection: agents hold three, managers a few per
            // peer; a misbehaving peer cannot open thousands.
            .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
            .layer(crate::listener::CertificateGateLayer)
            .add_service(
                RaftServer::new(RaftService::new(self.clone()))
                    .max_decoding_message_size(RAFT_MAX_MESSAGE_BYTES),
            )
            .add_service(CaServer::new(CaService::new(self.clone())))
            .add_service(DispatcherServer::from_arc(self.dispatcher.clone()))
            .add_service(ControlServer::new(ControlService::new(self.clone(), true)))
            .add_service(LogsServer::new(LogsService::new(self.clone(), true)))
            .add_service(LogBrokerServer::new(LogBrokerService::new(
                self.broker.clone(),
            )))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .map_err(|e| ManagerError::Listener(e.to_string()))
    }

    /// The credentials this manager serves and connects with.
    pub fn credentials(&self) -> &SharedCredentials {
        &self.config.credentials
    }

    /// Stops marking nodes Down, first thing when this manager stops. Its
    /// listener then drains and closes every agent's session stream, and a
    /// leader still judging would take those closes for crashed nodes: it
    /// marked every node Down within the reconnect grace while it drained,
    /// and their tasks were replaced when the managers came back (found by
    /// `ha::stopping_and_starting_every_manager_keeps_the_cluster` under
    /// load). The next leader judges them with a new leader's grace.
    pub fn stop_judging_nodes(&self) {
        self.judge.abort();
    }

    /// Stops Raft and the background loops. The sled database flushes on drop.
    pub async fn shutdown(&self) {
        for task in &self.background {
            task.abort();
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not shut down cleanly");
        }
    }

    /// The address managers listen on by default, as Docker's 2377.
    pub const DEFAULT_PORT: u16 = 2377;

    /// Parses a listen address, defaulting the port.
    pub fn parse_addr(text: &str) -> Option<SocketAddr> {
        text.parse::<SocketAddr>().ok().or_else(|| {
            text.parse::<std::net::IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, Self::DEFAULT_PORT))
        })
    }
}

/// Hands the listener a new TLS acceptor whenever the node's credentials
/// change (a renewal), so new connections get the new certificate without a
/// restart and open ones are left alone. Ends with the listener.
async fn follow_credentials(
    mut credentials: tokio::sync::watch::Receiver<Arc<shoal_security::files::NodeCredentials>>,
    acceptor: tokio::sync::watch::Sender<tokio_rustls::TlsAcceptor>,
) {
    loop {
        tokio::select! {
            changed = credentials.changed() => {
                if changed.is_err() {
                    return;
                }
                let current = credentials.borrow_and_update().clone();
                match tls::server_acceptor(&current) {
                    Ok(next) => {
                        if acceptor.send(next).is_err() {
                            return;
                        }
                        tracing::info!("serving the renewed certificate to new connections");
                    }
                    Err(e) => tracing::error!(error = %e, "the renewed credentials cannot be served; keeping the old ones"),
                }
            }
            _ = acceptor.closed() => return,
        }
    }
}

/// Whether the leader's replication metrics show `learner` holding the log
/// up to `index` (the entry that added it).
fn learner_holds(
    metrics: &openraft::RaftMetrics<u64, BasicNode>,
    learner: u64,
    index: u64,
) -> bool {
    metrics
        .replication
        .as_ref()
        .and_then(|replication| replication.get(&learner))
        .and_then(|matched| matched.as_ref())
        .is_some_and(|matched| matched.index >= index)
}
