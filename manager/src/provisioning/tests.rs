//! The hooks' decisions with a hand-moved clock: pending too long,
//! single flight, cool-down, lost calls, and the decommission floor.

use shoal_proto::v1::{
    Cluster, ClusterSpec, Meta, Node, NodeSpec, NodeStatus, ResourceRequirements, Resources, Task,
    TaskSpec, TaskStatus,
};

use super::*;
use crate::store::Command;

const GIB: i64 = 1 << 30;

fn settings() -> NodeProvisioning {
    NodeProvisioning {
        provisioner: "make-machine".into(),
        pending_threshold_ms: 10_000,
        timeout_ms: 60_000,
        cooldown_ms: 30_000,
        decommissioner: "drop-machine".into(),
        idle_window_ms: 20_000,
        min_nodes: 0,
    }
}

fn node(id: &str, role: NodeRole) -> Node {
    Node {
        id: id.into(),
        role: role as i32,
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            state: NodeState::Ready as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn state(spec: NodeProvisioning) -> ClusterState {
    let mut state = ClusterState {
        cluster: Some(Cluster {
            id: "c".into(),
            spec: Some(ClusterSpec {
                node_provisioning: Some(spec),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    state
        .nodes
        .insert("m1".into(), node("m1", NodeRole::Manager));
    state
}

fn pending(state: &mut ClusterState, id: &str, created_ms: i64, reason: &str) {
    state.tasks.insert(
        id.into(),
        Task {
            id: id.into(),
            meta: Some(Meta {
                created_at_ms: created_ms,
                ..Default::default()
            }),
            service_id: "svc".into(),
            service_name: "big".into(),
            desired_state: TaskState::Running as i32,
            status: Some(TaskStatus {
                state: TaskState::Pending as i32,
                err: reason.into(),
                ..Default::default()
            }),
            spec: Some(TaskSpec {
                runtime: "process".into(),
                resources: Some(ResourceRequirements {
                    reservations: Some(Resources {
                        nano_cpus: 500_000_000,
                        memory_bytes: 2 * GIB,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
}

fn running_on(state: &mut ClusterState, id: &str, node: &str) {
    state.tasks.insert(
        id.into(),
        Task {
            id: id.into(),
            node_id: node.into(),
            desired_state: TaskState::Running as i32,
            status: Some(TaskStatus {
                state: TaskState::Running as i32,
                ..Default::default()
            }),
            ..Default::default()
        },
    );
}

const MEMORY: &str = "no suitable node (insufficient memory on 1 node)";

/// Decides once and applies the command the leader would write, as the
/// runner does (a start, or a lost call's end).
fn provision_round(state: &mut ClusterState, now: i64) -> Option<Action> {
    let s = Settings::of(state);
    let status = state
        .cluster
        .as_ref()
        .unwrap()
        .provisioning_status
        .clone()
        .unwrap_or_default();
    let short = shortfall(state, &s, now);
    let mut n = 0;
    let mut id = || {
        n += 1;
        format!("call-{now}-{n}")
    };
    let action = decide_provision(&s, &status, short.as_ref(), now, &mut id);
    apply(state, action.as_ref(), now);
    action
}

fn apply(state: &mut ClusterState, action: Option<&Action>, now: i64) {
    let command = match action {
        Some(Action::Start(call)) => Command::StartProvisionerCall {
            call: call.clone(),
            at_ms: now,
        },
        Some(Action::Expire(call)) => Command::EndProvisionerCall {
            call_id: call.id.clone(),
            kind: call.kind.clone(),
            event: lost_event(call, now),
            reactivate: false,
        },
        None => return,
    };
    state.apply(command, &mut Vec::new()).expect("applies");
}

fn end(state: &mut ClusterState, kind: &str, now: i64, code: i32, reactivate: bool) {
    let status = state
        .cluster
        .as_ref()
        .unwrap()
        .provisioning_status
        .clone()
        .unwrap();
    let call = if kind == PROVISION {
        status.provision_in_flight
    } else {
        status.decommission_in_flight
    }
    .expect("a call in flight");
    state
        .apply(
            Command::EndProvisionerCall {
                call_id: call.id.clone(),
                kind: kind.into(),
                event: ProvisioningEvent {
                    at_ms: now,
                    kind: kind.into(),
                    message: format!("exited {code}"),
                    exit_code: code,
                    node_id: call.node_id.clone(),
                    ..Default::default()
                },
                reactivate,
            },
            &mut Vec::new(),
        )
        .expect("applies");
}

#[test]
fn tasks_short_of_resources_call_the_provisioner_only_after_the_threshold() {
    let mut s = state(settings());
    pending(&mut s, "t1", 1_000, MEMORY);
    pending(&mut s, "t2", 4_000, MEMORY);
    // A task waiting for a constraint no node meets is no shortfall.
    pending(
        &mut s,
        "t3",
        0,
        "no suitable node (constraint node.labels.zone==eu not met on 1 node)",
    );
    assert_eq!(provision_round(&mut s, 10_999), None, "9.999 s pending");
    let Some(Action::Start(call)) = provision_round(&mut s, 11_000) else {
        panic!("10 s pending: the provisioner runs")
    };
    assert_eq!((call.kind.as_str(), call.tasks), (PROVISION, 1));
    assert_eq!(call.deadline_ms, 71_000);

    let short = shortfall(&s, &Settings::of(&s), 14_000).expect("two tasks now");
    assert_eq!(short.tasks, 2);
    assert_eq!(short.memory_bytes, 4 * GIB as u64);
    assert_eq!(short.largest_task.memory_bytes, 2 * GIB as u64);
    assert_eq!(short.services.len(), 1);
    assert_eq!(short.services[0].reason, MEMORY);
    assert_eq!(short.services[0].pending_since_ms, 1_000);
    assert_eq!(short.summary(), "2 tasks pending: 1 cpu, 4096 MiB memory");
    let json = serde_json::to_value(&short).unwrap();
    assert_eq!(json["services"][0]["reservation"]["memory_bytes"], 2 * GIB);
}

#[test]
fn one_call_at_a_time_then_a_cool_down_before_the_next() {
    let mut s = state(settings());
    pending(&mut s, "t1", 0, MEMORY);
    assert!(matches!(
        provision_round(&mut s, 10_000),
        Some(Action::Start(_))
    ));
    // In flight: nothing more however long the tasks wait, up to the
    // deadline and its grace.
    for now in [10_001, 30_000, 70_000, 70_000 + LOST_GRACE_MS - 1] {
        assert_eq!(provision_round(&mut s, now), None, "at {now}");
    }
    // The store refuses a second start too (two racing leaders).
    let second = Command::StartProvisionerCall {
        call: ProvisionerCall {
            id: "other".into(),
            kind: PROVISION.into(),
            ..Default::default()
        },
        at_ms: 20_000,
    };
    assert!(s.apply(second, &mut Vec::new()).is_err());

    // It ends at 40 s: the cool-down holds until 70 s though still short.
    let mut s = state(settings());
    pending(&mut s, "t1", 0, MEMORY);
    provision_round(&mut s, 10_000);
    end(&mut s, PROVISION, 40_000, 0, false);
    assert_eq!(provision_round(&mut s, 69_999), None);
    assert!(matches!(
        provision_round(&mut s, 70_000),
        Some(Action::Start(_))
    ));
    let events = &s
        .cluster
        .as_ref()
        .unwrap()
        .provisioning_status
        .as_ref()
        .unwrap()
        .events;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].message, "exited 0");

    // Once placed, nothing is short: no call after the cool-down.
    let mut s = state(settings());
    pending(&mut s, "t1", 0, MEMORY);
    provision_round(&mut s, 10_000);
    end(&mut s, PROVISION, 40_000, 0, false);
    s.tasks.clear();
    running_on(&mut s, "t1", "m1");
    assert_eq!(provision_round(&mut s, 100_000), None);
}

#[test]
fn a_call_an_old_leader_never_finished_is_expired_once_then_cools_down() {
    let mut s = state(settings());
    pending(&mut s, "t1", 0, MEMORY);
    provision_round(&mut s, 10_000);
    // A new leader (same store, nothing in memory) at the deadline + grace.
    let at = 70_000 + LOST_GRACE_MS;
    let Some(Action::Expire(call)) = provision_round(&mut s, at) else {
        panic!("expired")
    };
    assert_eq!(call.kind, PROVISION);
    let status = s
        .cluster
        .as_ref()
        .unwrap()
        .provisioning_status
        .clone()
        .unwrap();
    assert!(status.provision_in_flight.is_none());
    assert_eq!(status.events[0].exit_code, -1);
    assert!(
        status.events[0].message.contains("lost"),
        "{}",
        status.events[0].message
    );
    // The old leader's late report changes nothing.
    let late = Command::EndProvisionerCall {
        call_id: call.id.clone(),
        kind: PROVISION.into(),
        event: ProvisioningEvent::default(),
        reactivate: false,
    };
    s.apply(late, &mut Vec::new()).unwrap();
    assert_eq!(
        s.cluster
            .as_ref()
            .unwrap()
            .provisioning_status
            .as_ref()
            .unwrap()
            .events
            .len(),
        1
    );
    // The cool-down runs from the expiry.
    assert_eq!(provision_round(&mut s, at + 29_999), None);
    assert!(matches!(
        provision_round(&mut s, at + 30_000),
        Some(Action::Start(_))
    ));
}

#[test]
fn without_a_provisioner_nothing_is_called() {
    let mut spec = settings();
    spec.provisioner = " ".into();
    let mut s = state(spec);
    pending(&mut s, "t1", 0, MEMORY);
    assert_eq!(provision_round(&mut s, 1_000_000), None);
    // Defaults apply to zero durations.
    let d = Settings::from_spec(None);
    assert_eq!(d.pending_threshold_ms, DEFAULT_PENDING_THRESHOLD_MS as i64);
    assert_eq!(d.provisioner, None);
}

fn decommission_round(state: &mut ClusterState, idle: &mut IdleNodes, now: i64) -> Option<Action> {
    idle.observe(state, now);
    let s = Settings::of(state);
    let status = state
        .cluster
        .as_ref()
        .unwrap()
        .provisioning_status
        .clone()
        .unwrap_or_default();
    let mut id = || format!("d-{now}");
    let action = decide_decommission(&s, &status, state, idle, now, &mut id);
    apply(state, action.as_ref(), now);
    action
}

#[test]
fn an_idle_worker_is_drained_and_decommissioned_after_the_window_never_below_the_floor() {
    let mut spec = settings();
    spec.min_nodes = 2;
    let mut s = state(spec);
    for w in ["w1", "w2"] {
        s.nodes.insert(w.into(), node(w, NodeRole::Worker));
    }
    running_on(&mut s, "busy", "w2");
    let mut idle = IdleNodes::default();
    assert_eq!(decommission_round(&mut s, &mut idle, 0), None);
    assert_eq!(decommission_round(&mut s, &mut idle, 19_999), None);
    let Some(Action::Start(call)) = decommission_round(&mut s, &mut idle, 20_000) else {
        panic!("w1 idle for the window")
    };
    // The idle manager is never the one; the busy worker neither.
    assert_eq!(call.node_id, "w1");
    assert_eq!(
        s.nodes["w1"].spec.as_ref().unwrap().availability(),
        NodeAvailability::Drain
    );
    // One at a time.
    assert_eq!(decommission_round(&mut s, &mut idle, 25_000), None);
    end(&mut s, DECOMMISSION, 26_000, 0, false);
    // w2 goes idle: 2 serving nodes left (m1, w2) = the floor, so it stays.
    s.tasks.clear();
    assert_eq!(decommission_round(&mut s, &mut idle, 30_000), None);
    assert_eq!(decommission_round(&mut s, &mut idle, 200_000), None);
}

#[test]
fn a_failed_decommission_gives_the_node_back_and_a_shortfall_blocks_it() {
    let mut s = state(settings());
    s.nodes.insert("w1".into(), node("w1", NodeRole::Worker));
    let mut idle = IdleNodes::default();
    decommission_round(&mut s, &mut idle, 0);
    assert!(matches!(
        decommission_round(&mut s, &mut idle, 20_000),
        Some(Action::Start(_))
    ));
    end(&mut s, DECOMMISSION, 21_000, 1, true);
    assert_eq!(
        s.nodes["w1"].spec.as_ref().unwrap().availability(),
        NodeAvailability::Active
    );
    // Tasks short of memory: no node goes, however idle.
    pending(&mut s, "t1", 0, MEMORY);
    assert_eq!(decommission_round(&mut s, &mut idle, 100_000), None);
    // A node that gets a task starts its window again.
    s.tasks.clear();
    running_on(&mut s, "x", "w1");
    decommission_round(&mut s, &mut idle, 110_000);
    s.tasks.clear();
    assert_eq!(decommission_round(&mut s, &mut idle, 120_000), None);
    assert!(matches!(
        decommission_round(&mut s, &mut idle, 140_000),
        Some(Action::Start(_))
    ));
}
