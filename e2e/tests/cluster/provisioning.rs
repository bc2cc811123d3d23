//! When the cluster is full: a service that fits no node for memory makes
//! the leader run the operator's provisioner — here a script that starts a
//! real `shoal daemon` and joins it with the worker token it was given on
//! stdin — once, and the task then runs on the new node. When that node has
//! been idle for the window, the decommissioner gets it, drained.
//!
//! The cluster is made small by the agent's memory override
//! (`SHOAL_ADVERTISE_MEMORY_BYTES`): the manager offers 64 MiB, the service
//! reserves 256 MiB, the provisioned node offers what the machine has.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::util::{eventually, marker_program, patience, shoal_bin, Daemon, TestDir};

/// The provisioner: records its stdin (one line per call), starts a daemon
/// under the test's directory and joins it with the token and manager
/// address it was given, and returns once the manager sees the node Ready —
/// so the call stays in flight while the task is still pending, which is
/// when a second call would happen if single flight did not hold.
const PROVISIONER: &str = r#"#!/bin/sh
set -eu
input=$(cat)
printf '%s\n' "$input" >> "$SHOAL_TEST_HOOKS/provision.log"
echo "call $SHOAL_CALL_ID for hook $SHOAL_HOOK" >&2
token=$(printf '%s' "$input" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
manager=$(printf '%s' "$input" | sed -n 's/.*"managers":\["\([^"]*\)".*/\1/p')
new="$SHOAL_TEST_HOOKS/provisioned"
# The new machine offers all its memory: the override is the manager's.
unset SHOAL_ADVERTISE_MEMORY_BYTES
nohup "$SHOAL_TEST_BIN" daemon --data-dir "$new" --socket "$new.sock" \
  --hostname provisioned </dev/null >"$new.log" 2>&1 &
echo $! > "$new.pid"
i=0
until "$SHOAL_TEST_BIN" -H "$new.sock" info >/dev/null 2>&1; do
  i=$((i+1)); [ $i -lt 300 ] || { echo "daemon did not answer" >&2; exit 1; }
  sleep 0.1
done
"$SHOAL_TEST_BIN" -H "$new.sock" swarm join --token "$token" \
  --advertise-addr 127.0.0.2 "$manager" >&2
i=0
until "$SHOAL_TEST_BIN" -H "$SHOAL_TEST_MANAGER_SOCK" node ls --format json \
    | grep '"Hostname":"provisioned"' | grep -q '"Status":"Ready"'; do
  i=$((i+1)); [ $i -lt 300 ] || { echo "node not Ready" >&2; exit 1; }
  sleep 0.1
done
echo "joined provisioned" >&2
"#;

/// The decommissioner: records its stdin and stops the daemon it is given
/// (the test's stand-in for switching a machine off).
const DECOMMISSIONER: &str = r#"#!/bin/sh
set -eu
input=$(cat)
printf '%s\n' "$input" >> "$SHOAL_TEST_HOOKS/decommission.log"
kill "$(cat "$SHOAL_TEST_HOOKS/provisioned.pid")"
echo "stopped it" >&2
"#;

/// Stops the daemon the provisioner started (its PID file), also when the
/// test fails; its tasks are swept by the test directory.
struct Provisioned(PathBuf);

impl Drop for Provisioned {
    fn drop(&mut self) {
        let Ok(text) = std::fs::read_to_string(&self.0) else {
            return;
        };
        let Ok(pid) = text.trim().parse::<i32>() else {
            return;
        };
        let pid = Pid::from_raw(pid);
        if kill(pid, Signal::SIGTERM).is_err() {
            return;
        }
        // Not `eventually`: a panic in a drop during a failing test aborts.
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if kill(pid, None).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = kill(pid, Signal::SIGKILL);
    }
}

fn script(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
    path
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("hook stdin is one JSON line"))
        .collect()
}

fn swarm(manager: &Daemon) -> Value {
    serde_json::from_str(&manager.ok(&["swarm", "inspect"])).expect("swarm inspect json")
}

fn events(manager: &Daemon, kind: &str) -> Vec<Value> {
    swarm(manager)["ProvisioningStatus"]["Events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["Kind"] == kind)
        .collect()
}

#[test]
fn a_service_too_big_for_the_cluster_gets_a_new_node_once_and_an_idle_one_is_decommissioned() {
    let dir = TestDir::new();
    let hooks = dir.dir.path().join("hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    let provisioner = script(&hooks, "provision.sh", PROVISIONER);
    let decommissioner = script(&hooks, "decommission.sh", DECOMMISSIONER);
    let _provisioned = Provisioned(hooks.join("provisioned.pid"));
    let manager_sock = dir.dir.path().join("manager.sock");
    let bin = shoal_bin();
    let manager = dir.daemon_with_env(
        "manager",
        &[
            ("SHOAL_ADVERTISE_MEMORY_BYTES", "67108864"),
            ("SHOAL_TEST_HOOKS", hooks.to_str().unwrap()),
            ("SHOAL_TEST_BIN", bin.to_str().unwrap()),
            ("SHOAL_TEST_MANAGER_SOCK", manager_sock.to_str().unwrap()),
        ],
    );
    manager.init();
    manager.ok(&[
        "swarm",
        "update",
        // The decommissioned node is seen Down sooner.
        "--dispatcher-heartbeat",
        "1s",
        "--node-provisioner",
        provisioner.to_str().unwrap(),
        "--node-provisioner-threshold",
        "2s",
        "--node-provisioner-timeout",
        "2m",
        "--node-provisioner-cooldown",
        "10m",
    ]);
    let settings = swarm(&manager)["Spec"]["NodeProvisioning"].clone();
    assert_eq!(settings["Provisioner"], provisioner.to_str().unwrap());
    assert_eq!(settings["PendingThreshold"], "2s");

    let program = marker_program(&dir);
    manager.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "big",
        "--reserve-memory",
        "256M",
        "--runtime",
        "process",
        program.to_str().unwrap(),
        "3600",
    ]);
    eventually(patience(), "big running on the provisioned node", || {
        let running = manager.running_tasks("big");
        match running.first() {
            Some(t) if t["Node"] == "provisioned" => Ok(()),
            _ => Err(format!(
                "{:?}; provisioner events {:?}",
                manager.tasks("big"),
                events(&manager, "provision")
            )),
        }
    });
    // Exactly one call, with the shortfall; its result is an event.
    let calls = lines(&hooks.join("provision.log"));
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    assert_eq!(call["kind"], "provision");
    assert_eq!(call["shortfall"]["tasks"], 1);
    assert_eq!(call["shortfall"]["memory_bytes"], 256 << 20);
    assert_eq!(call["shortfall"]["services"][0]["service"], "big");
    assert_eq!(
        call["shortfall"]["services"][0]["reason"],
        "no suitable node (insufficient memory on 1 node)"
    );
    let done = eventually(patience(), "the provisioner's event", || {
        match events(&manager, "provision").as_slice() {
            [event] => Ok(event.clone()),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(done["ExitCode"], 0, "{done}");
    let message = done["Message"].as_str().unwrap();
    assert!(
        message.starts_with("provisioner exited 0 after ")
            && message.ends_with("(1 task pending: 256 MiB memory)"),
        "{message}"
    );
    assert!(
        done["Stderr"]
            .as_str()
            .unwrap()
            .ends_with("joined provisioned"),
        "{done}"
    );
    assert!(swarm(&manager)["ProvisioningStatus"]["ProvisionInFlight"].is_null());

    // The reverse: the service goes, the provisioned node is idle; after the
    // window it is drained and handed to the decommissioner — never the
    // manager, and only once.
    manager.ok(&["service", "rm", "big"]);
    manager.ok(&[
        "swarm",
        "update",
        "--node-decommissioner",
        decommissioner.to_str().unwrap(),
        "--node-idle-window",
        "3s",
        "--node-floor",
        "1",
    ]);
    let node = eventually(patience(), "the decommissioner's event", || {
        match events(&manager, "decommission").as_slice() {
            [event] => Ok(event.clone()),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(node["ExitCode"], 0, "{node}");
    let calls = lines(&hooks.join("decommission.log"));
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["node"]["hostname"], "provisioned");
    assert_eq!(calls[0]["node"]["id"], node["NodeID"]);
    assert_eq!(calls[0]["node"]["addr"], "127.0.0.2");
    eventually(
        patience(),
        "the decommissioned node Down and drained",
        || {
            let nodes = manager.nodes();
            let gone = nodes.iter().find(|n| n["Hostname"] == "provisioned");
            let kept = nodes.iter().find(|n| n["Hostname"] == "manager");
            match (gone, kept) {
                (Some(g), Some(k))
                    if g["Status"] == "Down"
                        && g["Availability"] == "Drain"
                        && k["Availability"] == "Active" =>
                {
                    Ok(())
                }
                _ => Err(format!("{nodes:?}")),
            }
        },
    );
    assert_eq!(lines(&hooks.join("decommission.log")).len(), 1);
}

#[test]
fn bad_hook_settings_are_refused_and_change_nothing() {
    let dir = TestDir::new();
    let manager = dir.daemon("manager");
    manager.init();
    let before = swarm(&manager)["Spec"]["NodeProvisioning"].clone();
    manager
        .shoal(&[
            "swarm",
            "update",
            "--node-provisioner",
            "/bin/true",
            "--node-provisioner-timeout",
            "10ms",
        ])
        .assert_error("invalid --node-provisioner-timeout 10ms: expected between 1s and 24h");
    assert_eq!(swarm(&manager)["Spec"]["NodeProvisioning"], before);
    assert!(before["Provisioner"].is_null(), "{before}");
}
