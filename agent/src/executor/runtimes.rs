//! The node's runtimes as one: what `service logs`, `service exec`, the
//! node's description and its volume list and removals need from the
//! executors, owned here so that those callers sit above the executor layer
//! and never the other way round.

use std::path::PathBuf;
use std::sync::Arc;

use shoal_proto::v1::{Volume, VolumeRemoval};

use super::docker::DockerExecutor;
use crate::secrets::Secrets;
use crate::volumes::ProcessVolumes;

/// The node's runtimes and what they share: where process tasks live, the
/// node's ID, the Docker engine when it answered at start, and the granted
/// secrets. What answers for the node as a whole — its description, `service
/// logs`, `service exec`, its volumes — reads the runtimes through this.
pub struct NodeRuntimes {
    pub tasks_dir: PathBuf,
    pub node_id: String,
    pub docker: Option<Arc<DockerExecutor>>,
    /// The node's granted secrets and configs (held with the runtimes: the
    /// session fills it from each assignment set).
    pub secrets: Arc<Secrets>,
}

impl NodeRuntimes {
    /// What the node reports: its process volumes and its engine volumes.
    pub async fn volumes(&self) -> Vec<Volume> {
        let data_dir = self.tasks_dir.parent().unwrap_or(&self.tasks_dir);
        let users = super::process::volume_users(&self.tasks_dir);
        let mut volumes = ProcessVolumes::new(data_dir).list(&users);
        if let Some(docker) = self.docker.as_ref() {
            volumes.extend(docker.volumes().await);
        }
        volumes
    }

    /// Removes `name` from this node (its process volume, its engine volume, or
    /// both), answering as the leader expects.
    pub async fn remove_volume(&self, name: &str) -> VolumeRemoval {
        let data_dir = self.tasks_dir.parent().unwrap_or(&self.tasks_dir);
        let users = super::process::volume_users(&self.tasks_dir);
        let mut found = false;
        let mut errors = Vec::new();
        match ProcessVolumes::new(data_dir).remove(name, &users) {
            Ok(removed) => found |= removed,
            Err(e) => {
                found = true;
                errors.push(e)
            }
        }
        if let Some(docker) = self.docker.as_ref() {
            match docker.remove_volume(name).await {
                Ok(removed) => found |= removed,
                Err(e) => {
                    found = true;
                    errors.push(e)
                }
            }
        }
        if !found {
            errors.push(format!("no such volume: {name}"));
        }
        VolumeRemoval {
            node_id: self.node_id.clone(),
            name: name.to_string(),
            error: errors.join("; "),
        }
    }
}
