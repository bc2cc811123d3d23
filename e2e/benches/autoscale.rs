//! Autoscaling benchmark: one node, a process service autoscaled 1..5 on
//! CPU (target 50 % of a core) whose task burns a core while a flag file
//! exists. Each run creates the file (a step change in load) and times
//! until the first scaling decision shows in `service inspect` and until
//! the new replicas run; then removes it and waits for the service to be
//! back at 1 (3 s scale-down window). Median of several runs. Prints;
//! asserts nothing.
//!
//! Run with `cargo build --release -p shoal-cli && cargo bench -p shoal-e2e --bench autoscale`.

// A test crate: its helpers unwrap like its tests (the workspace denies
// unwrap_used in everything else).
#![allow(clippy::unwrap_used)]

use shoal_e2e::util;

use std::time::{Duration, Instant};

use serde_json::Value;
use util::{cluster, create_cpu_burner, eventually, patience, TestDir};

fn runs() -> usize {
    std::env::var("SHOAL_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
}

fn replicas(manager: &util::Daemon) -> u64 {
    let out = manager.ok(&["service", "inspect", "burner"]);
    let value: Value = serde_json::from_str(&out).expect("inspect json");
    value[0]["Spec"]["Mode"]["Replicated"]["Replicas"]
        .as_u64()
        .expect("replicas")
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let dir = TestDir::new();
    let bin = dir.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let shell = bin.join("task-sh");
    std::fs::copy("/bin/sh", &shell).unwrap();
    let flag = dir.dir.path().join("busy");
    let (manager, _workers, _) = cluster(&dir, 0);
    create_cpu_burner(&manager, &shell, &flag);
    let (mut decisions, mut running) = (Vec::new(), Vec::new());
    for run in 0..runs() {
        eventually(patience() * 2, "back at 1 replica, idle", || {
            match (replicas(&manager), manager.running_tasks("burner").len()) {
                (1, 1) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
        // Not a wait for state: the step must start from a metric window
        // (3 s) that holds only idle samples, as a real step would.
        std::thread::sleep(Duration::from_secs(4));
        std::fs::write(&flag, b"").unwrap();
        let step = Instant::now();
        let to = eventually(patience(), "a scale-out decision", || {
            match replicas(&manager) {
                n if n > 1 => Ok(n),
                n => Err(format!("{n}")),
            }
        });
        let decided = step.elapsed();
        eventually(patience(), "the new replicas running", || {
            let n = manager.running_tasks("burner").len() as u64;
            if n >= to {
                Ok(())
            } else {
                Err(format!("{n} of {to}"))
            }
        });
        let up = step.elapsed();
        println!(
            "autoscale run {}: decision (1 → {to}) {:.2} s, replicas running {:.2} s",
            run + 1,
            decided.as_secs_f64(),
            up.as_secs_f64()
        );
        decisions.push(decided);
        running.push(up);
        std::fs::remove_file(&flag).unwrap();
    }
    let n = decisions.len();
    println!(
        "autoscale: step change in load → first scaling decision, median of {n}: {:.2} s",
        median(decisions).as_secs_f64()
    );
    println!(
        "autoscale: step change in load → new replicas running, median of {n}: {:.2} s",
        median(running).as_secs_f64()
    );
    manager.ok(&["service", "rm", "burner"]);
}
