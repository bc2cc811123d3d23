//! The process executor: a task is its command run as a child in its own
//! process group, with the service's environment plus `SHOAL_TASK_ID`,
//! `SHOAL_TASK_SLOT`, `SHOAL_TASK_NAME`, `SHOAL_SERVICE_NAME` and
//! `SHOAL_NODE_ID`, stdout and stderr appended to files under
//! `<data dir>/tasks/<task id>/`.
//!
//! Stopping sends SIGTERM to the whole group and SIGKILL after the grace
//! period; when the main process ends, whatever it left in its group is
//! killed too, so a task never leaves orphans. Each task directory holds a
//! `pid` file (PID and kernel start time, so a reused PID is not mistaken for
//! the task) through which a restarted agent finds and adopts its processes,
//! `task.json` (the task as assigned, so that an adopted task keeps its health
//! check) and `exit.json` once the task ended.
//!
//! A task's health check runs beside it, as the task runs (same environment
//! and directory, see [`crate::task_env::task_command`]), in its own process
//! group; [`crate::health`] holds the rules. CPU and memory limits are
//! enforced through cgroups where the node allows it ([`cgroup`]).
//!
//! Mounts (named volumes, binds, tmpfs), a read-only root and another user
//! are given to a task in a mount namespace of its own ([`mountns`]); its
//! named volumes are the node's directories ([`crate::volumes`]).
//!
//! # Layout
//! - [`cgroup`]: a task's cgroups and limits.
//! - [`mountns`]: a task's private mount namespace: the plan and its executor.

pub mod cgroup;
pub mod mountns;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use shoal_proto::v1::Task;
use tokio::process::Child;
use tokio::sync::watch;

use self::cgroup::{Cgroups, Limits};
use super::{
    write_atomically, AbortOnDrop, Adopted, Controller, Executor, ExecutorError, Exit,
    RecordedExit, Usage,
};
use crate::health::{self, Health, HealthConfig};
use crate::secrets::Secrets;
use crate::task_env::{search_path, task_command, task_env_command};

/// How often an adopted process (not our child) is checked for life.
const ADOPTED_POLL: Duration = Duration::from_millis(200);
/// The task as assigned, in its directory.
const TASK_FILE: &str = "task.json";

pub struct ProcessExecutor {
    tasks_dir: PathBuf,
    node_id: String,
    cgroups: Arc<Cgroups>,
    volumes: crate::volumes::ProcessVolumes,
    /// Where granted secrets and configs are written; none: a task granted
    /// any is refused.
    secrets: Option<Arc<Secrets>>,
}

impl ProcessExecutor {
    /// Tasks live under `data_dir/tasks`; limits go to the cgroups mounted
    /// at `/sys/fs/cgroup`.
    pub fn new(data_dir: &Path, node_id: &str) -> Self {
        Self::with_cgroups(data_dir, node_id, Cgroups::detect())
    }

    /// [`ProcessExecutor::new`] with the given cgroups.
    pub fn with_cgroups(data_dir: &Path, node_id: &str, cgroups: Cgroups) -> Self {
        ProcessExecutor {
            tasks_dir: data_dir.join("tasks"),
            node_id: node_id.to_string(),
            cgroups: Arc::new(cgroups),
            volumes: crate::volumes::ProcessVolumes::new(data_dir),
            secrets: None,
        }
    }

    /// Binds granted secrets and configs from `secrets` into tasks' mount
    /// namespaces, read-only at their targets.
    pub fn with_secrets(mut self, secrets: Arc<Secrets>) -> Self {
        self.secrets = Some(secrets);
        self
    }

    fn controller_for(
        &self,
        dir: PathBuf,
        task: Option<Task>,
        pid: Option<ProcessId>,
    ) -> ProcessController {
        ProcessController {
            dir,
            task,
            node_id: self.node_id.clone(),
            cgroups: self.cgroups.clone(),
            volumes: self.volumes.clone(),
            secrets: self.secrets.clone(),
            mounts: None,
            child: None,
            pid,
            started: None,
            prober: None,
        }
    }
}

#[tonic::async_trait]
impl Executor for ProcessExecutor {
    fn runtime(&self) -> &'static str {
        "process"
    }

    fn controller(&self, task: &Task) -> Box<dyn Controller> {
        Box::new(self.controller_for(self.tasks_dir.join(&task.id), Some(task.clone()), None))
    }

    async fn adopt(&self) -> Vec<Adopted> {
        let mut adopted = Vec::new();
        for (task_id, dir) in task_dirs(&self.tasks_dir) {
            if dir.join("exit.json").exists() {
                continue;
            }
            let Some(pid) = read_pid_file(&dir.join("pid")) else {
                continue;
            };
            if !pid.is_alive() {
                continue;
            }
            tracing::info!(task = %task_id, pid = pid.pid, "adopting a running task process");
            // Absent when an older agent started it: then it is only watched
            // and stopped, without its health check.
            let task = std::fs::read(dir.join(TASK_FILE))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            adopted.push(Adopted {
                task_id,
                controller: Box::new(self.controller_for(dir, task, Some(pid))),
            });
        }
        adopted
    }

    async fn recorded_exits(&self) -> Vec<(String, RecordedExit)> {
        let mut exits = Vec::new();
        for (task_id, dir) in task_dirs(&self.tasks_dir) {
            if let Some(exit) = std::fs::read(dir.join("exit.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
            {
                exits.push((task_id, exit));
            } else if let Some(pid) = read_pid_file(&dir.join("pid")) {
                if !pid.is_alive() {
                    // It died while no agent watched: its code is lost.
                    exits.push((
                        task_id,
                        RecordedExit {
                            shutdown: false,
                            unhealthy: false,
                            exit_code: None,
                            message: "the process ended while the agent was not running".into(),
                        },
                    ));
                }
            }
        }
        exits
    }

    async fn usage(&self, task_ids: &[String]) -> Vec<(String, Usage)> {
        task_ids
            .iter()
            .filter_map(|id| {
                let usage = self.cgroups.usage(id)?;
                Some((
                    id.clone(),
                    Usage {
                        cpu_ns: usage.cpu_ns,
                        memory_bytes: usage.memory_bytes,
                    },
                ))
            })
            .collect()
    }

    async fn remove(&self, task_id: &str) {
        let dir = self.tasks_dir.join(task_id);
        match tokio::fs::remove_dir_all(&dir).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove a task directory")
            }
            _ => {}
        }
        self.cgroups.remove(task_id).await;
        if let Some(secrets) = &self.secrets {
            secrets.release(task_id);
        }
    }
}

fn task_dirs(root: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect()
}

/// A process identified by PID and kernel start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcessId {
    pid: i32,
    start_time: u64,
}

impl ProcessId {
    fn of(pid: i32) -> Option<Self> {
        let (state, start_time) = proc_stat(pid)?;
        (state != 'Z').then_some(ProcessId { pid, start_time })
    }

    /// Alive and still the same process (not a zombie, not a reused PID).
    fn is_alive(&self) -> bool {
        matches!(proc_stat(self.pid), Some((state, start)) if state != 'Z' && start == self.start_time)
    }
}

/// State and start time from /proc/<pid>/stat.
fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 of the full line is the 20th after the command name.
    let start_time = fields.get(19)?.parse().ok()?;
    Some((state, start_time))
}

fn read_pid_file(path: &Path) -> Option<ProcessId> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut parts = text.split_whitespace();
    Some(ProcessId {
        pid: parts.next()?.parse().ok()?,
        start_time: parts.next()?.parse().ok()?,
    })
}

struct ProcessController {
    dir: PathBuf,
    /// Absent for processes adopted without a `task.json`: they are only
    /// watched and stopped.
    task: Option<Task>,
    node_id: String,
    cgroups: Arc<Cgroups>,
    volumes: crate::volumes::ProcessVolumes,
    secrets: Option<Arc<Secrets>>,
    /// The task's mount namespace, made ready by `prepare` (volumes made,
    /// targets created, user resolved); `None` when the task has no mounts,
    /// read-only root or user.
    mounts: Option<PlannedMounts>,
    child: Option<Child>,
    pid: Option<ProcessId>,
    /// When this agent started the task; the health check's start period
    /// counts from here (from adoption for an adopted task).
    started: Option<tokio::time::Instant>,
    /// The health check's prober, stopped with the task.
    prober: Option<AbortOnDrop>,
}

impl ProcessController {
    fn signal_group(&self, signal: Signal) {
        if let Some(pid) = self.pid {
            // The task leads its own group, so its group ID is its PID. ESRCH
            // (nothing left in the group) is fine.
            let _ = killpg(Pid::from_raw(pid.pid), signal);
        }
    }

    async fn wait_exit(&mut self) -> Exit {
        if let Some(child) = self.child.as_mut() {
            let exit = match child.wait().await {
                Ok(status) => {
                    use std::os::unix::process::ExitStatusExt;
                    match (status.code(), status.signal()) {
                        (Some(code), _) => Exit::Code(code),
                        (None, Some(signal)) => Exit::Signal(signal),
                        _ => Exit::Unknown,
                    }
                }
                Err(_) => Exit::Unknown,
            };
            return exit;
        }
        match self.pid {
            Some(pid) => {
                while pid.is_alive() {
                    tokio::time::sleep(ADOPTED_POLL).await;
                }
                Exit::Unknown
            }
            None => Exit::Unknown,
        }
    }
}

fn resolve_program(program: &str, path: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    path.split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| candidate.is_file())
}

impl ProcessController {
    /// Makes the task's volumes, checks its binds, creates missing targets
    /// and plans its mount namespace; `None` when it needs none.
    fn mount_namespace(&self, task: &Task) -> Result<Option<PlannedMounts>, ExecutorError> {
        let spec = task.spec.clone().unwrap_or_default();
        let granted = Secrets::has_grants(task);
        if spec.mounts.is_empty() && !spec.read_only && spec.user.is_empty() && !granted {
            return Ok(None);
        }
        if !nix::unistd::geteuid().is_root() {
            return Err(ExecutorError::Rejected(
                "mounts, secrets, configs, a read-only root and --user need the node's daemon to run as root".into(),
            ));
        }
        let credentials = if spec.user.is_empty() {
            None
        } else {
            Some(mountns::resolve_user(&spec.user).map_err(ExecutorError::Rejected)?)
        };
        let mut request = mountns::Request {
            read_only_root: spec.read_only,
            ..Default::default()
        };
        for mount in &spec.mounts {
            let target = PathBuf::from(&mount.target);
            match shoal_proto::v1::MountType::try_from(mount.r#type) {
                Ok(shoal_proto::v1::MountType::Volume) => {
                    let source = self
                        .volumes
                        .ensure(task, mount, credentials.map(|c| (c.uid, c.gid)))
                        .map_err(ExecutorError::Failed)?;
                    make_target(&target, true)?;
                    request.binds.push(mountns::Bind {
                        source,
                        target,
                        readonly: mount.readonly,
                    });
                }
                Ok(shoal_proto::v1::MountType::Bind) => {
                    let source = PathBuf::from(&mount.source);
                    let Ok(meta) = std::fs::metadata(&source) else {
                        return Err(ExecutorError::Rejected(format!(
                            "invalid mount config for type \"bind\": bind source path {} does not exist on this node",
                            source.display()
                        )));
                    };
                    make_target(&target, meta.is_dir())?;
                    request.binds.push(mountns::Bind {
                        source,
                        target,
                        readonly: mount.readonly,
                    });
                }
                Ok(shoal_proto::v1::MountType::Tmpfs) => {
                    make_target(&target, true)?;
                    request.tmpfs.push(mountns::Tmpfs {
                        target,
                        size_bytes: mount.tmpfs_size,
                        mode: mount.tmpfs_mode,
                    });
                }
                Err(_) => {
                    return Err(ExecutorError::Rejected(format!(
                        "unknown mount type {} for target {}",
                        mount.r#type, mount.target
                    )))
                }
            }
        }
        if granted {
            // The files live in the agent's tmpfs; the task sees each at its
            // target, read-only, in its own namespace only. The target's
            // mount point is made in the host's tree as for a bind (an empty
            // file: no data ever lands there).
            let secrets = self.secrets.clone().ok_or_else(|| {
                ExecutorError::Rejected(
                    "this node keeps no secrets: the task's grants cannot be delivered".into(),
                )
            })?;
            let files = secrets.materialize(task).map_err(|e| {
                secrets.release(&task.id);
                ExecutorError::Failed(e)
            })?;
            for file in files {
                let target = PathBuf::from(&file.target);
                make_target(&target, false)?;
                request.binds.push(mountns::Bind {
                    source: file.host_path,
                    target,
                    readonly: true,
                });
            }
        }
        let planned = PlannedMounts {
            request,
            credentials,
        };
        // Checked now (a path the child cannot take), installed at start.
        planned.install(None)?;
        Ok(Some(planned))
    }
}

/// What `prepare` made ready for a task's mount namespace.
struct PlannedMounts {
    request: mountns::Request,
    credentials: Option<mountns::Credentials>,
}

impl PlannedMounts {
    /// The namespace's operations ready for the child. `resolv_conf`: the
    /// task's generated resolv.conf (the overlay writes it when it attaches
    /// the task, after `prepare`), bound first so that the task's own mounts
    /// win over it: one namespace holds the task's resolver and its mounts.
    fn install(&self, resolv_conf: Option<PathBuf>) -> Result<mountns::Installed, ExecutorError> {
        let mut request = self.request.clone();
        if let Some(source) = resolv_conf {
            request.binds.insert(
                0,
                mountns::Bind {
                    source,
                    target: PathBuf::from(crate::overlay::enter::ETC_RESOLV_CONF),
                    readonly: false,
                },
            );
        }
        let ops = if request.is_empty() {
            Vec::new()
        } else {
            let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| {
                ExecutorError::Failed(format!("cannot read the node's mounts: {e}"))
            })?;
            mountns::plan(&request, &mountinfo)
        };
        mountns::prepare(&ops, self.credentials).map_err(ExecutorError::Rejected)
    }
}

/// A mount target that does not exist on the node is made (a directory, or
/// an empty file for a file bind), as the engine makes it in a container:
/// on a process task's node it stays in the host's tree, empty.
fn make_target(target: &Path, dir: bool) -> Result<(), ExecutorError> {
    if target.exists() {
        return Ok(());
    }
    let made = if dir {
        std::fs::create_dir_all(target)
    } else {
        target
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::File::create(target).map(|_| ()))
    };
    made.map_err(|e| {
        ExecutorError::Failed(format!(
            "cannot create the mount target {} on this node: {e}",
            target.display()
        ))
    })
}

/// For each volume name, the live tasks under `tasks_dir` that mount it:
/// those with a running process (checked by PID and start time).
pub fn volume_users(tasks_dir: &Path) -> std::collections::HashMap<String, Vec<String>> {
    let mut users: std::collections::HashMap<String, Vec<String>> = Default::default();
    for (task_id, dir) in task_dirs(tasks_dir) {
        if dir.join("exit.json").exists()
            || !read_pid_file(&dir.join("pid")).is_some_and(|p| p.is_alive())
        {
            continue;
        }
        let Some(task) = std::fs::read(dir.join(TASK_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<Task>(&b).ok())
        else {
            continue;
        };
        for name in crate::volumes::volume_names(&task) {
            users.entry(name).or_default().push(task_id.clone());
        }
    }
    users
}

#[tonic::async_trait]
impl Controller for ProcessController {
    async fn prepare(&mut self) -> Result<(), ExecutorError> {
        let task = self
            .task
            .as_ref()
            .ok_or_else(|| ExecutorError::Failed("no task spec".into()))?;
        let spec = task.spec.clone().unwrap_or_default();
        let program = spec
            .command
            .first()
            .ok_or_else(|| ExecutorError::Rejected("the task has no command".into()))?;
        let path = search_path();
        if resolve_program(program, &path).is_none() {
            return Err(ExecutorError::Rejected(format!(
                "executable file not found: {program:?} is not a file{}",
                if program.contains('/') {
                    ""
                } else {
                    " in $PATH"
                }
            )));
        }
        HealthConfig::from_spec(spec.healthcheck.as_ref())
            .map_err(|e| ExecutorError::Rejected(e.to_string()))?;
        tokio::fs::create_dir_all(&self.dir).await.map_err(|e| {
            ExecutorError::Failed(format!("cannot create {}: {e}", self.dir.display()))
        })?;
        self.mounts = self.mount_namespace(task)?;
        let task_file = self.dir.join(TASK_FILE);
        serde_json::to_vec(task)
            .map_err(std::io::Error::other)
            .and_then(|bytes| write_atomically(&task_file, &bytes))
            .map_err(|e| {
                ExecutorError::Failed(format!("cannot write {}: {e}", task_file.display()))
            })?;
        Ok(())
    }

    async fn start(&mut self) -> Result<(), ExecutorError> {
        let task = self
            .task
            .as_ref()
            .ok_or_else(|| ExecutorError::Failed("no task spec".into()))?;
        let spec = task.spec.clone().unwrap_or_default();
        let open_log = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(name))
                .map_err(|e| ExecutorError::Failed(format!("cannot open the {name} log: {e}")))
        };
        // With mounts, the task's resolv.conf joins their namespace (one
        // `unshare`); without, entering its namespaces binds it.
        let mounts = match &self.mounts {
            Some(planned) => Some(Arc::new(
                planned.install(crate::overlay::enter::task_resolv_conf(&task.id, &self.dir))?,
            )),
            None => None,
        };
        let command = |cgroup: Option<&cgroup::TaskCgroup>| -> Result<_, ExecutorError> {
            let mut command = if mounts.is_some() {
                let mut command =
                    task_env_command(task, &self.node_id, &self.dir, &spec.command[0]);
                crate::overlay::enter::enter_task_netns(&mut command, &task.id, &self.dir);
                command
            } else {
                task_command(task, &self.node_id, &self.dir, &spec.command[0])
            };
            command
                .args(&spec.command[1..])
                .args(&spec.args)
                .stdin(std::process::Stdio::null())
                .stdout(open_log("stdout.log")?)
                .stderr(open_log("stderr.log")?)
                // Its own group: stopping the task reaches every process it started.
                .process_group(0)
                // The agent stops tasks deliberately; dropping a handle must not.
                .kill_on_drop(false);
            if let Some(cgroup) = cgroup {
                cgroup.join_before_exec(&mut command);
            }
            restore_task_umask(&mut command);
            // Last: it ends by switching to the task's user.
            if let Some(mounts) = &mounts {
                mountns::install(&mut command, mounts.clone());
            }
            Ok(command)
        };
        // Limits or not, the task gets cgroups: they also measure its load.
        let cgroup = self.cgroups.create_accounted(&task.id, Limits::of(task));
        let spawned = match command(cgroup.as_ref())?.spawn() {
            // Joining the cgroups may have failed (or the exec itself, which
            // fails the same way again): limits are not worth a failed task.
            Err(e) if cgroup.is_some() => {
                self.cgroups.warn(
                    &task.id,
                    &format!("starting the task in its cgroup failed: {e}"),
                );
                command(None)?.spawn()
            }
            spawned => spawned,
        };
        let child = spawned.map_err(|e| {
            ExecutorError::Failed(format!("cannot start {:?}: {e}", spec.command[0]))
        })?;
        let raw = child.id().map(|p| p as i32).unwrap_or_default();
        let pid = ProcessId::of(raw).unwrap_or(ProcessId {
            pid: raw,
            start_time: 0,
        });
        let pid_file = self.dir.join("pid");
        write_atomically(
            &pid_file,
            format!("{} {}\n", pid.pid, pid.start_time).as_bytes(),
        )
        .map_err(|e| ExecutorError::Failed(format!("cannot write {}: {e}", pid_file.display())))?;
        self.pid = Some(pid);
        self.child = Some(child);
        self.started = Some(tokio::time::Instant::now());
        Ok(())
    }

    async fn wait(&mut self) -> Exit {
        let exit = self.wait_exit().await;
        // The main process is gone: nothing it started may outlive it, and
        // there is nothing left to check.
        self.signal_group(Signal::SIGKILL);
        // The task ended: its secrets go with it.
        self.release_secrets();
        self.prober = None;
        exit
    }

    async fn shutdown(&mut self, grace: Duration) -> Exit {
        self.signal_group(Signal::SIGTERM);
        let exit = match tokio::time::timeout(grace, self.wait_exit()).await {
            Ok(exit) => exit,
            Err(_) => {
                self.signal_group(Signal::SIGKILL);
                self.wait_exit().await
            }
        };
        self.signal_group(Signal::SIGKILL);
        self.prober = None;
        exit
    }

    async fn health(&mut self) -> Option<watch::Receiver<Health>> {
        let task = self.task.clone()?;
        let check = task.spec.as_ref().and_then(|s| s.healthcheck.as_ref());
        let config = match HealthConfig::from_spec(check) {
            Ok(config) => config?,
            // Only an adopted task gets here: prepare rejects the others.
            Err(e) => {
                tracing::warn!(task = %task.id, "not checking the task's health: {e}");
                return None;
            }
        };
        let (sender, receiver) = watch::channel(Health::Starting);
        let started = *self.started.get_or_insert_with(tokio::time::Instant::now);
        let (node_id, dir) = (self.node_id.clone(), self.dir.clone());
        let argv = config.argv.clone();
        let prober = health::run_prober(config, started, sender, move || {
            let mut command = task_command(&task, &node_id, &dir, &argv[0]);
            command.args(&argv[1..]);
            health::probe(command)
        });
        self.prober = Some(AbortOnDrop(tokio::spawn(prober)));
        Some(receiver)
    }

    async fn record_exit(&mut self, exit: &RecordedExit) {
        if let Ok(bytes) = serde_json::to_vec(exit) {
            let _ = write_atomically(&self.dir.join("exit.json"), &bytes);
        }
    }

    async fn remove(&mut self) {
        if let Err(e) = tokio::fs::remove_dir_all(&self.dir).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove a task directory");
            }
        }
        self.release_secrets();
        if let Some(task_id) = self.dir.file_name().and_then(|n| n.to_str()) {
            self.cgroups.remove(task_id).await;
        }
    }
}

impl ProcessController {
    /// Deletes the task's granted files from the agent's tmpfs.
    fn release_secrets(&self) {
        if let (Some(secrets), Some(task_id)) =
            (&self.secrets, self.dir.file_name().and_then(|n| n.to_str()))
        {
            secrets.release(task_id);
        }
    }
}

/// The daemon runs with umask 077 so that its own files stay private; a task
/// gets Docker's 022 back, so that what it writes is as shareable as it would
/// be in a container.
#[allow(unsafe_code)]
fn restore_task_umask(command: &mut tokio::process::Command) {
    // SAFETY: runs in the forked child before exec, where only
    // async-signal-safe calls are sound: umask(2) is one, and the closure
    // allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(|| {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests;
