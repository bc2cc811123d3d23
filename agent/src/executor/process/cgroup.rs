//! CPU and memory limits for process tasks, through cgroups.
//!
//! A task with limits gets its own cgroup, and its main process joins it
//! between fork and exec, so that nothing it runs escapes the limits:
//! - cgroup v2 (`cgroup.controllers` at the root): `<root>/shoal/<task id>/`
//!   with `memory.max` and `cpu.max`, once `+memory +cpu` are enabled in the
//!   root's and `shoal/`'s `cgroup.subtree_control`;
//! - cgroup v1: `<root>/memory/shoal/<task id>/memory.limit_in_bytes` and
//!   `<root>/cpu/shoal/<task id>/cpu.cfs_quota_us` (+ `cpu.cfs_period_us`).
//!
//! CPUs become a CFS quota per 100 ms period, as Docker's `NanoCpus`.
//! Where cgroups cannot be used (not root, a read-only mount, no controller),
//! tasks run without limits and the agent warns once, saying why: limits are
//! best effort, as the placement already reserved what the task asked for.
//! Removing a task kills whatever is left in its cgroups and removes them.
//!
//! Every task also gets cgroups for *accounting* ([`Cgroups::create_accounted`]),
//! limits or not, so that the agent can read its CPU time and memory for the
//! autoscaler ([`Cgroups::usage`]): v2 `cpu.stat` `usage_usec` and
//! `memory.current`; v1 `cpuacct/shoal/<task>/cpuacct.usage` and
//! `memory/shoal/<task>/memory.usage_in_bytes`. Memory is counted as
//! `docker stats` does: without the inactive page cache.

use std::ffi::CString;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shoal_proto::v1::Task;

/// Where the cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The directory under each hierarchy holding the tasks' cgroups.
const PARENT: &str = "shoal";
/// The CFS period, in µs, as Docker's.
const CPU_PERIOD_US: i64 = 100_000;
/// The smallest quota the kernel accepts, in µs.
const MIN_CPU_QUOTA_US: i64 = 1_000;
/// How long removing waits for killed processes to leave a cgroup.
const REMOVE_PATIENCE: Duration = Duration::from_secs(2);
const REMOVE_RETRY: Duration = Duration::from_millis(20);

/// A task's limits; `None` means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Billionths of a CPU.
    pub nano_cpus: Option<i64>,
    pub memory_bytes: Option<i64>,
}

impl Limits {
    /// The spec's limits; zero means "no limit", as in Swarm.
    pub fn of(task: &Task) -> Limits {
        let limits = task
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.limits)
            .unwrap_or_default();
        Limits {
            nano_cpus: (limits.nano_cpus > 0).then_some(limits.nano_cpus),
            memory_bytes: (limits.memory_bytes > 0).then_some(limits.memory_bytes),
        }
    }

    fn is_empty(&self) -> bool {
        self.nano_cpus.is_none() && self.memory_bytes.is_none()
    }

    /// CFS quota in µs per [`CPU_PERIOD_US`].
    fn cpu_quota_us(nano_cpus: i64) -> i64 {
        (nano_cpus / (1_000_000_000 / CPU_PERIOD_US)).max(MIN_CPU_QUOTA_US)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{0}")]
    Unsupported(String),
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The node's cgroup hierarchies, as far as tasks can use them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hierarchy {
    /// One unified hierarchy.
    V2 { root: PathBuf },
    /// One hierarchy per controller; either may be missing.
    V1 {
        memory: Option<PathBuf>,
        cpu: Option<PathBuf>,
        /// CPU time accounting (often co-mounted with `cpu`).
        cpuacct: Option<PathBuf>,
    },
}

/// What the process executor knows about cgroups on this node.
pub struct Cgroups {
    hierarchy: Result<Hierarchy, String>,
    /// Whether "limits are not enforced" was logged already.
    warned: AtomicBool,
    /// Whether "load is not measured" was logged already.
    warned_accounting: AtomicBool,
}

/// A task's cumulative CPU time and its memory in use, read from its cgroups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupUsage {
    pub cpu_ns: u64,
    pub memory_bytes: Option<u64>,
}

/// A task's cgroups, created and limited, waiting for its process.
pub struct TaskCgroup {
    /// Each cgroup's `cgroup.procs`, as C strings made before the fork: the
    /// child may not allocate.
    procs: Vec<CString>,
}

impl Cgroups {
    /// The hierarchies mounted at `/sys/fs/cgroup`.
    pub fn detect() -> Self {
        Self::detect_at(Path::new(CGROUP_ROOT))
    }

    /// The hierarchies mounted at `root`.
    pub fn detect_at(root: &Path) -> Self {
        Cgroups {
            hierarchy: detect(root),
            warned: AtomicBool::new(false),
            warned_accounting: AtomicBool::new(false),
        }
    }

    /// Creates the task's cgroups with `limits`. `None` when there is nothing
    /// to limit, or when cgroups cannot be used here (which is logged, once).
    pub fn create(&self, task_id: &str, limits: Limits) -> Option<TaskCgroup> {
        if limits.is_empty() {
            return None;
        }
        self.create_with(task_id, limits, false)
    }

    /// [`Cgroups::create`], plus the cgroups that account the task's CPU
    /// time and memory even when it has no limits. `None` when cgroups
    /// cannot be used here: the task then runs unmeasured (logged once).
    pub fn create_accounted(&self, task_id: &str, limits: Limits) -> Option<TaskCgroup> {
        self.create_with(task_id, limits, true)
    }

    fn create_with(&self, task_id: &str, limits: Limits, account: bool) -> Option<TaskCgroup> {
        let created = match &self.hierarchy {
            Ok(hierarchy) => create(hierarchy, task_id, limits, account),
            Err(why) => Err(CgroupError::Unsupported(why.clone())),
        };
        match created {
            Ok(cgroup) => Some(cgroup),
            Err(e) => {
                if limits.is_empty() {
                    self.warn_accounting(task_id, &e);
                } else {
                    self.warn(task_id, &e);
                }
                if let Ok(hierarchy) = &self.hierarchy {
                    for dir in task_dirs(hierarchy, task_id) {
                        let _ = std::fs::remove_dir(dir);
                    }
                }
                None
            }
        }
    }

    /// Logs that `task_id` runs without its limits: a warning the first time,
    /// then quietly, as the reason is the same on one node.
    pub fn warn(&self, task_id: &str, e: &dyn std::fmt::Display) {
        if self.warned.swap(true, Ordering::Relaxed) {
            tracing::debug!(task = %task_id, "CPU and memory limits not enforced: {e}");
        } else {
            tracing::warn!(
                task = %task_id,
                "CPU and memory limits of process tasks are not enforced on this node: {e}"
            );
        }
    }

    fn warn_accounting(&self, task_id: &str, e: &dyn std::fmt::Display) {
        if self.warned_accounting.swap(true, Ordering::Relaxed) {
            tracing::debug!(task = %task_id, "task load not measured: {e}");
        } else {
            tracing::warn!(
                task = %task_id,
                "the CPU and memory use of process tasks cannot be measured on this node \
                 (autoscaling sees no load from them): {e}"
            );
        }
    }

    /// The task's CPU time and memory, from the cgroups
    /// [`Cgroups::create_accounted`] made; `None` when it has none.
    pub fn usage(&self, task_id: &str) -> Option<CgroupUsage> {
        let hierarchy = self.hierarchy.as_ref().ok()?;
        if task_id.is_empty() || task_id.starts_with('.') || task_id.contains(['/', '\0']) {
            return None;
        }
        let read = |path: PathBuf| std::fs::read_to_string(path).ok();
        let stat = |text: &str, key: &str| {
            text.lines().find_map(|line| {
                let (k, v) = line.split_once(' ')?;
                (k == key).then(|| v.trim().parse::<u64>().ok()).flatten()
            })
        };
        match hierarchy {
            Hierarchy::V2 { root } => {
                let dir = root.join(PARENT).join(task_id);
                let cpu_us = stat(&read(dir.join("cpu.stat"))?, "usage_usec")?;
                let memory = read(dir.join("memory.current"))
                    .and_then(|m| m.trim().parse::<u64>().ok())
                    .map(|current| {
                        let inactive = read(dir.join("memory.stat"))
                            .and_then(|s| stat(&s, "inactive_file"))
                            .unwrap_or(0);
                        current.saturating_sub(inactive)
                    });
                Some(CgroupUsage {
                    cpu_ns: cpu_us.saturating_mul(1_000),
                    memory_bytes: memory,
                })
            }
            Hierarchy::V1 {
                memory, cpuacct, ..
            } => {
                let dir = cpuacct.as_ref()?.join(PARENT).join(task_id);
                let cpu_ns = read(dir.join("cpuacct.usage"))?
                    .trim()
                    .parse::<u64>()
                    .ok()?;
                let memory = memory.as_ref().and_then(|m| {
                    let dir = m.join(PARENT).join(task_id);
                    let usage = read(dir.join("memory.usage_in_bytes"))?
                        .trim()
                        .parse::<u64>()
                        .ok()?;
                    let inactive = read(dir.join("memory.stat"))
                        .and_then(|s| stat(&s, "total_inactive_file"))
                        .unwrap_or(0);
                    Some(usage.saturating_sub(inactive))
                });
                Some(CgroupUsage {
                    cpu_ns,
                    memory_bytes: memory,
                })
            }
        }
    }

    /// Kills what is left in the task's cgroups and removes them.
    pub async fn remove(&self, task_id: &str) {
        let Ok(hierarchy) = &self.hierarchy else {
            return;
        };
        for dir in task_dirs(hierarchy, task_id) {
            remove_dir(&dir).await;
        }
    }
}

impl TaskCgroup {
    /// Makes `command`'s process join the task's cgroups after fork, before
    /// exec: everything the task runs is limited from its first instruction.
    #[allow(unsafe_code)]
    pub fn join_before_exec(&self, command: &mut tokio::process::Command) {
        use nix::fcntl::{open, OFlag};
        use nix::sys::stat::Mode;
        use std::os::fd::BorrowedFd;

        let procs = self.procs.clone();
        let join = move || -> std::io::Result<()> {
            for path in &procs {
                let fd = open(
                    path.as_c_str(),
                    OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )?;
                // SAFETY: `fd` was just opened and stays open until the
                // `close` below; nothing else knows it.
                let written = nix::unistd::write(unsafe { BorrowedFd::borrow_raw(fd) }, b"0");
                let _ = nix::unistd::close(fd);
                written?;
            }
            Ok(())
        };
        // SAFETY: the closure runs in the forked child, where only
        // async-signal-safe calls are sound. It makes only open(2), write(2)
        // and close(2) calls through nix, on C strings built above in the
        // parent; it allocates nothing (iterating a Vec by reference, nix's
        // CStr path and Errno→io::Error conversions do not allocate) and
        // takes no locks. Writing "0" to `cgroup.procs` moves the writing
        // process, in v1 and v2 alike.
        unsafe {
            command.pre_exec(join);
        }
    }
}

fn detect(root: &Path) -> Result<Hierarchy, String> {
    if let Ok(controllers) = std::fs::read_to_string(root.join("cgroup.controllers")) {
        let missing: Vec<&str> = ["memory", "cpu"]
            .into_iter()
            .filter(|c| !controllers.split_whitespace().any(|have| have == *c))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "the cgroup v2 hierarchy at {} lacks the {} controller",
                root.display(),
                missing.join(" and ")
            ));
        }
        return Ok(Hierarchy::V2 {
            root: root.to_path_buf(),
        });
    }
    let v1 = |controller: &str, file: &str| {
        let dir = root.join(controller);
        dir.join(file).exists().then_some(dir)
    };
    match (
        v1("memory", "memory.limit_in_bytes"),
        v1("cpu", "cpu.cfs_quota_us"),
    ) {
        (None, None) => Err(format!(
            "no cgroup v2 hierarchy with controllers and no v1 memory or cpu hierarchy under {}",
            root.display()
        )),
        (memory, cpu) => Ok(Hierarchy::V1 {
            memory,
            cpu,
            cpuacct: v1("cpuacct", "cpuacct.usage"),
        }),
    }
}

/// Every cgroup directory a task may have.
fn task_dirs(hierarchy: &Hierarchy, task_id: &str) -> Vec<PathBuf> {
    match hierarchy {
        Hierarchy::V2 { root } => vec![root.join(PARENT).join(task_id)],
        Hierarchy::V1 {
            memory,
            cpu,
            cpuacct,
        } => {
            let mut dirs: Vec<PathBuf> = [memory, cpu, cpuacct]
                .into_iter()
                .flatten()
                .map(|h| h.join(PARENT).join(task_id))
                .collect();
            // Co-mounted controllers (`cpu,cpuacct`) are one directory.
            dirs.dedup();
            dirs
        }
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError {
    let path = path.to_path_buf();
    move |source| CgroupError::Io {
        action,
        path,
        source,
    }
}

fn write(path: PathBuf, value: &str) -> Result<(), CgroupError> {
    std::fs::write(&path, value).map_err(io("write", &path))
}

fn make_dir(path: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(path) {
        Err(e) if e.kind() != ErrorKind::AlreadyExists => Err(io("create", path)(e)),
        _ => Ok(()),
    }
}

/// Enables `controllers` for `dir`'s children (v2).
fn enable(dir: &Path, controllers: &[&str]) -> Result<(), CgroupError> {
    let file = dir.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&file).map_err(io("read", &file))?;
    for controller in controllers {
        if !enabled.split_whitespace().any(|c| c == *controller) {
            write(file.clone(), &format!("+{controller}"))?;
        }
    }
    Ok(())
}

fn create(
    hierarchy: &Hierarchy,
    task_id: &str,
    limits: Limits,
    account: bool,
) -> Result<TaskCgroup, CgroupError> {
    if task_id.is_empty() || task_id.starts_with('.') || task_id.contains(['/', '\0']) {
        return Err(CgroupError::Unsupported(format!(
            "the task ID {task_id:?} cannot name a cgroup"
        )));
    }
    let mut joined = Vec::new();
    match hierarchy {
        Hierarchy::V2 { root } => {
            let mut controllers = Vec::new();
            // `cpu.stat` exists without the cpu controller; `memory.current`
            // needs the memory controller.
            controllers.extend((limits.memory_bytes.is_some() || account).then_some("memory"));
            controllers.extend(limits.nano_cpus.map(|_| "cpu"));
            let parent = root.join(PARENT);
            enable(root, &controllers)?;
            make_dir(&parent)?;
            enable(&parent, &controllers)?;
            let dir = parent.join(task_id);
            make_dir(&dir)?;
            if let Some(bytes) = limits.memory_bytes {
                write(dir.join("memory.max"), &bytes.to_string())?;
            }
            if let Some(nano) = limits.nano_cpus {
                let quota = Limits::cpu_quota_us(nano);
                write(dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
            }
            joined.push(dir);
        }
        Hierarchy::V1 {
            memory,
            cpu,
            cpuacct,
        } => {
            let needed = |h: &Option<PathBuf>, name: &str| {
                h.clone().ok_or_else(|| {
                    CgroupError::Unsupported(format!("no cgroup v1 {name} hierarchy is mounted"))
                })
            };
            if let Some(bytes) = limits.memory_bytes {
                let dir = needed(memory, "memory")?.join(PARENT);
                make_dir(&dir)?;
                let dir = dir.join(task_id);
                make_dir(&dir)?;
                joined.push(dir.clone());
                write(dir.join("memory.limit_in_bytes"), &bytes.to_string())?;
            }
            if let Some(nano) = limits.nano_cpus {
                let dir = needed(cpu, "cpu")?.join(PARENT);
                make_dir(&dir)?;
                let dir = dir.join(task_id);
                make_dir(&dir)?;
                joined.push(dir.clone());
                write(dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                write(
                    dir.join("cpu.cfs_quota_us"),
                    &Limits::cpu_quota_us(nano).to_string(),
                )?;
            }
            if account {
                let accounting = [(memory, limits.memory_bytes.is_none()), (cpuacct, true)];
                for (hierarchy, needed) in accounting {
                    let Some(h) = hierarchy.as_ref().filter(|_| needed) else {
                        continue;
                    };
                    let dir = h.join(PARENT);
                    make_dir(&dir)?;
                    let dir = dir.join(task_id);
                    make_dir(&dir)?;
                    if !joined.contains(&dir) {
                        joined.push(dir);
                    }
                }
                if cpuacct.is_none() {
                    return Err(CgroupError::Unsupported(
                        "no cgroup v1 cpuacct hierarchy is mounted".into(),
                    ));
                }
            }
        }
    }
    let procs = joined
        .iter()
        .map(|dir| {
            let file = dir.join("cgroup.procs");
            CString::new(file.as_os_str().as_bytes()).map_err(|_| {
                CgroupError::Unsupported(format!("{} holds a NUL byte", file.display()))
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(TaskCgroup { procs })
}

/// Kills what is left in the cgroup at `dir` and removes it, waiting a
/// little for the killed processes to leave it.
async fn remove_dir(dir: &Path) {
    let deadline = tokio::time::Instant::now() + REMOVE_PATIENCE;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == ErrorKind::NotFound => return,
            Err(e) if tokio::time::Instant::now() >= deadline => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a task's cgroup");
                return;
            }
            // EBUSY: processes are still in it, such as ones that left the
            // task's process group and so outlived its stop.
            Err(_) => {
                let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
                tokio::time::sleep(REMOVE_RETRY).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            nano_cpus: Some(500_000_000),
            memory_bytes: Some(64 << 20),
        }
    }

    #[test]
    fn v1_limits_are_written_to_per_controller_cgroups() {
        let root = tempfile::tempdir().unwrap();
        for (dir, file) in [
            ("memory", "memory.limit_in_bytes"),
            ("cpu", "cpu.cfs_quota_us"),
        ] {
            std::fs::create_dir(root.path().join(dir)).unwrap();
            std::fs::write(root.path().join(dir).join(file), "-1").unwrap();
        }
        let cgroups = Cgroups::detect_at(root.path());
        let cgroup = cgroups.create("t1", limits()).unwrap();
        let read = |p: &str| std::fs::read_to_string(root.path().join(p)).unwrap();
        assert_eq!(read("memory/shoal/t1/memory.limit_in_bytes"), "67108864");
        assert_eq!(read("cpu/shoal/t1/cpu.cfs_quota_us"), "50000");
        assert_eq!(read("cpu/shoal/t1/cpu.cfs_period_us"), "100000");
        assert_eq!(cgroup.procs.len(), 2);
        assert!(cgroups.create("t2", Limits::default()).is_none());
    }

    #[test]
    fn v2_limits_go_to_one_cgroup_and_missing_controllers_are_reported() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join("cgroup.controllers"),
            "cpuset cpu io memory",
        )
        .unwrap();
        std::fs::write(root.path().join("cgroup.subtree_control"), "").unwrap();
        // A real cgroupfs makes these files with the directory.
        std::fs::create_dir(root.path().join("shoal")).unwrap();
        std::fs::write(root.path().join("shoal/cgroup.subtree_control"), "").unwrap();
        let cgroups = Cgroups::detect_at(root.path());
        let cgroup = cgroups.create("t1", limits()).unwrap();
        let read = |p: &str| std::fs::read_to_string(root.path().join(p)).unwrap();
        assert_eq!(read("shoal/t1/memory.max"), "67108864");
        assert_eq!(read("shoal/t1/cpu.max"), "50000 100000");
        assert_eq!(cgroup.procs.len(), 1);

        let bare = tempfile::tempdir().unwrap();
        std::fs::write(bare.path().join("cgroup.controllers"), "pids").unwrap();
        let why = detect(bare.path()).unwrap_err();
        assert!(why.contains("lacks the memory and cpu controller"), "{why}");
        assert!(Cgroups::detect_at(bare.path())
            .create("t1", limits())
            .is_none());
    }

    #[test]
    fn every_task_is_accounted_and_its_usage_read_back() {
        // v1 with a separate cpuacct hierarchy, as on this project's CI host.
        let root = tempfile::tempdir().unwrap();
        for (dir, file) in [
            ("memory", "memory.limit_in_bytes"),
            ("cpu", "cpu.cfs_quota_us"),
            ("cpuacct", "cpuacct.usage"),
        ] {
            std::fs::create_dir(root.path().join(dir)).unwrap();
            std::fs::write(root.path().join(dir).join(file), "0").unwrap();
        }
        let cgroups = Cgroups::detect_at(root.path());
        let cgroup = cgroups.create_accounted("t1", Limits::default()).unwrap();
        assert_eq!(cgroup.procs.len(), 2, "memory and cpuacct, no cpu limit");
        assert_eq!(cgroups.usage("t1"), None, "nothing written by a kernel yet");
        let write = |p: &str, v: &str| std::fs::write(root.path().join(p), v).unwrap();
        write("cpuacct/shoal/t1/cpuacct.usage", "1500000000\n");
        write("memory/shoal/t1/memory.usage_in_bytes", "10485760\n");
        write(
            "memory/shoal/t1/memory.stat",
            "cache 5\ntotal_inactive_file 2097152\n",
        );
        assert_eq!(
            cgroups.usage("t1"),
            Some(CgroupUsage {
                cpu_ns: 1_500_000_000,
                memory_bytes: Some(8 << 20),
            })
        );
        assert_eq!(cgroups.usage("../t1"), None);

        // v2: one cgroup, memory enabled for `memory.current`.
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("cgroup.controllers"), "cpu memory").unwrap();
        std::fs::write(root.path().join("cgroup.subtree_control"), "").unwrap();
        std::fs::create_dir(root.path().join("shoal")).unwrap();
        std::fs::write(root.path().join("shoal/cgroup.subtree_control"), "").unwrap();
        let cgroups = Cgroups::detect_at(root.path());
        let cgroup = cgroups.create_accounted("t1", Limits::default()).unwrap();
        assert_eq!(cgroup.procs.len(), 1);
        let read = |p: &str| std::fs::read_to_string(root.path().join(p)).unwrap();
        assert_eq!(read("shoal/cgroup.subtree_control"), "+memory");
        let write = |p: &str, v: &str| std::fs::write(root.path().join(p), v).unwrap();
        write("shoal/t1/cpu.stat", "usage_usec 250000\nuser_usec 1\n");
        write("shoal/t1/memory.current", "4096\n");
        assert_eq!(
            cgroups.usage("t1"),
            Some(CgroupUsage {
                cpu_ns: 250_000_000,
                memory_bytes: Some(4096),
            })
        );
    }

    #[test]
    fn cpu_quotas_follow_docker_and_respect_the_kernel_minimum() {
        assert_eq!(Limits::cpu_quota_us(1_000_000_000), 100_000);
        assert_eq!(Limits::cpu_quota_us(2_500_000_000), 250_000);
        assert_eq!(Limits::cpu_quota_us(1), MIN_CPU_QUOTA_US);
    }
}
