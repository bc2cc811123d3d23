//! The controller under simulated load and a clock the tests move by hand.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

const SECOND: i64 = 1_000;

fn cpu_policy(min: u64, max: u64, target: f64) -> Policy {
    Policy::new(
        min,
        max,
        vec![Target {
            metric: Metric::Cpu,
            value: target,
        }],
    )
}

fn ready(cpu: f64) -> TaskLoad {
    TaskLoad {
        ready: true,
        samples: BTreeMap::from([(Metric::Cpu, cpu)]),
    }
}

fn unready() -> TaskLoad {
    TaskLoad {
        ready: false,
        samples: BTreeMap::new(),
    }
}

fn unsampled() -> TaskLoad {
    TaskLoad {
        ready: true,
        samples: BTreeMap::new(),
    }
}

fn observe(tasks: Vec<TaskLoad>) -> Observation {
    Observation { tasks }
}

/// A service driven by a load function of time: every second the controller
/// runs, the simulated cluster applies its decision at once, and the load
/// (total CPU percent) spreads evenly over the tasks.
struct Simulation {
    policy: Policy,
    history: History,
    replicas: u64,
    now_ms: i64,
    /// Every change, with the time it was made.
    decisions: Vec<(i64, Decision)>,
}

impl Simulation {
    fn new(policy: Policy, replicas: u64) -> Simulation {
        Simulation {
            history: History::seeded(replicas, 0),
            policy,
            replicas,
            now_ms: 0,
            decisions: Vec::new(),
        }
    }

    fn run(&mut self, seconds: i64, total_load: impl Fn(i64) -> f64) {
        for _ in 0..seconds {
            self.now_ms += SECOND;
            let per_task = total_load(self.now_ms) / self.replicas as f64;
            let tasks = (0..self.replicas).map(|_| ready(per_task)).collect();
            let decision = decide(
                &self.policy,
                &self.history,
                &observe(tasks),
                self.replicas,
                false,
                self.now_ms,
            );
            self.history.record(&decision, self.now_ms);
            self.replicas = decision.to;
            if decision.changes() {
                self.decisions.push((self.now_ms, decision));
            }
        }
    }
}

#[test]
fn a_service_over_target_scales_in_proportion() {
    let policy = cpu_policy(1, 10, 60.0);
    let decision = decide(
        &policy,
        &History::default(),
        &observe(vec![ready(120.0), ready(120.0)]),
        2,
        false,
        0,
    );
    assert_eq!(decision.to, 4);
    assert_eq!(
        decision.to_string(),
        "scaled 2 → 4: cpu 120 % of 60 % target"
    );
}

#[test]
fn load_within_the_tolerance_changes_nothing() {
    let policy = cpu_policy(1, 10, 60.0);
    let decision = decide(
        &policy,
        &History::default(),
        &observe(vec![ready(65.0), ready(64.0), ready(66.0)]),
        3,
        false,
        0,
    );
    assert_eq!(decision.to, 3);
    assert!(!decision.changes());
}

#[test]
fn the_largest_metric_recommendation_wins() {
    let mut policy = cpu_policy(1, 20, 50.0);
    policy.targets.push(Target {
        metric: Metric::Memory,
        value: 80.0,
    });
    let task = TaskLoad {
        ready: true,
        samples: BTreeMap::from([(Metric::Cpu, 100.0), (Metric::Memory, 240.0)]),
    };
    let decision = decide(
        &policy,
        &History::default(),
        &observe(vec![task.clone(), task]),
        2,
        false,
        0,
    );
    // cpu asks for 4, memory for 6.
    assert_eq!(decision.recommended, 6);
    assert_eq!(decision.to, 6);
    assert_eq!(
        decision.to_string(),
        "scaled 2 → 6: cpu 100 % of 50 % target, memory 240 % of 80 % target"
    );
}

#[test]
fn a_metric_without_samples_never_scales_down() {
    let policy = cpu_policy(1, 10, 60.0);
    let decision = decide(
        &policy,
        &History::default(),
        &observe(vec![unsampled(), unsampled(), unsampled()]),
        3,
        false,
        0,
    );
    assert_eq!(decision.to, 3);
    assert_eq!(decision.held_by, Some(Hold::NoMetrics));
}

#[test]
fn a_ready_task_without_a_sample_counts_as_at_target_when_scaling_down() {
    let policy = cpu_policy(1, 10, 60.0);
    // Known: two tasks at 6 %. Were the third idle too, 1 task would do; it
    // counts as at target, so (6 + 6 + 60) / 3 = 24 % → ceil(0.4 × 3) = 2.
    let decision = decide(
        &policy,
        &History::default(),
        &observe(vec![ready(6.0), ready(6.0), unsampled()]),
        3,
        false,
        0,
    );
    assert_eq!(decision.recommended, 2);
}

#[test]
fn unready_tasks_are_not_counted_as_idle() {
    let policy = cpu_policy(1, 10, 60.0);
    // Three quiet ready tasks and two still starting: nothing is removed.
    let decision = decide(
        &policy,
        &History::default(),
        &observe(vec![
            ready(5.0),
            ready(5.0),
            ready(5.0),
            unready(),
            unready(),
        ]),
        5,
        false,
        0,
    );
    assert_eq!(decision.recommended, 5);
    assert_eq!(decision.to, 5);
}

#[test]
fn a_lost_node_does_not_read_as_low_load() {
    let policy = cpu_policy(1, 10, 60.0);
    // Six replicas, three of them on a node that died: absent, not idle.
    let decision = decide(
        &policy,
        &History::default(),
        &observe(vec![ready(20.0), ready(20.0), ready(20.0)]),
        6,
        false,
        0,
    );
    assert_eq!(decision.to, 6);
}

#[test]
fn unknown_load_damps_a_scale_up() {
    let policy = cpu_policy(1, 10, 60.0);
    // One task reports 150 %, three are starting: counted as idle, the
    // average is 37.5 %: no scale-up on the strength of one task.
    let decision = decide(
        &policy,
        &History::default(),
        &observe(vec![ready(150.0), unready(), unready(), unready()]),
        4,
        false,
        0,
    );
    assert_eq!(decision.to, 4);
}

#[test]
fn nothing_is_decided_during_a_rolling_update() {
    let policy = cpu_policy(1, 10, 60.0);
    let decision = decide(
        &policy,
        &History::default(),
        &observe(vec![ready(300.0)]),
        1,
        true,
        0,
    );
    assert_eq!(decision.to, 1);
    assert_eq!(decision.held_by, Some(Hold::Updating));
}

#[test]
fn bounds_hold_the_recommendation() {
    let policy = cpu_policy(2, 5, 50.0);
    let decision = decide(
        &policy,
        &History::default(),
        &observe(vec![ready(400.0), ready(400.0)]),
        2,
        false,
        0,
    );
    assert_eq!(decision.recommended, 16);
    assert_eq!(decision.to, 5);
    assert!(decision
        .to_string()
        .ends_with("(recommended 16; bounded by min/max)"));
}

#[test]
fn a_service_below_its_minimum_is_raised_at_once() {
    let policy = cpu_policy(3, 5, 50.0);
    let decision = decide(
        &policy,
        &History::seeded(1, 0),
        &observe(vec![ready(1.0)]),
        1,
        false,
        SECOND,
    );
    assert_eq!(decision.to, 3);
}

#[test]
fn step_limits_bound_each_period() {
    // From 1 under a load worth 40 tasks: +4 or +100 % per 15 s, whichever
    // is more: 1 → 5 → 10 → 20 → 40.
    let mut sim = Simulation::new(cpu_policy(1, 100, 50.0), 1);
    sim.run(60, |_| 2000.0);
    let steps: Vec<(u64, u64)> = sim.decisions.iter().map(|(_, d)| (d.from, d.to)).collect();
    assert_eq!(steps, vec![(1, 5), (5, 10), (10, 20), (20, 40)]);
    assert!(sim
        .decisions
        .iter()
        .take(3)
        .all(|(_, d)| d.held_by == Some(Hold::StepLimit)));
}

#[test]
fn a_drop_in_load_scales_down_only_after_the_window() {
    let mut policy = cpu_policy(1, 10, 50.0);
    policy.scale_down_window_ms = 60 * SECOND;
    let mut sim = Simulation::new(policy, 4);
    // Busy: 4 tasks at 50 %. Then quiet: 25 % in total.
    sim.run(30, |_| 200.0);
    assert!(sim.decisions.is_empty());
    sim.run(59, |_| 25.0);
    assert_eq!(sim.replicas, 4, "scaled down before the window passed");
    sim.run(2, |_| 25.0);
    assert_eq!(sim.replicas, 1);
}

#[test]
fn an_oscillating_load_is_absorbed_by_the_scale_down_window() {
    // Load swings between 6 tasks' worth and 1 task's worth every 20 s, faster
    // than the 300 s window: the service scales up once and stays there.
    let mut sim = Simulation::new(cpu_policy(1, 10, 50.0), 2);
    sim.run(600, |now| {
        if (now / (20 * SECOND)) % 2 == 0 {
            300.0
        } else {
            50.0
        }
    });
    let downs = sim.decisions.iter().filter(|(_, d)| d.to < d.from).count();
    assert_eq!(downs, 0, "flapped: {:?}", sim.decisions);
    assert_eq!(sim.replicas, 6);
}

#[test]
fn a_new_leader_does_not_scale_down_before_a_whole_window() {
    let mut policy = cpu_policy(1, 10, 50.0);
    policy.scale_down_window_ms = 60 * SECOND;
    // The previous leader's history is lost; the new one seeds it at 5 s.
    let history = History::seeded(4, 5 * SECOND);
    let quiet = observe(vec![ready(5.0); 4]);
    let decision = decide(&policy, &history, &quiet, 4, false, 30 * SECOND);
    assert_eq!(decision.to, 4);
    assert_eq!(decision.held_by, Some(Hold::ScaleDownWindow));
    let decision = decide(&policy, &history, &quiet, 4, false, 66 * SECOND);
    assert_eq!(decision.to, 1);
}

proptest! {
    /// Whatever the load does: the count stays within min..=max, and no
    /// scale-down follows a scale-up within the scale-down window.
    #[test]
    fn never_out_of_bounds_and_never_flaps(
        loads in prop::collection::vec(0.0f64..2000.0, 1..200),
        min in 1u64..4,
        span in 0u64..12,
        window_s in 10i64..120,
    ) {
        let max = min + span;
        let mut policy = cpu_policy(min, max, 50.0);
        policy.scale_down_window_ms = window_s * SECOND;
        let mut sim = Simulation::new(policy, min);
        for load in loads {
            // Each generated load holds for 5 s.
            sim.run(5, |_| load);
            prop_assert!((min..=max).contains(&sim.replicas));
        }
        let mut last_up: Option<i64> = None;
        for (at, d) in &sim.decisions {
            prop_assert!((min..=max).contains(&d.to));
            if d.to > d.from {
                last_up = Some(*at);
            } else if let Some(up) = last_up {
                prop_assert!(
                    at - up >= window_s * SECOND,
                    "scaled down {} ms after scaling up (window {} s)",
                    at - up,
                    window_s
                );
            }
        }
    }
}
