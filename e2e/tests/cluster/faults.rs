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
    // so the sequence is the same on every run.
    manager.ok(&["swarm", "update", "--dispatcher-heartbeat", "5s"]);
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
