//! The worker: makes the node run exactly its assigned tasks.
//!
//! It reconciles the latest assignment set (level-triggered) against the
//! tasks it supervises: a new assignment gets a supervisor that drives the
//! task's controller and reports its states; a task that left the set, or
//! stays in it retired (desired state beyond Running), is stopped, and a
//! retired task it never started is reported shut down at once. Until the
//! first assignment set arrives, tasks found running from a previous agent
//! keep running: the data plane does not wait for a manager.
//!
//! Deciding is apart from doing: [`decide`] (in `worker/decide.rs`) turns an
//! assignment set, what the worker observes and `now` into a [`Decision`]
//! (start, end unstarted, stop, forget), unit-tested without tasks; this
//! module applies it, supervises tasks and reads the clock
//! ([`shoal_proto::clock::now_ms`]) for the reports it sends.
//!
//! A task with a health check stays STARTING until the check first passes,
//! then is RUNNING; once the check says it is unhealthy (before or after it
//! passed) the worker stops it and reports it FAILED, as Swarm does. The
//! check itself is the controller's ([`Controller::health`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use shoal_proto::clock::now_ms;
use shoal_proto::v1::{Task, TaskState};
use tokio::sync::{mpsc, oneshot, watch};

use crate::executor::DEFAULT_STOP_GRACE;
use crate::executor::{Controller, Executor, ExecutorError, Exit, RecordedExit};
use crate::health::Health;
use crate::overlay::{self, Overlay};
use crate::reporter::Reporter;

mod decide;
pub use decide::{decide, forget_on_exit, recorded_status, status, Decision, Observed};

/// The STARTING message of a task waiting for its health check to pass.
pub const MESSAGE_WAITING_FOR_HEALTH: &str = "starting: waiting for the health check";
/// The stop reason of a task the managers retired (as opposed to the
/// daemon stopping or leaving).
const RETIRED: &str = "shutdown";
/// How long a retired task on an overlay network keeps running before it
/// is signalled: the time every node's view takes to drop it from the
/// routing mesh and the VIPs (a session round trip and a rules update,
/// tens of milliseconds; two seconds leave room for a loaded node).
pub const BALANCER_DRAIN: Duration = Duration::from_secs(2);

pub enum WorkerEvent {
    /// The full set of tasks assigned to this node.
    Assignments(Vec<Task>),
    /// A supervisor finished (its task reached a terminal state).
    Finished(String),
    /// Stop every task (daemon stop or swarm leave) and answer when done.
    Shutdown {
        reason: String,
        done: oneshot::Sender<()>,
    },
}

struct Supervised {
    stop: Option<oneshot::Sender<String>>,
    handle: tokio::task::JoinHandle<()>,
}

pub struct Worker {
    executors: HashMap<&'static str, Arc<dyn Executor>>,
    reporter: Arc<Reporter>,
    events: mpsc::Sender<WorkerEvent>,
    running: HashMap<String, Supervised>,
    /// Tasks that reached a terminal state, while they stay assigned: never restarted.
    finished: HashSet<String>,
    assigned: HashSet<String>,
    /// The supervised tasks' IDs, shared with the load sampler ([`crate::metrics`]).
    supervised: SupervisedTasks,
    /// Plumbs tasks on overlay networks; `None` in tests without networks.
    overlay: Option<Overlay>,
}

/// The IDs of the tasks a worker supervises right now.
pub type SupervisedTasks = Arc<std::sync::Mutex<HashSet<String>>>;

impl Worker {
    /// Starts the worker: adopts what a previous agent left running, queues
    /// what it recorded, and reconciles every event from `receiver`.
    pub async fn spawn(
        executors: Vec<Arc<dyn Executor>>,
        reporter: Arc<Reporter>,
    ) -> (mpsc::Sender<WorkerEvent>, tokio::task::JoinHandle<()>) {
        Self::spawn_sharing(executors, reporter, SupervisedTasks::default()).await
    }

    /// [`Worker::spawn`], keeping `supervised` up to date with the tasks it
    /// supervises.
    pub async fn spawn_sharing(
        executors: Vec<Arc<dyn Executor>>,
        reporter: Arc<Reporter>,
        supervised: SupervisedTasks,
    ) -> (mpsc::Sender<WorkerEvent>, tokio::task::JoinHandle<()>) {
        Self::spawn_networked(executors, reporter, supervised, None).await
    }

    /// [`Worker::spawn_sharing`], attaching tasks on networks through
    /// `overlay` before they start and detaching them when they end.
    pub async fn spawn_networked(
        executors: Vec<Arc<dyn Executor>>,
        reporter: Arc<Reporter>,
        supervised: SupervisedTasks,
        overlay: Option<Overlay>,
    ) -> (mpsc::Sender<WorkerEvent>, tokio::task::JoinHandle<()>) {
        let (events, receiver) = mpsc::channel(64);
        let mut worker = Worker {
            executors: executors.iter().map(|e| (e.runtime(), e.clone())).collect(),
            reporter,
            events: events.clone(),
            running: HashMap::new(),
            finished: HashSet::new(),
            assigned: HashSet::new(),
            supervised,
            overlay,
        };
        for executor in &executors {
            // Adopt first: a process that dies meanwhile is then reported by
            // its supervisor, never started a second time.
            for adopted in executor.adopt().await {
                worker.supervise(
                    adopted.task_id,
                    adopted.controller,
                    DEFAULT_STOP_GRACE,
                    None,
                );
            }
            for (task_id, exit) in executor.recorded_exits().await {
                if worker.running.contains_key(&task_id) {
                    continue;
                }
                worker
                    .reporter
                    .report(&task_id, recorded_status(&exit, now_ms()));
                worker.finished.insert(task_id);
            }
        }
        // The overlay keeps the plumbing of adopted tasks and tears down
        // what a previous agent made for tasks that ended meanwhile.
        if let Some(overlay) = worker.overlay.as_ref() {
            overlay
                .retain(worker.running.keys().cloned().collect())
                .await;
        }
        let handle = tokio::spawn(worker.run(receiver));
        (events, handle)
    }

    async fn run(mut self, mut receiver: mpsc::Receiver<WorkerEvent>) {
        while let Some(event) = receiver.recv().await {
            match event {
                WorkerEvent::Assignments(tasks) => self.reconcile(tasks).await,
                WorkerEvent::Finished(task_id) => {
                    self.running.remove(&task_id);
                    self.supervised
                        .lock()
                        .expect("supervised lock")
                        .remove(&task_id);
                    if forget_on_exit(&task_id, &self.assigned) {
                        self.remove(&task_id).await;
                    } else {
                        self.finished.insert(task_id);
                    }
                }
                WorkerEvent::Shutdown { reason, done } => {
                    for supervised in self.running.values_mut() {
                        if let Some(stop) = supervised.stop.take() {
                            let _ = stop.send(reason.clone());
                        }
                    }
                    for (_, supervised) in self.running.drain() {
                        let _ = supervised.handle.await;
                    }
                    self.supervised.lock().expect("supervised lock").clear();
                    let _ = done.send(());
                    return;
                }
            }
        }
    }

    /// Decides what the assignment set means ([`decide`]) and does it.
    async fn reconcile(&mut self, tasks: Vec<Task>) {
        let observed = Observed {
            supervised: self.running.keys().map(String::as_str).collect(),
            finished: self.finished.iter().map(String::as_str).collect(),
            runtimes: self.executors.keys().copied().collect(),
        };
        let decision = decide(tasks, &observed, now_ms());
        self.assigned = decision.assigned;
        for (task_id, status) in decision.end_unstarted {
            self.reporter.report(&task_id, status);
            self.finished.insert(task_id);
        }
        for (task, grace) in decision.start {
            let runtime = task.spec.as_ref().map(|s| s.runtime.as_str()).unwrap_or("");
            let executor = self.executors[runtime].clone();
            let controller = executor.controller(&task);
            self.supervise(task.id.clone(), controller, grace, Some(task));
        }
        for task_id in decision.stop {
            let stop = self.running.get_mut(&task_id).and_then(|s| s.stop.take());
            if let Some(stop) = stop {
                let _ = stop.send(RETIRED.to_string());
            }
        }
        for task_id in decision.forget {
            self.finished.remove(&task_id);
            self.remove(&task_id).await;
        }
    }

    async fn remove(&self, task_id: &str) {
        for executor in self.executors.values() {
            executor.remove(task_id).await;
        }
    }

    /// `task`: the assignment to start; `None` for a task adopted running.
    fn supervise(
        &mut self,
        task_id: String,
        controller: Box<dyn Controller>,
        grace: Duration,
        task: Option<Task>,
    ) {
        let (stop, stopped) = oneshot::channel();
        let handle = tokio::spawn(supervise(
            task_id.clone(),
            controller,
            grace,
            (task, self.overlay.clone()),
            self.reporter.clone(),
            stopped,
            self.events.clone(),
        ));
        self.supervised
            .lock()
            .expect("supervised lock")
            .insert(task_id.clone());
        self.running.insert(
            task_id,
            Supervised {
                stop: Some(stop),
                handle,
            },
        );
    }
}

/// Drives one task from assignment to a terminal state.
async fn supervise(
    task_id: String,
    mut controller: Box<dyn Controller>,
    grace: Duration,
    (task, overlay): (Option<Task>, Option<Overlay>),
    reporter: Arc<Reporter>,
    mut stop: oneshot::Receiver<String>,
    events: mpsc::Sender<WorkerEvent>,
) {
    let adopted = task.is_none();
    let networked = task
        .filter(overlay::is_networked)
        // A node without overlay support is given no task on a network of
        // its spec (the scheduler keeps them off); the ingress network's
        // address a published service's task may still carry is unused
        // there: it runs on the node's network and is no mesh backend.
        .zip(overlay.clone().filter(|o| o.capability().supported))
        .map(|(task, overlay)| Networked { task, overlay });
    let outcome = run_task(
        &task_id,
        controller.as_mut(),
        grace,
        Start {
            adopted,
            networked: networked.as_ref(),
        },
        &reporter,
        &mut stop,
    )
    .await;
    // Its interfaces, resolver and namespace go with it (a no-op for a
    // task on no network).
    if let Some(overlay) = overlay {
        overlay.detach(&task_id).await;
    }
    controller.record_exit(&outcome).await;
    reporter.report(&task_id, recorded_status(&outcome, now_ms()));
    let _ = events.send(WorkerEvent::Finished(task_id)).await;
}

/// A task on overlay networks and the overlay that plumbs it.
struct Networked {
    task: Task,
    overlay: Overlay,
}

/// How [`run_task`] starts a task.
struct Start<'a> {
    /// Found running: only watched.
    adopted: bool,
    networked: Option<&'a Networked>,
}

async fn run_task(
    task_id: &str,
    controller: &mut dyn Controller,
    grace: Duration,
    Start { adopted, networked }: Start<'_>,
    reporter: &Reporter,
    stop: &mut oneshot::Receiver<String>,
) -> RecordedExit {
    let failed = |e: ExecutorError| RecordedExit {
        shutdown: false,
        unhealthy: false,
        exit_code: None,
        message: e.to_string(),
    };
    if !adopted {
        reporter.report(task_id, status(TaskState::Accepted, "accepted", now_ms()));
        reporter.report(task_id, status(TaskState::Preparing, "preparing", now_ms()));
        if let Err(e) = controller.prepare().await {
            if let ExecutorError::Rejected(message) = &e {
                let mut rejected = status(TaskState::Rejected, "rejected", now_ms());
                rejected.err = message.clone();
                reporter.report(task_id, rejected);
            }
            return failed(e);
        }
        if let Ok(reason) = stop.try_recv() {
            return RecordedExit {
                shutdown: true,
                unhealthy: false,
                exit_code: None,
                message: reason,
            };
        }
        reporter.report(task_id, status(TaskState::Starting, "starting", now_ms()));
        let runtime = networked
            .and_then(|n| n.task.spec.as_ref())
            .map(|s| s.runtime.as_str());
        // A process is spawned inside its namespace, which must be plumbed
        // first; a container brings its own, plumbed once it runs.
        if let (Some(networked), Some("process")) = (networked, runtime) {
            if let Err(e) = networked.overlay.attach(&networked.task, None).await {
                return failed(ExecutorError::Failed(format!("overlay network: {e}")));
            }
        }
        if let Err(e) = controller.start().await {
            return failed(e);
        }
        if let (Some(networked), Some(runtime)) = (networked, runtime) {
            if runtime != "process" {
                let attached = match controller.netns_pid().await {
                    Some(pid) => networked.overlay.attach(&networked.task, Some(pid)).await,
                    None => Err("the task has no process to plumb".to_string()),
                };
                if let Err(e) = attached {
                    controller.shutdown(grace).await;
                    return failed(ExecutorError::Failed(format!("overlay network: {e}")));
                }
            }
        }
    }
    // With a health check, a task is running once the check first passes
    // (an adopted task was reported running already).
    let mut health = controller.health().await;
    let mut waiting = health.is_some() && !adopted;
    if waiting {
        reporter.report(
            task_id,
            status(TaskState::Starting, MESSAGE_WAITING_FOR_HEALTH, now_ms()),
        );
    } else {
        reporter.report(task_id, status(TaskState::Running, "started", now_ms()));
    }
    loop {
        let event = tokio::select! {
            exit = controller.wait() => Event::Exited(exit),
            reason = &mut *stop => Event::Stop(reason.unwrap_or_else(|_| "shutdown".into())),
            health = next_health(&mut health) => Event::Health(health),
        };
        match event {
            Event::Exited(exit) => return ended(exit),
            Event::Stop(reason) => {
                // A task the managers retired has left every node's load
                // balancing (mesh and VIPs) with its desired state, but the
                // nodes learn it over their sessions: it keeps serving a
                // moment, so that connections sent its way meanwhile are
                // answered, not refused. The drain is part of the grace.
                let drain = if networked.is_some() && reason == RETIRED {
                    BALANCER_DRAIN.min(grace)
                } else {
                    Duration::ZERO
                };
                if !drain.is_zero() {
                    tokio::select! {
                        exit = controller.wait() => return ended(exit),
                        () = tokio::time::sleep(drain) => {}
                    }
                }
                let exit = controller.shutdown(grace - drain).await;
                return RecordedExit {
                    shutdown: true,
                    unhealthy: false,
                    exit_code: exit_code(exit),
                    message: reason,
                };
            }
            Event::Health(Some(Health::Unhealthy(reason))) => {
                tracing::info!(task = %task_id, %reason, "stopping an unhealthy task");
                let exit = controller.shutdown(grace).await;
                return RecordedExit {
                    shutdown: false,
                    unhealthy: true,
                    exit_code: exit_code(exit),
                    message: format!("task: unhealthy: {reason}"),
                };
            }
            Event::Health(Some(Health::Healthy)) if waiting => {
                waiting = false;
                reporter.report(
                    task_id,
                    status(TaskState::Running, "started (healthy)", now_ms()),
                );
            }
            Event::Health(None) if waiting => {
                // The controller's check broke off: better running unchecked
                // than starting forever.
                tracing::warn!(task = %task_id, "the health check ended before it passed");
                waiting = false;
                reporter.report(task_id, status(TaskState::Running, "started", now_ms()));
            }
            // Starting again, or healthy again: nothing to report.
            Event::Health(_) => {}
        }
    }
}

/// What [`run_task`] waits for once the task started.
enum Event {
    Exited(Exit),
    Stop(String),
    /// A new health, or `None` once the health check ended.
    Health(Option<Health>),
}

/// The next change of health; never resolves without a health check, nor
/// after it ended.
async fn next_health(health: &mut Option<watch::Receiver<Health>>) -> Option<Health> {
    let Some(receiver) = health.as_mut() else {
        return std::future::pending().await;
    };
    if receiver.changed().await.is_ok() {
        return Some(receiver.borrow_and_update().clone());
    }
    *health = None;
    None
}

/// How a task that ended on its own is recorded.
fn ended(exit: Exit) -> RecordedExit {
    let message = match exit {
        Exit::Code(0) => "finished".to_string(),
        Exit::Code(code) => format!("task: non-zero exit ({code})"),
        Exit::Signal(signal) => format!("task: killed by signal {signal}"),
        Exit::Unknown => "the process ended while the agent was not watching it".to_string(),
    };
    RecordedExit {
        shutdown: false,
        unhealthy: false,
        exit_code: exit_code(exit),
        message,
    }
}

fn exit_code(exit: Exit) -> Option<i32> {
    match exit {
        Exit::Code(code) => Some(code),
        Exit::Signal(signal) => Some(128 + signal),
        Exit::Unknown => None,
    }
}

#[cfg(test)]
mod tests;
