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

use std::collections::{BTreeMap, HashMap, HashSet};
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
#[derive(Default)]
pub struct Ledger {
    inner: Mutex<LedgerInner>,
}

#[derive(Default)]
struct LedgerInner {
    /// Starts per task ID.
    starts: HashMap<String, u32>,
    /// Running tasks: task ID → (node, service, slot).
    running: HashMap<String, (String, String, u64)>,
    /// Nodes killed by the run: their tasks no longer count as running.
    dead: HashSet<String>,
}

impl Ledger {
    fn started(&self, task: &Task, node: &str) {
        let mut inner = self.inner.lock().unwrap();
        *inner.starts.entry(task.id.clone()).or_default() += 1;
        inner.running.insert(
            task.id.clone(),
            (node.to_string(), task.service_id.clone(), task.slot),
        );
    }

    fn stopped(&self, task_id: &str) {
        self.inner.lock().unwrap().running.remove(task_id);
    }

    /// Tasks running on nodes that are alive.
    pub fn running(&self) -> usize {
        let inner = self.inner.lock().unwrap();
        inner
            .running
            .values()
            .filter(|(node, _, _)| !inner.dead.contains(node))
            .count()
    }

    /// The IDs of the tasks running on nodes that are alive.
    pub fn running_ids(&self) -> HashSet<String> {
        let inner = self.inner.lock().unwrap();
        inner
            .running
            .iter()
            .filter(|(_, (node, _, _))| !inner.dead.contains(node))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The running tasks on `node`.
    pub fn running_on(&self, node: &str) -> Vec<String> {
        let inner = self.inner.lock().unwrap();
        inner
            .running
            .iter()
            .filter(|(_, (n, _, _))| n == node)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Marks `node` dead: its tasks stop counting.
    pub fn kill(&self, node: &str) {
        self.inner.lock().unwrap().dead.insert(node.to_string());
    }

    /// Problems with "every task runs exactly once": a task started twice,
    /// or a slot with two running tasks on live nodes.
    pub fn duplicates(&self) -> Vec<String> {
        let inner = self.inner.lock().unwrap();
        let mut problems: Vec<String> = inner
            .starts
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, n)| format!("task {id} started {n} times"))
            .collect();
        let mut slots: BTreeMap<(&str, u64), u32> = BTreeMap::new();
        for (node, service, slot) in inner.running.values() {
            if !inner.dead.contains(node) {
                *slots.entry((service.as_str(), *slot)).or_default() += 1;
            }
        }
        problems.extend(
            slots
                .into_iter()
                .filter(|(_, n)| *n > 1)
                .map(|((service, slot), n)| format!("slot {service}.{slot} runs {n} tasks")),
        );
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
