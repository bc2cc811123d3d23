use std::time::Duration;

use shoal_proto::v1::{Task, TaskSpec};

use super::*;

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
        Err(ExecError::Rejected(message)) => assert!(message.contains("executable file not found")),
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
