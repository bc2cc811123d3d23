//! A model test of the invariant "every slot of a replicated service with
//! `replicas` N eventually has exactly one running task" (issue 14).
//!
//! The real pure parts — [`reconcile`], the scheduler adapter, the store's
//! `apply` and the dispatcher's [`assigned_tasks`] — are driven through
//! generated interleavings of node loss, agent crashes and restarts, scaling
//! and spec updates. The agents are simulated with the worker's rules
//! (`agent::worker`): they run what their assignment set says, stop what
//! left it or was retired, report through a queue that a crash loses, and
//! keep their processes across a crash (adopting them on restart). After
//! the faults, every agent comes back and the loops run fairly for a while;
//! then each slot must hold exactly one running task, and exactly that many
//! task processes must run.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use shoal_proto::v1::{
    Node, NodeDescription, NodeRole, NodeStatus, ServiceSpec, TaskSpec, TaskState, TaskStatus,
};

use super::*;
use crate::dispatcher::assigned_tasks;
use crate::scheduling::schedule_pending;

const NODES: [&str; 3] = ["n1", "n2", "n3"];
/// Simulated time per step: restart delays and rollout monitors pass.
const STEP_MS: i64 = 1_000;

/// One simulated agent and the processes of its node.
#[derive(Debug, Default, Clone)]
struct Agent {
    /// The daemon runs (false after a crash, until restarted).
    alive: bool,
    /// A session with the leader is open (implies `alive`).
    connected: bool,
    /// Task processes running on the node: they survive a daemon crash.
    processes: BTreeSet<String>,
    /// Tasks the agent knows ended (recorded on disk, like `exit.json`),
    /// with how they ended; kept while they stay assigned.
    ended: BTreeMap<String, TaskState>,
    /// Reports not yet sent; lost when the daemon crashes.
    queue: BTreeMap<String, TaskState>,
}

#[derive(Debug, Clone)]
enum Op {
    /// The leader's loops: orchestrator, then scheduler.
    Reconcile,
    /// The agent gets its current assignment set.
    Deliver(usize),
    /// The agent sends its queued reports.
    Report(usize),
    /// SIGKILL of the node's daemon: processes stay, the queue is lost.
    Crash(usize),
    /// The daemon starts again and adopts its processes.
    Restart(usize),
    /// The network drops the session; the agent lives on.
    Disconnect(usize),
    /// The agent (re)opens its session: the node is Ready.
    Connect(usize),
    /// The dispatcher's grace ran out for a node without a session.
    Expire(usize),
    /// One of the node's task processes ends on its own (fails).
    ProcessExit(usize),
    Scale(u64),
    /// A spec change that restarts every task (a rolling update).
    Update,
}

fn op() -> impl Strategy<Value = Op> {
    let node = 0..NODES.len();
    prop_oneof![
        4 => Just(Op::Reconcile),
        3 => node.clone().prop_map(Op::Deliver),
        3 => node.clone().prop_map(Op::Report),
        1 => node.clone().prop_map(Op::Crash),
        1 => node.clone().prop_map(Op::Restart),
        1 => node.clone().prop_map(Op::Disconnect),
        2 => node.clone().prop_map(Op::Connect),
        1 => node.clone().prop_map(Op::Expire),
        1 => node.prop_map(Op::ProcessExit),
        2 => (0u64..4).prop_map(Op::Scale),
        1 => Just(Op::Update),
    ]
}

struct Sim {
    state: ClusterState,
    agents: Vec<Agent>,
    now: i64,
    ids: u64,
}

impl Sim {
    fn new(replicas: u64) -> Sim {
        let mut state = ClusterState::default();
        for id in NODES {
            state.nodes.insert(
                id.into(),
                Node {
                    id: id.into(),
                    role: NodeRole::Worker as i32,
                    description: Some(NodeDescription {
                        hostname: id.into(),
                        runtimes: vec!["process".into()],
                        ..Default::default()
                    }),
                    status: Some(NodeStatus {
                        state: NodeState::Ready as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            );
        }
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
        state.services.insert("svc".into(), service);
        let agent = Agent {
            alive: true,
            connected: true,
            ..Default::default()
        };
        Sim {
            state,
            agents: vec![agent; NODES.len()],
            now: 1_000_000,
            ids: 0,
        }
    }

    fn apply(&mut self, commands: Vec<Command>) {
        for command in commands {
            // A refused command changes nothing, as on a real manager.
            let _ = self.state.apply(command, &mut Vec::new());
        }
    }

    fn step(&mut self, op: &Op) {
        self.now += STEP_MS;
        let now = self.now;
        match *op {
            Op::Reconcile => {
                let ids = &mut self.ids;
                let mut new_id = || {
                    *ids += 1;
                    format!("t{ids:05}")
                };
                let commands = reconcile(&self.state, now, &mut new_id);
                self.apply(commands);
                let commands = schedule_pending(&self.state, now);
                self.apply(commands);
            }
            Op::Deliver(i) => {
                if self.agents[i].connected {
                    let set = assigned_tasks(&self.state, NODES[i]);
                    worker_reconcile(&mut self.agents[i], &set);
                }
            }
            Op::Report(i) => {
                let agent = &mut self.agents[i];
                if !agent.connected || agent.queue.is_empty() {
                    return;
                }
                let updates = std::mem::take(&mut agent.queue)
                    .into_iter()
                    .map(|(id, state)| {
                        let status = TaskStatus {
                            state: state as i32,
                            timestamp_ms: now,
                            ..Default::default()
                        };
                        (id, status)
                    })
                    .collect();
                self.apply(vec![Command::UpdateTaskStatuses {
                    node_id: NODES[i].into(),
                    updates,
                }]);
            }
            Op::Crash(i) => {
                let agent = &mut self.agents[i];
                agent.alive = false;
                agent.connected = false;
                agent.queue.clear();
            }
            Op::Restart(i) => {
                let agent = &mut self.agents[i];
                if agent.alive {
                    return;
                }
                agent.alive = true;
                // Adopted processes are reported running, recorded exits
                // as they ended.
                let adopted: Vec<String> = agent.processes.iter().cloned().collect();
                for id in adopted {
                    agent.queue.insert(id, TaskState::Running);
                }
                let ended: Vec<(String, TaskState)> =
                    agent.ended.iter().map(|(k, v)| (k.clone(), *v)).collect();
                agent.queue.extend(ended);
            }
            Op::Disconnect(i) => self.agents[i].connected = false,
            Op::Connect(i) => {
                if self.agents[i].alive && !self.agents[i].connected {
                    self.agents[i].connected = true;
                    self.apply(vec![Command::NodeSessionStarted {
                        node_id: NODES[i].into(),
                        description: NodeDescription {
                            hostname: NODES[i].into(),
                            runtimes: vec!["process".into()],
                            ..Default::default()
                        },
                        addr: String::new(),
                        at_ms: now,
                    }]);
                }
            }
            Op::Expire(i) => {
                if !self.agents[i].connected {
                    self.apply(vec![Command::NodeDown {
                        node_id: NODES[i].into(),
                        message: "heartbeat failure".into(),
                        at_ms: now,
                    }]);
                }
            }
            Op::ProcessExit(i) => {
                let agent = &mut self.agents[i];
                if let Some(id) = agent.processes.iter().next().cloned() {
                    agent.processes.remove(&id);
                    if agent.alive {
                        agent.queue.insert(id.clone(), TaskState::Failed);
                    }
                    // A process that ends while no agent watches it is
                    // found ended at the next start.
                    agent.ended.insert(id, TaskState::Failed);
                }
            }
            Op::Scale(n) => self.change_spec(|spec| spec.replicas = n),
            Op::Update => self.change_spec(|spec| {
                if let Some(task) = spec.task.as_mut() {
                    task.force_update += 1;
                }
            }),
        }
    }

    fn change_spec(&mut self, change: impl FnOnce(&mut ServiceSpec)) {
        let mut spec = self.state.services["svc"].spec.clone().unwrap_or_default();
        change(&mut spec);
        let now = self.now;
        self.apply(vec![Command::UpdateServiceSpec {
            service_id: "svc".into(),
            spec,
            expected_version: 0,
            at_ms: now,
        }]);
    }

    /// Every agent back and connected, then fair rounds of every loop.
    fn heal(&mut self, rounds: usize) {
        for i in 0..NODES.len() {
            self.step(&Op::Restart(i));
            self.step(&Op::Connect(i));
        }
        for _ in 0..rounds {
            self.step(&Op::Reconcile);
            for i in 0..NODES.len() {
                self.step(&Op::Deliver(i));
                self.step(&Op::Report(i));
            }
        }
    }

    /// The invariant, or what breaks it.
    fn check(&self) -> Result<(), String> {
        let replicas = self.state.services["svc"]
            .spec
            .as_ref()
            .map(|s| s.replicas)
            .unwrap_or_default();
        let mut running: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
        for task in self.state.tasks.values() {
            if task.desired_state == TaskState::Running as i32
                && observed(task) == TaskState::Running
            {
                running.entry(task.slot).or_default().push(&task.id);
            }
        }
        for slot in 1..=replicas {
            let n = running.get(&slot).map(Vec::len).unwrap_or(0);
            if n != 1 {
                return Err(format!("slot {slot} has {n} running tasks"));
            }
        }
        if let Some(slot) = running.keys().find(|s| **s > replicas) {
            return Err(format!("slot {slot} runs above {replicas} replicas"));
        }
        let processes: usize = self.agents.iter().map(|a| a.processes.len()).sum();
        if processes as u64 != replicas {
            return Err(format!(
                "{processes} task processes run for {replicas} replicas"
            ));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let mut out = String::new();
        for t in self.state.tasks.values() {
            out.push_str(&format!(
                "\n  {} slot {} node {:?} desired {:?} observed {:?}",
                t.id,
                t.slot,
                t.node_id,
                TaskState::try_from(t.desired_state).unwrap_or_default(),
                observed(t)
            ));
        }
        for (i, a) in self.agents.iter().enumerate() {
            out.push_str(&format!("\n  {}: {a:?}", NODES[i]));
        }
        out
    }
}

/// The worker's rules (`agent::worker::Worker::reconcile`) for one set.
fn worker_reconcile(agent: &mut Agent, set: &[Task]) {
    let run: BTreeSet<&str> = set
        .iter()
        .filter(|t| t.desired_state <= TaskState::Running as i32)
        .map(|t| t.id.as_str())
        .collect();
    for task in set {
        let id = &task.id;
        if agent.ended.contains_key(id) {
            continue;
        }
        if run.contains(id.as_str()) {
            if agent.processes.insert(id.clone()) {
                agent.queue.insert(id.clone(), TaskState::Running);
            }
        } else {
            // Retired: stopped if it runs, and reported stopped either way
            // (a task that never started here ends without starting).
            agent.processes.remove(id);
            agent.queue.insert(id.clone(), TaskState::Shutdown);
            agent.ended.insert(id.clone(), TaskState::Shutdown);
        }
    }
    let stale: Vec<String> = agent
        .processes
        .iter()
        .filter(|id| !run.contains(id.as_str()))
        .cloned()
        .collect();
    for id in stale {
        agent.processes.remove(&id);
        agent.queue.insert(id.clone(), TaskState::Shutdown);
        agent.ended.insert(id, TaskState::Shutdown);
    }
    // Forgotten once no longer assigned at all.
    let assigned: BTreeSet<&str> = set.iter().map(|t| t.id.as_str()).collect();
    agent.ended.retain(|id, _| assigned.contains(id.as_str()));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn every_slot_ends_with_exactly_one_running_task(
        replicas in 0u64..4,
        ops in prop::collection::vec(op(), 0..60),
    ) {
        let mut sim = Sim::new(replicas);
        for op in &ops {
            sim.step(op);
        }
        // Restart delays (5 s) and rollout monitors (5 s) pass in these rounds.
        sim.heal(40);
        if let Err(e) = sim.check() {
            return Err(TestCaseError::fail(format!("{e}{}", sim.describe())));
        }
    }
}

/// The sequence of issue 14, spelled out: the worker's daemon dies while its
/// task is assigned, the task is retired and its slot wanted again.
#[test]
fn a_task_retired_before_its_node_received_it_ends() {
    let mut sim = Sim::new(1);
    // Only n1 may take the task.
    for i in [1, 2] {
        sim.step(&Op::Disconnect(i));
        sim.step(&Op::Expire(i));
    }
    sim.step(&Op::Crash(0));
    sim.step(&Op::Reconcile);
    sim.step(&Op::Scale(0));
    sim.step(&Op::Reconcile);
    sim.step(&Op::Scale(1));
    sim.step(&Op::Reconcile);
    sim.step(&Op::Restart(0));
    sim.step(&Op::Connect(0));
    for _ in 0..5 {
        sim.step(&Op::Reconcile);
        sim.step(&Op::Deliver(0));
        sim.step(&Op::Report(0));
    }
    sim.check()
        .unwrap_or_else(|e| panic!("{e}{}", sim.describe()));
}
