//! Wiring of one manager: opens its Raft member, bootstraps a new cluster,
//! serves the mutual-TLS listener, and proposes commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, SnapshotPolicy};
use shoal_proto::v1::{
    ca_server::CaServer, control_server::ControlServer, dispatcher_server::DispatcherServer,
    raft_server::RaftServer, Cluster, Node,
};
use shoal_security::files::NodeCredentials;
use shoal_security::tls;
use tokio_stream::wrappers::TcpListenerStream;

use crate::ca_service::CaService;
use crate::control::ControlService;
use crate::dispatcher::Dispatcher;
use crate::raft::log_store::LogStore;
use crate::raft::network::Network;
use crate::raft::service::RaftService;
use crate::raft::state_machine::StateMachine;
use crate::raft::types::Raft;
use crate::raft::WRITE_TIMEOUT;
use crate::store::{Command, SharedStore};
use crate::ManagerError;

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
        RaftTiming {
            heartbeat_interval: Duration::from_millis(100),
            election_timeout_min: Duration::from_millis(400),
            election_timeout_max: Duration::from_millis(800),
            snapshot_interval: 1000,
        }
    }
}

/// Everything a manager needs to start; the daemon reads it from its data dir.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    pub data_dir: PathBuf,
    pub node_id: String,
    pub raft_id: u64,
    pub cluster_id: String,
    pub advertise_addr: String,
    pub credentials: NodeCredentials,
    pub timing: RaftTiming,
}

pub struct Manager {
    config: ManagerConfig,
    raft: Raft,
    store: Arc<SharedStore>,
    dispatcher: Arc<Dispatcher>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Manager {
    /// Opens (or creates) this manager's Raft member from its data dir.
    pub async fn open(config: ManagerConfig) -> Result<Arc<Self>, ManagerError> {
        let path = config.data_dir.join("raft");
        let storage_err = |e: &dyn std::fmt::Display| ManagerError::Storage {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let db = crate::raft::open_db(&path).map_err(|e| storage_err(&e))?;
        let log_store = LogStore::open(&db).map_err(|e| storage_err(&e))?;
        let store = Arc::new(SharedStore::default());
        let state_machine = StateMachine::open(&db, store.clone()).map_err(|e| storage_err(&e))?;
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
        let network = Network::new(tls::client_config(&config.credentials));
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
        let dispatcher = Arc::new(Dispatcher::new(raft.clone(), store.clone(), config.clone()));
        let expiry = tokio::spawn(dispatcher.clone().run_expiry());
        let loops = tokio::spawn(crate::leader::run(
            raft.clone(),
            store.clone(),
            config.raft_id,
        ));
        Ok(Arc::new(Manager {
            config,
            raft,
            store,
            dispatcher,
            background: vec![expiry, loops],
        }))
    }

    /// Makes this manager the single member of a new cluster and writes the
    /// cluster object and its own node. Used by `swarm init`.
    pub async fn bootstrap(&self, cluster: Cluster, node: Node) -> Result<(), ManagerError> {
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
        self.propose(Command::CreateCluster(cluster)).await?;
        self.propose(Command::CreateNode(node)).await
    }

    /// Commits `command` through Raft and returns once it applied here.
    pub async fn propose(&self, command: Command) -> Result<(), ManagerError> {
        crate::raft::propose(&self.raft, command).await
    }

    pub fn store(&self) -> &Arc<SharedStore> {
        &self.store
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

    /// Advertise addresses of every manager in the Raft membership.
    pub fn manager_addrs(&self) -> Vec<String> {
        let metrics = self.raft.metrics().borrow().clone();
        metrics
            .membership_config
            .nodes()
            .map(|(_, node)| node.addr.clone())
            .collect()
    }

    /// Whether this manager currently leads the Raft group.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.config.raft_id)
    }

    /// The control API as served to the local socket (no certificate check:
    /// file permissions guard the socket).
    pub fn local_control(self: &Arc<Self>) -> ControlService {
        ControlService::new(self.clone(), false)
    }

    /// Serves Raft, CA, dispatcher and control on `listener` with mutual TLS
    /// until `shutdown` resolves.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), tonic::transport::Error> {
        let tls = tls::server_config(&self.config.credentials);
        tonic::transport::Server::builder()
            .tls_config(tls)?
            .tcp_nodelay(true)
            .http2_keepalive_interval(Some(Duration::from_secs(5)))
            .http2_keepalive_timeout(Some(Duration::from_secs(5)))
            .add_service(
                RaftServer::new(RaftService::new(self.raft.clone(), self.store.clone()))
                    .max_decoding_message_size(usize::MAX),
            )
            .add_service(CaServer::new(CaService::new(self.clone())))
            .add_service(DispatcherServer::from_arc(self.dispatcher.clone()))
            .add_service(ControlServer::new(ControlService::new(self.clone(), true)))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
            .await
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
