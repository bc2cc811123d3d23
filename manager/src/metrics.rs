//! Task load as the leader knows it: the per-task summaries agents send with
//! their heartbeats, kept in memory for a short window and turned into the
//! autoscaler's [`Observation`] of a service.
//!
//! Nothing here goes through Raft: load changes every second and is worth
//! nothing a minute later, so only the leader (the one manager agents
//! heartbeat to) keeps it, and a new leader starts with an empty window —
//! which the autoscaler reads as "no metrics", never as low load.
//!
//! Units: CPU as a percentage of the task's CPU reservation when it has one,
//! else of one core (`docker stats`' convention, so 150 % is one and a half
//! cores); memory as a percentage of the task's memory limit, else of its
//! reservation, else not sampled (a percentage of nothing means nothing).

use std::collections::{HashMap, VecDeque};

use shoal_proto::v1::{NodeState, Service, Task, TaskState, TaskUsage};

use crate::autoscale::{Metric, Observation, TaskLoad};
use crate::store::{is_terminal, ClusterState};

/// What an observation averages over: short, so a step in load is seen
/// within a few heartbeats, long enough to smooth one odd second.
pub const WINDOW_MS: i64 = 3_000;
/// Summaries in one heartbeat (an agent reports at most its own tasks).
pub const MAX_USAGE_PER_HEARTBEAT: usize = 10_000;
/// Tasks the window holds at most: a bound on the leader's memory whatever
/// nodes send. Beyond it, new tasks' summaries are dropped until old ones age out.
pub const MAX_TASKS: usize = 200_000;
const NANOCORES_PER_CORE: f64 = 1e9;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    at_ms: i64,
    cpu_nanocores: u64,
    memory_bytes: Option<u64>,
}

#[derive(Debug, Default)]
struct TaskWindow {
    /// The node that reported it: only the node a task is assigned to speaks for it.
    node_id: String,
    samples: VecDeque<Sample>,
}

/// The recent load of every task reported to this manager.
#[derive(Debug, Default)]
pub struct LoadWindow {
    tasks: HashMap<String, TaskWindow>,
}

/// A task's mean load over the window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanLoad {
    pub cpu_nanocores: f64,
    pub memory_bytes: Option<f64>,
}

impl LoadWindow {
    /// Records the summaries `node_id` sent at `now_ms`, and forgets what
    /// fell out of the window.
    pub fn record(&mut self, node_id: &str, usage: &[TaskUsage], now_ms: i64) {
        for u in usage.iter().take(MAX_USAGE_PER_HEARTBEAT) {
            if u.samples == 0 || u.task_id.is_empty() {
                continue;
            }
            if !self.tasks.contains_key(&u.task_id) && self.tasks.len() >= MAX_TASKS {
                continue;
            }
            let window = self.tasks.entry(u.task_id.clone()).or_default();
            if window.node_id != node_id {
                window.node_id = node_id.to_string();
                window.samples.clear();
            }
            window.samples.push_back(Sample {
                at_ms: now_ms,
                cpu_nanocores: u.cpu_nanocores,
                memory_bytes: u.memory_bytes,
            });
        }
        self.prune(now_ms);
    }

    /// Drops samples older than the window, and tasks left with none.
    pub fn prune(&mut self, now_ms: i64) {
        self.tasks.retain(|_, w| {
            while w
                .samples
                .front()
                .is_some_and(|s| s.at_ms <= now_ms - WINDOW_MS)
            {
                w.samples.pop_front();
            }
            !w.samples.is_empty()
        });
    }

    /// Forgets everything (this manager stopped leading).
    pub fn clear(&mut self) {
        self.tasks.clear();
    }

    /// `task`'s mean load over the window, if its own node reported any.
    pub fn mean(&self, task: &Task, now_ms: i64) -> Option<MeanLoad> {
        let window = self.tasks.get(&task.id)?;
        if window.node_id != task.node_id {
            return None;
        }
        let recent: Vec<&Sample> = window
            .samples
            .iter()
            .filter(|s| s.at_ms > now_ms - WINDOW_MS)
            .collect();
        if recent.is_empty() {
            return None;
        }
        let n = recent.len() as f64;
        let cpu = recent.iter().map(|s| s.cpu_nanocores as f64).sum::<f64>() / n;
        let memory: Vec<f64> = recent
            .iter()
            .filter_map(|s| s.memory_bytes.map(|b| b as f64))
            .collect();
        Some(MeanLoad {
            cpu_nanocores: cpu,
            memory_bytes: (!memory.is_empty())
                .then(|| memory.iter().sum::<f64>() / memory.len() as f64),
        })
    }
}

/// The autoscaler's view of `service` at `now_ms`: one entry per live task
/// (desired running, not ended) on a node that is not Down. A task on a lost
/// node is left out, so a node's loss reads as "unknown", never as idle.
pub fn observe(
    state: &ClusterState,
    service: &Service,
    window: &LoadWindow,
    now_ms: i64,
) -> Observation {
    let tasks = state
        .tasks
        .values()
        .filter(|t| t.service_id == service.id)
        .filter(|t| t.desired_state == TaskState::Running as i32)
        .filter(|t| !is_terminal(crate::orchestrator::observed(t)))
        .filter(|t| {
            t.node_id.is_empty()
                || state.nodes.get(&t.node_id).is_some_and(|n| {
                    n.status
                        .as_ref()
                        .is_some_and(|s| s.state() != NodeState::Down)
                })
        })
        .map(|t| task_load(t, window, now_ms))
        .collect();
    Observation { tasks }
}

/// One task's readiness and samples in the metrics' units.
pub fn task_load(task: &Task, window: &LoadWindow, now_ms: i64) -> TaskLoad {
    // RUNNING means healthy for a task with a health check: the agent
    // reports STARTING until its check first passes.
    let ready = crate::orchestrator::observed(task) == TaskState::Running;
    let mut load = TaskLoad {
        ready,
        samples: Default::default(),
    };
    let Some(mean) = window.mean(task, now_ms) else {
        return load;
    };
    let resources = task.spec.as_ref().and_then(|s| s.resources.as_ref());
    let reserved_cpu = resources
        .and_then(|r| r.reservations)
        .map(|r| r.nano_cpus)
        .filter(|n| *n > 0);
    let cpu_base = reserved_cpu.map(|n| n as f64).unwrap_or(NANOCORES_PER_CORE);
    load.samples
        .insert(Metric::Cpu, mean.cpu_nanocores / cpu_base * 100.0);
    let memory_base = resources
        .and_then(|r| r.limits)
        .map(|l| l.memory_bytes)
        .filter(|b| *b > 0)
        .or_else(|| {
            resources
                .and_then(|r| r.reservations)
                .map(|r| r.memory_bytes)
                .filter(|b| *b > 0)
        });
    if let (Some(bytes), Some(base)) = (mean.memory_bytes, memory_base) {
        load.samples
            .insert(Metric::Memory, bytes / base as f64 * 100.0);
    }
    load
}

#[cfg(test)]
mod tests {
    use shoal_proto::v1::{
        Node, NodeStatus, ResourceRequirements, Resources, ServiceSpec, TaskSpec, TaskStatus,
    };

    use super::*;

    fn usage(task_id: &str, cores: f64, memory: Option<u64>) -> TaskUsage {
        TaskUsage {
            task_id: task_id.into(),
            cpu_nanocores: (cores * 1e9) as u64,
            memory_bytes: memory,
            samples: 1,
        }
    }

    fn task(id: &str, node: &str, state: TaskState) -> Task {
        Task {
            id: id.into(),
            service_id: "svc".into(),
            node_id: node.into(),
            desired_state: TaskState::Running as i32,
            status: Some(TaskStatus {
                state: state as i32,
                ..Default::default()
            }),
            spec: Some(TaskSpec::default()),
            ..Default::default()
        }
    }

    fn node(id: &str, state: NodeState) -> Node {
        Node {
            id: id.into(),
            status: Some(NodeStatus {
                state: state as i32,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn state(tasks: Vec<Task>) -> ClusterState {
        let mut state = ClusterState::default();
        for n in [node("n1", NodeState::Ready), node("n2", NodeState::Down)] {
            state.nodes.insert(n.id.clone(), n);
        }
        for t in tasks {
            state.tasks.insert(t.id.clone(), t);
        }
        state
    }

    fn service() -> Service {
        Service {
            id: "svc".into(),
            spec: Some(ServiceSpec::default()),
            ..Default::default()
        }
    }

    #[test]
    fn cpu_is_percent_of_one_core_or_of_the_reservation() {
        let mut window = LoadWindow::default();
        window.record("n1", &[usage("a", 1.0, None), usage("b", 1.0, None)], 1_000);
        window.record("n1", &[usage("a", 2.0, None), usage("b", 2.0, None)], 2_000);
        let plain = task("a", "n1", TaskState::Running);
        let mut reserved = task("b", "n1", TaskState::Running);
        reserved.spec.as_mut().unwrap().resources = Some(ResourceRequirements {
            reservations: Some(Resources {
                nano_cpus: 500_000_000,
                memory_bytes: 0,
            }),
            limits: None,
        });
        let a = task_load(&plain, &window, 2_500);
        assert_eq!(a.samples[&Metric::Cpu], 150.0);
        assert!(
            !a.samples.contains_key(&Metric::Memory),
            "no limit: not sampled"
        );
        let b = task_load(&reserved, &window, 2_500);
        assert_eq!(b.samples[&Metric::Cpu], 300.0);
    }

    #[test]
    fn memory_is_percent_of_the_limit_else_the_reservation() {
        let mut window = LoadWindow::default();
        window.record("n1", &[usage("a", 0.0, Some(64 << 20))], 1_000);
        let mut t = task("a", "n1", TaskState::Running);
        t.spec.as_mut().unwrap().resources = Some(ResourceRequirements {
            limits: Some(Resources {
                nano_cpus: 0,
                memory_bytes: 128 << 20,
            }),
            reservations: Some(Resources {
                nano_cpus: 0,
                memory_bytes: 256 << 20,
            }),
        });
        assert_eq!(task_load(&t, &window, 1_500).samples[&Metric::Memory], 50.0);
        t.spec.as_mut().unwrap().resources.as_mut().unwrap().limits = None;
        assert_eq!(task_load(&t, &window, 1_500).samples[&Metric::Memory], 25.0);
    }

    #[test]
    fn samples_age_out_and_only_the_assigned_node_speaks_for_a_task() {
        let mut window = LoadWindow::default();
        window.record("n1", &[usage("a", 1.0, None)], 1_000);
        let t = task("a", "n1", TaskState::Running);
        assert!(window.mean(&t, 1_000 + WINDOW_MS - 1).is_some());
        assert!(window.mean(&t, 1_000 + WINDOW_MS).is_none());
        window.record("n3", &[usage("a", 1.0, None)], 2_000);
        assert!(window.mean(&t, 2_000).is_none(), "another node's report");
        window.record("n1", &[usage("a", 1.0, None)], 10_000);
        assert_eq!(window.tasks.len(), 1);
        window.prune(20_000);
        assert!(window.tasks.is_empty());
    }

    #[test]
    fn a_lost_node_leaves_its_tasks_out_and_unready_tasks_stay_unready() {
        let mut window = LoadWindow::default();
        window.record("n1", &[usage("a", 0.1, None), usage("c", 0.1, None)], 1_000);
        let mut retired = task("d", "n1", TaskState::Running);
        retired.desired_state = TaskState::Shutdown as i32;
        let state = state(vec![
            task("a", "n1", TaskState::Running),
            task("b", "n2", TaskState::Running),
            task("c", "n1", TaskState::Starting),
            retired,
            task("e", "", TaskState::Pending),
        ]);
        let observation = observe(&state, &service(), &window, 1_500);
        let mut ready: Vec<bool> = observation.tasks.iter().map(|t| t.ready).collect();
        ready.sort();
        // a (ready), c (starting), e (pending); b is on a Down node, d retired.
        assert_eq!(ready, vec![false, false, true]);
    }
}
