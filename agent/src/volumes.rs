//! The node's volumes: process tasks' named volumes (directories under
//! `<data dir>/volumes/`, created on first use and kept after the task). The
//! list the agent reports with its heartbeats — those directories and the
//! engine volumes shoal created on this node — and removals the leader asks
//! for (`volume rm`, `stack rm --volumes`) are answered across runtimes by
//! [`crate::executor::runtimes::NodeRuntimes`], from what this module keeps.
//!
//! A process volume is `<data dir>/volumes/<name>/` (0700: no other local
//! user can reach the data through the host's tree) holding `volume.json`
//! (labels, creation time) and `_data`, the directory bound at the task's
//! target in its mount namespace. `_data` is 0755 and owned by the task's
//! user when the volume is made, as an empty volume is in a container.
//!
//! The engine is asked only about volumes carrying this node's label: on a
//! host whose engine several nodes share (tests, or a node restarted under
//! another ID) each node reports what it created.

use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use shoal_proto::v1::{Mount, MountType, Task, Volume, VolumeRemoval};

use crate::executor::docker::config::LABEL_STACK_NAMESPACE;

const META_FILE: &str = "volume.json";
const DATA_DIR: &str = "_data";

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Meta {
    labels: HashMap<String, String>,
    created_at_ms: i64,
}

/// Process volumes under one node's data dir.
#[derive(Debug, Clone)]
pub struct ProcessVolumes {
    root: PathBuf,
}

impl ProcessVolumes {
    pub fn new(data_dir: &Path) -> Self {
        ProcessVolumes {
            root: data_dir.join("volumes"),
        }
    }

    fn dir(&self, name: &str) -> Result<PathBuf, String> {
        // The manager validated names already; a path out of the root must
        // still never be built from what a spec says.
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(format!("invalid volume name {name:?}"));
        }
        Ok(self.root.join(name))
    }

    /// The `_data` directory of volume `name`, made (with the mount's
    /// labels and the task's stack, owned by `owner`) when it is new.
    pub fn ensure(
        &self,
        task: &Task,
        mount: &Mount,
        owner: Option<(nix::unistd::Uid, nix::unistd::Gid)>,
    ) -> Result<PathBuf, String> {
        let dir = self.dir(&mount.source)?;
        let data = dir.join(DATA_DIR);
        if data.is_dir() {
            return Ok(data);
        }
        let private = |path: &Path| {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))
        };
        private(&self.root)?;
        private(&dir)?;
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&data)
            .or_else(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(|e| format!("cannot create {}: {e}", data.display()))?;
        // The umask may have narrowed the mode.
        let _ = std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755));
        if let Some((uid, gid)) = owner {
            nix::unistd::chown(&data, Some(uid), Some(gid))
                .map_err(|e| format!("cannot give {} to uid {uid}: {e}", data.display()))?;
        }
        let mut labels = mount.volume_labels.clone();
        if let Some(stack) = task
            .spec
            .as_ref()
            .and_then(|s| s.labels.get(LABEL_STACK_NAMESPACE))
        {
            labels.insert(LABEL_STACK_NAMESPACE.to_string(), stack.clone());
        }
        let meta = Meta {
            labels,
            created_at_ms: shoal_proto::clock::now_ms(),
        };
        let bytes = serde_json::to_vec(&meta).map_err(|e| e.to_string())?;
        crate::executor::write_atomically(&dir.join(META_FILE), &bytes)
            .map_err(|e| format!("cannot write {}: {e}", dir.join(META_FILE).display()))?;
        Ok(data)
    }

    /// Every process volume, with the tasks using it (`users`: volume name
    /// → task IDs of live tasks).
    pub fn list(&self, users: &HashMap<String, Vec<String>>) -> Vec<Volume> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut volumes: Vec<Volume> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().join(DATA_DIR).is_dir())
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let meta: Option<Meta> = std::fs::read(e.path().join(META_FILE))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                Volume {
                    task_ids: users.get(&name).cloned().unwrap_or_default(),
                    name,
                    driver: "local".into(),
                    runtime: "process".into(),
                    labels: meta.map(|m| m.labels).unwrap_or_default(),
                    mountpoint: e.path().join(DATA_DIR).display().to_string(),
                }
            })
            .collect();
        volumes.sort_by(|a, b| a.name.cmp(&b.name));
        volumes
    }

    /// Removes volume `name` and its data, unless a live task uses it.
    /// `Ok(false)`: there is no such volume here.
    pub fn remove(&self, name: &str, users: &HashMap<String, Vec<String>>) -> Result<bool, String> {
        let dir = self.dir(name)?;
        if !dir.exists() {
            return Ok(false);
        }
        if let Some(tasks) = users.get(name).filter(|t| !t.is_empty()) {
            return Err(format!(
                "volume {name} is in use by task {}: remove its service first",
                tasks.join(", ")
            ));
        }
        std::fs::remove_dir_all(&dir)
            .map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
        Ok(true)
    }
}

/// How often the volume list goes with a heartbeat.
pub const REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// When the next volume list is due: at a session's first heartbeat (a new
/// leader knows nothing), every [`REPORT_EVERY`], and with removal answers.
#[derive(Debug, Default)]
pub struct ReportClock {
    last: Option<tokio::time::Instant>,
}

impl ReportClock {
    pub fn due(&mut self, removals: &[VolumeRemoval]) -> bool {
        let now = tokio::time::Instant::now();
        let due = !removals.is_empty() || self.last.is_none_or(|l| now - l >= REPORT_EVERY);
        if due {
            self.last = Some(now);
        }
        due
    }
}

/// The named volumes of a task's spec, by name.
pub fn volume_names(task: &Task) -> Vec<String> {
    task.spec
        .as_ref()
        .map(|s| {
            s.mounts
                .iter()
                .filter(|m| m.r#type == MountType::Volume as i32 && !m.source.is_empty())
                .map(|m| m.source.clone())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use shoal_proto::v1::TaskSpec;

    use super::*;

    #[test]
    fn a_volume_is_made_once_private_and_kept_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let volumes = ProcessVolumes::new(dir.path());
        let mut task = Task {
            spec: Some(TaskSpec::default()),
            ..Default::default()
        };
        task.spec
            .as_mut()
            .unwrap()
            .labels
            .insert(LABEL_STACK_NAMESPACE.into(), "shop".into());
        let mount = Mount {
            source: "db".into(),
            target: "/data".into(),
            ..Default::default()
        };
        let data = volumes.ensure(&task, &mount, None).unwrap();
        std::fs::write(data.join("kept"), b"1").unwrap();
        assert_eq!(volumes.ensure(&task, &mount, None).unwrap(), data);
        assert!(data.join("kept").exists());
        let mode = std::fs::metadata(dir.path().join("volumes/db"))
            .unwrap()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let listed = volumes.list(&HashMap::new());
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].labels.get(LABEL_STACK_NAMESPACE).unwrap(), "shop");
        let users = HashMap::from([("db".to_string(), vec!["t1".to_string()])]);
        assert!(volumes.remove("db", &users).unwrap_err().contains("in use"));
        assert!(volumes.remove("db", &HashMap::new()).unwrap());
        assert!(!volumes.remove("db", &HashMap::new()).unwrap());
        assert!(volumes
            .ensure(
                &task,
                &Mount {
                    source: "../x".into(),
                    ..mount
                },
                None
            )
            .is_err());
    }
}
