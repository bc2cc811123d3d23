//! Node filters. Each says, for a node it rejects, why — in words an operator
//! reads in `service ps`: the first failing filter of every rejected node is
//! counted, and the counts are joined as "no suitable node (insufficient
//! memory on 2 nodes; constraint node.labels.zone==eu not met on 1 node)".
//!
//! The filters here are the reference for *whether* a node fits and *why
//! not*. The batch engine (`batch`) asks the same questions through
//! the cheap `accepts`/`fits` helpers below, so a decision and its
//! explanation cannot disagree.

use std::collections::BTreeMap;

use crate::model::{HostPort, TaskRequest};
use crate::nodes::{Availability, NodeView, Resources};

/// What changes on a node while a batch is placed: how many tasks of the
/// task's service it runs and what it has left to reserve.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeLoad {
    pub tasks_of_service: u64,
    /// Reported resources minus the reservations of the tasks on the node.
    pub available: Resources,
    /// The first of the task's host-mode ports a task on the node binds already.
    pub host_port_in_use: Option<HostPort>,
}

/// One step of the placement pipeline.
pub trait Filter {
    /// `Some(reason)` when `node`, loaded as `load`, cannot take `task`.
    fn reject(&self, node: &NodeView, task: &TaskRequest, load: &NodeLoad) -> Option<String>;
}

/// Only Ready nodes take tasks.
pub struct ReadyFilter;

impl ReadyFilter {
    pub(crate) fn accepts(node: &NodeView) -> bool {
        node.ready
    }
}

impl Filter for ReadyFilter {
    fn reject(&self, node: &NodeView, _task: &TaskRequest, _load: &NodeLoad) -> Option<String> {
        (!Self::accepts(node)).then(|| "node not ready".to_string())
    }
}

/// Paused and drained nodes take no new tasks.
pub struct AvailabilityFilter;

impl AvailabilityFilter {
    pub(crate) fn accepts(node: &NodeView) -> bool {
        node.availability == Availability::Active
    }
}

impl Filter for AvailabilityFilter {
    fn reject(&self, node: &NodeView, _task: &TaskRequest, _load: &NodeLoad) -> Option<String> {
        match node.availability {
            Availability::Active => None,
            Availability::Pause => Some("node paused".into()),
            Availability::Drain => Some("node drained".into()),
        }
    }
}

/// The node must have the task's runtime.
pub struct RuntimeFilter;

impl RuntimeFilter {
    pub(crate) fn accepts(node: &NodeView, task: &TaskRequest) -> bool {
        node.runtimes.iter().any(|r| r == &task.runtime)
    }
}

impl Filter for RuntimeFilter {
    fn reject(&self, node: &NodeView, task: &TaskRequest, _load: &NodeLoad) -> Option<String> {
        (!Self::accepts(node, task)).then(|| format!("runtime {} not available", task.runtime))
    }
}

/// A task on overlay networks needs a node that can attach it (its agent
/// says whether it can, and why not).
pub struct OverlayFilter;

impl OverlayFilter {
    pub(crate) fn accepts(node: &NodeView, task: &TaskRequest) -> bool {
        !task.needs_overlay || node.overlay_unavailable.is_none()
    }
}

impl Filter for OverlayFilter {
    fn reject(&self, node: &NodeView, task: &TaskRequest, _load: &NodeLoad) -> Option<String> {
        if Self::accepts(node, task) {
            return None;
        }
        node.overlay_unavailable.clone()
    }
}

/// A task granted secrets or configs needs a node that keeps them off disk
/// (a tmpfs its agent can mount); its agent says whether it can.
pub struct SecretsFilter;

impl SecretsFilter {
    pub(crate) fn accepts(node: &NodeView, task: &TaskRequest) -> bool {
        !task.needs_secrets || node.secrets_unavailable.is_none()
    }
}

impl Filter for SecretsFilter {
    fn reject(&self, node: &NodeView, task: &TaskRequest, _load: &NodeLoad) -> Option<String> {
        if Self::accepts(node, task) {
            return None;
        }
        node.secrets_unavailable.clone()
    }
}

/// A process task with mounts needs a node that can make it a private
/// mount namespace (its agent says whether it can, and why not).
pub struct MountFilter;

impl MountFilter {
    pub(crate) fn accepts(node: &NodeView, task: &TaskRequest) -> bool {
        !task.needs_mounts || node.mounts_unavailable.is_none()
    }
}

impl Filter for MountFilter {
    fn reject(&self, node: &NodeView, task: &TaskRequest, _load: &NodeLoad) -> Option<String> {
        if Self::accepts(node, task) {
            return None;
        }
        node.mounts_unavailable.clone()
    }
}

/// The node must have the task's reservations left. Before constraints, as
/// in Swarm's pipeline, so a full node reports itself full.
pub struct ResourceFilter;

impl ResourceFilter {
    /// CPU first, then memory, as Swarm checks them.
    fn shortfall(available: &Resources, wanted: &Resources) -> Option<&'static str> {
        if available.nano_cpus < wanted.nano_cpus {
            Some("insufficient cpu")
        } else if available.memory_bytes < wanted.memory_bytes {
            Some("insufficient memory")
        } else {
            None
        }
    }

    pub(crate) fn fits(available: &Resources, wanted: &Resources) -> bool {
        Self::shortfall(available, wanted).is_none()
    }
}

impl Filter for ResourceFilter {
    fn reject(&self, _node: &NodeView, task: &TaskRequest, load: &NodeLoad) -> Option<String> {
        Self::shortfall(&load.available, &task.reservations).map(String::from)
    }
}

/// Every constraint of the task must hold; the first that does not is named.
pub struct ConstraintFilter;

impl ConstraintFilter {
    pub(crate) fn accepts(node: &NodeView, task: &TaskRequest) -> bool {
        task.placement.constraints.iter().all(|c| c.matches(node))
    }
}

impl Filter for ConstraintFilter {
    fn reject(&self, node: &NodeView, task: &TaskRequest, _load: &NodeLoad) -> Option<String> {
        task.placement
            .constraints
            .iter()
            .find(|c| !c.matches(node))
            .map(|c| format!("constraint {c} not met"))
    }
}

/// A node already running `max_replicas_per_node` tasks of the service
/// takes no more.
pub struct MaxReplicasFilter;

impl MaxReplicasFilter {
    pub(crate) fn fits(tasks_of_service: u64, max: u64) -> bool {
        max == 0 || tasks_of_service < max
    }
}

impl Filter for MaxReplicasFilter {
    fn reject(&self, _node: &NodeView, task: &TaskRequest, load: &NodeLoad) -> Option<String> {
        (!Self::fits(load.tasks_of_service, task.placement.max_replicas_per_node))
            .then(|| "max replicas per node limit exceeded".to_string())
    }
}

/// Two tasks binding the same host-mode port cannot share a node (the
/// second could not bind it).
pub struct HostPortFilter;

impl Filter for HostPortFilter {
    fn reject(&self, _node: &NodeView, _task: &TaskRequest, load: &NodeLoad) -> Option<String> {
        load.host_port_in_use
            .map(|p| format!("host-mode port {p} already in use"))
    }
}

/// The filters every placement goes through, in order (Swarm's order: ready,
/// resources, constraints, max replicas; availability is part of Swarm's
/// ready check and the runtime plays the part of its plugin/platform check).
pub fn default_pipeline() -> Vec<Box<dyn Filter + Send + Sync>> {
    vec![
        Box::new(ReadyFilter),
        Box::new(AvailabilityFilter),
        Box::new(RuntimeFilter),
        Box::new(OverlayFilter),
        Box::new(SecretsFilter),
        Box::new(MountFilter),
        Box::new(ResourceFilter),
        Box::new(ConstraintFilter),
        Box::new(MaxReplicasFilter),
        Box::new(HostPortFilter),
    ]
}

/// The checks that do not depend on what the batch has placed so far, as
/// one cheap predicate: the filters above minus resources and max replicas.
pub(crate) fn statically_eligible(node: &NodeView, task: &TaskRequest) -> bool {
    ReadyFilter::accepts(node)
        && AvailabilityFilter::accepts(node)
        && RuntimeFilter::accepts(node, task)
        && OverlayFilter::accepts(node, task)
        && SecretsFilter::accepts(node, task)
        && MountFilter::accepts(node, task)
        && ConstraintFilter::accepts(node, task)
}

/// The position in `pipeline` of the first filter rejecting `node`, and why.
pub fn first_rejection(
    pipeline: &[Box<dyn Filter + Send + Sync>],
    node: &NodeView,
    task: &TaskRequest,
    load: &NodeLoad,
) -> Option<(usize, String)> {
    pipeline
        .iter()
        .enumerate()
        .find_map(|(i, f)| f.reject(node, task, load).map(|reason| (i, reason)))
}

/// "no suitable node (reason on N nodes; …)". `rejections` counts nodes by
/// (position of the rejecting filter in the pipeline, reason): reasons come
/// in pipeline order, then alphabetically, so the text is deterministic.
pub fn explain(rejections: &BTreeMap<(usize, String), usize>) -> String {
    if rejections.is_empty() {
        return "no suitable node (no nodes available)".to_string();
    }
    let parts: Vec<String> = rejections
        .iter()
        .map(|((_, reason), n)| format!("{reason} on {n} node{}", if *n == 1 { "" } else { "s" }))
        .collect();
    format!("no suitable node ({})", parts.join("; "))
}
