//! The leader-only loops: the orchestrator, the network allocator and the
//! scheduler. They run while
//! this manager leads and idle otherwise; each pass recomputes everything from
//! the store (level-triggered) and waits for its writes to apply before the
//! next, so a leader change mid-pass duplicates nothing.

use std::sync::Arc;
use std::time::Duration;

use crate::proposer::Proposer;
use crate::raft::types::Raft;
use crate::store::chunks::{chunked, MAX_TASKS_PER_WRITE};
use crate::store::SharedStore;
use crate::{network, orchestrator, scheduling};

/// A pass runs at least this often even without store changes.
const RESYNC: Duration = Duration::from_secs(1);

pub async fn run(raft: Raft, proposer: Proposer, store: Arc<SharedStore>, raft_id: u64) {
    let mut changes = store.changes();
    loop {
        if crate::raft::is_leader(&raft, raft_id) {
            match pass(&proposer, &store).await {
                Ok(computing) => tokio::time::sleep(pause_after(computing)).await,
                Err(e) => {
                    tracing::warn!(error = %e, "orchestration pass failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        // Wake on the next applied change, or resync.
        let _ = tokio::time::timeout(RESYNC, changes.changed()).await;
    }
}

/// The longest pause between two passes (see [`pause_after`]).
const MAX_PAUSE: Duration = Duration::from_millis(500);

/// How long to wait before the next pass after one that spent `computing`
/// reading the store: as long again, up to [`MAX_PAUSE`]. Every applied
/// change wakes the loop, and at 100,000 tasks each pass reads them all
/// (~100 ms, under the store's read lock): back to back, behind a stream
/// of status writes, the passes took a core for themselves and kept the
/// lock busy. Paced, they take at most half a core, and the changes that
/// arrived meanwhile are handled by the next pass together (level-triggered,
/// nothing is missed). A small cluster's passes take microseconds and are
/// not slowed.
pub fn pause_after(computing: Duration) -> Duration {
    computing.min(MAX_PAUSE)
}

/// One pass; returns the time spent computing under the store's read lock.
async fn pass(proposer: &Proposer, store: &SharedStore) -> Result<Duration, crate::ManagerError> {
    let now = crate::now_ms();
    let mut new_id = crate::new_id;
    let mut computing = Duration::ZERO;
    let mut read =
        |f: &mut dyn FnMut(&crate::store::ClusterState) -> Vec<crate::store::Command>| {
            let started = std::time::Instant::now();
            let commands = store.read(|s| f(s));
            computing += started.elapsed();
            chunked(commands, MAX_TASKS_PER_WRITE)
        };
    for command in read(&mut |s| orchestrator::reconcile(s, now, &mut new_id)) {
        proposer.propose(command).await?;
    }
    // The ingress network before addresses, so that the tasks of a newly
    // published service get their mesh address in this same pass.
    let ingress = read(&mut |s| {
        network::ingress::ensure_network(s, crate::new_id(), now)
            .into_iter()
            .collect()
    });
    for command in ingress {
        proposer.propose(command).await?;
    }
    // Addresses before placement: the scheduler places only tasks that
    // have an address on every network they need.
    for command in read(&mut |s| network::allocate(s, now)) {
        proposer.propose(command).await?;
    }
    for command in read(&mut |s| scheduling::schedule_pending(s, now)) {
        proposer.propose(command).await?;
    }
    Ok(computing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_are_paced_by_their_own_cost_up_to_a_bound() {
        assert_eq!(pause_after(Duration::ZERO), Duration::ZERO);
        assert_eq!(
            pause_after(Duration::from_millis(120)),
            Duration::from_millis(120)
        );
        assert_eq!(pause_after(Duration::from_secs(3)), MAX_PAUSE);
    }
}
