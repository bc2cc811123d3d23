//! What the worker does about an assignment set, decided without doing it:
//! a pure function of the assignments, what the worker observes (the tasks
//! it supervises, the tasks that ended and stay assigned, the runtimes it
//! has) and `now`. The worker ([`super::Worker`]) applies the [`Decision`];
//! nothing here spawns, stops or reads a clock.

use std::collections::HashSet;
use std::time::Duration;

use shoal_proto::v1::{Task, TaskState, TaskStatus};

use crate::executor::{stop_grace, RecordedExit};

/// What the worker sees when an assignment set arrives.
#[derive(Debug, Default)]
pub struct Observed<'a> {
    /// Tasks it supervises (started, or adopted running).
    pub supervised: HashSet<&'a str>,
    /// Tasks that reached a terminal state while assigned: never restarted.
    pub finished: HashSet<&'a str>,
    /// The runtimes it has executors for ("process", "docker").
    pub runtimes: HashSet<&'a str>,
}

/// What to do about one assignment set.
#[derive(Debug, Default, PartialEq)]
pub struct Decision {
    /// Every assigned task's ID: the set the worker holds until the next one.
    pub assigned: HashSet<String>,
    /// New assignments to start, in the set's order, each with its stop grace.
    pub start: Vec<(Task, Duration)>,
    /// Tasks that end here without starting, with the status to report;
    /// the worker remembers them as finished.
    pub end_unstarted: Vec<(String, TaskStatus)>,
    /// Supervised tasks to stop (no longer assigned, or retired), sorted.
    pub stop: Vec<String>,
    /// Finished tasks no longer assigned: forgotten, and what they left on
    /// the node removed. Sorted.
    pub forget: Vec<String>,
}

/// Reconciles `assignments` (level-triggered: the full set) against what the
/// worker `observed`; statuses it decides carry `now_ms`.
pub fn decide(assignments: Vec<Task>, observed: &Observed, now_ms: i64) -> Decision {
    let assigned: HashSet<String> = assignments.iter().map(|t| t.id.clone()).collect();
    // The set also carries retired tasks (desired beyond Running) until
    // this node reports them ended: they are stopped, never started.
    let run: HashSet<String> = assignments
        .iter()
        .filter(|t| t.desired_state <= TaskState::Running as i32)
        .map(|t| t.id.clone())
        .collect();
    let mut decision = Decision::default();
    // Tasks decided in this pass: a task listed twice is decided once.
    let mut decided: HashSet<String> = HashSet::new();
    for task in assignments {
        if observed.supervised.contains(task.id.as_str())
            || observed.finished.contains(task.id.as_str())
            || !decided.insert(task.id.clone())
        {
            continue;
        }
        if !run.contains(&task.id) {
            // Retired before it ever started here (perhaps while this
            // agent was down): it ends without starting, and the report
            // lets the managers refill its slot.
            let shutdown = status(TaskState::Shutdown, "shut down before it started", now_ms);
            decision.end_unstarted.push((task.id, shutdown));
            continue;
        }
        let runtime = task.spec.as_ref().map(|s| s.runtime.as_str()).unwrap_or("");
        if !observed.runtimes.contains(runtime) {
            let mut rejected = status(TaskState::Rejected, "rejected", now_ms);
            rejected.err = format!("this node has no {runtime:?} runtime");
            decision.end_unstarted.push((task.id, rejected));
            continue;
        }
        let grace = stop_grace(&task);
        decision.start.push((task, grace));
    }
    decision.stop = observed
        .supervised
        .iter()
        .filter(|id| !run.contains(**id))
        .map(|id| id.to_string())
        .collect();
    decision.stop.sort();
    decision.forget = observed
        .finished
        .iter()
        .filter(|id| !assigned.contains(**id))
        .map(|id| id.to_string())
        .collect();
    decision.forget.sort();
    decision.assigned = assigned;
    decision
}

/// Whether a task whose supervisor just finished is forgotten at once (it
/// left the set meanwhile) rather than remembered as finished while it
/// stays assigned.
pub fn forget_on_exit(task_id: &str, assigned: &HashSet<String>) -> bool {
    !assigned.contains(task_id)
}

/// A status report of `state` with `message`, at `now_ms`.
pub fn status(state: TaskState, message: &str, now_ms: i64) -> TaskStatus {
    TaskStatus {
        state: state as i32,
        timestamp_ms: now_ms,
        message: message.to_string(),
        err: String::new(),
        exit_code: 0,
    }
}

/// The status a recorded exit is reported as, at `now_ms`.
pub fn recorded_status(exit: &RecordedExit, now_ms: i64) -> TaskStatus {
    let (state, err) = match (exit.shutdown, exit.exit_code) {
        (true, _) => (TaskState::Shutdown, String::new()),
        (false, _) if exit.unhealthy => (TaskState::Failed, exit.message.clone()),
        (false, Some(0)) => (TaskState::Complete, String::new()),
        (false, _) => (TaskState::Failed, exit.message.clone()),
    };
    TaskStatus {
        state: state as i32,
        timestamp_ms: now_ms,
        message: exit.message.clone(),
        err,
        exit_code: exit.exit_code.unwrap_or(-1),
    }
}

#[cfg(test)]
mod tests {
    use shoal_proto::v1::TaskSpec;

    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn task(id: &str, runtime: &str, desired: TaskState) -> Task {
        Task {
            id: id.into(),
            desired_state: desired as i32,
            spec: Some(TaskSpec {
                runtime: runtime.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn observed<'a>(supervised: &[&'a str], finished: &[&'a str]) -> Observed<'a> {
        Observed {
            supervised: supervised.iter().copied().collect(),
            finished: finished.iter().copied().collect(),
            runtimes: ["process"].into_iter().collect(),
        }
    }

    fn ids(tasks: &[(Task, Duration)]) -> Vec<&str> {
        tasks.iter().map(|(t, _)| t.id.as_str()).collect()
    }

    #[test]
    fn new_assignments_start_in_order_with_their_grace() {
        let mut slow = task("b", "process", TaskState::Running);
        slow.spec.as_mut().unwrap().stop_grace_period_ms = 1500;
        let set = vec![task("a", "process", TaskState::Running), slow];
        let decision = decide(set, &observed(&[], &[]), NOW);
        assert_eq!(ids(&decision.start), ["a", "b"]);
        assert_eq!(decision.start[0].1, crate::executor::DEFAULT_STOP_GRACE);
        assert_eq!(decision.start[1].1, Duration::from_millis(1500));
        assert!(decision.end_unstarted.is_empty() && decision.stop.is_empty());
        assert_eq!(decision.assigned, ["a".to_string(), "b".into()].into());
    }

    #[test]
    fn supervised_and_finished_tasks_are_never_started_again() {
        let set = vec![
            task("running", "process", TaskState::Running),
            task("done", "process", TaskState::Running),
            task("twice", "process", TaskState::Running),
            task("twice", "process", TaskState::Running),
        ];
        let decision = decide(set, &observed(&["running"], &["done"]), NOW);
        assert_eq!(ids(&decision.start), ["twice"]);
        assert!(decision.stop.is_empty() && decision.forget.is_empty());
    }

    #[test]
    fn a_retired_task_never_started_ends_shut_down_at_now() {
        let set = vec![task("old", "process", TaskState::Shutdown)];
        let decision = decide(set, &observed(&[], &[]), NOW);
        assert!(decision.start.is_empty());
        let (id, status) = &decision.end_unstarted[0];
        assert_eq!(id, "old");
        assert_eq!(status.state, TaskState::Shutdown as i32);
        assert_eq!(status.message, "shut down before it started");
        assert_eq!(status.timestamp_ms, NOW);
    }

    #[test]
    fn a_task_for_a_runtime_the_node_lacks_is_rejected() {
        let set = vec![task("c", "docker", TaskState::Running)];
        let decision = decide(set, &observed(&[], &[]), NOW);
        let (id, status) = &decision.end_unstarted[0];
        assert_eq!(id, "c");
        assert_eq!(status.state, TaskState::Rejected as i32);
        assert_eq!(status.err, "this node has no \"docker\" runtime");
    }

    #[test]
    fn supervised_tasks_left_out_or_retired_are_stopped() {
        let set = vec![
            task("keep", "process", TaskState::Running),
            task("retired", "process", TaskState::Shutdown),
        ];
        let decision = decide(set, &observed(&["keep", "retired", "gone"], &[]), NOW);
        assert_eq!(decision.stop, ["gone", "retired"]);
        assert!(decision.start.is_empty() && decision.end_unstarted.is_empty());
    }

    #[test]
    fn finished_tasks_are_forgotten_once_they_leave_the_set() {
        let set = vec![task("stays", "process", TaskState::Running)];
        let decision = decide(set, &observed(&[], &["stays", "left"]), NOW);
        assert_eq!(decision.forget, ["left"]);
        assert!(!forget_on_exit("stays", &decision.assigned));
        assert!(forget_on_exit("left", &decision.assigned));
    }

    #[test]
    fn recorded_exits_map_to_the_states_swarm_reports() {
        let exit = |shutdown, unhealthy, code| RecordedExit {
            shutdown,
            unhealthy,
            exit_code: code,
            message: "m".into(),
        };
        let state = |e: &RecordedExit| recorded_status(e, NOW).state;
        assert_eq!(
            state(&exit(true, false, Some(1))),
            TaskState::Shutdown as i32
        );
        assert_eq!(state(&exit(false, true, Some(0))), TaskState::Failed as i32);
        assert_eq!(
            state(&exit(false, false, Some(0))),
            TaskState::Complete as i32
        );
        assert_eq!(state(&exit(false, false, None)), TaskState::Failed as i32);
        assert_eq!(
            recorded_status(&exit(false, false, None), NOW).exit_code,
            -1
        );
        assert_eq!(
            recorded_status(&exit(false, false, None), NOW).timestamp_ms,
            NOW
        );
    }
}
