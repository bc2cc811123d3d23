//! Tests against the real engine. Each test has its own node ID, data dir and
//! image tag, and its fixture removes every container (with its volumes) and
//! the tag it made, even when the test fails. With `SHOAL_E2E_DOCKER=1` (as
//! `.ci/run` sets) a missing engine or test image fails the test; without it
//! the test says loudly that it skipped.

use std::future::Future;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::LogsOptions;
use futures::StreamExt;
use shoal_proto::v1::TaskSpec;
use tokio::time::timeout;

use super::test_image::ensure_test_image;
use super::*;

/// How long a test waits for a state before failing.
const PATIENCE: Duration = Duration::from_secs(30);

struct Fixture {
    executor: DockerExecutor,
    node_id: String,
    image: String,
    data_dir: tempfile::TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // The docker CLI, not bollard: Drop cannot await. Containers first,
        // as an image in use cannot be untagged.
        let filter = format!("label={LABEL_NODE_ID}={}", self.node_id);
        let ids = Command::new("docker")
            .args(["ps", "-aq", "--filter", &filter])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f", "-v"])
                .args(&ids)
                .output();
        }
        // Untags only this test's tag; the layers go with the last tag.
        let _ = Command::new("docker").args(["rmi", &self.image]).output();
    }
}

/// The engine and the test image, or `None` when the test is to be skipped.
async fn fixture(test: &str) -> Option<Fixture> {
    let required = std::env::var("SHOAL_E2E_DOCKER").is_ok_and(|v| v == "1");
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let node_id = format!(
        "{}-{}-{nanos}-{}",
        test.replace('_', "-"),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let data_dir = tempfile::tempdir().unwrap();
    let executor = match DockerExecutor::connect(data_dir.path(), &node_id).await {
        Ok(executor) => executor,
        Err(e) if required => panic!("SHOAL_E2E_DOCKER=1 but the Docker engine is missing: {e}"),
        Err(e) => {
            eprintln!(
                "SKIPPED {test}: {e} (set SHOAL_E2E_DOCKER=1 to make this a failure instead)"
            );
            return None;
        }
    };
    let image = format!("shoal-test/busybox:{node_id}");
    if let Err(e) = ensure_test_image(&image) {
        if required {
            panic!("SHOAL_E2E_DOCKER=1 but the test image cannot be built: {e}");
        }
        eprintln!("SKIPPED {test}: the test image cannot be built: {e}");
        return None;
    }
    Some(Fixture {
        executor,
        node_id,
        image,
        data_dir,
    })
}

impl Fixture {
    /// A task of service "svc" running the test image. Task IDs carry the
    /// node ID: container names are global on the engine.
    fn task(&self, name: &str, command: &[&str]) -> Task {
        Task {
            id: format!("{name}-{}", self.node_id),
            service_id: "svc-id".into(),
            service_name: "svc".into(),
            slot: 1,
            spec: Some(TaskSpec {
                runtime: "docker".into(),
                image: self.image.clone(),
                command: command.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn docker(&self) -> &Docker {
        &self.executor.node.docker
    }

    async fn inspect(&self, id: &str) -> ContainerInspectResponse {
        self.docker().inspect_container(id, None).await.unwrap()
    }

    async fn running(&self, id: &str) -> bool {
        let state = self.inspect(id).await.state.unwrap_or_default();
        state.running == Some(true)
    }

    async fn logs(&self, id: &str) -> String {
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let mut logs = self.docker().logs(id, Some(options));
        let mut out = String::new();
        while let Some(Ok(chunk)) = logs.next().await {
            out.push_str(&chunk.to_string());
        }
        out
    }

    async fn started(&self, task: &Task) -> DockerController {
        let mut ctl = self
            .executor
            .controller_with(task, ContainerOptions::default());
        ctl.prepare().await.unwrap();
        ctl.start().await.unwrap();
        ctl
    }
}

/// Polls `check` until it holds, failing after [`PATIENCE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_container_runs_to_its_exit_code() {
    let Some(f) = fixture("exit_code").await else {
        return;
    };
    let mut ctl = f
        .executor
        .controller(&f.task("exit", &["/busybox", "sh", "-c", "exit 3"]));
    ctl.prepare().await.unwrap();
    ctl.start().await.unwrap();
    assert_eq!(timeout(PATIENCE, ctl.wait()).await.unwrap(), Exit::Code(3));
}

#[tokio::test]
async fn name_env_labels_command_and_limits_reach_the_engine() {
    let Some(f) = fixture("create").await else {
        return;
    };
    let mut task = f.task("cfg", &[]);
    let spec = task.spec.as_mut().unwrap();
    spec.env = vec!["GREETING=hi there".into()];
    spec.labels = [("team".to_string(), "blue".to_string())].into();
    spec.args = vec!["extra".into()];
    spec.stop_grace_period_ms = 6500;
    let options = ContainerOptions {
        nano_cpus: Some(250_000_000),
        memory_bytes: Some(32 << 20),
        ..Default::default()
    };
    let mut ctl = f.executor.controller_with(&task, options);
    ctl.prepare().await.unwrap();
    let inspect = f.inspect(ctl.container_id().unwrap()).await;

    assert_eq!(
        inspect.name.as_deref(),
        Some(&*format!("/svc.1.{}", task.id))
    );
    let config = inspect.config.unwrap();
    let env = config.env.unwrap();
    for expected in [
        "GREETING=hi there".to_string(),
        format!("SHOAL_TASK_ID={}", task.id),
        format!("SHOAL_NODE_ID={}", f.node_id),
    ] {
        assert!(env.contains(&expected), "{expected} not in {env:?}");
    }
    let labels = config.labels.unwrap();
    assert_eq!(labels["team"], "blue");
    assert_eq!(labels[LABEL_TASK_ID], task.id);
    assert_eq!(labels[LABEL_SERVICE_ID], "svc-id");
    assert_eq!(labels[LABEL_SERVICE_NAME], "svc");
    assert_eq!(labels[LABEL_NODE_ID], f.node_id);
    assert_eq!(labels[LABEL_TASK_SLOT], "1");
    // No command: the image's CMD with the args appended.
    assert_eq!(
        config.cmd.unwrap(),
        ["/busybox", "sleep", "3600", "extra"].map(String::from)
    );
    assert_eq!(config.entrypoint, None);
    assert_eq!(config.stop_signal.as_deref(), Some("SIGTERM"));
    assert_eq!(config.stop_timeout, Some(7));
    let host = inspect.host_config.unwrap();
    assert_eq!(host.nano_cpus, Some(250_000_000));
    assert_eq!(host.memory, Some(32 << 20));
}

#[tokio::test]
async fn a_host_mode_port_answers_on_the_node_while_the_container_runs() {
    let Some(f) = fixture("host_port").await else {
        return;
    };
    // A port the kernel just gave out and took back: free on this node.
    let published = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut task = f.task(
        "web",
        &[
            "/busybox",
            "sh",
            "-c",
            "mkdir /www && echo hello-from-the-task > /www/index.html && exec /busybox httpd -f -p 80 -h /www",
        ],
    );
    task.host_ports = vec![shoal_proto::v1::PortConfig {
        target_port: 80,
        published_port: u32::from(published),
        publish_mode: shoal_proto::v1::PublishMode::Host as i32,
        ..Default::default()
    }];
    let mut ctl = f.started(&task).await;
    let get = move || async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", published)).await else {
            return String::new();
        };
        let _ = stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await;
        let mut answer = String::new();
        let _ = timeout(Duration::from_secs(5), stream.read_to_string(&mut answer)).await;
        answer
    };
    eventually("the published port answers", || async {
        get().await.contains("hello-from-the-task")
    })
    .await;
    ctl.shutdown(Duration::from_secs(1)).await;
    ctl.remove().await;
    eventually("the port is free again", || async {
        std::net::TcpListener::bind(("0.0.0.0", published)).is_ok()
    })
    .await;
}

#[tokio::test]
async fn shutdown_kills_a_container_that_ignores_sigterm_after_the_grace_period() {
    let Some(f) = fixture("stubborn").await else {
        return;
    };
    let task = f.task(
        "stubborn",
        &[
            "/busybox",
            "sh",
            "-c",
            "trap '' TERM; while :; do /busybox sleep 1; done",
        ],
    );
    let mut ctl = f.started(&task).await;
    let id = ctl.container_id().unwrap().to_string();
    let begun = Instant::now();
    let exit = timeout(PATIENCE, ctl.shutdown(Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(exit, Exit::Code(137), "killed by SIGKILL");
    assert!(
        begun.elapsed() >= Duration::from_millis(900),
        "killed before the grace period ended: {:?}",
        begun.elapsed()
    );
    assert!(!f.running(&id).await);
}

#[tokio::test]
async fn shutdown_lets_a_container_that_handles_sigterm_exit_on_its_own() {
    let Some(f) = fixture("graceful").await else {
        return;
    };
    let task = f.task(
        "graceful",
        &[
            "/busybox",
            "sh",
            "-c",
            "trap 'exit 0' TERM; echo ready; while :; do /busybox sleep 1; done",
        ],
    );
    let mut ctl = f.started(&task).await;
    let id = ctl.container_id().unwrap().to_string();
    // PID 1 ignores SIGTERM until its trap is set: wait for that.
    eventually("the trap is set", || async {
        f.logs(&id).await.contains("ready")
    })
    .await;
    let begun = Instant::now();
    let exit = timeout(PATIENCE, ctl.shutdown(Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(exit, Exit::Code(0));
    assert!(
        begun.elapsed() < Duration::from_secs(15),
        "{:?}",
        begun.elapsed()
    );
}

#[tokio::test]
async fn a_missing_image_rejects_the_task_in_the_engines_words() {
    let Some(f) = fixture("no_image").await else {
        return;
    };
    let mut task = f.task("noimage", &[]);
    let image = format!("shoal-test/no-such-image:{}", f.node_id);
    task.spec.as_mut().unwrap().image = image.clone();
    let mut ctl = f.executor.controller(&task);
    match ctl.prepare().await {
        Err(ExecutorError::Rejected(message)) => {
            eprintln!("prepare said: {message}");
            assert!(
                message.contains(&format!("No such image: {image}")),
                "{message}"
            );
            assert!(message.contains("pulling it failed"), "{message}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(f
        .executor
        .node
        .containers(None, None)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_fresh_executor_adopts_running_containers_and_reports_the_ones_that_ended() {
    let Some(f) = fixture("adopt").await else {
        return;
    };
    // The first agent starts three tasks.
    let runner = f.task("run", &[]);
    let running = f.started(&runner).await;
    let quitter = f.task(
        "quit",
        &["/busybox", "sh", "-c", "/busybox sleep 1; exit 5"],
    );
    let quit_id = f
        .started(&quitter)
        .await
        .container_id()
        .unwrap()
        .to_string();
    let stopper = f.task("stop", &[]);
    let mut stopped = f.started(&stopper).await;
    let exit = timeout(PATIENCE, stopped.shutdown(Duration::ZERO))
        .await
        .unwrap();
    let recorded = RecordedExit {
        shutdown: true,
        unhealthy: false,
        exit_code: Some(137),
        message: "shutdown".into(),
    };
    assert_eq!(exit, Exit::Code(137));
    stopped.record_exit(&recorded).await;
    // "The agent is down": nobody waits for the quitter, which exits.
    eventually("the quitter exited", || async {
        !f.running(&quit_id).await
    })
    .await;

    let restarted = DockerExecutor::connect(f.data_dir.path(), &f.node_id)
        .await
        .unwrap();
    let mut adopted = restarted.adopt_containers().await;
    assert_eq!(adopted.len(), 1);
    assert_eq!(adopted[0].task_id(), runner.id);
    assert_eq!(adopted[0].container_id(), running.container_id());
    assert_eq!(restarted.adopt().await.len(), 1);

    let exits: HashMap<String, RecordedExit> =
        restarted.recorded_exits().await.into_iter().collect();
    assert_eq!(exits.len(), 2, "{exits:?}");
    let quit = &exits[&quitter.id];
    assert!(!quit.shutdown);
    assert_eq!(quit.exit_code, Some(5));
    assert!(
        quit.message.contains("while the agent was not running"),
        "{quit:?}"
    );
    assert_eq!(exits[&stopper.id], recorded);

    // The adopted controller controls the very container the first agent started.
    let exit = timeout(PATIENCE, adopted[0].shutdown(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(exit, Exit::Code(137));
    assert!(!f.running(running.container_id().unwrap()).await);
}

#[tokio::test]
async fn remove_by_task_id_leaves_no_container_volume_or_record() {
    let Some(f) = fixture("remove").await else {
        return;
    };
    let task = f.task("done", &["/busybox", "sh", "-c", "exit 0"]);
    let mut ctl = f.started(&task).await;
    assert_eq!(timeout(PATIENCE, ctl.wait()).await.unwrap(), Exit::Code(0));
    let inspect = f.inspect(ctl.container_id().unwrap()).await;
    let volume = inspect.mounts.unwrap()[0].name.clone().unwrap();
    ctl.record_exit(&RecordedExit {
        shutdown: false,
        unhealthy: false,
        exit_code: Some(0),
        message: "finished".into(),
    })
    .await;

    // As the worker does for a task no longer assigned: by ID only.
    f.executor.remove(&task.id).await;
    assert!(f
        .executor
        .node
        .containers(None, None)
        .await
        .unwrap()
        .is_empty());
    let gone = f.docker().inspect_volume(&volume).await;
    assert!(
        matches!(&gone, Err(e) if status(e) == Some(404)),
        "volume {volume}: {gone:?}"
    );
    assert!(f.executor.recorded_exits().await.is_empty());
    // Removing what is not there is fine.
    f.executor.remove("no-such-task").await;
}

#[tokio::test]
async fn a_container_removed_from_outside_ends_the_wait() {
    let Some(f) = fixture("removed").await else {
        return;
    };
    let mut ctl = f.started(&f.task("victim", &[])).await;
    let id = ctl.container_id().unwrap().to_string();
    let docker = f.docker().clone();
    let remover = tokio::spawn(async move {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        docker.remove_container(&id, Some(options)).await
    });
    let exit = timeout(PATIENCE, ctl.wait())
        .await
        .expect("wait hung on a removed container");
    remover.await.unwrap().unwrap();
    assert!(matches!(exit, Exit::Unknown | Exit::Code(137)), "{exit:?}");
    // Once it is gone, waiting ends at once.
    assert_eq!(timeout(PATIENCE, ctl.wait()).await.unwrap(), Exit::Unknown);
}

#[tokio::test]
async fn logs_with_tail_and_timestamps_and_exec_with_exit_codes() {
    let Some(f) = fixture("streams").await else {
        return;
    };
    let task = f.task(
        "logs",
        &[
            "/busybox",
            "sh",
            "-c",
            "echo one; echo two; echo three >&2; exec /busybox sleep 60",
        ],
    );
    let _ctl = f.started(&task).await;
    let read = |options: shoal_proto::v1::LogOptions| {
        let executor = &f.executor;
        let task_id = task.id.clone();
        async move {
            let (tx, mut rx) = tokio::sync::mpsc::channel(64);
            assert!(executor.task_logs(&task_id, &options, &tx).await.unwrap());
            drop(tx);
            let mut lines = Vec::new();
            while let Some(m) = rx.recv().await {
                assert!(m.timestamp_ns > 0, "the engine's timestamp is parsed");
                lines.push((m.stream, String::from_utf8(m.data).unwrap()));
            }
            lines
        }
    };
    let deadline = Instant::now() + PATIENCE;
    let mut all = read(Default::default()).await;
    while all.len() < 3 {
        assert!(Instant::now() < deadline, "only these lines came: {all:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        all = read(Default::default()).await;
    }
    let stdout = shoal_proto::v1::LogStream::Stdout as i32;
    let stderr = shoal_proto::v1::LogStream::Stderr as i32;
    assert!(all.contains(&(stdout, "one".into())), "{all:?}");
    assert!(all.contains(&(stderr, "three".into())), "{all:?}");
    let tail = read(shoal_proto::v1::LogOptions {
        tail: Some(1),
        ..Default::default()
    })
    .await;
    assert_eq!(tail.len(), 1, "{tail:?}");

    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let command = ["/busybox", "sh", "-c", "echo $SHOAL_TASK_SLOT; exit 5"];
    let code = f
        .executor
        .exec_in_task(
            &task.id,
            command.iter().map(|s| s.to_string()).collect(),
            &tx,
        )
        .await
        .unwrap();
    assert_eq!(code, 5);
    drop(tx);
    let mut out = Vec::new();
    while let Some(chunk) = rx.recv().await {
        out.extend(chunk.data);
    }
    assert_eq!(out, b"1\n");
    let missing = f.task("never-created", &[]);
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    assert!(f
        .executor
        .exec_in_task(&missing.id, vec!["true".into()], &tx)
        .await
        .is_err());
}

impl Fixture {
    /// A task with a CMD-SHELL health check. The test image is FROM scratch:
    /// the task first gives it the `/bin/sh` such checks run with.
    fn checked_task(&self, name: &str, check: &str, retries: u64) -> Task {
        let mut task = self.task(
            name,
            &[
                "/busybox",
                "sh",
                "-c",
                "/busybox mkdir -p /bin && /busybox ln -s /busybox /bin/sh && exec /busybox sleep 3600",
            ],
        );
        task.spec.as_mut().unwrap().healthcheck = Some(shoal_proto::v1::HealthCheck {
            test: vec!["CMD-SHELL".into(), check.into()],
            interval_ms: 200,
            timeout_ms: 5000,
            retries,
            start_period_ms: 0,
        });
        task
    }
}

#[tokio::test]
async fn a_passing_check_makes_the_container_healthy() {
    let Some(f) = fixture("healthy").await else {
        return;
    };
    let task = f.checked_task("healthy", "test \"$SHOAL_TASK_SLOT\" = 1", 2);
    let mut ctl = f.started(&task).await;
    let mut health = ctl.health().await.expect("the container has a check");
    let reached = timeout(
        PATIENCE,
        health.wait_for(|h| !matches!(h, crate::health::Health::Starting)),
    )
    .await
    .expect("no health in time")
    .unwrap()
    .clone();
    assert_eq!(reached, crate::health::Health::Healthy);
    // Without a check in the spec or the image there is nothing to watch.
    let mut plain = f.started(&f.task("plain", &[])).await;
    assert!(plain.health().await.is_none());
}

#[tokio::test]
async fn a_failing_check_makes_the_container_unhealthy() {
    let Some(f) = fixture("unhealthy").await else {
        return;
    };
    let task = f.checked_task("unhealthy", "echo broken; exit 1", 2);
    let mut ctl = f.started(&task).await;
    let mut health = ctl.health().await.expect("the container has a check");
    let reached = timeout(
        PATIENCE,
        health.wait_for(|h| !matches!(h, crate::health::Health::Starting)),
    )
    .await
    .expect("no health in time")
    .unwrap()
    .clone();
    // The streak may have grown past `retries` between two polls.
    let crate::health::Health::Unhealthy(reason) = reached else {
        panic!("{reached:?}");
    };
    assert!(
        reason.starts_with("health check failed ")
            && reason.ends_with(" times in a row: exit code 1: broken"),
        "{reason}"
    );
}
