//! The leader's autoscaling loop: every second, for each autoscaled service,
//! the load its tasks reported ([`crate::metrics`]) goes through the
//! decision core ([`crate::autoscale::decide`]); a change becomes one Raft
//! write (`Command::AutoscaleService`) that sets the replica count and
//! records the decision's text in the service's short history — that write
//! is the scale itself, the orchestrator does the rest.
//!
//! Histories (recommendations and scale events) live in this loop's memory.
//! A service first seen — on a new leader, or newly autoscaled — gets
//! [`History::seeded`] with its current count, so a leader change never
//! scales down earlier than the scale-down window allows; the load window
//! starts empty on a new leader, which reads as "no metrics" and changes
//! nothing. So a leader change loses at most the metric window.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use shoal_proto::v1::{AutoscaleEvent, Service, ServiceMode, UpdateState};

use crate::autoscale::{self, Decision, History, Hold};
use crate::dispatcher::Dispatcher;
use crate::proposer::Proposer;
use crate::raft::types::Raft;
use crate::store::{ClusterState, Command, SharedStore};

/// How often every autoscaled service is decided on.
pub const PERIOD: Duration = Duration::from_secs(1);

/// One autoscaled service as the loop sees it this round.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    pub service_id: String,
    pub spec_version: u64,
    pub decision: Decision,
    /// The policy has an rps target, which nothing measures yet.
    pub rps_unmeasured: bool,
}

/// The loop's memory between rounds.
#[derive(Debug, Default)]
pub struct Controller {
    histories: HashMap<String, History>,
}

impl Controller {
    /// Decides for every autoscaled service in `state` at `now_ms` (pure:
    /// the store, the load and the clock are passed in). Returns every
    /// decision, changing or not; histories are updated as if each change
    /// applies — one that fails is simply decided again next round.
    pub fn round(
        &mut self,
        state: &ClusterState,
        load: &crate::metrics::LoadWindow,
        now_ms: i64,
    ) -> Vec<Round> {
        let mut rounds = Vec::new();
        let mut seen = Vec::new();
        for service in state.services.values() {
            let Some(spec) = service.spec.as_ref() else {
                continue;
            };
            let Some(stored) = spec.autoscale.as_ref() else {
                continue;
            };
            if spec.mode() != ServiceMode::Replicated {
                continue;
            }
            seen.push(service.id.clone());
            let policy = autoscale::policy::from_spec(stored);
            let current = spec.replicas;
            let history = self
                .histories
                .entry(service.id.clone())
                .or_insert_with(|| History::seeded(current, now_ms));
            let decision = if current < policy.min || current > policy.max {
                // Outside its bounds (min/max just changed): brought inside
                // at once, whatever the load says.
                let to = current.clamp(policy.min, policy.max);
                Decision {
                    from: current,
                    to,
                    recommended: to,
                    readings: Vec::new(),
                    held_by: Some(Hold::Bounds),
                }
            } else {
                let observation = crate::metrics::observe(state, service, load, now_ms);
                autoscale::decide(
                    &policy,
                    history,
                    &observation,
                    current,
                    updating(service),
                    now_ms,
                )
            };
            history.record(&decision, now_ms);
            rounds.push(Round {
                service_id: service.id.clone(),
                spec_version: service.spec_version,
                decision,
                rps_unmeasured: stored.rps > 0.0,
            });
        }
        // A service no longer autoscaled (or removed) starts afresh if it is
        // autoscaled again.
        self.histories.retain(|id, _| seen.contains(id));
        rounds
    }

    /// Forgets every history (this manager stopped leading).
    pub fn clear(&mut self) {
        self.histories.clear();
    }
}

/// A rolling update or rollback is in progress: its transient tasks say
/// nothing about load.
fn updating(service: &Service) -> bool {
    matches!(
        service.update_status.as_ref().map(|s| s.state()),
        Some(UpdateState::Updating | UpdateState::RollbackStarted)
    )
}

impl Round {
    /// The decision's text, with the unmeasured rps target said rather than
    /// silently left out.
    pub fn message(&self) -> String {
        if self.rps_unmeasured {
            format!("{}; rps: {}", self.decision, autoscale::RPS_UNMEASURED)
        } else {
            self.decision.to_string()
        }
    }
}

/// The write that carries out a changing decision.
pub fn command(round: &Round, now_ms: i64) -> Command {
    Command::AutoscaleService {
        service_id: round.service_id.clone(),
        expected_version: round.spec_version,
        replicas: round.decision.to,
        event: AutoscaleEvent {
            at_ms: now_ms,
            from: round.decision.from,
            to: round.decision.to,
            message: round.message(),
        },
    }
}

/// Runs for the manager's lifetime; acts only while this manager leads.
pub async fn run(
    raft: Raft,
    proposer: Proposer,
    store: Arc<SharedStore>,
    dispatcher: Arc<Dispatcher>,
    raft_id: u64,
) {
    let mut controller = Controller::default();
    let mut ticker = tokio::time::interval(PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if !crate::raft::is_leader(&raft, raft_id) {
            // Whatever was known belongs to an earlier leadership.
            controller.clear();
            dispatcher.with_load(|load| load.clear());
            continue;
        }
        let now = crate::now_ms();
        let rounds = dispatcher.with_load(|load| {
            load.prune(now);
            store.read(|state| controller.round(state, load, now))
        });
        for round in rounds {
            let name = store
                .read(|s| {
                    s.services
                        .get(&round.service_id)
                        .and_then(|svc| svc.spec.as_ref())
                        .map(|spec| spec.name.clone())
                })
                .unwrap_or_default();
            if !round.decision.changes() {
                tracing::debug!(service = %name, "autoscale: {}", round.message());
                continue;
            }
            tracing::info!(service = %name, "autoscale: {}", round.message());
            if let Err(e) = proposer.propose(command(&round, now)).await {
                tracing::warn!(service = %name, error = %e, "autoscale: could not scale; deciding again next round");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use shoal_proto::v1::{
        AutoscalePolicy, Node, NodeState, NodeStatus, ServiceSpec, Task, TaskSpec, TaskState,
        TaskStatus, TaskUsage, UpdateStatus,
    };

    use super::*;
    use crate::metrics::LoadWindow;

    fn state(
        replicas: u64,
        cores_per_task: f64,
        window: &mut LoadWindow,
        now_ms: i64,
    ) -> ClusterState {
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
        state.services.insert(
            "svc".into(),
            Service {
                id: "svc".into(),
                spec_version: 4,
                spec: Some(ServiceSpec {
                    name: "web".into(),
                    replicas,
                    autoscale: Some(AutoscalePolicy {
                        min: 1,
                        max: 5,
                        cpu_percent: 50.0,
                        scale_down_window_ms: Some(3_000),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        let mut usage = Vec::new();
        for slot in 1..=replicas {
            let id = format!("t{slot}");
            state.tasks.insert(
                id.clone(),
                Task {
                    id: id.clone(),
                    service_id: "svc".into(),
                    node_id: "n1".into(),
                    slot,
                    desired_state: TaskState::Running as i32,
                    status: Some(TaskStatus {
                        state: TaskState::Running as i32,
                        ..Default::default()
                    }),
                    spec: Some(TaskSpec::default()),
                    ..Default::default()
                },
            );
            usage.push(TaskUsage {
                task_id: id,
                cpu_nanocores: (cores_per_task * 1e9) as u64,
                memory_bytes: None,
                samples: 1,
            });
        }
        window.record("n1", &usage, now_ms);
        state
    }

    #[test]
    fn load_scales_out_within_max_and_back_after_the_window() {
        let mut controller = Controller::default();
        let mut window = LoadWindow::default();
        // One task at a full core against a 50 % target: 2 tasks, at once.
        let s = state(1, 1.0, &mut window, 1_000);
        let rounds = controller.round(&s, &window, 1_000);
        assert_eq!(rounds[0].decision.to, 2, "{}", rounds[0].decision);
        let text = command(&rounds[0], 1_000);
        let Command::AutoscaleService {
            expected_version,
            replicas,
            event,
            ..
        } = text
        else {
            panic!("not a scale")
        };
        assert_eq!((expected_version, replicas), (4, 2));
        assert_eq!(event.message, "scaled 1 → 2: cpu 100 % of 50 % target");

        // Two tasks idle: held for the 3 s window, then down to the minimum.
        let mut window = LoadWindow::default();
        let s = state(2, 0.0, &mut window, 2_000);
        assert_eq!(controller.round(&s, &window, 2_000)[0].decision.to, 2);
        let mut window = LoadWindow::default();
        let s = state(2, 0.0, &mut window, 5_500);
        let down = controller.round(&s, &window, 5_500);
        assert_eq!(down[0].decision.to, 1, "{}", down[0].decision);
    }

    #[test]
    fn a_new_controller_without_load_changes_nothing_and_bounds_win() {
        let mut controller = Controller::default();
        let window = LoadWindow::default();
        let mut empty = LoadWindow::default();
        let s = state(3, 0.0, &mut empty, 0);
        // No load known (a new leader): kept.
        let rounds = controller.round(&s, &window, 10_000);
        assert!(!rounds[0].decision.changes(), "{}", rounds[0].decision);
        assert_eq!(rounds[0].decision.held_by, Some(Hold::NoMetrics));
        // Above max after an update of the policy: brought inside at once.
        let mut s = state(7, 0.0, &mut empty, 0);
        let rounds = controller.round(&s, &window, 11_000);
        assert_eq!(rounds[0].decision.to, 5);
        // Updating: held, however loaded.
        let mut window = LoadWindow::default();
        s = state(2, 4.0, &mut window, 12_000);
        s.services.get_mut("svc").unwrap().update_status = Some(UpdateStatus {
            state: UpdateState::Updating as i32,
            ..Default::default()
        });
        let rounds = controller.round(&s, &window, 12_000);
        assert_eq!(rounds[0].decision.held_by, Some(Hold::Updating));
        assert!(!rounds[0].decision.changes());
    }

    #[test]
    fn an_rps_target_is_said_to_be_unmeasured_not_silently_ignored() {
        let mut controller = Controller::default();
        let mut window = LoadWindow::default();
        let mut s = state(1, 1.0, &mut window, 1_000);
        let policy = s.services.get_mut("svc").unwrap().spec.as_mut().unwrap();
        policy.autoscale.as_mut().unwrap().rps = 200.0;
        let rounds = controller.round(&s, &window, 1_000);
        // CPU still scales; the event says why rps played no part.
        let Command::AutoscaleService { event, .. } = command(&rounds[0], 1_000) else {
            panic!("not a scale")
        };
        assert_eq!(
            event.message,
            "scaled 1 → 2: cpu 100 % of 50 % target; rps: no request metric: needs the ingress mesh"
        );
        // Only an rps target: nothing measured, nothing changes, and it says so.
        let rps_only = s.services.get_mut("svc").unwrap().spec.as_mut().unwrap();
        rps_only.autoscale.as_mut().unwrap().cpu_percent = 0.0;
        let mut controller = Controller::default();
        let rounds = controller.round(&s, &window, 2_000);
        assert!(!rounds[0].decision.changes());
        assert_eq!(
            rounds[0].message(),
            "kept 1 (recommended 1; no metric has samples yet); rps: no request metric: needs the ingress mesh"
        );
    }
}
