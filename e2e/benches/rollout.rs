//! Rollout benchmark: a drained manager and three workers, a 100-replica
//! process service; time `service update --env-add` until every replica runs
//! a task of the new spec, and until the update is marked completed (which
//! adds the monitor period). Once with parallelism 10 and no delay, once with
//! Docker's documented defaults (parallelism 1, delay 0, monitor 5 s,
//! stop-first). Prints; asserts nothing.
//!
//! Run with `cargo build --release -p shoal-cli && cargo bench -p shoal-e2e --bench rollout`.

// A test crate: its helpers unwrap like its tests (the workspace denies
// unwrap_used in everything else).
#![allow(clippy::unwrap_used)]

use shoal_e2e::util;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use util::{cluster, eventually, marker_program, Daemon, TestDir};

const REPLICAS: usize = 100;

fn task_ids(manager: &Daemon) -> BTreeSet<String> {
    manager
        .running_tasks("web")
        .iter()
        .map(|t| t["ID"].as_str().unwrap().to_string())
        .collect()
}

fn roll(manager: &Daemon, version: usize, flags: &[&str]) -> (Duration, Duration) {
    let before = task_ids(manager);
    let env = format!("VERSION={version}");
    let mut args = vec!["service", "update", "-d", "--env-add", &env];
    args.extend_from_slice(flags);
    args.push("web");
    let started = Instant::now();
    manager.ok(&args);
    let patience = Duration::from_secs(600);
    eventually(patience, "every replica on the new spec", || {
        let now = task_ids(manager);
        if now.len() == REPLICAS && now.is_disjoint(&before) {
            Ok(())
        } else {
            Err(format!("{} running", now.len()))
        }
    });
    let replaced = started.elapsed();
    eventually(patience, "update completed", || {
        let text = manager.ok(&["service", "inspect", "web"]);
        let inspect: serde_json::Value = serde_json::from_str(&text).unwrap();
        match inspect[0]["UpdateStatus"]["State"].as_str() {
            Some("completed") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    (replaced, started.elapsed())
}

fn main() {
    let dir = TestDir::new();
    let program = marker_program(&dir);
    let (manager, _workers, _) = cluster(&dir, 3);
    manager.ok(&["node", "update", "--availability", "drain", "manager"]);
    manager.ok(&[
        "service",
        "create",
        "-q",
        "--name",
        "web",
        "--replicas",
        &REPLICAS.to_string(),
        "-e",
        "VERSION=0",
        "--runtime",
        "process",
        program.to_str().unwrap(),
        "3600",
    ]);
    let (replaced, completed) = roll(
        &manager,
        1,
        &["--update-parallelism", "10", "--update-delay", "0s"],
    );
    println!(
        "rollout of {REPLICAS} replicas, parallelism 10, no delay: all replaced in {:.2} s, update completed in {:.2} s",
        replaced.as_secs_f64(),
        completed.as_secs_f64()
    );
    let (replaced, completed) = roll(
        &manager,
        2,
        &[
            "--update-parallelism",
            "1",
            "--update-delay",
            "0s",
            "--update-monitor",
            "5s",
            "--update-order",
            "stop-first",
        ],
    );
    println!(
        "rollout of {REPLICAS} replicas, Docker's defaults (parallelism 1, delay 0, monitor 5s, stop-first): all replaced in {:.2} s, update completed in {:.2} s",
        replaced.as_secs_f64(),
        completed.as_secs_f64()
    );
}
