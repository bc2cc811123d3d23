//! Healing benchmark: a manager (drained, so it runs no task) and three
//! workers, a 6-replica process service; time until all 6 replicas run
//! again without a worker that was (1) SIGKILLed — a crash, whose kernel
//! closes its connections at once — and (2) SIGSTOPped — a silent node, as
//! a partitioned one is: its connections stay open and nothing comes, so
//! only the heartbeat window (1 s period, 3 missed) finds it. Median of
//! several runs each. Prints; asserts nothing.
//!
//! Run with `cargo build --release -p shoal-cli && cargo bench -p shoal-e2e --bench healing`.

// A test crate: its helpers unwrap like its tests (the workspace denies
// unwrap_used in everything else).
#![allow(clippy::unwrap_used)]

use shoal_e2e::util;

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use util::{cluster, eventually, marker_program, patience, TestDir};

#[derive(Clone, Copy, PartialEq)]
enum Failure {
    Crash,
    Silent,
}

const RUNS: usize = 5;

fn main() {
    let dir = TestDir::new();
    let program = marker_program(&dir);
    let (manager, mut workers, _) = cluster(&dir, 3);
    manager.ok(&["node", "update", "--availability", "drain", "manager"]);
    manager.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "6",
        "--runtime",
        "process",
        program.to_str().unwrap(),
        "3600",
    ]);
    for failure in [Failure::Crash, Failure::Silent] {
        let mut times = Vec::new();
        for run in 0..RUNS {
            eventually(patience(), "6 running on 3 workers", || {
                let tasks = manager.running_tasks("web");
                let nodes: std::collections::BTreeSet<_> =
                    tasks.iter().map(|t| t["Node"].to_string()).collect();
                if tasks.len() == 6 && nodes.len() == 3 {
                    Ok(())
                } else {
                    Err(format!("{tasks:?}"))
                }
            });
            let victim = run % workers.len();
            let name = workers[victim].name.clone();
            let pid = Pid::from_raw(workers[victim].pid().unwrap() as i32);
            let started = Instant::now();
            match failure {
                Failure::Crash => workers[victim].kill(),
                Failure::Silent => kill(pid, Signal::SIGSTOP).unwrap(),
            }
            eventually(patience(), "6 running without the killed worker", || {
                let tasks = manager.running_tasks("web");
                if tasks.len() == 6 && tasks.iter().all(|t| t["Node"] != name.as_str()) {
                    Ok(())
                } else {
                    Err(format!("{}", tasks.len()))
                }
            });
            let elapsed = started.elapsed();
            println!("healing run {}: {:.2} s", run + 1, elapsed.as_secs_f64());
            times.push(elapsed);
            match failure {
                Failure::Crash => workers[victim].start(),
                Failure::Silent => kill(pid, Signal::SIGCONT).unwrap(),
            }
            // Even the load out again so the next run kills a worker with tasks.
            manager.ok(&["service", "scale", "-d", "web=0"]);
            eventually(patience(), "scaled to 0", || {
                if manager.running_tasks("web").is_empty() {
                    Ok(())
                } else {
                    Err("busy".into())
                }
            });
            eventually(patience(), "worker back", || {
                if manager.node_status(&name).as_deref() == Some("Ready") {
                    Ok(())
                } else {
                    Err("down".into())
                }
            });
            manager.ok(&["service", "scale", "-d", "web=6"]);
        }
        times.sort();
        let what = match failure {
            Failure::Crash => "SIGKILL of a worker (crash)",
            Failure::Silent => "SIGSTOP of a worker (silent, as partitioned)",
        };
        println!(
            "healing ({what} to all its replicas running elsewhere), median of {RUNS}: {:.2} s",
            times[RUNS / 2].as_secs_f64()
        );
    }
    let _ = Duration::ZERO;
}
