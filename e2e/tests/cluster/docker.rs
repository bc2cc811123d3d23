//! Container tasks on real daemons with the machine's Docker engine, and
//! `service logs` / `service exec` for both runtimes.
//!
//! Switched on by `SHOAL_E2E_DOCKER=1` (which `.ci/run` sets): then a missing
//! engine or test image fails the test, naming what is missing; without it
//! every test here says loudly that it skipped. Every container a test's
//! daemons create carries their node IDs in `com.shoal.node.id`, and the
//! [`Containers`] guard removes those even when the test fails.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{cluster, eventually, marker_program, patience, Daemon, TestDir};

/// The image `.ci/run` builds (agent/testdata/build-test-image.sh).
pub(crate) const IMAGE: &str = "shoal-test/busybox:1";
const NODE_LABEL: &str = "com.shoal.node.id";
/// A container command that prints a line, then stops promptly on SIGTERM
/// (a plain `sleep` as PID 1 would ignore it and cost the whole grace period).
pub(crate) const QUIET_LOOP: &str = "trap 'exit 0' TERM; while :; do /busybox sleep 1; done";

/// Whether this test runs: the engine and the test image when
/// `SHOAL_E2E_DOCKER=1`, else a loud skip.
pub(crate) fn docker_enabled(test: &str) -> bool {
    if std::env::var("SHOAL_E2E_DOCKER").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED {test}: needs a Docker engine; set SHOAL_E2E_DOCKER=1 to run it \
             (a missing engine then fails the test)"
        );
        return false;
    }
    let version = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output();
    match version {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "SHOAL_E2E_DOCKER=1 but the Docker engine does not answer: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("SHOAL_E2E_DOCKER=1 but the docker CLI cannot run: {e}"),
    }
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../agent/testdata/build-test-image.sh");
    let built = Command::new("bash")
        .arg(&script)
        .arg(IMAGE)
        .output()
        .expect("run build-test-image.sh");
    assert!(
        built.status.success(),
        "SHOAL_E2E_DOCKER=1 but the test image {IMAGE} cannot be built: {}",
        String::from_utf8_lossy(&built.stderr).trim()
    );
    true
}

/// Removes, on drop, every container labelled with one of the tracked node
/// IDs. Declared before the daemons, so it runs after they stopped and no
/// daemon can start a replacement behind its back.
pub(crate) struct Containers {
    nodes: Mutex<Vec<String>>,
}

impl Containers {
    pub(crate) fn new() -> Self {
        Containers {
            nodes: Mutex::new(Vec::new()),
        }
    }

    /// Tracks every node the manager lists.
    pub(crate) fn track(&self, manager: &Daemon) -> Vec<String> {
        let ids: Vec<String> = manager
            .nodes()
            .iter()
            .map(|n| n["ID"].as_str().unwrap().to_string())
            .collect();
        self.nodes.lock().unwrap().extend(ids.clone());
        ids
    }

    /// IDs of the tracked nodes' containers; only running ones with `running`.
    fn list(&self, running: bool) -> BTreeSet<String> {
        let nodes = self.nodes.lock().unwrap().clone();
        let mut ids = BTreeSet::new();
        for node in nodes {
            let filter = format!("label={NODE_LABEL}={node}");
            let mut args = vec!["ps", "-q", "--no-trunc", "--filter", &filter];
            if !running {
                args.push("-a");
            }
            ids.extend(docker(&args).split_whitespace().map(str::to_string));
        }
        ids
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        let ids = self.list(false);
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f", "-v"])
                .args(&ids)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs the docker CLI; returns stdout, panicking on failure.
fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(
        out.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn inspect(id: &str) -> Value {
    serde_json::from_str::<Value>(&docker(&["inspect", id])).unwrap()[0].clone()
}

/// The running containers, by task ID, of the tasks `service ps` shows
/// running; errors until there are `n` of them, one per running task.
fn containers_by_task(
    manager: &Daemon,
    guard: &Containers,
    service: &str,
    n: usize,
) -> Result<Vec<(String, String)>, String> {
    let tasks: BTreeSet<String> = manager
        .running_tasks(service)
        .iter()
        .map(|t| t["ID"].as_str().unwrap().to_string())
        .collect();
    let mut found = Vec::new();
    for id in guard.list(true) {
        let task = inspect(&id)["Config"]["Labels"]["com.shoal.task.id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if tasks.contains(&task) {
            found.push((task, id));
        }
    }
    found.sort();
    if tasks.len() == n && found.len() == n {
        Ok(found)
    } else {
        Err(format!(
            "running tasks {tasks:?}, their containers {found:?}"
        ))
    }
}

fn create(manager: &Daemon, args: &[&str]) {
    let mut all = vec!["service", "create", "-d"];
    all.extend_from_slice(args);
    manager.ok(&all);
}

#[test]
fn replicas_are_labelled_containers_and_scale_to_zero_and_rm_remove_them() {
    if !docker_enabled("replicas_are_labelled_containers_and_scale_to_zero_and_rm_remove_them") {
        return;
    }
    let guard = Containers::new();
    let dir = TestDir::with_docker();
    let (manager, _workers, _) = cluster(&dir, 2);
    let nodes = guard.track(&manager);
    create(
        &manager,
        &[
            "--name",
            "web",
            "--replicas",
            "3",
            "-e",
            "GREETING=hello there",
            "--limit-cpu",
            "0.5",
            "--limit-memory",
            "64M",
            IMAGE,
            "/busybox",
            "sh",
            "-c",
            QUIET_LOOP,
        ],
    );
    let containers = eventually(patience(), "3 running containers", || {
        containers_by_task(&manager, &guard, "web", 3)
    });
    let inspect_web: Value =
        serde_json::from_str(&manager.ok(&["service", "inspect", "web"])).unwrap();
    let service_id = inspect_web[0]["ID"].clone();
    let mut slots = BTreeSet::new();
    let mut on_nodes = BTreeSet::new();
    for (task, id) in &containers {
        let c = inspect(id);
        let labels = &c["Config"]["Labels"];
        assert_eq!(labels["com.shoal.task.id"], task.as_str());
        assert_eq!(labels["com.shoal.service.name"], "web");
        assert_eq!(labels["com.shoal.service.id"], service_id);
        assert!(nodes.contains(&labels[NODE_LABEL].as_str().unwrap().to_string()));
        on_nodes.insert(labels[NODE_LABEL].as_str().unwrap().to_string());
        slots.insert(labels["com.shoal.task.slot"].as_str().unwrap().to_string());
        let env: Vec<&str> = c["Config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        assert!(env.contains(&"GREETING=hello there"), "{env:?}");
        assert!(
            env.contains(&format!("SHOAL_TASK_ID={task}").as_str()),
            "{env:?}"
        );
        assert!(c["Name"].as_str().unwrap().starts_with("/web."));
        // The spec's limits reached the engine.
        assert_eq!(c["HostConfig"]["NanoCpus"], 500_000_000);
        assert_eq!(c["HostConfig"]["Memory"], 64 * 1024 * 1024);
    }
    assert_eq!(slots, ["1", "2", "3"].map(String::from).into());
    assert_eq!(on_nodes.len(), 3, "spread over the three nodes");

    manager.ok(&["service", "scale", "-d", "web=0"]);
    eventually(patience(), "no container left after scale 0", || {
        let left = guard.list(false);
        left.is_empty().then_some(()).ok_or(format!("{left:?}"))
    });
    manager.ok(&["service", "scale", "-d", "web=1"]);
    eventually(patience(), "1 running container", || {
        containers_by_task(&manager, &guard, "web", 1)
    });
    manager.ok(&["service", "rm", "web"]);
    eventually(patience(), "no container left after rm", || {
        let left = guard.list(false);
        left.is_empty().then_some(()).ok_or(format!("{left:?}"))
    });
}

#[test]
fn containers_killed_or_removed_from_outside_are_replaced() {
    if !docker_enabled("containers_killed_or_removed_from_outside_are_replaced") {
        return;
    }
    let guard = Containers::new();
    let dir = TestDir::with_docker();
    let (manager, _workers, _) = cluster(&dir, 1);
    guard.track(&manager);
    create(
        &manager,
        &[
            "--name",
            "kv",
            "--replicas",
            "2",
            IMAGE,
            "/busybox",
            "sh",
            "-c",
            QUIET_LOOP,
        ],
    );
    let before = eventually(patience(), "2 running containers", || {
        containers_by_task(&manager, &guard, "kv", 2)
    });
    docker(&["kill", &before[0].1]);
    let after_kill = eventually(patience(), "a replacement for the killed one", || {
        let now = containers_by_task(&manager, &guard, "kv", 2)?;
        let old: Vec<&String> = now.iter().map(|(_, c)| c).collect();
        if !old.contains(&&before[0].1) && old.contains(&&before[1].1) {
            Ok(now)
        } else {
            Err(format!("{now:?}"))
        }
    });
    let ids: Vec<String> = after_kill.iter().map(|(_, c)| c.clone()).collect();
    let mut args = vec!["rm", "-f"];
    args.extend(ids.iter().map(String::as_str));
    docker(&args);
    eventually(patience(), "replacements for the removed ones", || {
        let now = containers_by_task(&manager, &guard, "kv", 2)?;
        if now.iter().all(|(_, c)| !ids.contains(c)) {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    });
    let failed = manager
        .tasks("kv")
        .iter()
        .filter(|t| {
            t["CurrentState"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Failed")
        })
        .count();
    assert!(failed >= 1, "the killed task shows as failed");
}

#[test]
fn a_restarted_agent_adopts_its_containers_and_removes_those_of_removed_tasks() {
    if !docker_enabled("a_restarted_agent_adopts_its_containers_and_removes_those_of_removed_tasks")
    {
        return;
    }
    let guard = Containers::new();
    let dir = TestDir::with_docker();
    let manager = dir.daemon("manager");
    // A long heartbeat: the worker must not be marked Down (and its tasks
    // moved) while it restarts.
    manager.ok(&[
        "swarm",
        "init",
        "--listen-addr",
        "127.0.0.1:0",
        "--dispatcher-heartbeat",
        "5s",
    ]);
    let addr = manager.info()["NodeAddr"].as_str().unwrap().to_string();
    let mut worker = dir.daemon("worker1");
    worker.join(&manager.worker_token(), &addr, "127.0.0.2");
    eventually(patience(), "both nodes Ready", || {
        let nodes = manager.nodes();
        (nodes.len() == 2 && nodes.iter().all(|n| n["Status"] == "Ready"))
            .then_some(())
            .ok_or(format!("{nodes:?}"))
    });
    guard.track(&manager);
    for name in ["keep", "gone"] {
        create(
            &manager,
            &[
                "--name",
                name,
                "--replicas",
                "2",
                IMAGE,
                "/busybox",
                "sh",
                "-c",
                QUIET_LOOP,
            ],
        );
    }
    let on_worker = |service: &str| -> (String, String) {
        let containers = eventually(patience(), "2 running containers", || {
            containers_by_task(&manager, &guard, service, 2)
        });
        let task = manager
            .running_tasks(service)
            .into_iter()
            .find(|t| t["Node"] == "worker1")
            .expect("spread puts one task on the worker");
        let task = task["ID"].as_str().unwrap().to_string();
        containers
            .into_iter()
            .find(|(t, _)| *t == task)
            .expect("the worker task's container")
    };
    let (keep_task, keep_container) = on_worker("keep");
    let (_, gone_container) = on_worker("gone");

    // Restarted within the reconnect grace (a quarter of the heartbeat
    // period: 5 s here, 250 ms by default), the worker keeps its tasks.
    manager.ok(&["swarm", "update", "--dispatcher-heartbeat", "20s"]);
    worker.kill();
    manager.ok(&["service", "rm", "gone"]);
    worker.start();
    eventually(patience(), "the removed task's container removed", || {
        let all = guard.list(false);
        if all.contains(&gone_container) {
            Err(format!("{all:?}"))
        } else {
            Ok(())
        }
    });
    // Adopted: the same container still runs the same task.
    let task = manager
        .running_tasks("keep")
        .into_iter()
        .find(|t| t["Node"] == "worker1")
        .expect("the kept task still runs on the worker");
    assert_eq!(task["ID"], keep_task.as_str());
    assert!(guard.list(true).contains(&keep_container));
    assert_eq!(manager.running_tasks("keep").len(), 2);
}

#[test]
fn a_missing_image_shows_the_engine_error_and_retries_within_the_history_limit() {
    if !docker_enabled(
        "a_missing_image_shows_the_engine_error_and_retries_within_the_history_limit",
    ) {
        return;
    }
    let guard = Containers::new();
    let dir = TestDir::with_docker();
    let (manager, _, _) = cluster(&dir, 0);
    guard.track(&manager);
    // A registry that refuses at once: the pull fails fast and offline.
    create(&manager, &["--name", "nope", "127.0.0.1:9/shoal/missing:1"]);
    let error = eventually(patience(), "the engine's error in service ps", || {
        let tasks = manager.tasks("nope");
        tasks
            .iter()
            .map(|t| t["Error"].as_str().unwrap_or_default().to_string())
            .find(|e| e.contains("127.0.0.1:9"))
            .ok_or(format!("{tasks:?}"))
    });
    eprintln!("engine error shown: {error}");
    // The slot keeps retrying under the default restart policy (a new task
    // 5 s after each failure), without flooding: over 11 s, two or three
    // more attempts, and a history bounded by the limit (5 dead + 1 live).
    let start = Instant::now();
    let mut seen = BTreeSet::new();
    let mut most = 0;
    while start.elapsed() < Duration::from_secs(11) {
        let tasks = manager.tasks("nope");
        most = most.max(tasks.len());
        seen.extend(tasks.iter().map(|t| t["ID"].as_str().unwrap().to_string()));
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "missing image: {} distinct tasks seen in 11 s, at most {most} listed at once",
        seen.len()
    );
    assert!(most <= 6, "history beyond the limit: {most} tasks listed");
    assert!(seen.len() > 1, "the slot is retried");
    assert!(
        seen.len() <= 4,
        "{} attempts in 11 s: the restart delay must pace retries",
        seen.len()
    );
    assert!(guard.list(false).is_empty(), "no container was created");
}

/// `service logs` and `service exec` on a process service and a container
/// service spread over a manager and a worker (so that the worker's answers
/// travel over its session).
#[test]
fn logs_and_exec_for_process_and_container_tasks() {
    if !docker_enabled("logs_and_exec_for_process_and_container_tasks") {
        return;
    }
    let guard = Containers::new();
    let dir = TestDir::with_docker();
    let (manager, _workers, _) = cluster(&dir, 1);
    guard.track(&manager);
    let sleep = marker_program(&dir);
    let proc_script = format!(
        "echo proc-out-$SHOAL_TASK_SLOT; echo proc-err-$SHOAL_TASK_SLOT >&2; exec {} 300",
        sleep.display()
    );
    create(
        &manager,
        &[
            "--name",
            "proc",
            "--replicas",
            "2",
            "--runtime",
            "process",
            "sh",
            "-c",
            &proc_script,
        ],
    );
    let ctr_script = format!("echo ctr-out-$SHOAL_TASK_SLOT; echo ctr-err >&2; {QUIET_LOOP}");
    create(
        &manager,
        &[
            "--name",
            "ctr",
            "--replicas",
            "2",
            IMAGE,
            "/busybox",
            "sh",
            "-c",
            &ctr_script,
        ],
    );
    for service in ["proc", "ctr"] {
        eventually(patience(), "2 running tasks", || {
            let n = manager.running_tasks(service).len();
            (n == 2).then_some(()).ok_or(format!("{n} running"))
        });
    }
    for (service, out, err) in [
        ("proc", "proc-out-", "proc-err-"),
        ("ctr", "ctr-out-", "ctr-err"),
    ] {
        let run = eventually(patience(), "every task's lines", || {
            let run = manager.shoal(&["service", "logs", service]);
            let complete = run.status == 0
                && run.stdout.contains(&format!("{out}1"))
                && run.stdout.contains(&format!("{out}2"))
                && run.stderr.matches(err).count() == 2;
            complete.then_some(run).ok_or(String::new())
        });
        for line in run.stdout.lines() {
            let (prefix, text) = line.split_once(" | ").expect("a prefixed line");
            let slot = text.trim_start_matches(out);
            assert!(
                prefix.starts_with(&format!("{service}.{slot}.")),
                "{line:?}"
            );
            assert!(
                prefix.trim_end().ends_with("@manager") || prefix.trim_end().ends_with("@worker1"),
                "{line:?}"
            );
        }
        let hosts: BTreeSet<&str> = run
            .stdout
            .lines()
            .map(|l| {
                l.split_once('@')
                    .unwrap()
                    .1
                    .split_whitespace()
                    .next()
                    .unwrap()
            })
            .collect();
        assert_eq!(hosts.len(), 2, "lines from both nodes: {}", run.stdout);
        let none = manager.ok(&["service", "logs", "--tail", "0", service]);
        assert_eq!(none, "");
        let stamped = manager.ok(&["service", "logs", "-t", "--tail", "1", service]);
        assert!(
            stamped
                .lines()
                .all(|l| l.starts_with("20") && l.contains("Z ")),
            "{stamped}"
        );
        let later = manager.ok(&[
            "service",
            "logs",
            "--since",
            "2100-01-01T00:00:00Z",
            service,
        ]);
        assert_eq!(later, "");

        // Follow keeps the stream open until interrupted.
        let mut follow = Command::new(crate::util::shoal_bin())
            .arg("-H")
            .arg(&manager.socket)
            .args(["service", "logs", "-f", service])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait for what is already logged to arrive on the stream (the
        // observed event), then for a whole non-following `logs` call: that
        // one ends once it has everything, while `-f` must still be open.
        let stdout = follow.stdout.take().unwrap();
        let (lines_tx, lines_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let wanted = format!("{out}1");
        let deadline = Instant::now() + patience();
        let mut text = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => {
                    text.push_str(&line);
                    text.push('\n');
                    if line.contains(&wanted) {
                        break;
                    }
                }
                Err(e) => panic!("-f never printed {wanted:?} ({e}); it printed: {text}"),
            }
        }
        manager.ok(&["service", "logs", service]);
        assert!(follow.try_wait().unwrap().is_none(), "-f keeps following");
        follow.kill().unwrap();
        follow.wait().unwrap();

        // Exec in each task (one of them on the worker).
        for task in manager.running_tasks(service) {
            let id = task["ID"].as_str().unwrap();
            let shell = if service == "ctr" { "/busybox" } else { "sh" };
            let mut args = vec!["service", "exec", id, "--", shell];
            if service == "ctr" {
                args.push("sh");
            }
            args.extend(["-c", "echo in $SHOAL_TASK_NAME; echo oops >&2; exit 3"]);
            let run = manager.shoal(&args);
            assert_eq!(run.status, 3, "exit code passed through: {}", run.stderr);
            let name = task["Name"].as_str().unwrap();
            assert_eq!(run.stdout.trim(), format!("in {name}.{id}"));
            assert_eq!(run.stderr, "oops\n");
            let ok = if service == "ctr" {
                manager.shoal(&["service", "exec", id, "--", "/busybox", "true"])
            } else {
                manager.shoal(&["service", "exec", id, "--", "true"])
            };
            assert_eq!(ok.status, 0, "{}", ok.stderr);
        }
    }
    manager
        .shoal(&["service", "exec", "nosuchtask", "--", "true"])
        .assert_error("No such task: nosuchtask");
    manager
        .shoal(&["service", "logs", "nosuchthing"])
        .assert_error("No such service or task: nosuchthing");
}

/// A container command that installs busybox's applets (the test image is
/// FROM scratch: no `/bin/sh`, which the engine runs a CMD-SHELL health check
/// with, and no `/tmp`), runs `then`, and loops like [`QUIET_LOOP`].
fn with_shell(then: &str) -> String {
    format!("/busybox mkdir -p /bin /tmp; /busybox --install -s /bin; {then} {QUIET_LOOP}")
}

/// The environment the engine gave a container.
fn env_of(container: &Value) -> Vec<String> {
    container["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect()
}

/// The rows of `service ps` for `service`'s slot `slot` (the live task and
/// its history).
fn slot_tasks(manager: &Daemon, service: &str, slot: u32) -> Vec<Value> {
    let name = format!("{service}.{slot}");
    manager
        .tasks(service)
        .into_iter()
        .filter(|t| {
            t["Name"]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches(" \\_ ")
                == name
        })
        .collect()
}

fn state_of(task: &Value) -> &str {
    let current = task["CurrentState"].as_str().unwrap_or_default();
    current.split_whitespace().next().unwrap_or_default()
}

#[test]
fn update_env_add_rolls_every_container_one_at_a_time() {
    if !docker_enabled("update_env_add_rolls_every_container_one_at_a_time") {
        return;
    }
    let guard = Containers::new();
    let dir = TestDir::with_docker();
    let (manager, _workers, _) = cluster(&dir, 2);
    guard.track(&manager);
    create(
        &manager,
        &[
            "--name",
            "web",
            "--replicas",
            "3",
            "-e",
            "GREETING=v1",
            IMAGE,
            "/busybox",
            "sh",
            "-c",
            QUIET_LOOP,
        ],
    );
    let before: BTreeSet<String> = eventually(patience(), "3 running containers", || {
        containers_by_task(&manager, &guard, "web", 3)
    })
    .into_iter()
    .map(|(_, c)| c)
    .collect();

    // stop-first (the default order), one at a time: while it rolls, never
    // fewer than 2 nor more than 3 containers run.
    let mut child = manager.spawn_shoal(&[
        "service",
        "update",
        "-q",
        "--env-add",
        "GREETING=v2",
        "--update-parallelism",
        "1",
        "--update-monitor",
        "1s",
        "web",
    ]);
    let deadline = Instant::now() + patience() * 2;
    let (mut lowest, mut highest) = (usize::MAX, 0);
    while child.try_wait().unwrap().is_none() {
        let n = guard.list(true).len();
        lowest = lowest.min(n);
        highest = highest.max(n);
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "service update -q did not return within {:?}",
                patience() * 2
            );
        }
    }
    let run = crate::util::Run::from(child.wait_with_output().unwrap());
    assert_eq!(run.status, 0, "update failed: {}", run.stderr);
    // As Docker's: the service's name, and no progress with -q.
    assert_eq!(run.stdout, "web\n");
    assert!(
        lowest >= 2 && highest <= 3,
        "parallelism 1, stop-first: between {lowest} and {highest} containers ran"
    );

    // The update waited for convergence: right away, the running tasks are
    // 3 new containers carrying the new environment, and no old one runs.
    let after = containers_by_task(&manager, &guard, "web", 3)
        .unwrap_or_else(|e| panic!("not converged when update returned: {e}"));
    let running = guard.list(true);
    assert_eq!(
        running.len(),
        3,
        "only the service's 3 containers run: {running:?}"
    );
    for (task, id) in &after {
        assert!(!before.contains(id), "container {id} was kept");
        let c = inspect(id);
        assert_eq!(c["Config"]["Labels"]["com.shoal.service.name"], "web");
        assert_eq!(c["Config"]["Labels"]["com.shoal.task.id"], task.as_str());
        let env = env_of(&c);
        assert!(env.iter().any(|e| e == "GREETING=v2"), "{env:?}");
        assert!(!env.iter().any(|e| e == "GREETING=v1"), "{env:?}");
    }
    for old in &before {
        assert!(!running.contains(old), "old container {old} still runs");
    }
    let service: Value = serde_json::from_str(&manager.ok(&["service", "inspect", "web"])).unwrap();
    assert_eq!(service[0]["UpdateStatus"]["State"], "completed");
    // Their containers go too (the agent removes a task's container once the
    // task is shut down and no longer assigned).
    eventually(patience(), "the old containers removed", || {
        let all = guard.list(false);
        let left: Vec<&String> = before.intersection(&all).collect();
        left.is_empty().then_some(()).ok_or(format!("{left:?}"))
    });
}

#[test]
fn a_container_health_check_holds_its_tasks_starting_until_it_passes() {
    if !docker_enabled("a_container_health_check_holds_its_tasks_starting_until_it_passes") {
        return;
    }
    let guard = Containers::new();
    let dir = TestDir::with_docker();
    let (manager, _workers, _) = cluster(&dir, 1);
    guard.track(&manager);
    // Ready 2 s after it starts. The start period keeps the failures before
    // that from counting (3 failures 500 ms apart would make it unhealthy).
    let command = with_shell("/busybox sleep 2; /busybox touch /tmp/ready;");
    create(
        &manager,
        &[
            "--name",
            "slow",
            "--replicas",
            "2",
            "--health-cmd",
            "test -f /tmp/ready",
            "--health-interval",
            "500ms",
            "--health-start-period",
            "30s",
            IMAGE,
            "/busybox",
            "sh",
            "-c",
            &command,
        ],
    );
    // Sample until both run. A task shown Running must already have its
    // file: the file is never removed, so one still missing when looked at
    // after `service ps` was missing when `service ps` answered.
    let mut starting_seen = BTreeSet::new();
    let containers = eventually(patience(), "2 healthy running tasks", || {
        let tasks = manager.tasks("slow");
        for task in &tasks {
            if state_of(task) == "Starting" {
                starting_seen.insert(task["ID"].as_str().unwrap().to_string());
            }
        }
        let running = containers_by_task(&manager, &guard, "slow", 2);
        let shown_running: BTreeSet<&str> = tasks
            .iter()
            .filter(|t| state_of(t) == "Running")
            .map(|t| t["ID"].as_str().unwrap())
            .collect();
        for id in guard.list(true) {
            let c = inspect(&id);
            let task = c["Config"]["Labels"]["com.shoal.task.id"]
                .as_str()
                .unwrap_or_default();
            if !shown_running.contains(task) {
                continue;
            }
            let probe = Command::new("docker")
                .args(["exec", &id, "/busybox", "test", "-f", "/tmp/ready"])
                .status()
                .expect("docker exec");
            assert!(
                probe.success(),
                "task {task} shown Running before its health check could pass: {tasks:?}"
            );
        }
        running
    });
    let tasks: BTreeSet<String> = containers.iter().map(|(t, _)| t.clone()).collect();
    assert!(
        starting_seen.iter().any(|t| tasks.contains(t)),
        "never saw the tasks Starting while their check failed (saw {starting_seen:?})"
    );
    for (_, id) in &containers {
        let c = inspect(id);
        assert_eq!(c["State"]["Health"]["Status"], "healthy", "{}", c["State"]);
        assert_eq!(
            c["Config"]["Healthcheck"]["Test"],
            serde_json::json!(["CMD-SHELL", "test -f /tmp/ready"])
        );
    }
    let ls = manager.ok(&["service", "ls", "--format", "json"]);
    let ls: Value = serde_json::from_str(ls.lines().next().unwrap()).unwrap();
    assert_eq!(ls["Replicas"], "2/2");
}

#[test]
fn a_container_failing_its_health_check_fails_and_is_replaced_never_running() {
    if !docker_enabled("a_container_failing_its_health_check_fails_and_is_replaced_never_running") {
        return;
    }
    let guard = Containers::new();
    let dir = TestDir::with_docker();
    let (manager, _, _) = cluster(&dir, 0);
    guard.track(&manager);
    create(
        &manager,
        &[
            "--name",
            "sick",
            "--health-cmd",
            "false",
            "--health-interval",
            "300ms",
            "--health-retries",
            "1",
            IMAGE,
            "/busybox",
            "sh",
            "-c",
            &with_shell(""),
        ],
    );
    // Under the default restart policy the slot gets a new task after each
    // failure: wait for two failed ones, and meanwhile never see one Running.
    let failed = eventually(patience(), "two tasks failed unhealthy", || {
        let slot = slot_tasks(&manager, "sick", 1);
        let running: Vec<&Value> = slot.iter().filter(|t| state_of(t) == "Running").collect();
        assert!(
            running.is_empty(),
            "an unhealthy task shown Running: {running:?}"
        );
        let ls = manager.ok(&["service", "ls", "--format", "json"]);
        let ls: Value = serde_json::from_str(ls.lines().next().unwrap()).unwrap();
        assert_eq!(ls["Replicas"], "0/1", "an unhealthy task counted running");
        let failed: Vec<Value> = slot
            .iter()
            .filter(|t| state_of(t) == "Failed")
            .cloned()
            .collect();
        if failed.len() >= 2 {
            Ok(failed)
        } else {
            Err(format!("{slot:?}"))
        }
    });
    for task in &failed {
        let error = task["Error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("task: unhealthy: health check failed"),
            "{task}"
        );
    }
    eprintln!("unhealthy task error: {}", failed[0]["Error"]);
    // The table a user reads says so too.
    let ps = manager.ok(&["service", "ps", "--no-trunc", "sick"]);
    assert!(ps.contains("unhealthy"), "{ps}");
}
