//! A task's environment, the same whatever starts a program in it: the
//! variables a task sees (its service's plus the `SHOAL_*` ones, for
//! containers and processes alike), the `PATH` its programs are looked up in,
//! and the command a process task, its health checks and `service exec` are
//! spawned with (its directory, a clean environment, its namespaces).
//!
//! Below the executors and `service exec`, which all use it; it uses only the
//! overlay's namespace entry ([`crate::overlay::enter`]).

use std::path::Path;

use shoal_proto::v1::Task;

use crate::overlay::enter::enter_task_namespaces;

/// The `PATH` when the agent has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The task's environment plus the `SHOAL_*` variables the process executor
/// sets too, so a task sees the same names whatever its runtime. Ours replace
/// a task entry of the same name rather than follow it: with duplicates, which
/// one a program sees depends on its libc.
pub fn env(task: &Task, node_id: &str) -> Vec<String> {
    let ours = [
        ("SHOAL_TASK_ID", task.id.clone()),
        ("SHOAL_TASK_SLOT", task.slot.to_string()),
        (
            "SHOAL_TASK_NAME",
            format!("{}.{}.{}", task.service_name, task.slot, task.id),
        ),
        ("SHOAL_SERVICE_NAME", task.service_name.clone()),
        ("SHOAL_NODE_ID", node_id.to_string()),
    ];
    let spec_env = task.spec.as_ref().map(|s| s.env.as_slice()).unwrap_or(&[]);
    spec_env
        .iter()
        .filter(|entry| {
            let key = entry.split_once('=').map_or(entry.as_str(), |(k, _)| k);
            !ours.iter().any(|(name, _)| *name == key)
        })
        .cloned()
        .chain(ours.iter().map(|(k, v)| format!("{k}={v}")))
        .collect()
}

/// `program` set up to run as the task's own processes run: in its directory
/// `dir`, with a clean environment of `PATH`, `HOME` (the task directory), the
/// service's variables and the `SHOAL_*` ones. The process executor starts
/// tasks and health checks with it, and `service exec` runs commands with it,
/// so that all three see the same environment. The caller adds arguments and
/// standard streams.
pub(crate) fn task_command(
    task: &Task,
    node_id: &str,
    dir: &Path,
    program: &str,
) -> tokio::process::Command {
    let mut cmd = task_env_command(task, node_id, dir, program);
    // On overlay networks: inside the task's network namespace, with its
    // resolv.conf (a no-op for a task on no network).
    enter_task_namespaces(&mut cmd, &task.id, dir);
    cmd
}

/// [`task_command`] without entering the task's namespaces: for the process
/// executor, which enters them itself when the task has mounts.
pub(crate) fn task_env_command(
    task: &Task,
    node_id: &str,
    dir: &Path,
    program: &str,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", search_path())
        .env("HOME", dir);
    for entry in env(task, node_id) {
        let (key, value) = entry.split_once('=').unwrap_or((&entry, ""));
        cmd.env(key, value);
    }
    cmd
}

/// The `PATH` tasks get and their programs are looked up in: the agent's
/// own, or the usual system directories when it has none.
pub(crate) fn search_path() -> String {
    std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_string())
}
