//! Overlay networks, node side, on namespace hosts (issue 15): tasks on a
//! network get their own namespace, address, VIP load balancing and
//! embedded DNS, across hosts over VXLAN; everything goes when the
//! services and networks do, and a restarted worker adopts what it made.
//!
//! Servers and clients are process tasks running `shoal-echo` (this
//! crate's TCP/UDP answerer: every answer is the answering task's ID), and
//! busybox `nslookup`; clients run inside their task through `service
//! exec`, so they use the task's namespace and resolv.conf as the task does.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::netns::NetCluster;
use crate::util::{eventually, patience, privileged, Daemon};

pub(crate) const ECHO: &str = env!("CARGO_BIN_EXE_shoal-echo");
const PORT: &str = "7000";

/// `replicas` process tasks of `shoal-echo serve 7000` named `name`, with
/// `extra` flags before the command.
pub(crate) fn echo_service(manager: &Daemon, name: &str, replicas: &str, extra: &[&str]) {
    let mut args = vec![
        "service",
        "create",
        "-d",
        "--name",
        name,
        "--replicas",
        replicas,
        "--runtime",
        "process",
    ];
    args.extend_from_slice(extra);
    args.extend([ECHO, "serve", PORT]);
    manager.ok(&args);
}

pub(crate) fn wait_running(manager: &Daemon, service: &str, n: usize) -> Vec<Value> {
    eventually(
        patience(),
        &format!("{n} tasks of {service} running"),
        || {
            let running = manager.running_tasks(service);
            if running.len() == n {
                Ok(running)
            } else {
                Err(format!("{:?}", manager.tasks(service)))
            }
        },
    )
}

/// `(task ID, address)` of the service's live tasks.
fn addresses(manager: &Daemon, service: &str) -> Vec<(String, String)> {
    let text = manager.ok(&["service", "inspect", service]);
    let value: Value = serde_json::from_str(&text).expect("inspect json");
    value[0]["TaskAddresses"]
        .as_array()
        .expect("TaskAddresses")
        .iter()
        .map(|a| {
            let addr = a["Addr"].as_str().unwrap();
            (
                a["ID"].as_str().unwrap().to_string(),
                addr.split('/').next().unwrap().to_string(),
            )
        })
        .collect()
}

fn vip(manager: &Daemon, service: &str) -> String {
    let text = manager.ok(&["service", "inspect", service]);
    let value: Value = serde_json::from_str(&text).expect("inspect json");
    let addr = value[0]["Endpoint"]["VirtualIPs"][0]["Addr"]
        .as_str()
        .expect("a VIP")
        .to_string();
    addr.split('/').next().unwrap().to_string()
}

/// Runs `command` inside task `task_id` (its namespaces, its resolv.conf).
fn exec_in(manager: &Daemon, task_id: &str, command: &[&str]) -> Result<String, String> {
    let mut args = vec!["service", "exec", task_id, "--"];
    args.extend_from_slice(command);
    let run = manager.shoal(&args);
    if run.status == 0 {
        Ok(run.stdout.trim().to_string())
    } else {
        Err(format!("{}{}", run.stdout, run.stderr))
    }
}

/// One exchange from the client task: the answering task's ID.
fn ask(manager: &Daemon, client: &str, proto: &str, target: &str) -> Result<String, String> {
    exec_in(manager, client, &[ECHO, "ask", proto, target])
}

/// The addresses `nslookup NAME` answers inside the client task (its
/// resolv.conf points at the embedded resolver).
fn lookup(manager: &Daemon, client: &str, name: &str) -> Result<BTreeSet<String>, String> {
    let out = exec_in(manager, client, &["/bin/busybox", "nslookup", name])?;
    // busybox prints "Server: 127.0.0.11" first, then "Address: A" per answer.
    let mut lines = out.lines().skip_while(|l| !l.starts_with("Name:"));
    let mut found = BTreeSet::new();
    for line in lines.by_ref() {
        if let Some(addr) = line.trim().strip_prefix("Address:") {
            found.insert(addr.trim().to_string());
        }
    }
    if found.is_empty() {
        Err(format!("no answer for {name}: {out}"))
    } else {
        Ok(found)
    }
}

/// Connections to `target` until every one of `ids` answered.
fn reach_all_through(
    manager: &Daemon,
    client: &str,
    proto: &str,
    target: &str,
    ids: &BTreeSet<String>,
) {
    let mut seen = BTreeSet::new();
    eventually(
        patience(),
        &format!("every task answering {proto} {target}"),
        || {
            let id = ask(manager, client, proto, target)?;
            if !ids.contains(&id) {
                return Err(format!("answered by {id}, not a task of the service"));
            }
            seen.insert(id);
            if seen == *ids {
                Ok(())
            } else {
                Err(format!("seen {seen:?} of {ids:?}"))
            }
        },
    );
}

/// Every task answers at its own address over TCP and UDP.
fn reach_each(manager: &Daemon, client: &str, tasks: &[(String, String)]) {
    for (id, addr) in tasks {
        for proto in ["tcp", "udp"] {
            let target = format!("{addr}:{PORT}");
            let answer = eventually(patience(), &format!("{proto} {target}"), || {
                ask(manager, client, proto, &target)
            });
            assert_eq!(&answer, id, "{proto} {target} answered by another task");
        }
    }
}

/// What shoal made on host `i`: its links (bridges, VXLAN devices, task
/// veths all start with `sh`; the test's own are `lo` and `eth0`), its
/// nftables table and its FORWARD rules.
fn leftovers(cluster: &NetCluster, i: u8) -> Vec<String> {
    let mut found: Vec<String> = cluster
        .net
        .output(i, &["ip", "-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_string())
        .filter(|name| name.starts_with("sh"))
        .collect();
    let tables = cluster.net.output(i, &["nft", "list", "tables"]);
    found.extend(
        tables
            .lines()
            .filter(|l| l.contains("shoal"))
            .map(str::to_string),
    );
    let forward = cluster.net.output(i, &["iptables", "-S", "FORWARD"]);
    found.extend(
        forward
            .lines()
            .filter(|l| l.contains("shoal overlay"))
            .map(str::to_string),
    );
    found
}

fn task_netns_left(ids: &BTreeSet<String>) -> Vec<String> {
    ids.iter()
        .map(|id| format!("/run/netns/shoal-task-{id}"))
        .filter(|p| std::path::Path::new(p).exists())
        .collect()
}

fn hosts_are_clean(cluster: &NetCluster, hosts: u8, ids: &BTreeSet<String>) {
    eventually(patience(), "no overlay state left on any host", || {
        let mut left: Vec<String> = (1..=hosts)
            .flat_map(|i| {
                leftovers(cluster, i)
                    .into_iter()
                    .map(move |l| format!("h{i}: {l}"))
            })
            .collect();
        left.extend(task_netns_left(ids));
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });
}

/// Done-when 1 (and the teardown half of 3): a 3-replica service on
/// `appnet` across two hosts, a client on the third.
#[test]
fn tasks_reach_each_other_by_address_vip_and_tasks_name_over_tcp_and_udp() {
    if !privileged("tasks_reach_each_other_by_address_vip_and_tasks_name_over_tcp_and_udp") {
        return;
    }
    let cluster = NetCluster::sized(1, 2);
    let manager = &cluster.managers[0];
    manager.ok(&["network", "create", "appnet"]);
    echo_service(
        manager,
        "web",
        "3",
        &["--network", "appnet", "--constraint", "node.hostname!=h3"],
    );
    echo_service(
        manager,
        "client",
        "1",
        &["--network", "appnet", "--constraint", "node.hostname==h3"],
    );
    wait_running(manager, "web", 3);
    let client = wait_running(manager, "client", 1)[0]["ID"]
        .as_str()
        .unwrap()
        .to_string();
    let mut every_task: BTreeSet<String> = BTreeSet::from([client.clone()]);

    let tasks = addresses(manager, "web");
    assert_eq!(tasks.len(), 3, "{tasks:?}");
    every_task.extend(tasks.iter().map(|t| t.0.clone()));
    reach_each(manager, &client, &tasks);

    // By name: the service's VIP, balanced over every task; tasks.NAME.
    let ids: BTreeSet<String> = tasks.iter().map(|t| t.0.clone()).collect();
    let addrs: BTreeSet<String> = tasks.iter().map(|t| t.1.clone()).collect();
    assert_eq!(
        lookup(manager, &client, "web").unwrap(),
        BTreeSet::from([vip(manager, "web")])
    );
    assert_eq!(lookup(manager, &client, "tasks.web").unwrap(), addrs);
    for proto in ["tcp", "udp"] {
        reach_all_through(manager, &client, proto, &format!("web:{PORT}"), &ids);
    }

    // A killed task leaves the VIP: once it is reported failed, no new
    // connection goes to it (it would time out: its namespace is gone).
    let (victim, _) = tasks[0].clone();
    let pid = cluster
        .hosts()
        .iter()
        .find_map(|d| d.task_pid(&victim))
        .expect("the victim's pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the task");
    eventually(patience(), "the killed task out of the VIP", || {
        let state = manager
            .tasks("web")
            .into_iter()
            .find(|t| t["ID"] == victim.as_str())
            .map(|t| t["CurrentState"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default();
        if !state.starts_with("Failed") {
            return Err(format!("victim is {state}"));
        }
        for _ in 0..10 {
            let id = ask(manager, &client, "tcp", &format!("web:{PORT}"))?;
            if id == victim {
                return Err("the killed task answered".into());
            }
        }
        Ok(())
    });

    // Scaled to 6: every task reached at its address and through the VIP.
    manager.ok(&["service", "scale", "-d", "web=6"]);
    wait_running(manager, "web", 6);
    let tasks = eventually(patience(), "6 live task addresses", || {
        let tasks = addresses(manager, "web");
        if tasks.len() == 6 {
            Ok(tasks)
        } else {
            Err(format!("{tasks:?}"))
        }
    });
    every_task.extend(tasks.iter().map(|t| t.0.clone()));
    reach_each(manager, &client, &tasks);
    let ids: BTreeSet<String> = tasks.iter().map(|t| t.0.clone()).collect();
    reach_all_through(manager, &client, "tcp", &format!("web:{PORT}"), &ids);

    // Everything goes with the services and the network.
    manager.ok(&["service", "rm", "web", "client"]);
    eventually(patience(), "the network removable", || {
        let run = manager.shoal(&["network", "rm", "appnet"]);
        if run.status == 0 {
            Ok(())
        } else {
            Err(run.stderr)
        }
    });
    hosts_are_clean(&cluster, 3, &every_task);
}

/// A `shoal-echo` answering `outside` on host `i`'s own (underlay) address,
/// outside every overlay; killed on drop.
struct Outside(std::process::Child);

impl Outside {
    fn start(cluster: &NetCluster, i: u8) -> Self {
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", &cluster.net.ns(i), ECHO, "serve", "7100"])
            .env("SHOAL_ECHO_REPLY", "outside")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start the outside server");
        Outside(child)
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn one_task(manager: &Daemon, service: &str) -> String {
    wait_running(manager, service, 1)[0]["ID"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The links shoal made on host `i`, sorted.
fn shoal_links(cluster: &NetCluster, i: u8) -> Vec<String> {
    let mut links: Vec<String> = leftovers(cluster, i)
        .into_iter()
        .filter(|l| !l.contains(' '))
        .collect();
    links.sort();
    links
}

/// Done-when 2 (the voting app's shape: vote → redis on frontend, worker
/// on both, db on backend out of vote's reach, an internal network with no
/// way out) and the restart half of 3 (a crashed and restarted worker
/// adopts its tasks' plumbing: still reachable, nothing duplicated).
#[test]
fn voting_app_networks_isolate_and_survive_a_worker_restart() {
    if !privileged("voting_app_networks_isolate_and_survive_a_worker_restart") {
        return;
    }
    let mut cluster = NetCluster::sized(1, 2);
    let manager = &cluster.managers[0];
    manager.ok(&["network", "create", "frontend"]);
    manager.ok(&["network", "create", "backend"]);
    manager.ok(&["network", "create", "--internal", "private"]);
    let on = |net: &'static str, host: &'static str| -> Vec<String> {
        vec![
            "--network".into(),
            net.into(),
            "--constraint".into(),
            format!("node.hostname=={host}"),
        ]
    };
    let (redis_args, db_args, vote_args, private_args) = (
        on("frontend", "h3"),
        on("backend", "h2"),
        on("frontend", "h3"),
        on("private", "h2"),
    );
    echo_service(manager, "redis", "1", &args(&redis_args));
    echo_service(manager, "db", "1", &args(&db_args));
    echo_service(manager, "vote", "1", &args(&vote_args));
    echo_service(
        manager,
        "worker",
        "1",
        &[
            "--network",
            "frontend",
            "--network",
            "backend",
            "--constraint",
            "node.hostname==h2",
        ],
    );
    echo_service(manager, "isolated", "1", &args(&private_args));
    let (redis, db, vote, worker, isolated) = (
        one_task(manager, "redis"),
        one_task(manager, "db"),
        one_task(manager, "vote"),
        one_task(manager, "worker"),
        one_task(manager, "isolated"),
    );
    let db_addr = addresses(manager, "db")[0].1.clone();
    let target = |name: &str| format!("{name}:{PORT}");
    let answered = |client: &str, proto: &str, to: &str| {
        eventually(patience(), &format!("{to} from {client}"), || {
            ask(manager, client, proto, to)
        })
    };

    assert_eq!(answered(&vote, "tcp", &target("redis")), redis);
    assert_eq!(answered(&worker, "tcp", &target("redis")), redis);
    assert_eq!(answered(&worker, "udp", &target("db")), db);
    // vote shares no network with db: no name for it, no route to it.
    assert!(lookup(manager, &vote, "db").is_err(), "vote resolved db");
    let direct = ask(manager, &vote, "tcp", &format!("{db_addr}:{PORT}"));
    assert!(direct.is_err(), "vote reached db at {db_addr}: {direct:?}");
    // Not even from db's own node, where both networks have a bridge with
    // an address: the node routes nothing from frontend to backend.
    let neighbour_args = on("frontend", "h2");
    echo_service(manager, "neighbour", "1", &args(&neighbour_args));
    let neighbour = one_task(manager, "neighbour");
    assert_eq!(answered(&neighbour, "tcp", &target("redis")), redis);
    for proto in ["tcp", "udp"] {
        let routed = ask(manager, &neighbour, proto, &format!("{db_addr}:{PORT}"));
        assert!(
            routed.is_err(),
            "a frontend task on db's node reached db at {db_addr} over {proto}: {routed:?}"
        );
    }

    // Outside the overlay: reachable from a normal network (through the
    // node), never from an internal one.
    let _outside = Outside::start(&cluster, 1);
    let outside = format!("{}:7100", "10.77.0.1");
    assert_eq!(answered(&vote, "tcp", &outside), "outside");
    for proto in ["tcp", "udp"] {
        let escaped = ask(manager, &isolated, proto, &outside);
        assert!(
            escaped.is_err(),
            "an internal task reached {outside} over {proto}: {escaped:?}"
        );
    }

    // A worker daemon crashes and comes back: same tasks, same devices,
    // still reachable by name and address.
    let before = shoal_links(&cluster, 2);
    assert!(!before.is_empty(), "no overlay devices on h2");
    cluster.workers[0].kill();
    cluster.workers[0].start();
    let manager = &cluster.managers[0];
    eventually(patience(), "the worker's tasks answering again", || {
        let via_worker = ask(manager, &worker, "tcp", &target("redis"))?;
        let to_db = ask(manager, &worker, "udp", &target("db"))?;
        let from_vote = ask(manager, &vote, "tcp", &target("worker"))?;
        if (via_worker.as_str(), to_db.as_str(), from_vote.as_str())
            == (redis.as_str(), db.as_str(), worker.as_str())
        {
            Ok(())
        } else {
            Err(format!("{via_worker} {to_db} {from_vote}"))
        }
    });
    assert_eq!(
        shoal_links(&cluster, 2),
        before,
        "h2's devices changed across the restart"
    );
    for (service, id) in [("db", &db), ("worker", &worker), ("isolated", &isolated)] {
        let running: Vec<String> = manager
            .running_tasks(service)
            .iter()
            .map(|t| t["ID"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(running, vec![id.clone()], "{service} restarted or doubled");
    }
}
