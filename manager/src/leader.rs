//! The leader-only loops: the orchestrator, the network allocator and the
//! scheduler. They run while
//! this manager leads and idle otherwise; each pass recomputes everything from
//! the store (level-triggered) and waits for its writes to apply before the
//! next, so a leader change mid-pass duplicates nothing.

use std::sync::Arc;
use std::time::Duration;

use crate::proposer::Proposer;
use crate::raft::types::Raft;
use crate::store::SharedStore;
use crate::{network, orchestrator, scheduling};

/// A pass runs at least this often even without store changes.
const RESYNC: Duration = Duration::from_secs(1);

pub async fn run(raft: Raft, proposer: Proposer, store: Arc<SharedStore>, raft_id: u64) {
    let mut changes = store.changes();
    loop {
        if crate::raft::is_leader(&raft, raft_id) {
            if let Err(e) = pass(&proposer, &store).await {
                tracing::warn!(error = %e, "orchestration pass failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        // Wake on the next applied change, or resync.
        let _ = tokio::time::timeout(RESYNC, changes.changed()).await;
    }
}

async fn pass(proposer: &Proposer, store: &SharedStore) -> Result<(), crate::ManagerError> {
    let now = crate::now_ms();
    let mut new_id = crate::new_id;
    let commands = store.read(|s| orchestrator::reconcile(s, now, &mut new_id));
    for command in commands {
        proposer.propose(command).await?;
    }
    // The ingress network before addresses, so that the tasks of a newly
    // published service get their mesh address in this same pass.
    let ingress = store.read(|s| network::ingress::ensure_network(s, crate::new_id(), now));
    if let Some(command) = ingress {
        proposer.propose(command).await?;
    }
    // Addresses before placement: the scheduler places only tasks that
    // have an address on every network they need.
    let commands = store.read(|s| network::allocate(s, now));
    for command in commands {
        proposer.propose(command).await?;
    }
    let commands = store.read(|s| scheduling::schedule_pending(s, now));
    for command in commands {
        proposer.propose(command).await?;
    }
    Ok(())
}
