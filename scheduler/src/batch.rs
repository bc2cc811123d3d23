//! The batch engine behind [`crate::schedule`]: places a whole batch in one
//! pass without scanning every node for every task.
//!
//! Tasks with the same requirements (service, runtime, placement,
//! reservations) form a *group*. The first time a group is met, the nodes
//! that pass the filters are found once (the static part — ready, available,
//! runtime, constraints — is shared by all groups with the same runtime and
//! constraints) and arranged in a *spread tree*: one level per spread
//! preference, whose branches are the label's values (labelled values in
//! order, then the nodes without the label), and leaves holding min-heaps of
//! nodes keyed by (tasks of the service, tasks overall, node rank in ID
//! order). Inner branches keep min-heaps of their children keyed by (tasks of
//! the service in the subtree, child order). A placement walks down the
//! cheapest child at each level, pops the best node of the leaf, and pushes
//! everything back with its count raised by one: O(depth · log fan-out +
//! log leaf) per task instead of O(nodes).
//!
//! Heap entries may go stale, since a node's counts also move when another
//! group places on it. Counts only ever grow during a batch, so a stale entry
//! is never *worse* than it looks: popping it, seeing the real key, and
//! pushing it back keeps the minimum exact (lazy re-keying). For the same
//! reason a node found full (resources, max replicas) can be dropped from the
//! group for the rest of the batch, and a branch left with no nodes from its
//! parent.
//!
//! One approximation, the same as Swarm's (which builds its tree once per
//! task group): subtree counts are the group's own view — tasks of the
//! service already placed on the subtree's nodes plus the group's own
//! placements. Two groups of one service in one batch (a rolling update
//! mixing specs) do not see each other's placements at the branch level,
//! only at the node level.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};

use crate::constraint::Constraint;
use crate::filter::{
    self, explain, first_rejection, Filter, MaxReplicasFilter, NodeLoad, ResourceFilter,
};
use crate::model::{Decisions, HostPort, Placed, TaskRequest};
use crate::nodes::{NodeView, Resources};
use crate::placement::Preference;

/// A node's position in ID order: ties between equally loaded nodes go to
/// the lowest ID, in every group, whatever order the nodes came in.
type Rank = u32;

/// Places `pending` on `nodes`; see the module documentation.
pub(crate) fn schedule(
    nodes: &[NodeView],
    placed: &[Placed],
    pending: &[TaskRequest],
) -> Decisions {
    let mut ordered: Vec<&NodeView> = nodes.iter().collect();
    ordered.sort_by(|a, b| a.id.cmp(&b.id));

    let mut services: HashMap<&str, u32> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut group_index: HashMap<Requirements, u32> = HashMap::new();
    let mut group_of_task: Vec<u32> = Vec::with_capacity(pending.len());
    let mut previous: Option<(&TaskRequest, u32)> = None;
    for task in pending {
        // Replicas of one service usually come in a row: compare with the
        // previous task before hashing the whole placement.
        let g = match previous {
            Some((p, g)) if Requirements(p) == Requirements(task) => g,
            _ => *group_index.entry(Requirements(task)).or_insert_with(|| {
                let next = services.len() as u32;
                let svc = *services.entry(task.service_id.as_str()).or_insert(next);
                groups.push(Group {
                    task,
                    svc,
                    remaining: 0,
                    state: GroupState::Unbuilt,
                });
                (groups.len() - 1) as u32
            }),
        };
        groups[g as usize].remaining += 1;
        group_of_task.push(g);
        previous = Some((task, g));
    }

    let rank_of: HashMap<&str, Rank> = ordered
        .iter()
        .enumerate()
        .map(|(r, &n)| (n.id.as_str(), r as Rank))
        .collect();
    let mut cluster = Cluster::new(ordered, placed, &services);
    let pipeline = filter::default_pipeline();
    type StaticKey<'a> = (&'a str, bool, bool, bool, &'a [Constraint]);
    let mut static_eligible: HashMap<StaticKey, Vec<Rank>> = HashMap::new();
    let mut decisions = Decisions::default();
    let mut unplaced: Vec<(&TaskRequest, u32)> = Vec::new();
    for (task, &g) in pending.iter().zip(&group_of_task) {
        let group = &mut groups[g as usize];
        if let GroupState::Unbuilt = group.state {
            let key = (
                group.task.runtime.as_str(),
                group.task.needs_overlay,
                group.task.needs_secrets,
                group.task.needs_mounts,
                group.task.placement.constraints.as_slice(),
            );
            let eligible = static_eligible.entry(key).or_insert_with(|| {
                (0..cluster.nodes.len() as Rank)
                    .filter(|&r| filter::statically_eligible(cluster.nodes[r as usize], group.task))
                    .collect()
            });
            group.state = GroupState::Open(Tree::build(eligible, group.task, group.svc, &cluster));
        }
        // The slot's volume node first, when it takes the task. Placing
        // there outside the tree leaves stale heap entries, which the lazy
        // re-keying already copes with (counts only grow).
        let preferred = task
            .preferred_node
            .as_deref()
            .and_then(|id| rank_of.get(id).copied())
            .filter(|&r| cluster.takes(r, group.svc, task));
        let chosen = match (preferred, &mut group.state) {
            (Some(rank), _) => {
                cluster.commit(group.svc, rank, task);
                Some(rank)
            }
            (None, GroupState::Open(tree)) => tree.place(&mut cluster, group.svc, group.task),
            _ => None,
        };
        match chosen {
            Some(rank) => decisions
                .assigned
                .push((task.id.clone(), cluster.nodes[rank as usize].id.clone())),
            None => {
                group.state = GroupState::Exhausted;
                unplaced.push((task, g));
            }
        }
        group.remaining -= 1;
        if group.remaining == 0 {
            // Free the tree as soon as the group is done: a batch of many
            // small services keeps only the groups in flight.
            if let GroupState::Open(_) = group.state {
                group.state = GroupState::Done;
            }
        }
    }
    // Reasons describe the nodes as the batch leaves them — what an operator
    // looking at the pending task will find — and cost one pipeline run over
    // the nodes per exhausted group, not per unplaced task.
    let mut reasons: HashMap<u32, String> = HashMap::new();
    for (task, g) in unplaced {
        let reason = reasons.entry(g).or_insert_with(|| {
            let group = &groups[g as usize];
            cluster.explain(&pipeline, group.task, group.svc)
        });
        decisions.unplaced.push((task.id.clone(), reason.clone()));
    }
    decisions
}

/// A task's requirements, compared and hashed without its ID: tasks equal
/// here are interchangeable for placement.
struct Requirements<'a>(&'a TaskRequest);

/// Service, runtime, (overlay, secrets, mounts), placement, reservations
/// and host ports: what makes two tasks interchangeable for placement.
type RequirementsKey<'a> = (
    &'a str,
    &'a str,
    (bool, bool, bool),
    &'a crate::placement::Placement,
    &'a Resources,
    &'a [HostPort],
);

impl Requirements<'_> {
    fn key(&self) -> RequirementsKey<'_> {
        let t = self.0;
        (
            &t.service_id,
            &t.runtime,
            (t.needs_overlay, t.needs_secrets, t.needs_mounts),
            &t.placement,
            &t.reservations,
            &t.host_ports,
        )
    }
}

impl PartialEq for Requirements<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Requirements<'_> {}

impl Hash for Requirements<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state)
    }
}

struct Group<'a> {
    /// The first task of the group stands for all of them.
    task: &'a TaskRequest,
    svc: u32,
    /// Tasks of the group not yet handled in this batch.
    remaining: usize,
    state: GroupState,
}

enum GroupState {
    Unbuilt,
    Open(Tree),
    /// No node can take another task of the group in this batch: nodes only
    /// fill up.
    Exhausted,
    Done,
}

/// What the batch has done to the nodes so far.
struct Cluster<'a> {
    /// By rank.
    nodes: Vec<&'a NodeView>,
    total: Vec<u32>,
    available: Vec<Resources>,
    /// Tasks of a batch service on a node, keyed by `svc << 32 | rank`.
    /// Sparse: a dense service × node table would not fit a batch of
    /// thousands of small services on thousands of nodes.
    same: HashMap<u64, u32, BuildHasherDefault<FxHasher>>,
    /// Host-mode ports bound per node (few: only services that publish in
    /// host mode put anything here).
    host_ports: HashSet<(Rank, HostPort)>,
}

impl<'a> Cluster<'a> {
    fn new(nodes: Vec<&'a NodeView>, placed: &[Placed], services: &HashMap<&str, u32>) -> Self {
        let rank_of: HashMap<&str, Rank> = nodes
            .iter()
            .enumerate()
            .map(|(r, n)| (n.id.as_str(), r as Rank))
            .collect();
        let mut cluster = Cluster {
            total: vec![0; nodes.len()],
            available: nodes.iter().map(|n| n.resources).collect(),
            nodes,
            same: HashMap::default(),
            host_ports: HashSet::new(),
        };
        for p in placed {
            // Tasks on nodes that left the swarm weigh on nothing.
            let Some(&rank) = rank_of.get(p.node_id.as_str()) else {
                continue;
            };
            cluster.total[rank as usize] += 1;
            for port in &p.host_ports {
                cluster.host_ports.insert((rank, *port));
            }
            let avail = &mut cluster.available[rank as usize];
            avail.nano_cpus = avail.nano_cpus.saturating_sub(p.reservations.nano_cpus);
            avail.memory_bytes = avail
                .memory_bytes
                .saturating_sub(p.reservations.memory_bytes);
            if let Some(&svc) = services.get(p.service_id.as_str()) {
                *cluster.same.entry(same_key(svc, rank)).or_default() += 1;
            }
        }
        cluster
    }

    fn same(&self, svc: u32, rank: Rank) -> u32 {
        self.same.get(&same_key(svc, rank)).copied().unwrap_or(0)
    }

    /// Whether `rank` can take one more task of `task`'s group now.
    fn fits(&self, rank: Rank, same: u32, task: &TaskRequest) -> bool {
        MaxReplicasFilter::fits(same.into(), task.placement.max_replicas_per_node)
            && ResourceFilter::fits(&self.available[rank as usize], &task.reservations)
            && self.host_port_in_use(rank, task).is_none()
    }

    fn host_port_in_use(&self, rank: Rank, task: &TaskRequest) -> Option<HostPort> {
        task.host_ports
            .iter()
            .find(|p| self.host_ports.contains(&(rank, **p)))
            .copied()
    }

    /// Whether `rank` passes every filter for one more task of `task`'s
    /// group now.
    fn takes(&self, rank: Rank, svc: u32, task: &TaskRequest) -> bool {
        filter::statically_eligible(self.nodes[rank as usize], task)
            && self.fits(rank, self.same(svc, rank), task)
    }

    fn commit(&mut self, svc: u32, rank: Rank, task: &TaskRequest) {
        let reservations = &task.reservations;
        for port in &task.host_ports {
            self.host_ports.insert((rank, *port));
        }
        self.total[rank as usize] += 1;
        *self.same.entry(same_key(svc, rank)).or_default() += 1;
        let avail = &mut self.available[rank as usize];
        // `fits` checked there is enough.
        avail.nano_cpus -= reservations.nano_cpus;
        avail.memory_bytes -= reservations.memory_bytes;
    }

    /// Runs the full pipeline over every node as things stand: each rejected
    /// node counts once, under its first failing filter.
    fn explain(
        &self,
        pipeline: &[Box<dyn Filter + Send + Sync>],
        task: &TaskRequest,
        svc: u32,
    ) -> String {
        let mut rejections: BTreeMap<(usize, String), usize> = BTreeMap::new();
        for (rank, node) in self.nodes.iter().enumerate() {
            let load = NodeLoad {
                tasks_of_service: self.same(svc, rank as Rank).into(),
                available: self.available[rank],
                host_port_in_use: self.host_port_in_use(rank as Rank, task),
            };
            if let Some(rejection) = first_rejection(pipeline, node, task, &load) {
                *rejections.entry(rejection).or_default() += 1;
            }
        }
        explain(&rejections)
    }
}

fn same_key(svc: u32, rank: Rank) -> u64 {
    (u64::from(svc) << 32) | u64::from(rank)
}

/// A leaf entry: fewest tasks of the service, then fewest overall, then the
/// lowest rank (ID). `Reverse` turns std's max-heap into a min-heap.
type NodeEntry = Reverse<(u32, u32, Rank)>;
/// An inner entry: fewest tasks of the service in the subtree, then the
/// child built first (label values in order, unlabelled nodes last).
type ChildEntry = Reverse<(u32, u32)>;

enum Branch {
    Inner(BinaryHeap<ChildEntry>),
    Leaf(BinaryHeap<NodeEntry>),
}

/// One group's spread tree (a single leaf without preferences).
struct Tree {
    /// Arena; the root is 0 and children have higher indices than parents,
    /// siblings increasing in label order.
    branches: Vec<Branch>,
    /// Scratch for `place`: `(parent, count, child)` entries popped on the
    /// way down, kept to avoid an allocation per task.
    path: Vec<(u32, u32, u32)>,
}

impl Tree {
    fn build(eligible: &[Rank], task: &TaskRequest, svc: u32, cluster: &Cluster) -> Tree {
        let labels: Vec<&str> = task
            .placement
            .preferences
            .iter()
            .map(|p| match p {
                Preference::Spread { label } => label.as_str(),
            })
            .collect();
        // As in Swarm, the tree holds the nodes passing the whole pipeline
        // now, so a node already full does not count for its branch.
        let fitting: Vec<Rank> = eligible
            .iter()
            .copied()
            .filter(|&r| cluster.fits(r, cluster.same(svc, r), task))
            .collect();
        let mut tree = Tree {
            branches: Vec::new(),
            path: Vec::with_capacity(labels.len()),
        };
        tree.build_branch(&fitting, &labels, svc, cluster);
        tree
    }

    /// Builds the branch over `ranks` for the preferences `labels`; returns
    /// its index and the tasks of the service on its nodes.
    fn build_branch(
        &mut self,
        ranks: &[Rank],
        labels: &[&str],
        svc: u32,
        cluster: &Cluster,
    ) -> (u32, u32) {
        let id = self.branches.len() as u32;
        let Some((label, deeper)) = labels.split_first() else {
            let mut count = 0;
            let entries: Vec<NodeEntry> = ranks
                .iter()
                .map(|&r| {
                    let same = cluster.same(svc, r);
                    count += same;
                    Reverse((same, cluster.total[r as usize], r))
                })
                .collect();
            self.branches.push(Branch::Leaf(BinaryHeap::from(entries)));
            return (id, count);
        };
        self.branches.push(Branch::Inner(BinaryHeap::new()));
        // `(missing, value)`: labelled values in order, then the unlabelled.
        let mut parts: BTreeMap<(bool, &str), Vec<Rank>> = BTreeMap::new();
        for &r in ranks {
            let value = cluster.nodes[r as usize].labels.get(*label);
            parts
                .entry((value.is_none(), value.map_or("", String::as_str)))
                .or_default()
                .push(r);
        }
        let mut children = Vec::with_capacity(parts.len());
        let mut count = 0;
        for part in parts.values() {
            let (child, c) = self.build_branch(part, deeper, svc, cluster);
            children.push(Reverse((c, child)));
            count += c;
        }
        self.branches[id as usize] = Branch::Inner(BinaryHeap::from(children));
        (id, count)
    }

    /// Picks the node for one more task of the group and records it in
    /// `cluster`, or `None` when no node of the group can take it.
    fn place(&mut self, cluster: &mut Cluster, svc: u32, task: &TaskRequest) -> Option<Rank> {
        loop {
            self.path.clear();
            let mut b = 0u32;
            while let Branch::Inner(children) = &mut self.branches[b as usize] {
                // Only the root can be empty: emptied branches are dropped.
                let Reverse((count, child)) = children.pop()?;
                self.path.push((b, count, child));
                b = child;
            }
            let Branch::Leaf(leaf) = &mut self.branches[b as usize] else {
                unreachable!("the walk stops at a leaf")
            };
            if let Some((rank, same, total)) = pop_fitting(leaf, cluster, svc, task) {
                cluster.commit(svc, rank, task);
                leaf.push(Reverse((same + 1, total + 1, rank)));
                for i in (0..self.path.len()).rev() {
                    let (parent, count, child) = self.path[i];
                    self.inner(parent).push(Reverse((count + 1, child)));
                }
                return Some(rank);
            }
            // The leaf has no node left: drop it, and every ancestor it
            // leaves empty; put the others back and walk down again.
            if self.path.is_empty() {
                return None;
            }
            let mut alive = false;
            for i in (0..self.path.len()).rev() {
                let (parent, count, child) = self.path[i];
                let children = self.inner(parent);
                if alive {
                    children.push(Reverse((count, child)));
                }
                alive = !children.is_empty();
            }
        }
    }

    fn inner(&mut self, b: u32) -> &mut BinaryHeap<ChildEntry> {
        match &mut self.branches[b as usize] {
            Branch::Inner(children) => children,
            Branch::Leaf(_) => unreachable!("path entries are inner branches"),
        }
    }
}

/// Pops the best node of `leaf` that can take the task, with its current
/// counts. Nodes that cannot are dropped for good (they only fill up);
/// entries whose counts moved are pushed back with the real ones.
fn pop_fitting(
    leaf: &mut BinaryHeap<NodeEntry>,
    cluster: &Cluster,
    svc: u32,
    task: &TaskRequest,
) -> Option<(Rank, u32, u32)> {
    while let Some(Reverse((same, total, rank))) = leaf.pop() {
        let now = (cluster.same(svc, rank), cluster.total[rank as usize]);
        if !cluster.fits(rank, now.0, task) {
            continue;
        }
        if now != (same, total) {
            leaf.push(Reverse((now.0, now.1, rank)));
            continue;
        }
        return Some((rank, same, total));
    }
    None
}

/// The Firefox/rustc multiplicative hash, for the `(service, node)` counts
/// looked up on every placement: std's SipHash resists collision attacks
/// that integer keys built here cannot mount, at several times the cost.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
