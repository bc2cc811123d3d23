use super::*;

fn node(id: &str) -> NodeView {
    NodeView {
        id: id.into(),
        ready: true,
        availability: Availability::Active,
        runtimes: vec!["process".into()],
    }
}

fn tasks(service: &str, n: usize, runtime: &str) -> Vec<TaskRequest> {
    (0..n)
        .map(|i| TaskRequest {
            id: format!("{service}-t{i}"),
            service_id: service.into(),
            runtime: runtime.into(),
        })
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
    let placed = vec![
        Placed {
            service_id: "db".into(),
            node_id: "a".into(),
        },
        Placed {
            service_id: "db".into(),
            node_id: "a".into(),
        },
    ];
    let d = schedule(&nodes, &placed, &tasks("web", 1, "process"));
    assert_eq!(d.assigned, vec![("web-t0".into(), "b".into())]);
    // Same-service count wins over total load.
    let placed = vec![
        Placed {
            service_id: "web".into(),
            node_id: "b".into(),
        },
        Placed {
            service_id: "db".into(),
            node_id: "a".into(),
        },
        Placed {
            service_id: "db".into(),
            node_id: "a".into(),
        },
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
