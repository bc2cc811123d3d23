//! Which peer managers answered recently. The Raft network records every
//! successful RPC here; the manager counts reachable members from it to fail
//! writes fast ("no quorum: 1 of 3 managers reachable") and to show
//! reachability in `node ls`, instead of waiting for a write to time out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A peer is reachable if it answered within this window. Leaders send
/// heartbeats every 100 ms by default, so a healthy peer answers many times
/// within it.
pub const REACHABLE_WITHIN: Duration = Duration::from_millis(1500);

#[derive(Default)]
pub struct PeerHealth {
    // std Mutex: a map insert per RPC, never held across an await.
    last_ok: Mutex<HashMap<u64, Instant>>,
}

impl PeerHealth {
    pub fn record_ok(&self, raft_id: u64) {
        self.last_ok
            .lock()
            .expect("peer health lock")
            .insert(raft_id, Instant::now());
    }

    pub fn is_reachable(&self, raft_id: u64) -> bool {
        self.last_ok
            .lock()
            .expect("peer health lock")
            .get(&raft_id)
            .is_some_and(|t| t.elapsed() <= REACHABLE_WITHIN)
    }
}
