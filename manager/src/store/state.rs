//! What the store holds and says: the replicated objects
//! ([`ClusterState`]), the events published after a change, and why a
//! command did not apply. The store's files all name these; the commands
//! and their dispatch are in the parent module.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use shoal_proto::v1::{Cluster, Meta, Network, Node, Service, Task};

/// The kinds of stored object, for messages.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum ObjectKind {
    Cluster,
    Node,
    Service,
    Task,
    Network,
    Secret,
    Config,
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ObjectKind::Cluster => "cluster",
            ObjectKind::Node => "node",
            ObjectKind::Service => "service",
            ObjectKind::Task => "task",
            ObjectKind::Network => "network",
            ObjectKind::Secret => "secret",
            ObjectKind::Config => "config",
        })
    }
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

/// The result of applying one command, returned to its proposer.
pub type CommandResult = Result<(), StoreError>;

/// What applying a log entry returns: one result, or one per command of a batch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Applied {
    One(CommandResult),
    Many(Vec<CommandResult>),
}

impl Applied {
    /// The result of a single command (a batch fails if any part failed).
    pub fn into_result(self) -> CommandResult {
        match self {
            Applied::One(result) => result,
            Applied::Many(results) => results.into_iter().find(|r| r.is_err()).unwrap_or(Ok(())),
        }
    }
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Removed,
}

/// A change published to in-process watchers after it applied.
// Events are short-lived clones on a broadcast channel; see `Command`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum StoreEvent {
    ClusterUpdated(Cluster),
    Node(Change, Node),
    Service(Change, Service),
    Task(Change, Task),
    Network(Change, Network),
    /// A secret or config, by ID (events never carry secret data).
    Secret(Change, String),
    Config(Change, String),
    /// The whole state was replaced (a snapshot was installed): re-read everything.
    Reset,
}

/// The replicated objects.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ClusterState {
    pub cluster: Option<Cluster>,
    pub nodes: BTreeMap<String, Node>,
    pub services: BTreeMap<String, Service>,
    pub tasks: BTreeMap<String, Task>,
    /// Overlay networks by ID.
    pub networks: BTreeMap<String, Network>,
    /// Secrets and configs by ID.
    pub secrets: BTreeMap<String, shoal_proto::v1::Secret>,
    pub configs: BTreeMap<String, shoal_proto::v1::Config>,
}

pub(crate) fn bump(meta: &mut Option<Meta>, at_ms: i64) {
    let meta = meta.get_or_insert_with(Meta::default);
    meta.version += 1;
    meta.updated_at_ms = at_ms;
}
