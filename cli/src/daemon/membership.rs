//! This node's swarm membership and what runs for it: the manager (when
//! it is one) and the agent.
//!
//! `swarm init`, `swarm join` and `swarm leave` each either complete or leave
//! the node exactly as it was: files are written only after every remote
//! step succeeded (the membership record last, [`Membership::commit`]), and a
//! failed step undoes what it created. Membership changes hold one lock, so
//! they never interleave.
//!
//! # Layout
//! - this file: the running state, start, stop, resume, unlock, `info`.
//! - [`init`]: `swarm init` (the cluster's objects are the manager's
//!   [`shoal_manager::bootstrap::new_cluster`]) and `--force-new-cluster`.
//! - [`join`]: `swarm join` (the CA check is [`shoal_security::join`]) and
//!   following leader hints.
//! - [`roles`]: promotion and demotion, as the swarm asks over the session.
//! - [`leave`]: `swarm leave`.
//! - [`super::addresses`]: `--listen-addr`, `--advertise-addr`, manager addresses.
//! - [`error`]: why a change failed ([`MembershipError`]), a gRPC status
//!   only at the local API's edge.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub use error::MembershipError;
use shoal_agent::{AgentConfig, AgentHandle};
use shoal_manager::ca_service::{new_node_id, DEFAULT_NODE_CERT_EXPIRY};
use shoal_manager::control::LEADER_HINT;
use shoal_manager::raft::encryption::{self, Kek, Protection};
use shoal_manager::{Manager, ManagerConfig, RaftTiming};
use shoal_proto::v1::ca_client::CaClient;
use shoal_proto::v1::raft_client::RaftClient;
use shoal_proto::v1::{
    InfoResponse, InitRequest, InitResponse, IssueNodeCertificateRequest, JoinRequest,
    JoinResponse, NodeRole,
};
use shoal_proto::v1::{JoinClusterRequest, LeaveClusterRequest, PromoteNodeRequest};
use shoal_security::files::NodeCredentials;
use shoal_security::tls::KnownManagers;
use shoal_security::{tls, JoinToken, NodeKey, RootCa, SharedCredentials};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch, Mutex};

use super::addresses::bind;
use super::config::DaemonConfig;
use super::state::{NodeState as MembershipRecord, Role};

pub mod error;
mod init;
mod join;
mod leave;
mod roles;

pub const ALREADY_IN_SWARM: &str =
    "This node is already part of a swarm. Use \"shoal swarm leave\" \
     to leave this swarm and join another one.";
/// Docker's answer on a locked manager, with shoal's way out.
pub const LOCKED: &str =
    "This manager is locked: its Raft store is encrypted with the swarm's unlock \
     key (autolock). Run \"shoal swarm unlock\" and enter the key (\"shoal swarm unlock-key\" on \
     an unlocked manager shows it); \"shoal swarm leave --force\" gives the node up instead.";
pub const NOT_IN_SWARM: &str = "This node is not part of a swarm: use \"shoal swarm init\" or \
     \"shoal swarm join\" to connect this node to a swarm and try again.";

struct RunningManager {
    manager: Arc<Manager>,
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

impl RunningManager {
    async fn stop(self) {
        // Before the listener closes the agents' sessions (see
        // `Manager::stop_judging_nodes`).
        self.manager.stop_judging_nodes();
        let _ = self.stop.send(());
        if tokio::time::timeout(Duration::from_secs(5), self.server)
            .await
            .is_err()
        {
            tracing::warn!("the manager's listener did not drain within 5 s");
        }
        self.manager.shutdown().await;
    }
}

struct Active {
    record: MembershipRecord,
    /// Shared by the manager, the agent and the renewal loop.
    credentials: SharedCredentials,
    manager: Option<RunningManager>,
    agent: AgentHandle,
}

/// What the certificate renewal loop needs to know about the running node.
pub struct RenewalView {
    pub credentials: SharedCredentials,
    pub role: Role,
    /// Managers to ask, this node's own first when it is one.
    pub managers: Vec<String>,
    /// The cluster's certificate lifetime, when this node is a manager and
    /// can read it from its store.
    pub configured_lifetime: Option<Duration>,
    /// The node IDs accepted as managers (the renewal call is to one).
    pub known_managers: KnownManagers,
    /// The roots the swarm last announced over the session.
    pub announced_trust: Option<shoal_security::renewal::AnnouncedTrust>,
}

/// This node's swarm membership: what it is (the record), and the manager
/// and agent running for it.
pub struct Membership {
    config: DaemonConfig,
    // tokio Mutex: membership changes hold it across awaits, which is what
    // serializes them.
    active: Mutex<Option<Active>>,
    // std RwLock: a quick lookup for every control call, never held across awaits.
    manager: std::sync::RwLock<Option<Arc<Manager>>>,
    /// A manager waiting for `swarm unlock`: its membership, nothing
    /// started. Taken only while `active` is held.
    locked: std::sync::Mutex<Option<MembershipRecord>>,
    /// The desired role of the agent started last (each start publishes
    /// its own): what [`Membership::follow_desired_role`] waits on.
    agent_roles: watch::Sender<Option<watch::Receiver<Option<NodeRole>>>>,
}

impl Membership {
    pub fn new(config: DaemonConfig) -> Self {
        Membership {
            config,
            active: Mutex::new(None),
            manager: std::sync::RwLock::new(None),
            locked: std::sync::Mutex::new(None),
            agent_roles: watch::channel(None).0,
        }
    }

    /// The manager running on this node, if it is one.
    pub fn manager(&self) -> Option<Arc<Manager>> {
        self.manager.read().expect("manager lock").clone()
    }

    /// Whether this node is a manager waiting for `swarm unlock`.
    pub fn is_locked(&self) -> bool {
        self.locked.lock().expect("locked lock").is_some()
    }

    fn raft_dir(&self) -> std::path::PathBuf {
        self.config.data_dir.join("raft")
    }

    /// Resumes the role recorded in the data dir, if any. An autolocked
    /// manager starts nothing: it waits for `swarm unlock`.
    pub async fn resume(&self) -> anyhow::Result<()> {
        let Some(record) = MembershipRecord::load(&self.config.data_dir)? else {
            return Ok(());
        };
        if record.role == Role::Manager && encryption::is_locked(&self.raft_dir())? {
            tracing::warn!(node = %record.node_id, "this manager is locked (autolock): its Raft store waits for `shoal swarm unlock`");
            *self.locked.lock().expect("locked lock") = Some(record);
            return Ok(());
        }
        let active = self.start_recorded(record, None).await?;
        tracing::info!(node = %active.record.node_id, role = ?active.record.role, "resumed swarm membership");
        *self.active.lock().await = Some(active);
        Ok(())
    }

    /// `swarm unlock`: opens the locked manager's store with `unlock_key`
    /// and starts the node as `resume` would have.
    pub async fn unlock(&self, unlock_key: &str) -> Result<(), MembershipError> {
        let mut active = self.active.lock().await;
        let Some(record) = self.locked.lock().expect("locked lock").clone() else {
            return Err(MembershipError::not_now(if active.is_some() {
                "this node is not locked: it is running"
            } else {
                "this node is not locked: it is not a manager of a swarm"
            }));
        };
        let key = Kek::parse_unlock_key(unlock_key)
            .map_err(|e| MembershipError::bad_input(e.to_string()))?;
        // Checked before anything starts: a wrong key changes nothing.
        encryption::RaftKeys::open(&self.raft_dir(), Some(&key))
            .map_err(|e| MembershipError::from(shoal_manager::ManagerError::from(e)))?;
        let started = self.start_recorded(record, Some(key)).await.map_err(|e| {
            MembershipError::local(format!("the unlocked manager did not start: {e:#}"))
        })?;
        tracing::info!(node = %started.record.node_id, "unlocked: the manager's Raft store is open");
        *self.locked.lock().expect("locked lock") = None;
        *active = Some(started);
        Ok(())
    }

    /// Starts the node from its membership record and certificates on disk.
    async fn start_recorded(
        &self,
        record: MembershipRecord,
        unlock_key: Option<Kek>,
    ) -> anyhow::Result<Active> {
        let credentials = SharedCredentials::new(NodeCredentials::load(&self.config.data_dir)?);
        let listener = match (&record.role, &record.listen_addr) {
            (Role::Manager, Some(addr)) => Some(
                bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!(e.to_string()))?,
            ),
            _ => None,
        };
        self.start(record, credentials, listener, unlock_key).await
    }

    /// Starts the manager (when the record says so) and the agent.
    async fn start(
        &self,
        record: MembershipRecord,
        credentials: SharedCredentials,
        listener: Option<TcpListener>,
        unlock_key: Option<Kek>,
    ) -> anyhow::Result<Active> {
        let manager = match (record.role, listener) {
            (Role::Manager, Some(listener)) => {
                let manager = Manager::open(self.manager_config(
                    &record,
                    &credentials,
                    unlock_key,
                    BTreeMap::new(),
                )?)
                .await?;
                Some(self.serve_manager(manager, listener))
            }
            _ => None,
        };
        let agent = self.spawn_agent(&record, credentials.clone()).await;
        Ok(Active {
            record,
            credentials,
            manager,
            agent,
        })
    }

    /// Starts this node's agent with its identity and the managers it knows.
    async fn spawn_agent(
        &self,
        record: &MembershipRecord,
        credentials: SharedCredentials,
    ) -> AgentHandle {
        let agent = shoal_agent::spawn(AgentConfig {
            data_dir: self.config.data_dir.clone(),
            node_id: record.node_id.clone(),
            hostname: self.config.hostname.clone(),
            credentials,
            managers: record.managers.clone(),
            known_managers: KnownManagers::new(record.manager_ids.iter().cloned()),
            advertise_addr: record.advertise_addr.clone(),
        })
        .await;
        self.agent_roles
            .send_replace(Some(agent.desired_role_changes()));
        agent
    }

    /// `founding`: the managers a join (or promotion) response named, for a
    /// manager that starts without state; empty when it resumes.
    fn manager_config(
        &self,
        record: &MembershipRecord,
        credentials: &SharedCredentials,
        unlock_key: Option<Kek>,
        founding: BTreeMap<String, u64>,
    ) -> anyhow::Result<ManagerConfig> {
        Ok(ManagerConfig {
            data_dir: self.config.data_dir.clone(),
            node_id: record.node_id.clone(),
            raft_id: record.raft_id.ok_or_else(|| {
                anyhow::anyhow!("the membership record of this manager has no raft ID")
            })?,
            cluster_id: record.cluster_id.clone(),
            advertise_addr: record.advertise_addr.clone(),
            credentials: credentials.clone(),
            timing: RaftTiming::from_config(record.raft.as_ref()),
            unlock_key,
            founding_managers: founding,
        })
    }

    fn serve_manager(&self, manager: Arc<Manager>, listener: TcpListener) -> RunningManager {
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn({
            let manager = manager.clone();
            async move {
                let shutdown = async move {
                    let _ = stopped.await;
                };
                if let Err(e) = manager.serve(listener, shutdown).await {
                    tracing::error!(error = %e, "the manager's listener failed");
                }
            }
        });
        *self.manager.write().expect("manager lock") = Some(manager.clone());
        RunningManager {
            manager,
            stop,
            server,
        }
    }

    /// What the renewal loop works with, if the node is in a swarm.
    pub async fn renewal_view(&self) -> Option<RenewalView> {
        let active = self.active.lock().await;
        let current = active.as_ref()?;
        let mut managers = current.agent.managers();
        if current.record.role == Role::Manager {
            let own = current.record.advertise_addr.clone();
            managers.retain(|m| *m != own);
            managers.insert(0, own);
        }
        let configured_lifetime = current.manager.as_ref().and_then(|m| {
            m.manager.store().read(|s| {
                s.cluster
                    .as_ref()
                    .and_then(|c| c.spec.as_ref())
                    .map(|spec| spec.node_cert_expiry_secs)
                    .filter(|secs| *secs > 0)
                    .map(Duration::from_secs)
            })
        });
        Some(RenewalView {
            credentials: current.credentials.clone(),
            role: current.record.role,
            managers,
            configured_lifetime,
            known_managers: current.agent.known_managers().clone(),
            announced_trust: current.agent.announced_trust(),
        })
    }

    /// What `shoal info` shows.
    pub async fn info(&self) -> InfoResponse {
        let active = self.active.lock().await;
        if let Some(record) = self.locked.lock().expect("locked lock").as_ref() {
            return InfoResponse {
                local_node_state: "locked".into(),
                node_id: record.node_id.clone(),
                cluster_id: record.cluster_id.clone(),
                role: NodeRole::Manager as i32,
                managers: record.managers.clone(),
                node_addr: record.advertise_addr.clone(),
                raft_key_protection: "unlock key".into(),
                ..Default::default()
            };
        }
        match active.as_ref() {
            None => InfoResponse {
                local_node_state: "inactive".into(),
                ..Default::default()
            },
            Some(a) => InfoResponse {
                local_node_state: "active".into(),
                node_id: a.record.node_id.clone(),
                cluster_id: a.record.cluster_id.clone(),
                role: match a.record.role {
                    Role::Manager => NodeRole::Manager,
                    Role::Worker => NodeRole::Worker,
                } as i32,
                managers: a.agent.managers(),
                node_addr: a.record.advertise_addr.clone(),
                session_up: a.agent.session_up(),
                certificate: shoal_manager::ca_service::validity_of(
                    &a.credentials.current().cert_pem,
                ),
                raft_key_protection: match &a.manager {
                    Some(m) if m.manager.autolocked() => "unlock key".into(),
                    Some(_) => "key file".into(),
                    None => String::new(),
                },
            },
        }
    }

    /// Stops the agent and the manager (SIGTERM). Membership stays on disk.
    pub async fn stop(&self) {
        let mut active = self.active.lock().await;
        if let Some(mut current) = active.take() {
            // Remember every manager the agent learned of, for the next start.
            let managers = current.agent.managers();
            let ids = current.agent.known_managers().ids();
            let new_addrs = !managers.is_empty() && managers != current.record.managers;
            let new_ids = !ids.is_empty() && ids != current.record.manager_ids;
            if new_addrs || new_ids {
                if new_addrs {
                    current.record.managers = managers;
                }
                if new_ids {
                    current.record.manager_ids = ids;
                }
                if let Err(e) = current.record.save(&self.config.data_dir) {
                    tracing::warn!(error = %e, "could not save the manager list");
                }
            }
            current
                .agent
                .shutdown("stopped with the shoal daemon")
                .await;
            if let Some(manager) = current.manager {
                *self.manager.write().expect("manager lock") = None;
                manager.stop().await;
            }
        }
    }

    /// Removes every trace of swarm membership from the data dir.
    fn wipe(&self) {
        let dir = &self.config.data_dir;
        if let Err(e) = MembershipRecord::remove(dir) {
            tracing::warn!(error = %e, "could not remove the membership record");
        }
        if let Err(e) = NodeCredentials::remove(dir) {
            tracing::warn!(error = %e, "could not remove the node's certificates");
        }
        for sub in ["raft", "tasks"] {
            match std::fs::remove_dir_all(dir.join(sub)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!(error = %e, "could not remove {sub}")
                }
                _ => {}
            }
        }
    }

    /// Records a membership change: the credentials, then the membership
    /// record (last: it is what `resume` trusts). On failure the caller
    /// undoes what it started.
    fn commit(
        &self,
        credentials: &NodeCredentials,
        record: &MembershipRecord,
    ) -> anyhow::Result<()> {
        credentials.save(&self.config.data_dir)?;
        record.save(&self.config.data_dir)?;
        Ok(())
    }
}

pub(super) fn rand_u64() -> u64 {
    // Raft IDs only need to differ between managers; 0 is avoided because
    // some tools treat it as "none".
    loop {
        let id: u64 = rand::random();
        if id != 0 {
            return id;
        }
    }
}
