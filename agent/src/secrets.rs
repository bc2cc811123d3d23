//! Secrets and configs on the node: held in memory as the latest
//! assignments carried them, and written only into a tmpfs the agent mounts
//! (0700, under `DATA_DIR/run/secrets`), one directory per task, with the
//! owner and mode the grant asks for. The executors bind those files into
//! their tasks; [`Secrets::release`] deletes a task's files when it ends,
//! and the tmpfs is unmounted when no task holds any. A node that runs no
//! task granted a secret has no copy of it anywhere: the managers never send
//! it one ([`shoal_proto::v1::AssignmentsMessage`]) and nothing here writes
//! to disk.
//!
//! Mounting a tmpfs needs root (CAP_SYS_ADMIN). A node without it says so in
//! its description ([`Secrets::capability`]) and the scheduler places no
//! task with a grant there, as Docker requires a tmpfs for secrets rather
//! than fall back to the disk.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use shoal_proto::v1::{Config, FileTarget, Secret, SecretsCapability, Task};

/// Docker's default mode of a granted file.
const DEFAULT_MODE: u32 = 0o444;

/// One granted file, ready to be bound into a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedFile {
    /// The file in the agent's tmpfs.
    pub host_path: PathBuf,
    /// Where the task sees it (e.g. `/run/secrets/db_password`).
    pub target: String,
    /// The grant's name for it, for messages and the process fallback.
    pub name: String,
    /// A secret (true) or a config.
    pub secret: bool,
}

#[derive(Default)]
struct Held {
    secrets: HashMap<String, Vec<u8>>,
    configs: HashMap<String, Vec<u8>>,
    /// Tasks whose files are written.
    tasks: std::collections::HashSet<String>,
    mounted: bool,
}

/// The node's secrets and configs.
pub struct Secrets {
    root: PathBuf,
    /// `Some(why)` when this node cannot keep them in a tmpfs.
    unavailable: Option<String>,
    held: Mutex<Held>,
}

impl Secrets {
    /// The store for an agent whose data lives in `data_dir`. Nothing is
    /// mounted until a task needs a file.
    pub fn new(data_dir: &Path) -> Self {
        let unavailable = (!nix::unistd::geteuid().is_root()).then(|| {
            "secrets and configs need a tmpfs, which only root can mount (the daemon runs unprivileged)"
                .to_string()
        });
        Secrets {
            root: data_dir.join("run").join("secrets"),
            unavailable,
            held: Mutex::new(Held::default()),
        }
    }

    /// What the node's description says about it.
    pub fn capability(&self) -> SecretsCapability {
        SecretsCapability {
            supported: self.unavailable.is_none(),
            reason: self.unavailable.clone().unwrap_or_default(),
        }
    }

    /// The mount point of the tmpfs.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Replaces what is held with what the latest assignments carry: a
    /// secret no task here is granted any more is dropped from memory.
    pub fn update(&self, secrets: Vec<Secret>, configs: Vec<Config>) {
        let mut held = self.held.lock().expect("secrets lock");
        held.secrets = secrets
            .into_iter()
            .map(|s| (s.id, s.spec.map(|spec| spec.data).unwrap_or_default()))
            .collect();
        held.configs = configs
            .into_iter()
            .map(|c| (c.id, c.spec.map(|spec| spec.data).unwrap_or_default()))
            .collect();
    }

    /// Whether `task` is granted any secret or config.
    pub fn has_grants(task: &Task) -> bool {
        task.spec
            .as_ref()
            .is_some_and(|s| !s.secrets.is_empty() || !s.configs.is_empty())
    }

    /// Writes the files `task` is granted into the tmpfs (mounting it first
    /// if needed) and says where each goes; an error says what is missing.
    pub fn materialize(&self, task: &Task) -> Result<Vec<GrantedFile>, String> {
        if !Self::has_grants(task) {
            return Ok(Vec::new());
        }
        if let Some(why) = &self.unavailable {
            return Err(why.clone());
        }
        let spec = task.spec.clone().unwrap_or_default();
        let mut held = self.held.lock().expect("secrets lock");
        if !held.mounted {
            mount_tmpfs(&self.root)?;
            held.mounted = true;
        }
        let dir = self.root.join(&task.id);
        // A retried prepare starts from nothing.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir)
            .and_then(|_| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)))
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        held.tasks.insert(task.id.clone());
        let mut files = Vec::new();
        for (n, grant) in spec.secrets.iter().enumerate() {
            let data = held.secrets.get(&grant.secret_id).ok_or_else(|| {
                format!(
                    "secret {} has not reached this node yet (it arrives with the task's assignment): retrying",
                    grant.secret_name
                )
            })?;
            let host_path = dir.join(format!("secret-{n}"));
            let file = grant.file.clone().unwrap_or_default();
            write_file(&host_path, data, &file)?;
            let name = if file.name.is_empty() {
                grant.secret_name.clone()
            } else {
                file.name.clone()
            };
            files.push(GrantedFile {
                host_path,
                target: secret_path(&name),
                name,
                secret: true,
            });
        }
        for (n, grant) in spec.configs.iter().enumerate() {
            let data = held.configs.get(&grant.config_id).ok_or_else(|| {
                format!(
                    "config {} has not reached this node yet (it arrives with the task's assignment): retrying",
                    grant.config_name
                )
            })?;
            let host_path = dir.join(format!("config-{n}"));
            let file = grant.file.clone().unwrap_or_default();
            write_file(&host_path, data, &file)?;
            let name = if file.name.is_empty() {
                grant.config_name.clone()
            } else {
                file.name.clone()
            };
            files.push(GrantedFile {
                host_path,
                target: config_path(&name),
                name,
                secret: false,
            });
        }
        Ok(files)
    }

    /// Deletes `task_id`'s files; the last task out unmounts the tmpfs.
    pub fn release(&self, task_id: &str) {
        let mut held = self.held.lock().expect("secrets lock");
        if !held.tasks.remove(task_id) {
            return;
        }
        let dir = self.root.join(task_id);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(task = %task_id, error = %e, "cannot remove a task's secret files");
        }
        if held.tasks.is_empty() && held.mounted {
            unmount(&self.root);
            held.mounted = false;
        }
    }

    /// Deletes every file and unmounts (the daemon stops or leaves).
    pub fn clear(&self) {
        let tasks: Vec<String> = {
            let held = self.held.lock().expect("secrets lock");
            held.tasks.iter().cloned().collect()
        };
        for task in tasks {
            self.release(&task);
        }
        let mut held = self.held.lock().expect("secrets lock");
        held.secrets.clear();
        held.configs.clear();
    }
}

/// Where a granted file appears in the task: the rule the managers and
/// agents share.
pub use shoal_proto::grants::{config_path, secret_path};

fn parse_id(value: &str) -> u32 {
    value.parse().unwrap_or(0)
}

/// Writes one granted file: created owner-only, then given the grant's
/// owner and mode (so it is never readable by others in between).
fn write_file(path: &Path, data: &[u8], target: &FileTarget) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    file.write_all(data).map_err(fail)?;
    std::os::unix::fs::fchown(
        &file,
        Some(parse_id(&target.uid)),
        Some(parse_id(&target.gid)),
    )
    .map_err(fail)?;
    let mode = if target.mode == 0 {
        DEFAULT_MODE
    } else {
        target.mode
    };
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(fail)?;
    Ok(())
}

/// Mounts a private tmpfs at `root` (0700), unless one is there already
/// (an agent that restarted while tasks held files).
fn mount_tmpfs(root: &Path) -> Result<(), String> {
    std::fs::create_dir_all(root)
        .and_then(|_| std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700)))
        .map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    if is_mount_point(root) {
        return Ok(());
    }
    use nix::mount::MsFlags;
    nix::mount::mount(
        Some("tmpfs"),
        root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=0700"),
    )
    .map_err(|e| {
        format!(
            "cannot mount a tmpfs for secrets at {}: {e}",
            root.display()
        )
    })
}

fn unmount(root: &Path) {
    // Detached: a container that still holds a bind of a file keeps it
    // until it goes, and the agent is not blocked by it.
    if let Err(e) = nix::mount::umount2(root, nix::mount::MntFlags::MNT_DETACH) {
        tracing::warn!(path = %root.display(), error = %e, "cannot unmount the secrets tmpfs");
    }
}

/// Whether `path` is a mount point (listed in /proc/self/mountinfo).
fn is_mount_point(path: &Path) -> bool {
    let Ok(path) = path.canonicalize() else {
        return false;
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|mount_point| Path::new(mount_point) == path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::v1::{ConfigReference, SecretReference, SecretSpec, TaskSpec};

    #[test]
    fn targets_follow_docker() {
        assert_eq!(secret_path("db"), "/run/secrets/db");
        assert_eq!(secret_path("/etc/pw"), "/etc/pw");
        assert_eq!(config_path("app.conf"), "/app.conf");
        assert_eq!(config_path("/etc/app.conf"), "/etc/app.conf");
    }

    #[test]
    fn a_task_without_grants_needs_nothing_and_an_unknown_secret_is_said() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = Secrets::new(dir.path());
        let plain = Task {
            id: "t1".into(),
            spec: Some(TaskSpec::default()),
            ..Default::default()
        };
        assert_eq!(secrets.materialize(&plain).unwrap(), Vec::new());
        assert!(!dir.path().join("run").exists(), "nothing mounted for it");

        secrets.update(
            vec![Secret {
                id: "s1".into(),
                meta: None,
                spec: Some(SecretSpec {
                    name: "pw".into(),
                    data: b"x".to_vec(),
                    ..Default::default()
                }),
            }],
            Vec::new(),
        );
        let granted = Task {
            id: "t2".into(),
            spec: Some(TaskSpec {
                secrets: vec![SecretReference {
                    secret_id: "s1".into(),
                    secret_name: "pw".into(),
                    file: None,
                }],
                configs: vec![ConfigReference {
                    config_id: "c-unknown".into(),
                    config_name: "app".into(),
                    file: None,
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let result = secrets.materialize(&granted);
        secrets.release("t2");
        if nix::unistd::geteuid().is_root() {
            let e = result.unwrap_err();
            assert!(e.contains("config app has not reached this node"), "{e}");
            assert!(!dir.path().join("run/secrets/t2").exists());
        } else {
            assert!(result.unwrap_err().contains("only root"));
        }
    }
}
