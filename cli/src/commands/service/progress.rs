//! Waiting for a service to converge, with Docker's progress display:
//! a line per slot (`1/6: running   [=====…>]`), `overall progress: N out of
//! M tasks`, then `verify: Service converged` once the service stayed
//! converged for the monitor period. On a terminal the lines are live
//! (indicatif); otherwise a line is printed each time something changes, so
//! logs and tests read the same story.
//!
//! The wait only observes: Ctrl-C ends it and never the update, which the
//! managers carry on. A paused update or a rollback ends it with an error
//! naming the cause.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use shoal_proto::v1::control_client::ControlClient;
use shoal_proto::v1::{
    GetServiceRequest, ListTasksRequest, ServiceMode, Task, TaskState, UpdateState,
};
use tonic::transport::Channel;

use crate::args::WaitFlags;
use crate::commands::listing::short;

/// How often the service and its tasks are read.
const POLL: Duration = Duration::from_millis(250);
/// Width of a slot's progress bar, as Docker draws it.
const BAR_WIDTH: usize = 50;

/// What the command that waits asked for, to judge how the wait ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Create,
    Update,
    Rollback,
}

/// One slot (or node, for a global service) as displayed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SlotView {
    state: TaskState,
    /// The task runs the service's current spec.
    current: bool,
    /// Why it waits (a pending task's reason, a failure).
    note: String,
}

impl SlotView {
    fn label(&self) -> &'static str {
        if self.current {
            shoal_proto::names::task_state(self.state)
        } else {
            // An old task still running: the slot awaits its update.
            "updating"
        }
    }

    fn bar(&self) -> String {
        // NEW..RUNNING are 7 steps; a dead task shows an empty bar.
        let step = if self.state > TaskState::Running || !self.current {
            0
        } else {
            self.state as usize + 1
        };
        let filled = BAR_WIDTH * step / 7;
        if filled == 0 {
            format!("[{}]", " ".repeat(BAR_WIDTH + 1))
        } else {
            format!(
                "[{}>{}]",
                "=".repeat(filled),
                " ".repeat(BAR_WIDTH - filled)
            )
        }
    }

    fn line(&self, name: &str) -> String {
        let mut line = format!("{name}: {:<9} {}", self.label(), self.bar());
        if !self.note.is_empty() {
            line.push(' ');
            line.push_str(&self.note);
        }
        line
    }
}

/// The service as the progress display sees it at one moment.
struct Snapshot {
    slots: BTreeMap<String, SlotView>,
    running: usize,
    total: usize,
    update_state: UpdateState,
    update_message: String,
    monitor: Duration,
}

impl Snapshot {
    fn converged(&self) -> bool {
        self.running == self.total && self.slots.values().all(|s| s.current)
    }
}

async fn snapshot(
    control: &mut ControlClient<Channel>,
    service_id: &str,
) -> anyhow::Result<Snapshot> {
    let info = control
        .get_service(GetServiceRequest {
            service: service_id.to_string(),
        })
        .await?
        .into_inner();
    let service = info.service.unwrap_or_default();
    let spec = service.spec.clone().unwrap_or_default();
    let tasks = control
        .list_tasks(ListTasksRequest {
            service: service_id.to_string(),
            node: String::new(),
        })
        .await?
        .into_inner()
        .tasks;
    let global = spec.mode() == ServiceMode::Global;
    // Per slot (or node), the task that matters most: the live one of the
    // current spec, else the live one, else the newest.
    let mut best: BTreeMap<String, &Task> = BTreeMap::new();
    let rank = |t: &Task| {
        let live = t.desired_state <= TaskState::Running as i32;
        let current = t.spec == spec.task;
        let created = t.meta.map(|m| m.created_at_ms).unwrap_or(0);
        (live && current, live, created)
    };
    for task in tasks.iter().filter_map(|t| t.task.as_ref()) {
        let key = if global {
            task.node_id.clone()
        } else {
            if task.slot > spec.replicas {
                continue;
            }
            task.slot.to_string()
        };
        if global && task.desired_state > TaskState::Running as i32 {
            continue;
        }
        match best.get(&key) {
            Some(other) if rank(other) >= rank(task) => {}
            _ => {
                best.insert(key, task);
            }
        }
    }
    let total = if global {
        best.len()
    } else {
        spec.replicas as usize
    };
    let mut slots = BTreeMap::new();
    for (key, task) in &best {
        let status = task.status.clone().unwrap_or_default();
        let name = if global {
            short(key, false)
        } else {
            format!("{key}/{total}")
        };
        slots.insert(
            name,
            SlotView {
                state: status.state(),
                current: task.spec == spec.task,
                note: status.err.clone(),
            },
        );
    }
    let running = slots
        .values()
        .filter(|s| s.current && s.state == TaskState::Running)
        .count();
    let status = service.update_status.clone().unwrap_or_default();
    let config = if matches!(
        status.state(),
        UpdateState::RollbackStarted | UpdateState::RollbackPaused
    ) {
        spec.rollback_config
    } else {
        spec.update_config
    };
    let monitor_ms = config
        .map(|c| c.monitor_ms)
        .filter(|ms| *ms > 0)
        .unwrap_or(5_000);
    Ok(Snapshot {
        slots,
        running,
        total,
        update_state: status.state(),
        update_message: status.message,
        monitor: Duration::from_millis(monitor_ms),
    })
}

/// Where progress goes: live bars on a terminal, changed lines otherwise.
enum Display {
    Quiet,
    Lines {
        printed: BTreeMap<String, String>,
        overall: Option<String>,
    },
    Bars {
        multi: MultiProgress,
        overall: ProgressBar,
        slots: BTreeMap<String, ProgressBar>,
    },
}

impl Display {
    fn new(quiet: bool) -> Display {
        if quiet {
            Display::Quiet
        } else if std::io::stdout().is_terminal() {
            let multi = MultiProgress::new();
            let overall = multi.add(ProgressBar::new_spinner());
            overall.set_style(ProgressStyle::with_template("{msg}").expect("a valid template"));
            Display::Bars {
                multi,
                overall,
                slots: BTreeMap::new(),
            }
        } else {
            Display::Lines {
                printed: BTreeMap::new(),
                overall: None,
            }
        }
    }

    fn show(&mut self, snap: &Snapshot) {
        let overall = format!(
            "overall progress: {} out of {} tasks",
            snap.running, snap.total
        );
        match self {
            Display::Quiet => {}
            Display::Lines {
                printed,
                overall: last,
            } => {
                for (name, slot) in &snap.slots {
                    let line = slot.line(name);
                    if printed.get(name) != Some(&line) {
                        println!("{line}");
                        printed.insert(name.clone(), line);
                    }
                }
                if last.as_ref() != Some(&overall) {
                    println!("{overall}");
                    *last = Some(overall);
                }
            }
            Display::Bars {
                multi,
                overall: bar,
                slots,
            } => {
                bar.set_message(overall);
                for (name, slot) in &snap.slots {
                    let line = slot.line(name);
                    let bar = slots.entry(name.clone()).or_insert_with(|| {
                        let bar = multi.add(ProgressBar::new_spinner());
                        bar.set_style(
                            ProgressStyle::with_template("{msg}").expect("a valid template"),
                        );
                        bar
                    });
                    bar.set_message(line);
                }
            }
        }
    }

    fn say(&self, line: &str) {
        match self {
            Display::Quiet => {}
            Display::Lines { .. } => println!("{line}"),
            Display::Bars { multi, .. } => {
                let _ = multi.println(line);
            }
        }
    }

    fn finish(&self) {
        if let Display::Bars { overall, slots, .. } = self {
            overall.finish();
            for bar in slots.values() {
                bar.finish();
            }
        }
    }
}

/// Waits until the service converges (and stays so for its monitor period),
/// drawing progress unless `-q`; returns at once with `-d`.
pub async fn wait(
    control: &mut ControlClient<Channel>,
    service_id: &str,
    name: &str,
    change: Change,
    flags: WaitFlags,
) -> anyhow::Result<()> {
    if flags.detach {
        return Ok(());
    }
    let mut display = Display::new(flags.quiet);
    let mut verifying_since: Option<Instant> = None;
    let mut announced_rollback = change == Change::Rollback;
    loop {
        let snap = snapshot(control, service_id).await?;
        display.show(&snap);
        match snap.update_state {
            UpdateState::Paused | UpdateState::RollbackPaused => {
                display.finish();
                anyhow::bail!(
                    "{name}: {}; fix the service and run \"shoal service update {name}\" to \
                     resume, or \"shoal service rollback {name}\"",
                    snap.update_message
                );
            }
            UpdateState::RollbackStarted if !announced_rollback => {
                display.say(&format!("rollback: {}", snap.update_message));
                announced_rollback = true;
                verifying_since = None;
            }
            _ => {}
        }
        let rollout_running = matches!(
            snap.update_state,
            UpdateState::Updating | UpdateState::RollbackStarted
        );
        if snap.converged() {
            match verifying_since {
                None => {
                    display.say(&format!(
                        "verify: Waiting {} seconds to verify that tasks are stable...",
                        snap.monitor.as_secs_f64().ceil() as u64
                    ));
                    verifying_since = Some(Instant::now());
                }
                Some(since) if since.elapsed() >= snap.monitor && !rollout_running => {
                    display.finish();
                    display.say("verify: Service converged");
                    if announced_rollback && change == Change::Update {
                        anyhow::bail!(
                            "{name}: the update was rolled back; the service runs its previous spec"
                        );
                    }
                    return Ok(());
                }
                Some(_) => {}
            }
        } else if verifying_since.take().is_some() {
            display.say("verify: Detected task failure");
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_lines_look_like_dockers() {
        let running = SlotView {
            state: TaskState::Running,
            current: true,
            note: String::new(),
        };
        assert_eq!(
            running.line("1/6"),
            format!("1/6: running   [{}>]", "=".repeat(50))
        );
        let pending = SlotView {
            state: TaskState::Pending,
            current: true,
            note: "no suitable node (insufficient memory on 2 nodes)".into(),
        };
        let line = pending.line("2/6");
        assert!(
            line.starts_with("2/6: pending   [==============>"),
            "{line}"
        );
        assert!(line.ends_with("] no suitable node (insufficient memory on 2 nodes)"));
        let old = SlotView {
            state: TaskState::Running,
            current: false,
            note: String::new(),
        };
        assert!(old.line("3/6").starts_with("3/6: updating  [ "));
    }
}
