//! Service logs and exec, the manager's side: a log broker in the manner of
//! swarmkit's.
//!
//! Agents only dial out, so the leader cannot call them. Each agent keeps a
//! `LogBroker.Subscriptions` stream open for its session; a `service logs` or
//! `service exec` call becomes a [`Subscription`] sent down that stream to
//! every node holding one of the tasks, and the agents answer with a
//! client-streaming `PublishLogs`/`PublishExec` call tagged with the
//! subscription's ID. The broker fans those into the caller's stream, filling
//! in the task's display name and node.
//!
//! Sessions live on the leader, so the broker does too: a follower forwards
//! the whole streaming call to the leader (as control calls are forwarded).
//! When the caller goes away (Ctrl-C on `-f`), the broker answers the agent's
//! publish call at once, which is the agent's signal to stop following or to
//! kill the command.
//!
//! The broker reads tasks and nodes; it never writes to the store.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::Stream;
use shoal_proto::v1::log_broker_server::LogBroker as LogBrokerRpc;
use shoal_proto::v1::logs_client::LogsClient;
use shoal_proto::v1::logs_server::Logs as LogsRpc;
use shoal_proto::v1::{
    ExecOutput, ExecRequest, LogMessage, PublishExecMessage, PublishLogsMessage, PublishResponse,
    ServiceLogsRequest, Subscription, SubscriptionsRequest, Task, TaskState,
};
use shoal_security::Role;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::control::{resolve_service, FORWARDED};
use crate::dispatcher::Dispatcher;
use crate::store::{ClusterState, SharedStore};
use crate::{auth, Manager};

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Lines buffered per caller before the agents' publish calls wait for it
/// (backpressure, not loss).
const CALLER_BUFFER: usize = 256;

/// Where a subscription's results go.
enum Sink {
    Logs(mpsc::Sender<Result<LogMessage, Status>>),
    Exec(mpsc::Sender<Result<ExecOutput, Status>>),
}

/// A subscription sent to an agent that has not started publishing yet.
struct Pending {
    node_id: String,
    /// The agent session whose stream carried it.
    session_id: String,
    sink: Sink,
    /// Task ID → (display name "web.1", node hostname).
    names: HashMap<String, (String, String)>,
}

/// An agent's open subscription stream.
struct AgentLink {
    session_id: String,
    stream: mpsc::Sender<Result<Subscription, Status>>,
}

/// The broker's state, shared by the `Logs` service (callers) and the
/// `LogBroker` service (agents) of one manager.
pub struct Broker {
    store: Arc<SharedStore>,
    dispatcher: Arc<Dispatcher>,
    // std Mutexes: held for map updates only, never across an await.
    agents: Mutex<HashMap<String, AgentLink>>,
    pending: Mutex<HashMap<String, Pending>>,
}

impl Broker {
    pub fn new(store: Arc<SharedStore>, dispatcher: Arc<Dispatcher>) -> Self {
        Broker {
            store,
            dispatcher,
            agents: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Registers `subscription` for `node_id` and sends it to the node's
    /// agent; on failure, says why in words for the operator.
    fn subscribe(
        &self,
        node_id: &str,
        hostname: &str,
        subscription: Subscription,
        sink: Sink,
        names: HashMap<String, (String, String)>,
    ) -> Result<(), String> {
        let link = self
            .agents
            .lock()
            .expect("agents lock")
            .get(node_id)
            .map(|l| (l.session_id.clone(), l.stream.clone()));
        let Some((session_id, link)) = link else {
            return Err(format!(
                "node {hostname} is not connected to the leader: its tasks' output is unavailable"
            ));
        };
        let id = subscription.id.clone();
        self.pending.lock().expect("pending lock").insert(
            id.clone(),
            Pending {
                node_id: node_id.to_string(),
                session_id,
                sink,
                names,
            },
        );
        // try_send: a stuck agent must not stall the caller; its stream has
        // room for many subscriptions.
        if link.try_send(Ok(subscription)).is_err() {
            self.pending.lock().expect("pending lock").remove(&id);
            return Err(format!(
                "node {hostname} does not take requests right now: retry"
            ));
        }
        Ok(())
    }

    /// Takes the pending subscription `id`, which must be `node_id`'s.
    fn take(&self, id: &str, node_id: &str) -> Result<Pending, Status> {
        let mut pending = self.pending.lock().expect("pending lock");
        match pending.get(id) {
            Some(p) if p.node_id == node_id => Ok(pending.remove(id).expect("present")),
            Some(_) => Err(Status::permission_denied(format!(
                "subscription {id} was not sent to node {node_id}"
            ))),
            None => Err(Status::not_found(format!(
                "subscription {id} is unknown (it was cancelled or already answered)"
            ))),
        }
    }

    /// The agent's subscription stream of `node_id` closed: whatever it had
    /// not started answering will never be answered.
    fn agent_gone(&self, node_id: &str, session_id: &str) {
        {
            let mut agents = self.agents.lock().expect("agents lock");
            if agents
                .get(node_id)
                .is_some_and(|l| l.session_id == session_id)
            {
                agents.remove(node_id);
            }
        }
        let orphans: Vec<Pending> = {
            let mut pending = self.pending.lock().expect("pending lock");
            let ids: Vec<String> = pending
                .iter()
                .filter(|(_, p)| p.node_id == node_id && p.session_id == session_id)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| pending.remove(id)).collect()
        };
        for orphan in orphans {
            let message = format!("node {node_id} disconnected before answering");
            match orphan.sink {
                Sink::Logs(tx) => {
                    let _ = tx.try_send(Ok(LogMessage {
                        error: message,
                        ..Default::default()
                    }));
                }
                Sink::Exec(tx) => {
                    let _ = tx.try_send(Err(Status::unavailable(message)));
                }
            }
        }
    }

    /// Logs of `target` (service or task), merged from every node holding
    /// its tasks. The stream ends when every node is done (never, with
    /// `follow`, until the caller leaves).
    pub fn service_logs(
        &self,
        request: ServiceLogsRequest,
    ) -> Result<ReceiverStream<Result<LogMessage, Status>>, Status> {
        let (tasks, hostnames) = self.store.read(|s| {
            let tasks = resolve_log_target(s, &request.target)?;
            Ok::<_, Status>((tasks, hostnames(s)))
        })?;
        let (tx, rx) = mpsc::channel(CALLER_BUFFER);
        let mut by_node: HashMap<String, Vec<Task>> = HashMap::new();
        for task in tasks.into_iter().filter(|t| !t.node_id.is_empty()) {
            by_node.entry(task.node_id.clone()).or_default().push(task);
        }
        for (node_id, tasks) in by_node {
            let hostname = hostnames.get(&node_id).cloned().unwrap_or(node_id.clone());
            let names = tasks
                .iter()
                .map(|t| {
                    (
                        t.id.clone(),
                        (format!("{}.{}", t.service_name, t.slot), hostname.clone()),
                    )
                })
                .collect();
            let subscription = Subscription {
                id: crate::new_id(),
                tasks,
                logs: Some(request.options.unwrap_or_default()),
                exec_command: Vec::new(),
            };
            if let Err(message) = self.subscribe(
                &node_id,
                &hostname,
                subscription,
                Sink::Logs(tx.clone()),
                names,
            ) {
                let _ = tx.try_send(Ok(LogMessage {
                    node: hostname,
                    error: message,
                    ..Default::default()
                }));
            }
        }
        // The pending subscriptions hold the only senders left: the stream
        // ends when the last node finished publishing.
        Ok(ReceiverStream::new(rx))
    }

    /// Runs `request.command` in a running task, on its node.
    pub fn exec(
        &self,
        request: ExecRequest,
    ) -> Result<ReceiverStream<Result<ExecOutput, Status>>, Status> {
        if request.command.is_empty() {
            return Err(Status::invalid_argument(
                "a command is required: shoal service exec TASK -- CMD [ARG…]",
            ));
        }
        let (task, hostname) = self.store.read(|s| {
            let task = resolve_task(s, &request.task)?.clone();
            let hostname = hostnames(s)
                .remove(&task.node_id)
                .unwrap_or(task.node_id.clone());
            Ok::<_, Status>((task, hostname))
        })?;
        let state = task.status.as_ref().map(|s| s.state()).unwrap_or_default();
        if state != TaskState::Running || task.desired_state != TaskState::Running as i32 {
            return Err(Status::failed_precondition(format!(
                "task {} is not running (it is {}): exec needs a running task",
                task.id,
                shoal_proto::names::task_state(state)
            )));
        }
        let (tx, rx) = mpsc::channel(CALLER_BUFFER);
        let names = HashMap::from([(
            task.id.clone(),
            (
                format!("{}.{}", task.service_name, task.slot),
                hostname.clone(),
            ),
        )]);
        let node_id = task.node_id.clone();
        let subscription = Subscription {
            id: crate::new_id(),
            tasks: vec![task],
            logs: None,
            exec_command: request.command,
        };
        self.subscribe(&node_id, &hostname, subscription, Sink::Exec(tx), names)
            .map_err(Status::unavailable)?;
        Ok(ReceiverStream::new(rx))
    }
}

/// Node ID → hostname.
fn hostnames(state: &ClusterState) -> HashMap<String, String> {
    state
        .nodes
        .values()
        .map(|n| {
            let hostname = n
                .description
                .as_ref()
                .map(|d| d.hostname.clone())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| n.id.clone());
            (n.id.clone(), hostname)
        })
        .collect()
}

/// A task by ID or unique ID prefix.
pub fn resolve_task<'a>(state: &'a ClusterState, reference: &str) -> Result<&'a Task, Status> {
    if reference.is_empty() {
        return Err(Status::invalid_argument("a task ID is required"));
    }
    if let Some(task) = state.tasks.get(reference) {
        return Ok(task);
    }
    let found: Vec<&Task> = state
        .tasks
        .values()
        .filter(|t| t.id.starts_with(reference))
        .collect();
    match found.len() {
        1 => Ok(found[0]),
        0 => Err(Status::not_found(format!("No such task: {reference}"))),
        n => Err(Status::failed_precondition(format!(
            "task {reference} is ambiguous ({n} matches): use the full task ID"
        ))),
    }
}

/// The tasks whose logs `target` asks for: every task of a service (by
/// name, ID or prefix), else one task (by ID or prefix).
pub fn resolve_log_target(state: &ClusterState, target: &str) -> Result<Vec<Task>, Status> {
    match resolve_service(state, target) {
        Ok(service) => {
            let mut tasks: Vec<Task> = state
                .tasks
                .values()
                .filter(|t| t.service_id == service.id)
                .cloned()
                .collect();
            tasks.sort_by(|a, b| a.slot.cmp(&b.slot).then(a.id.cmp(&b.id)));
            Ok(tasks)
        }
        Err(e) if e.code() == tonic::Code::NotFound => match resolve_task(state, target) {
            Ok(task) => Ok(vec![task.clone()]),
            Err(e) if e.code() == tonic::Code::NotFound => Err(Status::not_found(format!(
                "No such service or task: {target}"
            ))),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// The `Logs` service (what the CLI calls), served by any manager: the
/// leader answers, a follower forwards to it.
pub struct LogsService {
    manager: Arc<Manager>,
    /// Over TCP the caller must hold a manager certificate; on the local
    /// socket file permissions are the check.
    require_certificate: bool,
}

impl LogsService {
    pub fn new(manager: Arc<Manager>, require_certificate: bool) -> Self {
        LogsService {
            manager,
            require_certificate,
        }
    }

    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        if self.require_certificate {
            auth::require_peer(request, self.manager.store(), &[Role::Manager])?;
        }
        Ok(())
    }

    /// `None` when this manager leads; else a client to the leader.
    async fn route<T>(
        &self,
        request: &Request<T>,
    ) -> Result<Option<LogsClient<tonic::transport::Channel>>, Status> {
        if self.manager.is_leader() {
            return Ok(None);
        }
        if request.metadata().get(FORWARDED).is_some() {
            return Err(Status::unavailable(
                "this manager is not the leader either (a leader change is in progress): retry",
            ));
        }
        Ok(Some(LogsClient::new(self.manager.leader_channel().await?)))
    }
}

fn forwarded<T>(request: Request<T>) -> Request<T> {
    let mut out = Request::new(request.into_inner());
    out.metadata_mut()
        .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
    out
}

#[tonic::async_trait]
impl LogsRpc for LogsService {
    type ServiceLogsStream = ResponseStream<LogMessage>;
    type ExecStream = ResponseStream<ExecOutput>;

    async fn service_logs(
        &self,
        request: Request<ServiceLogsRequest>,
    ) -> Result<Response<Self::ServiceLogsStream>, Status> {
        self.authorize(&request)?;
        if let Some(mut leader) = self.route(&request).await? {
            let stream = leader.service_logs(forwarded(request)).await?.into_inner();
            return Ok(Response::new(Box::pin(stream)));
        }
        let stream = self.manager.broker().service_logs(request.into_inner())?;
        Ok(Response::new(Box::pin(stream)))
    }

    async fn exec(
        &self,
        request: Request<ExecRequest>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        self.authorize(&request)?;
        if let Some(mut leader) = self.route(&request).await? {
            let stream = leader.exec(forwarded(request)).await?.into_inner();
            return Ok(Response::new(Box::pin(stream)));
        }
        let stream = self.manager.broker().exec(request.into_inner())?;
        Ok(Response::new(Box::pin(stream)))
    }
}

/// The `LogBroker` service (what agents call), on the mutual-TLS listener.
pub struct LogBrokerService {
    broker: Arc<Broker>,
}

impl LogBrokerService {
    pub fn new(broker: Arc<Broker>) -> Self {
        LogBrokerService { broker }
    }

    fn peer<T>(&self, request: &Request<T>) -> Result<String, Status> {
        Ok(
            auth::require_peer(request, &self.broker.store, &[Role::Manager, Role::Worker])?
                .node_id,
        )
    }
}

#[tonic::async_trait]
impl LogBrokerRpc for LogBrokerService {
    type SubscriptionsStream = ResponseStream<Subscription>;

    async fn subscriptions(
        &self,
        request: Request<SubscriptionsRequest>,
    ) -> Result<Response<Self::SubscriptionsStream>, Status> {
        let node_id = self.peer(&request)?;
        let session_id = request.into_inner().session_id;
        self.broker
            .dispatcher
            .check_session(&node_id, &session_id)?;
        let (tx, rx) = mpsc::channel(64);
        self.broker.agents.lock().expect("agents lock").insert(
            node_id.clone(),
            AgentLink {
                session_id: session_id.clone(),
                stream: tx.clone(),
            },
        );
        let broker = self.broker.clone();
        tokio::spawn(async move {
            tx.closed().await;
            broker.agent_gone(&node_id, &session_id);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn publish_logs(
        &self,
        request: Request<Streaming<PublishLogsMessage>>,
    ) -> Result<Response<PublishResponse>, Status> {
        let node_id = self.peer(&request)?;
        let mut stream = request.into_inner();
        let Some(first) = stream.message().await? else {
            return Ok(Response::new(PublishResponse {}));
        };
        let pending = self.broker.take(&first.subscription_id, &node_id)?;
        let Sink::Logs(tx) = pending.sink else {
            return Err(Status::invalid_argument(format!(
                "subscription {} is an exec: publish its output with PublishExec",
                first.subscription_id
            )));
        };
        let mut batch = first.messages;
        loop {
            for mut message in batch.drain(..) {
                // Only the subscription's own tasks: a node must not pass
                // lines off as another task's (or slip in its own names).
                let Some((name, node)) = pending.names.get(&message.task_id) else {
                    continue;
                };
                message.task_name = name.clone();
                message.node = node.clone();
                if tx.send(Ok(message)).await.is_err() {
                    // The caller left: answering tells the agent to stop.
                    return Ok(Response::new(PublishResponse {}));
                }
            }
            tokio::select! {
                _ = tx.closed() => return Ok(Response::new(PublishResponse {})),
                next = stream.message() => match next? {
                    Some(next) => batch = next.messages,
                    None => return Ok(Response::new(PublishResponse {})),
                },
            }
        }
    }

    async fn publish_exec(
        &self,
        request: Request<Streaming<PublishExecMessage>>,
    ) -> Result<Response<PublishResponse>, Status> {
        let node_id = self.peer(&request)?;
        let mut stream = request.into_inner();
        let Some(first) = stream.message().await? else {
            return Ok(Response::new(PublishResponse {}));
        };
        let pending = self.broker.take(&first.subscription_id, &node_id)?;
        let Sink::Exec(tx) = pending.sink else {
            return Err(Status::invalid_argument(format!(
                "subscription {} is for logs: publish them with PublishLogs",
                first.subscription_id
            )));
        };
        let mut next = first.output;
        let mut exited = false;
        loop {
            if let Some(output) = next.take() {
                exited |= output.exited || !output.error.is_empty();
                if tx.send(Ok(output)).await.is_err() {
                    return Ok(Response::new(PublishResponse {}));
                }
            }
            tokio::select! {
                _ = tx.closed() => return Ok(Response::new(PublishResponse {})),
                message = stream.message() => match message {
                    Ok(Some(message)) => next = message.output,
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(Err(Status::unavailable(format!(
                            "the connection to node {node_id} broke while the command ran: {}",
                            e.message()
                        )))).await;
                        return Err(e);
                    }
                },
            }
        }
        if !exited {
            let _ = tx
                .send(Err(Status::internal(
                    "the agent ended the command's output without its exit code",
                )))
                .await;
        }
        Ok(Response::new(PublishResponse {}))
    }
}
