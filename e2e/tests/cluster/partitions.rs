//! Partitions on network-namespace hosts (issue 14), with silent drops (see
//! `netns`): the leader's host cut off (three times in one run), the
//! leader's packets dropped one way only (each direction), and a worker's
//! host cut off — while the tests sample what a user would see: node
//! states, task processes by PID on every host, and the answers to writes
//! issued at the cut.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::netns::{Cut, NetCluster};
use crate::util::*;

const REPLICAS: usize = 6;

/// Whether process `pid` is alive (not gone, not a zombie).
fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rfind(')').and_then(|i| stat[i + 2..].chars().next());
    state.is_some_and(|s| s != 'Z')
}

/// `node ls` through `via`, or why it failed (reads may fail mid-election).
fn nodes(via: &Daemon) -> Result<Vec<serde_json::Value>, String> {
    let run = via.shoal(&["node", "ls", "--format", "json"]);
    if run.status != 0 {
        return Err(run.stderr);
    }
    Ok(run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// Tasks of `web` desired and observed Running, through `via`.
fn running(via: &Daemon) -> Result<Vec<serde_json::Value>, String> {
    let run = via.shoal(&["service", "ps", "--no-trunc", "--format", "json", "web"]);
    if run.status != 0 {
        return Err(run.stderr);
    }
    Ok(run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|t| {
            t["DesiredState"] == "Running"
                && t["CurrentState"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("Running")
        })
        .collect())
}

/// One write's answer: `None` for success, else its stderr; and how long it took.
pub type Answer = (Option<String>, Duration);

/// Writes (creates of 0-replica services) through the manager at `socket`,
/// one after another until `stop`; `done` counts answered writes.
pub fn writer(
    socket: PathBuf,
    prefix: String,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<Vec<(Instant, Answer)>> {
    std::thread::spawn(move || {
        let mut answers = Vec::new();
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            i += 1;
            let name = format!("{prefix}w{i}");
            let started = Instant::now();
            let run = Run::from(
                std::process::Command::new(shoal_bin())
                    .arg("-H")
                    .arg(&socket)
                    .env_remove("SHOAL_HOST")
                    .args(["service", "create", "-d", "--name", &name])
                    .args(["--replicas", "0", "--runtime", "process", "true"])
                    .output()
                    .expect("shoal runs"),
            );
            let answer = (run.status != 0).then(|| run.stderr.trim().to_string());
            answers.push((started, (answer, started.elapsed())));
            done.fetch_add(1, Ordering::SeqCst);
        }
        answers
    })
}

/// What one sample found wrong, if anything: a reachable node Down, a
/// healthy host's replica stopped, or more task processes than allowed.
fn check_sample(
    via: &Daemon,
    isolated: &str,
    healthy_pids: &[(String, i32)],
    program: &Path,
    max_processes: usize,
) {
    // A read during the election may fail; the next sample looks again.
    if let Ok(nodes) = nodes(via) {
        for node in &nodes {
            assert!(
                node["Hostname"] == isolated || node["Status"] != "Down",
                "a reachable node was marked Down: {nodes:?}"
            );
        }
    }
    for (host, pid) in healthy_pids {
        assert!(
            alive(*pid),
            "replica PID {pid} on healthy host {host} was stopped"
        );
    }
    let live = processes_of(program);
    assert!(
        live.len() <= max_processes,
        "{} live task processes, more than {max_processes}: {live:?}",
        live.len()
    );
}

/// Cutting off the leader's host (three times): no reachable node is ever
/// marked Down, no replica on a healthy host is stopped, live task processes
/// never exceed the desired count plus the isolated host's own, and after
/// healing exactly the desired count runs. Writes through a majority-side
/// manager at the cut are answered, by success or a retryable error, within
/// the bound below.
#[test]
fn cutting_off_the_leaders_host_harms_no_healthy_node() {
    if !privileged("cutting_off_the_leaders_host_harms_no_healthy_node") {
        return;
    }
    leader_cut(Cut::Both, 3);
}

/// The leader's outgoing packets dropped, incoming ones passing: it hears
/// the new leader's higher term but nobody hears it. The same guarantees as
/// a full cut.
#[test]
fn dropping_the_leaders_outgoing_packets_harms_no_healthy_node() {
    if !privileged("dropping_the_leaders_outgoing_packets_harms_no_healthy_node") {
        return;
    }
    leader_cut(Cut::Outgoing, 2);
}

/// The leader's incoming packets dropped, outgoing ones passing: it goes on
/// sending (until TCP stalls for want of acknowledgements) and never hears
/// that another leader was elected. The same guarantees as a full cut.
#[test]
fn dropping_the_leaders_incoming_packets_harms_no_healthy_node() {
    if !privileged("dropping_the_leaders_incoming_packets_harms_no_healthy_node") {
        return;
    }
    leader_cut(Cut::Incoming, 2);
}

/// Cuts the leader's host off with `cut_kind`, `rounds` times (each time the
/// current leader's), checking the guarantees above throughout.
fn leader_cut(cut_kind: Cut, rounds: usize) {
    let cluster = NetCluster::new();
    let program = marker_program(&cluster.dir);
    let hosts = cluster.hosts();
    hosts[0].ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        &REPLICAS.to_string(),
        "--runtime",
        "process",
        program.to_str().unwrap(),
        "3600",
    ]);
    let mut all_answers: Vec<Answer> = Vec::new();
    for round in 0..rounds {
        let leader = eventually(patience(), "a leader", || {
            cluster.leader_host(None).ok_or("none".to_string())
        });
        let isolated = format!("h{leader}");
        // A majority-side manager to watch and write through.
        let via = cluster
            .managers
            .iter()
            .find(|m| m.name != isolated)
            .expect("another manager");
        let baseline = eventually(
            patience(),
            "every replica running, every node Ready",
            || {
                let nodes = nodes(via)?;
                let tasks = running(via)?;
                let live = processes_of(&program);
                if nodes.iter().all(|n| n["Status"] == "Ready")
                    && tasks.len() == REPLICAS
                    && live.len() == REPLICAS
                {
                    Ok(tasks)
                } else {
                    Err(format!("{nodes:?}; {tasks:?}; {live:?}"))
                }
            },
        );
        let mut healthy_pids = Vec::new();
        let mut isolated_own = 0;
        for task in &baseline {
            let node = task["Node"].as_str().unwrap_or_default();
            if node == isolated {
                isolated_own += 1;
                continue;
            }
            let host = hosts.iter().find(|h| h.name == node).expect("task's host");
            let id = task["ID"].as_str().expect("task id");
            let pid = eventually(patience(), "the task's PID file", || {
                host.task_pid(id).ok_or(format!("no pid for {id}"))
            });
            healthy_pids.push((node.to_string(), pid));
        }
        let max_processes = REPLICAS + isolated_own;

        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let writes = writer(
            via.socket.clone(),
            format!("r{round}"),
            stop.clone(),
            done.clone(),
        );
        // The writer is under way (one write answered), so writes are in
        // flight when the cut comes.
        eventually(patience(), "a first write", || {
            (done.load(Ordering::SeqCst) > 0)
                .then_some(())
                .ok_or("none".to_string())
        });
        cluster.net.cut_with(leader, cut_kind);
        let cut = Instant::now();

        // Watch until the isolated host is Down and its replicas run
        // elsewhere: by then every reachable node has had the same grace
        // since the new leader took over, and outlived it.
        eventually(
            patience(),
            "the isolated host Down, its replicas elsewhere",
            || {
                check_sample(via, &isolated, &healthy_pids, &program, max_processes);
                let down = nodes(via)?
                    .iter()
                    .any(|n| n["Hostname"] == isolated.as_str() && n["Status"] == "Down");
                let tasks = running(via)?;
                let elsewhere = tasks.iter().all(|t| t["Node"] != isolated.as_str());
                if down && tasks.len() == REPLICAS && elsewhere {
                    Ok(())
                } else {
                    Err(format!("down {down}; {tasks:?}"))
                }
            },
        );
        stop.store(true, Ordering::SeqCst);
        let answers = writes.join().expect("writer thread");
        let acknowledged_after_cut = answers
            .iter()
            .any(|(started, (answer, _))| *started > cut && answer.is_none());
        assert!(
            acknowledged_after_cut,
            "no write acknowledged after the cut: {answers:?}"
        );
        all_answers.extend(answers.into_iter().map(|(_, a)| a));

        cluster.net.heal(leader);
        eventually(
            patience(),
            "exactly the desired count after healing",
            || {
                check_sample(via, &isolated, &healthy_pids, &program, max_processes);
                let nodes = nodes(via)?;
                let tasks = running(via)?;
                let live = processes_of(&program);
                if nodes.iter().all(|n| n["Status"] == "Ready")
                    && tasks.len() == REPLICAS
                    && live.len() == REPLICAS
                {
                    Ok(())
                } else {
                    Err(format!("{nodes:?}; {} tasks; {live:?}", tasks.len()))
                }
            },
        );
        let hosts_used: BTreeSet<String> = via
            .running_tasks("web")
            .iter()
            .map(|t| t["Node"].to_string())
            .collect();
        eprintln!(
            "{cut_kind:?} round {round}: cut h{leader} ({isolated_own} of its own), healed; replicas on {hosts_used:?}"
        );
    }

    let failures: Vec<&Answer> = all_answers.iter().filter(|(a, _)| a.is_some()).collect();
    for (answer, took) in &failures {
        let answer = answer.as_deref().unwrap_or_default();
        assert!(
            answer.starts_with("Error: ") && answer.contains("retry"),
            "a write failing at the cut must say to retry ({took:?}): {answer}"
        );
    }
    // A functional timeout, not a speed check: before issue 14 a write in
    // flight at the cut hung until the old leader's 10 s commit timeout;
    // now it is retried against the new leader within about the election
    // time. The bound is loose so a slow machine passes; 10 s would fail.
    let slowest = all_answers
        .iter()
        .map(|(_, t)| *t)
        .max()
        .unwrap_or_default();
    assert!(
        slowest < Duration::from_secs(5),
        "a write took {slowest:?}: {all_answers:?}"
    );
    eprintln!(
        "{cut_kind:?}: {} writes over {rounds} cuts, {} failed (retryable), slowest {slowest:?}",
        all_answers.len(),
        failures.len()
    );
}

/// Cutting off a worker's host (each worker once, the one with the most
/// replicas first): the worker is marked Down only after its heartbeat
/// grace, no other node is, its replicas run again on reachable nodes (no
/// replica elsewhere stopped), and once the cut heals the worker comes back
/// Ready and stops the tasks the managers moved away: exactly the desired
/// count of task processes, none of the worker's old ones left.
#[test]
fn cutting_off_a_workers_host_moves_its_replicas_and_leaves_no_duplicate() {
    if !privileged("cutting_off_a_workers_host_moves_its_replicas_and_leaves_no_duplicate") {
        return;
    }
    // The default heartbeat: 1 s, Down after 3 missed periods. The last
    // heartbeat the leader got may be up to a period old at the cut, so a
    // Down seen sooner than two periods after it came too early (the slack
    // covers the expiry check's quarter-period tick).
    let too_early = Duration::from_millis(2 * 1000 - 100);
    let cluster = NetCluster::new();
    let program = marker_program(&cluster.dir);
    let hosts = cluster.hosts();
    let via = &cluster.managers[0];
    via.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        &REPLICAS.to_string(),
        "--runtime",
        "process",
        program.to_str().unwrap(),
        "3600",
    ]);
    let mut cut_so_far: Vec<String> = Vec::new();
    for round in 0..cluster.workers.len() {
        let baseline = eventually(
            patience(),
            "every replica running, every node Ready",
            || {
                let nodes = nodes(via)?;
                let tasks = running(via)?;
                let live = processes_of(&program);
                if nodes.len() == 5
                    && nodes.iter().all(|n| n["Status"] == "Ready")
                    && tasks.len() == REPLICAS
                    && live.len() == REPLICAS
                {
                    Ok(tasks)
                } else {
                    Err(format!("{nodes:?}; {tasks:?}; {live:?}"))
                }
            },
        );
        // The worker not cut yet with the most replicas (nothing is
        // rebalanced onto a worker that came back empty).
        let on = |name: &str| baseline.iter().filter(|t| t["Node"] == name).count();
        let worker = cluster
            .workers
            .iter()
            .filter(|w| !cut_so_far.contains(&w.name))
            .max_by_key(|w| on(&w.name))
            .expect("a worker not cut yet");
        let isolated = worker.name.clone();
        let host: u8 = isolated[1..].parse().expect("hN");
        assert!(
            on(&isolated) > 0,
            "round {round}: worker {isolated} runs no replica to move: {baseline:?}"
        );
        let mut healthy_pids = Vec::new();
        let mut isolated_pids = Vec::new();
        for task in &baseline {
            let node = task["Node"].as_str().unwrap_or_default();
            let daemon = hosts.iter().find(|h| h.name == node).expect("task's host");
            let id = task["ID"].as_str().expect("task id");
            let pid = eventually(patience(), "the task's PID file", || {
                daemon.task_pid(id).ok_or(format!("no pid for {id}"))
            });
            if node == isolated {
                isolated_pids.push(pid);
            } else {
                healthy_pids.push((node.to_string(), pid));
            }
        }
        let max_processes = REPLICAS + isolated_pids.len();

        cluster.net.cut(host);
        let cut = Instant::now();
        let mut down_after = None;
        eventually(
            patience(),
            "the cut worker Down, its replicas on reachable nodes",
            || {
                check_sample(via, &isolated, &healthy_pids, &program, max_processes);
                let down = nodes(via)?
                    .iter()
                    .any(|n| n["Hostname"] == isolated.as_str() && n["Status"] == "Down");
                if down && down_after.is_none() {
                    down_after = Some(cut.elapsed());
                }
                let tasks = running(via)?;
                let elsewhere = tasks.iter().all(|t| t["Node"] != isolated.as_str());
                if down && tasks.len() == REPLICAS && elsewhere {
                    Ok(())
                } else {
                    Err(format!("down {down}; {tasks:?}"))
                }
            },
        );
        let down_after = down_after.expect("seen Down");
        assert!(
            down_after >= too_early,
            "worker {isolated} was marked Down {down_after:?} after the cut, before its heartbeat grace"
        );

        cluster.net.heal(host);
        eventually(
            patience(),
            "the worker back, its old tasks stopped, exactly the desired count",
            || {
                check_sample(via, &isolated, &healthy_pids, &program, max_processes);
                let nodes = nodes(via)?;
                let tasks = running(via)?;
                let live = processes_of(&program);
                let leftovers: Vec<&i32> = isolated_pids.iter().filter(|p| alive(**p)).collect();
                if nodes.iter().all(|n| n["Status"] == "Ready")
                    && tasks.len() == REPLICAS
                    && live.len() == REPLICAS
                    && leftovers.is_empty()
                {
                    Ok(())
                } else {
                    Err(format!(
                        "{nodes:?}; {} tasks; live {live:?}; the worker's old tasks still running: {leftovers:?}",
                        tasks.len()
                    ))
                }
            },
        );
        eprintln!(
            "round {round}: cut {isolated} ({} of its own), Down after {down_after:?}, healed",
            isolated_pids.len()
        );
        cut_so_far.push(isolated);
    }
}

/// A gRPC client on a daemon's unix socket, with the runtime it runs on.
fn control_client(
    socket: &Path,
) -> (
    tokio::runtime::Runtime,
    shoal_proto::v1::control_client::ControlClient<tonic::transport::Channel>,
) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let path = socket.to_path_buf();
    let channel = runtime
        .block_on(
            tonic::transport::Endpoint::from_static("http://shoal.local").connect_with_connector(
                tower::service_fn(move |_: tonic::transport::Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                            tokio::net::UnixStream::connect(path).await?,
                        ))
                    }
                }),
            ),
        )
        .expect("daemon socket");
    (
        runtime,
        shoal_proto::v1::control_client::ControlClient::new(channel),
    )
}

/// An update forwarded by a follower that commits on the leader but whose
/// answer is lost (the leader's replies to that follower dropped, then the
/// leader's host cut off) is answered as the success it was, not as a
/// version conflict with itself when the follower sends it again to the
/// new leader.
#[test]
fn an_update_committed_before_its_answer_was_lost_succeeds() {
    if !privileged("an_update_committed_before_its_answer_was_lost_succeeds") {
        return;
    }
    use shoal_proto::v1::{GetServiceRequest, UpdateServiceRequest};

    let cluster = NetCluster::new();
    let program = marker_program(&cluster.dir);
    cluster.managers[0].ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "0",
        "--runtime",
        "process",
        program.to_str().unwrap(),
        "3600",
    ]);
    // Each attempt needs the new leader elected within the follower's
    // forwarding patience (3 s from the call) for a definite answer; an
    // unlucky double election round makes it a retryable error instead,
    // and the scenario runs again with the next leader.
    let mut definite = None;
    for attempt in 1..=3u64 {
        let leader = eventually(patience(), "a leader", || {
            cluster.leader_host(None).ok_or("none".to_string())
        });
        let hosts: Vec<u8> = (1..=3).filter(|h| *h != leader).collect();
        let (follower, witness) = (hosts[0], hosts[1]);
        let via = &cluster.managers[follower as usize - 1];
        let witness = &cluster.managers[witness as usize - 1];
        let (runtime, mut client) = control_client(&via.socket);
        // Through the follower, so that its forwarding connection to the
        // leader is up before the leader's answers start being dropped.
        let current = runtime
            .block_on(client.get_service(GetServiceRequest {
                service: "web".into(),
            }))
            .expect("get web")
            .into_inner()
            .service
            .expect("web");
        let mut spec = current.spec.clone().expect("spec");
        spec.replicas = attempt;
        let request = UpdateServiceRequest {
            service: "web".into(),
            spec: Some(spec),
            expected_spec_version: current.spec_version,
            rollback: false,
        };

        cluster.net.drop_answers(leader, 2377, follower);
        let update = std::thread::spawn(move || {
            let mut client = client;
            let answer = runtime.block_on(client.update_service(request));
            answer.map(|r| r.into_inner())
        });
        // Committed: the third manager's own replica has it.
        let wanted = attempt.to_string();
        eventually(
            patience(),
            "the update applied on the third manager",
            || {
                let local = witness.local_services();
                match local.get("web") {
                    Some(desired) if *desired == wanted => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        );
        assert!(
            !update.is_finished(),
            "the update was answered although the leader's answers are dropped"
        );
        cluster.net.cut(leader);
        let answer = update.join().expect("update thread");
        cluster.net.heal(leader);
        eprintln!("attempt {attempt}: cut h{leader}; the follower h{follower} answered {answer:?}");
        match answer {
            Err(status)
                if status.code() == tonic::Code::Unavailable
                    && status.message().contains("retry") =>
            {
                continue
            }
            other => {
                definite = Some((other, current.spec_version));
                break;
            }
        }
    }
    let (answer, expected) = definite.expect("a definite answer in 3 attempts");
    let service = answer.expect("the committed update is answered as a success");
    assert_eq!(
        service.spec_version,
        expected + 1,
        "the answer is the update's own version"
    );
}
