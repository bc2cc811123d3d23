//! Spawning a process task (and its health checks, and `service exec`)
//! inside the task's own namespaces.
//!
//! A process task on a network runs in its named network namespace
//! ([`netns_name`]), set with `setns` between fork and exec. It also
//! gets a private mount namespace in which the generated `resolv.conf`
//! (`nameserver 127.0.0.11`, see [`resolv_conf_path`]) is bind-mounted
//! over `/etc/resolv.conf`, so that its lookups go to its own embedded
//! resolver while the rest of the node's files stay as they are. Both are
//! plain syscalls in the child, no helper process: the private mount
//! namespace costs one `unshare` and two mounts per spawn, which is why it
//! was chosen over leaving tasks on the node's resolv.conf. Mounts in it are
//! made slaves, so nothing the task mounts leaks back to the node.

use std::ffi::CString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

/// The named network namespace of a process task: derived from its ID, so a
/// restarted daemon finds it again.
pub fn netns_name(task_id: &str) -> String {
    format!("shoal-task-{task_id}")
}

/// The `resolv.conf` generated for a process task, in its directory.
pub fn resolv_conf_path(task_dir: &Path) -> PathBuf {
    task_dir.join("resolv.conf")
}

/// Where the task's resolver configuration is bound.
pub(crate) const ETC_RESOLV_CONF: &str = "/etc/resolv.conf";

/// Makes `command` start inside task `task_id`'s namespaces when it has
/// them: its network namespace exists only if the task is on a network and
/// the overlay attached it (before the task starts, see
/// [`super::Overlay::attach`]). Tasks on no network are left untouched.
pub(crate) fn enter_task_namespaces(
    command: &mut tokio::process::Command,
    task_id: &str,
    task_dir: &Path,
) {
    enter(command, task_id, task_dir, true);
}

/// Only the task's network namespace: for a process task with a mount
/// namespace of its own (`executor::process::mountns`), whose plan binds
/// [`task_resolv_conf`] beside its volumes, so that the task gets one
/// mount namespace holding both rather than one nested in another.
pub(crate) fn enter_task_netns(
    command: &mut tokio::process::Command,
    task_id: &str,
    task_dir: &Path,
) {
    enter(command, task_id, task_dir, false);
}

/// The generated resolv.conf to bind over `/etc/resolv.conf`, when the task
/// is in a network namespace and the overlay wrote one for it.
pub(crate) fn task_resolv_conf(task_id: &str, task_dir: &Path) -> Option<PathBuf> {
    task_netns_file(task_id, task_dir)?;
    let resolv = resolv_conf_path(task_dir);
    resolv.exists().then_some(resolv)
}

fn enter(command: &mut tokio::process::Command, task_id: &str, task_dir: &Path, resolv: bool) {
    let Some(netns) = task_netns_file(task_id, task_dir) else {
        return;
    };
    let resolv_path = resolv_conf_path(task_dir);
    let source = (resolv && resolv_path.exists())
        .then(|| CString::new(resolv_path.as_os_str().as_bytes()).ok())
        .flatten();
    let target = CString::new(ETC_RESOLV_CONF).expect("no NUL in a constant");
    let root = CString::new("/").expect("no NUL in a constant");
    pre_exec(command, move || {
        setns(&netns, CloneFlags::CLONE_NEWNET)?;
        if let Some(source) = source.as_deref() {
            unshare(CloneFlags::CLONE_NEWNS)?;
            mount(
                None::<&std::ffi::CStr>,
                root.as_c_str(),
                None::<&std::ffi::CStr>,
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
                None::<&std::ffi::CStr>,
            )?;
            mount(
                Some(source),
                target.as_c_str(),
                None::<&std::ffi::CStr>,
                MsFlags::MS_BIND,
                None::<&std::ffi::CStr>,
            )?;
        }
        Ok(())
    });
}

/// The task's network namespace, if it has one: its named namespace, or —
/// when that name is not a namespace here — the namespace its running
/// process is in. The second case is a daemon restarted in another mount
/// namespace (one `ip netns exec` made, as the e2e hosts run): the bind
/// mount behind the name lives in the mount namespace the task inherited,
/// and this daemon sees only the empty file it is mounted on.
pub(crate) fn task_netns_file(task_id: &str, task_dir: &Path) -> Option<File> {
    let path = shoal_overlay_net::netns::named_path(&netns_name(task_id));
    if !path.exists() {
        return None;
    }
    if let Some(file) = File::open(&path).ok().filter(is_netns) {
        return Some(file);
    }
    let pid = task_pid(task_dir)?;
    File::open(format!("/proc/{pid}/ns/net"))
        .ok()
        .filter(is_netns)
}

/// The PID recorded in a process task's directory.
pub(crate) fn task_pid(task_dir: &Path) -> Option<u32> {
    std::fs::read_to_string(task_dir.join("pid"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn is_netns(file: &File) -> bool {
    nix::sys::statfs::fstatfs(file)
        .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

#[allow(unsafe_code)]
fn pre_exec<F>(command: &mut tokio::process::Command, f: F)
where
    F: FnMut() -> Result<(), nix::Error> + Send + Sync + 'static,
{
    let mut f = f;
    // SAFETY: runs in the forked child before exec, where only
    // async-signal-safe calls are sound. The closure only makes syscalls
    // (setns, unshare, mount) on a file and C strings prepared before the
    // fork; nix passes `CStr` paths through without allocating, and an
    // errno becomes an `io::Error` without allocating either.
    unsafe {
        command.pre_exec(move || f().map_err(std::io::Error::from));
    }
}
