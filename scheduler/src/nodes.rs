//! The nodes as the manager sees them: readiness, availability, role,
//! platform, labels and resources. The bottom of the crate: constraints
//! match against these.

use std::collections::BTreeMap;

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
