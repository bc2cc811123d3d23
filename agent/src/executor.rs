//! Executors run tasks. One trait per runtime, with one controller per task
//! whose lifecycle is prepare → start → wait → shutdown → remove (as swarmkit's
//! `exec.Controller`). The worker drives controllers and turns what they
//! report into task states; controllers never decide desired state.
//!
//! # Layout
//! - [`process`]: tasks as plain processes in their own process group.
//! - [`docker`]: tasks as containers through the Docker Engine API.
//! - [`runtimes`]: the node's runtimes as one ([`runtimes::NodeRuntimes`]),
//!   for what answers for the whole node (logs, exec, volumes, description).
//!
//! This module holds what every runtime shares: the traits, how a task
//! ended, and its stop grace ([`stop_grace`]). What a task's environment is
//! lives in [`crate::task_env`]; the worker, `service logs` and `service
//! exec` sit above this layer and nothing here uses them.

pub mod docker;
pub mod process;
pub mod runtimes;

use std::time::Duration;

use shoal_proto::v1::Task;
use tokio::sync::watch;

use crate::health::Health;

/// Stop grace period when the spec gives none, as Docker's.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

/// How long a task gets between SIGTERM and SIGKILL: its spec's grace
/// period, else [`DEFAULT_STOP_GRACE`].
pub fn stop_grace(task: &Task) -> Duration {
    task.spec
        .as_ref()
        .map(|s| s.stop_grace_period_ms)
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_STOP_GRACE)
}

/// How a task's main process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exit code (or 128 + signal number when killed by a signal).
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
    /// It ended while nothing was watching it (the agent was restarting).
    Unknown,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The task cannot run here at all (bad command, missing executable).
    #[error("{0}")]
    Rejected(String),
    /// Starting or stopping failed.
    #[error("{0}")]
    Failed(String),
}

/// A task found still running when the agent started.
pub struct Adopted {
    pub task_id: String,
    pub controller: Box<dyn Controller>,
}

/// A runtime.
#[tonic::async_trait]
pub trait Executor: Send + Sync + 'static {
    /// The runtime name tasks ask for ("process", "docker").
    fn runtime(&self) -> &'static str;

    /// A controller for a task assigned to this node.
    fn controller(&self, task: &Task) -> Box<dyn Controller>;

    /// Tasks left running by a previous agent on this node.
    async fn adopt(&self) -> Vec<Adopted>;

    /// What previous agents recorded about tasks that ended while they were
    /// stopped or crashed, by task ID.
    async fn recorded_exits(&self) -> Vec<(String, RecordedExit)>;

    /// Removes what a finished task left on the node.
    async fn remove(&self, task_id: &str);

    /// The cumulative CPU time and current memory of those of `task_ids`
    /// this runtime runs and can measure (the agent's sampler turns them
    /// into rates for the autoscaler). Tasks it cannot measure are left out.
    async fn usage(&self, _task_ids: &[String]) -> Vec<(String, Usage)> {
        Vec::new()
    }
}

/// One reading of a task's load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time used since the task started, in nanoseconds.
    pub cpu_ns: u64,
    /// Memory in use now, without the inactive page cache.
    pub memory_bytes: Option<u64>,
}

/// A task's final state written to disk, so that a restarted agent can still
/// report it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordedExit {
    pub shutdown: bool,
    /// Stopped by the agent because its health check failed: FAILED whatever
    /// the exit code (a program that exits 0 on SIGTERM still failed).
    #[serde(default)]
    pub unhealthy: bool,
    pub exit_code: Option<i32>,
    pub message: String,
}

/// One task's lifecycle.
#[tonic::async_trait]
pub trait Controller: Send + 'static {
    /// Checks and sets up everything the task needs before it starts.
    async fn prepare(&mut self) -> Result<(), ExecutorError>;
    /// Starts the task.
    async fn start(&mut self) -> Result<(), ExecutorError>;
    /// Resolves when the task ends on its own. Cancel-safe.
    async fn wait(&mut self) -> Exit;
    /// Stops the task: SIGTERM, then SIGKILL after `grace`.
    async fn shutdown(&mut self, grace: Duration) -> Exit;
    /// The task's health as its health check sees it: a receiver that sees
    /// every change, starting from [`Health::Starting`]; `None` when the task
    /// has no health check. Called once, after `start` (or on an adopted
    /// task); checking ends with the task. What an unhealthy task becomes is
    /// the worker's decision.
    async fn health(&mut self) -> Option<watch::Receiver<Health>> {
        None
    }
    /// The PID whose network namespace is the task's (a container's init),
    /// for plumbing it onto overlay networks once it runs; `None` when the
    /// runtime spawns tasks into namespaces it is given (processes).
    async fn netns_pid(&mut self) -> Option<u32> {
        None
    }
    /// Records how the task ended, for a restarted agent.
    async fn record_exit(&mut self, exit: &RecordedExit);
    /// Removes what the task left on the node (its directory, logs).
    async fn remove(&mut self);
}

/// Writes a task record atomically and durably (the workspace's one atomic
/// write, `shoal_security::files::write_atomic`), owner-only.
pub(crate) fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    shoal_security::files::write_atomic(path, bytes, 0o600).map_err(std::io::Error::other)
}

/// A spawned helper (a health prober or watcher) that ends with its
/// controller: aborted when dropped.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
