//! Placement throughput: prints figures, asserts validity, never speed
//! (STYLE.md 17). Run with
//! `cargo bench -p shoal-scheduler --bench placement`.

// A test crate: its helpers unwrap like its tests (the workspace denies
// unwrap_used in everything else).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use shoal_scheduler::{
    schedule, Constraint, Decisions, NodeView, Placement, Preference, Resources, Role, TaskRequest,
};

const REPETITIONS: usize = 5;
const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn main() {
    let nodes = zoned_nodes(10_000, 10);
    let placement = Placement {
        constraints: vec![
            Constraint::parse("node.role==worker").unwrap(),
            Constraint::parse("node.labels.zone!=z9").unwrap(),
        ],
        preferences: vec![Preference::parse("spread=node.labels.zone").unwrap()],
        max_replicas_per_node: 0,
    };
    let reservations = Resources {
        nano_cpus: 250_000_000,
        memory_bytes: 512 * MIB,
    };

    let tasks = service_tasks(&["web"], 100_000, &placement, reservations);
    run(
        "100,000 tasks of 1 service on 10,000 nodes \
         (node.role==worker, node.labels.zone!=z9, spread=node.labels.zone, 0.25 CPU + 512 MiB)",
        &nodes,
        &tasks,
        |d| check_zoned(&nodes, &tasks, d, reservations),
    );

    let services: Vec<String> = (0..100).map(|s| format!("svc{s:03}")).collect();
    let names: Vec<&str> = services.iter().map(String::as_str).collect();
    let tasks = service_tasks(&names, 1_000, &placement, reservations);
    run(
        "100,000 tasks of 100 services (1,000 each) on 10,000 nodes (same placement)",
        &nodes,
        &tasks,
        |d| check_zoned(&nodes, &tasks, d, reservations),
    );

    let small: Vec<NodeView> = (0..100)
        .map(|i| NodeView {
            runtimes: vec!["process".into()],
            ..NodeView::new(format!("node-{i:03}"))
        })
        .collect();
    let tasks = service_tasks(
        &["big"],
        10_000,
        &Placement::default(),
        Resources::default(),
    );
    run(
        "10,000 replicas of 1 service on 100 nodes (no rules)",
        &small,
        &tasks,
        |d| {
            assert!(d.unplaced.is_empty(), "all placed");
            let per_node = count(d.assigned.iter().map(|(_, n)| n.as_str()));
            assert!(per_node.len() == 100 && per_node.values().all(|&n| n == 100));
        },
    );
}

fn run(title: &str, nodes: &[NodeView], tasks: &[TaskRequest], check: impl Fn(&Decisions)) {
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..REPETITIONS {
        let start = Instant::now();
        let decisions = schedule(nodes, &[], tasks);
        times.push(start.elapsed());
        check(&decisions);
    }
    times.sort();
    let median = times[times.len() / 2];
    println!("{title}");
    println!(
        "  median {:>8.1} ms  (min {:.1} ms, max {:.1} ms, {REPETITIONS} runs)  \
         {:>12.0} placements/s  [valid]",
        ms(median),
        ms(times[0]),
        ms(times[times.len() - 1]),
        tasks.len() as f64 / median.as_secs_f64(),
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `n` nodes over `zones` zones; every 100th is a manager; memory 4, 8 or
/// 16 GiB so that some nodes fill up and drop out during the batch.
fn zoned_nodes(n: usize, zones: usize) -> Vec<NodeView> {
    (0..n)
        .map(|i| NodeView {
            hostname: format!("host-{i}"),
            role: if i % 100 == 0 {
                Role::Manager
            } else {
                Role::Worker
            },
            labels: [("zone".to_string(), format!("z{}", i % zones))].into(),
            runtimes: vec!["process".into()],
            resources: Resources {
                nano_cpus: 8_000_000_000,
                memory_bytes: (4 << (i % 3)) * GIB,
            },
            ..NodeView::new(format!("node-{i:05}"))
        })
        .collect()
}

fn service_tasks(
    services: &[&str],
    per_service: usize,
    placement: &Placement,
    reservations: Resources,
) -> Vec<TaskRequest> {
    services
        .iter()
        .flat_map(|s| {
            (0..per_service).map(move |i| TaskRequest {
                placement: placement.clone(),
                reservations,
                ..TaskRequest::new(format!("{s}.{i}"), *s, "process")
            })
        })
        .collect()
}

fn count<'a>(items: impl Iterator<Item = &'a str>) -> BTreeMap<&'a str, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item).or_default() += 1;
    }
    counts
}

/// All placed, on workers outside z9, within each node's resources, and
/// every service spread over z0..z8 within one task.
fn check_zoned(nodes: &[NodeView], tasks: &[TaskRequest], d: &Decisions, each: Resources) {
    assert!(
        d.unplaced.is_empty(),
        "all placed: {:?}",
        d.unplaced.first()
    );
    assert_eq!(d.assigned.len(), tasks.len());
    let by_id: BTreeMap<&str, &NodeView> = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let service_of: BTreeMap<&str, &str> = tasks
        .iter()
        .map(|t| (t.id.as_str(), t.service_id.as_str()))
        .collect();
    let mut per_node: BTreeMap<&str, u64> = BTreeMap::new();
    let mut per_zone: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (task, node_id) in &d.assigned {
        let node = by_id[node_id.as_str()];
        assert_eq!(node.role, Role::Worker);
        let zone = node.labels["zone"].as_str();
        assert_ne!(zone, "z9");
        *per_node.entry(node_id).or_default() += 1;
        *per_zone
            .entry((service_of[task.as_str()], zone))
            .or_default() += 1;
    }
    for (id, n) in per_node {
        let r = by_id[id].resources;
        assert!(n * each.nano_cpus <= r.nano_cpus && n * each.memory_bytes <= r.memory_bytes);
    }
    let mut by_service: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for ((service, _), n) in per_zone {
        by_service.entry(service).or_default().push(n);
    }
    for (service, zones) in by_service {
        let (lo, hi) = (zones.iter().min().unwrap(), zones.iter().max().unwrap());
        assert!(zones.len() == 9 && hi - lo <= 1, "{service}: {zones:?}");
    }
}
