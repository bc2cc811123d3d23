//! Scale benchmark (issue 20): simulated nodes (`tests/cluster/sim.rs`:
//! real join flow, real mTLS sessions, the agent's own session and worker
//! code, fake executors) against a real manager daemon. Prints the time for
//! the nodes to join and be Ready, the convergence of a service of
//! `SHOAL_SIM_TASKS` replicas, `node ls` / `service ps` latency, the
//! manager's RSS and Raft snapshot size, and the time to replace the tasks
//! of a tenth of the nodes killed at once. Asserts nothing but correctness
//! (every task running once).
//!
//! Run with `cargo build --release -p shoal-cli && SHOAL_SIM_NODES=1000
//! SHOAL_SIM_TASKS=100000 cargo bench -p shoal-e2e --bench scale`.

// A test crate: its helpers unwrap like its tests (the workspace denies
// unwrap_used in everything else).
#![allow(clippy::unwrap_used)]

use shoal_e2e::util;

#[path = "../tests/cluster/sim.rs"]
#[allow(dead_code)]
mod sim;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sim::{Behaviour, Ledger};
use util::{cluster, eventually, Daemon, TestDir};

fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_mib(daemon: &Daemon) -> f64 {
    let pid = daemon.pid().expect("manager running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// The value of `field=N` on a log line (tracing's plain format).
fn field(line: &str, name: &str) -> Option<u64> {
    let key = format!("{name}=");
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(key.as_str()))
        .and_then(|v| v.parse().ok())
}

/// Lines of `daemon`'s log that contain `needle`.
fn log_lines(daemon: &Daemon, needle: &str) -> Vec<String> {
    std::fs::read_to_string(&daemon.log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// How many snapshots `daemon` built, and the last one's bytes and build
/// time in ms (from its "snapshot built" log lines).
fn snapshots(daemon: &Daemon) -> (usize, Option<(u64, u64)>) {
    let built = log_lines(daemon, "snapshot built");
    let last = built
        .last()
        .and_then(|l| Some((field(l, "bytes")?, field(l, "ms")?)));
    (built.len(), last)
}

/// Nodes the manager marked down so far (whatever the reason).
fn marked_down(daemon: &Daemon) -> usize {
    log_lines(daemon, "marking node down").len()
}

/// With `SHOAL_SIM_KEEP_LOG=PATH`, copies the manager's log there (at the
/// end, or when a check fails), to see where a slow phase spent its time.
fn keep_log(manager: &Daemon) {
    if let Ok(path) = std::env::var("SHOAL_SIM_KEEP_LOG") {
        std::fs::copy(&manager.log, &path).unwrap();
        println!("scale: manager log kept at {path}");
    }
}

/// `total` tasks as services of at most `max` replicas each.
fn service_sizes(total: usize, max: usize) -> Vec<usize> {
    let mut sizes = vec![max; total / max];
    if !total.is_multiple_of(max) {
        sizes.push(total % max);
    }
    sizes
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

fn main() {
    let nodes_wanted = size("SHOAL_SIM_NODES", 1_000);
    let replicas = size("SHOAL_SIM_TASKS", 100_000);
    let long = Duration::from_secs(size("SHOAL_SIM_PATIENCE_SECS", 900) as u64);
    let dir = TestDir::new();
    let (manager, _, addr) = cluster(&dir, 0);
    manager.ok(&["node", "update", "--availability", "drain", "manager"]);
    let token = manager.worker_token();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let ledger = Arc::new(Ledger::default());
    let behaviour = Behaviour {
        start_latency: Duration::from_millis(100),
        failure_rate: 0.001,
    };
    println!("scale: {nodes_wanted} simulated nodes, {replicas} tasks, start latency {:?}, failure rate {}", behaviour.start_latency, behaviour.failure_rate);
    let rss_idle = rss_mib(&manager);

    let started = Instant::now();
    let mut nodes = runtime
        .block_on(sim::join_nodes(
            &addr,
            &token,
            nodes_wanted,
            32,
            behaviour,
            ledger.clone(),
            &dir.dir.path().join("sim"),
        ))
        .unwrap();
    let joined = started.elapsed();
    eventually(long, "every simulated node Ready", || {
        let ready = manager
            .nodes()
            .iter()
            .filter(|n| n["Status"] == "Ready")
            .count();
        if ready == nodes_wanted + 1 {
            Ok(())
        } else {
            Err(format!("{ready} Ready"))
        }
    });
    let ready = started.elapsed();
    println!(
        "scale: {nodes_wanted} nodes joined (certificates issued) in {:.2} s, all Ready in {:.2} s",
        joined.as_secs_f64(),
        ready.as_secs_f64()
    );
    let (_, node_ls) = timed(|| manager.ok(&["node", "ls"]));
    println!(
        "scale: node ls ({} nodes): {:.3} s; manager RSS {:.0} MiB (idle {:.0} MiB)",
        nodes_wanted + 1,
        node_ls.as_secs_f64(),
        rss_mib(&manager),
        rss_idle
    );

    // A service holds at most 100,000 replicas (the manager's limit), so a
    // million tasks are ten services.
    let services = service_sizes(replicas, 100_000);
    let started = Instant::now();
    for (i, size) in services.iter().enumerate() {
        manager.ok(&[
            "service",
            "create",
            "-d",
            "--name",
            &format!("sim{i}"),
            "--replicas",
            &size.to_string(),
            "--runtime",
            "process",
            "/bin/sleep",
            "3600",
        ]);
    }
    let wait_running = |what: &str, started: Instant, done: &dyn Fn() -> bool| {
        let mut last = 0;
        let mut last_print = Instant::now();
        eventually(long, what, || {
            let running = ledger.running();
            let problems = ledger.duplicates();
            if !problems.is_empty() {
                keep_log(&manager);
            }
            assert!(problems.is_empty(), "{problems:?}");
            if last_print.elapsed() > Duration::from_secs(10) && running != last {
                println!(
                    "  … {running} running after {:.0} s",
                    started.elapsed().as_secs_f64()
                );
                last_print = Instant::now();
                last = running;
            }
            if running == replicas && done() {
                Ok(())
            } else {
                Err(format!("{running} of {replicas} running"))
            }
        });
    };
    wait_running("every task running", started, &|| true);
    let converged = started.elapsed();
    println!(
        "scale: {replicas} tasks from service create to all running: {:.2} s",
        converged.as_secs_f64()
    );
    let (ps, service_ps) = timed(|| manager.ok(&["service", "ps", "sim0"]));
    let (_, node_ls) = timed(|| manager.ok(&["node", "ls"]));
    println!(
        "scale: service ps of one service ({} lines): {:.3} s; node ls: {:.3} s; manager RSS {:.0} MiB",
        ps.lines().count(),
        service_ps.as_secs_f64(),
        node_ls.as_secs_f64(),
        rss_mib(&manager),
    );
    let (built, last) = snapshots(&manager);
    let (bytes, ms) = last.unwrap_or_default();
    println!(
        "scale: {built} Raft snapshots built so far, the last {:.1} MiB in {ms} ms; healthy nodes marked down while converging: {}",
        bytes as f64 / (1024.0 * 1024.0),
        marked_down(&manager)
    );

    // A tenth of the nodes die at once.
    let dead: Vec<_> = nodes.drain(..nodes_wanted / 10).collect();
    let lost: usize = dead
        .iter()
        .map(|n| ledger.running_on(&n.node_id).len())
        .sum();
    let started = Instant::now();
    for node in &dead {
        ledger.kill(&node.node_id);
    }
    drop(dead);
    wait_running("every lost task replaced", started, &|| true);
    println!(
        "scale: {} nodes killed at once ({lost} tasks lost): all replaced, none twice, in {:.2} s",
        nodes_wanted / 10,
        started.elapsed().as_secs_f64()
    );

    // A rolling update of every task, 1,000 at a time (stop-first, the
    // default, so a slot never runs two tasks and the ledger's
    // exactly-once check still holds); failures of the simulated starts
    // (the failure rate above) must not pause it.
    let (_, old_version) = ledger.live_versions().unwrap();
    let started = Instant::now();
    for i in 0..services.len() {
        manager.ok(&[
            "service",
            "update",
            "-d",
            "--update-parallelism",
            "1000",
            "--update-failure-action",
            "continue",
            "--env-add",
            "ROLLED=1",
            &format!("sim{i}"),
        ]);
    }
    wait_running("every task replaced by the update", started, &|| {
        ledger
            .live_versions()
            .is_some_and(|(lowest, _)| lowest > old_version)
    });
    println!(
        "scale: rolling update of {replicas} tasks at parallelism 1,000: {:.2} s; manager RSS {:.0} MiB",
        started.elapsed().as_secs_f64(),
        rss_mib(&manager)
    );

    // A second manager joins: the leader sends it the whole state as a
    // snapshot (its log was compacted long before).
    let manager_token = manager
        .ok(&["swarm", "join-token", "-q", "manager"])
        .trim()
        .to_string();
    let second = dir.daemon("manager2");
    let started = Instant::now();
    second.ok(&[
        "swarm",
        "join",
        "--token",
        &manager_token,
        "--listen-addr",
        "127.0.0.2:0",
        &addr,
    ]);
    eventually(long, "the second manager installed a snapshot", || {
        log_lines(&second, "snapshot installed")
            .last()
            .and_then(|l| field(l, "ms"))
            .ok_or_else(|| "no snapshot installed yet".to_string())
    });
    let installed = log_lines(&second, "snapshot installed");
    let line = installed.last().unwrap();
    println!(
        "scale: a second manager joined and installed a {:.1} MiB snapshot ({} ms to apply and store it) {:.2} s after swarm join began; its RSS {:.0} MiB",
        field(line, "bytes").unwrap_or_default() as f64 / (1024.0 * 1024.0),
        field(line, "ms").unwrap_or_default(),
        started.elapsed().as_secs_f64(),
        rss_mib(&second)
    );
    keep_log(&manager);
    drop(nodes);
    drop(runtime);
}
