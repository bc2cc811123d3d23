//! The running node and its membership changes.
//!
//! `swarm init`, `swarm join` and `swarm leave` each either complete or leave
//! the node exactly as it was: files are written only after every remote
//! step succeeded (the membership record last), and a failed step undoes what
//! it created. Membership changes hold one lock, so they never interleave.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use shoal_agent::{AgentConfig, AgentHandle};
use shoal_manager::ca_service::{new_node_id, DEFAULT_NODE_CERT_EXPIRY};
use shoal_manager::control::LEADER_HINT;
use shoal_manager::dispatcher::DEFAULT_HEARTBEAT_PERIOD;
use shoal_manager::raft::encryption::{self, Kek, Protection};
use shoal_manager::{Manager, ManagerConfig, RaftTiming};
use shoal_proto::v1::ca_client::CaClient;
use shoal_proto::v1::raft_client::RaftClient;
use shoal_proto::v1::{
    Cluster, ClusterSpec, DispatcherConfig, GetRootCaCertificateRequest, InfoResponse, InitRequest,
    InitResponse, IssueNodeCertificateRequest, JoinRequest, JoinResponse, JoinTokens,
    ManagerStatus, Meta, NodeAvailability, NodeDescription, NodeRole, NodeSpec, NodeState,
    NodeStatus, OrchestrationConfig,
};
use shoal_proto::v1::{JoinClusterRequest, LeaveClusterRequest, PromoteNodeRequest};
use shoal_security::files::NodeCredentials;
use shoal_security::tls::KnownManagers;
use shoal_security::{tls, JoinToken, NodeKey, RootCa, SharedCredentials};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Mutex};
use tonic::Status;

use super::state::{NodeState as MembershipRecord, Role};
use super::DaemonConfig;

/// A `swarm join` gives up after this long, well inside the 15 s an operator
/// is promised an answer in.
const JOIN_TIMEOUT: Duration = Duration::from_secs(12);
const JOIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default task history kept per slot.
const DEFAULT_TASK_HISTORY: u64 = 5;

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

pub struct Node {
    config: DaemonConfig,
    // tokio Mutex: membership changes hold it across awaits, which is what
    // serializes them.
    active: Mutex<Option<Active>>,
    // std RwLock: a quick lookup for every control call, never held across awaits.
    manager: std::sync::RwLock<Option<Arc<Manager>>>,
    /// A manager waiting for `swarm unlock`: its membership, nothing
    /// started. Taken only while `active` is held.
    locked: std::sync::Mutex<Option<MembershipRecord>>,
}

impl Node {
    pub fn new(config: DaemonConfig) -> Self {
        Node {
            config,
            active: Mutex::new(None),
            manager: std::sync::RwLock::new(None),
            locked: std::sync::Mutex::new(None),
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
    pub async fn unlock(&self, unlock_key: &str) -> Result<(), Status> {
        let mut active = self.active.lock().await;
        let Some(record) = self.locked.lock().expect("locked lock").clone() else {
            return Err(Status::failed_precondition(if active.is_some() {
                "this node is not locked: it is running"
            } else {
                "this node is not locked: it is not a manager of a swarm"
            }));
        };
        let key = Kek::parse_unlock_key(unlock_key)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        // Checked before anything starts: a wrong key changes nothing.
        encryption::RaftKeys::open(&self.raft_dir(), Some(&key))
            .map_err(|e| Status::from(shoal_manager::ManagerError::from(e)))?;
        let started = self
            .start_recorded(record, Some(key))
            .await
            .map_err(|e| Status::internal(format!("the unlocked manager did not start: {e:#}")))?;
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
                    .map_err(|s| anyhow::anyhow!(s.message().to_string()))?,
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
        shoal_agent::spawn(AgentConfig {
            data_dir: self.config.data_dir.clone(),
            node_id: record.node_id.clone(),
            hostname: self.config.hostname.clone(),
            credentials,
            managers: record.managers.clone(),
            known_managers: KnownManagers::new(record.manager_ids.iter().cloned()),
            advertise_addr: record.advertise_addr.clone(),
        })
        .await
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

    /// `swarm init`: a new cluster with this node as its only manager.
    pub async fn init(&self, request: InitRequest) -> Result<InitResponse, Status> {
        let mut active = self.active.lock().await;
        if request.force_new_cluster {
            return self.force_new_cluster(&mut active).await;
        }
        if active.is_some() {
            return Err(Status::failed_precondition(ALREADY_IN_SWARM));
        }
        if self.is_locked() {
            return Err(Status::failed_precondition(LOCKED));
        }
        let timing = RaftTiming::from_config(request.raft.as_ref());
        timing
            .validate()
            .map_err(|e| Status::invalid_argument(format!("invalid Raft timing: {e}")))?;
        let heartbeat_ms = if request.dispatcher_heartbeat_ms > 0 {
            request.dispatcher_heartbeat_ms
        } else {
            DEFAULT_HEARTBEAT_PERIOD.as_millis() as u64
        };
        // Checked before anything is created; stored in the cluster object.
        let (pools, subnet_size) = shoal_manager::network::ipam::parse_pools(
            &request.default_addr_pool,
            request.default_addr_pool_mask_length,
        )
        .map_err(Status::invalid_argument)?;
        if let Some(hooks) = &request.node_provisioning {
            shoal_manager::provisioning::settings::validate(hooks)
                .map_err(Status::invalid_argument)?;
        }
        let listen = parse_listen_addr(&request.listen_addr)?;
        let advertise = parse_advertise_addr(&request.advertise_addr, listen)?;
        let listener = bind(&listen.to_string()).await?;
        let bound = listener
            .local_addr()
            .map_err(|e| Status::internal(format!("cannot read the listening address: {e}")))?;
        let advertise = SocketAddr::new(
            advertise.ip(),
            if advertise.port() == 0 {
                bound.port()
            } else {
                advertise.port()
            },
        )
        .to_string();
        let advertise_ip = shoal_manager::ca_service::host_of(&advertise);

        let cluster_id = shoal_security::token::random_base36(25);
        let node_id = new_node_id();
        let raft_id: u64 = rand_u64();
        let internal = |e: &dyn std::fmt::Display| Status::internal(e.to_string());
        let root = RootCa::generate(&cluster_id).map_err(|e| internal(&e))?;
        let key = NodeKey::generate().map_err(|e| internal(&e))?;
        let cert_pem = root
            .sign_node_csr(
                &key.csr(&self.config.hostname).map_err(|e| internal(&e))?,
                &node_id,
                shoal_security::Role::Manager,
                &cluster_id,
                DEFAULT_NODE_CERT_EXPIRY,
            )
            .map_err(|e| internal(&e))?;
        let credentials = NodeCredentials {
            ca_pem: root.cert_pem.clone(),
            cert_pem,
            key_pem: key.key_pem(),
        };
        let shared = SharedCredentials::new(credentials.clone());
        let digest = root.digest();
        let worker_token = JoinToken::generate(&digest).to_string();
        let unlock_key = request.autolock.then(Kek::generate);
        let now = shoal_manager::now_ms();
        let meta = Meta {
            version: 1,
            created_at_ms: now,
            updated_at_ms: now,
        };
        let cluster = Cluster {
            id: cluster_id.clone(),
            meta: Some(meta),
            spec: Some(ClusterSpec {
                name: "default".into(),
                dispatcher: Some(DispatcherConfig {
                    heartbeat_period_ms: heartbeat_ms,
                }),
                orchestration: Some(OrchestrationConfig {
                    task_history_limit: DEFAULT_TASK_HISTORY,
                }),
                node_cert_expiry_secs: DEFAULT_NODE_CERT_EXPIRY.as_secs(),
                raft: Some(timing.to_config()),
                encryption: Some(shoal_proto::v1::EncryptionConfig {
                    auto_lock_managers: unlock_key.is_some(),
                }),
                node_provisioning: request.node_provisioning.clone(),
                // Bind mounts from anywhere, as Docker, until restricted.
                mounts: None,
            }),
            root_ca: Some(shoal_proto::v1::RootCa {
                cert_pem: root.cert_pem.clone(),
                key_pem: root.key_pem.clone(),
                digest: digest.clone(),
            }),
            join_tokens: Some(JoinTokens {
                worker: worker_token.clone(),
                manager: JoinToken::generate(&digest).to_string(),
            }),
            removed_nodes: Vec::new(),
            unlock_key: unlock_key
                .as_ref()
                .map(Kek::to_unlock_key)
                .unwrap_or_default(),
            root_rotation: None,
            default_address_pool: pools.iter().map(|p| p.to_string()).collect(),
            subnet_size: subnet_size as u32,
            provisioning_status: None,
        };
        let node = shoal_proto::v1::Node {
            id: node_id.clone(),
            meta: Some(meta),
            spec: Some(NodeSpec {
                desired_role: NodeRole::Manager as i32,
                availability: NodeAvailability::Active as i32,
                labels: Default::default(),
            }),
            role: NodeRole::Manager as i32,
            description: Some(NodeDescription {
                hostname: self.config.hostname.clone(),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                state: NodeState::Unknown as i32,
                message: String::new(),
                addr: advertise_ip.clone(),
                ..Default::default()
            }),
            manager_status: Some(ManagerStatus {
                raft_id,
                addr: advertise.clone(),
                ..Default::default()
            }),
            certificate: shoal_manager::ca_service::certificate_record(
                &credentials.cert_pem,
                &digest,
            ),
        };
        let record = MembershipRecord {
            node_id: node_id.clone(),
            cluster_id: cluster_id.clone(),
            role: Role::Manager,
            raft_id: Some(raft_id),
            listen_addr: Some(bound.to_string()),
            advertise_addr: advertise.clone(),
            managers: vec![advertise.clone()],
            manager_ids: vec![node_id.clone()],
            raft: Some(timing.to_config()),
        };

        // With --autolock the new store is wrapped by the unlock key from
        // its first byte: no key that opens it is ever written here.
        let manager_config = self
            .manager_config(&record, &shared, unlock_key.clone(), BTreeMap::new())
            .map_err(|e| internal(&e))?;
        let manager = Manager::open(manager_config).await.map_err(Status::from)?;
        if let Err(e) = manager.bootstrap(cluster, node).await {
            manager.shutdown().await;
            drop(manager);
            self.wipe();
            return Err(Status::internal(format!("could not create the swarm: {e}")));
        }
        let saved = credentials
            .save(&self.config.data_dir)
            .map_err(|e| e.to_string())
            .and_then(|_| {
                record
                    .save(&self.config.data_dir)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = saved {
            manager.shutdown().await;
            drop(manager);
            self.wipe();
            return Err(Status::internal(format!(
                "could not record the new swarm: {e}"
            )));
        }
        let running = self.serve_manager(manager, listener);
        let agent = self.spawn_agent(&record, shared.clone()).await;
        *active = Some(Active {
            record,
            credentials: shared,
            manager: Some(running),
            agent,
        });
        tracing::info!(node = %node_id, cluster = %cluster_id, addr = %advertise, "swarm initialized");
        Ok(InitResponse {
            node_id,
            cluster_id,
            worker_token,
            manager_addr: advertise,
            unlock_key: unlock_key
                .as_ref()
                .map(Kek::to_unlock_key)
                .unwrap_or_default(),
        })
    }

    /// Follows `node promote` / `node demote`: the swarm says (over the
    /// agent's session) which role it wants this node in, and the daemon
    /// changes what it runs to match. Level-triggered: checked every half
    /// second, a failed attempt is tried again.
    pub async fn follow_desired_role(self: Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut active = self.active.lock().await;
            let Some(current) = active.as_mut() else {
                continue;
            };
            let desired = current.agent.desired_role();
            let result = match (current.record.role, desired) {
                (Role::Worker, Some(NodeRole::Manager)) => self.become_manager(current).await,
                (Role::Manager, Some(NodeRole::Worker)) if current.manager.is_some() => {
                    self.become_worker(current).await
                }
                _ => Ok(()),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e.message(), "could not change this node's role; retrying");
            }
        }
    }

    /// Promotion: listen, get a manager certificate, join the Raft group.
    async fn become_manager(&self, current: &mut Active) -> Result<(), Status> {
        let ip = current
            .record
            .advertise_addr
            .parse::<SocketAddr>()
            .map(|a| a.ip())
            .or_else(|_| current.record.advertise_addr.parse::<IpAddr>())
            .ok()
            .or_else(|| {
                current
                    .agent
                    .managers()
                    .first()
                    .and_then(|m| advertise_ip("", SocketAddr::from(([0, 0, 0, 0], 0)), m))
            })
            .ok_or_else(|| Status::failed_precondition("cannot tell which address to listen on"))?;
        let listener = match bind(&SocketAddr::new(ip, Manager::DEFAULT_PORT).to_string()).await {
            Ok(listener) => listener,
            Err(_) => bind(&SocketAddr::new(ip, 0).to_string()).await?,
        };
        let bound = listener
            .local_addr()
            .map_err(|e| Status::internal(e.to_string()))?;
        let raft_id = rand_u64();
        let key = NodeKey::generate().map_err(|e| Status::internal(e.to_string()))?;
        let csr = key
            .csr(&self.config.hostname)
            .map_err(|e| Status::internal(e.to_string()))?;
        let old_credentials = (*current.credentials.current()).clone();
        let first = current
            .agent
            .managers()
            .first()
            .cloned()
            .ok_or_else(|| Status::unavailable("no manager known"))?;
        let (response, target) = call_leader(&first, &old_credentials, |channel| {
            let request = PromoteNodeRequest {
                csr_pem: csr.clone(),
                raft_id,
                advertise_addr: bound.to_string(),
            };
            async move {
                CaClient::new(channel)
                    .promote_node(request)
                    .await
                    .map(tonic::Response::into_inner)
            }
        })
        .await?;
        let credentials = NodeCredentials {
            ca_pem: trusted_bundle(&old_credentials.ca_pem, &response.trust_bundle_pem),
            cert_pem: response.cert_pem.clone(),
            key_pem: key.key_pem(),
        };
        let mut record = current.record.clone();
        record.manager_ids = response
            .manager_members
            .iter()
            .map(|m| m.node_id.clone())
            .collect();
        record.role = Role::Manager;
        record.raft_id = Some(raft_id);
        record.listen_addr = Some(bound.to_string());
        record.advertise_addr = bound.to_string();
        record.raft = response.raft;
        // The manager serves, and the agent connects with, the manager
        // certificate from here on; a failed join goes back to the old one.
        current.credentials.replace(credentials.clone());
        let joined = self
            .join_raft(
                &record,
                &current.credentials,
                listener,
                &target,
                founding_managers(&response.manager_members),
            )
            .await;
        let (running, managers) = match joined {
            Ok(joined) => joined,
            Err(e) => {
                current.credentials.replace(old_credentials);
                return Err(e);
            }
        };
        record.managers = managers;
        let saved = credentials
            .save(&self.config.data_dir)
            .map_err(|e| e.to_string())
            .and_then(|_| {
                record
                    .save(&self.config.data_dir)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = saved {
            *self.manager.write().expect("manager lock") = None;
            running.stop().await;
            current.credentials.replace(old_credentials);
            let _ = std::fs::remove_dir_all(self.config.data_dir.join("raft"));
            return Err(Status::internal(format!(
                "could not record the promotion: {e}"
            )));
        }
        current.record = record;
        current.manager = Some(running);
        tracing::info!("this node was promoted: it is now a manager");
        Ok(())
    }

    /// Demotion: the leader already removed this manager from the group;
    /// stop it and go on as a worker.
    async fn become_worker(&self, current: &mut Active) -> Result<(), Status> {
        if let Some(running) = current.manager.take() {
            *self.manager.write().expect("manager lock") = None;
            running.stop().await;
        }
        let _ = std::fs::remove_dir_all(self.config.data_dir.join("raft"));
        let own = current.record.advertise_addr.clone();
        current.record.role = Role::Worker;
        current.record.raft_id = None;
        current.record.listen_addr = None;
        current.record.managers = current
            .agent
            .managers()
            .into_iter()
            .filter(|m| *m != own)
            .collect();
        let own_id = current.record.node_id.clone();
        current.record.manager_ids = current
            .agent
            .known_managers()
            .ids()
            .into_iter()
            .filter(|id| *id != own_id)
            .collect();
        current
            .record
            .save(&self.config.data_dir)
            .map_err(|e| Status::internal(e.to_string()))?;
        tracing::info!("this node was demoted: it is now a worker");
        Ok(())
    }

    /// `swarm init --force-new-cluster`: on a manager whose Raft group lost
    /// its quorum, start a new group with this manager alone, keeping the
    /// cluster's state (services, tasks, nodes, tokens, CA).
    async fn force_new_cluster(&self, active: &mut Option<Active>) -> Result<InitResponse, Status> {
        let Some(current) = active.take() else {
            return Err(Status::failed_precondition(
                "--force-new-cluster needs a node that was a manager of a swarm: this node is in none",
            ));
        };
        if current.record.role != Role::Manager || current.manager.is_none() {
            *active = Some(current);
            return Err(Status::failed_precondition(
                "--force-new-cluster must run on a manager: this node is a worker",
            ));
        }
        let Active {
            mut record,
            credentials,
            manager,
            agent,
        } = current;
        let running = manager.expect("checked above");
        let state = running.manager.store().read(Clone::clone);
        // The new store is wrapped as the swarm's autolock setting says from the start.
        let unlock_key = match state.cluster.as_ref().map(encryption::wanted_protection) {
            Some(Protection::UnlockKey(key)) => Some(key),
            _ => None,
        };
        agent
            .shutdown("the swarm is being rebuilt with --force-new-cluster")
            .await;
        *self.manager.write().expect("manager lock") = None;
        running.stop().await;
        let listen = record.listen_addr.clone().unwrap_or_default();
        let restart = async {
            let listener = bind(&listen).await?;
            let config = self
                .manager_config(&record, &credentials, unlock_key.clone(), BTreeMap::new())
                .map_err(|e| Status::internal(e.to_string()))?;
            let manager = Manager::force_new_cluster(config, state)
                .await
                .map_err(Status::from)?;
            Ok::<_, Status>((manager, listener))
        }
        .await;
        let (manager, listener) = match restart {
            Ok(ok) => ok,
            Err(e) => {
                // Bring the node back as it was, so nothing is lost.
                let resumed = self
                    .start(
                        record.clone(),
                        credentials,
                        bind(&listen).await.ok(),
                        unlock_key,
                    )
                    .await
                    .map_err(|e| Status::internal(e.to_string()));
                if let Ok(resumed) = resumed {
                    *active = Some(resumed);
                }
                return Err(e);
            }
        };
        record.managers = vec![record.advertise_addr.clone()];
        record
            .save(&self.config.data_dir)
            .map_err(|e| Status::internal(e.to_string()))?;
        let cluster = manager
            .store()
            .read(|s| s.cluster.clone())
            .unwrap_or_default();
        let running = self.serve_manager(manager, listener);
        let agent = self.spawn_agent(&record, credentials.clone()).await;
        let response = InitResponse {
            node_id: record.node_id.clone(),
            cluster_id: record.cluster_id.clone(),
            worker_token: cluster.join_tokens.unwrap_or_default().worker,
            manager_addr: record.advertise_addr.clone(),
            unlock_key: String::new(),
        };
        *active = Some(Active {
            record,
            credentials,
            manager: Some(running),
            agent,
        });
        tracing::warn!("the swarm was rebuilt around this manager (--force-new-cluster)");
        Ok(response)
    }

    /// `swarm join`: verify the manager's CA against the token, get a
    /// certificate (the token decides the role), then run the agent — and,
    /// for a manager token, join the Raft group first.
    pub async fn join(&self, request: JoinRequest) -> Result<JoinResponse, Status> {
        let mut active = self.active.lock().await;
        if active.is_some() {
            return Err(Status::failed_precondition(ALREADY_IN_SWARM));
        }
        if self.is_locked() {
            return Err(Status::failed_precondition(LOCKED));
        }
        let token = JoinToken::parse(&request.token)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let remote = normalize_remote_addr(&request.remote_addr)?;
        if !request.advertise_addr.is_empty()
            && request.advertise_addr.parse::<SocketAddr>().is_err()
            && request.advertise_addr.parse::<IpAddr>().is_err()
        {
            return Err(Status::invalid_argument(format!(
                "invalid --advertise-addr {:?}: expected IP[:PORT], e.g. 192.168.1.10",
                request.advertise_addr
            )));
        }
        // The token alone does not say whether it makes a manager, and a
        // manager must announce the address it listens on: bind first. A
        // worker needs no listener, so a busy port only matters for managers.
        let listen = parse_listen_addr(&request.listen_addr)?;
        let bound = bind(&listen.to_string()).await;
        let (listener, advertise, bind_error) = match bound {
            Ok(listener) => {
                let port = listener
                    .local_addr()
                    .map(|a| a.port())
                    .unwrap_or(listen.port());
                let ip = advertise_ip(&request.advertise_addr, listen, &remote);
                (
                    Some(listener),
                    ip.map(|ip| SocketAddr::new(ip, port).to_string()),
                    None,
                )
            }
            Err(e) => (None, None, Some(e)),
        };
        let raft_id = rand_u64();
        let attempt = JoinAttempt {
            token: &token,
            remote: &remote,
            advertise_addr: advertise
                .clone()
                .unwrap_or_else(|| request.advertise_addr.clone()),
            // Without a listener this node cannot be a manager: sending no
            // Raft ID makes the CA refuse a manager token before writing anything.
            raft_id: if listener.is_some() { raft_id } else { 0 },
        };
        let issued = tokio::time::timeout(JOIN_TIMEOUT, self.fetch_certificate(&attempt))
            .await
            .map_err(|_| {
                Status::deadline_exceeded(format!(
                    "the manager at {remote} did not answer within {} s: check the address and that \
                     a shoal manager listens there",
                    JOIN_TIMEOUT.as_secs()
                ))
            })?;
        let (credentials, response) = match (issued, bind_error) {
            (Ok(issued), _) => issued,
            (Err(status), Some(bind_error)) if status.code() == tonic::Code::InvalidArgument => {
                return Err(Status::failed_precondition(format!(
                    "{} (a manager token needs a listening address)",
                    bind_error.message()
                )))
            }
            (Err(status), _) => return Err(status),
        };

        let managers = if response.managers.is_empty() {
            vec![remote.clone()]
        } else {
            response.managers.clone()
        };
        let role = response.role();
        let mut record = MembershipRecord {
            node_id: response.node_id.clone(),
            cluster_id: response.cluster_id.clone(),
            role: Role::Worker,
            raft_id: None,
            listen_addr: None,
            advertise_addr: request.advertise_addr.clone(),
            managers,
            manager_ids: response
                .manager_members
                .iter()
                .map(|m| m.node_id.clone())
                .collect(),
            raft: None,
        };
        let shared = SharedCredentials::new(credentials.clone());
        let mut running_manager = None;
        if role == NodeRole::Manager {
            let (Some(listener), Some(advertise)) = (listener, advertise) else {
                // Unreachable: without both the CA refuses a manager token.
                return Err(Status::internal(
                    "a manager certificate was issued to a node without a listener",
                ));
            };
            record.role = Role::Manager;
            record.raft_id = Some(raft_id);
            record.listen_addr = listener.local_addr().ok().map(|a| a.to_string());
            record.advertise_addr = advertise.clone();
            record.raft = response.raft;
            let founding = founding_managers(&response.manager_members);
            match self
                .join_raft(&record, &shared, listener, &remote, founding)
                .await
            {
                Ok((running, managers)) => {
                    record.managers = managers;
                    running_manager = Some(running);
                }
                Err(e) => {
                    self.wipe();
                    return Err(e);
                }
            }
        }
        let saved = credentials
            .save(&self.config.data_dir)
            .map_err(|e| e.to_string())
            .and_then(|_| {
                record
                    .save(&self.config.data_dir)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = saved {
            if let Some(running) = running_manager {
                *self.manager.write().expect("manager lock") = None;
                running.stop().await;
            }
            self.wipe();
            return Err(Status::internal(format!(
                "could not record the swarm membership: {e}"
            )));
        }
        let agent = self.spawn_agent(&record, shared.clone()).await;
        *active = Some(Active {
            record,
            credentials: shared,
            manager: running_manager,
            agent,
        });
        tracing::info!(node = %response.node_id, role = ?role, "joined the swarm");
        Ok(JoinResponse {
            node_id: response.node_id,
            role: role as i32,
        })
    }

    /// Starts this node's manager on `listener` and asks the leader to add it
    /// to the Raft group; on failure the manager is stopped again.
    async fn join_raft(
        &self,
        record: &MembershipRecord,
        credentials: &SharedCredentials,
        listener: TcpListener,
        remote: &str,
        founding: BTreeMap<String, u64>,
    ) -> Result<(RunningManager, Vec<String>), Status> {
        // A joining manager's store starts under a key-file KEK; its key
        // follower re-wraps it with the unlock key once the cluster object
        // arrives, if autolock is on.
        let config = self
            .manager_config(record, credentials, None, founding)
            .map_err(|e| Status::internal(e.to_string()))?;
        let manager = Manager::open(config).await.map_err(Status::from)?;
        let running = self.serve_manager(manager, listener);
        let joined = self
            .ask_leader_to_join(
                &credentials.current(),
                remote,
                record.raft_id.unwrap_or_default(),
                &record.advertise_addr,
            )
            .await;
        match joined {
            Ok(managers) => Ok((running, managers)),
            Err(e) => {
                *self.manager.write().expect("manager lock") = None;
                running.stop().await;
                Err(e)
            }
        }
    }

    async fn ask_leader_to_join(
        &self,
        credentials: &NodeCredentials,
        remote: &str,
        raft_id: u64,
        advertise: &str,
    ) -> Result<Vec<String>, Status> {
        let (managers, _) = call_leader(remote, credentials, |channel| {
            let request = JoinClusterRequest {
                raft_id,
                addr: advertise.to_string(),
            };
            async move {
                RaftClient::new(channel)
                    .join_cluster(request)
                    .await
                    .map(|reply| reply.into_inner().managers)
            }
        })
        .await?;
        Ok(if managers.is_empty() {
            vec![advertise.to_string()]
        } else {
            managers
        })
    }

    async fn fetch_certificate(
        &self,
        attempt: &JoinAttempt<'_>,
    ) -> Result<
        (
            NodeCredentials,
            shoal_proto::v1::IssueNodeCertificateResponse,
        ),
        Status,
    > {
        let (token, remote) = (attempt.token, attempt.remote);
        let unreachable = |e: &dyn std::fmt::Display| {
            Status::unavailable(format!(
                "cannot reach a shoal manager at {remote}: {e}: check the address and that the manager is running"
            ))
        };
        // First contact trusts nothing: fetch the CA, then check its digest.
        let channel = tls::unverified_channel(remote, JOIN_CONNECT_TIMEOUT)
            .await
            .map_err(|e| unreachable(&shoal_security::tls::error_chain(&e)))?;
        let ca_pem = CaClient::new(channel)
            .get_root_ca_certificate(GetRootCaCertificateRequest {})
            .await
            .map_err(|s| unreachable(&s.message()))?
            .into_inner()
            .cert_pem;
        let digest = shoal_security::ca::digest_of_pem(&ca_pem).map_err(|e| {
            Status::failed_precondition(format!(
                "the manager at {remote} sent an unreadable CA: {e}"
            ))
        })?;
        if digest != token.ca_digest {
            return Err(Status::permission_denied(format!(
                "the manager at {remote} does not hold the CA this token was issued for \
                 (token expects CA digest {}…, manager has {}…): the token belongs to another \
                 swarm, was replaced by `shoal swarm ca --rotate` (get the current one with \
                 `shoal swarm join-token`), or something between you and the manager is \
                 impersonating it",
                &token.ca_digest[..12],
                &digest[..12]
            )));
        }
        // From here on the manager is authenticated by the CA the token names.
        let key = NodeKey::generate().map_err(|e| Status::internal(e.to_string()))?;
        let csr = key
            .csr(&self.config.hostname)
            .map_err(|e| Status::internal(e.to_string()))?;
        let endpoint = tls::endpoint(remote, JOIN_CONNECT_TIMEOUT)
            .map_err(|e| Status::invalid_argument(e.to_string()))?
            .tls_config(tls::ca_only_client_config(&ca_pem))
            .map_err(|e| Status::internal(e.to_string()))?;
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| unreachable(&shoal_security::tls::error_chain(&e)))?;
        let response = CaClient::new(channel)
            .issue_node_certificate(IssueNodeCertificateRequest {
                csr_pem: csr,
                token: token.to_string(),
                hostname: self.config.hostname.clone(),
                advertise_addr: attempt.advertise_addr.clone(),
                raft_id: attempt.raft_id,
            })
            .await?
            .into_inner();
        Ok((
            NodeCredentials {
                // The bundle came over a connection verified against the
                // root the token names; it adds the previous root during
                // a rotation.
                ca_pem: trusted_bundle(&ca_pem, &response.trust_bundle_pem),
                cert_pem: response.cert_pem.clone(),
                key_pem: key.key_pem(),
            },
            response,
        ))
    }

    /// `swarm leave`.
    pub async fn leave(&self, force: bool) -> Result<(), Status> {
        let mut active = self.active.lock().await;
        if active.is_none() && self.is_locked() {
            if !force {
                return Err(Status::failed_precondition(format!(
                    "{LOCKED} Leaving without unlocking needs --force: this manager's copy of the \
                     swarm's state is deleted, and the other managers keep listing it until `node rm`."
                )));
            }
            *self.locked.lock().expect("locked lock") = None;
            self.wipe();
            tracing::info!("a locked manager left the swarm (--force)");
            return Ok(());
        }
        let Some(current) = active.as_ref() else {
            return Err(Status::failed_precondition(NOT_IN_SWARM));
        };
        if current.record.role == Role::Manager {
            let manager = current.manager.as_ref().map(|m| m.manager.clone());
            let voters = manager
                .as_ref()
                .map(|m| m.quorum().voters.len())
                .unwrap_or(1);
            if voters <= 1 && !force {
                return Err(Status::failed_precondition(
                    "You are attempting to leave the swarm on a node that is participating as a manager. \
                     Removing the last manager erases all current state of the swarm. \
                     Use `--force` to ignore this message.",
                ));
            }
            if voters > 1 {
                if !force {
                    return Err(Status::failed_precondition(format!(
                        "You are attempting to leave the swarm on a node that is participating as a manager \
                         ({voters} managers). Demote it first with `shoal node demote`, or use `--force` \
                         to remove it from the Raft group as it leaves."
                    )));
                }
                if let Some(manager) = manager {
                    let raft_id = current.record.raft_id.unwrap_or_default();
                    let mut leader = manager.leader_raft().await.map_err(Status::from)?;
                    leader
                        .leave_cluster(LeaveClusterRequest {
                            raft_id,
                            force: true,
                        })
                        .await?;
                }
            }
        }
        let current = active.take().expect("checked above");
        current.agent.shutdown("the node left the swarm").await;
        current.agent.cleanup_overlay().await;
        if let Some(manager) = current.manager {
            *self.manager.write().expect("manager lock") = None;
            manager.stop().await;
        }
        self.wipe();
        tracing::info!(node = %current.record.node_id, "left the swarm");
        Ok(())
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
}

/// The roots to trust after a certificate answer: the bundle it carried if
/// it holds the root this node verified (`verified_pem`), else that root.
/// A manager of an older release sends no bundle.
fn trusted_bundle(verified_pem: &str, bundle_pem: &str) -> String {
    let verified = shoal_security::ca::split_pem(verified_pem);
    let bundle = shoal_security::ca::split_pem(bundle_pem);
    if !bundle.is_empty() && verified.iter().any(|root| bundle.contains(root)) {
        bundle_pem.to_string()
    } else {
        verified_pem.to_string()
    }
}

/// The managers a join response named, as a new manager admits them
/// before it has state.
fn founding_managers(members: &[shoal_proto::v1::ManagerMember]) -> BTreeMap<String, u64> {
    members
        .iter()
        .map(|m| (m.node_id.clone(), m.raft_id))
        .collect()
}

/// What a join sends to the CA.
struct JoinAttempt<'a> {
    token: &'a JoinToken,
    remote: &'a str,
    advertise_addr: String,
    raft_id: u64,
}

/// The IP a joining node advertises: `--advertise-addr`, else a specific
/// listen IP, else the local address that routes to the manager (found by
/// connecting a UDP socket, which sends nothing).
fn advertise_ip(flag: &str, listen: SocketAddr, remote: &str) -> Option<IpAddr> {
    if let Ok(addr) = flag.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    if let Ok(ip) = flag.parse::<IpAddr>() {
        return Some(ip);
    }
    if !listen.ip().is_unspecified() {
        return Some(listen.ip());
    }
    let socket = std::net::UdpSocket::bind(("0.0.0.0", 0)).ok()?;
    socket.connect(remote).ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}

fn rand_u64() -> u64 {
    // Raft IDs only need to differ between managers; 0 is avoided because
    // some tools treat it as "none".
    loop {
        let id: u64 = rand::random();
        if id != 0 {
            return id;
        }
    }
}

async fn bind(addr: &str) -> Result<TcpListener, Status> {
    TcpListener::bind(addr).await.map_err(|e| {
        Status::failed_precondition(format!(
            "cannot listen on {addr}: {e}: choose another address with --listen-addr"
        ))
    })
}

/// `--listen-addr`: `IP:PORT` or `IP`; default `0.0.0.0:2377`.
pub fn parse_listen_addr(text: &str) -> Result<SocketAddr, Status> {
    if text.is_empty() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], Manager::DEFAULT_PORT)));
    }
    Manager::parse_addr(text).ok_or_else(|| {
        Status::invalid_argument(format!(
            "invalid --listen-addr {text:?}: expected IP[:PORT], e.g. 0.0.0.0:2377"
        ))
    })
}

/// `--advertise-addr`: `IP[:PORT]`; the port defaults to the listen port
/// (0 here means "the port actually bound"). Without it, the listen IP is
/// advertised when it is a specific address.
pub fn parse_advertise_addr(text: &str, listen: SocketAddr) -> Result<SocketAddr, Status> {
    if text.is_empty() {
        if listen.ip().is_unspecified() {
            return Err(Status::invalid_argument(
                "could not choose an IP address to advertise: the node listens on all addresses; \
                 specify one with --advertise-addr",
            ));
        }
        return Ok(listen);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, listen.port()))
        .map_err(|_| {
            Status::invalid_argument(format!(
                "invalid --advertise-addr {text:?}: expected IP[:PORT], e.g. 192.168.1.10"
            ))
        })
}

/// A manager address for `swarm join`: `HOST:PORT` or `HOST` (port 2377).
pub fn normalize_remote_addr(text: &str) -> Result<String, Status> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Status::invalid_argument(
            "a manager address is required: shoal swarm join --token TOKEN HOST[:PORT]",
        ));
    }
    if text.parse::<SocketAddr>().is_ok() {
        return Ok(text.to_string());
    }
    if text.parse::<IpAddr>().is_ok() {
        return Ok(
            SocketAddr::new(text.parse().expect("checked"), Manager::DEFAULT_PORT).to_string(),
        );
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(text.to_string())
        }
        Some(_) => Err(Status::invalid_argument(format!(
            "invalid manager address {text:?}: expected HOST[:PORT], e.g. 10.0.0.1:2377"
        ))),
        None => Ok(format!("{text}:{}", Manager::DEFAULT_PORT)),
    }
}

/// Calls a manager, starting with the one at `first`, and while the answer
/// is "not the leader" with a hint, calls the leader it names (at most five
/// hops: leadership may move while we follow it). Returns the answer and
/// the address of the manager that gave it.
async fn call_leader<T, F, Fut>(
    first: &str,
    credentials: &NodeCredentials,
    mut call: F,
) -> Result<(T, String), Status>
where
    F: FnMut(tonic::transport::Channel) -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    let mut target = first.to_string();
    for _ in 0..5 {
        let channel = tls::endpoint(&target, JOIN_CONNECT_TIMEOUT)
            .map_err(|e| Status::invalid_argument(e.to_string()))?
            .tls_config(tls::client_config(credentials))
            .map_err(|e| Status::internal(e.to_string()))?
            .connect()
            .await
            .map_err(|e| {
                Status::unavailable(format!("cannot reach the manager at {target}: {e}"))
            })?;
        match call(channel).await {
            Ok(value) => return Ok((value, target)),
            Err(status) if status.code() == tonic::Code::Unavailable => {
                match status
                    .metadata()
                    .get(LEADER_HINT)
                    .and_then(|v| v.to_str().ok())
                {
                    Some(leader) => target = leader.to_string(),
                    None => return Err(status),
                }
            }
            Err(status) => return Err(status),
        }
    }
    Err(Status::unavailable(
        "the leader kept changing while we followed it: retry",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_their_ports_like_docker() {
        assert_eq!(parse_listen_addr("").unwrap().to_string(), "0.0.0.0:2377");
        assert_eq!(
            parse_listen_addr("127.0.0.2").unwrap().to_string(),
            "127.0.0.2:2377"
        );
        assert!(parse_listen_addr("nonsense").is_err());
        let listen = parse_listen_addr("127.0.0.2:0").unwrap();
        assert_eq!(parse_advertise_addr("", listen).unwrap(), listen);
        assert_eq!(
            parse_advertise_addr("10.0.0.1", parse_listen_addr("").unwrap())
                .unwrap()
                .to_string(),
            "10.0.0.1:2377"
        );
        assert!(parse_advertise_addr("", parse_listen_addr("").unwrap()).is_err());
        assert_eq!(
            normalize_remote_addr("127.0.0.1").unwrap(),
            "127.0.0.1:2377"
        );
        assert_eq!(normalize_remote_addr("mgr:4000").unwrap(), "mgr:4000");
        assert_eq!(normalize_remote_addr("mgr").unwrap(), "mgr:2377");
        assert!(normalize_remote_addr("mgr:port").is_err());
        assert!(normalize_remote_addr("").is_err());
    }
}
