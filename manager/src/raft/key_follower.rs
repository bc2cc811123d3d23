//! Keeps this manager's store key wrapped as the cluster says: with the
//! unlock key while autolock is on (and re-wrapped when it is rotated), with
//! a key-file KEK when it is off. Level-triggered: recomputed after every
//! applied batch and every second (a failed write is retried), from the
//! cluster object alone.
//!
//! One care: after a restart the in-memory state first comes from the last
//! snapshot and then catches up with the log. A snapshot older than a
//! `swarm update --autolock=true` says "off"; following it would write a
//! plain KEK to disk for a moment. So going *to* the key file waits until
//! this manager has re-applied everything its log held when it started.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::encryption::{wanted_protection, Protection, RaftKeys};
use super::types::Raft;
use crate::store::SharedStore;

pub async fn run(store: Arc<SharedStore>, keys: Arc<Mutex<RaftKeys>>, raft: Raft) {
    let replay_to = raft.metrics().borrow().last_log_index;
    let mut changes = store.changes();
    let mut retry = tokio::time::interval(Duration::from_secs(1));
    loop {
        let wanted = store.read(|s| s.cluster.as_ref().map(wanted_protection));
        let caught_up = raft.metrics().borrow().last_applied.map(|id| id.index) >= replay_to;
        if let Some(wanted) = wanted {
            if wanted != Protection::KeyFile || caught_up {
                let result = keys.lock().expect("keys lock").protect(&wanted);
                match result {
                    Ok(true) => tracing::info!(
                        autolock = wanted != Protection::KeyFile,
                        "re-wrapped this manager's Raft store key as the swarm's autolock setting says"
                    ),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot re-wrap this manager's Raft store key; retrying"),
                }
            }
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = retry.tick() => {}
        }
    }
}
