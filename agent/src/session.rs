//! The agent's session loop: connect to a manager, open a session, heartbeat
//! at the period the manager asks for, keep the assignment stream open; on any
//! failure, move to the next known manager after a short backoff.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_proto::v1::dispatcher_client::DispatcherClient;
use shoal_proto::v1::{AssignmentsRequest, HeartbeatRequest, SessionRequest};
use shoal_security::files::NodeCredentials;
use shoal_security::tls;
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::description::describe;

/// How long to wait for a manager to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between reconnection attempts; short so that a manager change costs
/// well under the two seconds agents are allowed.
const RETRY_BACKOFF: Duration = Duration::from_millis(300);
/// Pause after the managers refused this node (e.g. it was removed).
const REFUSED_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node_id: String,
    pub hostname: String,
    pub credentials: NodeCredentials,
    /// Managers to try, in order; refreshed from each session.
    pub managers: Vec<String>,
}

/// A running agent.
pub struct AgentHandle {
    session_up: watch::Receiver<bool>,
    managers: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl AgentHandle {
    /// Whether a session with a manager is currently open.
    pub fn session_up(&self) -> bool {
        *self.session_up.borrow()
    }

    /// The managers this agent knows of.
    pub fn managers(&self) -> Vec<String> {
        self.managers.lock().expect("managers lock").clone()
    }

    /// Stops the agent.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for AgentHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the agent's session loop.
pub fn spawn(config: AgentConfig) -> AgentHandle {
    let (up_tx, up_rx) = watch::channel(false);
    let managers = Arc::new(Mutex::new(config.managers.clone()));
    let task = tokio::spawn(run(config, managers.clone(), up_tx));
    AgentHandle {
        session_up: up_rx,
        managers,
        task,
    }
}

async fn run(config: AgentConfig, managers: Arc<Mutex<Vec<String>>>, up: watch::Sender<bool>) {
    let client_tls = tls::client_config(&config.credentials);
    let mut attempt = 0usize;
    loop {
        let list = managers.lock().expect("managers lock").clone();
        if list.is_empty() {
            tracing::error!("no manager address known; the agent cannot connect");
            tokio::time::sleep(REFUSED_BACKOFF).await;
            continue;
        }
        let addr = list[attempt % list.len()].clone();
        attempt += 1;
        let outcome = session(&config, &addr, client_tls.clone(), &managers, &up).await;
        up.send_replace(false);
        match outcome {
            Err(status) if status.code() == tonic::Code::PermissionDenied => {
                tracing::error!(manager = %addr, "the swarm refused this node: {}", status.message());
                tokio::time::sleep(REFUSED_BACKOFF).await;
            }
            Err(status) => {
                tracing::warn!(manager = %addr, "session ended: {}", status.message());
                tokio::time::sleep(RETRY_BACKOFF).await;
            }
            Ok(()) => tokio::time::sleep(RETRY_BACKOFF).await,
        }
    }
}

async fn connect(
    addr: &str,
    client_tls: tonic::transport::ClientTlsConfig,
) -> Result<Channel, tonic::Status> {
    let endpoint = tls::endpoint(addr, CONNECT_TIMEOUT)
        .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?
        .tls_config(client_tls)
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    endpoint
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("cannot connect to manager {addr}: {e}")))
}

/// One session, from connecting to its end. Returns when it breaks.
async fn session(
    config: &AgentConfig,
    addr: &str,
    client_tls: tonic::transport::ClientTlsConfig,
    managers: &Arc<Mutex<Vec<String>>>,
    up: &watch::Sender<bool>,
) -> Result<(), tonic::Status> {
    let channel = connect(addr, client_tls).await?;
    let mut client = DispatcherClient::new(channel);
    let mut stream = client
        .session(SessionRequest {
            description: Some(describe(&config.hostname)),
        })
        .await?
        .into_inner();
    let first = stream
        .message()
        .await?
        .ok_or_else(|| tonic::Status::unavailable("the manager closed the session at once"))?;
    let session_id = first.session_id.clone();
    if !first.managers.is_empty() {
        *managers.lock().expect("managers lock") = first.managers.clone();
    }
    let mut period = Duration::from_millis(first.heartbeat_period_ms.max(100));
    tracing::info!(manager = %addr, session = %session_id, "session established");
    up.send_replace(true);

    let mut assignments = client
        .assignments(AssignmentsRequest {
            session_id: session_id.clone(),
        })
        .await?
        .into_inner();

    let mut heartbeat = tokio::time::interval(period);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                let mut request = tonic::Request::new(HeartbeatRequest { session_id: session_id.clone() });
                request.set_timeout(period * 2);
                let reply = client.heartbeat(request).await?.into_inner();
                let next = Duration::from_millis(reply.period_ms.max(100));
                if next != period {
                    period = next;
                    heartbeat = tokio::time::interval(period);
                }
            }
            message = stream.message() => {
                match message? {
                    Some(update) if !update.managers.is_empty() => {
                        *managers.lock().expect("managers lock") = update.managers;
                    }
                    Some(_) => {}
                    None => return Ok(()),
                }
            }
            message = assignments.message() => {
                match message? {
                    Some(set) => tracing::debug!(tasks = set.tasks.len(), "assignments"),
                    None => return Ok(()),
                }
            }
        }
    }
}
