//! Published ports, managers' side, with real daemons: `--publish` in
//! Docker's short and long forms, allocation from 30000–32767 unique per
//! protocol (also across a leader kill), clashes and bad input refused
//! clearly with nothing changed, the port freed on `service rm`, `service
//! ls` PORTS and `service inspect` Endpoint as Docker shows them, host-mode
//! ports keeping two tasks off one node, and `node inspect` naming the path
//! the node serves published ports with.
//!
//! The data plane (the mesh keeping the client's address, host-mode ports
//! answering only where a task runs) is tested with daemons on namespace
//! hosts in `ingress.rs`.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::util::{
    cluster, eventually, leader_name, managers_cluster, marker_program, patience, Daemon, TestDir,
};

fn inspect(manager: &Daemon, name: &str) -> Value {
    let text = manager.ok(&["service", "inspect", name]);
    let array: Value = serde_json::from_str(&text).expect("inspect json");
    array[0].clone()
}

fn create(manager: &Daemon, program: &Path, name: &str, replicas: &str, extra: &[&str]) {
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

/// The PORTS column of `service ls` for `name`.
fn ports_column(manager: &Daemon, name: &str) -> String {
    manager
        .ok(&["service", "ls", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("service ls json"))
        .find(|s| s["Name"] == name)
        .map(|s| s["Ports"].as_str().unwrap_or_default().to_string())
        .unwrap_or_else(|| panic!("service {name} not listed"))
}

fn service_names(manager: &Daemon) -> BTreeSet<String> {
    manager
        .ok(&["service", "ls", "--format", "json"])
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("service ls json")["Name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Every published (port, protocol) of every service, from `inspect`.
fn published(manager: &Daemon, names: &[&str]) -> Vec<(u64, String)> {
    names
        .iter()
        .flat_map(|n| {
            inspect(manager, n)["Endpoint"]["Ports"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|p| {
            (
                p["PublishedPort"].as_u64().unwrap(),
                p["Protocol"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn ports_are_allocated_shown_refused_clearly_and_freed() {
    let dir = TestDir::new();
    let (manager, _, _) = cluster(&dir, 0);
    let program = marker_program(&dir);
    create(
        &manager,
        &program,
        "web",
        "1",
        &[
            "--publish",
            "8080:80",
            "--publish",
            "80",
            "--publish",
            "published=5353,target=53,protocol=udp",
        ],
    );
    assert_eq!(
        ports_column(&manager, "web"),
        "*:8080->80/tcp, *:30000->80/tcp, *:5353->53/udp"
    );
    let web = inspect(&manager, "web");
    assert_eq!(
        web["Endpoint"]["Ports"][1],
        serde_json::json!({"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 30000, "PublishMode": "ingress"})
    );
    // The spec keeps what the operator asked: no published number there.
    assert!(web["Spec"]["EndpointSpec"]["Ports"][1]["PublishedPort"].is_null());

    // Refused, each with an Error naming the fix, and nothing changes.
    let program_arg = program.to_str().unwrap();
    let base = [
        "service",
        "create",
        "-d",
        "--name",
        "api",
        "--runtime",
        "process",
    ];
    for (flag, expected) in [
        ("8080:81", "8080/tcp is already in use by service web"),
        ("70000:80", "between 1 and 65535"),
        ("8081:80/tpc", "expected protocol tcp, udp"),
        (
            "published=8081,target=80,protocol=tpc",
            "protocol must be tcp or udp",
        ),
    ] {
        let mut args = base.to_vec();
        args.extend(["--publish", flag, program_arg, "3600"]);
        manager.shoal(&args).assert_error(expected);
    }
    assert_eq!(service_names(&manager), BTreeSet::from(["web".to_string()]));
    // The same number over UDP is another port.
    create(
        &manager,
        &program,
        "dns",
        "1",
        &["--publish", "8080:53/udp"],
    );
    assert_eq!(ports_column(&manager, "dns"), "*:8080->53/udp");

    // A network that is internal only cannot publish.
    manager.ok(&["network", "create", "--internal", "backend"]);
    let mut args = base.to_vec();
    args.extend([
        "--network",
        "backend",
        "--publish",
        "9000:80",
        program_arg,
        "3600",
    ]);
    manager
        .shoal(&args)
        .assert_error("only on internal network");

    // --publish-rm by the number `ls` shows (an allocated one too), --publish-add.
    manager.ok(&[
        "service",
        "update",
        "-d",
        "--publish-rm",
        "30000",
        "--publish-add",
        "9090:90",
        "web",
    ]);
    assert_eq!(
        ports_column(&manager, "web"),
        "*:8080->80/tcp, *:5353->53/udp, *:9090->90/tcp"
    );
    manager
        .shoal(&["service", "update", "-d", "--publish-rm", "1234", "web"])
        .assert_error("publishes no such port");

    // Removing the service frees its ports.
    manager.ok(&["service", "rm", "web"]);
    create(
        &manager,
        &program,
        "api",
        "1",
        &["--publish", "8080:81", "--publish", "81"],
    );
    assert_eq!(
        ports_column(&manager, "api"),
        "*:8080->81/tcp, *:30000->81/tcp"
    );

    // The node says how it serves published ports (the daemons run as root).
    let node: Value = serde_json::from_str(&manager.ok(&["node", "inspect", "self"])).unwrap();
    let mode = node[0]["Description"]["PublishedPorts"]["Mode"].as_str();
    assert!(matches!(mode, Some("kernel") | Some("userspace")), "{node}");
}

#[test]
fn dynamic_ports_are_never_handed_out_twice_across_a_leader_kill() {
    let dir = TestDir::new();
    let (mut managers, _) = managers_cluster(&dir, 3, 0);
    let program = marker_program(&dir);
    create(&managers[0], &program, "a", "0", &["--publish", "80"]);
    create(&managers[0], &program, "b", "0", &["--publish", "80"]);
    let leader = leader_name(&managers[0]).expect("a leader");
    let i = managers
        .iter()
        .position(|m| m.name == leader)
        .expect("the leader is one of the managers");
    managers[i].kill();
    let survivor = &managers[(i + 1) % 3];
    eventually(patience(), "a new leader", || match leader_name(survivor) {
        Some(l) if l != leader => Ok(()),
        other => Err(format!("leader {other:?}")),
    });
    let program_arg = program.to_str().unwrap();
    eventually(patience(), "service c created by the new leader", || {
        let run = survivor.shoal(&[
            "service",
            "create",
            "-d",
            "--name",
            "c",
            "--replicas",
            "0",
            "--runtime",
            "process",
            "--publish",
            "80",
            program_arg,
            "3600",
        ]);
        if run.status == 0 || run.stderr.contains("already exists") {
            Ok(())
        } else {
            Err(run.stderr)
        }
    });
    let ports = published(survivor, &["a", "b", "c"]);
    let unique: BTreeSet<&(u64, String)> = ports.iter().collect();
    assert_eq!(unique.len(), 3, "a port handed out twice: {ports:?}");
    assert!(
        ports.iter().all(|(p, _)| (30000..=32767).contains(p)),
        "{ports:?}"
    );
}

#[test]
fn host_mode_ports_keep_two_tasks_off_one_node_and_ps_says_why() {
    let dir = TestDir::new();
    let (manager, _workers, _) = cluster(&dir, 1);
    let program = marker_program(&dir);
    create(
        &manager,
        &program,
        "edge",
        "3",
        &["--publish", "mode=host,published=9443,target=9443"],
    );
    eventually(
        patience(),
        "two tasks running, one pending with the reason",
        || {
            let tasks = manager.tasks("edge");
            let running = manager.running_tasks("edge");
            let nodes: BTreeSet<String> = running
                .iter()
                .map(|t| t["Node"].as_str().unwrap_or_default().to_string())
                .collect();
            let pending = tasks.iter().any(|t| {
                t["Error"] == "no suitable node (host-mode port 9443/tcp already in use on 2 nodes)"
            });
            if running.len() == 2 && nodes.len() == 2 && pending {
                Ok(())
            } else {
                Err(format!("{tasks:?}"))
            }
        },
    );
    // Host-mode ports are the tasks', not the mesh's: no ingress PORTS.
    assert_eq!(ports_column(&manager, "edge"), "");
}
