//! The shoal agent: every node's worker half. It holds a session with a
//! manager over mutual TLS, reports what the node is, heartbeats, receives the
//! node's assignment set, runs exactly those tasks through its executors, and
//! reports their states.
//!
//! The agent never changes desired state; it only reports what it observes.
//! When no manager answers it keeps trying another, and whatever it runs
//! keeps running: the data plane does not depend on the control plane.
//!
//! # Layout
//! - [`description`]: what the node reports about itself (hostname, platform, resources).
//! - [`session`]: the session loop with the managers.
//! - [`worker`]: reconciles assignments against supervised tasks.
//! - [`executor`]: the executor traits, the process and docker executors,
//!   stop grace, and [`executor::runtimes::NodeRuntimes`] (the node's
//!   runtimes as one).
//! - [`task_env`]: a task's environment, `PATH` and spawn command, shared by
//!   the executors and `service exec`.
//! - [`health`]: health checks' rules, and the prober for process tasks.
//! - [`secrets`]: granted secrets and configs, in memory and a tmpfs only.
//! - [`reporter`]: task status reports waiting for a manager.
//! - [`overlay`]: overlay networks on this node (namespaces, plumbing, embedded DNS).
//! - [`ingress`]: how the node serves published ports; the userspace L4 proxy fallback.
//! - [`metrics`]: samples the tasks' CPU and memory for the heartbeats (autoscaling).
//! - [`subscriptions`]: the log broker's subscription stream, answered by
//!   [`logs`] and [`exec`] (`service logs` and `service exec`), leaves over
//!   the executors.
//! - [`volumes`]: process tasks' volume directories, and the node's volume
//!   list and removals for the leader.

// deny, not forbid: between fork and exec the process executor joins the
// task's cgroup (`executor::process::cgroup`), restores the task's umask
// (`executor::process`), sets up its mount namespace
// (`executor::process::mountns`) and enters a networked task's namespaces
// (`overlay::enter`); those closures are the only unsafe code.
#![deny(unsafe_code)]

pub mod description;
pub mod exec;
pub mod executor;
pub mod health;
pub mod ingress;
pub mod logs;
pub mod metrics;
pub mod overlay;
pub mod reporter;
pub mod secrets;
pub mod session;
pub mod subscriptions;
pub mod task_env;
pub mod volumes;
pub mod worker;

pub use session::{spawn, AgentConfig, AgentHandle};
