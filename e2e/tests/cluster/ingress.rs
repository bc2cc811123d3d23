//! The routing mesh with real daemons on namespace hosts (issue 16): a
//! port published in ingress mode answers on every node's address — also
//! on a node that runs no replica — spreads connections over every
//! replica, and each replica sees the real client's address; removing the
//! service leaves nothing in nftables and no sandbox.
//!
//! The client is a namespace host of its own on the test's bridge, outside
//! the cluster (no daemon), running `shoal-echo tally`; the replicas run
//! `shoal-echo serve` with `SHOAL_ECHO_SHOW_PEER=1`, so every answer says
//! which task answered and which source address it saw.

use std::collections::{BTreeMap, BTreeSet};

use crate::netns::NetCluster;
use crate::util::{eventually, patience, privileged, Daemon};

const ECHO: &str = env!("CARGO_BIN_EXE_shoal-echo");
/// The client host's number (10.77.0.9): no daemon runs there.
const CLIENT: u8 = 9;

fn task_ids(manager: &Daemon, service: &str, n: usize) -> BTreeSet<String> {
    eventually(
        patience(),
        &format!("{n} tasks of {service} running"),
        || {
            let running = manager.running_tasks(service);
            if running.len() == n {
                Ok(running
                    .iter()
                    .map(|t| t["ID"].as_str().unwrap_or_default().to_string())
                    .collect())
            } else {
                Err(format!("{:?}", manager.tasks(service)))
            }
        },
    )
}

/// `count` exchanges from the client host to `target`: the answering task
/// and the source address it saw, per answer; failures as `Err`.
fn tally(
    cluster: &NetCluster,
    proto: &str,
    target: &str,
    count: usize,
) -> Vec<Result<(String, String), String>> {
    cluster
        .net
        .output(CLIENT, &[ECHO, "tally", proto, target, &count.to_string()])
        .lines()
        .map(|line| match line.strip_prefix("ERR ") {
            Some(why) => Err(why.to_string()),
            None => line
                .split_once(' ')
                .map(|(id, peer)| (id.to_string(), peer.to_string()))
                .ok_or_else(|| format!("an answer without the peer: {line:?}")),
        })
        .collect()
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
    manager.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "3",
        "--runtime",
        "process",
        "--constraint",
        "node.hostname!=h3",
        "--env",
        "SHOAL_ECHO_SHOW_PEER=1",
        "--publish",
        "8080:7000",
        "--publish",
        "published=8080,target=7000,protocol=udp",
        ECHO,
        "serve",
        "7000",
    ]);
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
