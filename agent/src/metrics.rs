//! The agent's half of autoscaling: every second it reads each supervised
//! task's CPU time and memory from its executor (process tasks from their
//! cgroups, containers from the engine's stats) and turns consecutive
//! readings into a CPU rate; each heartbeat then carries one compact
//! summary per task — the mean rate over the samples since the previous
//! heartbeat and the latest memory figure ([`Sampler::take`]). Nothing is
//! kept once sent: the leader holds the window.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_proto::v1::TaskUsage;
use tokio::time::Instant;

use crate::executor::{Executor, Usage};
use crate::worker::SupervisedTasks;

/// How often tasks are sampled.
pub const SAMPLE_PERIOD: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Reading {
    at: Instant,
    cpu_ns: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Summary {
    cpu_nanocores_sum: f64,
    samples: u32,
    memory_bytes: Option<u64>,
}

/// Readings turned into per-task summaries waiting for the next heartbeat.
#[derive(Debug, Default)]
pub struct Sampler {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last: HashMap<String, Reading>,
    pending: HashMap<String, Summary>,
}

impl Sampler {
    /// Adds one round of readings taken at `at`. A task's first reading only
    /// sets its baseline (a rate needs two); tasks absent from the round are
    /// forgotten, so a restarted task never shows a negative rate.
    pub fn add(&self, readings: Vec<(String, Usage)>, at: Instant) {
        let mut state = self.state.lock().expect("sampler lock");
        let mut last = HashMap::with_capacity(readings.len());
        for (task_id, usage) in readings {
            if let Some(before) = state.last.get(&task_id) {
                let elapsed = at.saturating_duration_since(before.at).as_nanos() as f64;
                if elapsed > 0.0 && usage.cpu_ns >= before.cpu_ns {
                    let rate = (usage.cpu_ns - before.cpu_ns) as f64 / elapsed * 1e9;
                    let summary = state.pending.entry(task_id.clone()).or_default();
                    summary.cpu_nanocores_sum += rate;
                    summary.samples += 1;
                    summary.memory_bytes = usage.memory_bytes;
                }
            }
            last.insert(
                task_id,
                Reading {
                    at,
                    cpu_ns: usage.cpu_ns,
                },
            );
        }
        state.last = last;
    }

    /// The summaries since the previous call, for a heartbeat.
    pub fn take(&self) -> Vec<TaskUsage> {
        let mut state = self.state.lock().expect("sampler lock");
        state
            .pending
            .drain()
            .map(|(task_id, s)| TaskUsage {
                task_id,
                cpu_nanocores: (s.cpu_nanocores_sum / s.samples.max(1) as f64).round() as u64,
                memory_bytes: s.memory_bytes,
                samples: s.samples,
            })
            .collect()
    }
}

/// Samples the supervised tasks every [`SAMPLE_PERIOD`] for the agent's lifetime.
pub async fn run(
    sampler: Arc<Sampler>,
    executors: Vec<Arc<dyn Executor>>,
    supervised: SupervisedTasks,
) {
    let mut ticker = tokio::time::interval(SAMPLE_PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let ids: Vec<String> = supervised
            .lock()
            .expect("supervised lock")
            .iter()
            .cloned()
            .collect();
        let mut readings = Vec::new();
        if !ids.is_empty() {
            for executor in &executors {
                readings.extend(executor.usage(&ids).await);
            }
        }
        sampler.add(readings, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(task: &str, cpu_ms: u64) -> (String, Usage) {
        (
            task.to_string(),
            Usage {
                cpu_ns: cpu_ms * 1_000_000,
                memory_bytes: Some(cpu_ms),
            },
        )
    }

    #[test]
    fn rates_are_means_over_the_samples_since_the_last_heartbeat() {
        let sampler = Sampler::default();
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        sampler.add(vec![reading("a", 0)], s(0));
        assert!(sampler.take().is_empty(), "one reading is no rate");
        sampler.add(vec![reading("a", 500)], s(1));
        sampler.add(vec![reading("a", 2_000)], s(2));
        let usage = sampler.take();
        assert_eq!(usage.len(), 1);
        // 0.5 core, then 1.5 cores: a mean of one core over two samples.
        assert_eq!(usage[0].cpu_nanocores, 1_000_000_000);
        assert_eq!(usage[0].samples, 2);
        assert_eq!(usage[0].memory_bytes, Some(2_000));
        assert!(sampler.take().is_empty(), "sent once");
    }

    #[test]
    fn a_task_that_went_away_starts_again_from_a_baseline() {
        let sampler = Sampler::default();
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        sampler.add(vec![reading("a", 5_000)], s(0));
        sampler.add(vec![], s(1));
        // Same ID with a lower counter (the cgroup was made anew).
        sampler.add(vec![reading("a", 100)], s(2));
        assert!(sampler.take().is_empty());
        sampler.add(vec![reading("a", 350)], s(3));
        assert_eq!(sampler.take()[0].cpu_nanocores, 250_000_000);
    }
}
