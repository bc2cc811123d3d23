//! A cluster that stays closed to local users and to strangers on the
//! network: every file of a daemon is private, the socket admits only its
//! user (or the group named by `--group`), and a caller without a
//! certificate cannot make a manager read, let alone buffer, a message.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use shoal_proto::v1::control_client::ControlClient;
use shoal_proto::v1::ListNodesRequest;
use shoal_security::files::NodeCredentials;
use shoal_security::tls;
use tonic::codegen::http;

use crate::util::{eventually, marker_program, patience, privileged, shoal_bin, Run, TestDir};

/// `nobody` on Debian: a user with no rights to anything of ours.
const NOBODY: u32 = 65534;

/// Every path under `root`, directories included.
fn walk(root: &Path, into: &mut Vec<PathBuf>) {
    into.push(root.to_path_buf());
    if std::fs::symlink_metadata(root).is_ok_and(|m| m.is_dir()) {
        for entry in std::fs::read_dir(root).unwrap().flatten() {
            walk(&entry.path(), into);
        }
    }
}

/// Whether uid/gid `NOBODY` can read `path` (list it, for a directory):
/// actually tried, in a child process running as that user.
fn readable_by_nobody(path: &Path) -> bool {
    let meta = std::fs::symlink_metadata(path).unwrap();
    let mut command = if meta.is_dir() {
        let mut ls = Command::new("ls");
        ls.arg(path);
        ls
    } else {
        let mut cat = Command::new("cat");
        cat.arg(path);
        cat
    };
    command
        .uid(NOBODY)
        .gid(NOBODY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run as nobody")
        .success()
}

/// The CLI against `socket`, run as uid/gid `NOBODY`.
fn shoal_as_nobody(socket: &Path, args: &[&str]) -> Run {
    Run::from(
        Command::new(shoal_bin())
            .arg("-H")
            .arg(socket)
            .args(args)
            .env_remove("SHOAL_HOST")
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .expect("run shoal as nobody"),
    )
}

#[test]
fn no_file_of_any_daemon_is_readable_by_another_user_and_the_socket_only_by_its_group() {
    if !privileged(
        "no_file_of_any_daemon_is_readable_by_another_user_and_the_socket_only_by_its_group",
    ) {
        return;
    }
    let dir = TestDir::new();
    // The test dir itself is open to everyone, so that only the daemon's own
    // permissions stand between `nobody` and its files.
    std::fs::set_permissions(dir.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let program = marker_program(&dir);
    let manager = dir.daemon("manager");
    let addr = manager.init();
    let token = manager.worker_token();
    let worker = dir.daemon_with_args("worker", &["--group", &NOBODY.to_string()]);
    worker.join(&token, &addr, "127.0.0.2");
    manager.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "db",
        "--replicas",
        "2",
        "--env",
        "PASSWORD=hunter2",
        "--runtime",
        "process",
        program.to_str().unwrap(),
        "3600",
    ]);
    eventually(patience(), "2 tasks running", || {
        let running = manager.running_tasks("db").len();
        (running == 2)
            .then_some(())
            .ok_or(format!("{running} running"))
    });

    // The check can fail: a file the test leaves open is readable.
    let open = dir.dir.path().join("open.txt");
    std::fs::write(&open, "x").unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(readable_by_nobody(&open), "the probe itself must work");

    let mut paths = Vec::new();
    for daemon in [&manager, &worker] {
        walk(&daemon.data_dir, &mut paths);
    }
    assert!(
        paths.iter().any(|p| p.ends_with("task.json")),
        "the walk must reach the tasks' files: {paths:?}"
    );
    assert!(
        paths.iter().any(|p| p.ends_with("node.key")),
        "the walk must reach the keys: {paths:?}"
    );
    let readable: Vec<&PathBuf> = paths.iter().filter(|p| readable_by_nobody(p)).collect();
    assert!(
        readable.is_empty(),
        "readable by uid {NOBODY}: {readable:?}"
    );
    // Not even the top of a data dir can be entered.
    for daemon in [&manager, &worker] {
        let mode = std::fs::metadata(&daemon.data_dir)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700, "{}", daemon.data_dir.display());
    }

    // The manager's socket: its user only, and the refusal says why.
    let refused = shoal_as_nobody(&manager.socket, &["info"]);
    refused.assert_error("permission denied");
    // The worker's: its user and the group `--group` named.
    let admitted = shoal_as_nobody(&worker.socket, &["info", "--format", "json"]);
    assert_eq!(admitted.status, 0, "{}", admitted.stderr);
}

#[test]
fn an_existing_installation_is_made_private_on_start() {
    let dir = TestDir::new();
    let mut manager = dir.daemon("manager");
    manager.init();
    manager.terminate();
    // As an older release left it: world-readable state and credentials.
    let key = manager.data_dir.join("certs/node.key");
    let state = manager.data_dir.join("state.json");
    for path in [&manager.data_dir, &manager.data_dir.join("certs")] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for path in [&key, &state] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    manager.start();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&manager.data_dir), 0o700);
    assert_eq!(mode(&manager.data_dir.join("certs")), 0o700);
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&state), 0o600);
    let log = std::fs::read_to_string(&manager.log).unwrap();
    assert!(
        log.contains("made files of the data dir private"),
        "the daemon says once that it tightened them: {}",
        manager.log_tail()
    );
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// A gRPC request body that announces a message of almost 4 GiB and then
/// streams up to `send` bytes of it, a MiB at a time, as fast as the
/// server takes them.
fn giant_message_body(send: usize) -> tonic::body::BoxBody {
    use http_body_util::BodyExt;
    const CHUNK: usize = 1024 * 1024;
    let chunks = futures::stream::unfold(0usize, move |sent| async move {
        if sent >= send {
            return None;
        }
        let mut chunk = vec![0u8; CHUNK];
        if sent == 0 {
            // gRPC framing: not compressed, then a big-endian u32 length.
            chunk[..5].copy_from_slice(&[0, 0xFF, 0xFF, 0xFF, 0xF0]);
        }
        Some((
            Ok::<_, tonic::Status>(http_body::Frame::data(bytes::Bytes::from(chunk))),
            sent + CHUNK,
        ))
    });
    http_body_util::StreamBody::new(chunks).boxed_unsync()
}

/// Sends one giant Raft call without a certificate; returns the gRPC status
/// code of the answer, or `None` if the connection was closed instead.
async fn giant_raft_call_without_certificate(addr: &str, ca_pem: &str) -> Option<String> {
    use tower::ServiceExt;
    let channel = tls::endpoint(addr, Duration::from_secs(5))
        .unwrap()
        .tls_config(tls::ca_only_client_config(ca_pem))
        .unwrap()
        .connect()
        .await
        .ok()?;
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("https://{addr}/shoal.v1.Raft/AppendEntries"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(giant_message_body(64 * 1024 * 1024))
        .unwrap();
    // Before the gate, the manager kept reading (and buffering) the body and
    // no answer came: the timeout makes that a failure, not a hang.
    let response = tokio::time::timeout(Duration::from_secs(10), channel.oneshot(request))
        .await
        .expect("the manager must answer at once, not read the message")
        .ok()?;
    response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_giant_message_without_a_certificate_is_refused_before_it_is_read() {
    let dir = TestDir::new();
    let (manager, workers, addr) = tokio::task::block_in_place(|| crate::util::cluster(&dir, 1));
    let creds = NodeCredentials::read_in_place(&manager.data_dir).unwrap();
    let pid = manager.pid().unwrap();
    let before = rss_kib(pid);

    // One call: refused as unauthenticated (gRPC code 16), nothing buffered.
    let code = giant_raft_call_without_certificate(&addr, &creds.ca_pem).await;
    assert_eq!(code.as_deref(), Some("16"), "UNAUTHENTICATED expected");
    let after_one = rss_kib(pid);
    assert!(
        after_one < before + 8 * 1024,
        "RSS grew from {before} KiB to {after_one} KiB for one refused call"
    );

    // A hundred at once: each is refused or its connection closed, and the
    // manager goes on serving its nodes meanwhile.
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let (addr, ca) = (addr.clone(), creds.ca_pem.clone());
            tokio::spawn(async move { giant_raft_call_without_certificate(&addr, &ca).await })
        })
        .collect();
    let trusted = connect_as(&addr, &creds).await;
    let nodes = ControlClient::new(trusted)
        .list_nodes(ListNodesRequest {})
        .await
        .expect("a manager certificate is served during the flood")
        .into_inner()
        .nodes;
    assert_eq!(nodes.len(), 2);
    for call in calls {
        let code = call.await.unwrap();
        assert!(
            code.is_none() || code.as_deref() == Some("16"),
            "a call without a certificate got {code:?}"
        );
    }
    let after_many = rss_kib(pid);
    assert!(
        after_many < before + 64 * 1024,
        "RSS grew from {before} KiB to {after_many} KiB for 100 refused calls"
    );
    tokio::task::block_in_place(|| {
        eventually(patience(), "the worker still Ready", || {
            match manager.node_status(&workers[0].name).as_deref() {
                Some("Ready") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
    });
}

/// A node's saved credentials, as someone who copied them would keep them.
fn saved_credentials(daemon: &crate::util::Daemon) -> NodeCredentials {
    NodeCredentials::read_in_place(&daemon.data_dir).unwrap()
}

async fn connect_as(addr: &str, creds: &NodeCredentials) -> tonic::transport::Channel {
    crate::mtls::channel(addr, tls::client_config(creds))
        .await
        .unwrap()
}

/// A bincode-encoded Raft vote request from candidate `raft_id`.
fn vote_from(raft_id: u64) -> shoal_proto::v1::RaftMessage {
    let vote = openraft::raft::VoteRequest::<u64> {
        vote: openraft::Vote::new(1_000_000, raft_id),
        last_log_id: None,
    };
    shoal_proto::v1::RaftMessage {
        data: bincode::serialize(&vote).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn demoted_removed_and_impersonating_certificates_are_refused_where_they_lost_the_right() {
    use shoal_proto::v1::dispatcher_client::DispatcherClient;
    use shoal_proto::v1::log_broker_client::LogBrokerClient;
    use shoal_proto::v1::logs_client::LogsClient;
    use shoal_proto::v1::raft_client::RaftClient;
    use shoal_proto::v1::{ServiceLogsRequest, SessionRequest, SubscriptionsRequest};
    use tonic::Code;

    let dir = TestDir::new();
    let (managers, mut workers) =
        tokio::task::block_in_place(|| crate::util::managers_cluster(&dir, 3, 1));
    let addr = managers[0].info()["NodeAddr"].as_str().unwrap().to_string();
    let leader_creds = saved_credentials(&managers[0]);
    let demoted_creds = saved_credentials(&managers[2]);
    let removed_creds = saved_credentials(&workers[0]);

    // A manager may speak in Raft only as its own member.
    let own: serde_json::Value =
        serde_json::from_slice(&std::fs::read(managers[0].data_dir.join("state.json")).unwrap())
            .unwrap();
    let own_raft_id = own["raft_id"].as_u64().unwrap();
    let leader = connect_as(&addr, &leader_creds).await;
    let status = RaftClient::new(leader.clone())
        .vote(vote_from(own_raft_id + 1))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("sent a message as raft member"),
        "{status:?}"
    );
    // Its own ID passes the check (the vote itself is refused by Raft, not by us).
    let answered = RaftClient::new(leader).vote(vote_from(own_raft_id)).await;
    assert!(
        answered
            .as_ref()
            .map_or_else(|s| s.code() != Code::PermissionDenied, |_| true),
        "{answered:?}"
    );

    // The demoted manager's old manager certificate: no Raft, control or logs.
    let demoted_name = managers[2].name.clone();
    tokio::task::block_in_place(|| {
        managers[0].ok(&["node", "demote", &demoted_name]);
        eventually(patience(), "the demoted node listed as a worker", || {
            let nodes = managers[0].nodes();
            let node = nodes
                .iter()
                .find(|n| n["Hostname"] == demoted_name.as_str());
            match node.map(|n| n["ManagerStatus"].clone()) {
                Some(serde_json::Value::String(s)) if !s.is_empty() => Err(s),
                _ => Ok(()),
            }
        });
    });
    let demoted = connect_as(&addr, &demoted_creds).await;
    let refused = [
        RaftClient::new(demoted.clone())
            .vote(vote_from(1))
            .await
            .map(|_| ())
            .unwrap_err(),
        ControlClient::new(demoted.clone())
            .list_nodes(ListNodesRequest {})
            .await
            .map(|_| ())
            .unwrap_err(),
        LogsClient::new(demoted)
            .service_logs(ServiceLogsRequest {
                target: "anything".into(),
                options: None,
            })
            .await
            .map(|_| ())
            .unwrap_err(),
    ];
    for status in refused {
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    }

    // The removed worker's certificate: no session, no log subscriptions.
    let worker_name = workers[0].name.clone();
    workers[0].kill();
    tokio::task::block_in_place(|| {
        managers[0].ok(&["node", "rm", "--force", &worker_name]);
    });
    let removed = connect_as(&addr, &removed_creds).await;
    let session = DispatcherClient::new(removed.clone())
        .session(SessionRequest { description: None })
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(session.code(), Code::PermissionDenied, "{session:?}");
    let subscriptions = LogBrokerClient::new(removed)
        .subscriptions(SubscriptionsRequest {
            session_id: "any".into(),
        })
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(
        subscriptions.code(),
        Code::PermissionDenied,
        "{subscriptions:?}"
    );
}

/// A TLS listener that serves whatever credentials it is given and counts,
/// per credentials generation, the handshakes clients completed and those
/// they refused. It speaks nothing after the handshake: a node that accepts
/// its certificate sends its first call and sees the connection close.
struct StandInManager {
    addr: String,
    generation: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    acceptor: std::sync::Arc<std::sync::Mutex<tokio_rustls::TlsAcceptor>>,
    /// (generation, completed) per handshake.
    handshakes: std::sync::Arc<std::sync::Mutex<Vec<(usize, bool)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl StandInManager {
    async fn start(ip: &str, creds: &NodeCredentials) -> Self {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let acceptor =
            std::sync::Arc::new(std::sync::Mutex::new(tls::server_acceptor(creds).unwrap()));
        let generation = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let handshakes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let (acceptor, generation, handshakes) =
                (acceptor.clone(), generation.clone(), handshakes.clone());
            async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let (tls, serving) = {
                        let tls = acceptor.lock().unwrap().clone();
                        (tls, generation.load(std::sync::atomic::Ordering::SeqCst))
                    };
                    let handshakes = handshakes.clone();
                    tokio::spawn(async move {
                        let completed = tls.accept(tcp).await.is_ok();
                        handshakes.lock().unwrap().push((serving, completed));
                    });
                }
            }
        });
        StandInManager {
            addr,
            generation,
            acceptor,
            handshakes,
            task,
        }
    }

    /// Serves `creds` from the next connection on; returns the new generation.
    fn serve(&self, creds: &NodeCredentials) -> usize {
        let mut acceptor = self.acceptor.lock().unwrap();
        *acceptor = tls::server_acceptor(creds).unwrap();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1
    }

    /// (completed, refused) handshakes of `generation`.
    fn counts(&self, generation: usize) -> (usize, usize) {
        let handshakes = self.handshakes.lock().unwrap();
        let of = handshakes.iter().filter(|(g, _)| *g == generation);
        let completed = of.clone().filter(|(_, ok)| *ok).count();
        (completed, of.count() - completed)
    }
}

impl Drop for StandInManager {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_refuses_a_demoted_managers_old_certificate_as_a_manager() {
    let dir = TestDir::new();
    let (managers, mut workers) =
        tokio::task::block_in_place(|| crate::util::managers_cluster(&dir, 3, 1));
    let demoted_id = managers[2].info()["NodeID"].as_str().unwrap().to_string();
    let demoted_addr = managers[2].info()["NodeAddr"].as_str().unwrap().to_string();
    let demoted_creds = saved_credentials(&managers[2]);
    let current_creds = saved_credentials(&managers[1]);
    let demoted_name = managers[2].name.clone();
    let worker = &mut workers[0];

    // The demotion reaches the worker over its session: the manager list
    // it holds no longer has the demoted node.
    tokio::task::block_in_place(|| {
        managers[0].ok(&["node", "demote", &demoted_name]);
        eventually(patience(), "the worker told of the demotion", || {
            let managers = worker.info()["RemoteManagers"].clone();
            let listed = managers
                .as_array()
                .is_some_and(|list| list.iter().any(|m| m == demoted_addr.as_str()));
            if managers.as_array().is_some_and(|l| l.len() == 2) && !listed {
                Ok(())
            } else {
                Err(managers.to_string())
            }
        });
        worker.terminate();
    });
    let state_path = worker.data_dir.join("state.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    let ids = state["manager_ids"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 2, "{state}");
    assert!(!ids.iter().any(|id| id == demoted_id.as_str()), "{state}");

    // The worker's only known manager address is a stand-in listener: first
    // with a current manager's certificate, which the worker accepts (so the
    // probe can see acceptance), then with the demoted manager's old one.
    let stand_in = StandInManager::start("127.0.0.40", &current_creds).await;
    state["managers"] = serde_json::json!([stand_in.addr]);
    std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    tokio::task::block_in_place(|| {
        worker.start();
        eventually(
            patience(),
            "the worker accepting a manager's certificate",
            || match stand_in.counts(0) {
                (completed, _) if completed >= 1 => Ok(()),
                counts => Err(format!("{counts:?}")),
            },
        );
    });
    let demoted_generation = stand_in.serve(&demoted_creds);
    tokio::task::block_in_place(|| {
        eventually(
            patience(),
            "the worker refusing the demoted manager's certificate",
            || {
                let log = std::fs::read_to_string(&worker.log).unwrap_or_default();
                let said = log.contains(&format!(
                    "node {demoted_id} holds a manager certificate but is not a manager"
                ));
                match stand_in.counts(demoted_generation) {
                    (0, refused) if refused >= 2 && said => Ok(()),
                    counts => Err(format!("{counts:?}, logged: {said}")),
                }
            },
        );
    });
    assert_eq!(stand_in.counts(demoted_generation).0, 0);
    assert_eq!(worker.info()["SessionUp"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_manager_admits_only_the_managers_it_was_told_of_until_it_has_state() {
    use shoal_proto::v1::raft_client::RaftClient;
    use tonic::Code;

    let dir = TestDir::new();
    let (managers, _) = tokio::task::block_in_place(|| crate::util::managers_cluster(&dir, 3, 0));
    let addr = managers[0].info()["NodeAddr"].as_str().unwrap().to_string();
    let member_creds = saved_credentials(&managers[0]);
    let own: serde_json::Value =
        serde_json::from_slice(&std::fs::read(managers[0].data_dir.join("state.json")).unwrap())
            .unwrap();
    let member_raft_id = own["raft_id"].as_u64().unwrap();
    let demoted_creds = saved_credentials(&managers[2]);
    let demoted_name = managers[2].name.clone();
    let token = tokio::task::block_in_place(|| {
        managers[0].ok(&["node", "demote", &demoted_name]);
        eventually(patience(), "the demoted node listed as a worker", || {
            let nodes = managers[0].nodes();
            let row = nodes
                .iter()
                .find(|n| n["Hostname"] == demoted_name.as_str())
                .cloned()
                .unwrap_or_default();
            if row["ManagerStatus"] == "" {
                Ok(())
            } else {
                Err(row.to_string())
            }
        });
        let program = crate::util::marker_program(&dir);
        managers[0].ok(&[
            "service",
            "create",
            "-d",
            "--name",
            "marker",
            "--runtime",
            "process",
            program.to_str().unwrap(),
            "3600",
        ]);
        managers[0]
            .ok(&["swarm", "join-token", "-q", "manager"])
            .trim()
            .to_string()
    });

    // A new manager that the leader cannot reach (it advertises an address
    // nothing listens on) stays without state for as long as the join
    // tries: the window in which it used to admit any CA-signed manager
    // certificate.
    let port = std::net::TcpListener::bind("127.0.0.4:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.4:{port}");
    let fresh = dir.daemon("manager4");
    let mut joining = fresh.spawn_shoal(&[
        "swarm",
        "join",
        "--token",
        &token,
        "--listen-addr",
        &listen,
        "--advertise-addr",
        "127.0.0.5",
        &addr,
    ]);
    let vote = |creds: NodeCredentials, raft_id: u64| {
        let listen = listen.clone();
        async move {
            let channel = crate::mtls::channel(&listen, tls::client_config(&creds))
                .await
                .map_err(|e| tls::error_chain(&e))?;
            Ok::<_, String>(
                RaftClient::new(channel)
                    .vote(vote_from(raft_id))
                    .await
                    .map(|_| ()),
            )
        }
    };
    // The demoted manager's old certificate: CA-signed, manager role, but
    // not one of the managers the join response named.
    let mut refused = None;
    let deadline = std::time::Instant::now() + patience();
    while refused.is_none() && std::time::Instant::now() < deadline {
        match vote(demoted_creds.clone(), 1).await {
            Ok(answer) => refused = Some(answer),
            // Not listening yet: the join has not got its certificate.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let status = refused
        .expect("the fresh manager never listened")
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("no swarm state yet"),
        "{status:?}"
    );
    // A current manager's certificate passes the check (Raft itself answers).
    let member = vote(member_creds, member_raft_id).await.unwrap();
    assert!(
        member
            .as_ref()
            .map_or_else(|s| s.code() != Code::PermissionDenied, |_| true),
        "{member:?}"
    );
    // Both answers came while the fresh manager had no state: its own
    // replica does not have the service every other manager has.
    tokio::task::block_in_place(|| {
        let has_marker = |daemon: &crate::util::Daemon| {
            let run = daemon.shoal(&["service", "ls", "--local", "--format", "json"]);
            run.status == 0 && run.stdout.contains("marker")
        };
        assert!(has_marker(&managers[1]), "the probe must see the service");
        assert!(!has_marker(&fresh), "the fresh manager had state");
    });
    let _ = joining.kill();
    let _ = joining.wait();
}
