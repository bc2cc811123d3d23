//! Faults without collateral damage (issue 14): sequences found by fault
//! injection that once left the cluster wrong although the store was right.

use std::time::Instant;

use crate::util::*;

/// A task retired before its node ever received it must still end: here the
/// worker's daemon is dead (but still Ready, within its heartbeat grace)
/// while its task is assigned, retired by `scale 0` and its slot wanted again
/// by `scale 1`. Once the worker is back, the slot runs again.
#[test]
fn a_task_retired_before_its_node_received_it_does_not_block_its_slot() {
    let dir = TestDir::new();
    let program = marker_program(&dir);
    let (manager, mut workers, _) = cluster(&dir, 1);
    manager.ok(&["node", "update", "--availability", "drain", "manager"]);
    // A long grace keeps the dead worker Ready through the whole sequence,
    // so the sequence is the same on every run: its connection closes when
    // it is killed, and a closed connection is judged after a quarter of
    // the heartbeat period (10 s here).
    manager.ok(&["swarm", "update", "--dispatcher-heartbeat", "40s"]);
    workers[0].kill();
    manager.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "rx",
        "--replicas",
        "1",
        "--runtime",
        "process",
        program.to_str().unwrap(),
        "3600",
    ]);
    eventually(patience(), "rx.1 assigned to the dead worker", || {
        let tasks = manager.tasks("rx");
        if tasks.iter().any(|t| t["Node"] == "worker1") {
            Ok(())
        } else {
            Err(format!("{tasks:?}"))
        }
    });
    manager.ok(&["service", "scale", "-d", "rx=0"]);
    manager.ok(&["service", "scale", "-d", "rx=1"]);
    assert_eq!(
        manager.node_status("worker1").as_deref(),
        Some("Ready"),
        "the sequence needs the dead worker still Ready"
    );
    let back = Instant::now();
    workers[0].start();
    eventually(patience(), "rx.1 running on the returned worker", || {
        let running = manager.running_tasks("rx");
        let pids = processes_of(&program);
        if running.len() == 1 && pids.len() == 1 {
            Ok(())
        } else {
            Err(format!("{:?}; processes {pids:?}", manager.tasks("rx")))
        }
    });
    eprintln!(
        "slot running {:?} after the worker's return",
        back.elapsed()
    );
    // And it stays that way: no second task, no second process.
    let services = manager.ok(&["service", "ls"]);
    assert!(services.contains("1/1"), "{services}");
}

/// Which of `managers` leads, waiting for one.
fn leader_index(managers: &[Daemon]) -> usize {
    eventually(patience(), "a leader", || {
        managers
            .iter()
            .filter(|m| m.is_running())
            .find_map(leader_name)
            .and_then(|name| managers.iter().position(|m| m.name == name))
            .ok_or_else(|| "no leader".to_string())
    })
}

/// While the leader of three managers is SIGKILLed, writes through a
/// surviving follower are never answered "no quorum" (two of three run, and
/// a leader comes within about a second), and none hangs: each is answered,
/// by success or a retryable error, well inside the old 10 s.
#[test]
fn writes_through_a_follower_during_a_leader_kill_are_never_answered_no_quorum() {
    let dir = TestDir::new();
    let (mut managers, _) = managers_cluster(&dir, 3, 0);
    for m in ["manager1", "manager2", "manager3"] {
        managers[0].ok(&["node", "update", "--availability", "drain", m]);
    }
    let mut answers: Vec<(String, std::time::Duration)> = Vec::new();
    for round in 0..3 {
        let leader = leader_index(&managers);
        let follower = (leader + 1) % managers.len();
        let socket = managers[follower].socket.clone();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    i += 1;
                    let name = format!("r{round}w{i}");
                    let started = Instant::now();
                    let output = std::process::Command::new(shoal_bin())
                        .arg("-H")
                        .arg(&socket)
                        .env_remove("SHOAL_HOST")
                        .args(["service", "create", "-d", "--name", &name])
                        .args(["--replicas", "0", "--runtime", "process", "true"])
                        .output()
                        .expect("shoal runs");
                    let run = Run::from(output);
                    let answer = if run.status == 0 {
                        "ok".to_string()
                    } else {
                        run.stderr.trim().to_string()
                    };
                    answers.push((answer, started.elapsed()));
                }
                answers
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(300));
        managers[leader].kill();
        // Writes go on until the survivors have a leader and took one.
        eventually(patience(), "a new leader", || {
            let new = managers
                .iter()
                .filter(|m| m.is_running())
                .find_map(leader_name);
            new.filter(|n| *n != managers[leader].name)
                .ok_or_else(|| "none yet".to_string())
        });
        std::thread::sleep(std::time::Duration::from_millis(1500));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        answers.extend(writer.join().expect("writer thread"));
        managers[leader].start();
        eventually(patience(), "the old leader back as a follower", || {
            let nodes = managers[follower].nodes();
            if nodes.iter().all(|n| n["Status"] == "Ready") {
                Ok(())
            } else {
                Err(format!("{nodes:?}"))
            }
        });
    }
    let no_quorum: Vec<&(String, std::time::Duration)> = answers
        .iter()
        .filter(|(answer, _)| answer.contains("no quorum"))
        .collect();
    assert!(no_quorum.is_empty(), "answered no quorum: {no_quorum:?}");
    let failures: Vec<&(String, std::time::Duration)> =
        answers.iter().filter(|(a, _)| a != "ok").collect();
    for (answer, _) in &failures {
        assert!(
            answer.starts_with("Error: ") && answer.contains("retry"),
            "a failure during the election must say to retry: {answer}"
        );
    }
    let slowest = answers.iter().map(|(_, t)| *t).max().unwrap_or_default();
    eprintln!(
        "{} writes, {} failed (retryable), slowest answer {slowest:?}",
        answers.len(),
        failures.len()
    );
}
