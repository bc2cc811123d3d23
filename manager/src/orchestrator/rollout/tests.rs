//! Rollouts driven through the orchestrator and the store, with a simulated
//! agent that starts what is assigned and stops what is retired, one step per
//! second of simulated time.

use shoal_proto::v1::{
    Node, NodeState, NodeStatus, Service, ServiceSpec, TaskSpec, TaskState, TaskStatus,
    UpdateConfig, UpdateFailureAction, UpdateOrder, UpdateState,
};

use crate::orchestrator::{observed, reconcile};
use crate::store::{is_terminal, ClusterState, Command};

const STEP_MS: i64 = 1_000;

fn spec(version: &str, config: UpdateConfig) -> ServiceSpec {
    ServiceSpec {
        name: "web".into(),
        replicas: 6,
        task: Some(TaskSpec {
            runtime: "process".into(),
            command: vec!["serve".into()],
            env: vec![format!("VERSION={version}")],
            ..Default::default()
        }),
        update_config: Some(config),
        rollback_config: Some(UpdateConfig {
            parallelism: 0,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn version(task: &shoal_proto::v1::Task) -> &str {
    task.spec.as_ref().unwrap().env[0].as_str()
}

/// A cluster of one node and a service whose 6 tasks run `VERSION=1`.
struct Sim {
    state: ClusterState,
    now: i64,
    ids: u64,
    /// Tasks of this version fail as soon as they start.
    broken: Option<&'static str>,
}

impl Sim {
    fn new(config: UpdateConfig) -> Sim {
        let mut state = ClusterState::default();
        state.nodes.insert(
            "n1".into(),
            Node {
                id: "n1".into(),
                status: Some(NodeStatus {
                    state: NodeState::Ready as i32,
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        let service = Service {
            id: "svc".into(),
            spec: Some(spec("1", config)),
            spec_version: 1,
            ..Default::default()
        };
        state
            .apply(Command::CreateService(service), &mut Vec::new())
            .unwrap();
        let mut sim = Sim {
            state,
            now: 1_000_000,
            ids: 0,
            broken: None,
        };
        sim.run_until(|s| s.running("VERSION=1") == 6);
        sim
    }

    fn update(&mut self, version: &str) {
        let service = &self.state.services["svc"];
        let mut new = service.spec.clone().unwrap();
        new.task.as_mut().unwrap().env = vec![format!("VERSION={version}")];
        self.apply_spec(new);
    }

    /// `service update` with `new` as the spec.
    fn apply_spec(&mut self, new: ServiceSpec) {
        self.state
            .apply(
                Command::UpdateServiceSpec {
                    service_id: "svc".into(),
                    spec: new,
                    expected_version: 0,
                    at_ms: self.now,
                },
                &mut Vec::new(),
            )
            .unwrap();
    }

    fn running(&self, version: &str) -> usize {
        self.state
            .tasks
            .values()
            .filter(|t| {
                observed(t) == TaskState::Running
                    && t.desired_state == TaskState::Running as i32
                    && self::version(t) == version
            })
            .count()
    }

    fn running_total(&self) -> usize {
        self.state
            .tasks
            .values()
            .filter(|t| {
                observed(t) == TaskState::Running && t.desired_state <= TaskState::Running as i32
            })
            .count()
    }

    fn update_state(&self) -> UpdateState {
        self.state.services["svc"]
            .update_status
            .as_ref()
            .map(|s| s.state())
            .unwrap_or_default()
    }

    /// One second: the orchestrator's pass, the allocator, the scheduler
    /// (everything ready goes on n1), then the agent.
    fn step(&mut self) {
        self.now += STEP_MS;
        let mut ids = self.ids;
        let commands = reconcile(&self.state, self.now, &mut || {
            ids += 1;
            format!("t{ids}")
        });
        self.ids = ids;
        for command in commands {
            let _ = self.state.apply(command, &mut Vec::new());
        }
        for command in crate::network::allocate(&self.state, self.now) {
            let _ = self.state.apply(command, &mut Vec::new());
        }
        let now = self.now;
        let broken = self.broken;
        let unready: Vec<String> = self
            .state
            .tasks
            .values()
            .filter(|t| t.node_id.is_empty() && !crate::network::ready_to_place(&self.state, t))
            .map(|t| t.id.clone())
            .collect();
        for task in self.state.tasks.values_mut() {
            if unready.contains(&task.id) {
                continue;
            }
            let state = observed(task);
            let next = if is_terminal(state) {
                continue;
            } else if task.desired_state > TaskState::Running as i32 {
                TaskState::Shutdown
            } else if state == TaskState::Pending {
                task.node_id = "n1".into();
                if broken == Some(version(task)) {
                    TaskState::Failed
                } else {
                    task.running_since_ms = now;
                    TaskState::Running
                }
            } else {
                continue;
            };
            task.status = Some(TaskStatus {
                state: next as i32,
                timestamp_ms: now,
                ..Default::default()
            });
        }
    }

    /// Steps until `done`, checking `invariant` after every step.
    fn run_until_checked(
        &mut self,
        done: impl Fn(&Sim) -> bool,
        invariant: impl Fn(&Sim) -> Result<(), String>,
    ) -> usize {
        self.run_until_within(200, done, invariant)
    }

    /// Steps until `done`, checking `invariant` after each step; fails
    /// after `limit` steps.
    fn run_until_within(
        &mut self,
        limit: usize,
        done: impl Fn(&Sim) -> bool,
        invariant: impl Fn(&Sim) -> Result<(), String>,
    ) -> usize {
        for step in 0..limit {
            if done(self) {
                return step;
            }
            self.step();
            if let Err(e) = invariant(self) {
                panic!("after step {step}: {e}");
            }
        }
        panic!("did not converge; tasks: {:#?}", self.state.tasks);
    }

    fn run_until(&mut self, done: impl Fn(&Sim) -> bool) -> usize {
        self.run_until_checked(done, |_| Ok(()))
    }

    /// Whether exactly `n` tasks are desired running, each observed
    /// running and passing `each`.
    fn all_live_running(&self, n: usize, each: impl Fn(&shoal_proto::v1::Task) -> bool) -> bool {
        let live: Vec<&shoal_proto::v1::Task> = self
            .state
            .tasks
            .values()
            .filter(|t| t.desired_state == TaskState::Running as i32)
            .collect();
        live.len() == n
            && live
                .iter()
                .all(|t| observed(t) == TaskState::Running && each(t))
    }

    /// Ten more steps create no task: what converged happened once.
    fn assert_settled(&mut self) {
        let count = self.state.tasks.len();
        for _ in 0..10 {
            self.step();
        }
        assert_eq!(self.state.tasks.len(), count, "and only once");
    }
}

fn config(parallelism: u64, order: UpdateOrder, action: UpdateFailureAction) -> UpdateConfig {
    let mut c = UpdateConfig {
        parallelism,
        monitor_ms: 3_000,
        ..Default::default()
    };
    c.set_order(order);
    c.set_failure_action(action);
    c
}

#[test]
fn stop_first_keeps_all_but_parallelism_running_and_completes_after_monitor() {
    let mut sim = Sim::new(config(
        2,
        UpdateOrder::StopFirst,
        UpdateFailureAction::Pause,
    ));
    sim.update("2");
    assert_eq!(sim.update_state(), UpdateState::Updating);
    sim.run_until_checked(
        |s| s.update_state() == UpdateState::Completed,
        |s| match s.running_total() {
            n if n >= 4 => Ok(()),
            n => Err(format!("only {n} tasks running")),
        },
    );
    assert_eq!(sim.running("VERSION=2"), 6);
    let status = sim.state.services["svc"].update_status.clone().unwrap();
    assert_eq!(status.message, "update completed");
    assert!(status.completed_at_ms > status.started_at_ms);
}

#[test]
fn start_first_never_drops_below_the_replica_count() {
    let mut sim = Sim::new(config(
        2,
        UpdateOrder::StartFirst,
        UpdateFailureAction::Pause,
    ));
    sim.update("2");
    sim.run_until_checked(
        |s| s.update_state() == UpdateState::Completed,
        |s| match s.running_total() {
            n if n >= 6 => Ok(()),
            n => Err(format!("only {n} tasks running")),
        },
    );
    assert_eq!(sim.running("VERSION=2"), 6);
    assert_eq!(sim.running_total(), 6, "old tasks were retired");
}

#[test]
fn a_failing_update_pauses_after_touching_at_most_parallelism_tasks() {
    let mut sim = Sim::new(config(
        2,
        UpdateOrder::StopFirst,
        UpdateFailureAction::Pause,
    ));
    sim.broken = Some("VERSION=2");
    sim.update("2");
    sim.run_until(|s| s.update_state() == UpdateState::Paused);
    // Let it sit: nothing more is touched while paused.
    for _ in 0..20 {
        sim.step();
    }
    assert_eq!(sim.running("VERSION=1"), 4);
    let message = sim.state.services["svc"]
        .update_status
        .clone()
        .unwrap()
        .message;
    assert!(
        message.starts_with("update paused due to failure or early termination of task t"),
        "{message}"
    );
    // Any update resumes it.
    sim.broken = None;
    sim.update("3");
    sim.run_until(|s| s.update_state() == UpdateState::Completed);
    assert_eq!(sim.running("VERSION=3"), 6);
}

#[test]
fn a_failing_update_with_failure_action_rollback_returns_to_the_previous_spec() {
    let mut sim = Sim::new(config(
        2,
        UpdateOrder::StopFirst,
        UpdateFailureAction::Rollback,
    ));
    sim.broken = Some("VERSION=2");
    sim.update("2");
    sim.run_until(|s| s.update_state() == UpdateState::RollbackCompleted);
    assert_eq!(sim.running("VERSION=1"), 6);
    let service = &sim.state.services["svc"];
    assert_eq!(version_of(service.spec.as_ref()), "VERSION=1");
    assert_eq!(version_of(service.previous_spec.as_ref()), "VERSION=2");
}

fn version_of(spec: Option<&ServiceSpec>) -> &str {
    spec.unwrap().task.as_ref().unwrap().env[0].as_str()
}

#[test]
fn a_manual_rollback_restores_the_previous_spec_with_the_rollback_config() {
    let mut sim = Sim::new(config(
        1,
        UpdateOrder::StopFirst,
        UpdateFailureAction::Pause,
    ));
    sim.update("2");
    sim.run_until(|s| s.update_state() == UpdateState::Completed);
    sim.state
        .apply(
            Command::RollbackService {
                service_id: "svc".into(),
                expected_version: 0,
                message: "manually requested rollback".into(),
                at_ms: sim.now,
            },
            &mut Vec::new(),
        )
        .unwrap();
    assert_eq!(sim.update_state(), UpdateState::RollbackStarted);
    // The rollback config has parallelism 0 (all at once): one pass retires all.
    let steps = sim.run_until(|s| s.update_state() == UpdateState::RollbackCompleted);
    assert_eq!(sim.running("VERSION=1"), 6);
    assert!(steps < 10, "rolled back one slot at a time ({steps} steps)");
}

#[test]
fn the_update_delay_separates_batches() {
    let mut c = config(1, UpdateOrder::StopFirst, UpdateFailureAction::Pause);
    c.delay_ms = 10_000;
    let mut sim = Sim::new(c);
    sim.update("2");
    let steps = sim.run_until(|s| s.running("VERSION=2") == 6);
    // Six batches of one, each followed by a 10 s delay before the next.
    assert!(steps >= 50, "only {steps} s for six batches 10 s apart");
}

#[test]
fn force_update_replaces_every_task_once() {
    let mut sim = Sim::new(config(
        0,
        UpdateOrder::StopFirst,
        UpdateFailureAction::Pause,
    ));
    let before: Vec<String> = sim.state.tasks.keys().cloned().collect();
    let mut new = sim.state.services["svc"].spec.clone().unwrap();
    new.task.as_mut().unwrap().force_update += 1;
    sim.apply_spec(new);
    sim.run_until(|s| s.update_state() == UpdateState::Completed);
    let live: Vec<&String> = sim
        .state
        .tasks
        .iter()
        .filter(|(_, t)| t.desired_state == TaskState::Running as i32)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(live.len(), 6);
    assert!(live.iter().all(|id| !before.contains(id)));
    // Once: nothing more happens afterwards.
    let count = sim.state.tasks.len();
    for _ in 0..10 {
        sim.step();
    }
    assert_eq!(sim.state.tasks.len(), count);
}

#[test]
fn a_scale_or_label_change_starts_no_rollout() {
    let mut sim = Sim::new(config(
        1,
        UpdateOrder::StopFirst,
        UpdateFailureAction::Pause,
    ));
    let mut new = sim.state.services["svc"].spec.clone().unwrap();
    new.replicas = 7;
    new.labels.insert("tier".into(), "web".into());
    sim.apply_spec(new);
    assert_eq!(sim.update_state(), UpdateState::Unknown);
    sim.run_until(|s| s.running("VERSION=1") == 7);
}

#[test]
fn a_failing_start_first_update_that_continues_is_paced_by_the_restart_policy() {
    let mut sim = Sim::new(config(
        1,
        UpdateOrder::StartFirst,
        UpdateFailureAction::Continue,
    ));
    sim.broken = Some("VERSION=2");
    sim.update("2");
    let before = sim.state.tasks.len();
    for _ in 0..20 {
        sim.step();
    }
    // The old tasks keep serving while every new one fails; with the
    // default 5 s restart delay, 20 s allow a handful of attempts, not one
    // per pass.
    assert_eq!(sim.running("VERSION=1"), 6);
    let attempts = sim.state.tasks.len() - before;
    assert!(attempts <= 5, "{attempts} attempts in 20 s");
    assert!(attempts >= 2, "the update gave up ({attempts} attempts)");
}

#[test]
fn updating_a_paused_service_without_a_change_resumes_it() {
    let mut sim = Sim::new(config(
        2,
        UpdateOrder::StopFirst,
        UpdateFailureAction::Pause,
    ));
    sim.broken = Some("VERSION=2");
    sim.update("2");
    sim.run_until(|s| s.update_state() == UpdateState::Paused);
    let version = sim.state.services["svc"].spec_version;
    // The cause is fixed elsewhere (here: the version starts working).
    sim.broken = None;
    sim.update("2");
    assert_eq!(sim.update_state(), UpdateState::Updating);
    assert_eq!(
        sim.state.services["svc"].spec_version, version,
        "nothing changed"
    );
    sim.run_until(|s| s.update_state() == UpdateState::Completed);
    assert_eq!(sim.running("VERSION=2"), 6);
}

#[test]
fn publishing_a_first_ingress_port_rolls_the_running_tasks_onto_the_mesh_once() {
    let mut sim = Sim::new(config(
        2,
        UpdateOrder::StopFirst,
        UpdateFailureAction::Pause,
    ));
    let before: Vec<String> = sim.state.tasks.keys().cloned().collect();
    // `service update --publish-add 8080:80`: the endpoint gains an ingress
    // port, and the leader creates the ingress network.
    let service = sim.state.services.get_mut("svc").unwrap();
    service.endpoint = Some(shoal_proto::v1::Endpoint {
        ports: vec![shoal_proto::v1::PortConfig {
            protocol: shoal_proto::v1::PortProtocol::Tcp as i32,
            target_port: 80,
            published_port: 8080,
            publish_mode: shoal_proto::v1::PublishMode::Ingress as i32,
            ..Default::default()
        }],
        ..Default::default()
    });
    let Some(create) = crate::network::ingress::ensure_network(&sim.state, "ing".into(), sim.now)
    else {
        panic!("no ingress network planned");
    };
    sim.state.apply(create, &mut Vec::new()).unwrap();
    sim.run_until_within(
        60,
        |sim| sim.all_live_running(6, |t| t.networks.iter().any(|a| a.network_id == "ing")),
        |_| Ok(()),
    );
    let live: Vec<String> = sim
        .state
        .tasks
        .iter()
        .filter(|(_, t)| t.desired_state == TaskState::Running as i32)
        .map(|(id, _)| id.clone())
        .collect();
    assert!(
        live.iter().all(|id| !before.contains(id)),
        "every task replaced"
    );
    sim.assert_settled();
}

#[test]
fn changing_a_host_mode_port_rolls_out_tasks_that_bind_the_new_one() {
    let mut sim = Sim::new(config(
        2,
        UpdateOrder::StopFirst,
        UpdateFailureAction::Pause,
    ));
    let host_port = |published| shoal_proto::v1::PortConfig {
        protocol: shoal_proto::v1::PortProtocol::Tcp as i32,
        target_port: 80,
        published_port: published,
        publish_mode: shoal_proto::v1::PublishMode::Host as i32,
        ..Default::default()
    };
    // `service update --publish-add mode=host,published=8081,target=80`.
    let service = sim.state.services.get_mut("svc").unwrap();
    service.endpoint = Some(shoal_proto::v1::Endpoint {
        ports: vec![host_port(8081)],
        ..Default::default()
    });
    sim.run_until_within(
        60,
        |sim| sim.all_live_running(6, |t| t.host_ports == vec![host_port(8081)]),
        |_| Ok(()),
    );
    sim.assert_settled();
}
