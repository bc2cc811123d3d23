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
        // The default restart delay (5 s) passes before the replacement.
        let failed_at = 10_000 * (round + 1);
        state
            .tasks
            .get_mut(&id)
            .unwrap()
            .status
            .as_mut()
            .unwrap()
            .timestamp_ms = failed_at;
        converge(&mut state, failed_at + 1);
        assert!(
            live_slots(&state).is_empty(),
            "replaced before the restart delay"
        );
        converge(&mut state, failed_at + DEFAULT_RESTART_DELAY_MS as i64);
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

/// Ends the slot's live task with `state` at `at_ms`.
fn end_live_task(state: &mut ClusterState, slot: u64, end: TaskState, at_ms: i64) {
    let task = state
        .tasks
        .values_mut()
        .find(|t| {
            t.slot == slot
                && t.desired_state == TaskState::Running as i32
                && !is_terminal(observed(t))
        })
        .expect("a live task in the slot");
    task.node_id = "n1".into();
    task.status = Some(TaskStatus {
        state: end as i32,
        timestamp_ms: at_ms,
        ..Default::default()
    });
}

fn with_policy(condition: RestartCondition, max_attempts: u64) -> ClusterState {
    let mut state = state_with_service(1);
    let task = state
        .services
        .get_mut("svc")
        .unwrap()
        .spec
        .as_mut()
        .unwrap()
        .task
        .as_mut()
        .unwrap();
    task.restart_policy = Some(RestartPolicy {
        condition: condition as i32,
        delay_ms: 0,
        delay_set: true,
        max_attempts,
        window_ms: 0,
    });
    state
}

fn tasks_in_slot(state: &ClusterState) -> usize {
    state.tasks.values().filter(|t| t.slot == 1).count()
}

#[test]
fn restart_policy_on_failure_stops_after_max_attempts() {
    let mut state = with_policy(RestartCondition::OnFailure, 2);
    converge(&mut state, 1);
    for round in 0..5 {
        if live_slots(&state).is_empty() {
            break;
        }
        end_live_task(&mut state, 1, TaskState::Failed, 10 + round);
        converge(&mut state, 20 + round);
    }
    // The first run and two restarts: three tasks, then no more.
    assert_eq!(tasks_in_slot(&state), 3);
    assert!(live_slots(&state).is_empty());
}

#[test]
fn restart_policy_none_never_restarts_and_any_restarts_a_clean_exit() {
    let mut state = with_policy(RestartCondition::None, 0);
    converge(&mut state, 1);
    end_live_task(&mut state, 1, TaskState::Failed, 2);
    converge(&mut state, 3);
    assert_eq!(tasks_in_slot(&state), 1);

    let mut state = with_policy(RestartCondition::OnFailure, 0);
    converge(&mut state, 1);
    end_live_task(&mut state, 1, TaskState::Complete, 2);
    converge(&mut state, 3);
    assert_eq!(
        tasks_in_slot(&state),
        1,
        "on-failure leaves a clean exit alone"
    );

    let mut state = with_policy(RestartCondition::Any, 0);
    converge(&mut state, 1);
    end_live_task(&mut state, 1, TaskState::Complete, 2);
    converge(&mut state, 3);
    assert_eq!(live_slots(&state), vec![1], "any restarts a clean exit");
}

#[test]
fn a_global_service_runs_one_task_per_eligible_node() {
    let mut state = state_with_service(0);
    let spec = state
        .services
        .get_mut("svc")
        .unwrap()
        .spec
        .as_mut()
        .unwrap();
    spec.mode = ServiceMode::Global as i32;
    for node in state.nodes.values_mut() {
        node.description = Some(shoal_proto::v1::NodeDescription {
            runtimes: vec!["process".into()],
            ..Default::default()
        });
    }
    converge(&mut state, 1);
    let mut nodes: Vec<&str> = state.tasks.values().map(|t| t.node_id.as_str()).collect();
    nodes.sort();
    assert_eq!(nodes, vec!["n1", "n2"]);
    state.nodes.get_mut("n2").unwrap().spec = Some(shoal_proto::v1::NodeSpec {
        availability: NodeAvailability::Drain as i32,
        ..Default::default()
    });
    converge(&mut state, 2);
    let live: Vec<&str> = state
        .tasks
        .values()
        .filter(|t| t.desired_state == TaskState::Running as i32)
        .map(|t| t.node_id.as_str())
        .collect();
    assert_eq!(
        live,
        vec!["n1"],
        "a drained node's global task is not moved elsewhere"
    );
}

#[test]
fn a_spec_change_rolls_one_slot_at_a_time_stopping_first() {
    let mut state = state_with_service(4);
    converge(&mut state, 1);
    set_running_on(&mut state, "n1");
    {
        let service = state.services.get_mut("svc").unwrap();
        service.spec_version = 2;
        let task = service.spec.as_mut().unwrap().task.as_mut().unwrap();
        task.env.push("VERSION=2".into());
    }
    // A scale alone (spec version bump, same task spec) restarts nothing.
    let mut none = || "none".to_string();
    let mut scaled = state.clone();
    scaled
        .services
        .get_mut("svc")
        .unwrap()
        .spec
        .as_mut()
        .unwrap()
        .task
        .as_mut()
        .unwrap()
        .env
        .pop();
    assert!(reconcile(&scaled, 50, &mut none).is_empty());
    let mut counter = 0;
    for round in 0..40 {
        let mut ids = || {
            counter += 1;
            format!("v2-{counter}")
        };
        for c in reconcile(&state, 100 + round, &mut ids) {
            state.apply(c, &mut Vec::new()).unwrap();
        }
        // Never more than one slot (the parallelism) out of service.
        let running = state
            .tasks
            .values()
            .filter(|t| {
                observed(t) == TaskState::Running && t.desired_state == TaskState::Running as i32
            })
            .count();
        assert!(running >= 3, "round {round}: only {running} running");
        let done = live_slots(&state).len() == 4
            && state
                .tasks
                .values()
                .filter(|t| t.desired_state == TaskState::Running as i32)
                .all(|t| {
                    t.spec
                        .as_ref()
                        .unwrap()
                        .env
                        .contains(&"VERSION=2".to_string())
                        && observed(t) == TaskState::Running
                });
        if done {
            return;
        }
        // The agent: stops what was retired, starts what is new.
        for task in state.tasks.values_mut() {
            let status = task.status.get_or_insert_with(Default::default);
            if task.desired_state == TaskState::Shutdown as i32
                && status.state() == TaskState::Running
            {
                status.state = TaskState::Shutdown as i32;
            } else if status.state() == TaskState::Pending {
                task.node_id = "n1".into();
                status.state = TaskState::Running as i32;
            }
        }
    }
    panic!("the update did not finish");
}
