//! The shoal agent: every node's worker half. It holds a session with a
//! manager over mutual TLS, reports what the node is, heartbeats, and keeps
//! the assignment stream open; tasks it is assigned are run by executors
//! (they arrive with services).
//!
//! The agent never changes desired state; it only reports what it observes.
//! When no manager answers it keeps trying another, and whatever it runs
//! keeps running: the data plane does not depend on the control plane.
//!
//! # Layout
//! - [`description`]: what the node reports about itself (hostname, platform, resources).
//! - [`session`]: the session loop with the managers.

#![forbid(unsafe_code)]

pub mod description;
pub mod session;

pub use session::{spawn, AgentConfig, AgentHandle};
