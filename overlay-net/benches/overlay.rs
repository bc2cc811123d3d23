//! TCP throughput and connection-setup latency task → task across two
//! namespace hosts over the overlay (VXLAN), against the same two hosts over
//! their underlay veth; prints the ratio (target: overlay ≥ 0.9 of underlay
//! throughput). Root only:
//!
//!     cargo bench -p shoal-overlay-net --bench overlay
//!
//! Each measurement is bounded in time (throughput) or count (latency), and
//! every address is inside namespaces the bench creates. After one thrown-
//! away warm-up round, `SHOAL_BENCH_ROUNDS` (default 7) rounds alternate the
//! two paths and the medians are printed, with the load average and the CPU
//! seconds per GB each path cost (the figure that least depends on what else
//! the shared cores run). `SHOAL_BENCH_SETUP=script.sh` runs a script after
//! the plumbing (see `benches/overlay-settings/`), to try a kernel setting
//! before it becomes the crate's.

// A test crate: its helpers unwrap like its tests (the workspace denies
// unwrap_used in everything else).
#![allow(clippy::unwrap_used)]

#[path = "../tests/hosts/mod.rs"]
mod hosts;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use hosts::{underlay, Hosts};
use shoal_overlay_net::model::{
    Endpoint, Ipv4Subnet, LocalTask, NodeView, OverlayNetwork, Peer, TaskNetns,
};
use shoal_overlay_net::netns::NetNs;
use shoal_overlay_net::OverlayNode;

/// Seconds per throughput measurement.
const SECONDS: f64 = 2.0;
/// Connection setups per latency measurement.
const CONNECTIONS: usize = 200;
/// Rounds of (underlay, overlay) measurements, interleaved so that both
/// paths see the same background load; medians are reported. Override with
/// `SHOAL_BENCH_ROUNDS`.
const ROUNDS: usize = 7;

fn view(me: u8) -> NodeView {
    let other = 3 - me;
    let endpoint = |task: &str, node: u8, last: u8| Endpoint {
        task_id: task.into(),
        node_id: format!("node{node}"),
        network_id: "bench".into(),
        addr: Ipv4Addr::new(10, 0, 9, last),
    };
    NodeView {
        node_id: format!("node{me}"),
        vtep: Some(IpAddr::V4(underlay(me))),
        networks: vec![OverlayNetwork {
            id: "bench".into(),
            name: "bench".into(),
            vni: 9000,
            subnet: Ipv4Subnet {
                addr: Ipv4Addr::new(10, 0, 9, 0),
                prefix_len: 24,
            },
            gateway: Ipv4Addr::new(10, 0, 9, 1),
            mtu: None,
            internal: false,
        }],
        peers: vec![Peer {
            node_id: format!("node{other}"),
            vtep: IpAddr::V4(underlay(other)),
            networks: vec!["bench".into()],
        }],
        endpoints: vec![endpoint("a", 1, 2), endpoint("b", 2, 3)],
        services: vec![],
    }
}

/// CPU seconds (user + system) the calling thread has used so far, from
/// `/proc/thread-self/stat` (clock ticks of 10 ms; the runs last seconds).
fn thread_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the `(comm)`: state is the 3rd field, utime the 14th.
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A server in `ns` that writes one byte to each connection as soon as it
/// accepts it (the "first byte" of the latency figure), then discards what
/// it reads and closes when the peer does. For each connection that sent
/// data it reports the CPU seconds its reading thread used on the returned
/// channel.
fn sink(ns: &str, addr: SocketAddr) -> std::sync::mpsc::Receiver<f64> {
    let listener = NetNs::open(ns)
        .unwrap()
        .run(move || TcpListener::bind(addr))
        .unwrap()
        .unwrap();
    let (report, reports) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            if s.write_all(b"!").is_err() {
                continue;
            }
            let report = report.clone();
            std::thread::spawn(move || {
                let start = thread_cpu();
                let mut buf = vec![0u8; 256 * 1024];
                let mut got = 0u64;
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    got += n as u64;
                }
                if got > 1 {
                    let _ = report.send(thread_cpu() - start);
                }
            });
        }
    });
    reports
}

/// One stream's figures: bytes per second, and CPU seconds per GB moved
/// (sender thread + receiver thread; on veth the kernel does the receive
/// side's softirq work mostly in the sender's context, so the sum is the
/// path's whole cost, and unlike the rate it barely depends on how much of
/// the two cores other work leaves free).
struct Stream {
    rate: f64,
    cpu_per_gb: f64,
}

/// Writes from `ns` to `to` for `SECONDS`; `reports` is the sink's channel.
fn throughput(ns: &str, to: SocketAddr, reports: &std::sync::mpsc::Receiver<f64>) -> Stream {
    let (rate, sent, sender_cpu) = throughput_only(ns, to);
    let receiver_cpu = reports
        .recv_timeout(Duration::from_secs(10))
        .expect("the sink's CPU report");
    Stream {
        rate,
        cpu_per_gb: (sender_cpu + receiver_cpu) / (sent as f64 / 1e9),
    }
}

/// Bytes per second written from `ns` to `to` for `SECONDS`, the bytes and
/// the sending thread's CPU seconds.
fn throughput_only(ns: &str, to: SocketAddr) -> (f64, u64, f64) {
    NetNs::open(ns)
        .unwrap()
        .run(move || {
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(3)).expect("connect");
            let mut first = [0u8; 1];
            s.read_exact(&mut first).expect("first byte");
            let buf = vec![0x5au8; 256 * 1024];
            let cpu = thread_cpu();
            let start = Instant::now();
            let mut sent = 0u64;
            while start.elapsed() < Duration::from_secs_f64(SECONDS) {
                s.write_all(&buf).expect("write");
                sent += buf.len() as u64;
            }
            let rate = sent as f64 / start.elapsed().as_secs_f64();
            let cpu = thread_cpu() - cpu;
            // Closing ends the sink's loop, which then reports its CPU.
            drop(s);
            (rate, sent, cpu)
        })
        .unwrap()
}

/// Connect + first byte latencies (µs, sorted) of `CONNECTIONS` connections:
/// from `connect` until the server's first byte has arrived.
fn connect_latencies(ns: &str, to: SocketAddr) -> Vec<f64> {
    NetNs::open(ns)
        .unwrap()
        .run(move || {
            let mut all: Vec<f64> = (0..CONNECTIONS)
                .map(|_| {
                    let start = Instant::now();
                    let mut s =
                        TcpStream::connect_timeout(&to, Duration::from_secs(3)).expect("connect");
                    let mut first = [0u8; 1];
                    s.read_exact(&mut first).expect("first byte");
                    let took = start.elapsed().as_secs_f64() * 1e6;
                    drop(s);
                    took
                })
                .collect();
            all.sort_by(f64::total_cmp);
            all
        })
        .unwrap()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    pct(&sorted, 0.5)
}

/// `/proc/loadavg`'s three load averages, to read the figures against.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The MTU of `dev` in namespace `ns` (`ip -n NS -o link show DEV`).
fn mtu(ns: &str, dev: &str) -> String {
    let shown = hosts::must("ip", &["-n", ns, "-o", "link", "show", "dev", dev]);
    let mut words = shown.split_whitespace();
    words.find(|w| *w == "mtu");
    words.next().unwrap_or("?").to_string()
}

#[tokio::main]
async fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("overlay bench: needs root (network namespaces, VXLAN); skipped");
        return;
    }
    let mut hosts = Hosts::new();
    let (a, b) = (hosts.task_ns("a"), hosts.task_ns("b"));
    let node1 = OverlayNode::in_netns(&hosts.host_ns(1)).await.unwrap();
    let node2 = OverlayNode::in_netns(&hosts.host_ns(2)).await.unwrap();
    let task = |id: &str, ns: &str| LocalTask {
        task_id: id.into(),
        netns: TaskNetns::Named(ns.into()),
        networks: vec!["bench".into()],
    };
    node1.reconcile(&view(1), &[task("a", &a)]).await.unwrap();
    node2.reconcile(&view(2), &[task("b", &b)]).await.unwrap();

    let overlay_to = SocketAddr::from((Ipv4Addr::new(10, 0, 9, 3), 9000));
    let underlay_to = SocketAddr::from((underlay(2), 9000));
    let overlay_sink = sink(&b, overlay_to);
    let underlay_sink = sink(hosts.host(2), underlay_to);

    // For trying a kernel setting before it becomes the crate's: a script
    // run once the plumbing is done, with the namespaces in its environment.
    if let Ok(script) = std::env::var("SHOAL_BENCH_SETUP") {
        let status = std::process::Command::new("sh")
            .arg(&script)
            .env("H1", hosts.host(1))
            .env("H2", hosts.host(2))
            .env("TA", &a)
            .env("TB", &b)
            .status()
            .expect("running SHOAL_BENCH_SETUP");
        assert!(status.success(), "SHOAL_BENCH_SETUP {script} failed");
    }

    let rounds: usize = std::env::var("SHOAL_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS);
    // A first round that is thrown away: the first stream in fresh
    // namespaces is consistently slower (whichever path goes first).
    throughput(hosts.host(1), underlay_to, &underlay_sink);
    throughput(&a, overlay_to, &overlay_sink);

    let load_before = load_average();
    let (mut under, mut over) = (Vec::new(), Vec::new());
    let (mut under_cpu, mut over_cpu) = (Vec::new(), Vec::new());
    let (mut under_lat, mut over_lat) = (Vec::new(), Vec::new());
    let gbit = |bps: f64| bps * 8.0 / 1e9;
    for round in 0..rounds {
        // Alternate which path goes first, so neither always meets the
        // other's leftovers (a busy sibling build, a cold cache).
        let underlay_stream = || throughput(hosts.host(1), underlay_to, &underlay_sink);
        let overlay_stream = || throughput(&a, overlay_to, &overlay_sink);
        let (u, o) = if round % 2 == 0 {
            let u = underlay_stream();
            (u, overlay_stream())
        } else {
            let o = overlay_stream();
            (underlay_stream(), o)
        };
        let (ul, ol) = (
            connect_latencies(hosts.host(1), underlay_to),
            connect_latencies(&a, overlay_to),
        );
        eprintln!(
            "round {}: underlay {:6.2} overlay {:6.2} Gbit/s ({:.2}); CPU s/GB {:.3} / {:.3} ({:.2}); setup median {:6.1} / {:6.1} µs",
            round + 1,
            gbit(u.rate),
            gbit(o.rate),
            o.rate / u.rate,
            u.cpu_per_gb,
            o.cpu_per_gb,
            o.cpu_per_gb / u.cpu_per_gb,
            pct(&ul, 0.5),
            pct(&ol, 0.5)
        );
        under.push(u.rate);
        over.push(o.rate);
        under_cpu.push(u.cpu_per_gb);
        over_cpu.push(o.cpu_per_gb);
        under_lat.push(ul);
        over_lat.push(ol);
    }
    let load_after = load_average();
    let ratios: Vec<f64> = under.iter().zip(&over).map(|(u, o)| o / u).collect();
    let all = |runs: &[Vec<f64>]| {
        let mut v: Vec<f64> = runs.iter().flatten().copied().collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (under_lat, over_lat) = (all(&under_lat), all(&over_lat));

    println!(
        "overlay bench: two namespace hosts, veth underlay (MTU {}), VXLAN overlay (MTU {})",
        mtu(hosts.host(1), "ul0"),
        mtu(&a, "eth0")
    );
    println!("load average before {load_before}, after {load_after} (2 cores shared)");
    println!("TCP throughput ({rounds} rounds × {SECONDS} s, one stream, medians):");
    println!("  underlay host→host   {:8.2} Gbit/s", gbit(median(&under)));
    println!("  overlay  task→task   {:8.2} Gbit/s", gbit(median(&over)));
    println!(
        "  ratio overlay/underlay {:.2} (median of the per-round ratios, range {:.2}–{:.2}; target ≥ 0.90)",
        median(&ratios),
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max),
    );
    let cost: Vec<f64> = under_cpu
        .iter()
        .zip(&over_cpu)
        .map(|(u, o)| u / o)
        .collect();
    println!("CPU cost per GB moved (sender + receiver threads, medians; less load-sensitive):");
    println!(
        "  underlay {:.3} s/GB, overlay {:.3} s/GB",
        median(&under_cpu),
        median(&over_cpu)
    );
    println!(
        "  ratio underlay/overlay {:.2} (the throughput ratio on two otherwise idle cores)",
        median(&cost)
    );
    println!(
        "TCP connection setup, connect + first byte ({rounds} × {CONNECTIONS} connections, µs):"
    );
    println!(
        "  underlay  median {:7.1}  p99 {:7.1}",
        pct(&under_lat, 0.5),
        pct(&under_lat, 0.99)
    );
    println!(
        "  overlay   median {:7.1}  p99 {:7.1}",
        pct(&over_lat, 0.5),
        pct(&over_lat, 0.99)
    );
    println!(
        "  ratio overlay/underlay (median) {:.2}",
        pct(&over_lat, 0.5) / pct(&under_lat, 0.5)
    );
    node1.cleanup_all().await.unwrap();
    node2.cleanup_all().await.unwrap();
}
