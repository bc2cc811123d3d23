//! Autoscaling end to end: real process tasks burning real CPU, measured
//! from their cgroups by the agent, decided on by the leader, carried out by
//! the orchestrator — and every change explained by `service inspect`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{
    cluster, create_cpu_burner, eventually, patience, processes_of, Daemon, TestDir,
};

/// A copy of the shell under the test's directory: its path marks this
/// test's task processes (the test directory's drop kills any left over, so
/// a failing test leaves no CPU burner behind).
fn marker_shell(dir: &TestDir) -> PathBuf {
    let bin = dir.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let program = bin.join("task-sh");
    std::fs::copy("/bin/sh", &program).unwrap();
    program
}

/// One autoscaling event as `service inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Event {
    time: String,
    from: u64,
    to: u64,
    message: String,
}

/// The service's replica count and its recorded autoscaling events.
fn inspect(manager: &Daemon, service: &str) -> (u64, Vec<Event>) {
    let out = manager.ok(&["service", "inspect", service]);
    let value: Value = serde_json::from_str(&out).expect("inspect json");
    let service = &value[0];
    let replicas = service["Spec"]["Mode"]["Replicated"]["Replicas"]
        .as_u64()
        .expect("replicas");
    let events = service["AutoscaleEvents"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .map(|e| Event {
                    time: e["Time"].as_str().unwrap_or_default().to_string(),
                    from: e["From"].as_u64().unwrap_or_default(),
                    to: e["To"].as_u64().unwrap_or_default(),
                    message: e["Message"].as_str().unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    (replicas, events)
}

/// Everything seen while polling: each distinct replica count in order, and
/// every event ever shown (the service keeps only the latest ones).
#[derive(Default)]
struct Watch {
    counts: Vec<u64>,
    events: BTreeSet<Event>,
}

impl Watch {
    fn poll(&mut self, manager: &Daemon) -> u64 {
        let (replicas, events) = inspect(manager, "burner");
        if self.counts.last() != Some(&replicas) {
            self.counts.push(replicas);
        }
        self.events.extend(events);
        replicas
    }
}

#[test]
fn a_process_service_scales_out_under_cpu_load_and_back_when_it_ends() {
    if !crate::util::privileged("autoscaling process tasks measured by their cgroups") {
        return;
    }
    let dir = TestDir::new();
    let shell = marker_shell(&dir);
    let flag = dir.dir.path().join("busy");
    let (manager, _workers, _) = cluster(&dir, 0);
    create_cpu_burner(&manager, &shell, &flag);
    let ls = manager.ok(&["service", "ls"]);
    assert!(
        ls.contains("1/1 (1..5)"),
        "service ls shows the range: {ls}"
    );
    let mut watch = Watch::default();
    assert_eq!(watch.poll(&manager), 1);

    // Load: the service scales out.
    std::fs::write(&flag, b"").unwrap();
    let loaded_at = Instant::now();
    let decided = eventually(patience(), "a scale-out decision", || {
        match watch.poll(&manager) {
            n if n > 1 => Ok(loaded_at.elapsed()),
            n => Err(format!("{n} replicas; {:?}", watch.events)),
        }
    });
    eprintln!("autoscale: first scale-out decision {decided:?} after the load started");
    let scaled_to = watch.counts.last().copied().unwrap();
    eventually(patience(), "the new replicas running", || {
        watch.poll(&manager);
        let running = manager.running_tasks("burner").len() as u64;
        if running >= scaled_to {
            Ok(())
        } else {
            Err(format!("{running} of {scaled_to} running"))
        }
    });
    eprintln!(
        "autoscale: {scaled_to} replicas running {:?} after the load started",
        loaded_at.elapsed()
    );
    let manual = manager.shoal(&["service", "scale", "burner=3"]);
    manual.assert_error("--autoscale-off burner");

    // No load: back to the minimum once the window has passed.
    std::fs::remove_file(&flag).unwrap();
    let idle_at = Instant::now();
    eventually(patience() * 2, "scaled back to 1", || {
        match watch.poll(&manager) {
            1 => Ok(()),
            n => Err(format!("{n} replicas; {:?}", watch.events)),
        }
    });
    eprintln!(
        "autoscale: back to 1 replica {:?} after the load ended",
        idle_at.elapsed()
    );
    assert!(
        idle_at.elapsed() >= Duration::from_secs(3),
        "not before the 3 s scale-down window"
    );
    eventually(
        patience(),
        "one task process left",
        || match processes_of(&shell).len() {
            1 => Ok(()),
            n => Err(format!("{n} task processes")),
        },
    );

    // Every step within min/max and explained by an event: the events
    // chain from 1 back to 1, and every count seen is one of their ends.
    let events: Vec<Event> = watch.events.iter().cloned().collect();
    assert!(events.len() >= 2, "{events:?}");
    assert_eq!(events[0].from, 1, "{events:?}");
    assert_eq!(events.last().unwrap().to, 1, "{events:?}");
    for pair in events.windows(2) {
        assert_eq!(pair[0].to, pair[1].from, "events chain: {events:?}");
    }
    for e in &events {
        assert!((1..=5).contains(&e.to), "{e:?}");
        let prefix = format!("scaled {} → {}: cpu ", e.from, e.to);
        assert!(e.message.starts_with(&prefix), "{e:?}");
        assert!(e.message.contains("of 50 % target"), "{e:?}");
    }
    for count in &watch.counts {
        assert!(
            events.iter().any(|e| e.to == *count) || *count == 1,
            "replicas {count} without an event: {events:?}"
        );
    }
    assert!(
        watch.counts.iter().all(|c| (1..=5).contains(c)),
        "{:?}",
        watch.counts
    );

    remove_and_wait(&manager, &shell);
}

/// Removes the service and waits for its processes (and so their cgroups,
/// removed with the tasks) to be gone.
fn remove_and_wait(manager: &Daemon, shell: &Path) {
    manager.ok(&["service", "rm", "burner"]);
    eventually(
        patience(),
        "the task processes gone",
        || match processes_of(shell).len() {
            0 => Ok(()),
            n => Err(format!("{n} task processes")),
        },
    );
}

/// `--autoscale-rps` is accepted and kept, and its lack of data is said —
/// on the command line and in `service inspect` — rather than ignored.
#[test]
fn an_rps_target_is_kept_and_said_to_need_the_ingress_mesh() {
    let dir = TestDir::new();
    let program = crate::util::marker_program(&dir);
    let (manager, _workers, _) = cluster(&dir, 0);
    let run = manager.shoal(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--autoscale-min",
        "1",
        "--autoscale-max",
        "3",
        "--autoscale-rps",
        "200",
        "--runtime",
        "process",
        program.to_str().unwrap(),
        "3600",
    ]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("no request metric: needs the ingress mesh"),
        "{}",
        run.stderr
    );
    let out = manager.ok(&["service", "inspect", "web"]);
    let value: Value = serde_json::from_str(&out).expect("inspect json");
    let policy = &value[0]["Spec"]["Autoscale"];
    assert_eq!(policy["RPS"], 200.0);
    assert_eq!(
        policy["RPSStatus"],
        "no request metric: needs the ingress mesh"
    );
    // Nothing measures requests: the count stays where it was.
    assert_eq!(inspect(&manager, "web").0, 1);
}
