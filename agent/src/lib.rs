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
//! - [`executor`]: the executor trait and the process executor.
//! - [`health`]: health checks' rules, and the prober for process tasks.
//! - [`reporter`]: task status reports waiting for a manager.
//! - [`metrics`]: samples the tasks' CPU and memory for the heartbeats (autoscaling).
//! - [`logs`], [`exec`]: `service logs` and `service exec`, answered over the log broker.
//! - [`volumes`]: process tasks' volume directories, and the node's volume
//!   list and removals for the leader.

// deny, not forbid: between fork and exec the process executor joins the
// task's cgroup (`executor::process::cgroup`), restores the task's umask
// (`executor::process`) and sets up its mount namespace
// (`executor::process::mountns`); those closures are the only unsafe code.
#![deny(unsafe_code)]

pub mod description;
pub mod exec;
pub mod executor;
pub mod health;
pub mod logs;
pub mod metrics;
pub mod reporter;
pub mod session;
pub mod volumes;
pub mod worker;

pub use session::{spawn, AgentConfig, AgentHandle};
