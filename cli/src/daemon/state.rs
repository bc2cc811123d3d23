//! A node's membership record: `state.json` in the data dir, written last
//! (atomically) when the node joins or creates a swarm and removed first
//! when it leaves. Its presence is what "this node is in a swarm" means.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The role in `state.json` ("manager" / "worker"): the certificate's role type.
pub use shoal_security::Role;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeState {
    pub node_id: String,
    pub cluster_id: String,
    pub role: Role,
    /// Raft member ID (managers only).
    pub raft_id: Option<u64>,
    /// Where a manager listens.
    pub listen_addr: Option<String>,
    /// The address other nodes reach this node at.
    pub advertise_addr: String,
    /// Managers the agent may connect to.
    pub managers: Vec<String>,
    /// The node IDs of the managers, as the swarm last listed them: the
    /// agent accepts manager certificates only from these (empty in
    /// records of older releases: then the first session fills it in).
    #[serde(default)]
    pub manager_ids: Vec<String>,
    /// Raft timing of the cluster (managers), fixed at `swarm init`.
    #[serde(default)]
    pub raft: Option<shoal_proto::v1::RaftConfig>,
}

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("state.json")
}

impl NodeState {
    pub fn load(data_dir: &Path) -> anyhow::Result<Option<Self>> {
        let path = path(data_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is corrupt", path.display()))
                .map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn save(&self, data_dir: &Path) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(self)?;
        shoal_security::files::write_atomic(&path(data_dir), &bytes, 0o600)?;
        Ok(())
    }

    pub fn remove(data_dir: &Path) -> anyhow::Result<()> {
        match std::fs::remove_file(path(data_dir)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}
