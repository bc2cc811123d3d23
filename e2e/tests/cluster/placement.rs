//! Node availability, global services, placement rules and restart
//! policies, with real daemons.

use crate::util::{cluster, eventually, marker_program, patience, processes_of, Daemon, TestDir};

fn count_on(manager: &Daemon, service: &str) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for t in manager.running_tasks(service) {
        *counts
            .entry(t["Node"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    counts
}

#[test]
fn a_dead_worker_of_three_is_healed_and_its_return_duplicates_nothing() {
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
    eventually(patience(), "2 tasks on each worker", || {
        let counts = count_on(&manager, "web");
        if counts.values().copied().collect::<Vec<_>>() == vec![2, 2, 2] {
            Ok(())
        } else {
            Err(format!("{counts:?}"))
        }
    });
    workers[2].kill();
    eventually(patience(), "6 running on the two others", || {
        let counts = count_on(&manager, "web");
        if counts.values().sum::<usize>() == 6 && !counts.contains_key("worker3") {
            Ok(())
        } else {
            Err(format!("{counts:?}"))
        }
    });
    workers[2].start();
    eventually(patience(), "still exactly 6 tasks and 6 processes", || {
        let running = manager.running_tasks("web").len();
        let pids = processes_of(&program);
        if running == 6 && pids.len() == 6 {
            Ok(())
        } else {
            Err(format!("{running} tasks, {pids:?}"))
        }
    });
}

#[test]
fn drain_moves_every_task_pause_keeps_them_and_active_takes_new_ones() {
    let dir = TestDir::new();
    let program = marker_program(&dir);
    let (manager, _workers, _) = cluster(&dir, 2);
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
    eventually(patience(), "6 running", || {
        let n = manager.running_tasks("web").len();
        if n == 6 {
            Ok(())
        } else {
            Err(n.to_string())
        }
    });

    manager.ok(&["node", "update", "--availability", "pause", "worker1"]);
    manager.ok(&["service", "scale", "-d", "web=8"]);
    eventually(
        patience(),
        "8 running, worker1 kept its tasks and took no new one",
        || {
            let counts = count_on(&manager, "web");
            if counts.values().sum::<usize>() == 8 && counts.get("worker1") == Some(&2) {
                Ok(())
            } else {
                Err(format!("{counts:?}"))
            }
        },
    );

    manager.ok(&["node", "update", "--availability", "drain", "worker1"]);
    eventually(patience(), "worker1 empty, 8 running elsewhere", || {
        let counts = count_on(&manager, "web");
        if counts.values().sum::<usize>() == 8
            && !counts.contains_key("worker1")
            && processes_of(&program).len() == 8
        {
            Ok(())
        } else {
            Err(format!("{counts:?}"))
        }
    });
    let inspect: serde_json::Value =
        serde_json::from_str(&manager.ok(&["node", "inspect", "worker1"])).unwrap();
    assert_eq!(inspect[0]["Spec"]["Availability"], "drain");

    manager.ok(&["node", "update", "--availability", "active", "worker1"]);
    manager.ok(&["service", "scale", "-d", "web=12"]);
    eventually(
        patience(),
        "new tasks land on the active node again",
        || {
            let counts = count_on(&manager, "web");
            if counts.values().sum::<usize>() == 12
                && counts.get("worker1").copied().unwrap_or(0) >= 2
            {
                Ok(())
            } else {
                Err(format!("{counts:?}"))
            }
        },
    );
}

#[test]
fn a_global_service_follows_nodes_that_join_and_drain() {
    let dir = TestDir::new();
    let program = marker_program(&dir);
    let (manager, _workers, addr) = cluster(&dir, 1);
    manager.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "agent",
        "--mode",
        "global",
        "--runtime",
        "process",
        program.to_str().unwrap(),
        "3600",
    ]);
    eventually(patience(), "one task on each of 2 nodes", || {
        let counts = count_on(&manager, "agent");
        if counts.len() == 2 && counts.values().all(|n| *n == 1) {
            Ok(())
        } else {
            Err(format!("{counts:?}"))
        }
    });
    let late = dir.daemon("late");
    late.join(&manager.worker_token(), &addr, "127.0.0.9");
    eventually(patience(), "the joining node gets one", || {
        let counts = count_on(&manager, "agent");
        if counts.len() == 3 && counts.get("late") == Some(&1) {
            Ok(())
        } else {
            Err(format!("{counts:?}"))
        }
    });
    manager.ok(&["node", "update", "--availability", "drain", "late"]);
    eventually(
        patience(),
        "the drained node's task is gone, not moved",
        || {
            let counts = count_on(&manager, "agent");
            if counts.len() == 2
                && !counts.contains_key("late")
                && processes_of(&program).len() == 2
            {
                Ok(())
            } else {
                Err(format!("{counts:?}"))
            }
        },
    );
    let ls = manager.ok(&["service", "ls", "--format", "json"]);
    assert!(
        ls.contains("\"Replicas\":\"2/2\"") && ls.contains("\"Mode\":\"global\""),
        "{ls}"
    );
}

#[test]
fn placement_rules_are_honoured_and_explained_until_a_node_fits() {
    let dir = TestDir::new();
    let program = marker_program(&dir);
    let (manager, _workers, _) = cluster(&dir, 2);
    let p = program.to_str().unwrap();
    manager.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "eu",
        "--replicas",
        "2",
        "--constraint",
        "node.labels.zone==eu",
        "--runtime",
        "process",
        p,
        "3600",
    ]);
    eventually(patience(), "pending with the reason", || {
        let tasks = manager.tasks("eu");
        if tasks.len() == 2
            && tasks.iter().all(|t| {
                t["Error"]
                    == "no suitable node (constraint node.labels.zone==eu not met on 3 nodes)"
            })
        {
            Ok(())
        } else {
            Err(format!("{tasks:?}"))
        }
    });
    manager.ok(&["node", "update", "--label-add", "zone=eu", "worker2"]);
    eventually(patience(), "placed on the labelled node", || {
        let counts = count_on(&manager, "eu");
        if counts == [("worker2".to_string(), 2)].into_iter().collect() {
            Ok(())
        } else {
            Err(format!("{counts:?}"))
        }
    });

    manager.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "one-each",
        "--replicas",
        "4",
        "--replicas-max-per-node",
        "1",
        "--runtime",
        "process",
        p,
        "3600",
    ]);
    eventually(
        patience(),
        "3 placed, 1 pending on the per-node limit",
        || {
            let running = manager.running_tasks("one-each").len();
            let pending = manager
                .tasks("one-each")
                .into_iter()
                .filter(|t| {
                    t["Error"]
                        .as_str()
                        .unwrap()
                        .contains("max replicas per node limit exceeded on 3 nodes")
                })
                .count();
            if running == 3 && pending == 1 {
                Ok(())
            } else {
                Err(format!("{running} running, {pending} pending"))
            }
        },
    );

    manager.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "huge",
        "--reserve-memory",
        "1000T",
        "--runtime",
        "process",
        p,
        "3600",
    ]);
    eventually(patience(), "insufficient memory", || {
        let tasks = manager.tasks("huge");
        if tasks
            .iter()
            .any(|t| t["Error"] == "no suitable node (insufficient memory on 3 nodes)")
        {
            Ok(())
        } else {
            Err(format!("{tasks:?}"))
        }
    });
    manager
        .shoal(&[
            "service",
            "create",
            "-d",
            "--name",
            "bad",
            "--constraint",
            "node.zone==eu",
            "--runtime",
            "process",
            p,
        ])
        .assert_error("invalid constraint \"node.zone==eu\": unknown key node.zone");
}

#[test]
fn restart_policies_follow_swarm_semantics() {
    let dir = TestDir::new();
    let (manager, _workers, _) = cluster(&dir, 1);
    manager.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "flaky",
        "--restart-condition",
        "on-failure",
        "--restart-max-attempts",
        "2",
        "--restart-delay",
        "0s",
        "--runtime",
        "process",
        "sh",
        "-c",
        "exit 1",
    ]);
    manager.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "once",
        "--restart-condition",
        "none",
        "--runtime",
        "process",
        "sh",
        "-c",
        "exit 1",
    ]);
    manager.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "again",
        "--restart-condition",
        "any",
        "--restart-delay",
        "100ms",
        "--runtime",
        "process",
        "true",
    ]);
    eventually(patience(), "on-failure gave up after two restarts", || {
        let tasks = manager.tasks("flaky");
        let failed = tasks
            .iter()
            .filter(|t| t["CurrentState"].as_str().unwrap().starts_with("Failed"))
            .count();
        if tasks.len() == 3 && failed == 3 {
            Ok(())
        } else {
            Err(format!("{tasks:?}"))
        }
    });
    eventually(patience(), "any restarts a clean exit", || {
        let complete = manager
            .tasks("again")
            .iter()
            .filter(|t| t["CurrentState"].as_str().unwrap().starts_with("Complete"))
            .count();
        if complete >= 3 {
            Ok(())
        } else {
            Err(complete.to_string())
        }
    });
    // By now the orchestrator has run many passes (each restart of "again"
    // is one): the other two had every chance to restart wrongly.
    assert_eq!(manager.tasks("once").len(), 1, "none never restarts");
    assert_eq!(
        manager.tasks("flaky").len(),
        3,
        "no restart beyond the maximum"
    );
}

#[test]
fn swarm_update_changes_the_task_history_limit_and_refuses_bad_values() {
    let dir = TestDir::new();
    let (manager, _workers, _) = cluster(&dir, 1);
    manager
        .shoal(&["swarm", "update", "--dispatcher-heartbeat", "10ms"])
        .assert_error("invalid --dispatcher-heartbeat 10ms");
    manager
        .shoal(&["swarm", "update"])
        .assert_error("nothing to update");
    assert_eq!(
        manager
            .ok(&[
                "swarm",
                "update",
                "--task-history-limit",
                "2",
                "--dispatcher-heartbeat",
                "2s"
            ])
            .trim(),
        "Swarm updated."
    );
    // A task that keeps failing: its slot keeps 2 dead tasks and the live one.
    manager.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "crash",
        "--restart-delay",
        "0s",
        "--runtime",
        "process",
        "sh",
        "-c",
        "exit 3",
    ]);
    let mut seen = std::collections::BTreeSet::new();
    let mut most = 0;
    eventually(patience(), "many restarts", || {
        let tasks = manager.tasks("crash");
        seen.extend(tasks.iter().map(|t| t["ID"].to_string()));
        most = most.max(tasks.len());
        if seen.len() >= 6 {
            Ok(())
        } else {
            Err(format!("{} attempts so far", seen.len()))
        }
    });
    assert!(
        most <= 3,
        "history beyond the limit of 2: {most} tasks listed at once"
    );
    // Nodes stay Ready with the slower heartbeat.
    assert!(manager.nodes().iter().all(|n| n["Status"] == "Ready"));
}

#[test]
fn spread_preferences_balance_over_label_values() {
    let dir = TestDir::new();
    let program = marker_program(&dir);
    let (manager, _workers, _) = cluster(&dir, 3);
    // Zone a has three nodes, zone b one: spreading over zones puts half of
    // the replicas on the lone zone-b node (a plain spread would put a
    // quarter there).
    for (node, zone) in [
        ("manager", "a"),
        ("worker1", "a"),
        ("worker2", "a"),
        ("worker3", "b"),
    ] {
        manager.ok(&[
            "node",
            "update",
            "--label-add",
            &format!("zone={zone}"),
            node,
        ]);
    }
    manager.ok(&[
        "service",
        "create",
        "-q",
        "--name",
        "zoned",
        "--replicas",
        "8",
        "--placement-pref",
        "spread=node.labels.zone",
        "--runtime",
        "process",
        program.to_str().unwrap(),
        "3600",
    ]);
    let counts = count_on(&manager, "zoned");
    assert_eq!(counts.get("worker3"), Some(&4), "{counts:?}");
    let zone_a: usize = ["manager", "worker1", "worker2"]
        .iter()
        .map(|n| counts.get(*n).copied().unwrap_or(0))
        .sum();
    assert_eq!(zone_a, 4, "{counts:?}");
}

/// Where the process runtime can use cgroups (root, with the memory and cpu
/// controllers), a task's limits are its cgroup's limits.
#[test]
fn process_tasks_run_under_their_cpu_and_memory_limits() {
    if !crate::util::privileged("process cgroup limits") {
        return;
    }
    let dir = TestDir::new();
    let program = marker_program(&dir);
    let (manager, _workers, _) = cluster(&dir, 0);
    manager.ok(&[
        "service",
        "create",
        "-q",
        "--name",
        "limited",
        "--limit-memory",
        "64M",
        "--limit-cpu",
        "0.5",
        "--runtime",
        "process",
        program.to_str().unwrap(),
        "3600",
    ]);
    let task = &manager.running_tasks("limited")[0];
    let pid = manager.task_pid(task["ID"].as_str().unwrap()).unwrap();
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let limit = |controller: &str, v1_file: &str, v2_file: &str| -> String {
        for line in cgroups.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) =
                (parts.next(), parts.next().unwrap(), parts.next().unwrap());
            if controllers.split(',').any(|c| c == controller) {
                let file = format!("/sys/fs/cgroup/{controller}{path}/{v1_file}");
                return std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
            }
            if controllers.is_empty() && path.contains("shoal") {
                let file = format!("/sys/fs/cgroup{path}/{v2_file}");
                return std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
            }
        }
        panic!("no {controller} cgroup for the task: {cgroups}");
    };
    assert_eq!(
        limit("memory", "memory.limit_in_bytes", "memory.max").trim(),
        (64 * 1024 * 1024).to_string()
    );
    let cpu = limit("cpu", "cpu.cfs_quota_us", "cpu.max");
    assert!(
        cpu.trim() == "50000" || cpu.trim() == "50000 100000",
        "cpu limit {cpu:?}"
    );
}
