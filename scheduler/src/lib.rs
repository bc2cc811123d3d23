//! Pure task placement: given what the nodes are and what already runs where,
//! decide where each pending task goes, or say why it fits nowhere.
//!
//! No I/O, no async, no clock: the manager's scheduler loop builds the views,
//! calls [`schedule`], and writes the decisions through Raft. Orchestrators
//! decide *how many* tasks exist; this crate only decides *where*.
//!
//! Placement is Swarm's model. A filter pipeline ([`filter`]) — ready,
//! availability, runtime, overlay networking, resource reservations, constraints ([`constraint`]),
//! max replicas per node — keeps the nodes that can take a task, each filter
//! able to say why it rejects one. A task whose slot left data in a node's
//! named volume prefers that node when it passes them all. Among the others, spread preferences
//! ([`placement`]) choose the label value with the fewest tasks of the
//! service (level by level), then the node with the fewest tasks of the
//! service wins, then the one with the fewest tasks overall, then the lowest
//! node ID, so decisions are deterministic. A whole batch of pending tasks is
//! placed in one pass, each placement counting (tasks, reservations) for the
//! next; the `batch` module does it in O(log nodes) per task.
//!
//! # Layout
//! - [`constraint`]: `node.labels.zone==eu` and friends: parsing, matching.
//! - [`placement`]: a service's constraints, spread preferences and limit.
//! - [`filter`]: node filters and their explanations.
//! - `batch`: the batch engine (spread trees of node heaps).

#![forbid(unsafe_code)]

mod batch;
pub mod constraint;
pub mod filter;
pub mod placement;

use std::collections::BTreeMap;

pub use constraint::{Constraint, ConstraintError, ConstraintKey, Operator};
pub use filter::{explain, Filter, NodeLoad};
pub use placement::{Placement, Preference, PreferenceError};

/// Whether a node accepts new tasks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Availability {
    #[default]
    Active,
    Pause,
    Drain,
}

/// A node's role in the swarm (`node.role` in constraints).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Role {
    #[default]
    Worker,
    Manager,
}

/// What a node reported about itself (`node.platform.*` in constraints),
/// e.g. `linux` / `x86_64`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
}

/// CPU and memory: what a node has, or what a task reserves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Resources {
    /// Billionths of a CPU (`--reserve-cpu 0.5` is 500_000_000).
    pub nano_cpus: u64,
    pub memory_bytes: u64,
}

/// What the scheduler knows of a node. `Default` knows nothing (not ready,
/// no runtime, no resources); [`NodeView::new`] is a ready, active node.
#[derive(Debug, Clone, Default)]
pub struct NodeView {
    pub id: String,
    pub hostname: String,
    pub role: Role,
    /// The node's spec labels (`node.labels.KEY`).
    pub labels: BTreeMap<String, String>,
    pub platform: Platform,
    pub ready: bool,
    pub availability: Availability,
    pub runtimes: Vec<String>,
    /// What the node reported in total; tasks' reservations are taken off.
    pub resources: Resources,
    /// `Some(why)` when the node cannot attach tasks to overlay networks.
    pub overlay_unavailable: Option<String>,
    /// `Some(why)` when the node cannot hold secrets and configs off disk.
    pub secrets_unavailable: Option<String>,
    /// `Some(why)` when the node cannot give process tasks their own
    /// mounts (volumes, tmpfs, read-only root, another user).
    pub mounts_unavailable: Option<String>,
}

impl NodeView {
    /// A ready, active node with nothing else known; fill in the rest.
    pub fn new(id: impl Into<String>) -> Self {
        NodeView {
            id: id.into(),
            ready: true,
            ..NodeView::default()
        }
    }
}

/// A pending task to place.
#[derive(Debug, Clone, Default)]
pub struct TaskRequest {
    pub id: String,
    pub service_id: String,
    pub runtime: String,
    pub placement: Placement,
    /// Zero reserves nothing and fits any node.
    pub reservations: Resources,
    /// The task joins overlay networks: only nodes that can attach it fit.
    pub needs_overlay: bool,
    /// The task is granted secrets or configs: only nodes that keep them
    /// in memory fit.
    pub needs_secrets: bool,
    /// Host-mode published ports the task binds on its node: no two tasks
    /// binding the same one share a node.
    pub host_ports: Vec<HostPort>,
    /// A process task with mounts: only nodes that can mount for it fit.
    pub needs_mounts: bool,
    /// The node its slot's previous task ran on, when that task had a
    /// node-local named volume: chosen when it passes every filter, so the
    /// replacement finds its data.
    pub preferred_node: Option<String>,
}

/// A host-mode published port (`--publish mode=host,published=8080,…`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    pub port: u32,
    pub udp: bool,
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.port, if self.udp { "udp" } else { "tcp" })
    }
}

impl TaskRequest {
    /// A task without placement rules or reservations.
    pub fn new(
        id: impl Into<String>,
        service_id: impl Into<String>,
        runtime: impl Into<String>,
    ) -> Self {
        TaskRequest {
            id: id.into(),
            service_id: service_id.into(),
            runtime: runtime.into(),
            ..TaskRequest::default()
        }
    }
}

/// A live task already on a node: counts towards spreading and the
/// max-replicas limit, and its reservations are taken off the node's.
#[derive(Debug, Clone, Default)]
pub struct Placed {
    pub service_id: String,
    pub node_id: String,
    pub reservations: Resources,
    /// Host-mode ports it binds on its node.
    pub host_ports: Vec<HostPort>,
}

impl Placed {
    /// A placed task reserving nothing.
    pub fn new(service_id: impl Into<String>, node_id: impl Into<String>) -> Self {
        Placed {
            service_id: service_id.into(),
            node_id: node_id.into(),
            ..Placed::default()
        }
    }
}

/// The decisions for one batch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decisions {
    /// `(task ID, node ID)`, in the order of the pending tasks.
    pub assigned: Vec<(String, String)>,
    /// `(task ID, reason)`, e.g. "no suitable node (runtime docker not available on 3 nodes)",
    /// in the order of the pending tasks. Each node counts once, under its
    /// first failing filter, as the nodes stand at the end of the batch.
    pub unplaced: Vec<(String, String)>,
}

/// Places `pending` on `nodes`, given the `placed` tasks already running.
/// Tasks are taken in order, each seeing the placements before it.
pub fn schedule(nodes: &[NodeView], placed: &[Placed], pending: &[TaskRequest]) -> Decisions {
    batch::schedule(nodes, placed, pending)
}

#[cfg(test)]
mod tests;
