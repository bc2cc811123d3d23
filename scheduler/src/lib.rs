//! Pure task placement: given what the nodes are and what already runs where,
//! decide where each pending task goes, or say why it fits nowhere.
//!
//! No I/O, no async, no clock: the manager's scheduler loop builds the views,
//! calls [`schedule`], and writes the decisions through Raft. Orchestrators
//! decide *how many* tasks exist; this crate only decides *where*.
//!
//! Placement is a filter pipeline ([`filter`]) — each filter can say why it
//! rejects a node — followed by spread scoring: the node with the fewest tasks
//! of the same service wins, then the one with the fewest tasks overall, then
//! the lowest node ID (so decisions are deterministic). A whole batch of
//! pending tasks is placed in one pass, counting each placement as it goes.
//!
//! # Layout
//! - [`filter`]: node filters and their explanations.

#![forbid(unsafe_code)]

pub mod filter;

use std::collections::{BTreeMap, HashMap};

pub use filter::{explain, Filter};

/// Whether a node accepts new tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Active,
    Pause,
    Drain,
}

/// What the scheduler knows of a node.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub id: String,
    pub ready: bool,
    pub availability: Availability,
    pub runtimes: Vec<String>,
}

/// A pending task to place.
#[derive(Debug, Clone)]
pub struct TaskRequest {
    pub id: String,
    pub service_id: String,
    pub runtime: String,
}

/// A live task already on a node (counts towards spreading).
#[derive(Debug, Clone)]
pub struct Placed {
    pub service_id: String,
    pub node_id: String,
}

/// The decisions for one batch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decisions {
    /// `(task ID, node ID)`.
    pub assigned: Vec<(String, String)>,
    /// `(task ID, reason)`, e.g. "no suitable node (runtime docker not available on 3 nodes)".
    pub unplaced: Vec<(String, String)>,
}

#[derive(Default, Clone, Copy)]
struct Load {
    total: usize,
}

/// Places `pending` on `nodes`, given the `placed` tasks already running.
pub fn schedule(nodes: &[NodeView], placed: &[Placed], pending: &[TaskRequest]) -> Decisions {
    let filters = filter::default_pipeline();
    let mut load: HashMap<&str, Load> = HashMap::new();
    let mut per_service: HashMap<(&str, &str), usize> = HashMap::new();
    for p in placed {
        load.entry(p.node_id.as_str()).or_default().total += 1;
        *per_service
            .entry((p.service_id.as_str(), p.node_id.as_str()))
            .or_default() += 1;
    }
    // Nodes in ID order so ties break the same way everywhere.
    let mut ordered: Vec<&NodeView> = nodes.iter().collect();
    ordered.sort_by(|a, b| a.id.cmp(&b.id));

    // Eligibility depends on the task's requirements, not on the task: check
    // each distinct requirement once per batch.
    let mut eligible_by_req: BTreeMap<(&str, &str), Result<Vec<&NodeView>, String>> =
        BTreeMap::new();
    let mut decisions = Decisions::default();
    for task in pending {
        let key = (task.service_id.as_str(), task.runtime.as_str());
        let eligible = eligible_by_req.entry(key).or_insert_with(|| {
            let mut rejections: BTreeMap<String, usize> = BTreeMap::new();
            let fit: Vec<&NodeView> = ordered
                .iter()
                .copied()
                .filter(
                    |node| match filters.iter().find_map(|f| f.reject(node, task)) {
                        Some(reason) => {
                            *rejections.entry(reason).or_default() += 1;
                            false
                        }
                        None => true,
                    },
                )
                .collect();
            if fit.is_empty() {
                Err(explain(&rejections))
            } else {
                Ok(fit)
            }
        });
        match eligible {
            Err(reason) => decisions.unplaced.push((task.id.clone(), reason.clone())),
            Ok(fit) => {
                let best = fit
                    .iter()
                    .min_by_key(|node| {
                        let same = per_service
                            .get(&(task.service_id.as_str(), node.id.as_str()))
                            .copied()
                            .unwrap_or(0);
                        let total = load.get(node.id.as_str()).map(|l| l.total).unwrap_or(0);
                        (same, total)
                    })
                    .expect("fit is not empty");
                load.entry(best.id.as_str()).or_default().total += 1;
                *per_service
                    .entry((task.service_id.as_str(), best.id.as_str()))
                    .or_default() += 1;
                decisions.assigned.push((task.id.clone(), best.id.clone()));
            }
        }
    }
    decisions
}

#[cfg(test)]
mod tests;
