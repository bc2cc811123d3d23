//! Partition benchmark (issue 14): three managers and two workers, each
//! host a network namespace (the partition suite's `netns` harness), a
//! 6-replica process service. Each run cuts the leader's host off with
//! silent drops and times, from the cut:
//!
//! - **first write**: the first acknowledged `CreateService` through a
//!   majority-side manager (each attempt a new name, 2 s deadline, the two
//!   survivors in turn);
//! - **agents back**: every agent outside the cut host holding a session
//!   with the new leader. Read from the store, not from agents' logs: a
//!   session start is a Raft write stamped with the leader's clock
//!   (`NodeStatus.session_started_at_ms`), so a stamp after the cut is a
//!   session with a leader that has a majority, and the latest of the four
//!   stamps is the moment the last agent got back.
//!
//! Then heals the cut and waits until the cut host's agent is back too and
//! the six replicas run, before the next run. Median, minimum and maximum
//! over the runs (`SHOAL_BENCH_RUNS`, default 7). Prints; asserts nothing.
//! Needs root (namespaces, nftables).
//!
//! Run with `cargo build --release -p shoal-cli && cargo bench -p shoal-e2e --bench partition`.

// A test crate: its helpers unwrap like its tests (the workspace denies
// unwrap_used in everything else).
#![allow(clippy::unwrap_used)]

use shoal_e2e::util;

#[path = "../tests/cluster/netns.rs"]
#[allow(dead_code)]
mod netns;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper_util::rt::TokioIo;
use shoal_proto::v1::control_client::ControlClient;
use shoal_proto::v1::{
    CreateServiceRequest, ListNodesRequest, Node, NodeState, ServiceSpec, TaskSpec,
};
use tonic::transport::{Channel, Endpoint, Uri};
use util::{eventually, marker_program, patience, processes_of};

const RUNS: usize = 7;
const REPLICAS: usize = 6;

async fn uds(path: std::path::PathBuf) -> Channel {
    Endpoint::from_static("http://shoal.local")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .expect("manager socket")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

fn spec(name: &str) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        replicas: 0,
        task: Some(TaskSpec {
            runtime: "process".into(),
            command: vec!["true".into()],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn hostname(node: &Node) -> &str {
    node.description
        .as_ref()
        .map(|d| d.hostname.as_str())
        .unwrap_or_default()
}

/// `(Ready, session start)` of every node, read through `client` (a
/// linearizable read, served by the leader).
async fn sessions(client: &mut ControlClient<Channel>) -> Result<Vec<(String, bool, i64)>, String> {
    let mut request = tonic::Request::new(ListNodesRequest {});
    request.set_timeout(Duration::from_secs(2));
    let nodes = client
        .list_nodes(request)
        .await
        .map_err(|s| s.message().to_string())?
        .into_inner()
        .nodes;
    Ok(nodes
        .iter()
        .map(|n| {
            let status = n.status.clone().unwrap_or_default();
            (
                hostname(n).to_string(),
                status.state() == NodeState::Ready,
                status.session_started_at_ms,
            )
        })
        .collect())
}

/// Polls until every node `fresh` picks (`count` of them) is Ready with a
/// session opened at or after `since_ms`; returns the latest of those
/// session starts.
async fn back(
    client: &mut ControlClient<Channel>,
    fresh: impl Fn(&str) -> bool,
    count: usize,
    since_ms: i64,
) -> i64 {
    let deadline = Instant::now() + patience();
    loop {
        let last = match sessions(client).await {
            Ok(nodes) => {
                let wanted: Vec<&(String, bool, i64)> =
                    nodes.iter().filter(|(name, _, _)| fresh(name)).collect();
                if wanted.len() == count
                    && wanted
                        .iter()
                        .all(|(_, ready, at)| *ready && *at >= since_ms)
                {
                    return wanted
                        .iter()
                        .map(|(_, _, at)| *at)
                        .max()
                        .unwrap_or(since_ms);
                }
                format!("{nodes:?}")
            }
            Err(e) => e,
        };
        assert!(
            Instant::now() < deadline,
            "agents not back within {:?}: {last}",
            patience()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn summary(what: &str, mut values: Vec<f64>) {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let runs: Vec<String> = values.iter().map(|v| format!("{v:.2}")).collect();
    println!(
        "{what}, median of {}: {:.2} s (min {:.2}, max {:.2}; sorted runs {} s)",
        values.len(),
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
        runs.join(", ")
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("the partition benchmark needs root (network namespaces, nftables)");
        std::process::exit(1);
    }
    let runs: usize = std::env::var("SHOAL_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(RUNS);
    let cluster = tokio::task::block_in_place(netns::NetCluster::new);
    let program = marker_program(&cluster.dir);
    tokio::task::block_in_place(|| {
        cluster.managers[0].ok(&[
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
    });
    let mut clients = Vec::new();
    for manager in &cluster.managers {
        clients.push(ControlClient::new(uds(manager.socket.clone()).await));
    }

    let mut writes = Vec::new();
    let mut reconnects = Vec::new();
    for run in 0..runs {
        let leader = tokio::task::block_in_place(|| {
            eventually(patience(), "a leader and the replicas running", || {
                let leader = cluster.leader_host(None).ok_or("no leader")?;
                let live = processes_of(&program).len();
                if live == REPLICAS {
                    Ok(leader)
                } else {
                    Err(format!("{live} task processes"))
                }
            })
        });
        let isolated = format!("h{leader}");
        let survivors: Vec<usize> = (0..3).filter(|i| *i + 1 != leader as usize).collect();

        let cut_ms = now_ms();
        let cut = Instant::now();
        cluster.net.cut(leader);
        let mut attempt = 0;
        loop {
            let client = &mut clients[survivors[attempt % survivors.len()]];
            attempt += 1;
            let mut request = tonic::Request::new(CreateServiceRequest {
                spec: Some(spec(&format!("cut{run}a{attempt}"))),
            });
            request.set_timeout(Duration::from_secs(2));
            if client.create_service(request).await.is_ok() {
                break;
            }
            assert!(
                cut.elapsed() < patience(),
                "no write acknowledged after the cut"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let write = cut.elapsed().as_secs_f64();
        let last_session = back(&mut clients[survivors[0]], |h| h != isolated, 4, cut_ms).await;
        let reconnect = (last_session - cut_ms) as f64 / 1000.0;
        println!(
            "run {}: cut h{leader}; first write {write:.2} s ({attempt} attempts); every other agent on the new leader {reconnect:.2} s",
            run + 1
        );
        writes.push(write);
        reconnects.push(reconnect);

        let heal_ms = now_ms();
        cluster.net.heal(leader);
        // The cut host's agent is back too (its manager stepped down and
        // ended its session) before the next run.
        back(&mut clients[survivors[0]], |h| h == isolated, 1, heal_ms).await;
    }
    summary(
        "cut of the leader's host → first acknowledged write through a majority-side manager",
        writes,
    );
    summary(
        "cut of the leader's host → every reachable agent in session with the new leader",
        reconnects,
    );
}
