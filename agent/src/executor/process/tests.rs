use std::time::Duration;

use shoal_proto::v1::{HealthCheck, ResourceRequirements, Resources, Task, TaskSpec};
use tokio::time::timeout;

use super::*;

/// How long a test waits for something before failing.
const PATIENCE: Duration = Duration::from_secs(30);

fn task(id: &str, command: &[&str]) -> Task {
    Task {
        id: id.into(),
        slot: 3,
        service_name: "web".into(),
        spec: Some(TaskSpec {
            runtime: "process".into(),
            command: command.iter().map(|s| s.to_string()).collect(),
            env: vec!["GREETING=hi there".into()],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn alive(pid: i32) -> bool {
    ProcessId::of(pid).is_some()
}

#[tokio::test]
async fn runs_with_environment_and_logs_and_reports_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let executor = ProcessExecutor::new(dir.path(), "node1");
    let mut ctl = executor.controller(&task(
        "t1",
        &[
            "sh",
            "-c",
            "echo \"$GREETING $SHOAL_TASK_SLOT $SHOAL_SERVICE_NAME $SHOAL_NODE_ID\"; exit 3",
        ],
    ));
    ctl.prepare().await.unwrap();
    ctl.start().await.unwrap();
    assert_eq!(ctl.wait().await, Exit::Code(3));
    let out = std::fs::read_to_string(dir.path().join("tasks/t1/stdout.log")).unwrap();
    assert_eq!(out, "hi there 3 web node1\n");
}

#[tokio::test]
async fn a_missing_executable_is_rejected_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let executor = ProcessExecutor::new(dir.path(), "node1");
    let mut ctl = executor.controller(&task("t1", &["no-such-program-xyz"]));
    match ctl.prepare().await {
        Err(ExecutorError::Rejected(message)) => {
            assert!(message.contains("executable file not found"))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn shutdown_stops_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let executor = ProcessExecutor::new(dir.path(), "node1");
    // The shell starts a child and ignores SIGTERM: only SIGKILL after the
    // grace period ends it, and the child must go with it.
    let mut ctl = executor.controller(&task(
        "t1",
        &[
            "sh",
            "-c",
            "trap '' TERM; sleep 1000 & echo $! > child.pid; wait",
        ],
    ));
    ctl.prepare().await.unwrap();
    ctl.start().await.unwrap();
    let child_file = dir.path().join("tasks/t1/child.pid");
    let child: i32 = loop {
        if let Some(pid) = std::fs::read_to_string(&child_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break pid;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(alive(child));
    let exit = ctl.shutdown(Duration::from_millis(300)).await;
    assert_eq!(exit, Exit::Signal(9));
    // The orphaned child was in the group and got SIGKILL too.
    for _ in 0..100 {
        if !alive(child) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("child {child} outlived its task");
}

#[tokio::test]
async fn a_new_executor_adopts_running_processes_and_records_exits() {
    let dir = tempfile::tempdir().unwrap();
    let first = ProcessExecutor::new(dir.path(), "node1");
    let mut running = first.controller(&task("alive", &["sleep", "1000"]));
    running.prepare().await.unwrap();
    running.start().await.unwrap();
    let mut done = first.controller(&task("done", &["true"]));
    done.prepare().await.unwrap();
    done.start().await.unwrap();
    done.wait().await;
    done.record_exit(&RecordedExit {
        shutdown: false,
        unhealthy: false,
        exit_code: Some(0),
        message: "finished".into(),
    })
    .await;

    // A restarted agent: a fresh executor over the same data dir.
    let second = ProcessExecutor::new(dir.path(), "node1");
    let adopted = second.adopt().await;
    assert_eq!(adopted.len(), 1);
    assert_eq!(adopted[0].task_id, "alive");
    let exits = second.recorded_exits().await;
    assert_eq!(exits.len(), 1);
    assert_eq!(exits[0].0, "done");
    assert_eq!(exits[0].1.exit_code, Some(0));

    let mut adopted = adopted.into_iter().next().unwrap().controller;
    let pid = read_pid_file(&dir.path().join("tasks/alive/pid")).unwrap();
    assert!(pid.is_alive());
    adopted.shutdown(Duration::from_secs(5)).await;
    assert!(!pid.is_alive());
    second.remove("alive").await;
    assert!(!dir.path().join("tasks/alive").exists());
    drop(running);
}

#[tokio::test]
async fn a_bad_health_check_rejects_the_task_and_a_good_one_is_kept_for_adoption() {
    let dir = tempfile::tempdir().unwrap();
    let executor = ProcessExecutor::new(dir.path(), "node1");
    let mut bad = task("bad", &["true"]);
    bad.spec.as_mut().unwrap().healthcheck = Some(HealthCheck {
        test: vec!["curl".into(), "-f".into()],
        ..Default::default()
    });
    match executor.controller(&bad).prepare().await {
        Err(ExecutorError::Rejected(message)) => {
            assert!(message.contains("invalid health check"), "{message}")
        }
        other => panic!("{other:?}"),
    }

    let mut good = task("good", &["sleep", "120"]);
    good.spec.as_mut().unwrap().healthcheck = Some(HealthCheck {
        test: vec!["CMD".into(), "true".into()],
        interval_ms: 20,
        ..Default::default()
    });
    let mut ctl = executor.controller(&good);
    ctl.prepare().await.unwrap();
    ctl.start().await.unwrap();
    let mut health = ctl.health().await.expect("a health check");
    timeout(PATIENCE, health.wait_for(|h| *h == Health::Healthy))
        .await
        .expect("healthy in time")
        .unwrap();

    // A restarted agent adopts it with its spec, health check included.
    let second = ProcessExecutor::new(dir.path(), "node1");
    let mut adopted = second.adopt().await.into_iter().next().unwrap().controller;
    let mut health = adopted.health().await.expect("the adopted task's check");
    timeout(PATIENCE, health.wait_for(|h| *h == Health::Healthy))
        .await
        .expect("healthy in time")
        .unwrap();
    adopted.shutdown(Duration::from_secs(5)).await;
    // Its checks end with it: the prober dropped the sender.
    timeout(PATIENCE, async { while health.changed().await.is_ok() {} })
        .await
        .expect("the prober outlived its task");
    drop(ctl);
}

#[tokio::test]
async fn without_usable_cgroups_a_task_with_limits_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let no_cgroups = tempfile::tempdir().unwrap();
    let executor =
        ProcessExecutor::with_cgroups(dir.path(), "node1", Cgroups::detect_at(no_cgroups.path()));
    let mut ctl = executor.controller(&limited(task("t1", &["sh", "-c", "exit 4"])));
    ctl.prepare().await.unwrap();
    ctl.start().await.unwrap();
    assert_eq!(timeout(PATIENCE, ctl.wait()).await.unwrap(), Exit::Code(4));
}

fn limited(mut task: Task) -> Task {
    task.spec.as_mut().unwrap().resources = Some(ResourceRequirements {
        limits: Some(Resources {
            nano_cpus: 500_000_000,
            memory_bytes: 64 << 20,
        }),
        reservations: None,
    });
    task
}

/// Kills a test's task and removes its cgroups even when the test fails:
/// cgroups outlive the test's temporary directory.
struct CgroupCleanup {
    pid: i32,
    dirs: Vec<PathBuf>,
}

impl Drop for CgroupCleanup {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
        for dir in &self.dirs {
            for _ in 0..100 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[tokio::test]
async fn limits_put_a_task_in_its_own_cgroup_which_goes_with_the_task() {
    let required = std::env::var("SHOAL_E2E_PRIVILEGED").is_ok_and(|v| v == "1");
    let root = Path::new("/sys/fs/cgroup");
    let v2 = root.join("cgroup.controllers").exists();
    // The effective UID, the second field of Uid: in /proc/self/status.
    let euid = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(String::from));
    let missing = if euid.as_deref() != Some("0") {
        Some("the test does not run as root")
    } else if v2 {
        let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap();
        (!controllers.split_whitespace().any(|c| c == "memory"))
            .then_some("cgroup v2 without the memory controller")
    } else {
        (!root.join("memory/memory.limit_in_bytes").exists())
            .then_some("no cgroup memory controller (neither v2 nor v1)")
    };
    if let Some(missing) = missing {
        if required {
            panic!("SHOAL_E2E_PRIVILEGED=1 but {missing}");
        }
        eprintln!(
            "skipped: limits_put_a_task_in_its_own_cgroup: {missing} \
             (set SHOAL_E2E_PRIVILEGED=1 to make this a failure instead)"
        );
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let executor = ProcessExecutor::new(dir.path(), "node1");
    // cgroups are global: a unique task ID.
    let id = format!(
        "cgtest-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut ctl = executor.controller(&limited(task(&id, &["sleep", "120"])));
    ctl.prepare().await.unwrap();
    ctl.start().await.unwrap();
    let pid = read_pid_file(&dir.path().join("tasks").join(&id).join("pid"))
        .unwrap()
        .pid;
    let (memory_dir, cpu_dir) = if v2 {
        let dir = root.join("shoal").join(&id);
        (dir.clone(), dir)
    } else {
        (
            root.join("memory/shoal").join(&id),
            root.join("cpu/shoal").join(&id),
        )
    };
    let _cleanup = CgroupCleanup {
        pid,
        dirs: vec![memory_dir.clone(), cpu_dir.clone()],
    };

    // Where the kernel says the task is, per controller.
    let memberships = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let cgroup_of = |controller: &str| {
        memberships
            .lines()
            .filter_map(|line| {
                let mut fields = line.splitn(3, ':');
                let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
                let wanted = if v2 {
                    controllers.is_empty()
                } else {
                    controllers.split(',').any(|c| c == controller)
                };
                wanted.then(|| path.to_string())
            })
            .next()
            .unwrap_or_else(|| panic!("no {controller} cgroup in {memberships}"))
    };
    let expected = format!("/shoal/{id}");
    assert_eq!(cgroup_of("memory"), expected, "{memberships}");
    assert_eq!(cgroup_of("cpu"), expected, "{memberships}");
    let read = |path: PathBuf| std::fs::read_to_string(&path).unwrap().trim().to_string();
    if v2 {
        assert_eq!(read(memory_dir.join("memory.max")), "67108864");
        assert_eq!(read(cpu_dir.join("cpu.max")), "50000 100000");
    } else {
        assert_eq!(read(memory_dir.join("memory.limit_in_bytes")), "67108864");
        assert_eq!(read(cpu_dir.join("cpu.cfs_quota_us")), "50000");
        assert_eq!(read(cpu_dir.join("cpu.cfs_period_us")), "100000");
    }

    ctl.shutdown(Duration::from_secs(5)).await;
    executor.remove(&id).await;
    assert!(!memory_dir.exists(), "{} is left", memory_dir.display());
    assert!(!cpu_dir.exists(), "{} is left", cpu_dir.display());
}
