//! The agent's session loop: connect to a manager, open a session, heartbeat
//! at the period the manager asks for, keep the assignment stream open; on any
//! failure, move to the next known manager after a short, jittered backoff
//! (see [`reconnect`]: a leader hint first, never straight back to the
//! manager that just failed).
//!
//! A manager is accepted only if its certificate belongs to a node of the
//! manager list the sessions report ([`KnownManagers`], checked in the TLS
//! handshake): a demoted manager's old certificate is refused. Sessions
//! also announce the roots to trust, which the daemon's renewal acts on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_proto::v1::dispatcher_client::DispatcherClient;
use shoal_proto::v1::NodeRole;
use shoal_proto::v1::{
    AssignmentsRequest, HeartbeatRequest, SessionRequest, TaskStatusUpdate, UpdateTaskStatusRequest,
};
use shoal_security::renewal::AnnouncedTrust;
use shoal_security::tls::KnownManagers;
use shoal_security::{tls, SharedCredentials};
use tokio::sync::{mpsc, oneshot, watch};
use tonic::transport::Channel;

use crate::description::describe_with;
use crate::executor::docker::DockerExecutor;
use crate::executor::process::ProcessExecutor;
use crate::executor::runtimes::NodeRuntimes;
use crate::executor::{AbortOnDrop, Executor, DEFAULT_STOP_GRACE};
use crate::overlay::{Overlay, OverlayConfig};
use crate::reporter::Reporter;
use crate::subscriptions::Subscriptions;
use crate::worker::{Worker, WorkerEvent};

mod reconnect;
use rand::SeedableRng;
use reconnect::Reconnect;

/// How long to wait for a manager to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause after the managers refused this node (e.g. it was removed).
const REFUSED_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Where task state (PID files, logs) lives.
    pub data_dir: std::path::PathBuf,
    pub node_id: String,
    pub hostname: String,
    /// The node's current credentials: each connection uses what they are
    /// when it connects, so a renewed certificate needs no agent restart.
    pub credentials: SharedCredentials,
    /// Managers to try, in order; refreshed from each session.
    pub managers: Vec<String>,
    /// The node IDs accepted as managers; refreshed from each session.
    pub known_managers: KnownManagers,
    /// The node's advertise address (`IP[:PORT]`): its VTEP on overlay
    /// networks.
    pub advertise_addr: String,
}

/// A running agent.
pub struct AgentHandle {
    session_up: watch::Receiver<bool>,
    managers: Arc<Mutex<Vec<String>>>,
    desired_role: watch::Receiver<Option<NodeRole>>,
    trust: Arc<Mutex<Option<AnnouncedTrust>>>,
    known_managers: KnownManagers,
    task: tokio::task::JoinHandle<()>,
    worker: mpsc::Sender<WorkerEvent>,
    reporter: Arc<Reporter>,
    secrets: Arc<crate::secrets::Secrets>,
    overlay: Overlay,
    /// The load sampler, which ends with the agent.
    _sampling: AbortOnDrop,
}

impl AgentHandle {
    /// Whether a session with a manager is currently open.
    pub fn session_up(&self) -> bool {
        *self.session_up.borrow()
    }

    /// The role the swarm last said it wants this node in (promote/demote).
    pub fn desired_role(&self) -> Option<NodeRole> {
        *self.desired_role.borrow()
    }

    /// The desired role, to wait on: changed when a session says another
    /// one (not on every message that repeats it).
    pub fn desired_role_changes(&self) -> watch::Receiver<Option<NodeRole>> {
        self.desired_role.clone()
    }

    /// The managers this agent knows of.
    pub fn managers(&self) -> Vec<String> {
        self.managers.lock().expect("managers lock").clone()
    }

    /// The node IDs it accepts as managers.
    pub fn known_managers(&self) -> &KnownManagers {
        &self.known_managers
    }

    /// The roots the swarm last said to trust, and the one that signs.
    pub fn announced_trust(&self) -> Option<AnnouncedTrust> {
        self.trust.lock().expect("trust lock").clone()
    }

    /// Stops every task this node runs (SIGTERM, then SIGKILL after their
    /// grace period), tries briefly to report their final states, then ends
    /// the session. Used when the daemon stops and when the node leaves.
    pub async fn shutdown(&self, reason: &str) {
        let (done, finished) = oneshot::channel();
        let sent = self
            .worker
            .send(WorkerEvent::Shutdown {
                reason: reason.to_string(),
                done,
            })
            .await;
        if sent.is_ok() {
            let limit = DEFAULT_STOP_GRACE + Duration::from_secs(5);
            if tokio::time::timeout(limit, finished).await.is_err() {
                tracing::warn!("tasks did not stop within {limit:?}");
            }
        }
        // Whatever a task left in the secrets tmpfs goes, and the tmpfs too.
        self.secrets.clear();
        // Best effort: the session sends queued reports within a moment.
        let flush_deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while !self.reporter.is_empty()
            && self.session_up()
            && tokio::time::Instant::now() < flush_deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.task.abort();
    }

    /// Removes every network namespace, device and rule the overlay made
    /// (the node left the swarm); after [`AgentHandle::shutdown`].
    pub async fn cleanup_overlay(&self) {
        self.overlay.cleanup_all().await;
    }
}

impl Drop for AgentHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the agent: the worker (adopting tasks a previous agent left
/// running) and the session loop.
pub async fn spawn(config: AgentConfig) -> AgentHandle {
    let secrets = Arc::new(crate::secrets::Secrets::new(&config.data_dir));
    let mut executors: Vec<Arc<dyn Executor>> = vec![Arc::new(
        ProcessExecutor::new(&config.data_dir, &config.node_id).with_secrets(secrets.clone()),
    )];
    // The docker runtime is a capability of the node: present when an engine
    // answers at start, reported in the description, and otherwise absent
    // (the scheduler then places no container task here).
    let docker = match DockerExecutor::connect(&config.data_dir, &config.node_id).await {
        Ok(docker) => {
            tracing::info!(engine = %docker.engine_version(), "docker runtime available");
            let docker = Arc::new(docker.with_secrets(secrets.clone()));
            executors.push(docker.clone());
            Some(docker)
        }
        Err(e) => {
            tracing::warn!("running without the docker runtime: {e}");
            None
        }
    };
    spawn_with(config, executors, docker, secrets).await
}

/// Starts an agent whose tasks run through `executors` (`docker`, when one
/// of them is the engine's, also answers `service logs` for containers).
/// The daemon passes the real runtimes ([`spawn`]); the scale simulator
/// (`e2e/benches/scale.rs`) passes an executor whose tasks only pretend to
/// run, so that thousands of agents in one process go through this same
/// session, worker and reporting code.
pub async fn spawn_with(
    config: AgentConfig,
    executors: Vec<Arc<dyn Executor>>,
    docker: Option<Arc<DockerExecutor>>,
    secrets: Arc<crate::secrets::Secrets>,
) -> AgentHandle {
    let (up_tx, up_rx) = watch::channel(false);
    let managers = Arc::new(Mutex::new(config.managers.clone()));
    let (desired_role, desired_role_rx) = watch::channel(None);
    let trust = Arc::new(Mutex::new(None));
    let reporter = Arc::new(Reporter::default());
    let runtimes = Arc::new(NodeRuntimes {
        tasks_dir: config.data_dir.join("tasks"),
        node_id: config.node_id.clone(),
        docker,
        secrets: secrets.clone(),
    });
    // Probed once per start, like the runtimes, and reported with them.
    let overlay = Overlay::start(OverlayConfig {
        data_dir: config.data_dir.clone(),
        node_id: config.node_id.clone(),
        advertise_addr: config.advertise_addr.clone(),
    })
    .await;
    let supervised = crate::worker::SupervisedTasks::default();
    let sampler = Arc::new(crate::metrics::Sampler::default());
    let (worker, _worker_task) = Worker::spawn_networked(
        executors.clone(),
        reporter.clone(),
        supervised.clone(),
        Some(overlay.clone()),
    )
    .await;
    let sampling = tokio::spawn(crate::metrics::run(sampler.clone(), executors, supervised));
    let known_managers = config.known_managers.clone();
    let task = tokio::spawn(run(
        config,
        managers.clone(),
        (Arc::new(desired_role), trust.clone()),
        up_tx,
        worker.clone(),
        reporter.clone(),
        runtimes,
        (sampler, overlay.clone()),
    ));
    AgentHandle {
        session_up: up_rx,
        managers,
        desired_role: desired_role_rx,
        trust,
        known_managers,
        task,
        worker,
        reporter,
        secrets,
        overlay,
        _sampling: AbortOnDrop(sampling),
    }
}

// The agent's shared state, handed to each session (see `session`).
#[allow(clippy::too_many_arguments)]
async fn run(
    config: AgentConfig,
    managers: Arc<Mutex<Vec<String>>>,
    told: Told,
    up: watch::Sender<bool>,
    worker: mpsc::Sender<WorkerEvent>,
    reporter: Arc<Reporter>,
    runtimes: Arc<NodeRuntimes>,
    (sampler, overlay): (Arc<crate::metrics::Sampler>, Overlay),
) {
    let mut reconnect = Reconnect::default();
    let mut rng = rand::rngs::StdRng::from_entropy();
    // When the last session broke: reconnecting is measured and logged.
    let mut lost_at: Option<tokio::time::Instant> = None;
    loop {
        let list = managers.lock().expect("managers lock").clone();
        let Some(addr) = reconnect.next(&list) else {
            tracing::error!("no manager address known; the agent cannot connect");
            tokio::time::sleep(REFUSED_BACKOFF).await;
            continue;
        };
        let mut established = false;
        let mut connected = false;
        let outcome = session(
            &config,
            &addr,
            &managers,
            &told,
            &up,
            &worker,
            &reporter,
            &runtimes,
            (&sampler, &overlay),
            (&mut connected, &mut established, &mut lost_at),
        )
        .await;
        up.send_replace(false);
        if established {
            reconnect.established();
            lost_at = Some(tokio::time::Instant::now());
        }
        // A manager that is not the leader says who is: go there at once.
        let hint = outcome.as_ref().err().and_then(|status| {
            status
                .metadata()
                .get(shoal_proto::LEADER_HINT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
        // A manager that completed the TLS handshake but opened no session
        // (a follower with no leader to name yet) is alive: not "failed".
        let outcome_of = if connected && !established {
            reconnect::Attempt::Answered
        } else {
            reconnect::Attempt::Failed
        };
        let pause = reconnect.ended(
            &addr,
            hint.as_deref(),
            outcome_of,
            std::time::Instant::now(),
            &mut rng,
        );
        match outcome {
            Err(status) if status.code() == tonic::Code::PermissionDenied => {
                tracing::error!(manager = %addr, "the swarm refused this node: {}", status.message());
                tokio::time::sleep(REFUSED_BACKOFF).await;
            }
            Err(status) => {
                if pause > Duration::ZERO {
                    tracing::warn!(manager = %addr, retry_in_ms = pause.as_millis() as u64, "session ended: {}", status.message());
                }
                tokio::time::sleep(pause).await;
            }
            Ok(()) => tokio::time::sleep(pause).await,
        }
    }
}

async fn connect(
    addr: &str,
    credentials: &SharedCredentials,
    known: &KnownManagers,
) -> Result<Channel, tonic::Status> {
    tls::connect_to_manager(addr, CONNECT_TIMEOUT, credentials, known)
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))
}

/// What the sessions said besides assignments: the role the swarm wants
/// this node in, and the roots to trust.
type Told = (
    Arc<watch::Sender<Option<NodeRole>>>,
    Arc<Mutex<Option<AnnouncedTrust>>>,
);

/// Takes in what a session message says about the swarm (an update
/// leaves out what it does not carry).
fn heard(
    message: &shoal_proto::v1::SessionMessage,
    config: &AgentConfig,
    managers: &Mutex<Vec<String>>,
    told: &Told,
) {
    let role = Some(message.desired_role());
    told.0
        .send_if_modified(|desired| std::mem::replace(desired, role) != role);
    if !message.managers.is_empty() {
        *managers.lock().expect("managers lock") = message.managers.clone();
    }
    config
        .known_managers
        .set(message.manager_node_ids.iter().cloned());
    if !message.signing_root_pem.is_empty() {
        *told.1.lock().expect("trust lock") = Some(AnnouncedTrust {
            bundle_pem: message.trust_bundle_pem.clone(),
            signing_root_pem: message.signing_root_pem.clone(),
        });
    }
}

/// One session, from connecting to its end. Returns when it breaks.
// Everything here is the agent's shared state, borrowed for one session; a
// struct bundling it would only rename this list.
#[allow(clippy::too_many_arguments)]
async fn session(
    config: &AgentConfig,
    addr: &str,
    managers: &Arc<Mutex<Vec<String>>>,
    told: &Told,
    up: &watch::Sender<bool>,
    worker: &mpsc::Sender<WorkerEvent>,
    reporter: &Reporter,
    runtimes: &Arc<NodeRuntimes>,
    (sampler, overlay): (&crate::metrics::Sampler, &Overlay),
    (connected, established, lost_at): (&mut bool, &mut bool, &mut Option<tokio::time::Instant>),
) -> Result<(), tonic::Status> {
    let channel = connect(addr, &config.credentials, &config.known_managers).await?;
    *connected = true;
    let mut client = DispatcherClient::new(channel.clone())
        .max_decoding_message_size(shoal_proto::MAX_RESPONSE_BYTES);
    let mut stream = client
        .session(SessionRequest {
            description: Some(describe_with(
                &config.hostname,
                runtimes,
                overlay.capability(),
            )),
        })
        .await?
        .into_inner();
    let first = stream
        .message()
        .await?
        .ok_or_else(|| tonic::Status::unavailable("the manager closed the session at once"))?;
    let session_id = first.session_id.clone();
    heard(&first, config, managers, told);
    let period = Duration::from_millis(first.heartbeat_period_ms.max(100));
    tracing::info!(manager = %addr, session = %session_id, "session established");
    up.send_replace(true);
    *established = true;
    if let Some(lost) = lost_at.take() {
        tracing::info!(manager = %addr, after_ms = lost.elapsed().as_millis() as u64, "session re-established");
    }

    let mut assignments = client
        .assignments(AssignmentsRequest {
            session_id: session_id.clone(),
        })
        .await?
        .into_inner();
    let mut subscriptions = Subscriptions::open(channel.clone(), &session_id).await;

    // Reports queued while no session was up go out first.
    send_reports(&mut client, &session_id, reporter).await?;
    // Heartbeats run beside the rest of the session, never behind it: a
    // status report or an assignment waits for the leader's Raft commit
    // or for the worker, and under load (100,000 tasks being created)
    // that took longer than the heartbeat window, so hundreds of healthy
    // simulated nodes were marked down while their reports queued.
    let beats = heartbeats(client.clone(), &session_id, period, sampler, runtimes);
    let rest = async {
        loop {
            tokio::select! {
                message = stream.message() => {
                    match message? {
                        Some(update) => heard(&update, config, managers, told),
                        None => return Ok(()),
                    }
                }
                message = assignments.message() => {
                    match message? {
                        Some(set) => {
                            tracing::debug!(tasks = set.tasks.len(), "assignments");
                            // Before the tasks: a task's grants must be here
                            // when its controller prepares.
                            runtimes.secrets.update(set.secrets, set.configs);
                            // The view first: a task attached before it starts
                            // needs the network its attachment names.
                            overlay.view(set.network.unwrap_or_default()).await;
                            if worker.send(WorkerEvent::Assignments(set.tasks)).await.is_err() {
                                return Ok(());
                            }
                        }
                        None => return Ok(()),
                    }
                }
                _ = reporter.queued() => send_reports(&mut client, &session_id, reporter).await?,
                subscription = subscriptions.next() => {
                    crate::subscriptions::spawn(channel.clone(), subscription, runtimes.clone());
                }
            }
        }
    };
    // Whichever ends first ends the session: a failed heartbeat as much as
    // a closed stream.
    tokio::select! {
        ended = beats => ended,
        ended = rest => ended,
    }
}

/// How long a heartbeat may wait for its answer: the leader's own window
/// (three periods of silence before it marks a node down). Giving up
/// sooner gained nothing and turned a leader that was slow for two seconds
/// (applying 100,000 new tasks) into hundreds of closed sessions, which the
/// leader then judged as crashed nodes and emptied.
fn heartbeat_timeout(period: Duration) -> Duration {
    period * 3
}

/// How long the volume list may take before a heartbeat goes without it
/// (a slow engine must not make a healthy node miss its heartbeats).
fn volume_list_budget(period: Duration) -> Duration {
    period / 2
}

/// Heartbeats `session_id` every period the leader asks for, carrying the
/// tasks' usage and, every few seconds, the node's volumes; removes the
/// volumes the leader asks to remove. Returns when a heartbeat fails.
async fn heartbeats(
    mut client: DispatcherClient<Channel>,
    session_id: &str,
    mut period: Duration,
    sampler: &crate::metrics::Sampler,
    runtimes: &NodeRuntimes,
) -> Result<(), tonic::Status> {
    let mut heartbeat = tokio::time::interval(period);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut volumes = crate::volumes::ReportClock::default();
    let mut removals: Vec<shoal_proto::v1::VolumeRemoval> = Vec::new();
    loop {
        heartbeat.tick().await;
        // The volume list every few seconds (and at once after a
        // removal), not every heartbeat: it costs an engine call.
        let report = if volumes.due(&removals) {
            tokio::time::timeout(volume_list_budget(period), runtimes.volumes())
                .await
                .ok()
                .map(|volumes| shoal_proto::v1::NodeVolumesReport { volumes })
        } else {
            None
        };
        let mut request = tonic::Request::new(HeartbeatRequest {
            session_id: session_id.to_string(),
            usage: sampler.take(),
            volumes: report,
            volume_removals: std::mem::take(&mut removals),
        });
        request.set_timeout(heartbeat_timeout(period));
        let reply = client.heartbeat(request).await?.into_inner();
        for name in &reply.remove_volumes {
            removals.push(runtimes.remove_volume(name).await);
        }
        let next = Duration::from_millis(reply.period_ms.max(100));
        if next != period {
            period = next;
            heartbeat = tokio::time::interval(period);
        }
    }
}

/// Sends every queued status report in one batch; on failure they are queued
/// again for the next session.
async fn send_reports(
    client: &mut DispatcherClient<Channel>,
    session_id: &str,
    reporter: &Reporter,
) -> Result<(), tonic::Status> {
    let batch = reporter.take();
    if batch.is_empty() {
        return Ok(());
    }
    let request = UpdateTaskStatusRequest {
        session_id: session_id.to_string(),
        updates: batch
            .iter()
            .map(|(task_id, status)| TaskStatusUpdate {
                task_id: task_id.clone(),
                status: Some(status.clone()),
            })
            .collect(),
    };
    if let Err(status) = client.update_task_status(request).await {
        reporter.put_back(batch);
        return Err(status);
    }
    Ok(())
}
