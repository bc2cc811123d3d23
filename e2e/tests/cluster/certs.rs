//! Certificates that renew: with a lifetime of seconds, a 3-manager,
//! 2-worker cluster renews every node's certificate several times while
//! writes go on, without a failed write, a node shown Down or a restarted
//! task; and a demoted manager ends up with a worker certificate on disk.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use shoal_security::files::NodeCredentials;
use shoal_security::renewal::Validity;
use shoal_security::{PeerIdentity, Role};

use crate::util::{eventually, leader_name, marker_program, patience, Daemon, TestDir};

/// The certificate lifetime of the renewal test. Renewals fall 8–16 s after
/// each issue; several fit in a minute.
const LIFETIME: &str = "20s";

/// The certificate on a node's disk: (PEM, validity, role).
fn cert_on_disk(node: &Daemon) -> Option<(String, Validity, Role)> {
    let creds = NodeCredentials::read_in_place(&node.data_dir).ok()?;
    let validity = Validity::of_pem(&creds.cert_pem).ok()?;
    let role = PeerIdentity::from_pem(&creds.cert_pem).ok()?.role;
    Some((creds.cert_pem, validity, role))
}

/// Three managers and two workers, with the certificate lifetime set to
/// [`LIFETIME`] right after `swarm init`, before anyone joins.
fn short_lived_cluster(dir: &TestDir) -> (Vec<Daemon>, Vec<Daemon>) {
    let first = dir.daemon("manager1");
    let addr = first.init();
    first.ok(&["swarm", "update", "--cert-expiry", LIFETIME]);
    let manager_token = first
        .ok(&["swarm", "join-token", "-q", "manager"])
        .trim()
        .to_string();
    let worker_token = first.worker_token();
    let mut managers = vec![first];
    for i in 2..=3 {
        let manager = dir.daemon(&format!("manager{i}"));
        manager.ok(&[
            "swarm",
            "join",
            "--token",
            &manager_token,
            "--listen-addr",
            &format!("127.0.0.{i}:0"),
            &addr,
        ]);
        managers.push(manager);
    }
    let workers: Vec<Daemon> = (1..=2)
        .map(|i| {
            let worker = dir.daemon(&format!("worker{i}"));
            worker.join(&worker_token, &addr, &format!("127.0.0.{}", 20 + i));
            worker
        })
        .collect();
    eventually(patience(), "every node Ready", || {
        let nodes = managers[0].nodes();
        if nodes.len() == 5 && nodes.iter().all(|n| n["Status"] == "Ready") {
            Ok(())
        } else {
            Err(format!("{nodes:?}"))
        }
    });
    (managers, workers)
}

/// Runs `body` while writes go through every manager in turn (followers
/// forward them) and every node is watched for staying Ready with its
/// session up; returns what `body` returned and every failure seen.
fn under_load<T>(
    managers: &[Daemon],
    nodes: &[&Daemon],
    body: impl FnOnce() -> T,
) -> (T, Vec<String>) {
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let result = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let via = &managers[(i % managers.len() as u64) as usize];
                let label = format!("w={i}");
                let run = via.shoal(&["node", "update", "--label-add", &label, "worker1"]);
                if run.status != 0 {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("write {i} via {}: {}", via.name, run.stderr));
                }
                i += 1;
                // Pacing only: a steady stream, not a flood.
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        scope.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                let run = managers[0].shoal(&["node", "ls", "--format", "json"]);
                if run.status != 0 {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("node ls: {}", run.stderr));
                }
                for line in run.stdout.lines() {
                    let node: serde_json::Value = serde_json::from_str(line).unwrap();
                    if node["Status"] != "Ready" {
                        failures.lock().unwrap().push(format!("not Ready: {node}"));
                    }
                }
                for node in nodes {
                    if node.info()["SessionUp"] != true {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{} lost its session", node.name));
                    }
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
        stop.store(true, Ordering::SeqCst);
        result
    });
    let failures = failures.lock().unwrap().clone();
    match result {
        Ok(value) => (value, failures),
        Err(panic) => {
            eprintln!("failures seen meanwhile: {failures:#?}");
            std::panic::resume_unwind(panic)
        }
    }
}

#[test]
fn certificates_renew_without_a_failed_write_a_dropped_session_or_a_restarted_task() {
    // The daemons inherit this: they accept lifetimes of seconds (an
    // operator's minimum is an hour). Each test is its own process under
    // nextest, so it reaches no other test's daemons.
    std::env::set_var("SHOAL_MIN_CERT_EXPIRY_SECS", "1");
    let dir = TestDir::new();
    let program = marker_program(&dir);
    let (managers, workers) = short_lived_cluster(&dir);
    managers[0].ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "sleepers",
        "--replicas",
        "4",
        "--runtime",
        "process",
        program.to_str().unwrap(),
        "3600",
    ]);
    let pids_before = eventually(patience(), "4 tasks running", || {
        let pids = crate::util::processes_of(&program);
        if pids.len() == 4 {
            Ok(pids)
        } else {
            Err(format!("{pids:?}"))
        }
    });

    let nodes: Vec<&Daemon> = managers.iter().chain(workers.iter()).collect();
    let ((), failures) = under_load(&managers, &nodes, || {
        // Every node's certificate on disk changes at least twice, and
        // each one is the node's role and not expired.
        let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        eventually(
            patience() * 4,
            "two renewals of every node's certificate",
            || {
                for node in &nodes {
                    let (pem, validity, role) = cert_on_disk(node)
                        .ok_or_else(|| format!("{}: no readable certificate", node.name))?;
                    let expected = if node.name.starts_with("manager") {
                        Role::Manager
                    } else {
                        Role::Worker
                    };
                    if role != expected || validity.remaining(SystemTime::now()).is_zero() {
                        return Err(format!("{}: {role:?} certificate {validity:?}", node.name));
                    }
                    seen.entry(node.name.clone()).or_default().insert(pem);
                }
                let counts: BTreeMap<_, _> = seen
                    .iter()
                    .map(|(n, pems)| (n.clone(), pems.len()))
                    .collect();
                if counts.len() == nodes.len() && counts.values().all(|c| *c >= 3) {
                    Ok(())
                } else {
                    Err(format!("certificates seen per node: {counts:?}"))
                }
            },
        )
    });
    assert!(failures.is_empty(), "during renewals: {failures:#?}");
    assert_eq!(
        crate::util::processes_of(&program),
        pids_before,
        "the tasks' processes are the ones started before the renewals"
    );
    // The lifetime is the one set, not the 90-day default.
    let (_, validity, _) = cert_on_disk(&workers[0]).unwrap();
    assert!(
        validity.lifetime() < Duration::from_secs(60),
        "{validity:?}"
    );
    let info = workers[0].info();
    assert!(info["CertificateExpiry"].is_string(), "{info}");
    assert!(info["CertificateWarning"].is_null(), "{info}");

    // A node that stops cannot renew: `node ls` warns before (or once) its
    // certificate runs out, and says what to check.
    let mut workers = workers;
    workers[1].terminate();
    eventually(patience(), "a warning about worker2's certificate", || {
        let run = managers[0].shoal(&["node", "ls"]);
        let warned = run.stderr.lines().any(|l| {
            l.starts_with("WARNING: node worker2")
                && (l.contains("expires in") || l.contains("has expired"))
        });
        if run.status == 0 && warned {
            Ok(())
        } else {
            Err(run.stderr)
        }
    });
    let rows = managers[0].nodes();
    let row = rows.iter().find(|n| n["Hostname"] == "worker1").unwrap();
    assert!(row["CertificateWarning"].is_null(), "{row}");
}

#[test]
fn a_certificate_lifetime_below_an_hour_is_refused() {
    let dir = TestDir::new();
    let (manager, _, addr) = crate::util::cluster(&dir, 0);
    manager
        .shoal(&["swarm", "update", "--cert-expiry", "59m"])
        .assert_error("invalid --cert-expiry 3540s: expected between 3600s");
    // The lifetime stays as it was: a node joining now gets 90 days.
    let worker = dir.daemon("worker1");
    worker.join(&manager.worker_token(), &addr, "127.0.0.2");
    let (_, validity, _) = cert_on_disk(&worker).unwrap();
    assert!(
        validity.lifetime() >= Duration::from_secs(90 * 24 * 3600),
        "{validity:?}"
    );
}

#[test]
fn a_demoted_manager_holds_a_worker_certificate() {
    let dir = TestDir::new();
    let (managers, _) = crate::util::managers_cluster(&dir, 3, 0);
    let leader = eventually(patience(), "a leader", || {
        leader_name(&managers[0]).ok_or_else(|| "none".to_string())
    });
    let demoted = managers.iter().find(|m| m.name != leader).unwrap();
    let (old_pem, _, role) = cert_on_disk(demoted).unwrap();
    assert_eq!(role, Role::Manager);
    let via = managers.iter().find(|m| m.name == leader).unwrap();
    via.ok(&["node", "demote", &demoted.name]);
    eventually(
        patience(),
        "a worker certificate on the demoted node",
        || match cert_on_disk(demoted) {
            Some((pem, _, Role::Worker)) if pem != old_pem => Ok(()),
            other => Err(format!("{:?}", other.map(|(_, v, r)| (v, r)))),
        },
    );
    eventually(patience(), "the demoted node Ready as a worker", || {
        let nodes = via.nodes();
        let row = nodes
            .iter()
            .find(|n| n["Hostname"] == demoted.name.as_str())
            .cloned()
            .unwrap_or_default();
        if row["Status"] == "Ready" && row["ManagerStatus"] == "" {
            Ok(())
        } else {
            Err(row.to_string())
        }
    });
}

/// The PEM certificate(s) in `text` (the end of `swarm ca`'s output).
fn pem_in(text: &str) -> String {
    let start = text
        .find("-----BEGIN CERTIFICATE-----")
        .unwrap_or_else(|| panic!("no certificate in {text:?}"));
    text[start..].to_string()
}

/// The fingerprint line of `swarm ca`.
fn fingerprint_in(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("root CA fingerprint: "))
        .unwrap_or_else(|| panic!("no fingerprint in {text:?}"))
        .to_string()
}

/// The gRPC code a dispatcher heartbeat gets when sent with `creds`, or
/// why no call got through at all (connection or handshake refused).
async fn heartbeat_with(addr: &str, creds: &NodeCredentials) -> Result<tonic::Code, String> {
    use shoal_proto::v1::dispatcher_client::DispatcherClient;
    use shoal_proto::v1::HeartbeatRequest;
    let channel = crate::mtls::channel(addr, shoal_security::tls::client_config(creds))
        .await
        .map_err(|e| shoal_security::tls::error_chain(&e))?;
    let answer = DispatcherClient::new(channel)
        .heartbeat(HeartbeatRequest {
            session_id: "none".into(),
            ..Default::default()
        })
        .await;
    match answer {
        Ok(_) => Ok(tonic::Code::Ok),
        // A follower's answer: heartbeats belong to the leader. The call
        // passed the certificate checks to get it.
        Err(status) if status.message().contains("is not the leader") => Ok(status.code()),
        // A transport failure (the listener refused the certificate after
        // the client's side of the handshake and closed the connection)
        // surfaces as one of these, with no status from the server.
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
            ) =>
        {
            Err(status.to_string())
        }
        Err(status) => Ok(status.code()),
    }
}

#[test]
fn a_root_rotation_moves_every_node_to_the_new_root_and_the_old_root_is_refused_afterwards() {
    std::env::set_var("SHOAL_MIN_CERT_EXPIRY_SECS", "1");
    let dir = TestDir::new();
    let program = marker_program(&dir);
    let (managers, workers) = short_lived_cluster(&dir);
    managers[0].ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "sleepers",
        "--replicas",
        "4",
        "--runtime",
        "process",
        program.to_str().unwrap(),
        "3600",
    ]);
    let pids_before = eventually(patience(), "4 tasks running", || {
        let pids = crate::util::processes_of(&program);
        if pids.len() == 4 {
            Ok(pids)
        } else {
            Err(format!("{pids:?}"))
        }
    });
    let before = managers[0].ok(&["swarm", "ca"]);
    let old_root = pem_in(&before);
    let old_fingerprint = fingerprint_in(&before);
    let old_token = managers[0].worker_token();
    let old_worker_creds = NodeCredentials::read_in_place(&workers[0].data_dir).unwrap();
    assert!(shoal_security::ca::issued_by(
        &old_worker_creds.cert_pem,
        &old_root
    ));

    let nodes: Vec<&Daemon> = managers.iter().chain(workers.iter()).collect();
    let (output, failures) = under_load(&managers, &nodes, || {
        // Through a follower (or the leader: whichever manager2 is), and
        // waiting, as an operator would, until the rotation completes.
        let child = managers[1].spawn_shoal(&["swarm", "ca", "--rotate"]);
        let mut child = Some(child);
        let output = eventually(patience() * 4, "`swarm ca --rotate` to complete", || {
            let running = child.as_mut().unwrap();
            match running.try_wait() {
                Ok(Some(_)) => Ok(child.take().unwrap().wait_with_output().unwrap()),
                other => Err(format!("{other:?}")),
            }
        });
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("root CA rotation complete"), "{stdout}");
        assert!(
            stdout.contains("rotated TLS certificates:  5/5 nodes"),
            "{stdout}"
        );
        let new_root = pem_in(&stdout);
        // Every node ends with a certificate of the new root and trusts
        // the new root alone (the old one is dropped everywhere).
        eventually(patience(), "every node on the new root alone", || {
            for node in &nodes {
                let creds = NodeCredentials::read_in_place(&node.data_dir)
                    .map_err(|e| format!("{}: {e}", node.name))?;
                if !shoal_security::ca::issued_by(&creds.cert_pem, &new_root) {
                    return Err(format!("{}: certificate not of the new root", node.name));
                }
                if !shoal_security::ca::same_bundle(&creds.ca_pem, &new_root) {
                    return Err(format!(
                        "{} trusts {} roots",
                        node.name,
                        shoal_security::ca::split_pem(&creds.ca_pem).len()
                    ));
                }
            }
            Ok(())
        });
        stdout
    });
    assert!(failures.is_empty(), "during the rotation: {failures:#?}");
    assert_eq!(
        crate::util::processes_of(&program),
        pids_before,
        "the tasks' processes are the ones started before the rotation"
    );
    let new_root = pem_in(&output);
    assert_ne!(new_root, old_root);
    let after = managers[2].ok(&["swarm", "ca"]);
    assert_eq!(fingerprint_in(&after), fingerprint_in(&output));
    assert_ne!(fingerprint_in(&after), old_fingerprint);
    assert!(!after.contains("rotation in progress"), "{after}");
    // The join tokens name the new root.
    let new_token = managers[0].worker_token();
    assert_ne!(new_token, old_token);
    let digest = shoal_security::ca::digest_of_pem(&new_root).unwrap();
    assert!(new_token.contains(&digest), "{new_token}");

    // A client presenting a certificate of the old root is refused by every
    // manager; the same client with the worker's current certificate is
    // served (by the leader: the session is unknown; by a follower: it is
    // not the leader — either way the call got through).
    let current_worker_creds = NodeCredentials::read_in_place(&workers[0].data_dir).unwrap();
    let old_cert_new_trust = NodeCredentials {
        ca_pem: new_root.clone(),
        ..old_worker_creds
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for manager in &managers {
        let addr = manager.info()["NodeAddr"].as_str().unwrap().to_string();
        let current = runtime.block_on(heartbeat_with(&addr, &current_worker_creds));
        assert!(
            matches!(
                current,
                Ok(tonic::Code::NotFound) | Ok(tonic::Code::Unavailable)
            ),
            "{}: the current certificate got {current:?}",
            manager.name
        );
        // The daemon saves its new trust, then hands its listener the new
        // acceptor: what is on disk can lead the listener by a moment.
        eventually(
            patience(),
            "the old root's certificate refused",
            || match runtime.block_on(heartbeat_with(&addr, &old_cert_new_trust)) {
                Err(_) => Ok(()),
                old => Err(format!(
                    "{}: old root's certificate got {old:?}",
                    manager.name
                )),
            },
        );
    }
    // A node can join with the new token (and only it).
    let late = dir.daemon("worker3");
    let addr = managers[0].info()["NodeAddr"].as_str().unwrap().to_string();
    late.shoal(&[
        "swarm",
        "join",
        "--token",
        &old_token,
        "--advertise-addr",
        "127.0.0.23",
        &addr,
    ])
    .assert_error("does not hold the CA this token was issued for");
    late.join(&new_token, &addr, "127.0.0.23");
    let creds = NodeCredentials::read_in_place(&late.data_dir).unwrap();
    assert!(shoal_security::ca::issued_by(&creds.cert_pem, &new_root));
}
