//! Node filters. Each says, for a node it rejects, why — in words an operator
//! reads in `service ps`: the reasons of all rejected nodes are counted and
//! joined as "no suitable node (runtime docker not available on 3 nodes)".

use std::collections::BTreeMap;

use crate::{Availability, NodeView, TaskRequest};

/// One step of the placement pipeline.
pub trait Filter {
    /// `Some(reason)` when `node` cannot take `task`.
    fn reject(&self, node: &NodeView, task: &TaskRequest) -> Option<String>;
}

/// Only Ready nodes take tasks.
pub struct ReadyFilter;

impl Filter for ReadyFilter {
    fn reject(&self, node: &NodeView, _task: &TaskRequest) -> Option<String> {
        (!node.ready).then(|| "node not ready".to_string())
    }
}

/// Paused and drained nodes take no new tasks.
pub struct AvailabilityFilter;

impl Filter for AvailabilityFilter {
    fn reject(&self, node: &NodeView, _task: &TaskRequest) -> Option<String> {
        match node.availability {
            Availability::Active => None,
            Availability::Pause => Some("node paused".into()),
            Availability::Drain => Some("node drained".into()),
        }
    }
}

/// The node must have the task's runtime.
pub struct RuntimeFilter;

impl Filter for RuntimeFilter {
    fn reject(&self, node: &NodeView, task: &TaskRequest) -> Option<String> {
        (!node.runtimes.iter().any(|r| r == &task.runtime))
            .then(|| format!("runtime {} not available", task.runtime))
    }
}

/// The filters every placement goes through, in order.
pub fn default_pipeline() -> Vec<Box<dyn Filter + Send + Sync>> {
    vec![
        Box::new(ReadyFilter),
        Box::new(AvailabilityFilter),
        Box::new(RuntimeFilter),
    ]
}

/// "no suitable node (reason on N nodes; …)", or "no nodes in the swarm".
pub fn explain(rejections: &BTreeMap<String, usize>) -> String {
    if rejections.is_empty() {
        return "no suitable node (no nodes available)".to_string();
    }
    let parts: Vec<String> = rejections
        .iter()
        .map(|(reason, n)| format!("{reason} on {n} node{}", if *n == 1 { "" } else { "s" }))
        .collect();
    format!("no suitable node ({})", parts.join("; "))
}
