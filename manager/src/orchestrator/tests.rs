use shoal_proto::v1::{Node, NodeStatus, ServiceSpec, TaskSpec};

use super::*;

fn state_with_service(replicas: u64) -> ClusterState {
    let mut state = ClusterState::default();
    let service = Service {
        id: "svc".into(),
        spec: Some(ServiceSpec {
            name: "web".into(),
            replicas,
            task: Some(TaskSpec {
                runtime: "process".into(),
                command: vec!["sleep".into(), "100".into()],
                ..Default::default()
            }),
            ..Default::default()
        }),
        spec_version: 1,
        ..Default::default()
    };
    for id in ["n1", "n2"] {
        state.nodes.insert(
            id.into(),
            Node {
                id: id.into(),
                status: Some(NodeStatus {
                    state: NodeState::Ready as i32,
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
    }
    state.services.insert("svc".into(), service);
    state
}

/// Applies the orchestrator's commands until it has nothing more to say.
fn converge(state: &mut ClusterState, now: i64) -> usize {
    let mut counter = 0;
    let mut rounds = 0;
    loop {
        let mut ids = || {
            counter += 1;
            format!("t{now}-{counter}")
        };
        let commands = reconcile(state, now, &mut ids);
        if commands.is_empty() {
            return rounds;
        }
        rounds += 1;
        assert!(rounds < 5, "orchestrator does not settle: {commands:?}");
        for c in commands {
            state.apply(c, &mut Vec::new()).unwrap();
        }
    }
}

fn live_slots(state: &ClusterState) -> Vec<u64> {
    let mut slots: Vec<u64> = state
        .tasks
        .values()
        .filter(|t| t.desired_state == TaskState::Running as i32 && !is_terminal(observed(t)))
        .map(|t| t.slot)
        .collect();
    slots.sort();
    slots
}

fn set_running_on(state: &mut ClusterState, node: &str) {
    let ids: Vec<String> = state.tasks.keys().cloned().collect();
    for id in ids {
        let task = state.tasks.get_mut(&id).unwrap();
        if task.node_id.is_empty() && task.desired_state == TaskState::Running as i32 {
            task.node_id = node.into();
            task.status = Some(TaskStatus {
                state: TaskState::Running as i32,
                ..Default::default()
            });
        }
    }
}

#[test]
fn creates_one_task_per_slot_and_then_settles() {
    let mut state = state_with_service(3);
    assert_eq!(converge(&mut state, 1), 1);
    assert_eq!(live_slots(&state), vec![1, 2, 3]);
    // A second pass, and a repeated stale write, change nothing.
    let mut ids = || "dup".to_string();
    let stale = vec![Command::CreateTasks(vec![new_task(
        &state.services["svc"],
        2,
        1,
        "dup".into(),
    )])];
    for c in stale {
        state.apply(c, &mut Vec::new()).unwrap();
    }
    assert!(reconcile(&state, 2, &mut ids).is_empty());
    assert_eq!(state.tasks.len(), 3);
}

#[test]
fn scaling_down_retires_the_highest_slots() {
    let mut state = state_with_service(4);
    converge(&mut state, 1);
    set_running_on(&mut state, "n1");
    state
        .services
        .get_mut("svc")
        .unwrap()
        .spec
        .as_mut()
        .unwrap()
        .replicas = 1;
    converge(&mut state, 2);
    assert_eq!(live_slots(&state), vec![1]);
    let retired: Vec<u64> = state
        .tasks
        .values()
        .filter(|t| t.desired_state == TaskState::Shutdown as i32)
        .map(|t| t.slot)
        .collect();
    assert_eq!(retired.len(), 3);
    assert!(retired.iter().all(|s| *s > 1));
}

#[test]
fn a_failed_task_is_replaced_in_its_slot_and_history_is_capped() {
    let mut state = state_with_service(1);
    converge(&mut state, 1);
    for round in 0..8 {
        set_running_on(&mut state, "n1");
        let id = state
            .tasks
            .values()
            .find(|t| t.desired_state == TaskState::Running as i32)
            .unwrap()
            .id
            .clone();
        state
            .tasks
            .get_mut(&id)
            .unwrap()
            .status
            .as_mut()
            .unwrap()
            .state = TaskState::Failed as i32;
        converge(&mut state, 10 + round);
        assert_eq!(live_slots(&state), vec![1]);
    }
    // One live task plus at most five dead ones.
    assert_eq!(state.tasks.len(), 1 + DEFAULT_TASK_HISTORY);
}

#[test]
fn tasks_on_a_down_node_are_replaced() {
    let mut state = state_with_service(2);
    converge(&mut state, 1);
    set_running_on(&mut state, "n1");
    state
        .nodes
        .get_mut("n1")
        .unwrap()
        .status
        .as_mut()
        .unwrap()
        .state = NodeState::Down as i32;
    converge(&mut state, 2);
    let pending: Vec<&Task> = state
        .tasks
        .values()
        .filter(|t| t.desired_state == TaskState::Running as i32)
        .collect();
    assert_eq!(pending.len(), 2);
    assert!(pending.iter().all(|t| t.node_id.is_empty()));
    let old: Vec<&Task> = state.tasks.values().filter(|t| t.node_id == "n1").collect();
    assert!(old
        .iter()
        .all(|t| t.desired_state == TaskState::Shutdown as i32));
}

#[test]
fn a_removed_services_tasks_are_forgotten_once_stopped() {
    let mut state = state_with_service(2);
    converge(&mut state, 1);
    set_running_on(&mut state, "n1");
    state
        .apply(
            Command::RemoveService {
                service_id: "svc".into(),
            },
            &mut Vec::new(),
        )
        .unwrap();
    converge(&mut state, 2);
    assert_eq!(
        state.tasks.len(),
        2,
        "still running: kept until the agent stops them"
    );
    for task in state.tasks.values_mut() {
        task.status.as_mut().unwrap().state = TaskState::Shutdown as i32;
    }
    converge(&mut state, 3);
    assert!(state.tasks.is_empty());
}

#[test]
fn tasks_on_a_drained_node_move_and_paused_ones_stay() {
    let mut state = state_with_service(2);
    converge(&mut state, 1);
    set_running_on(&mut state, "n1");
    state.nodes.get_mut("n1").unwrap().spec = Some(shoal_proto::v1::NodeSpec {
        availability: NodeAvailability::Pause as i32,
        ..Default::default()
    });
    assert!(
        reconcile(&state, 2, &mut || "x".into()).is_empty(),
        "pause keeps tasks"
    );
    state
        .nodes
        .get_mut("n1")
        .unwrap()
        .spec
        .as_mut()
        .unwrap()
        .availability = NodeAvailability::Drain as i32;
    converge(&mut state, 3);
    let on_n1: Vec<&Task> = state.tasks.values().filter(|t| t.node_id == "n1").collect();
    assert!(on_n1
        .iter()
        .all(|t| t.desired_state == TaskState::Shutdown as i32));
    assert_eq!(live_slots(&state), vec![1, 2]);
}
