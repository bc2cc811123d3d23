//! The applied cluster state as the rest of the manager reads it: a snapshot
//! under a lock, a broadcast of every applied change, and a counter that
//! moves after each applied batch so level-triggered loops can wake up and
//! recompute.
//!
//! Beside the state it keeps an index of the tasks assigned to each node,
//! updated from the same events under the same write lock, so that the
//! dispatcher's per-session assignment sets cost the node's tasks rather
//! than every task of the cluster (issue 20: with 500 sessions and 10,000
//! tasks, recomputing every set by scanning all tasks on each applied
//! change was what kept the simulated cluster from converging).
//!
//! It also keeps, for a manager that has just joined and has no state yet,
//! the managers the swarm listed in its join response (see
//! [`founding_manager`](SharedStore::founding_manager)).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::RwLock;

use tokio::sync::{broadcast, watch};

use super::state::{Change, ClusterState, StoreEvent};

/// Change events kept for slow watchers; one that lags further is told it
/// lagged and re-reads the state (loops are level-triggered).
const EVENT_BUFFER: usize = 4096;

pub struct SharedStore {
    // std RwLock, not tokio's: nothing awaits while it is held.
    state: RwLock<ClusterState>,
    /// Written only while `state`'s write lock is held (lock order: state,
    /// then this), so a reader holding both sees them agree.
    by_node: RwLock<TaskIndex>,
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
            by_node: RwLock::new(TaskIndex::of(&state)),
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

    /// Reads the current state with the IDs of the tasks assigned to
    /// `node_id` (any state; the caller filters).
    pub fn read_node_tasks<R>(
        &self,
        node_id: &str,
        f: impl FnOnce(&ClusterState, &BTreeSet<String>) -> R,
    ) -> R {
        let state = self.state.read().expect("store lock poisoned");
        let index = self.by_node.read().expect("index lock poisoned");
        let empty = BTreeSet::new();
        f(&state, index.by_node.get(node_id).unwrap_or(&empty))
    }

    /// When what a node's assignment set is made of last changed: see
    /// [`AssignmentMarks`]. Read before the state it guards, so that a
    /// change landing between the two reads is seen again, never missed.
    pub fn assignment_marks(&self, node_id: &str) -> AssignmentMarks {
        let index = self.by_node.read().expect("index lock poisoned");
        AssignmentMarks {
            node: index.marks.by_node.get(node_id).copied().unwrap_or(0),
            shared: index.marks.shared,
        }
    }

    /// Changes the state and publishes `events` (the state machine's only use).
    pub(crate) fn write<R>(
        &self,
        f: impl FnOnce(&mut ClusterState, &mut Vec<StoreEvent>) -> R,
    ) -> R {
        let mut events = Vec::new();
        let result = {
            let mut state = self.state.write().expect("store lock poisoned");
            let result = f(&mut state, &mut events);
            let mut index = self.by_node.write().expect("index lock poisoned");
            let write = index.marks.writes + 1;
            if events.iter().any(|e| matches!(e, StoreEvent::Reset)) {
                *index = TaskIndex::of(&state);
                index.marks.shared = write;
            } else {
                for event in &events {
                    match event {
                        StoreEvent::Task(change, task) => {
                            let old = index.apply(*change, &task.id, &task.node_id);
                            index.marks.touched(&task.node_id, write);
                            if let Some(old) = old {
                                index.marks.touched(&old, write);
                            }
                            if !task.networks.is_empty() {
                                index.marks.shared = write;
                            }
                        }
                        _ => index.marks.shared = write,
                    }
                }
            }
            index.marks.writes = write;
            result
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

/// The writes after which a node's assignment set may differ, as
/// [`SharedStore::assignment_marks`] gives them: the last write that
/// touched a task on the node (`node`), and the last that changed anything
/// other nodes' sets are also made of (`shared`: any object but a task, a
/// task on a network — addresses, peers and the mesh are shared — or a
/// snapshot installed). While both stay put, the set is what it was, and
/// the dispatcher need not rebuild it: with 1,000 sessions each copying its
/// 100 tasks on every applied status write, rebuilding was a fifth of the
/// leader's CPU and a thousand read locks per write (issue 20).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AssignmentMarks {
    pub node: u64,
    pub shared: u64,
}

#[derive(Default)]
struct Marks {
    /// Writes applied so far.
    writes: u64,
    by_node: HashMap<String, u64>,
    shared: u64,
}

impl Marks {
    fn touched(&mut self, node_id: &str, write: u64) {
        if !node_id.is_empty() {
            self.by_node.insert(node_id.to_string(), write);
        }
    }
}

/// The tasks assigned to each node, by task ID.
#[derive(Default)]
struct TaskIndex {
    by_node: HashMap<String, BTreeSet<String>>,
    node_of: HashMap<String, String>,
    marks: Marks,
}

impl TaskIndex {
    fn of(state: &ClusterState) -> Self {
        let mut index = TaskIndex::default();
        for task in state.tasks.values() {
            index.apply(Change::Created, &task.id, &task.node_id);
        }
        index
    }

    /// Indexes one task change; returns the node the task was on before.
    fn apply(&mut self, change: Change, task_id: &str, node_id: &str) -> Option<String> {
        let previous = self.node_of.remove(task_id);
        if let Some(old) = previous.clone() {
            if let Some(set) = self.by_node.get_mut(&old) {
                set.remove(task_id);
                if set.is_empty() {
                    self.by_node.remove(&old);
                }
            }
        }
        if change != Change::Removed && !node_id.is_empty() {
            self.node_of
                .insert(task_id.to_string(), node_id.to_string());
            self.by_node
                .entry(node_id.to_string())
                .or_default()
                .insert(task_id.to_string());
        }
        previous
    }
}

#[cfg(test)]
mod index_tests {
    use super::*;
    use shoal_proto::v1::Task;

    fn task(id: &str, node: &str) -> Task {
        Task {
            id: id.into(),
            node_id: node.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_node_index_follows_assignment_and_removal() {
        let store = SharedStore::default();
        let ids = |node: &str| store.read_node_tasks(node, |_, ids| ids.clone());
        store.write(|s, events| {
            for t in [task("a", ""), task("b", "n1")] {
                s.tasks.insert(t.id.clone(), t.clone());
                events.push(StoreEvent::Task(Change::Created, t));
            }
        });
        assert_eq!(ids("n1"), BTreeSet::from(["b".to_string()]));
        store.write(|s, events| {
            let t = task("a", "n2");
            s.tasks.insert(t.id.clone(), t.clone());
            events.push(StoreEvent::Task(Change::Updated, t));
            let b = s.tasks.remove("b").unwrap();
            events.push(StoreEvent::Task(Change::Removed, b));
        });
        assert!(ids("n1").is_empty());
        assert_eq!(ids("n2"), BTreeSet::from(["a".to_string()]));
        // A replaced state is indexed afresh.
        store.write(|s, events| {
            s.tasks.clear();
            s.tasks.insert("c".into(), task("c", "n1"));
            events.push(StoreEvent::Reset);
        });
        assert!(ids("n2").is_empty());
        assert_eq!(ids("n1"), BTreeSet::from(["c".to_string()]));
    }

    #[test]
    fn a_nodes_marks_move_only_when_its_tasks_or_shared_objects_change() {
        let store = SharedStore::default();
        let put = |t: Task| {
            store.write(|s, events| {
                s.tasks.insert(t.id.clone(), t.clone());
                events.push(StoreEvent::Task(Change::Updated, t));
            })
        };
        put(task("a", "n1"));
        put(task("b", "n2"));
        let n1 = store.assignment_marks("n1");
        // Another node's task status: n1's set cannot have changed.
        put(task("b", "n2"));
        assert_eq!(store.assignment_marks("n1"), n1);
        // A task moving from n2 to n1 touches both.
        let n2 = store.assignment_marks("n2");
        put(task("b", "n1"));
        assert_ne!(store.assignment_marks("n1"), n1);
        assert_ne!(store.assignment_marks("n2"), n2);
        // A task on a network changes what every node's set is made of
        // (addresses, peers), and so does any other object.
        let n3 = store.assignment_marks("n3");
        put(Task {
            networks: vec![Default::default()],
            ..task("c", "n2")
        });
        assert_ne!(store.assignment_marks("n3"), n3);
        let n3 = store.assignment_marks("n3");
        store.write(|_, events| events.push(StoreEvent::Secret(Change::Created, "s".into())));
        assert_ne!(store.assignment_marks("n3"), n3);
    }
}
