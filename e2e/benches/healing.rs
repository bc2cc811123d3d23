//! Healing benchmark: a manager (drained, so it runs no task) and three
//! workers, a 6-replica process service; SIGKILL a worker and time until
//! all 6 replicas run again without it. Median of several runs, with the
//! default heartbeat (1 s, Down after 3 missed). Prints; asserts nothing.
//!
//! Run with `cargo build --release -p shoal-cli && cargo bench -p shoal-e2e --bench healing`.

#[path = "../tests/cluster/util.rs"]
#[allow(dead_code)]
mod util;

use std::time::{Duration, Instant};

use util::{cluster, eventually, marker_program, patience, TestDir};

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
        let started = Instant::now();
        workers[victim].kill();
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
        workers[victim].start();
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
    println!(
        "healing (SIGKILL of a worker to all its replicas running elsewhere), median of {RUNS}: {:.2} s",
        times[RUNS / 2].as_secs_f64()
    );
    let _ = Duration::ZERO;
}
