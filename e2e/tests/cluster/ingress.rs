//! The routing mesh with real daemons on namespace hosts (issue 16): a
//! port published in ingress mode answers on every node's address — also
//! on a node that runs no replica — spreads connections over every
//! replica, and each replica sees the real client's address; removing the
//! service leaves nothing in nftables and no sandbox. A host-mode port
//! answers only on the nodes running a task, from that task alone. A node
//! reaches both through its own address too.
//!
//! The client is a namespace host of its own on the test's bridge, outside
//! the cluster (no daemon), running `shoal-echo tally`; the replicas run
//! `shoal-echo serve` with `SHOAL_ECHO_SHOW_PEER=1`, so every answer says
//! which task answered and which source address it saw.

use std::collections::{BTreeMap, BTreeSet};

use crate::netns::NetCluster;
use crate::overlay::{echo_service, wait_running, ECHO};
use crate::util::{eventually, patience, privileged, Daemon};
/// The client host's number (10.77.0.9): no daemon runs there.
const CLIENT: u8 = 9;

/// The service `web`: `replicas` echo servers on port 7000 that also say
/// the source address they saw.
fn web_service(manager: &Daemon, replicas: &str, extra: &[&str]) {
    let mut args = vec!["--env", "SHOAL_ECHO_SHOW_PEER=1"];
    args.extend_from_slice(extra);
    echo_service(manager, "web", replicas, &args);
}

/// The IDs of the service's tasks once `n` of them run.
fn task_ids(manager: &Daemon, service: &str, n: usize) -> BTreeSet<String> {
    wait_running(manager, service, n)
        .iter()
        .map(|t| t["ID"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// `count` exchanges from the client host to `target`: the answering task
/// and the source address it saw, per answer; failures as `Err`.
fn tally(cluster: &NetCluster, proto: &str, target: &str, count: usize) -> Vec<Answer> {
    cluster
        .net
        .output(CLIENT, &[ECHO, "tally", proto, target, &count.to_string()])
        .lines()
        .map(answer)
        .collect()
}

/// One line of `shoal-echo tally`'s output.
fn answer(line: &str) -> Answer {
    match line.strip_prefix("ERR ") {
        Some(why) => Err(why.to_string()),
        None => line
            .split_once(' ')
            .map(|(id, peer)| (id.to_string(), peer.to_string()))
            .ok_or_else(|| format!("an answer without the peer: {line:?}")),
    }
}

/// What the mesh left on host `i`: its nftables table and the node's
/// sandbox namespace.
fn mesh_leftovers(cluster: &NetCluster, i: u8, node_ids: &[String]) -> Vec<String> {
    let mut left: Vec<String> = cluster
        .net
        .output(i, &["nft", "list", "tables"])
        .lines()
        .filter(|l| l.contains("shoal-ingress"))
        .map(str::to_string)
        .collect();
    let namespaces = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    for line in String::from_utf8_lossy(&namespaces.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if node_ids
            .iter()
            .any(|id| name == shoal_agent::overlay::sandbox_netns_name(id))
        {
            left.push(name.to_string());
        }
    }
    left
}

#[test]
fn a_published_port_answers_on_every_node_from_every_replica_keeping_the_client_address() {
    if !privileged("ingress::a_published_port_answers_on_every_node") {
        return;
    }
    // h1 manager, h2 and h3 workers; no replica may run on h3.
    let mut cluster = NetCluster::sized(1, 2);
    let client = cluster.net.add_host(CLIENT);
    let manager = &cluster.managers[0];
    web_service(
        manager,
        "3",
        &[
            "--constraint",
            "node.hostname!=h3",
            "--publish",
            "8080:7000",
            "--publish",
            "published=8080,target=7000,protocol=udp",
        ],
    );
    let replicas = task_ids(manager, "web", 3);
    let on_h3: Vec<String> = manager
        .running_tasks("web")
        .iter()
        .filter(|t| t["Node"] == "h3")
        .map(|t| t.to_string())
        .collect();
    assert!(on_h3.is_empty(), "a replica on h3: {on_h3:?}");

    for entry in 1..=3u8 {
        let target = format!("10.77.0.{entry}:8080");
        // Each node's mesh converges after `service ps` says running (the
        // views travel after the status): wait until every replica has
        // answered once, then count.
        let mut seen = BTreeSet::new();
        eventually(
            patience(),
            &format!("every replica answering on {target}"),
            || {
                for answer in tally(&cluster, "tcp", &target, 10) {
                    seen.insert(answer?.0);
                }
                if seen.is_superset(&replicas) {
                    Ok(())
                } else {
                    Err(format!("seen {seen:?} of {replicas:?}"))
                }
            },
        );
        let answers = tally(&cluster, "tcp", &target, 100);
        let mut per_replica: BTreeMap<String, usize> = BTreeMap::new();
        for answer in &answers {
            let (id, peer) = answer
                .as_ref()
                .unwrap_or_else(|e| panic!("a connection to {target} failed: {e}"));
            assert!(replicas.contains(id), "{id} is not a replica of web");
            assert_eq!(
                peer, &client,
                "the replica saw {peer}, not the client's own address, through {target}"
            );
            *per_replica.entry(id.clone()).or_default() += 1;
        }
        assert_eq!(
            per_replica.keys().cloned().collect::<BTreeSet<_>>(),
            replicas,
            "not every replica answered through {target}: {per_replica:?}"
        );
        let udp = tally(&cluster, "udp", &target, 10);
        for answer in &udp {
            let (id, peer) = answer
                .as_ref()
                .unwrap_or_else(|e| panic!("a UDP exchange with {target} failed: {e}"));
            assert!(replicas.contains(id), "{id} is not a replica of web");
            assert_eq!(
                peer, &client,
                "UDP through {target}: the replica saw {peer}"
            );
        }
        // The node's own connections to its own address (the output hook),
        // as `curl NODE-IP:8080` on a node: answered by the replicas, which
        // see the node's address.
        let own_address = format!("10.77.0.{entry}");
        for proto in ["tcp", "udp"] {
            let own = cluster
                .net
                .output(entry, &[ECHO, "tally", proto, &target, "20"]);
            let mut answered = BTreeSet::new();
            for line in own.lines() {
                let (id, peer) = answer(line).unwrap_or_else(|e| {
                    panic!("h{entry} to its own {target} ({proto}) failed: {e}")
                });
                assert!(replicas.contains(&id), "{id} is not a replica of web");
                assert_eq!(peer, own_address, "h{entry} to its own {target} ({proto})");
                answered.insert(id);
            }
            assert!(
                answered.len() > 1,
                "h{entry} to its own {target} ({proto}): 20 answers from {answered:?} only"
            );
        }
    }

    let node_ids: Vec<String> = manager
        .nodes()
        .iter()
        .map(|n| n["ID"].as_str().unwrap_or_default().to_string())
        .collect();
    manager.ok(&["service", "rm", "web"]);
    for host in 1..=3u8 {
        eventually(
            patience(),
            &format!("nothing of the mesh left on h{host}"),
            || {
                let left = mesh_leftovers(&cluster, host, &node_ids);
                if left.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{left:?}"))
                }
            },
        );
    }
    let refused = tally(&cluster, "tcp", "10.77.0.3:8080", 1);
    assert!(
        refused[0].is_err(),
        "port 8080 still answers after service rm: {refused:?}"
    );
}

/// The PID of the process whose environment names task `task_id`.
fn task_pid(task_id: &str) -> Option<i32> {
    let needle = format!("SHOAL_TASK_ID={task_id}");
    crate::util::processes()
        .into_iter()
        .find(|p| p.has_env(&needle))
        .map(|p| p.pid)
}

/// A steady client: batches of connections through every node's port
/// 8080, one after the other, until stopped; every result kept.
struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handles: Vec<std::thread::JoinHandle<Vec<Answer>>>,
}

/// The answering task and the address it saw, or why the exchange failed.
type Answer = Result<(String, String), String>;

/// Clients at once: enough that a connection lands in the instant a
/// retired replica is between leaving the views and being stopped.
const LOAD_CLIENTS: usize = 4;

impl Load {
    fn start(net_ns: String) -> Load {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handles = (0..LOAD_CLIENTS)
            .map(|_| Load::client(net_ns.clone(), stop.clone()))
            .collect();
        Load { stop, handles }
    }

    fn client(
        net_ns: String,
        flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> std::thread::JoinHandle<Vec<Answer>> {
        std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut entry = 0u8;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                entry = entry % 3 + 1;
                let target = format!("10.77.0.{entry}:8080");
                let out = std::process::Command::new("ip")
                    .args([
                        "netns", "exec", &net_ns, ECHO, "tally", "tcp", &target, "10",
                    ])
                    .output()
                    .expect("the load's client");
                for line in String::from_utf8_lossy(&out.stdout).lines() {
                    all.push(answer(line).map_err(|why| format!("{target}: {why}")));
                }
            }
            all
        })
    }

    fn finish(self) -> Vec<Answer> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let all: Vec<_> = self
            .handles
            .into_iter()
            .flat_map(|h| h.join().expect("the load's thread"))
            .collect();
        eprintln!("the load made {} connections", all.len());
        all
    }
}

#[test]
fn no_connection_fails_through_a_rolling_update_and_a_scale_in_and_a_killed_replica_leaves() {
    if !privileged("ingress::no_connection_fails_through_a_rolling_update") {
        return;
    }
    let mut cluster = NetCluster::sized(1, 2);
    cluster.net.add_host(CLIENT);
    let manager = &cluster.managers[0];
    web_service(manager, "3", &["--publish", "8080:7000"]);
    let replicas = task_ids(manager, "web", 3);
    for entry in 1..=3u8 {
        let target = format!("10.77.0.{entry}:8080");
        let mut seen = BTreeSet::new();
        eventually(patience(), &format!("every replica on {target}"), || {
            for answer in tally(&cluster, "tcp", &target, 10) {
                seen.insert(answer?.0);
            }
            if seen.is_superset(&replicas) {
                Ok(())
            } else {
                Err(format!("seen {seen:?} of {replicas:?}"))
            }
        });
    }

    // A rolling update replaces every replica, one at a time.
    let load = Load::start(cluster.net.ns(CLIENT));
    manager.ok(&["service", "update", "-d", "--env-add", "ROUND=2", "web"]);
    let updated = eventually(patience(), "every replica replaced", || {
        let now = task_ids(manager, "web", 3);
        let live = manager
            .tasks("web")
            .iter()
            .filter(|t| t["DesiredState"] == "Running")
            .count();
        if now.is_disjoint(&replicas) && live == 3 {
            Ok(now)
        } else {
            Err(format!("{:?}", manager.tasks("web")))
        }
    });
    let during_update = load.finish();
    let failed: Vec<&String> = during_update
        .iter()
        .filter_map(|r| r.as_ref().err())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} connections failed during the rolling update: {failed:?}",
        failed.len(),
        during_update.len()
    );
    let answered: BTreeSet<&String> = during_update.iter().flatten().map(|(id, _)| id).collect();
    assert!(
        answered.iter().any(|id| updated.contains(*id)),
        "no new replica answered during the update"
    );

    // Scale in, 3 → 1, under the same load.
    let load = Load::start(cluster.net.ns(CLIENT));
    manager.ok(&["service", "scale", "-d", "web=1"]);
    let survivor = eventually(patience(), "one replica left", || {
        let all = manager.tasks("web");
        let live: Vec<&serde_json::Value> = all
            .iter()
            .filter(|t| {
                t["DesiredState"] == "Running"
                    || !["Shutdown", "Complete", "Failed", "Rejected"]
                        .iter()
                        .any(|s| {
                            t["CurrentState"]
                                .as_str()
                                .unwrap_or_default()
                                .starts_with(s)
                        })
            })
            .collect();
        if live.len() == 1 {
            Ok(live[0]["ID"].as_str().unwrap_or_default().to_string())
        } else {
            Err(format!("{all:?}"))
        }
    });
    let during_scale = load.finish();
    let failed: Vec<&String> = during_scale
        .iter()
        .filter_map(|r| r.as_ref().err())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} connections failed during the scale-in: {failed:?}",
        failed.len(),
        during_scale.len()
    );
    for answer in tally(&cluster, "tcp", "10.77.0.2:8080", 20) {
        let (id, _) = answer.unwrap_or_else(|e| panic!("after the scale-in: {e}"));
        assert_eq!(id, survivor, "a removed replica still answers");
    }

    // A replica killed from outside stops getting connections once its
    // node has seen it die: back to 2, kill one, and every answer after
    // its failure is reported comes from the other.
    manager.ok(&["service", "scale", "-d", "web=2"]);
    let two = task_ids(manager, "web", 2);
    let victim = two
        .iter()
        .find(|id| **id != survivor)
        .cloned()
        .expect("a new replica");
    eventually(patience(), "the new replica answering", || {
        let seen: BTreeSet<String> = tally(&cluster, "tcp", "10.77.0.1:8080", 10)
            .into_iter()
            .filter_map(Result::ok)
            .map(|(id, _)| id)
            .collect();
        if seen.contains(&victim) {
            Ok(())
        } else {
            Err(format!("seen {seen:?}"))
        }
    });
    let pid = task_pid(&victim).expect("the victim's process");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the replica");
    eventually(patience(), "the killed replica reported ended", || {
        let task = manager
            .tasks("web")
            .into_iter()
            .find(|t| t["ID"] == victim.as_str())
            .ok_or("gone from service ps")?;
        let state = task["CurrentState"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if state.starts_with("Running") {
            Err(state)
        } else {
            Ok(())
        }
    });
    eventually(
        patience(),
        "no connection sent to the killed replica",
        || {
            for entry in 1..=3u8 {
                for answer in tally(&cluster, "tcp", &format!("10.77.0.{entry}:8080"), 10) {
                    let (id, _) = answer?;
                    // Answered by a live replica (the killed one cannot).
                    debug_assert_ne!(id, victim);
                }
            }
            Ok(())
        },
    );
}

#[test]
fn a_node_without_the_kernel_mesh_publishes_through_its_userspace_proxy_and_says_so() {
    if !privileged("ingress::a_node_without_the_kernel_mesh_publishes") {
        return;
    }
    // h1 and h2 serve through the kernel; h3 is what a daemon without
    // CAP_NET_ADMIN is: no overlay networking, published ports in userspace
    // (both forced, since this suite runs as root).
    let mut cluster = NetCluster::sized(1, 1);
    let addr = cluster.net.add_host(3);
    let ns = cluster.net.ns(3);
    let h3 = cluster.dir.daemon_in(
        "h3",
        &[
            "ip",
            "netns",
            "exec",
            &ns,
            "env",
            "SHOAL_INGRESS_USERSPACE=1",
            "SHOAL_OVERLAY_UNSUPPORTED=the daemon lacks CAP_NET_ADMIN (simulated)",
        ],
    );
    let token = cluster.managers[0].worker_token();
    h3.join(&token, "10.77.0.1:2377", &addr);
    cluster.workers.push(h3);
    let client = cluster.net.add_host(CLIENT);
    let manager = &cluster.managers[0];
    eventually(patience(), "h3 Ready", || {
        match manager.node_status("h3").as_deref() {
            Some("Ready") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let inspect: serde_json::Value =
        serde_json::from_str(&manager.ok(&["node", "inspect", "h3"])).expect("node inspect json");
    let path = &inspect[0]["Description"]["PublishedPorts"];
    assert_eq!(path["Mode"], "userspace", "node inspect h3: {path}");

    web_service(
        manager,
        "2",
        // A task on h3 would run on h3's own network, out of the mesh.
        &[
            "--constraint",
            "node.hostname!=h3",
            "--publish",
            "8080:7000",
        ],
    );
    let replicas = task_ids(manager, "web", 2);
    let mut seen = BTreeSet::new();
    eventually(patience(), "every replica answering through h3", || {
        for answer in tally(&cluster, "tcp", "10.77.0.3:8080", 10) {
            let (id, peer) = answer?;
            if !replicas.contains(&id) {
                return Err(format!("{id} is not a replica"));
            }
            // The proxy's hop: the replica sees h3's address, not the client's.
            if peer != addr {
                return Err(format!("the replica saw {peer}, expected h3's {addr}"));
            }
            seen.insert(id);
        }
        if seen == replicas {
            Ok(())
        } else {
            Err(format!("seen {seen:?} of {replicas:?}"))
        }
    });
    // Asked for, the proxy's PROXY protocol header carries the client's
    // address to the replica (a label: the tasks keep running).
    manager.ok(&[
        "service",
        "update",
        "-d",
        "--label-add",
        "com.shoal.ingress.proxy-protocol=true",
        "web",
    ]);
    eventually(patience(), "the client's address through h3", || {
        let answers: Vec<Answer> = tally(&cluster, "tcp", "10.77.0.3:8080", 5);
        for answer in answers {
            let (_, peer) = answer?;
            if peer != client {
                return Err(format!(
                    "the replica saw {peer}, expected the client's {client}"
                ));
            }
        }
        Ok(())
    });
    assert_eq!(
        task_ids(manager, "web", 2),
        replicas,
        "a label change restarted the replicas"
    );
    manager.ok(&["service", "rm", "web"]);
    eventually(
        patience(),
        "h3 no longer listening on 8080",
        || match tally(&cluster, "tcp", "10.77.0.3:8080", 1).remove(0) {
            Err(_) => Ok(()),
            Ok(answer) => Err(format!("still answered: {answer:?}")),
        },
    );
}

#[test]
fn publishing_a_port_on_a_running_service_rolls_its_tasks_onto_the_mesh() {
    if !privileged("ingress::publishing_a_port_on_a_running_service") {
        return;
    }
    let mut cluster = NetCluster::sized(1, 1);
    cluster.net.add_host(CLIENT);
    let manager = &cluster.managers[0];
    web_service(manager, "2", &[]);
    let before = task_ids(manager, "web", 2);
    manager.ok(&[
        "service",
        "update",
        "-d",
        "--publish-add",
        "8080:7000",
        "web",
    ]);
    // The tasks started before the port existed are replaced by tasks on
    // the mesh, and every new one answers through both nodes.
    let mut seen = BTreeSet::new();
    eventually(patience(), "the new tasks answering on 8080", || {
        let now = task_ids(manager, "web", 2);
        if !now.is_disjoint(&before) {
            return Err(format!("not replaced yet: {now:?}"));
        }
        for entry in 1..=2u8 {
            for answer in tally(&cluster, "tcp", &format!("10.77.0.{entry}:8080"), 10) {
                seen.insert(answer?.0);
            }
        }
        if seen.is_superset(&now) {
            Ok(())
        } else {
            Err(format!("seen {seen:?} of {now:?}"))
        }
    });
}

#[test]
fn a_host_mode_port_answers_only_where_a_task_runs_and_only_from_that_task() {
    if !privileged("ingress::a_host_mode_port_answers_only_where_a_task_runs") {
        return;
    }
    // h1 manager, h2 and h3 workers; the tasks may not run on h3, so the
    // third replica has no node left: two tasks never share one.
    let mut cluster = NetCluster::sized(1, 2);
    let client = cluster.net.add_host(CLIENT);
    let manager = &cluster.managers[0];
    manager.ok(&["network", "create", "front"]);
    web_service(
        manager,
        "3",
        &[
            "--network",
            "front",
            "--constraint",
            "node.hostname!=h3",
            "--publish",
            "mode=host,published=8081,target=7000",
            "--publish",
            "mode=host,published=8081,target=7000,protocol=udp",
        ],
    );
    let running = eventually(patience(), "two tasks running, one pending", || {
        let running = manager.running_tasks("web");
        let pending = manager.tasks("web").iter().any(|t| {
            t["Error"]
                .as_str()
                .is_some_and(|e| e.contains("host-mode port 8081/tcp already in use"))
        });
        if running.len() == 2 && pending {
            Ok(running)
        } else {
            Err(format!("{:?}", manager.tasks("web")))
        }
    });
    let task_on = |host: &str| -> String {
        running
            .iter()
            .find(|t| t["Node"] == host)
            .and_then(|t| t["ID"].as_str())
            .unwrap_or_else(|| panic!("no task on {host}: {running:?}"))
            .to_string()
    };
    for (entry, host) in [(1u8, "h1"), (2, "h2")] {
        let expected = task_on(host);
        let target = format!("10.77.0.{entry}:8081");
        eventually(patience(), &format!("{target} answering"), || {
            tally(&cluster, "tcp", &target, 1).remove(0).map(|_| ())
        });
        for proto in ["tcp", "udp"] {
            for answer in tally(&cluster, proto, &target, 20) {
                let (id, peer) =
                    answer.unwrap_or_else(|e| panic!("{proto} to {target} failed: {e}"));
                assert_eq!(
                    id, expected,
                    "{proto} {target} answered by another node's task"
                );
                assert_eq!(peer, client, "{proto} {target}: the task saw {peer}");
            }
        }
        // The node's own connection to its address (the output hook).
        let own = cluster
            .net
            .output(entry, &[ECHO, "tally", "tcp", &target, "1"]);
        let (id, _) = answer(own.lines().next().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{host} to its own {target} failed: {e}"));
        assert_eq!(id, expected, "{host} to its own {target}");
    }
    let on_h3 = tally(&cluster, "tcp", "10.77.0.3:8081", 1);
    assert!(
        on_h3[0].is_err(),
        "h3 runs no task of web but answered on 8081: {on_h3:?}"
    );

    manager.ok(&["service", "rm", "web"]);
    for host in 1..=3u8 {
        eventually(
            patience(),
            &format!("no host-mode table left on h{host}"),
            || {
                let tables = cluster.net.output(host, &["nft", "list", "tables"]);
                if tables.contains("shoal-hostports") {
                    Err(tables)
                } else {
                    Ok(())
                }
            },
        );
    }
    let refused = tally(&cluster, "tcp", "10.77.0.1:8081", 1);
    assert!(
        refused[0].is_err(),
        "8081 still answers after service rm: {refused:?}"
    );
}
