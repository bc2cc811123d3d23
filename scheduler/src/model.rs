//! What the scheduler is asked and answers: the pending tasks, the tasks
//! already placed, and the decisions (the nodes are [`crate::nodes`]).

use crate::nodes::Resources;
use crate::placement::Placement;

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
