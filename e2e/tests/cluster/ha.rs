//! Highly available managers: failover, no lost acknowledged write, full
//! restarts, and quorum loss, with real manager processes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::util::{
    eventually, leader_name, managers_cluster, marker_program, patience, Daemon, TestDir,
};

fn index_of(managers: &[Daemon], name: &str) -> usize {
    managers
        .iter()
        .position(|m| m.name == name)
        .expect("known manager")
}

fn current_leader(managers: &[Daemon]) -> usize {
    eventually(patience(), "a leader", || {
        managers
            .iter()
            .filter(|m| m.is_running())
            .find_map(leader_name)
            .map(|name| index_of(managers, &name))
            .ok_or_else(|| "no leader".to_string())
    })
}

#[test]
fn a_killed_leader_is_replaced_and_rejoins_as_a_follower() {
    let dir = TestDir::new();
    let program = marker_program(&dir);
    let (mut managers, workers) = managers_cluster(&dir, 3, 2);
    // Tasks on the workers only, to see that a leader change leaves them be.
    for m in &managers {
        managers[0].ok(&["node", "update", "--availability", "drain", &m.name]);
    }
    managers[0].ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "before",
        "--replicas",
        "2",
        "--runtime",
        "process",
        program.to_str().unwrap(),
        "3600",
    ]);
    let marker = program.clone();
    let running_before = eventually(patience(), "2 tasks on the workers", || {
        let pids = crate::util::processes_of(&program);
        if pids.len() == 2 {
            Ok(pids)
        } else {
            Err(format!("{pids:?}"))
        }
    });
    let old = current_leader(&managers);
    managers[old].kill();

    let survivor = (old + 1) % 3;
    let new_leader = eventually(patience(), "a new leader", || {
        match leader_name(&managers[survivor]) {
            Some(name) if name != managers[old].name => Ok(name),
            other => Err(format!("{other:?}")),
        }
    });
    let program = program.to_str().unwrap();
    eventually(
        patience(),
        "service create through a surviving manager",
        || {
            let run = managers[survivor].shoal(&[
                "service",
                "create",
                "-d",
                "--name",
                "after",
                "--replicas",
                "2",
                "--runtime",
                "process",
                program,
                "3600",
            ]);
            if run.status == 0 || run.stderr.contains("already exists") {
                Ok(())
            } else {
                Err(run.stderr)
            }
        },
    );

    managers[old].start();
    eventually(patience(), "the old leader caught up as a follower", || {
        let services = managers[old].local_services();
        let leader = leader_name(&managers[old]);
        if services.get("after").map(String::as_str) == Some("2")
            && leader.as_deref() == Some(new_leader.as_str())
        {
            Ok(())
        } else {
            Err(format!("{services:?} leader {leader:?}"))
        }
    });
    // The workers' tasks ran on untouched, and their agents follow the new leader.
    let now = crate::util::processes_of(&marker);
    assert!(
        running_before.iter().all(|pid| now.contains(pid)),
        "{running_before:?} vs {now:?}"
    );
    for worker in &workers {
        eventually(
            patience(),
            "the worker's session with the new leader",
            || {
                if worker.info()["SessionUp"] == true {
                    Ok(())
                } else {
                    Err("down".into())
                }
            },
        );
    }
    let nodes = managers[survivor].nodes();
    let old_row = nodes
        .iter()
        .find(|n| n["Hostname"] == managers[old].name.as_str())
        .unwrap();
    assert_eq!(old_row["ManagerStatus"], "Reachable");
}

#[test]
fn no_acknowledged_write_is_lost_across_two_leader_kills() {
    let dir = TestDir::new();
    let program = marker_program(&dir);
    let (managers, _workers) = managers_cluster(&dir, 3, 1);
    let managers = Arc::new(Mutex::new(managers));
    let sockets: Vec<std::path::PathBuf> = managers
        .lock()
        .unwrap()
        .iter()
        .map(|m| m.socket.clone())
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    // What the CLI acknowledged: service name → replicas.
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();

    let writer = {
        let (stop, acked, program) = (stop.clone(), acked.clone(), program.clone());
        std::thread::spawn(move || {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let socket = &sockets[n % sockets.len()];
                let name = format!("svc{n}");
                let created = shoal_at(
                    socket,
                    &[
                        "service",
                        "create",
                        "-d",
                        "--name",
                        &name,
                        "--replicas",
                        "1",
                        "--runtime",
                        "process",
                        program.to_str().unwrap(),
                        "3600",
                    ],
                );
                if created {
                    acked.lock().unwrap().insert(name.clone(), "1".into());
                    if shoal_at(socket, &["service", "scale", "-d", &format!("{name}=2")]) {
                        acked.lock().unwrap().insert(name, "2".into());
                    }
                }
                n += 1;
            }
        })
    };

    for _ in 0..2 {
        let before = acked.lock().unwrap().len();
        eventually(patience(), "writes going through", || {
            if acked.lock().unwrap().len() >= before + 3 {
                Ok(())
            } else {
                Err("waiting".into())
            }
        });
        let mut guard = managers.lock().unwrap();
        let leader = current_leader(&guard);
        guard[leader].kill();
        drop(guard);
        let before = acked.lock().unwrap().len();
        eventually(patience(), "writes after the failover", || {
            if acked.lock().unwrap().len() >= before + 3 {
                Ok(())
            } else {
                Err("waiting".into())
            }
        });
        managers.lock().unwrap()[leader].start();
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 9, "too few writes went through: {acked:?}");
    let guard = managers.lock().unwrap();
    for manager in guard.iter() {
        eventually(
            patience(),
            &format!("every acknowledged write on {}", manager.name),
            || {
                let have = manager.local_services();
                let missing: Vec<_> = acked
                    .iter()
                    .filter(|(name, replicas)| {
                        // A later unacknowledged scale may have applied: never fewer.
                        have.get(*name)
                            .is_none_or(|r| r.as_str() < replicas.as_str())
                    })
                    .collect();
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(format!("missing {missing:?}"))
                }
            },
        );
    }
    // No service ever runs more tasks than its replicas.
    for name in acked.keys() {
        let running = guard[0].running_tasks(name).len();
        assert!(running <= 2, "{name} runs {running} tasks");
    }
}

fn shoal_at(socket: &std::path::Path, args: &[&str]) -> bool {
    std::process::Command::new(crate::util::shoal_bin())
        .arg("-H")
        .arg(socket)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn stopping_and_starting_every_manager_keeps_the_cluster() {
    let dir = TestDir::new();
    let program = marker_program(&dir);
    let (mut managers, workers) = managers_cluster(&dir, 3, 1);
    // Tasks only on the worker, so that stopping the managers stops no task.
    for m in &managers {
        managers[0].ok(&["node", "update", "--availability", "drain", &m.name]);
    }
    managers[0].ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "3",
        "--runtime",
        "process",
        program.to_str().unwrap(),
        "3600",
    ]);
    managers[0].ok(&["swarm", "join-token", "--rotate", "worker"]);
    let tasks_before = eventually(patience(), "3 tasks on the worker", || {
        let running = managers[0].running_tasks("web");
        if running.len() == 3 {
            Ok(running)
        } else {
            Err(format!("{running:?}"))
        }
    });
    let token = managers[0].worker_token();
    let mut nodes_before: Vec<String> = managers[0]
        .nodes()
        .iter()
        .map(|n| n["ID"].to_string())
        .collect();
    nodes_before.sort();
    let pids = crate::util::processes_of(&program);

    for m in managers.iter_mut() {
        assert_eq!(m.terminate(), Some(0));
    }
    for m in managers.iter_mut() {
        m.start();
    }
    current_leader(&managers);
    eventually(patience(), "the same cluster after a full restart", || {
        let mut nodes: Vec<String> = managers[1]
            .nodes()
            .iter()
            .map(|n| n["ID"].to_string())
            .collect();
        nodes.sort();
        let ready = managers[1].nodes().iter().all(|n| n["Status"] == "Ready");
        let tasks = managers[1].running_tasks("web");
        let same_tasks = tasks.iter().map(|t| t["ID"].clone()).collect::<Vec<_>>()
            == tasks_before
                .iter()
                .map(|t| t["ID"].clone())
                .collect::<Vec<_>>();
        let same_token = managers[2].worker_token() == token;
        if nodes == nodes_before && ready && same_tasks && same_token {
            Ok(())
        } else {
            Err(format!(
                "same nodes {} (now {nodes:?}, before {nodes_before:?}), all ready {ready}, \
                 same tasks {same_tasks} (now {tasks:?}), same worker token {same_token}",
                nodes == nodes_before
            ))
        }
    });
    assert_eq!(
        crate::util::processes_of(&program),
        pids,
        "the worker's tasks were not disturbed"
    );
    eventually(patience(), "the worker reconnected by itself", || {
        let info = workers[0].info();
        if info["SessionUp"] == true {
            Ok(())
        } else {
            Err(info.to_string())
        }
    });
}

#[test]
fn five_managers_survive_two_losses_and_refuse_writes_without_quorum() {
    let dir = TestDir::new();
    let (mut managers, _) = managers_cluster(&dir, 5, 0);
    let first = current_leader(&managers);
    managers[first].kill();
    let second = (first + 1) % 5;
    managers[second].kill();
    let alive: Vec<usize> = (0..5).filter(|i| *i != first && *i != second).collect();
    eventually(patience(), "a write with 3 of 5 managers", || {
        let run = managers[alive[0]].shoal(&[
            "service",
            "create",
            "-d",
            "--name",
            "three",
            "--replicas",
            "0",
            "--runtime",
            "process",
            "true",
        ]);
        if run.status == 0 || run.stderr.contains("already exists") {
            Ok(())
        } else {
            Err(run.stderr)
        }
    });

    managers[alive[1]].kill();
    let before = managers[alive[0]].local_services();
    eventually(patience(), "writes refused without quorum", || {
        let run = managers[alive[2]].shoal(&[
            "service",
            "create",
            "-d",
            "--name",
            "two",
            "--replicas",
            "0",
            "--runtime",
            "process",
            "true",
        ]);
        if run.status != 0
            && run.stderr.starts_with("Error: no quorum")
            && run.stderr.contains("of 5 managers reachable")
        {
            Ok(())
        } else {
            Err(format!("{} {}", run.status, run.stderr))
        }
    });
    assert_eq!(
        managers[alive[0]].local_services(),
        before,
        "a refused write changed nothing"
    );

    managers[alive[1]].start();
    eventually(
        patience(),
        "writes again once a third manager is back",
        || {
            let run = managers[alive[2]].shoal(&[
                "service",
                "create",
                "-d",
                "--name",
                "back",
                "--replicas",
                "0",
                "--runtime",
                "process",
                "true",
            ]);
            if run.status == 0 || run.stderr.contains("already exists") {
                Ok(())
            } else {
                Err(run.stderr)
            }
        },
    );
    let _ = Duration::ZERO;
}

#[test]
fn nodes_are_promoted_and_demoted_with_clear_errors() {
    let dir = TestDir::new();
    let (manager, workers, _) = crate::util::cluster(&dir, 2);
    manager
        .shoal(&["node", "promote", "nope"])
        .assert_error("No such node: nope");
    manager
        .shoal(&["node", "demote", "manager"])
        .assert_error("is the last manager of the swarm");

    manager.ok(&["node", "promote", "worker1"]);
    eventually(patience(), "worker1 a reachable manager", || {
        let nodes = manager.nodes();
        let row = nodes
            .iter()
            .find(|n| n["Hostname"] == "worker1")
            .cloned()
            .unwrap_or_default();
        let local = workers[0].shoal(&["node", "ls", "--format", "json"]);
        if row["ManagerStatus"] == "Reachable"
            && workers[0].info()["Role"] == "manager"
            && local.status == 0
        {
            Ok(())
        } else {
            Err(format!("{row} / {}", local.stderr))
        }
    });
    let inspect: serde_json::Value =
        serde_json::from_str(&manager.ok(&["node", "inspect", "worker1"])).unwrap();
    assert_eq!(inspect[0]["Spec"]["Role"], "manager");

    manager.ok(&["node", "demote", "worker1"]);
    eventually(patience(), "worker1 a worker again", || {
        let nodes = manager.nodes();
        let row = nodes
            .iter()
            .find(|n| n["Hostname"] == "worker1")
            .cloned()
            .unwrap_or_default();
        if row["ManagerStatus"] == ""
            && row["Status"] == "Ready"
            && workers[0].info()["Role"] == "worker"
        {
            Ok(())
        } else {
            Err(row.to_string())
        }
    });
    workers[0]
        .shoal(&["node", "ls"])
        .assert_error("This node is not a swarm manager");
    assert!(
        !workers[0].data_dir.join("raft").exists(),
        "the demoted node dropped its Raft store"
    );
}

#[test]
fn a_survivor_rebuilds_the_swarm_with_force_new_cluster() {
    let dir = TestDir::new();
    let program = marker_program(&dir);
    let (mut managers, workers) = managers_cluster(&dir, 3, 1);
    for m in &managers {
        managers[0].ok(&["node", "update", "--availability", "drain", &m.name]);
    }
    managers[0].ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "2",
        "--runtime",
        "process",
        program.to_str().unwrap(),
        "3600",
    ]);
    let token = managers[0].worker_token();
    eventually(patience(), "2 tasks on the worker", || {
        let n = managers[0].running_tasks("web").len();
        if n == 2 {
            Ok(())
        } else {
            Err(n.to_string())
        }
    });
    // Two of three managers are lost for good: no quorum.
    managers[1].kill();
    managers[2].kill();
    eventually(patience(), "writes refused", || {
        let run = managers[0].shoal(&[
            "service",
            "create",
            "-d",
            "--name",
            "x",
            "--replicas",
            "0",
            "--runtime",
            "process",
            "true",
        ]);
        if run.stderr.contains("no quorum") {
            Ok(())
        } else {
            Err(run.stderr)
        }
    });
    managers[0].ok(&["swarm", "init", "--force-new-cluster"]);
    // The same swarm, one manager, writes again; nothing was lost.
    eventually(patience(), "writes accepted after the rebuild", || {
        let run = managers[0].shoal(&[
            "service",
            "create",
            "-d",
            "--name",
            "after",
            "--replicas",
            "0",
            "--runtime",
            "process",
            "true",
        ]);
        if run.status == 0 {
            Ok(())
        } else {
            Err(run.stderr)
        }
    });
    assert_eq!(managers[0].worker_token(), token);
    assert!(managers[0].local_services().contains_key("web"));
    assert_eq!(managers[0].running_tasks("web").len(), 2);
    let nodes = managers[0].nodes();
    let lost: Vec<_> = nodes
        .iter()
        .filter(|n| n["ManagerStatus"] == "Unreachable")
        .collect();
    assert_eq!(
        lost.len(),
        2,
        "the lost managers are listed until removed: {nodes:?}"
    );
    eventually(patience(), "the worker follows the rebuilt swarm", || {
        if workers[0].info()["SessionUp"] == true {
            Ok(())
        } else {
            Err("down".into())
        }
    });
}

/// A rollout survives the loss of the leader that was driving it: the new
/// leader carries on from the store, every slot is replaced exactly once, and
/// the update completes.
#[test]
fn a_rollout_carries_on_after_its_leader_is_killed() {
    let dir = TestDir::new();
    let program = marker_program(&dir);
    let (mut managers, _workers) = managers_cluster(&dir, 3, 2);
    for m in &managers {
        managers[0].ok(&["node", "update", "--availability", "drain", &m.name]);
    }
    managers[0].ok(&[
        "service",
        "create",
        "-q",
        "--name",
        "web",
        "--replicas",
        "6",
        "-e",
        "VERSION=1",
        "--update-delay",
        "1s",
        "--update-monitor",
        "1s",
        "--runtime",
        "process",
        program.to_str().unwrap(),
        "3600",
    ]);
    let ids = |via: &Daemon| -> Vec<String> {
        via.tasks("web")
            .iter()
            .map(|t| t["ID"].as_str().unwrap().to_string())
            .collect()
    };
    let before = ids(&managers[0]);
    managers[0].ok(&["service", "update", "-d", "--env-add", "VERSION=2", "web"]);
    // One slot a second: kill the leader once the rollout is under way.
    eventually(patience(), "the rollout under way", || {
        let new = ids(&managers[0])
            .into_iter()
            .filter(|id| !before.contains(id))
            .count();
        if (1..=3).contains(&new) {
            Ok(())
        } else {
            Err(format!("{new} new tasks"))
        }
    });
    let leader = current_leader(&managers);
    managers[leader].kill();
    let survivor = &managers[(leader + 1) % managers.len()];
    eventually(patience() * 2, "the update completed", || {
        let run = survivor.shoal(&["service", "inspect", "web"]);
        let inspect: serde_json::Value =
            serde_json::from_str(&run.stdout).map_err(|_| run.stderr.clone())?;
        match inspect[0]["UpdateStatus"]["State"].as_str() {
            Some("completed") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let created: Vec<String> = ids(survivor)
        .into_iter()
        .filter(|id| !before.contains(id))
        .collect();
    assert_eq!(
        created.len(),
        6,
        "each slot replaced exactly once: {created:?}"
    );
    assert_eq!(survivor.running_tasks("web").len(), 6);
}

/// A manager whose advertised address the leader cannot reach is refused:
/// it never becomes a voter, so the one manager keeps its quorum and its
/// writes (before, openraft's add-learner wait gave up after 500 ms and
/// answered Ok, the unreachable node became a voter, and the group of two
/// could commit nothing).
#[test]
fn a_manager_the_leader_cannot_reach_is_refused_and_the_quorum_kept() {
    let dir = TestDir::new();
    let leader = dir.daemon("manager1");
    let addr = leader.init();
    let token = leader
        .ok(&["swarm", "join-token", "-q", "manager"])
        .trim()
        .to_string();
    let joiner = dir.daemon("manager2");
    // It listens on 127.0.0.2 but advertises 127.0.0.99, where nothing
    // listens: the leader's Raft messages to it are refused.
    let joined = joiner.shoal(&[
        "swarm",
        "join",
        "--token",
        &token,
        "--listen-addr",
        "127.0.0.2:0",
        "--advertise-addr",
        "127.0.0.99",
        &addr,
    ]);
    joined.assert_error("check that the managers can reach 127.0.0.99");
    assert_ne!(joiner.info()["Role"], "manager", "{}", joined.stderr);

    // The leader still commits writes on its own.
    let program = marker_program(&dir);
    leader.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "still-writable",
        "--runtime",
        "process",
        program.to_str().unwrap(),
        "1000",
    ]);
    let managers: Vec<serde_json::Value> = leader
        .nodes()
        .into_iter()
        .filter(|n| n["ManagerStatus"] != "")
        .collect();
    assert_eq!(managers.len(), 1, "{managers:?}");
    assert_eq!(managers[0]["ManagerStatus"], "Leader");
}
