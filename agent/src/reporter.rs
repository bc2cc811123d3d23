//! Task status reports waiting to reach a manager. Only the newest status of
//! each task is kept (states only move forward, so a skipped intermediate
//! state loses nothing); reports survive a lost session and are sent on the
//! next one.

use std::collections::BTreeMap;
use std::sync::Mutex;

use shoal_proto::v1::TaskStatus;
use tokio::sync::Notify;

#[derive(Default)]
pub struct Reporter {
    // std Mutex: held only to move entries in and out.
    pending: Mutex<BTreeMap<String, TaskStatus>>,
    notify: Notify,
}

impl Reporter {
    /// Queues `status` for `task_id` unless a later state is already queued.
    pub fn report(&self, task_id: &str, status: TaskStatus) {
        let mut pending = self.pending.lock().expect("reporter lock");
        let newer_queued = pending
            .get(task_id)
            .is_some_and(|queued| queued.state > status.state);
        if !newer_queued {
            pending.insert(task_id.to_string(), status);
        }
        drop(pending);
        self.notify.notify_one();
    }

    /// Everything queued, in task order.
    pub fn take(&self) -> Vec<(String, TaskStatus)> {
        std::mem::take(&mut *self.pending.lock().expect("reporter lock"))
            .into_iter()
            .collect()
    }

    /// Puts back reports that could not be sent.
    pub fn put_back(&self, reports: Vec<(String, TaskStatus)>) {
        for (task_id, status) in reports {
            self.report(&task_id, status);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pending.lock().expect("reporter lock").is_empty()
    }

    /// Resolves when something was queued since the last call.
    pub async fn queued(&self) {
        self.notify.notified().await
    }
}

#[cfg(test)]
mod tests {
    use shoal_proto::v1::TaskState;

    use super::*;

    fn status(state: TaskState) -> TaskStatus {
        TaskStatus {
            state: state as i32,
            ..Default::default()
        }
    }

    #[test]
    fn keeps_the_newest_state_per_task() {
        let reporter = Reporter::default();
        reporter.report("a", status(TaskState::Starting));
        reporter.report("a", status(TaskState::Running));
        reporter.report("a", status(TaskState::Preparing));
        reporter.report("b", status(TaskState::Failed));
        let taken = reporter.take();
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[0].1.state(), TaskState::Running);
        assert!(reporter.is_empty());
        reporter.put_back(taken);
        assert_eq!(reporter.take().len(), 2);
    }
}
