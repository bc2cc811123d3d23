//! The scale simulator (kubemark's idea): thousands of agents in one
//! process, each joined through the real join flow (the CA's
//! `IssueNodeCertificate` with the worker token and its own key and CSR),
//! each holding its own mutual-TLS session with the real manager daemons —
//! and each running the agent's own session, worker and reporting code
//! ([`shoal_agent::session::spawn_with`]). Only the executor is fake: its
//! tasks "start" after a configurable latency, fail at a configurable rate,
//! and are recorded in a [`Ledger`] so that a run can check that every task
//! runs exactly once.
//!
//! Used by the cluster suite's `scale` test (small) and by
//! `e2e/benches/scale.rs` (figures).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_agent::executor::{Adopted, Controller, Executor, ExecutorError, Exit, RecordedExit};
use shoal_agent::{AgentConfig, AgentHandle};
use shoal_proto::v1::ca_client::CaClient;
use shoal_proto::v1::{GetRootCaCertificateRequest, IssueNodeCertificateRequest, Task};
use shoal_security::files::NodeCredentials;
use shoal_security::tls::{self, KnownManagers};
use shoal_security::token::JoinToken;
use shoal_security::{NodeKey, SharedCredentials};

/// How simulated tasks behave.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// How long a task takes to start.
    pub start_latency: Duration,
    /// The share of starts that fail (decided per task ID, so a rerun of
    /// the same IDs fails the same ones).
    pub failure_rate: f64,
}

/// What ran where: every start and stop the fake executors saw.
///
/// Its checks are kept up to date as tasks start and stop, so a poll costs
/// nothing like the 100,000 running tasks it watches: the fake executors
/// take this lock on every start and stop, and a poll that walked every
/// task under it (tens of milliseconds at 100,000, ten times a second)
/// held the simulated agents' runtime threads back, heartbeats included.
#[derive(Default)]
pub struct Ledger {
    inner: Mutex<LedgerInner>,
}

/// Where a task runs.
struct Running {
    node: String,
    slot: (String, u64),
    spec_version: u64,
}

#[derive(Default)]
struct LedgerInner {
    /// Starts per task ID.
    starts: HashMap<String, u32>,
    /// Tasks started more than once (a problem whatever came after).
    restarted: BTreeMap<String, u32>,
    /// Running tasks by ID (on live and dead nodes).
    running: HashMap<String, Running>,
    /// Nodes killed by the run: their tasks no longer count as running.
    dead: HashSet<String>,
    /// Running tasks on live nodes, per slot, and the slots where that is
    /// more than one.
    live_per_slot: HashMap<(String, u64), u32>,
    crowded: BTreeSet<(String, u64)>,
    /// Running tasks on live nodes, per spec version.
    live_per_version: BTreeMap<u64, usize>,
    live: usize,
}

impl LedgerInner {
    /// Counts `task` in (`+1`) or out (`-1`) of the live figures.
    fn count(&mut self, slot: &(String, u64), spec_version: u64, delta: i64) {
        let n = self.live_per_slot.entry(slot.clone()).or_default();
        *n = (*n as i64 + delta) as u32;
        if *n > 1 {
            self.crowded.insert(slot.clone());
        } else {
            self.crowded.remove(slot);
        }
        let v = self.live_per_version.entry(spec_version).or_default();
        *v = (*v as i64 + delta) as usize;
        if *v == 0 {
            self.live_per_version.remove(&spec_version);
        }
        self.live = (self.live as i64 + delta) as usize;
    }
}

impl Ledger {
    fn started(&self, task: &Task, node: &str) {
        let mut inner = self.inner.lock().unwrap();
        let starts = inner.starts.entry(task.id.clone()).or_default();
        *starts += 1;
        let starts = *starts;
        if starts > 1 {
            inner.restarted.insert(task.id.clone(), starts);
        }
        let slot = (task.service_id.clone(), task.slot);
        if !inner.dead.contains(node) {
            inner.count(&slot, task.spec_version, 1);
        }
        let running = Running {
            node: node.to_string(),
            slot,
            spec_version: task.spec_version,
        };
        if let Some(old) = inner.running.insert(task.id.clone(), running) {
            // The same task started again while running: counted once.
            if !inner.dead.contains(&old.node) {
                inner.count(&old.slot, old.spec_version, -1);
            }
        }
    }

    fn stopped(&self, task_id: &str) {
        let mut inner = self.inner.lock().unwrap();
        if let Some(old) = inner.running.remove(task_id) {
            if !inner.dead.contains(&old.node) {
                inner.count(&old.slot, old.spec_version, -1);
            }
        }
    }

    /// Tasks running on nodes that are alive.
    pub fn running(&self) -> usize {
        self.inner.lock().unwrap().live
    }

    /// The IDs of the tasks running on nodes that are alive.
    pub fn running_ids(&self) -> HashSet<String> {
        let inner = self.inner.lock().unwrap();
        inner
            .running
            .iter()
            .filter(|(_, r)| !inner.dead.contains(&r.node))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The lowest and highest spec version among the tasks running on
    /// live nodes (a rolling update is done when the lowest is the new one).
    // Used by the scale bench's rolling update, not by the cluster suite.
    #[allow(dead_code)]
    pub fn live_versions(&self) -> Option<(u64, u64)> {
        let inner = self.inner.lock().unwrap();
        let low = *inner.live_per_version.keys().next()?;
        let high = *inner.live_per_version.keys().next_back()?;
        Some((low, high))
    }

    /// The running tasks on `node`.
    pub fn running_on(&self, node: &str) -> Vec<String> {
        let inner = self.inner.lock().unwrap();
        inner
            .running
            .iter()
            .filter(|(_, r)| r.node == node)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Marks `node` dead: its tasks stop counting.
    pub fn kill(&self, node: &str) {
        let mut inner = self.inner.lock().unwrap();
        if !inner.dead.insert(node.to_string()) {
            return;
        }
        let lost: Vec<((String, u64), u64)> = inner
            .running
            .values()
            .filter(|r| r.node == node)
            .map(|r| (r.slot.clone(), r.spec_version))
            .collect();
        for (slot, version) in lost {
            inner.count(&slot, version, -1);
        }
    }

    /// Problems with "every task runs exactly once": a task started twice,
    /// or a slot with two running tasks on live nodes.
    pub fn duplicates(&self) -> Vec<String> {
        let inner = self.inner.lock().unwrap();
        let mut problems: Vec<String> = inner
            .restarted
            .iter()
            .map(|(id, n)| format!("task {id} started {n} times"))
            .collect();
        problems.extend(inner.crowded.iter().map(|(service, slot)| {
            let n = inner.live_per_slot.get(&(service.clone(), *slot)).copied();
            format!("slot {service}.{slot} runs {} tasks", n.unwrap_or(0))
        }));
        problems
    }
}

/// An executor whose tasks only pretend to run (runtime "process", so the
/// scheduler places process services on simulated nodes).
struct FakeExecutor {
    node: String,
    behaviour: Behaviour,
    ledger: Arc<Ledger>,
}

struct FakeController {
    task: Task,
    node: String,
    behaviour: Behaviour,
    ledger: Arc<Ledger>,
    started: bool,
}

fn fails(task_id: &str, rate: f64) -> bool {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    task_id.hash(&mut hasher);
    (hasher.finish() % 1_000_000) as f64 / 1_000_000.0 < rate
}

#[tonic::async_trait]
impl Executor for FakeExecutor {
    fn runtime(&self) -> &'static str {
        "process"
    }

    fn controller(&self, task: &Task) -> Box<dyn Controller> {
        Box::new(FakeController {
            task: task.clone(),
            node: self.node.clone(),
            behaviour: self.behaviour,
            ledger: self.ledger.clone(),
            started: false,
        })
    }

    async fn adopt(&self) -> Vec<Adopted> {
        Vec::new()
    }

    async fn recorded_exits(&self) -> Vec<(String, RecordedExit)> {
        Vec::new()
    }

    async fn remove(&self, _task_id: &str) {}
}

#[tonic::async_trait]
impl Controller for FakeController {
    async fn prepare(&mut self) -> Result<(), ExecutorError> {
        Ok(())
    }

    async fn start(&mut self) -> Result<(), ExecutorError> {
        tokio::time::sleep(self.behaviour.start_latency).await;
        if fails(&self.task.id, self.behaviour.failure_rate) {
            return Err(ExecutorError::Failed("simulated start failure".into()));
        }
        self.ledger.started(&self.task, &self.node);
        self.started = true;
        Ok(())
    }

    async fn wait(&mut self) -> Exit {
        std::future::pending().await
    }

    async fn shutdown(&mut self, _grace: Duration) -> Exit {
        if self.started {
            self.ledger.stopped(&self.task.id);
        }
        Exit::Signal(15)
    }

    async fn record_exit(&mut self, _exit: &RecordedExit) {}

    async fn remove(&mut self) {}
}

/// One simulated node.
pub struct SimNode {
    pub node_id: String,
    pub hostname: String,
    pub agent: AgentHandle,
}

/// Joins `count` simulated nodes to the swarm at `manager_addr` with the
/// worker `token`, `concurrency` joins at a time, and starts their agents.
pub async fn join_nodes(
    manager_addr: &str,
    token: &str,
    count: usize,
    concurrency: usize,
    behaviour: Behaviour,
    ledger: Arc<Ledger>,
    data_dir: &std::path::Path,
) -> anyhow::Result<Vec<SimNode>> {
    let token_parsed = JoinToken::parse(token)?;
    // First contact trusts nothing: fetch the CA, check it against the token.
    let channel = tls::unverified_channel(manager_addr, Duration::from_secs(5)).await?;
    let ca_pem = CaClient::new(channel)
        .get_root_ca_certificate(GetRootCaCertificateRequest {})
        .await?
        .into_inner()
        .cert_pem;
    anyhow::ensure!(
        shoal_security::ca::digest_of_pem(&ca_pem)? == token_parsed.ca_digest,
        "the manager's CA does not match the token"
    );
    let channel = tls::endpoint(manager_addr, Duration::from_secs(5))?
        .tls_config(tls::ca_only_client_config(&ca_pem))?
        .connect()
        .await?;
    let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut joins = tokio::task::JoinSet::new();
    for i in 0..count {
        let permit = semaphore.clone().acquire_owned().await?;
        let channel = channel.clone();
        let (ca_pem, token) = (ca_pem.clone(), token.to_string());
        let ledger = ledger.clone();
        let data_dir = data_dir.join(format!("sim{i}"));
        joins.spawn(async move {
            let _permit = permit;
            let hostname = format!("sim{i:05}");
            let key = NodeKey::generate()?;
            let response = CaClient::new(channel)
                .issue_node_certificate(IssueNodeCertificateRequest {
                    csr_pem: key.csr(&hostname)?,
                    token,
                    hostname: hostname.clone(),
                    advertise_addr: String::new(),
                    raft_id: 0,
                })
                .await?
                .into_inner();
            let credentials = NodeCredentials {
                ca_pem: if response.trust_bundle_pem.is_empty() {
                    ca_pem
                } else {
                    response.trust_bundle_pem.clone()
                },
                cert_pem: response.cert_pem.clone(),
                key_pem: key.key_pem(),
            };
            let executor = FakeExecutor {
                node: response.node_id.clone(),
                behaviour,
                ledger,
            };
            // Never used (the fake executor runs no container), but the
            // agent's session keeps the node's granted secrets in it.
            let secrets = Arc::new(shoal_agent::secrets::Secrets::new(&data_dir));
            let config = AgentConfig {
                data_dir,
                // None: a simulated node carries no overlay traffic.
                advertise_addr: String::new(),
                node_id: response.node_id.clone(),
                hostname: hostname.clone(),
                credentials: SharedCredentials::new(credentials),
                managers: response.managers.clone(),
                known_managers: KnownManagers::new(
                    response.manager_members.iter().map(|m| m.node_id.clone()),
                ),
            };
            let agent =
                shoal_agent::session::spawn_with(config, vec![Arc::new(executor)], None, secrets)
                    .await;
            anyhow::Ok(SimNode {
                node_id: response.node_id,
                hostname,
                agent,
            })
        });
    }
    let mut nodes = Vec::with_capacity(count);
    while let Some(joined) = joins.join_next().await {
        nodes.push(joined??);
    }
    nodes.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    Ok(nodes)
}

/// How many of `nodes` hold a session.
pub fn sessions_up(nodes: &[SimNode]) -> usize {
    nodes.iter().filter(|n| n.agent.session_up()).count()
}
