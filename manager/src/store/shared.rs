//! The applied cluster state as the rest of the manager reads it: a snapshot
//! under a lock, a broadcast of every applied change, and a counter that
//! moves after each applied batch so level-triggered loops can wake up and
//! recompute.
//!
//! It also keeps, for a manager that has just joined and has no state yet,
//! the managers the swarm listed in its join response (see
//! [`founding_manager`](SharedStore::founding_manager)).

use std::collections::BTreeMap;
use std::sync::RwLock;

use tokio::sync::{broadcast, watch};

use super::{ClusterState, StoreEvent};

/// Change events kept for slow watchers; one that lags further is told it
/// lagged and re-reads the state (loops are level-triggered).
const EVENT_BUFFER: usize = 4096;

pub struct SharedStore {
    // std RwLock, not tokio's: nothing awaits while it is held.
    state: RwLock<ClusterState>,
    events: broadcast::Sender<StoreEvent>,
    applied: watch::Sender<u64>,
    /// Node ID → Raft ID of the managers named at join; consulted only
    /// while the store has no cluster.
    founding_managers: RwLock<BTreeMap<String, u64>>,
}

impl Default for SharedStore {
    fn default() -> Self {
        Self::new(ClusterState::default())
    }
}

impl SharedStore {
    pub fn new(state: ClusterState) -> Self {
        SharedStore {
            state: RwLock::new(state),
            events: broadcast::channel(EVENT_BUFFER).0,
            applied: watch::channel(0).0,
            founding_managers: RwLock::new(BTreeMap::new()),
        }
    }

    /// The managers (node ID → Raft ID) the swarm listed when this manager
    /// joined or was promoted: until its store has state, they are the only
    /// peers it admits.
    pub fn set_founding_managers(&self, managers: BTreeMap<String, u64>) {
        *self.founding_managers.write().expect("founding lock") = managers;
    }

    /// The Raft ID of `node_id` if it is one of the founding managers.
    pub fn founding_manager(&self, node_id: &str) -> Option<u64> {
        self.founding_managers
            .read()
            .expect("founding lock")
            .get(node_id)
            .copied()
    }

    /// Reads the current state.
    pub fn read<R>(&self, f: impl FnOnce(&ClusterState) -> R) -> R {
        f(&self.state.read().expect("store lock poisoned"))
    }

    /// Changes the state and publishes `events` (the state machine's only use).
    pub(crate) fn write<R>(
        &self,
        f: impl FnOnce(&mut ClusterState, &mut Vec<StoreEvent>) -> R,
    ) -> R {
        let mut events = Vec::new();
        let result = {
            let mut state = self.state.write().expect("store lock poisoned");
            f(&mut state, &mut events)
        };
        for event in events {
            // No receiver is fine: nobody is watching yet.
            let _ = self.events.send(event);
        }
        self.applied.send_modify(|n| *n += 1);
        result
    }

    /// Every change applied from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }

    /// Wakes after each applied batch.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }
}
