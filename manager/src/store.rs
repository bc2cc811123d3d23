//! The cluster store: the objects the managers agree on (cluster, nodes,
//! services, tasks), the commands that change them, and the watch stream of
//! applied changes.
//!
//! `ClusterState::apply` is the Raft state machine's only write path. It is
//! deterministic: no clock, no randomness, no files; timestamps and IDs come
//! inside the command, chosen by the proposer. A command that cannot apply
//! (an unknown node, say) changes nothing and returns an error that travels
//! back to the proposer — the same on every manager.
//!
//! Raft I/O lives in [`crate::raft`]; this module knows nothing about logs.

use std::collections::BTreeMap;

mod shared;
pub use shared::SharedStore;

use serde::{Deserialize, Serialize};
use shoal_proto::v1::{Cluster, Meta, Node, NodeDescription, NodeRole, NodeState, NodeStatus};

/// Every change the cluster store can apply. Variants are only ever added at
/// the end: their index is part of the on-disk log format.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Command {
    /// Creates the cluster object at `swarm init`.
    CreateCluster(Cluster),
    /// Replaces one join token (rotation).
    SetJoinToken {
        role: NodeRole,
        token: String,
        at_ms: i64,
    },
    /// Adds a node that was just issued a certificate.
    CreateNode(Node),
    /// A node's agent opened a session: record what it reported, mark it Ready.
    NodeSessionStarted {
        node_id: String,
        description: NodeDescription,
        addr: String,
        at_ms: i64,
    },
    /// A node stopped heartbeating.
    NodeDown {
        node_id: String,
        message: String,
        at_ms: i64,
    },
    /// `node rm`: the node is forgotten and its certificate refused from now on.
    RemoveNode { node_id: String },
}

/// Why a command did not apply. Deterministic, so every manager agrees.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {id} not found")]
    NotFound { kind: ObjectKind, id: String },
    #[error("{kind} {id} already exists")]
    AlreadyExists { kind: ObjectKind, id: String },
    #[error("{0}")]
    Conflict(String),
}

/// The kinds of stored object, for messages.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum ObjectKind {
    Cluster,
    Node,
    Service,
    Task,
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ObjectKind::Cluster => "cluster",
            ObjectKind::Node => "node",
            ObjectKind::Service => "service",
            ObjectKind::Task => "task",
        })
    }
}

/// The result of applying one command, returned to its proposer.
pub type CommandResult = Result<(), StoreError>;

/// A change published to in-process watchers after it applied.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreEvent {
    ClusterUpdated(Cluster),
    NodeCreated(Node),
    NodeUpdated(Node),
    NodeRemoved(Node),
    /// The whole state was replaced (a snapshot was installed): re-read everything.
    Reset,
}

/// The replicated objects.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ClusterState {
    pub cluster: Option<Cluster>,
    pub nodes: BTreeMap<String, Node>,
}

fn bump(meta: &mut Option<Meta>, at_ms: i64) {
    let meta = meta.get_or_insert_with(Meta::default);
    meta.version += 1;
    meta.updated_at_ms = at_ms;
}

impl ClusterState {
    /// Applies `command`, appending the resulting changes to `events`.
    pub fn apply(&mut self, command: Command, events: &mut Vec<StoreEvent>) -> CommandResult {
        match command {
            Command::CreateCluster(cluster) => {
                if let Some(existing) = &self.cluster {
                    return Err(StoreError::AlreadyExists {
                        kind: ObjectKind::Cluster,
                        id: existing.id.clone(),
                    });
                }
                events.push(StoreEvent::ClusterUpdated(cluster.clone()));
                self.cluster = Some(cluster);
            }
            Command::SetJoinToken { role, token, at_ms } => {
                let cluster = self.cluster.as_mut().ok_or(StoreError::NotFound {
                    kind: ObjectKind::Cluster,
                    id: String::new(),
                })?;
                let tokens = cluster.join_tokens.get_or_insert_with(Default::default);
                match role {
                    NodeRole::Worker => tokens.worker = token,
                    NodeRole::Manager => tokens.manager = token,
                }
                bump(&mut cluster.meta, at_ms);
                events.push(StoreEvent::ClusterUpdated(cluster.clone()));
            }
            Command::CreateNode(node) => {
                if self.nodes.contains_key(&node.id) {
                    return Err(StoreError::AlreadyExists {
                        kind: ObjectKind::Node,
                        id: node.id,
                    });
                }
                events.push(StoreEvent::NodeCreated(node.clone()));
                self.nodes.insert(node.id.clone(), node);
            }
            Command::NodeSessionStarted {
                node_id,
                description,
                addr,
                at_ms,
            } => {
                let node = self.node_mut(&node_id)?;
                node.description = Some(description);
                node.status = Some(NodeStatus {
                    state: NodeState::Ready as i32,
                    message: String::new(),
                    addr,
                });
                bump(&mut node.meta, at_ms);
                events.push(StoreEvent::NodeUpdated(node.clone()));
            }
            Command::NodeDown {
                node_id,
                message,
                at_ms,
            } => {
                let node = self.node_mut(&node_id)?;
                let status = node.status.get_or_insert_with(Default::default);
                status.state = NodeState::Down as i32;
                status.message = message;
                bump(&mut node.meta, at_ms);
                events.push(StoreEvent::NodeUpdated(node.clone()));
            }
            Command::RemoveNode { node_id } => {
                let node = self.nodes.remove(&node_id).ok_or(StoreError::NotFound {
                    kind: ObjectKind::Node,
                    id: node_id.clone(),
                })?;
                if let Some(cluster) = self.cluster.as_mut() {
                    cluster.removed_nodes.push(node_id);
                    events.push(StoreEvent::ClusterUpdated(cluster.clone()));
                }
                events.push(StoreEvent::NodeRemoved(node));
            }
        }
        Ok(())
    }

    fn node_mut(&mut self, node_id: &str) -> Result<&mut Node, StoreError> {
        self.nodes.get_mut(node_id).ok_or(StoreError::NotFound {
            kind: ObjectKind::Node,
            id: node_id.to_string(),
        })
    }

    /// Whether `node_id` was removed with `node rm` (its certificate is refused).
    pub fn is_removed(&self, node_id: &str) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|c| c.removed_nodes.iter().any(|n| n == node_id))
    }
}

#[cfg(test)]
mod tests;
