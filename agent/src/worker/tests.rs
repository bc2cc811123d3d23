//! The worker driving real process tasks with real health checks, observed
//! through what it reports.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use shoal_proto::v1::{HealthCheck, TaskSpec, TaskStatus};

use super::*;
use crate::executor::process::cgroup::Cgroups;
use crate::executor::process::ProcessExecutor;

/// A process executor without cgroups: these tests reuse task IDs ("t1")
/// in parallel, and a task's cgroup is named by its ID, so removing one
/// test's task would kill another's (every task gets accounting cgroups).
fn unmeasured(data_dir: &Path) -> ProcessExecutor {
    ProcessExecutor::with_cgroups(
        data_dir,
        "node1",
        Cgroups::detect_at(&data_dir.join("no-cgroups")),
    )
}

/// How long a test waits for a state before failing.
const PATIENCE: Duration = Duration::from_secs(30);

/// A task running `sleep` (which SIGTERM ends), with `check` as its health
/// check.
fn task(id: &str, check: HealthCheck) -> Task {
    Task {
        id: id.into(),
        slot: 3,
        service_name: "web".into(),
        spec: Some(TaskSpec {
            runtime: "process".into(),
            command: vec!["sleep".into(), "120".into()],
            env: vec!["GREETING=hi there".into()],
            stop_grace_period_ms: 5000,
            healthcheck: Some(check),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn shell_check(line: &str, retries: u64, start_period_ms: u64) -> HealthCheck {
    HealthCheck {
        test: vec!["CMD-SHELL".into(), line.into()],
        interval_ms: 50,
        timeout_ms: 2000,
        retries,
        start_period_ms,
    }
}

/// A worker over a process executor in its own data dir, and what it reported.
struct Harness {
    data_dir: tempfile::TempDir,
    reporter: Arc<Reporter>,
    events: mpsc::Sender<WorkerEvent>,
    latest: HashMap<String, TaskStatus>,
}

impl Harness {
    async fn start() -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        Self::start_in(data_dir).await
    }

    async fn start_in(data_dir: tempfile::TempDir) -> Self {
        let executor = Arc::new(unmeasured(data_dir.path()));
        let reporter = Arc::new(Reporter::default());
        let (events, _handle) = Worker::spawn(vec![executor], reporter.clone()).await;
        Harness {
            data_dir,
            reporter,
            events,
            latest: HashMap::new(),
        }
    }

    fn task_dir(&self, id: &str) -> PathBuf {
        self.data_dir.path().join("tasks").join(id)
    }

    async fn assign(&self, tasks: Vec<Task>) {
        self.events
            .send(WorkerEvent::Assignments(tasks))
            .await
            .unwrap();
    }

    /// The newest status reported for `id`.
    fn status(&mut self, id: &str) -> Option<TaskStatus> {
        self.latest.extend(self.reporter.take());
        self.latest.get(id).cloned()
    }

    /// Polls until `id`'s newest status satisfies `check`.
    async fn until(
        &mut self,
        id: &str,
        what: &str,
        check: impl Fn(&TaskStatus) -> bool,
    ) -> TaskStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.status(id).filter(|s| check(s)) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting until {what}; last status: {:?}",
                self.status(id)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn until_state(&mut self, id: &str, state: TaskState) -> TaskStatus {
        self.until(id, &format!("{id} is {state:?}"), |s| s.state() == state)
            .await
    }

    /// Stops every task, as the daemon does.
    async fn shutdown(self) -> tempfile::TempDir {
        let (done, finished) = oneshot::channel();
        let _ = self
            .events
            .send(WorkerEvent::Shutdown {
                reason: "test over".into(),
                done,
            })
            .await;
        let _ = tokio::time::timeout(PATIENCE, finished).await;
        self.data_dir
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn task_pid(dir: &Path) -> i32 {
    std::fs::read_to_string(dir.join("pid"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[tokio::test]
async fn a_task_is_running_once_its_check_passes_and_fails_once_it_is_unhealthy() {
    let mut h = Harness::start().await;
    // A long start period: failures before `ready` exists do not count.
    let check = shell_check(
        "echo \"$GREETING $SHOAL_TASK_SLOT\" >> probes; test -f ready",
        2,
        60_000,
    );
    h.assign(vec![task("t1", check.clone())]).await;
    let starting = h.until_state("t1", TaskState::Starting).await;
    assert_eq!(starting.message, MESSAGE_WAITING_FOR_HEALTH);

    // More failed probes than `retries`, all inside the start period.
    let probes = h.task_dir("t1").join("probes");
    let deadline = Instant::now() + PATIENCE;
    while lines(&probes).len() < 4 {
        assert!(Instant::now() < deadline, "the check is not probing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.status("t1").unwrap().state(), TaskState::Starting);
    // It ran with the task's environment, in the task's directory.
    assert_eq!(lines(&probes)[0], "hi there 3");

    std::fs::write(h.task_dir("t1").join("ready"), "").unwrap();
    let running = h.until_state("t1", TaskState::Running).await;
    assert_eq!(running.message, "started (healthy)");

    // Healthy once, the start period no longer shields it.
    let pid = task_pid(&h.task_dir("t1"));
    std::fs::remove_file(h.task_dir("t1").join("ready")).unwrap();
    let failed = h.until_state("t1", TaskState::Failed).await;
    let expected = "task: unhealthy: health check failed 2 times in a row: exit code 1";
    assert_eq!(failed.message, expected);
    assert_eq!(failed.err, expected);
    assert_eq!(failed.exit_code, 128 + 15, "stopped by SIGTERM");
    assert!(!alive(pid), "the unhealthy task {pid} was not stopped");
    h.shutdown().await;
}

#[tokio::test]
async fn a_check_that_never_passes_fails_the_task_without_it_ever_running() {
    let mut h = Harness::start().await;
    let check = shell_check("echo 'not ready yet' >&2; exit 3", 3, 0);
    h.assign(vec![task("t1", check)]).await;
    let failed = h
        .until("t1", "t1 is FAILED", |s| {
            s.state() == TaskState::Failed || s.state() == TaskState::Running
        })
        .await;
    assert_eq!(failed.state(), TaskState::Failed, "{failed:?}");
    assert_eq!(
        failed.message,
        "task: unhealthy: health check failed 3 times in a row: exit code 3: not ready yet"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_stop_while_waiting_for_health_shuts_the_task_down_promptly() {
    let mut h = Harness::start().await;
    h.assign(vec![task("t1", shell_check("exit 1", 3, 600_000))])
        .await;
    h.until_state("t1", TaskState::Starting).await;
    h.until("t1", "t1 waits for its check", |s| {
        s.message == MESSAGE_WAITING_FOR_HEALTH
    })
    .await;
    let pid = task_pid(&h.task_dir("t1"));
    let begun = Instant::now();
    h.assign(vec![]).await;
    let stopped = h.until_state("t1", TaskState::Shutdown).await;
    assert_eq!(stopped.message, "shutdown");
    // sleep ends at SIGTERM: well within its 5 s grace period.
    assert!(
        begun.elapsed() < Duration::from_secs(4),
        "{:?}",
        begun.elapsed()
    );
    assert!(!alive(pid));
    h.shutdown().await;
}

#[tokio::test]
async fn an_adopted_task_keeps_its_health_check() {
    let data_dir = tempfile::tempdir().unwrap();
    // A previous agent started the task, healthy.
    let first = unmeasured(data_dir.path());
    let t = task("t1", shell_check("test -f ready", 1, 0));
    let mut ctl = first.controller(&t);
    ctl.prepare().await.unwrap();
    let dir = data_dir.path().join("tasks/t1");
    std::fs::write(dir.join("ready"), "").unwrap();
    ctl.start().await.unwrap();
    drop(ctl);

    let mut h = Harness::start_in(data_dir).await;
    h.assign(vec![t]).await;
    let running = h.until_state("t1", TaskState::Running).await;
    assert_eq!(running.message, "started");
    std::fs::remove_file(dir.join("ready")).unwrap();
    let failed = h.until_state("t1", TaskState::Failed).await;
    assert_eq!(
        failed.message,
        "task: unhealthy: health check failed: exit code 1"
    );
    h.shutdown().await;
}

#[test]
fn an_unhealthy_task_that_exits_cleanly_when_stopped_still_failed() {
    let status = recorded_status(
        &RecordedExit {
            shutdown: false,
            unhealthy: true,
            exit_code: Some(0),
            message: "task: unhealthy: health check failed: exit code 1".into(),
        },
        0,
    );
    assert_eq!(status.state(), TaskState::Failed);
    assert_eq!(
        status.err,
        "task: unhealthy: health check failed: exit code 1"
    );
    // Without the health verdict, exit 0 is a clean completion.
    let clean = recorded_status(
        &RecordedExit {
            shutdown: false,
            unhealthy: false,
            exit_code: Some(0),
            message: "finished".into(),
        },
        0,
    );
    assert_eq!(clean.state(), TaskState::Complete);
}

/// `task` without a health check, desired in `desired`.
fn plain_task(id: &str, desired: TaskState) -> Task {
    let mut task = task(id, HealthCheck::default());
    task.spec.as_mut().unwrap().healthcheck = None;
    task.desired_state = desired as i32;
    task
}

#[tokio::test]
async fn a_retired_task_it_never_started_is_reported_shut_down_without_starting() {
    let mut h = Harness::start().await;
    h.assign(vec![plain_task("t1", TaskState::Shutdown)]).await;
    let status = h.until_state("t1", TaskState::Shutdown).await;
    assert_eq!(status.message, "shut down before it started");
    assert!(!h.task_dir("t1").join("pid").exists(), "t1 was started");
    // Re-sent unchanged, it is not reported as anything else.
    h.assign(vec![plain_task("t1", TaskState::Shutdown)]).await;
    h.assign(vec![]).await;
    assert_eq!(h.status("t1").unwrap().state(), TaskState::Shutdown);
    h.shutdown().await;
}

#[tokio::test]
async fn a_running_task_that_stays_assigned_but_retired_is_stopped() {
    let mut h = Harness::start().await;
    h.assign(vec![plain_task("t1", TaskState::Running)]).await;
    h.until_state("t1", TaskState::Running).await;
    let pid = task_pid(&h.task_dir("t1"));
    h.assign(vec![plain_task("t1", TaskState::Shutdown)]).await;
    let stopped = h.until_state("t1", TaskState::Shutdown).await;
    assert_eq!(stopped.message, "shutdown");
    assert!(!alive(pid));
    h.shutdown().await;
}
