//! Overlay networks, managers' side: `network create|ls|inspect|rm`,
//! addresses and VIPs handed out to services and tasks (unique, released
//! and reused, never twice across a leader kill), refused bad input that
//! changes nothing, placement on overlay-capable nodes only, and stacks
//! creating and removing their networks. The node side (devices, DNS) is
//! not exercised here: tasks run as plain processes. Tests whose tasks run
//! on a network use one network namespace per node (`NetCluster`, root
//! only): daemons sharing a namespace cannot each own a VXLAN endpoint.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;

use serde_json::Value;

use crate::netns::{Net, NetCluster};
use crate::util::{
    cluster, eventually, leader_name, marker_program, patience, privileged, Daemon, TestDir,
};

fn inspect(manager: &Daemon, what: &str, name: &str) -> Value {
    let text = manager.ok(&[what, "inspect", name]);
    let array: Value = serde_json::from_str(&text).expect("inspect json");
    array[0].clone()
}

fn networks_json(manager: &Daemon) -> Vec<Value> {
    manager
        .ok(&["network", "ls", "--format", "json", "--no-trunc"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("network ls json"))
        .collect()
}

/// The addresses (bare) of the service's live tasks, from `service inspect`.
fn task_addresses(manager: &Daemon, service: &str) -> Vec<Ipv4Addr> {
    inspect(manager, "service", service)["TaskAddresses"]
        .as_array()
        .expect("TaskAddresses")
        .iter()
        .map(|a| bare(a["Addr"].as_str().unwrap()))
        .collect()
}

fn bare(addr: &str) -> Ipv4Addr {
    addr.split('/').next().unwrap().parse().expect("an address")
}

fn vip(manager: &Daemon, service: &str) -> Option<Ipv4Addr> {
    inspect(manager, "service", service)["Endpoint"]["VirtualIPs"]
        .as_array()?
        .first()
        .map(|v| bare(v["Addr"].as_str().unwrap()))
}

/// Who holds which address on `network`, from `network inspect`:
/// `(address, kind, task ID)`.
fn holders(manager: &Daemon, network: &str) -> Vec<(Ipv4Addr, String, String)> {
    inspect(manager, "network", network)["Addresses"]
        .as_array()
        .expect("Addresses")
        .iter()
        .map(|a| {
            (
                bare(a["Address"].as_str().unwrap()),
                a["Kind"].as_str().unwrap().to_string(),
                a["TaskID"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn process_service(manager: &Daemon, program: &Path, name: &str, replicas: &str, extra: &[&str]) {
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
    args.push(program.to_str().unwrap());
    args.push("3600");
    manager.ok(&args);
}

fn wait_running(manager: &Daemon, service: &str, n: usize) {
    eventually(
        patience(),
        &format!("{n} tasks of {service} running"),
        || {
            let running = manager.running_tasks(service).len();
            if running == n {
                Ok(())
            } else {
                Err(format!("{running} running: {:?}", manager.tasks(service)))
            }
        },
    );
}

/// Every address held on `network` is held once, and the task addresses
/// the service shows are exactly its live tasks' entries there.
fn assert_no_duplicates(manager: &Daemon, network: &str) -> Vec<(Ipv4Addr, String, String)> {
    let held = holders(manager, network);
    let unique: BTreeSet<Ipv4Addr> = held.iter().map(|h| h.0).collect();
    assert_eq!(unique.len(), held.len(), "an address held twice: {held:?}");
    held
}

#[test]
fn networks_are_created_listed_inspected_and_removed() {
    let dir = TestDir::new();
    let (manager, _, _) = cluster(&dir, 0);
    let id = manager
        .ok(&["network", "create", "appnet"])
        .trim()
        .to_string();
    assert_eq!(id.len(), 25, "a 25-character ID: {id}");
    manager.ok(&[
        "network",
        "create",
        "--driver",
        "overlay",
        "--subnet",
        "10.60.0.0/24",
        "--gateway",
        "10.60.0.254",
        "--ip-range",
        "10.60.0.128/25",
        "--internal",
        "--attachable",
        "--opt",
        "mtu=1400",
        "--label",
        "team=db",
        "backend",
    ]);

    let table = manager.ok(&["network", "ls"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("  ")
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        header.iter().map(|h| h.trim()).collect::<Vec<_>>(),
        ["NETWORK ID", "NAME", "DRIVER", "SCOPE"]
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert_eq!(rows[0][1..], ["appnet", "overlay", "swarm"]);
    assert_eq!(rows[0][0], &id[..12]);
    assert_eq!(rows[1][1..], ["backend", "overlay", "swarm"]);
    assert_eq!(
        manager
            .ok(&["network", "ls", "-q", "--no-trunc"])
            .lines()
            .next(),
        Some(id.as_str())
    );

    // The first network came from the default pool; both have a VXLAN ID.
    let appnet = inspect(&manager, "network", "appnet");
    assert_eq!(appnet["Id"], id);
    assert_eq!(appnet["Driver"], "overlay");
    assert_eq!(appnet["Scope"], "swarm");
    assert_eq!(appnet["IPAM"]["Config"][0]["Subnet"], "10.0.0.0/24");
    assert_eq!(appnet["IPAM"]["Config"][0]["Gateway"], "10.0.0.1");
    assert_eq!(appnet["Internal"], false);
    let backend = inspect(&manager, "network", "backend");
    assert_eq!(backend["IPAM"]["Config"][0]["Subnet"], "10.60.0.0/24");
    assert_eq!(backend["IPAM"]["Config"][0]["Gateway"], "10.60.0.254");
    assert_eq!(backend["IPAM"]["Config"][0]["IPRange"], "10.60.0.128/25");
    assert_eq!(backend["Internal"], true);
    assert_eq!(backend["Attachable"], true);
    assert_eq!(backend["Labels"]["team"], "db");
    assert_eq!(backend["Options"]["mtu"], "1400");
    let vnis: BTreeSet<&str> = [&appnet, &backend]
        .iter()
        .map(|n| {
            n["Options"]["com.docker.network.driver.overlay.vxlanid_list"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(vnis.len(), 2, "VXLAN IDs differ: {vnis:?}");
    // A network is found by a unique ID prefix too.
    assert_eq!(inspect(&manager, "network", &id[..6])["Name"], "appnet");

    assert_eq!(
        manager.ok(&["network", "rm", "appnet", "backend"]),
        "appnet\nbackend\n"
    );
    assert!(networks_json(&manager).is_empty());
    manager
        .shoal(&["network", "inspect", "appnet"])
        .assert_error("network appnet not found");
}

#[test]
fn tasks_get_unique_addresses_and_the_service_a_vip_released_and_reused() {
    if !privileged("networks::tasks_get_unique_addresses_and_the_service_a_vip_released_and_reused")
    {
        return;
    }
    let cluster = NetCluster::sized(1, 2);
    let program = marker_program(&cluster.dir);
    let manager = &cluster.managers[0];
    // A /28: 14 host addresses, the gateway and the VIP leave 12 for tasks.
    manager.ok(&["network", "create", "--subnet", "10.50.0.0/28", "appnet"]);
    process_service(manager, &program, "web", "3", &["--network", "appnet"]);
    wait_running(manager, "web", 3);

    let vip = vip(manager, "web").expect("a VIP in inspect");
    assert_eq!(vip, Ipv4Addr::new(10, 50, 0, 2), "the first free address");
    let addrs = task_addresses(manager, "web");
    assert_eq!(addrs.len(), 3);
    let unique: BTreeSet<_> = addrs.iter().collect();
    assert_eq!(unique.len(), 3, "{addrs:?}");
    for a in &addrs {
        assert!(
            a.octets()[..3] == [10, 50, 0] && a.octets()[3] >= 3 && a.octets()[3] <= 14,
            "{a}"
        );
    }
    // The network names every holder: gateway, VIP and the three tasks.
    let held = assert_no_duplicates(manager, "appnet");
    let kinds: Vec<&str> = held.iter().map(|h| h.1.as_str()).collect();
    assert_eq!(kinds, ["gateway", "vip", "task", "task", "task"]);
    let inspected = inspect(manager, "network", "appnet");
    assert_eq!(inspected["Services"]["web"]["VIP"], "10.50.0.2/28");
    assert_eq!(
        inspected["Services"]["web"]["Tasks"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Fill the subnet: 12 tasks; a 13th waits, saying why.
    manager.ok(&["service", "scale", "-d", "web=13"]);
    wait_running(manager, "web", 12);
    let pending = eventually(patience(), "the 13th task pending with a reason", || {
        let tasks = manager.tasks("web");
        tasks
            .iter()
            .find(|t| {
                t["Error"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("no free address")
            })
            .map(|t| t["Error"].as_str().unwrap().to_string())
            .ok_or_else(|| format!("{tasks:?}"))
    });
    assert!(
        pending.contains("network appnet (10.50.0.0/28)"),
        "{pending}"
    );
    let all: BTreeSet<Ipv4Addr> = task_addresses(manager, "web").into_iter().collect();
    assert_eq!(all, (3..=14).map(|d| Ipv4Addr::new(10, 50, 0, d)).collect());
    assert_no_duplicates(manager, "appnet");

    // Scale down: the stopped tasks' addresses are released ...
    manager.ok(&["service", "scale", "-d", "web=2"]);
    let kept = eventually(patience(), "only 2 tasks holding addresses", || {
        let held: Vec<_> = holders(manager, "appnet")
            .into_iter()
            .filter(|h| h.1 == "task")
            .collect();
        if held.len() == 2 {
            Ok(held.into_iter().map(|h| h.0).collect::<BTreeSet<_>>())
        } else {
            Err(format!("{held:?}"))
        }
    });
    // ... and handed out again, lowest first, when it scales up.
    manager.ok(&["service", "scale", "-d", "web=5"]);
    wait_running(manager, "web", 5);
    let now: BTreeSet<Ipv4Addr> = task_addresses(manager, "web").into_iter().collect();
    assert!(kept.is_subset(&now), "running tasks keep their addresses");
    let expected_new: BTreeSet<Ipv4Addr> = (3..=14)
        .map(|d| Ipv4Addr::new(10, 50, 0, d))
        .filter(|a| !kept.contains(a))
        .take(3)
        .collect();
    assert_eq!(
        now.difference(&kept).copied().collect::<BTreeSet<_>>(),
        expected_new
    );
    assert_no_duplicates(manager, "appnet");

    // Removing the service releases its VIP as well.
    manager.ok(&["service", "rm", "web"]);
    eventually(patience(), "appnet holding only its gateway", || {
        let held = holders(manager, "appnet");
        if held.len() == 1 && held[0].1 == "gateway" {
            Ok(())
        } else {
            Err(format!("{held:?}"))
        }
    });
    manager.ok(&["network", "rm", "appnet"]);
}

#[test]
fn addresses_are_never_handed_out_twice_across_a_leader_kill() {
    if !privileged("networks::addresses_are_never_handed_out_twice_across_a_leader_kill") {
        return;
    }
    let mut cluster = NetCluster::sized(3, 1);
    let program = marker_program(&cluster.dir);
    let managers = &mut cluster.managers;
    managers[0].ok(&["network", "create", "--subnet", "10.51.0.0/24", "appnet"]);
    process_service(&managers[0], &program, "web", "6", &["--network", "appnet"]);
    wait_running(&managers[0], "web", 6);
    let before = task_addresses(&managers[0], "web");

    // Kill the leader while a scale-up is being allocated.
    let leader = leader_name(&managers[0]).expect("a leader");
    let old = managers.iter().position(|m| m.name == leader).unwrap();
    let via = (old + 1) % 3;
    managers[via].ok(&["service", "scale", "-d", "web=20"]);
    managers[old].kill();

    let survivor = &managers[via];
    eventually(patience(), "a new leader", || match leader_name(survivor) {
        Some(name) if name != leader => Ok(()),
        other => Err(format!("{other:?}")),
    });
    // A second scale-up decided by the new leader.
    eventually(patience(), "the scale to 30 accepted", || {
        let run = survivor.shoal(&["service", "scale", "-d", "web=30"]);
        if run.status == 0 {
            Ok(())
        } else {
            Err(run.stderr)
        }
    });
    eventually(patience(), "30 tasks with addresses", || {
        let n = task_addresses(survivor, "web").len();
        if n >= 30 {
            Ok(())
        } else {
            Err(format!("{n}"))
        }
    });
    let after = task_addresses(survivor, "web");
    let unique: BTreeSet<_> = after.iter().collect();
    assert_eq!(
        unique.len(),
        after.len(),
        "duplicates after the leader change: {after:?}"
    );
    assert!(!unique.contains(&vip(survivor, "web").unwrap()));
    // Tasks that lived through the change kept their addresses.
    for a in &before {
        assert!(unique.contains(a), "{a} lost by a live task");
    }
    assert_no_duplicates(survivor, "appnet");
}

#[test]
fn bad_network_input_is_refused_and_changes_nothing() {
    if !privileged("networks::bad_network_input_is_refused_and_changes_nothing") {
        return;
    }
    let dir = TestDir::new();
    let program = marker_program(&dir);
    let mut net = Net::new();
    let addr = net.add_host(1);
    let listen = format!("{addr}:2377");
    let manager = net.daemon(&dir, 1, "manager");
    // A small default pool: two /24s.
    manager.ok(&[
        "swarm",
        "init",
        "--listen-addr",
        &listen,
        "--default-addr-pool",
        "10.77.100.0/23",
        "--default-addr-pool-mask-length",
        "24",
    ]);
    manager.ok(&["network", "create", "--subnet", "10.40.0.0/16", "front"]);
    manager.ok(&["network", "create", "--subnet", "10.41.0.0/30", "tiny"]);
    manager.ok(&["network", "create", "pooled"]);
    process_service(&manager, &program, "web", "1", &["--network", "front"]);
    // solo's VIP takes tiny's only address: its task waits for one.
    process_service(&manager, &program, "solo", "1", &["--network", "tiny"]);
    wait_running(&manager, "web", 1);
    let state = |m: &Daemon| {
        (
            m.ok(&["network", "ls", "--format", "json", "--no-trunc"]),
            m.ok(&["service", "ls", "--format", "json"]),
            m.ok(&["service", "inspect", "web", "solo"]),
        )
    };
    let before = state(&manager);

    let cases: &[(&[&str], &str)] = &[
        (
            &["network", "create", "ingress"],
            "the name ingress is reserved for the routing mesh",
        ),
        (
            &["network", "create", "--subnet", "10.40.3.0/24", "other"],
            "overlaps with network front (10.40.0.0/16)",
        ),
        (
            &["network", "create", "--subnet", "10.42.0.5/24", "other"],
            "invalid subnet 10.42.0.5/24: it should be 10.42.0.0/24",
        ),
        (
            &["network", "create", "--subnet", "10.42.0.0", "other"],
            "CIDR",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.42.0.0/24",
                "--gateway",
                "10.43.0.1",
                "other",
            ],
            "invalid gateway 10.43.0.1: it is not in the subnet 10.42.0.0/24",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.42.0.0/24",
                "--ip-range",
                "10.44.0.0/25",
                "other",
            ],
            "not inside the subnet",
        ),
        (
            &["network", "create", "front"],
            "network with name front already exists",
        ),
        (
            &["network", "create", "--driver", "bridge", "other"],
            "not supported",
        ),
        (
            &["network", "create", "--opt", "mtu=12", "other"],
            "the MTU must be a number",
        ),
        (
            &["network", "create", "--gateway", "10.1.1.1", "other"],
            "need --subnet",
        ),
        (
            &["network", "rm", "front"],
            "network front is in use by service web",
        ),
        (&["network", "rm", "nope"], "network nope not found"),
        (
            &[
                "service",
                "create",
                "-d",
                "--name",
                "x",
                "--network",
                "nope",
                "--runtime",
                "process",
                "/bin/true",
            ],
            "network nope not found",
        ),
        (
            &[
                "service",
                "create",
                "-d",
                "--name",
                "x",
                "--network",
                "tiny",
                "--runtime",
                "process",
                "/bin/true",
            ],
            "network tiny has no free address left for the service's virtual IP",
        ),
        (
            &[
                "service",
                "create",
                "-d",
                "--name",
                "x",
                "--network",
                "front",
                "--network",
                "front",
                "--runtime",
                "process",
                "/bin/true",
            ],
            "is given twice",
        ),
        (
            &[
                "service",
                "create",
                "-d",
                "--name",
                "x",
                "--endpoint-mode",
                "ingress",
                "--runtime",
                "process",
                "/bin/true",
            ],
            "invalid --endpoint-mode",
        ),
        (
            &["service", "update", "-d", "--network-add", "nope", "web"],
            "network nope not found",
        ),
        (
            &["service", "update", "-d", "--network-rm", "tiny", "web"],
            "not attached to it",
        ),
        (
            &["service", "update", "-d", "--network-add", "tiny", "web"],
            "no free address left",
        ),
    ];
    for (args, expected) in cases {
        manager.shoal(args).assert_error(expected);
        assert_eq!(
            state(&manager),
            before,
            "`shoal {}` changed the cluster",
            args.join(" ")
        );
    }

    // The default pool is exhausted after its second /24.
    manager.ok(&["network", "create", "pooled2"]);
    let before = state(&manager);
    manager
        .shoal(&["network", "create", "pooled3"])
        .assert_error("10.77.100.0/23) have no free /24 left");
    assert_eq!(state(&manager), before);
    let subnets: BTreeSet<String> = networks_json(&manager)
        .iter()
        .map(|n| {
            inspect(&manager, "network", n["Name"].as_str().unwrap())["IPAM"]["Config"][0]["Subnet"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        subnets.contains("10.77.100.0/24") && subnets.contains("10.77.101.0/24"),
        "{subnets:?}"
    );

    // And init itself refuses a bad pool before creating anything.
    let other = dir.daemon("other");
    other
        .shoal(&[
            "swarm",
            "init",
            "--listen-addr",
            "127.0.0.1:0",
            "--default-addr-pool",
            "10.0.0.0/24",
            "--default-addr-pool-mask-length",
            "16",
        ])
        .assert_error("smaller than the /16 subnets");
    assert_eq!(other.info()["LocalNodeState"], "inactive");
}

#[test]
fn tasks_on_networks_avoid_nodes_without_overlay_and_say_why() {
    if !privileged("networks::tasks_on_networks_avoid_nodes_without_overlay_and_say_why") {
        return;
    }
    let dir = TestDir::new();
    let program = marker_program(&dir);
    let mut net = Net::new();
    let manager_ip = net.add_host(1);
    let worker_ip = net.add_host(2);
    let manager = dir.daemon_in(
        "manager",
        &[
            "ip",
            "netns",
            "exec",
            &net.ns(1),
            "env",
            "SHOAL_OVERLAY_UNSUPPORTED=no CAP_NET_ADMIN",
        ],
    );
    let addr = format!("{manager_ip}:2377");
    manager.ok(&["swarm", "init", "--listen-addr", &addr]);
    let worker = net.daemon(&dir, 2, "worker1");
    worker.join(&manager.worker_token(), &addr, &worker_ip);
    eventually(patience(), "both nodes Ready", || {
        let nodes = manager.nodes();
        if nodes.len() == 2 && nodes.iter().all(|n| n["Status"] == "Ready") {
            Ok(())
        } else {
            Err(format!("{nodes:?}"))
        }
    });
    manager.ok(&["network", "create", "appnet"]);
    process_service(&manager, &program, "web", "4", &["--network", "appnet"]);
    wait_running(&manager, "web", 4);
    let nodes: BTreeSet<String> = manager
        .running_tasks("web")
        .iter()
        .map(|t| t["Node"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(nodes, ["worker1".to_string()].into());
    // Host-network tasks still go everywhere.
    process_service(&manager, &program, "plain", "4", &[]);
    wait_running(&manager, "plain", 4);
    let nodes: BTreeSet<String> = manager
        .running_tasks("plain")
        .iter()
        .map(|t| t["Node"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(nodes.len(), 2);

    // With only the incapable node, `service ps` gives its reason.
    manager.ok(&["node", "update", "--availability", "drain", "worker1"]);
    let reason = eventually(patience(), "web pending with the overlay reason", || {
        manager
            .tasks("web")
            .iter()
            .find_map(|t| {
                t["Error"]
                    .as_str()
                    .filter(|e| e.contains("overlay"))
                    .map(String::from)
            })
            .ok_or_else(|| format!("{:?}", manager.tasks("web")))
    });
    assert!(
        reason.contains("overlay networking not available (no CAP_NET_ADMIN) on 1 node"),
        "{reason}"
    );
    let table = manager.ok(&["service", "ps", "--no-trunc", "web"]);
    assert!(
        table.contains("overlay networking not available"),
        "{table}"
    );
}

#[test]
fn the_voting_app_stack_creates_its_networks_and_removes_them() {
    if !privileged("networks::the_voting_app_stack_creates_its_networks_and_removes_them") {
        return;
    }
    let cluster = NetCluster::sized(1, 1);
    let program = marker_program(&cluster.dir);
    let manager = &cluster.managers[0];
    // The real-world file as published, with every image swapped for a
    // process task (no images here).
    let published = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/cluster/testdata/voting-app-docker-stack.yml"
    ))
    .unwrap();
    let mut text = String::new();
    for line in published.lines() {
        if line.starts_with("    image: ") {
            text.push_str(&format!(
                "    x-shoal-runtime: process\n    command: [\"{}\", \"3600\"]\n",
                program.display()
            ));
        } else {
            text.push_str(line);
            text.push('\n');
        }
    }
    assert_eq!(
        text.matches("x-shoal-runtime").count(),
        6,
        "every service swapped"
    );
    let file = cluster.dir.dir.path().join("docker-stack.yml");
    std::fs::write(&file, text).unwrap();
    let base = file.to_str().unwrap();
    let config = manager.shoal(&["stack", "config", "-c", base]);
    assert_eq!(config.status, 0, "{}", config.stderr);
    assert!(!config.stderr.contains("networks"), "{}", config.stderr);
    let deploy = manager.shoal(&["stack", "deploy", "-d", "-c", base, "voting"]);
    assert_eq!(deploy.status, 0, "{}", deploy.stderr);
    assert!(
        !deploy.stderr.contains("networks"),
        "no warning about networks: {}",
        deploy.stderr
    );
    for network in ["voting_backend", "voting_default", "voting_frontend"] {
        assert!(
            deploy
                .stdout
                .contains(&format!("Creating network {network}")),
            "{}",
            deploy.stdout
        );
    }
    // The stack's own networks; `ingress` too once the leader has created
    // it for the published ports (Docker lists it as well).
    let names: Vec<String> = networks_json(manager)
        .iter()
        .map(|n| n["Name"].as_str().unwrap().to_string())
        .filter(|n| n != "ingress")
        .collect();
    assert_eq!(
        names,
        ["voting_backend", "voting_default", "voting_frontend"]
    );
    let frontend = inspect(manager, "network", "voting_frontend");
    assert_eq!(frontend["Labels"]["com.docker.stack.namespace"], "voting");
    assert_eq!(frontend["Driver"], "overlay");

    // Each service is on the networks the file gives it (visualizer on
    // default), with a VIP on each.
    let on = |service: &str| -> BTreeSet<String> {
        let value = inspect(manager, "service", service);
        value["Endpoint"]["VirtualIPs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let id = v["NetworkID"].as_str().unwrap();
                inspect(manager, "network", id)["Name"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(on("voting_vote"), set(&["voting_frontend"]));
    assert_eq!(on("voting_db"), set(&["voting_backend"]));
    assert_eq!(
        on("voting_worker"),
        set(&["voting_backend", "voting_frontend"])
    );
    assert_eq!(on("voting_visualizer"), set(&["voting_default"]));
    wait_running(manager, "voting_worker", 1);
    wait_running(manager, "voting_vote", 2);
    let worker = inspect(manager, "service", "voting_worker");
    assert_eq!(
        worker["TaskAddresses"].as_array().unwrap().len(),
        2,
        "one address per network"
    );

    // A redeploy changes nothing and creates no network twice.
    let again = manager.ok(&["stack", "deploy", "-d", "-c", base, "voting"]);
    assert!(!again.contains("Creating network"), "{again}");
    assert!(!again.contains("Updating service"), "{again}");

    let rm = manager.ok(&["stack", "rm", "voting"]);
    for network in ["voting_backend", "voting_default", "voting_frontend"] {
        assert!(rm.contains(&format!("Removing network {network}")), "{rm}");
    }
    // What stays is the routing mesh's network, which outlives its last
    // published port (as Docker's does) and cannot be removed.
    let left: Vec<Value> = networks_json(manager);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["Name"], "ingress");
    manager
        .shoal(&["network", "rm", "ingress"])
        .assert_error("the ingress network carries the routing mesh");
    manager
        .shoal(&["stack", "rm", "voting"])
        .assert_error("nothing found in stack: voting");
}
