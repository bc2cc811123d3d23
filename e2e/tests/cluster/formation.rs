//! Forming a cluster, losing and regaining a worker, restarting the manager.

use std::time::Duration;

use crate::util::{cluster, eventually, patience, TestDir};

#[test]
fn three_daemons_form_a_cluster_that_survives_crashes_and_restarts() {
    let dir = TestDir::new();
    let (mut manager, mut workers, addr) = cluster(&dir, 2);

    let nodes = manager.nodes();
    assert_eq!(nodes.len(), 3);
    let leader: Vec<_> = nodes
        .iter()
        .filter(|n| n["ManagerStatus"] == "Leader")
        .collect();
    assert_eq!(leader.len(), 1, "exactly one leader: {nodes:?}");
    assert_eq!(leader[0]["Hostname"], "manager");
    assert_eq!(leader[0]["Self"], true);
    let inspect: serde_json::Value =
        serde_json::from_str(&manager.ok(&["node", "inspect", "worker1"])).unwrap();
    assert_eq!(inspect[0]["Status"]["Addr"], "127.0.0.2");
    assert_eq!(inspect[0]["Spec"]["Role"], "worker");
    assert!(
        inspect[0]["Description"]["Resources"]["NanoCPUs"]
            .as_i64()
            .unwrap()
            > 0
    );

    // A crashed worker is Down within 10 s, and Ready again after a restart.
    workers[0].kill();
    eventually(Duration::from_secs(10), "worker1 Down", || {
        match manager.node_status("worker1").as_deref() {
            Some("Down") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(manager.node_status("worker2").as_deref(), Some("Ready"));
    workers[0].start();
    eventually(patience(), "worker1 Ready again", || {
        match manager.node_status("worker1").as_deref() {
            Some("Ready") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });

    // A manager restart (SIGTERM, clean exit) keeps cluster, nodes and tokens.
    let info_before = manager.info();
    let token_before = manager.worker_token();
    let manager_token_before = manager.ok(&["swarm", "join-token", "-q", "manager"]);
    let mut ids_before: Vec<_> = manager.nodes().iter().map(|n| n["ID"].clone()).collect();
    ids_before.sort_by_key(|v| v.to_string());
    assert_eq!(
        manager.terminate(),
        Some(0),
        "SIGTERM must stop the daemon cleanly"
    );
    manager.start();
    let info_after = manager.info();
    assert_eq!(info_after["ClusterID"], info_before["ClusterID"]);
    assert_eq!(info_after["NodeID"], info_before["NodeID"]);
    assert_eq!(info_after["NodeAddr"].as_str(), Some(addr.as_str()));
    assert_eq!(manager.worker_token(), token_before);
    assert_eq!(
        manager.ok(&["swarm", "join-token", "-q", "manager"]),
        manager_token_before
    );
    eventually(
        patience(),
        "all three nodes Ready after the manager restart",
        || {
            let nodes = manager.nodes();
            let mut ids: Vec<_> = nodes.iter().map(|n| n["ID"].clone()).collect();
            ids.sort_by_key(|v| v.to_string());
            if ids == ids_before && nodes.iter().all(|n| n["Status"] == "Ready") {
                Ok(())
            } else {
                Err(format!("{nodes:?}"))
            }
        },
    );
    // The workers' agents found the restarted manager on their own.
    for worker in &workers {
        eventually(patience(), "worker session up", || {
            let info = worker.info();
            if info["SessionUp"] == true {
                Ok(())
            } else {
                Err(info.to_string())
            }
        });
    }
}

#[test]
fn a_worker_leaves_cleanly_and_is_removed() {
    let dir = TestDir::new();
    let (manager, workers, _) = cluster(&dir, 1);
    let worker = &workers[0];
    let worker_id = worker.info()["NodeID"].as_str().unwrap().to_string();

    // A Ready node is not removed without --force.
    manager
        .shoal(&["node", "rm", &worker_id])
        .assert_error("is not down and can't be removed");
    assert_eq!(manager.nodes().len(), 2);

    assert_eq!(
        worker.ok(&["swarm", "leave"]).trim(),
        "Node left the swarm."
    );
    assert_eq!(worker.info()["LocalNodeState"], "inactive");
    assert!(!worker.data_dir.join("state.json").exists());
    assert!(!worker.data_dir.join("certs").exists());
    eventually(
        patience(),
        "the departed worker shown Down",
        || match manager.node_status("worker1").as_deref() {
            Some("Down") => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    assert_eq!(manager.ok(&["node", "rm", "worker1"]).trim(), "worker1");
    assert_eq!(manager.nodes().len(), 1);

    // The last manager needs --force to leave.
    manager
        .shoal(&["swarm", "leave"])
        .assert_error("Use `--force` to ignore this message");
    assert_eq!(manager.info()["LocalNodeState"], "active");
    manager.ok(&["swarm", "leave", "--force"]);
    assert_eq!(manager.info()["LocalNodeState"], "inactive");
    assert!(!manager.data_dir.join("raft").exists());
}
