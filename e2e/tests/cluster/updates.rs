//! Rolling updates, rollbacks and health checks, watched from outside: each
//! task is a process whose environment carries `VERSION`, and the test reads
//! that from /proc for every running task while updates roll.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Child;

use serde_json::Value;

use crate::util::{
    cluster, eventually, marker_program, patience, processes_of, Daemon, Run, TestDir,
};

/// The VERSION of each running task (desired and observed Running, with a
/// live process), by task ID.
fn running_versions(
    nodes: &[&Daemon],
    manager: &Daemon,
    service: &str,
) -> BTreeMap<String, String> {
    versions_of(nodes, &manager.running_tasks(service))
}

/// The VERSION in the environment of each listed task's process, when the
/// process can still be read.
fn versions_of(nodes: &[&Daemon], tasks: &[Value]) -> BTreeMap<String, String> {
    let mut versions = BTreeMap::new();
    for task in tasks {
        let id = task["ID"].as_str().unwrap().to_string();
        let Some(pid) = nodes.iter().find_map(|n| n.task_pid(&id)) else {
            continue;
        };
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let version = environ
            .split(|b| *b == 0)
            .find_map(|kv| kv.strip_prefix(b"VERSION="))
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        versions.insert(id, version);
    }
    versions
}

/// Creates `web`: 6 replicas of the marker program with VERSION=1, a health
/// check that fails for VERSION=bad, and a short monitor so tests run fast.
fn create_web(manager: &Daemon, program: &Path, extra: &[&str]) {
    let mut args = vec![
        "service",
        "create",
        "-q",
        "--name",
        "web",
        "--replicas",
        "6",
        "-e",
        "VERSION=1",
        "--health-cmd",
        "test \"$VERSION\" != bad",
        "--health-interval",
        "300ms",
        "--health-retries",
        "1",
        "--update-monitor",
        "2s",
        "--runtime",
        "process",
    ];
    args.extend_from_slice(extra);
    args.push(program.to_str().unwrap());
    args.push("3600");
    // `create` waits for the service to converge.
    manager.ok(&args);
}

/// What sampling saw while a command ran.
struct Sampled {
    run: Run,
    /// The fewest tasks the cluster reported running (desired and observed
    /// Running; healthy, as these tasks have a health check). Each sample is
    /// one listing, a consistent snapshot from the leader.
    lowest_running: usize,
    /// The fewest live task processes on the machine (whatever their state).
    lowest_processes: usize,
    /// Per sample, the VERSION of each listed running task whose process
    /// could still be read.
    versions: Vec<BTreeMap<String, String>>,
}

/// Runs a waiting CLI command while sampling the service continuously.
/// Counts come from the cluster's listing and from /proc separately: joining
/// the two would mistake a task stopped between the two reads for a gap.
fn sample_while(nodes: &[&Daemon], manager: &Daemon, program: &Path, mut child: Child) -> Sampled {
    let mut lowest_running = usize::MAX;
    let mut lowest_processes = usize::MAX;
    let mut versions = Vec::new();
    let deadline = std::time::Instant::now() + patience() * 2;
    loop {
        let listed = manager.running_tasks("web");
        lowest_running = lowest_running.min(listed.len());
        lowest_processes = lowest_processes.min(processes_of(program).len());
        versions.push(versions_of(nodes, &listed));
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the command did not finish"
        );
    }
    Sampled {
        run: Run::from(child.wait_with_output().unwrap()),
        lowest_running,
        lowest_processes,
        versions,
    }
}

fn inspect(manager: &Daemon) -> Value {
    let text = manager.ok(&["service", "inspect", "web"]);
    serde_json::from_str::<Value>(&text).unwrap()[0].clone()
}

/// Updates `web` to `version` two tasks at a time in `order`, sampling all
/// along: never fewer than `at_least` running tasks (and live processes),
/// and all 6 on `version` at the end. Returns the waiting command's output.
fn roll_web(
    nodes: &[&Daemon],
    manager: &Daemon,
    program: &Path,
    order: &str,
    version: &str,
    at_least: usize,
) -> Run {
    let env = format!("VERSION={version}");
    let child = manager.spawn_shoal(&[
        "service",
        "update",
        "--update-parallelism",
        "2",
        "--update-order",
        order,
        "--env-add",
        &env,
        "web",
    ]);
    let sampled = sample_while(nodes, manager, program, child);
    let run = sampled.run;
    assert_eq!(run.status, 0, "update failed: {}", run.stderr);
    assert!(
        sampled.lowest_running >= at_least && sampled.lowest_processes >= at_least,
        "{order} with parallelism 2 dropped to {} running tasks, {} processes",
        sampled.lowest_running,
        sampled.lowest_processes
    );
    let versions = running_versions(nodes, manager, "web");
    assert_eq!(versions.len(), 6);
    assert!(versions.values().all(|v| v == version), "{versions:?}");
    run
}

#[test]
fn rolling_updates_keep_the_service_up_and_show_progress() {
    let dir = TestDir::new();
    let program = marker_program(&dir);
    let (manager, workers, _) = cluster(&dir, 2);
    let nodes = [&manager, &workers[0], &workers[1]];
    create_web(&manager, &program, &[]);
    assert_eq!(running_versions(&nodes, &manager, "web").len(), 6);

    // stop-first, two at a time: never fewer than 4 healthy running tasks.
    let run = roll_web(&nodes, &manager, &program, "stop-first", "2", 4);
    // The progress as a non-terminal shows it: slot lines, then the totals.
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("1/6: running   [====")),
        "{}",
        run.stdout
    );
    let overall = lines
        .iter()
        .rposition(|l| *l == "overall progress: 6 out of 6 tasks")
        .unwrap_or_else(|| panic!("no final overall progress in:\n{}", run.stdout));
    assert_eq!(
        lines.last(),
        Some(&"verify: Service converged"),
        "{}",
        run.stdout
    );
    assert!(overall < lines.len() - 1);
    assert_eq!(inspect(&manager)["UpdateStatus"]["State"], "completed");

    // start-first: the new task runs before the old one stops: never fewer than 6.
    roll_web(&nodes, &manager, &program, "start-first", "3", 6);

    // `service rollback` restores the previous spec (VERSION=2).
    manager.ok(&["service", "rollback", "-q", "web"]);
    let versions = running_versions(&nodes, &manager, "web");
    assert!(
        versions.len() == 6 && versions.values().all(|v| v == "2"),
        "{versions:?}"
    );
    let service = inspect(&manager);
    assert_eq!(service["UpdateStatus"]["State"], "rollback_completed");
    assert_eq!(service["UpdateStatus"]["Message"], "rollback completed");

    // --force replaces every task once, with no spec change.
    let ids = |manager: &Daemon| -> Vec<String> {
        manager
            .tasks("web")
            .iter()
            .map(|t| t["ID"].as_str().unwrap().to_string())
            .collect()
    };
    let before = ids(&manager);
    manager.ok(&[
        "service",
        "update",
        "-q",
        "--force",
        "--update-parallelism",
        "3",
        "web",
    ]);
    let after = running_versions(&nodes, &manager, "web");
    assert_eq!(after.len(), 6);
    assert!(
        after.keys().all(|id| !before.contains(id)),
        "a task was kept"
    );
    assert!(after.values().all(|v| v == "2"));
    let created: Vec<String> = ids(&manager)
        .into_iter()
        .filter(|id| !before.contains(id))
        .collect();
    assert_eq!(
        created.len(),
        6,
        "the force replaced a slot more than once: {created:?}"
    );
}

#[test]
fn a_failing_update_rolls_back_or_pauses() {
    let dir = TestDir::new();
    let program = marker_program(&dir);
    let (manager, workers, _) = cluster(&dir, 2);
    let nodes = [&manager, &workers[0], &workers[1]];
    create_web(&manager, &program, &["--update-parallelism", "2"]);

    // A command that exits at once, with failure action rollback.
    let run = manager.shoal(&[
        "service",
        "update",
        "--update-failure-action",
        "rollback",
        "--command",
        "/bin/false",
        "web",
    ]);
    run.assert_error("rolled back");
    assert!(
        run.stdout
            .contains("rollback: update rolled back due to failure or early termination of task"),
        "{}",
        run.stdout
    );
    let service = inspect(&manager);
    assert_eq!(service["UpdateStatus"]["State"], "rollback_completed");
    assert_ne!(
        service["Spec"]["TaskTemplate"]["ContainerSpec"]["Command"][0],
        "/bin/false"
    );
    let versions = running_versions(&nodes, &manager, "web");
    assert!(
        versions.len() == 6 && versions.values().all(|v| v == "1"),
        "{versions:?}"
    );

    // The same with failure action pause: at most `parallelism` tasks touched.
    let original: Vec<String> = versions.keys().cloned().collect();
    let run = manager.shoal(&[
        "service",
        "update",
        "--update-failure-action",
        "pause",
        "--command",
        "/bin/false",
        "web",
    ]);
    run.assert_error("update paused due to failure or early termination of task");
    let service = inspect(&manager);
    assert_eq!(service["UpdateStatus"]["State"], "paused");
    assert!(service["UpdateStatus"]["Message"]
        .as_str()
        .unwrap()
        .starts_with("update paused due to failure or early termination of task "));
    let kept = running_versions(&nodes, &manager, "web")
        .into_keys()
        .filter(|id| original.contains(id))
        .count();
    assert_eq!(kept, 4, "parallelism 2 touches at most 2 of 6 tasks");
}

#[test]
fn health_checks_gate_the_rollout() {
    let dir = TestDir::new();
    let program = marker_program(&dir);
    let (manager, workers, _) = cluster(&dir, 2);
    let nodes = [&manager, &workers[0], &workers[1]];
    create_web(&manager, &program, &["--update-parallelism", "2"]);
    let original: Vec<String> = running_versions(&nodes, &manager, "web")
        .into_keys()
        .collect();

    // The new version never becomes healthy: the first batch fails its
    // health check and the update pauses there.
    let child = manager.spawn_shoal(&["service", "update", "--env-add", "VERSION=bad", "web"]);
    let sampled = sample_while(&nodes, &manager, &program, child);
    sampled
        .run
        .assert_error("update paused due to failure or early termination of task");
    assert!(
        sampled.lowest_running >= 4,
        "dropped to {}",
        sampled.lowest_running
    );
    assert!(
        sampled
            .versions
            .iter()
            .all(|s| s.values().all(|v| v != "bad")),
        "an unhealthy task counted as running"
    );
    let kept = running_versions(&nodes, &manager, "web")
        .into_keys()
        .filter(|id| original.contains(id))
        .count();
    assert_eq!(kept, 4, "the rollout went past its first batch");
    let ps = manager.ok(&["service", "ps", "--no-trunc", "web"]);
    assert!(ps.contains("unhealthy"), "{ps}");

    // A check that passes only after a start period: the task creates its
    // marker file after 2 s, failures before count for nothing.
    manager.ok(&[
        "service",
        "update",
        "-q",
        "--env-add",
        "VERSION=4",
        "--command",
        &format!(
            "sh -c 'sleep 2; touch ready; exec {} 3600'",
            program.display()
        ),
        "--health-cmd",
        "test -f ready",
        "--health-start-period",
        "10s",
        "web",
    ]);
    let versions = running_versions(&nodes, &manager, "web");
    assert!(
        versions.len() == 6 && versions.values().all(|v| v == "4"),
        "{versions:?}"
    );
    assert_eq!(inspect(&manager)["UpdateStatus"]["State"], "completed");
}

#[test]
fn force_update_rebalances_over_nodes_that_joined() {
    let dir = TestDir::new();
    let program = marker_program(&dir);
    let (manager, workers, addr) = cluster(&dir, 1);
    let token = manager.worker_token();
    manager.ok(&["node", "update", "--availability", "drain", "manager"]);
    manager.ok(&[
        "service",
        "create",
        "-q",
        "--name",
        "web",
        "--replicas",
        "6",
        "--update-parallelism",
        "2",
        "--update-monitor",
        "1s",
        "--runtime",
        "process",
        program.to_str().unwrap(),
        "3600",
    ]);
    let late: Vec<Daemon> = ["late1", "late2"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let node = dir.daemon(name);
            node.join(&token, &addr, &format!("127.0.0.{}", 10 + i));
            node
        })
        .collect();
    let _ = (&workers, &late);
    eventually(patience(), "4 ready nodes", || {
        let ready = manager
            .nodes()
            .iter()
            .filter(|n| n["Status"] == "Ready")
            .count();
        if ready == 4 {
            Ok(())
        } else {
            Err(format!("{ready} ready"))
        }
    });
    // Nothing moves by itself.
    let per_node = |tasks: &[Value]| {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for t in tasks {
            *counts
                .entry(t["Node"].as_str().unwrap().into())
                .or_default() += 1;
        }
        counts
    };
    assert_eq!(per_node(&manager.running_tasks("web")).len(), 1);
    manager.ok(&["service", "update", "-q", "--force", "web"]);
    let counts = per_node(&manager.running_tasks("web"));
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|n| *n == 2), "{counts:?}");
}

#[test]
fn bad_update_input_is_refused_and_changes_nothing() {
    let dir = TestDir::new();
    let program = marker_program(&dir);
    let (manager, _, _) = cluster(&dir, 0);
    manager.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--runtime",
        "process",
        program.to_str().unwrap(),
        "3600",
    ]);
    let before = inspect(&manager);
    manager
        .shoal(&["service", "rollback", "web"])
        .assert_error("service web has no previous spec to roll back to");
    for (args, expected) in [
        (
            vec!["--update-failure-action", "explode"],
            "invalid --update-failure-action \"explode\": expected pause, continue or rollback",
        ),
        (
            vec!["--rollback-failure-action", "rollback"],
            "invalid --rollback-failure-action \"rollback\": expected pause or continue",
        ),
        (
            vec!["--update-order", "sideways"],
            "invalid --update-order \"sideways\": expected stop-first or start-first",
        ),
        (
            vec!["--update-max-failure-ratio", "1.5"],
            "invalid --update-max-failure-ratio 1.5: expected a fraction between 0 and 1",
        ),
        (
            vec!["--update-delay", "soon"],
            "invalid --update-delay \"soon\"",
        ),
        (
            vec!["--health-retries", "2"],
            "a health check option needs a command: add --health-cmd",
        ),
        (
            vec!["--command", "sh -c 'unbalanced"],
            "invalid --command \"sh -c 'unbalanced\": unbalanced quotes",
        ),
        (
            vec!["--image", "nginx:1.27"],
            "--image applies to container services",
        ),
    ] {
        let mut all = vec!["service", "update", "-d"];
        all.extend(args);
        all.push("web");
        manager.shoal(&all).assert_error(expected);
    }
    let after = inspect(&manager);
    for key in [
        "Spec",
        "SpecVersion",
        "Version",
        "UpdateStatus",
        "PreviousSpec",
    ] {
        assert_eq!(after[key], before[key], "a refused update changed {key}");
    }
}
