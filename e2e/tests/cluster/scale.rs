//! The scale simulator at a small size (issue 20): hundreds of simulated
//! nodes (real join, real mTLS sessions, the agent's own session code, fake
//! executors) against a real manager daemon. Checks what a user would see:
//! every node Ready, the service converged with every task running exactly
//! once, and after a tenth of the nodes die, every lost task replaced once.
//! The figures at full size come from `e2e/benches/scale.rs`.

use std::sync::Arc;
use std::time::Duration;

use crate::sim::{self, Behaviour, Ledger};
use crate::util::*;

/// The tasks the store wants running that no live simulated node runs:
/// their state and node, as `service ps` shows them.
fn missing(manager: &Daemon, ledger: &Ledger) -> String {
    let running = ledger.running_ids();
    let mut lines = Vec::new();
    for task in manager.tasks("sim") {
        let id = task["ID"].as_str().unwrap_or_default();
        if task["DesiredState"] == "Running" && !running.contains(id) {
            lines.push(format!(
                "{id} {} on {} ({})",
                task["CurrentState"], task["Node"], task["Error"]
            ));
        }
    }
    format!(
        "{} tasks wanted but not running:\n{}",
        lines.len(),
        lines.join("\n")
    )
}

fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn simulated_nodes_converge_run_every_task_once_and_heal_a_tenth_lost() {
    let nodes_wanted = size("SHOAL_SIM_NODES", 500);
    let replicas = size("SHOAL_SIM_TASKS", 10_000);
    let dir = TestDir::new();
    let (manager, _, addr) = cluster(&dir, 0);
    manager.ok(&["node", "update", "--availability", "drain", "manager"]);
    // Hundreds of agents share this process and its two cores with the
    // manager and other tests: with 1 s heartbeats a starved agent can miss
    // three in a row, be judged Down while it still runs its tasks, and
    // have them started elsewhere too (at-least-once, as in Swarm) — which
    // the ledger rightly reports as a slot running twice. A 5 s period
    // keeps the test about convergence; a killed node still closes its
    // session and is Down after the reconnect grace.
    manager.ok(&["swarm", "update", "--dispatcher-heartbeat", "5s"]);
    let token = manager.worker_token();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let ledger = Arc::new(Ledger::default());
    let behaviour = Behaviour {
        start_latency: Duration::from_millis(20),
        failure_rate: 0.01,
    };
    let sim_dir = dir.dir.path().join("sim");
    let mut nodes = runtime
        .block_on(sim::join_nodes(
            &addr,
            &token,
            nodes_wanted,
            16,
            behaviour,
            ledger.clone(),
            &sim_dir,
        ))
        .unwrap();
    let long = patience() * 6;
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

    let replicas_arg = replicas.to_string();
    manager.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "sim",
        "--replicas",
        &replicas_arg,
        "--runtime",
        "process",
        "/bin/sleep",
        "3600",
    ]);
    let converged = |what: &str| {
        let mut progress = (0, std::time::Instant::now());
        let mut explained = false;
        eventually(long, what, || {
            let running = ledger.running();
            let duplicates = ledger.duplicates();
            assert!(duplicates.is_empty(), "{duplicates:?}");
            if running == replicas {
                return Ok(());
            }
            if running != progress.0 {
                progress = (running, std::time::Instant::now());
            } else if !explained && progress.1.elapsed() > Duration::from_secs(20) {
                // Stalled: say which tasks the store wants running that no
                // simulated node runs, in which state, on which node.
                explained = true;
                eprintln!("{}", missing(&manager, &ledger));
            }
            Err(format!("{running} of {replicas} running"))
        });
        let wanted = format!("{replicas}/{replicas}");
        eventually(long, "service ls shows every replica", || {
            let listing = manager.ok(&["service", "ls"]);
            if listing.contains(&wanted) {
                Ok(())
            } else {
                Err(listing)
            }
        });
    };
    converged("every task running on the simulated nodes");

    // A tenth of the nodes die at once: their connections close, their
    // tasks are replaced on the others, each slot once.
    let dead: Vec<_> = nodes.drain(..nodes_wanted / 10).collect();
    let lost: usize = dead
        .iter()
        .map(|n| ledger.running_on(&n.node_id).len())
        .sum();
    assert!(lost > 0, "the killed nodes ran tasks");
    for node in &dead {
        ledger.kill(&node.node_id);
    }
    drop(dead);
    converged("every lost task replaced");
    assert_eq!(sim::sessions_up(&nodes), nodes.len());
    drop(nodes);
    drop(runtime);
}

#[test]
fn listings_larger_than_grpcs_default_message_answer_on_the_leader_and_through_followers() {
    // 320 pending tasks, each carrying a 16 KB environment in its spec:
    // `service ps` answers about 5 MB, past tonic's 4 MiB default, which is
    // where Swarm's `service ls` broke (moby/moby#37997). Asked on every
    // manager: two of the three are followers, which forward the read to
    // the leader and relay its answer.
    let dir = TestDir::new();
    let (managers, _) = managers_cluster(&dir, 3, 0);
    let env = format!("PADDING={}", "x".repeat(16_000));
    managers[0].ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "wide",
        "--replicas",
        "320",
        "--runtime",
        "process",
        "--env",
        &env,
        "--constraint",
        "node.hostname==nowhere",
        "/bin/sleep",
        "3600",
    ]);
    // Creating 5 MB of tasks through Raft takes a debug build on a loaded
    // CI machine longer than one patience; the listing is what is tested.
    for manager in &managers {
        eventually(patience() * 3, "every task of wide listed", || {
            let run = manager.shoal(&["service", "ps", "-q", "wide"]);
            if run.status != 0 {
                return Err(run.stderr);
            }
            match run.stdout.lines().count() {
                320 => Ok(()),
                n => Err(format!("{n} tasks listed")),
            }
        });
    }
}
