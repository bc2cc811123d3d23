//! Control-plane benchmark, three managers on loopback (real processes):
//!
//! - **Failover**: SIGKILL of the leader → first acknowledged write through a
//!   surviving manager; median of several runs (the killed manager is
//!   restarted and caught up between runs).
//! - **Write throughput**: concurrent service updates acknowledged per second
//!   through the leader's socket.
//! - **Beside etcd** (issue 20): then, with the managers stopped, a 3-member
//!   etcd cluster on loopback (real `etcd` processes, Debian's
//!   `etcd-server`) takes puts of 200-byte values through its leader at the
//!   same concurrency for the same time; its writes/s and the ratio
//!   shoal/etcd are printed on one line ([`etcd`]). Without `etcd` on `PATH`
//!   the bench says so in one line and is otherwise the same.
//!
//! Run with `cargo build --release -p shoal-cli && cargo bench -p shoal-e2e --bench control_plane`.
//! It prints figures; it asserts nothing about speed.

// A test crate: its helpers unwrap like its tests (the workspace denies
// unwrap_used in everything else).
#![allow(clippy::unwrap_used)]

use shoal_e2e::util;

// Not `benches/etcd.rs`: cargo would take every file there for a bench of its own.
#[path = "control_plane/etcd.rs"]
mod etcd;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use shoal_proto::v1::control_client::ControlClient;
use shoal_proto::v1::{
    CreateServiceRequest, GetServiceRequest, ServiceSpec, TaskSpec, UpdateServiceRequest,
};
use tonic::transport::{Channel, Endpoint, Uri};
use util::{eventually, leader_name, managers_cluster, patience, TestDir};

const FAILOVER_RUNS: usize = 7;
const THROUGHPUT_SECONDS: u64 = 5;
/// Concurrent writers; `SHOAL_BENCH_CONCURRENCY` overrides.
const CONCURRENCY: usize = 256;

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

fn spec(name: &str, label: u64) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        replicas: 0,
        labels: [("n".to_string(), label.to_string())].into_iter().collect(),
        task: Some(TaskSpec {
            runtime: "process".into(),
            command: vec!["true".into()],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let dir = TestDir::new();
    let (mut managers, _) = tokio::task::block_in_place(|| managers_cluster(&dir, 3, 0));

    let concurrency: usize = std::env::var("SHOAL_BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CONCURRENCY);
    // Failover (`SHOAL_BENCH_RUNS` overrides the number of runs; 0 skips it).
    let runs: usize = std::env::var("SHOAL_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FAILOVER_RUNS);
    let mut failovers = Vec::new();
    for run in 0..runs {
        let leader_host = tokio::task::block_in_place(|| {
            eventually(patience(), "a leader", || {
                leader_name(&managers[0]).ok_or_else(|| "none".into())
            })
        });
        let leader = managers.iter().position(|m| m.name == leader_host).unwrap();
        let survivors: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
        let mut clients = Vec::new();
        for i in &survivors {
            clients.push(ControlClient::new(uds(managers[*i].socket.clone()).await));
        }
        let started = Instant::now();
        managers[leader].kill();
        let mut n = 0;
        loop {
            let index = n % clients.len();
            let client = &mut clients[index];
            n += 1;

            let mut request = tonic::Request::new(CreateServiceRequest {
                spec: Some(spec(&format!("failover{run}"), 0)),
            });
            request.set_timeout(Duration::from_secs(2));
            if client.create_service(request).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!("failover run {}: {:.3} s", run + 1, elapsed);
        failovers.push(elapsed);
        tokio::task::block_in_place(|| {
            managers[leader].start();
            eventually(patience(), "three reachable managers", || {
                let run = managers[leader].shoal(&["node", "ls", "--format", "json"]);
                if run.status != 0 {
                    return Err(run.stderr);
                }
                let nodes: Vec<serde_json::Value> = run
                    .stdout
                    .lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect();

                let ok = nodes
                    .iter()
                    .filter(|n| n["ManagerStatus"] == "Leader" || n["ManagerStatus"] == "Reachable")
                    .count();
                if ok == 3 {
                    Ok(())
                } else {
                    Err(format!("{nodes:?}"))
                }
            });
        });
    }
    if !failovers.is_empty() {
        println!(
            "failover (SIGKILL of the leader to the first acknowledged write), median of {runs}: {:.3} s",
            median(failovers)
        );
    }

    // Write throughput through the leader.
    let leader_host = tokio::task::block_in_place(|| leader_name(&managers[0]).unwrap());
    let leader = managers.iter().position(|m| m.name == leader_host).unwrap();
    let channel = uds(managers[leader].socket.clone()).await;
    let mut client = ControlClient::new(channel.clone());
    client
        .create_service(CreateServiceRequest {
            spec: Some(spec("bench", 0)),
        })
        .await
        .expect("create bench service");
    let acked = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(THROUGHPUT_SECONDS);
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let mut client = ControlClient::new(channel.clone());
        let acked = acked.clone();
        workers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < deadline {
                i += 1;
                let update = UpdateServiceRequest {
                    service: "bench".into(),
                    spec: Some(spec("bench", (w as u64) << 32 | i)),
                    expected_spec_version: 0,
                    rollback: false,
                };
                if client.update_service(update).await.is_ok() {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = acked.load(Ordering::Relaxed);
    let version = client
        .get_service(GetServiceRequest {
            service: "bench".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap()
        .spec_version;
    let rate = total as f64 / elapsed;
    println!(
        "write throughput: {total} service updates acknowledged in {elapsed:.2} s with {concurrency} concurrent clients = {rate:.0} writes/s (spec version now {version})"
    );

    // etcd gets the machine as shoal had it: the managers, idle but still
    // heartbeating every 50 ms, are stopped first.
    drop(client);
    drop(channel);
    tokio::task::block_in_place(|| drop(managers));
    etcd::compare(
        &dir,
        concurrency,
        Duration::from_secs(THROUGHPUT_SECONDS),
        rate,
    )
    .await;
}
