//! Every bad input is refused with a clear `Error:` and changes nothing.

use std::time::{Duration, Instant};

use crate::util::{cluster, TestDir};

/// What a failed join must leave untouched on both sides.
fn assert_unchanged(
    manager: &crate::util::Daemon,
    joiner: &crate::util::Daemon,
    nodes_before: usize,
) {
    assert_eq!(
        manager.nodes().len(),
        nodes_before,
        "the manager gained a node"
    );
    assert_eq!(joiner.info()["LocalNodeState"], "inactive");
    assert!(!joiner.data_dir.join("state.json").exists());
    assert!(!joiner.data_dir.join("certs").exists());
}

#[test]
fn join_refuses_bad_tokens_and_addresses_without_changing_anything() {
    let dir = TestDir::new();
    let (manager, _, addr) = cluster(&dir, 0);
    let joiner = dir.daemon("joiner");
    let token = manager.worker_token();
    let (digest, secret) = {
        let parts: Vec<&str> = token.split('-').collect();
        (parts[2].to_string(), parts[3].to_string())
    };

    let wrong_secret = format!("SHTKN-1-{digest}-{}", "0".repeat(25));
    joiner
        .shoal(&["swarm", "join", "--token", &wrong_secret, &addr])
        .assert_error("invalid join token: it does not match this swarm's worker or manager token");
    assert_unchanged(&manager, &joiner, 1);

    let wrong_digest = format!("SHTKN-1-{}-{secret}", "0".repeat(50));
    joiner
        .shoal(&["swarm", "join", "--token", &wrong_digest, &addr])
        .assert_error("does not hold the CA this token was issued for");
    assert_unchanged(&manager, &joiner, 1);

    joiner
        .shoal(&["swarm", "join", "--token", "SHTKN-1-abc", &addr])
        .assert_error("invalid join token: expected 4 parts");
    assert_unchanged(&manager, &joiner, 1);

    // A manager token on a node that cannot listen: refused before the
    // swarm registers anything.
    let taken = std::net::TcpListener::bind("127.0.0.9:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let manager_token = manager.ok(&["swarm", "join-token", "-q", "manager"]);
    joiner
        .shoal(&[
            "swarm",
            "join",
            "--token",
            manager_token.trim(),
            "--listen-addr",
            &taken_addr,
            &addr,
        ])
        .assert_error(&format!("cannot listen on {taken_addr}"));
    assert_unchanged(&manager, &joiner, 1);
    drop(taken);

    joiner
        .shoal(&[
            "swarm",
            "join",
            "--token",
            &token,
            "--advertise-addr",
            "not-an-ip",
            &addr,
        ])
        .assert_error("invalid --advertise-addr");
    assert_unchanged(&manager, &joiner, 1);

    // Nothing listens on port 1: refused at once.
    joiner
        .shoal(&["swarm", "join", "--token", &token, "127.0.0.1:1"])
        .assert_error("cannot reach a shoal manager at 127.0.0.1:1");
    assert_unchanged(&manager, &joiner, 1);

    // Something accepts TCP but never speaks TLS: the join still answers in time.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let run = joiner.shoal(&["swarm", "join", "--token", &token, &silent_addr]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "join to a silent address took {:?}",
        started.elapsed()
    );
    run.assert_error(&silent_addr);
    drop(silent);
    assert_unchanged(&manager, &joiner, 1);

    // And with the right token the same joiner gets in.
    joiner.ok(&["swarm", "join", "--token", &token, &addr]);
    assert_eq!(joiner.info()["LocalNodeState"], "active");
}

#[test]
fn init_and_join_refuse_a_node_already_in_a_swarm() {
    let dir = TestDir::new();
    let (manager, workers, addr) = cluster(&dir, 1);
    let before = manager.info();
    let token = manager.worker_token();

    manager
        .shoal(&["swarm", "init", "--listen-addr", "127.0.0.1:0"])
        .assert_error("This node is already part of a swarm");
    assert_eq!(manager.info()["ClusterID"], before["ClusterID"]);
    assert_eq!(manager.worker_token(), token);

    let worker_before = workers[0].info();
    workers[0]
        .shoal(&["swarm", "join", "--token", &token, &addr])
        .assert_error("This node is already part of a swarm");
    assert_eq!(workers[0].info()["NodeID"], worker_before["NodeID"]);
    manager
        .shoal(&["swarm", "join", "--token", &token, &addr])
        .assert_error("This node is already part of a swarm");
    assert_eq!(manager.nodes().len(), 2);
}

#[test]
fn unknown_nodes_and_wrong_places_are_clear_errors() {
    let dir = TestDir::new();
    let (manager, workers, _) = cluster(&dir, 1);
    let nodes_before = manager.nodes();

    manager
        .shoal(&["node", "inspect", "no-such-node"])
        .assert_error("No such node: no-such-node");
    manager
        .shoal(&["node", "rm", "no-such-node"])
        .assert_error("No such node: no-such-node");
    manager
        .shoal(&["node", "rm", "--force", "manager"])
        .assert_error("is a swarm manager");
    assert_eq!(manager.nodes().len(), nodes_before.len());

    // Workers cannot read or change cluster state.
    workers[0]
        .shoal(&["node", "ls"])
        .assert_error("This node is not a swarm manager");

    // A node outside any swarm says so.
    let idle = dir.daemon("idle");
    idle.shoal(&["swarm", "leave"])
        .assert_error("This node is not part of a swarm");
    idle.shoal(&["node", "ls"])
        .assert_error("not a swarm manager");
}

#[test]
fn the_cli_says_when_no_daemon_listens() {
    let dir = TestDir::new();
    let socket = dir.dir.path().join("nobody.sock");
    let run = std::process::Command::new(crate::util::shoal_bin())
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .args(["node", "ls"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        stderr.starts_with(&format!(
            "Error: cannot reach the shoal daemon at {}: is it running?",
            socket.display()
        )),
        "{stderr}"
    );
    // SHOAL_HOST is honoured the same way.
    let run = std::process::Command::new(crate::util::shoal_bin())
        .env("SHOAL_HOST", &socket)
        .args(["swarm", "join-token", "worker"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&run.stderr).contains("cannot reach the shoal daemon"));
}
