use super::*;
use crate::filter;
use std::collections::BTreeMap;

fn node(id: &str) -> NodeView {
    NodeView {
        runtimes: vec!["process".into()],
        ..NodeView::new(id)
    }
}

fn tasks(service: &str, n: usize, runtime: &str) -> Vec<TaskRequest> {
    (0..n)
        .map(|i| TaskRequest::new(format!("{service}-t{i}"), service, runtime))
        .collect()
}

fn per_node(decisions: &Decisions) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (_, node) in &decisions.assigned {
        *counts.entry(node.clone()).or_default() += 1;
    }
    counts
}

#[test]
fn spreads_a_service_evenly() {
    let nodes = [node("a"), node("b"), node("c")];
    let d = schedule(&nodes, &[], &tasks("web", 6, "process"));
    assert!(d.unplaced.is_empty());
    assert_eq!(
        per_node(&d).values().copied().collect::<Vec<_>>(),
        vec![2, 2, 2]
    );
}

#[test]
fn fills_the_emptiest_node_of_the_service_first_then_overall() {
    let nodes = [node("a"), node("b")];
    // "a" already runs two tasks of another service: web goes to "b" first.
    let placed = vec![Placed::new("db", "a"), Placed::new("db", "a")];
    let d = schedule(&nodes, &placed, &tasks("web", 1, "process"));
    assert_eq!(d.assigned, vec![("web-t0".into(), "b".into())]);
    // Same-service count wins over total load.
    let placed = vec![
        Placed::new("web", "b"),
        Placed::new("db", "a"),
        Placed::new("db", "a"),
    ];
    let d = schedule(&nodes, &placed, &tasks("web", 1, "process"));
    assert_eq!(d.assigned, vec![("web-t0".into(), "a".into())]);
}

#[test]
fn skips_nodes_that_are_down_paused_drained_or_lack_the_runtime() {
    let mut down = node("a");
    down.ready = false;
    let mut paused = node("b");
    paused.availability = Availability::Pause;
    let mut drained = node("c");
    drained.availability = Availability::Drain;
    let ok = node("d");
    let d = schedule(
        &[down, paused, drained, ok],
        &[],
        &tasks("web", 3, "process"),
    );
    assert_eq!(per_node(&d), BTreeMap::from([("d".to_string(), 3)]));
}

#[test]
fn explains_why_nothing_fits() {
    let mut down = node("a");
    down.ready = false;
    let nodes = [down, node("b"), node("c")];
    let d = schedule(&nodes, &[], &tasks("web", 2, "docker"));
    assert!(d.assigned.is_empty());
    assert_eq!(d.unplaced.len(), 2);
    assert_eq!(
        d.unplaced[0].1,
        "no suitable node (node not ready on 1 node; runtime docker not available on 2 nodes)"
    );
    let d = schedule(&[], &[], &tasks("web", 1, "process"));
    assert_eq!(d.unplaced[0].1, "no suitable node (no nodes available)");
}

#[test]
fn a_large_batch_is_placed_in_one_pass() {
    let nodes: Vec<NodeView> = (0..100).map(|i| node(&format!("n{i:03}"))).collect();
    let d = schedule(&nodes, &[], &tasks("big", 10_000, "process"));
    assert_eq!(d.assigned.len(), 10_000);
    assert!(per_node(&d).values().all(|&n| n == 100));
}

fn labelled(id: &str, labels: &[(&str, &str)]) -> NodeView {
    NodeView {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..node(id)
    }
}

fn placement(constraints: &[&str], preferences: &[&str], max: u64) -> Placement {
    Placement {
        constraints: constraints
            .iter()
            .map(|c| Constraint::parse(c).unwrap())
            .collect(),
        preferences: preferences
            .iter()
            .map(|p| Preference::parse(p).unwrap())
            .collect(),
        max_replicas_per_node: max,
    }
}

fn ruled(
    service: &str,
    n: usize,
    placement: &Placement,
    reservations: Resources,
) -> Vec<TaskRequest> {
    tasks(service, n, "process")
        .into_iter()
        .map(|t| TaskRequest {
            placement: placement.clone(),
            reservations,
            ..t
        })
        .collect()
}

fn nodes_used(decisions: &Decisions) -> Vec<String> {
    per_node(decisions).into_keys().collect()
}

/// Tasks per value of `label` (missing label as "-").
fn per_label(nodes: &[NodeView], decisions: &Decisions, label: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (_, id) in &decisions.assigned {
        let node = nodes.iter().find(|n| &n.id == id).unwrap();
        let value = node.labels.get(label).cloned().unwrap_or("-".into());
        *counts.entry(value).or_default() += 1;
    }
    counts
}

const GIB: u64 = 1 << 30;

fn res(cpus: f64, gib: f64) -> Resources {
    Resources {
        nano_cpus: (cpus * 1e9) as u64,
        memory_bytes: (gib * GIB as f64) as u64,
    }
}

#[test]
fn each_constraint_key_and_operator_decides_placement() {
    let a = NodeView {
        hostname: "alpha".into(),
        role: Role::Manager,
        platform: Platform {
            os: "linux".into(),
            arch: "x86_64".into(),
        },
        ..labelled("a", &[("zone", "eu")])
    };
    let b = NodeView {
        hostname: "beta".into(),
        platform: Platform {
            os: "windows".into(),
            arch: "aarch64".into(),
        },
        ..labelled("b", &[("zone", "us")])
    };
    let c = NodeView {
        hostname: "gamma".into(),
        platform: Platform {
            os: "linux".into(),
            arch: "aarch64".into(),
        },
        ..node("c")
    };
    let nodes = [a, b, c];
    for (constraints, expected) in [
        (&["node.id==b"][..], &["b"][..]),
        (&["node.id!=b"], &["a", "c"]),
        (&["node.hostname==ALPHA"], &["a"]),
        (&["node.hostname!=alpha"], &["b", "c"]),
        (&["node.role==manager"], &["a"]),
        (&["node.role!=manager"], &["b", "c"]),
        (&["node.labels.zone==eu"], &["a"]),
        (&["node.labels.zone!=eu"], &["b", "c"]),
        (&["node.platform.os==windows"], &["b"]),
        (&["node.platform.os!=windows"], &["a", "c"]),
        (&["node.platform.arch==x86_64"], &["a"]),
        (&["node.platform.arch!=x86_64"], &["b", "c"]),
        (&["node.role==worker", "node.platform.os==linux"], &["c"]),
    ] {
        let p = placement(constraints, &[], 0);
        let d = schedule(&nodes, &[], &ruled("web", 6, &p, Resources::default()));
        assert!(d.unplaced.is_empty(), "{constraints:?}");
        assert_eq!(nodes_used(&d), expected, "{constraints:?}");
    }
}

#[test]
fn an_unmet_constraint_is_named_in_the_reason() {
    let nodes = [labelled("a", &[("zone", "us")]), node("b")];
    let p = placement(&["node.role==worker", "node.labels.zone==eu"], &[], 0);
    let d = schedule(&nodes, &[], &ruled("web", 2, &p, Resources::default()));
    assert!(d.assigned.is_empty());
    assert_eq!(
        d.unplaced,
        vec![
            (
                "web-t0".to_string(),
                "no suitable node (constraint node.labels.zone==eu not met on 2 nodes)".to_string()
            ),
            (
                "web-t1".to_string(),
                "no suitable node (constraint node.labels.zone==eu not met on 2 nodes)".to_string()
            ),
        ]
    );
}

#[test]
fn spread_evens_out_label_values_not_nodes() {
    // One node in eu, three in us, two without the label (their own group).
    let nodes = [
        labelled("e1", &[("zone", "eu")]),
        labelled("u1", &[("zone", "us")]),
        labelled("u2", &[("zone", "us")]),
        labelled("u3", &[("zone", "us")]),
        node("x1"),
        node("x2"),
    ];
    let p = placement(&[], &["spread=node.labels.zone"], 0);
    let d = schedule(&nodes, &[], &ruled("web", 9, &p, Resources::default()));
    assert!(d.unplaced.is_empty());
    assert_eq!(
        per_label(&nodes, &d, "zone"),
        BTreeMap::from([("-".into(), 3), ("eu".into(), 3), ("us".into(), 3)])
    );
    assert_eq!(per_node(&d)["e1"], 3);
    // Within a value, nodes are still spread.
    assert_eq!(per_node(&d)["u1"], 1);
    assert_eq!(per_node(&d)["x1"], 2, "ties go to the lowest ID");
}

#[test]
fn spread_counts_tasks_already_running() {
    let nodes = [
        labelled("e1", &[("zone", "eu")]),
        labelled("u1", &[("zone", "us")]),
    ];
    let placed = vec![Placed::new("web", "e1"), Placed::new("web", "e1")];
    let p = placement(&[], &["spread=node.labels.zone"], 0);
    let d = schedule(&nodes, &placed, &ruled("web", 4, &p, Resources::default()));
    // us catches up first (2), then they alternate.
    assert_eq!(
        per_node(&d),
        BTreeMap::from([("e1".into(), 1), ("u1".into(), 3)])
    );
}

#[test]
fn nested_preferences_spread_within_each_value() {
    let nodes = [
        labelled("a", &[("dc", "d1"), ("rack", "r1")]),
        labelled("b", &[("dc", "d1"), ("rack", "r2")]),
        labelled("c", &[("dc", "d1"), ("rack", "r2")]),
        labelled("d", &[("dc", "d1"), ("rack", "r2")]),
        labelled("e", &[("dc", "d2"), ("rack", "r1")]),
        labelled("f", &[("dc", "d2"), ("rack", "r1")]),
    ];
    let p = placement(
        &[],
        &["spread=node.labels.dc", "spread=node.labels.rack"],
        0,
    );
    let d = schedule(&nodes, &[], &ruled("web", 8, &p, Resources::default()));
    assert!(d.unplaced.is_empty());
    // 4 per dc; in d1, 2 per rack (a takes both of r1).
    assert_eq!(
        per_node(&d),
        BTreeMap::from([
            ("a".into(), 2),
            ("b".into(), 1),
            ("c".into(), 1),
            ("e".into(), 2),
            ("f".into(), 2),
        ])
    );
    // The order of the preferences matters: rack first puts 4 on r1 and 4
    // on r2, and r1 holds a (d1) and e, f (d2), spread over d1 and d2.
    let p = placement(
        &[],
        &["spread=node.labels.rack", "spread=node.labels.dc"],
        0,
    );
    let d = schedule(&nodes, &[], &ruled("web", 8, &p, Resources::default()));
    assert_eq!(per_label(&nodes, &d, "rack")["r1"], 4);
    assert_eq!(per_node(&d)["a"], 2);
}

#[test]
fn a_full_value_leaves_the_rest_to_the_others() {
    let mut nodes = vec![
        labelled("e1", &[("zone", "eu")]),
        labelled("u1", &[("zone", "us")]),
        labelled("u2", &[("zone", "us")]),
    ];
    for n in &mut nodes {
        n.resources = res(4.0, 4.0);
    }
    nodes[0].resources = res(4.0, 1.0);
    let p = placement(&[], &["spread=node.labels.zone"], 0);
    let d = schedule(&nodes, &[], &ruled("web", 6, &p, res(0.5, 1.0)));
    assert!(d.unplaced.is_empty());
    assert_eq!(
        per_node(&d),
        BTreeMap::from([("e1".into(), 1), ("u1".into(), 3), ("u2".into(), 2)])
    );
}

#[test]
fn max_replicas_per_node_caps_each_node_and_says_so() {
    let nodes = [node("a"), node("b")];
    // One web task already on a; db tasks do not count towards web's limit.
    let placed = vec![
        Placed::new("web", "a"),
        Placed::new("db", "b"),
        Placed::new("db", "b"),
    ];
    let p = placement(&[], &[], 2);
    let d = schedule(&nodes, &placed, &ruled("web", 4, &p, Resources::default()));
    assert_eq!(
        per_node(&d),
        BTreeMap::from([("a".into(), 1), ("b".into(), 2)])
    );
    assert_eq!(
        d.unplaced,
        vec![(
            "web-t3".to_string(),
            "no suitable node (max replicas per node limit exceeded on 2 nodes)".to_string()
        )]
    );
}

#[test]
fn reservations_consume_capacity_within_the_batch_and_across_services() {
    let mut a = node("a");
    a.resources = res(2.0, 4.0);
    // 3 GiB of a are taken by a running task.
    let placed = vec![Placed {
        reservations: res(0.0, 3.0),
        ..Placed::new("old", "a")
    }];
    // web takes a whole CPU each: two fit.
    let mut pending = ruled("web", 3, &Placement::default(), res(1.0, 0.25));
    let d = schedule(std::slice::from_ref(&a), &placed, &pending);
    assert_eq!(d.assigned.len(), 2);
    assert_eq!(
        d.unplaced[0].1,
        "no suitable node (insufficient cpu on 1 node)"
    );
    // db comes after web in the batch and finds the memory web took: 1 GiB
    // free minus 2 × 0.25 leaves 0.5, less than db's 0.75.
    pending.truncate(2);
    pending.extend(ruled("db", 1, &Placement::default(), res(0.0, 0.75)));
    let d = schedule(std::slice::from_ref(&a), &placed, &pending);
    assert_eq!(d.assigned.len(), 2);
    assert_eq!(
        d.unplaced,
        vec![(
            "db-t0".to_string(),
            "no suitable node (insufficient memory on 1 node)".to_string()
        )]
    );
    // A node that reported nothing cannot take a reservation, but anything
    // reserving nothing.
    let d = schedule(
        &[node("z")],
        &[],
        &ruled("x", 1, &Placement::default(), res(0.1, 0.0)),
    );
    assert_eq!(
        d.unplaced[0].1,
        "no suitable node (insufficient cpu on 1 node)"
    );
    let d = schedule(&[node("z")], &[], &tasks("y", 1, "process"));
    assert_eq!(d.assigned.len(), 1);
}

#[test]
fn the_reason_counts_each_node_under_its_first_failing_filter() {
    let mut down = labelled("a", &[("zone", "eu")]);
    down.ready = false;
    let mut small1 = labelled("b", &[("zone", "eu")]);
    small1.resources = res(4.0, 1.0);
    // Too small *and* in the wrong zone: resources come first, as in Swarm.
    let mut small2 = labelled("c", &[("zone", "us")]);
    small2.resources = res(4.0, 1.0);
    let mut big = labelled("d", &[("zone", "us")]);
    big.resources = res(4.0, 8.0);
    let p = placement(&["node.labels.zone==eu"], &[], 0);
    let d = schedule(
        &[big.clone(), small1.clone(), small2.clone()],
        &[],
        &ruled("web", 1, &p, res(1.0, 2.0)),
    );
    assert_eq!(
        d.unplaced[0].1,
        "no suitable node (insufficient memory on 2 nodes; \
         constraint node.labels.zone==eu not met on 1 node)"
    );
    let d = schedule(
        &[down, big, small1, small2],
        &[],
        &ruled("web", 1, &p, res(1.0, 2.0)),
    );
    assert_eq!(
        d.unplaced[0].1,
        "no suitable node (node not ready on 1 node; insufficient memory on 2 nodes; \
         constraint node.labels.zone==eu not met on 1 node)"
    );
}

#[test]
fn interleaved_services_see_each_others_load() {
    let nodes = [node("a"), node("b")];
    let pending: Vec<TaskRequest> = (0..4)
        .map(|i| {
            let service = if i % 2 == 0 { "web" } else { "db" };
            TaskRequest::new(format!("t{i}"), service, "process")
        })
        .collect();
    let d = schedule(&nodes, &[], &pending);
    // web→a; db→b (a has more tasks); web→b (fewer web); db→a (fewer db).
    assert_eq!(
        d.assigned,
        vec![
            ("t0".to_string(), "a".to_string()),
            ("t1".to_string(), "b".to_string()),
            ("t2".to_string(), "b".to_string()),
            ("t3".to_string(), "a".to_string()),
        ]
    );
}

#[test]
fn decisions_do_not_depend_on_node_order() {
    let mut nodes: Vec<NodeView> = (0..30)
        .map(|i| {
            let mut n = labelled(&format!("n{i:02}"), &[("zone", ["a", "b", "c"][i % 3])]);
            n.resources = res(2.0, (1 + i % 4) as f64);
            n
        })
        .collect();
    let p = placement(&["node.labels.zone!=c"], &["spread=node.labels.zone"], 3);
    let mut pending = ruled("web", 40, &p, res(0.5, 0.5));
    pending.extend(ruled("db", 20, &Placement::default(), res(0.25, 1.0)));
    let first = schedule(&nodes, &[], &pending);
    assert_eq!(first, schedule(&nodes, &[], &pending));
    nodes.reverse();
    nodes.rotate_left(7);
    assert_eq!(first, schedule(&nodes, &[], &pending));
}

#[test]
fn preferences_round_trip_and_explain_mistakes() {
    let p = Preference::parse(" Spread = node.labels.zone ").unwrap();
    assert_eq!(
        p,
        Preference::Spread {
            label: "zone".into()
        }
    );
    assert_eq!(p.to_string(), "spread=node.labels.zone");
    assert_eq!(
        Preference::parse("binpack=node.labels.zone")
            .unwrap_err()
            .to_string(),
        "invalid placement preference \"binpack=node.labels.zone\": unknown strategy; \
         expected spread=node.labels.KEY"
    );
    assert_eq!(
        Preference::parse("spread=node.zone")
            .unwrap_err()
            .to_string(),
        "invalid placement preference \"spread=node.zone\": cannot spread over \"node.zone\"; \
         expected node.labels.KEY with KEY made of letters, digits, '-', '_' and '.'"
    );
}

/// The obvious O(tasks × nodes) scheduler, written from the rules rather
/// than for speed: every node through the pipeline; per group of identical
/// tasks, a spread tree fixed at the group's first task (the nodes passing
/// then, with their tasks of the service); each task goes down the value
/// with the fewest tasks of the group's subtree among those with a node that
/// still passes, then to the lowest (tasks of the service, tasks overall,
/// ID). Reasons are given as the batch ends.
fn reference(nodes: &[NodeView], placed: &[Placed], pending: &[TaskRequest]) -> Decisions {
    type Path = Vec<(bool, String)>;
    let pipeline = filter::default_pipeline();
    let mut same: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut total: BTreeMap<String, u64> = BTreeMap::new();
    let mut avail: BTreeMap<String, Resources> =
        nodes.iter().map(|n| (n.id.clone(), n.resources)).collect();
    for p in placed {
        *same
            .entry((p.service_id.clone(), p.node_id.clone()))
            .or_default() += 1;
        *total.entry(p.node_id.clone()).or_default() += 1;
        let a = avail.get_mut(&p.node_id).unwrap();
        a.nano_cpus = a.nano_cpus.saturating_sub(p.reservations.nano_cpus);
        a.memory_bytes = a.memory_bytes.saturating_sub(p.reservations.memory_bytes);
    }
    let passes = |t: &TaskRequest,
                  n: &NodeView,
                  same: &BTreeMap<(String, String), u64>,
                  avail: &BTreeMap<String, Resources>| {
        let load = NodeLoad {
            tasks_of_service: same
                .get(&(t.service_id.clone(), n.id.clone()))
                .copied()
                .unwrap_or(0),
            available: avail[&n.id],
            host_port_in_use: None,
        };
        filter::first_rejection(&pipeline, n, t, &load)
    };
    let labels = |t: &TaskRequest| -> Vec<String> {
        t.placement
            .preferences
            .iter()
            .map(|Preference::Spread { label }| label.clone())
            .collect()
    };
    let path = |n: &NodeView, labels: &[String]| -> Path {
        labels
            .iter()
            .map(|l| match n.labels.get(l) {
                Some(v) => (false, v.clone()),
                None => (true, String::new()),
            })
            .collect()
    };
    let group_key = |t: &TaskRequest| {
        format!(
            "{}|{}|{:?}|{:?}",
            t.service_id, t.runtime, t.placement, t.reservations
        )
    };
    // group → (tree nodes, tasks of the group's service per path prefix)
    let mut trees: BTreeMap<String, (Vec<&NodeView>, BTreeMap<Path, u64>)> = BTreeMap::new();
    let mut d = Decisions::default();
    let mut unplaced = Vec::new();
    for t in pending {
        let labels = labels(t);
        let (tree, counts) = trees.entry(group_key(t)).or_insert_with(|| {
            let tree: Vec<&NodeView> = nodes
                .iter()
                .filter(|n| passes(t, n, &same, &avail).is_none())
                .collect();
            let mut counts = BTreeMap::new();
            for n in &tree {
                let s = same
                    .get(&(t.service_id.clone(), n.id.clone()))
                    .copied()
                    .unwrap_or(0);
                let p = path(n, &labels);
                for depth in 0..=p.len() {
                    *counts.entry(p[..depth].to_vec()).or_default() += s;
                }
            }
            (tree, counts)
        });
        let mut candidates: Vec<&NodeView> = tree
            .iter()
            .copied()
            .filter(|n| passes(t, n, &same, &avail).is_none())
            .collect();
        if candidates.is_empty() {
            unplaced.push(t);
            continue;
        }
        let mut prefix: Path = Vec::new();
        for depth in 0..labels.len() {
            let best = candidates
                .iter()
                .map(|n| path(n, &labels)[depth].clone())
                .min_by_key(|v| {
                    let mut p = prefix.clone();
                    p.push(v.clone());
                    (counts.get(&p).copied().unwrap_or(0), v.clone())
                })
                .unwrap();
            prefix.push(best);
            candidates.retain(|n| path(n, &labels)[..=depth] == prefix[..]);
        }
        let id = candidates
            .iter()
            .map(|n| {
                let s = same
                    .get(&(t.service_id.clone(), n.id.clone()))
                    .copied()
                    .unwrap_or(0);
                (s, total.get(&n.id).copied().unwrap_or(0), n.id.clone())
            })
            .min()
            .unwrap()
            .2;
        for depth in 0..=prefix.len() {
            *counts.entry(prefix[..depth].to_vec()).or_default() += 1;
        }
        *same.entry((t.service_id.clone(), id.clone())).or_default() += 1;
        *total.entry(id.clone()).or_default() += 1;
        let a = avail.get_mut(&id).unwrap();
        a.nano_cpus -= t.reservations.nano_cpus;
        a.memory_bytes -= t.reservations.memory_bytes;
        d.assigned.push((t.id.clone(), id));
    }
    for t in unplaced {
        let mut rejections = BTreeMap::new();
        for n in nodes {
            if let Some(r) = passes(t, n, &same, &avail) {
                *rejections.entry(r).or_default() += 1;
            }
        }
        d.unplaced
            .push((t.id.clone(), filter::explain(&rejections)));
    }
    d
}

proptest::proptest! {
    /// Heaps, lazy re-keying, dropping full nodes and branches pick exactly
    /// what the rules say, across services, spread preferences (nested, with
    /// unlabelled nodes), limits and reservations.
    #[test]
    fn the_batch_engine_agrees_with_the_rules(
        node_specs in proptest::collection::vec((0u8..4, 0u8..3, 0u64..5, 0u64..5, 0u8..6), 1..12),
        placed_specs in proptest::collection::vec((0usize..12, 0u8..3, 0u64..2), 0..10),
        task_specs in proptest::collection::vec((0u8..3, 0u64..3, 0u64..3, 0u8..2, 0u8..4), 0..40),
    ) {
        let nodes: Vec<NodeView> = node_specs
            .iter()
            .enumerate()
            .map(|(i, &(zone, rack, cpus, gib, ready))| {
                let mut labels = Vec::new();
                if zone < 3 {
                    labels.push(("zone", ["a", "b", "c"][zone as usize]));
                }
                if rack < 2 {
                    labels.push(("rack", ["r1", "r2"][rack as usize]));
                }
                NodeView {
                    ready: ready > 0,
                    resources: Resources { nano_cpus: cpus, memory_bytes: gib },
                    ..labelled(&format!("n{}", (i * 7) % 12), &labels)
                }
            })
            .collect();
        let placed: Vec<Placed> = placed_specs
            .iter()
            .map(|&(n, s, gib)| Placed {
                reservations: Resources { nano_cpus: 0, memory_bytes: gib },
                ..Placed::new(format!("s{s}"), nodes[n % nodes.len()].id.clone())
            })
            .collect();
        let pending: Vec<TaskRequest> = task_specs
            .iter()
            .enumerate()
            .map(|(i, &(s, cpus, max, constrained, prefs))| {
                let constraints: &[&str] = if constrained == 1 { &["node.labels.zone!=c"] } else { &[] };
                let preferences: &[&str] = match prefs {
                    0 | 1 => &[],
                    2 => &["spread=node.labels.zone"],
                    _ => &["spread=node.labels.rack", "spread=node.labels.zone"],
                };
                TaskRequest {
                    placement: placement(constraints, preferences, max),
                    reservations: Resources { nano_cpus: cpus, memory_bytes: 1 },
                    ..TaskRequest::new(format!("t{i}"), format!("s{s}"), "process")
                }
            })
            .collect();
        // Duplicate IDs would make "the" node ambiguous.
        let mut ids: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        proptest::prop_assume!(ids.len() == nodes.len());
        proptest::prop_assert_eq!(schedule(&nodes, &placed, &pending), reference(&nodes, &placed, &pending));
    }
}

#[test]
fn tasks_on_networks_skip_nodes_without_overlay_and_say_why() {
    let capable = node("a");
    let no_overlay = NodeView {
        overlay_unavailable: Some("overlay networking not available (no CAP_NET_ADMIN)".into()),
        ..node("b")
    };
    let nodes = [capable.clone(), no_overlay.clone()];
    let on_network: Vec<TaskRequest> = tasks("web", 4, "process")
        .into_iter()
        .map(|t| TaskRequest {
            needs_overlay: true,
            ..t
        })
        .collect();
    let decisions = schedule(&nodes, &[], &on_network);
    assert_eq!(nodes_used(&decisions), ["a"]);
    assert!(decisions.unplaced.is_empty());
    // Host-network tasks still use every node.
    let decisions = schedule(&nodes, &[], &tasks("plain", 4, "process"));
    assert_eq!(nodes_used(&decisions), ["a", "b"]);
    // With no capable node, the reason names the node's own words.
    let decisions = schedule(&[no_overlay], &[], &on_network[..1]);
    assert_eq!(
        decisions.unplaced,
        [(
            "web-t0".to_string(),
            "no suitable node (overlay networking not available (no CAP_NET_ADMIN) on 1 node)"
                .to_string()
        )]
    );
}

#[test]
fn tasks_with_secrets_skip_nodes_that_cannot_hold_them_and_say_why() {
    let capable = node("a");
    let unprivileged = NodeView {
        secrets_unavailable: Some("cannot hold secrets off disk (not root)".into()),
        ..node("b")
    };
    let nodes = [capable, unprivileged.clone()];
    let granted: Vec<TaskRequest> = tasks("db", 4, "process")
        .into_iter()
        .map(|t| TaskRequest {
            needs_secrets: true,
            ..t
        })
        .collect();
    let decisions = schedule(&nodes, &[], &granted);
    assert_eq!(nodes_used(&decisions), ["a"]);
    let decisions = schedule(&nodes, &[], &tasks("plain", 4, "process"));
    assert_eq!(nodes_used(&decisions), ["a", "b"]);
    let decisions = schedule(&[unprivileged], &[], &granted[..1]);
    assert_eq!(
        decisions.unplaced,
        [(
            "db-t0".to_string(),
            "no suitable node (cannot hold secrets off disk (not root) on 1 node)".to_string()
        )]
    );
}

#[test]
fn tasks_with_mounts_skip_nodes_that_cannot_mount_and_say_why() {
    let capable = node("a");
    let not_root = NodeView {
        mounts_unavailable: Some("process mounts not available (not root)".into()),
        ..node("b")
    };
    let with_mounts: Vec<TaskRequest> = tasks("db", 3, "process")
        .into_iter()
        .map(|t| TaskRequest {
            needs_mounts: true,
            ..t
        })
        .collect();
    let decisions = schedule(&[capable, not_root.clone()], &[], &with_mounts);
    assert_eq!(nodes_used(&decisions), ["a"]);
    let decisions = schedule(&[not_root], &[], &with_mounts[..1]);
    assert_eq!(
        decisions.unplaced[0].1,
        "no suitable node (process mounts not available (not root) on 1 node)"
    );
}

#[test]
fn two_tasks_binding_one_host_port_never_share_a_node_and_ps_says_why() {
    let nodes = [node("a"), node("b")];
    let port = crate::HostPort {
        port: 8080,
        udp: false,
    };
    let web: Vec<TaskRequest> = tasks("web", 3, "process")
        .into_iter()
        .map(|t| TaskRequest {
            host_ports: vec![port],
            ..t
        })
        .collect();
    let d = schedule(&nodes, &[], &web);
    assert_eq!(nodes_used(&d), ["a", "b"]);
    assert_eq!(d.assigned.len(), 2);
    assert_eq!(
        d.unplaced[0].1,
        "no suitable node (host-mode port 8080/tcp already in use on 2 nodes)"
    );
    // A task of another service already on a holds the port there; UDP 8080 is another port.
    let placed = vec![Placed {
        host_ports: vec![port],
        ..Placed::new("other", "a")
    }];
    let d = schedule(&nodes, &placed, &web[..1]);
    assert_eq!(nodes_used(&d), ["b"]);
    let udp: Vec<TaskRequest> = web[..1]
        .iter()
        .cloned()
        .map(|t| TaskRequest {
            host_ports: vec![crate::HostPort {
                port: 8080,
                udp: true,
            }],
            ..t
        })
        .collect();
    let d = schedule(&nodes[..1], &placed, &udp);
    assert_eq!(nodes_used(&d), ["a"]);
}

#[test]
fn a_slot_with_a_volume_goes_back_to_its_node_when_it_fits() {
    let nodes = [node("a"), node("b"), node("c")];
    // "c" would win on spreading (a and b each run a task of the service).
    let placed = [Placed::new("db", "a"), Placed::new("db", "b")];
    let mut task = tasks("db", 1, "process").remove(0);
    task.preferred_node = Some("a".into());
    let decisions = schedule(&nodes, &placed, std::slice::from_ref(&task));
    assert_eq!(decisions.assigned, [(task.id.clone(), "a".to_string())]);
    // A preferred node that cannot take it (drained) is passed over.
    let drained = [
        NodeView {
            availability: Availability::Drain,
            ..node("a")
        },
        node("b"),
        node("c"),
    ];
    let decisions = schedule(&drained, &placed, std::slice::from_ref(&task));
    assert_eq!(decisions.assigned, [(task.id.clone(), "c".to_string())]);
}
