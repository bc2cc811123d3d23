//! The managers' side of overlay networks: network specs, who holds which
//! address, and the leader's allocation decisions.
//!
//! **Allocation state is the store.** A task's addresses live in
//! `Task.networks`, a service's VIPs in `Service.endpoint`, a network's
//! subnet, gateway and VXLAN ID in the `Network` object. [`usage`] rebuilds
//! "what is taken" from those objects on every call, so a new leader knows
//! exactly what its predecessor handed out; nothing is remembered in memory.
//! The leader decides addresses ([`allocate`], the control API for network
//! subnets and a new service's VIPs) and the store, applying the command,
//! refuses any address that is taken by then — two decisions made from the
//! same snapshot cannot both commit the same address.
//!
//! An address is *held* while its owner lives: a task until it is observed
//! in a terminal state (or was never placed and is no longer wanted), a VIP
//! while its service exists and has the network in its spec, a gateway with
//! its network. Releasing is therefore implicit: once the owner stops
//! holding, the next [`usage`] does not count it.
//!
//! # Layout
//! - [`ingress`]: the routing mesh's part of a node's view (pure).
//! - [`ipam`]: pure address arithmetic (subnets, pools, free addresses, VNIs).
//! - [`ports`]: published ports, checked and allocated (ingress: cluster-wide unique).
//! - [`spec`]: checking a `network create` request against the cluster.
//! - [`view`]: the per-node network view the dispatcher sends.
//! - [`usage`]: who holds which address, and what every part here reads
//!   of the stored networks (their addressing, names, the ingress network).

pub mod ingress;
pub mod ipam;
pub mod ports;
pub mod spec;
pub mod usage;
pub mod view;

pub use usage::{
    addressing, endpoint_mode, holds_addresses, ingress_network, network_name, spec_networks,
    usage, Holder, Usage,
};

use shoal_proto::v1::{
    NetworkAttachment, NetworkAttachmentConfig, ResolutionMode, Service, Task, TaskState, VirtualIp,
};

use crate::store::{is_terminal, ClusterState, Command};

/// Whether every network of the task's spec has an address in `task.networks`.
pub fn fully_attached(task: &Task) -> bool {
    let wanted = task
        .spec
        .as_ref()
        .map(|s| s.networks.as_slice())
        .unwrap_or(&[]);
    wanted.iter().all(|w| {
        task.networks
            .iter()
            .any(|a| a.network_id == w.target && !a.addresses.is_empty())
    })
}

/// The VIPs a service's spec asks for, keeping the ones it has and
/// allocating the missing ones where there is room: the list, and the name
/// of a network that had none (that VIP is left out; a later pass retries).
/// `usage` is updated with what is allocated.
pub fn service_vips(
    state: &ClusterState,
    service: &Service,
    usage: &mut Usage,
) -> (Vec<VirtualIp>, Option<String>) {
    let current: Vec<VirtualIp> = service
        .endpoint
        .as_ref()
        .map(|e| e.virtual_ips.clone())
        .unwrap_or_default();
    let wanted: Vec<String> = if endpoint_mode(service) == ResolutionMode::Vip {
        spec_networks(service)
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    let mut full = None;
    for network_id in &wanted {
        if out.iter().any(|v: &VirtualIp| &v.network_id == network_id) {
            continue;
        }
        if let Some(kept) = current.iter().find(|v| &v.network_id == network_id) {
            out.push(kept.clone());
            continue;
        }
        // A network that no longer exists gets no VIP (the tasks wait too).
        let Some(network) = state.networks.get(network_id) else {
            continue;
        };
        let Some(a) = addressing(network) else {
            continue;
        };
        let Some(addr) = a.first_free(&usage.taken_set(network_id)) else {
            full.get_or_insert_with(|| network_name(network));
            continue;
        };
        usage.take(
            network_id,
            addr,
            Holder::Vip {
                service_id: service.id.clone(),
            },
        );
        out.push(VirtualIp {
            network_id: network_id.clone(),
            addr: a.subnet.with_prefix(addr),
        });
    }
    (out, full)
}

/// The leader's allocation pass (pure): VIPs for services whose networks or
/// endpoint mode changed, and addresses for live tasks that lack them. A
/// task that cannot get an address stays pending with the reason; the
/// scheduler places only fully attached tasks.
pub fn allocate(state: &ClusterState, now_ms: i64) -> Vec<Command> {
    if state.networks.is_empty()
        && state
            .services
            .values()
            .all(|s| s.endpoint.as_ref().is_none_or(|e| e.virtual_ips.is_empty()))
    {
        return Vec::new();
    }
    let mut usage = usage(state);
    let mut commands = Vec::new();
    for service in state.services.values() {
        // A VIP that cannot be allocated is left out; the service's tasks
        // still run, found by `tasks.NAME` until an address frees up.
        let (virtual_ips, _full) = service_vips(state, service, &mut usage);
        let current = service.endpoint.as_ref().map(|e| e.virtual_ips.as_slice());
        if current.unwrap_or(&[]) != virtual_ips.as_slice() {
            commands.push(Command::SetServiceVips {
                service_id: service.id.clone(),
                virtual_ips,
            });
        }
    }
    if let Some(command) = ingress::allocate_sandboxes(state, &mut usage) {
        commands.push(command);
    }
    let mut attachments = Vec::new();
    let mut reasons = Vec::new();
    for task in state.tasks.values() {
        let wanted = wanted_networks(state, task);
        let observed = task.status.as_ref().map(|s| s.state()).unwrap_or_default();
        if wanted.is_empty()
            || !task.networks.is_empty()
            || task.desired_state > TaskState::Running as i32
            || is_terminal(observed)
            // Delivered already (it was started without addresses: its
            // service gained an ingress port since). Addresses given now
            // would never be plumbed, so it is not attached: the rollout
            // replaces it with a task that starts on the mesh.
            || observed > TaskState::Assigned
        {
            continue;
        }
        match task_addresses(state, task, &wanted, &mut usage) {
            Ok(list) => attachments.push((task.id.clone(), list)),
            Err(reason) => {
                let status = task.status.clone().unwrap_or_default();
                if status.state() == TaskState::Pending && status.err != reason {
                    reasons.push((task.id.clone(), reason));
                }
            }
        }
    }
    if !attachments.is_empty() {
        commands.push(Command::AttachTasks {
            attachments,
            at_ms: now_ms,
        });
    }
    if !reasons.is_empty() {
        commands.push(Command::SetPendingReasons {
            reasons,
            at_ms: now_ms,
        });
    }
    commands
}

/// The networks a task gets addresses on: its spec's, then the ingress
/// network when its service publishes a port in ingress mode (the routing
/// mesh reaches it there; Docker attaches such tasks to `ingress` too).
pub fn wanted_networks(state: &ClusterState, task: &Task) -> Vec<NetworkAttachmentConfig> {
    let mut wanted = task
        .spec
        .as_ref()
        .map(|s| s.networks.clone())
        .unwrap_or_default();
    if let Some(network) = ingress::network_for(state, task) {
        if !wanted.iter().any(|w| w.target == network.id) {
            wanted.push(NetworkAttachmentConfig {
                target: network.id.clone(),
                ..Default::default()
            });
        }
    }
    wanted
}

/// Whether a task may be placed and delivered: it has an address on every
/// network of its spec and, for a service published in ingress mode, on
/// the ingress network (so that it starts with its mesh interface).
pub fn ready_to_place(state: &ClusterState, task: &Task) -> bool {
    fully_attached(task)
        && ingress::network_for(state, task)
            .is_none_or(|n| task.networks.iter().any(|a| a.network_id == n.id))
}

/// One address per network of the task's spec, or why not. On failure
/// nothing is taken from `usage`.
fn task_addresses(
    state: &ClusterState,
    task: &Task,
    wanted: &[NetworkAttachmentConfig],
    usage: &mut Usage,
) -> Result<Vec<NetworkAttachment>, String> {
    let mut trial = usage.clone_for(wanted.iter().map(|w| w.target.as_str()));
    let mut out = Vec::new();
    for w in wanted {
        let network = state.networks.get(&w.target).ok_or_else(|| {
            format!(
                "network {} not found: it was removed; update the service's networks",
                w.target
            )
        })?;
        let a = addressing(network)
            .ok_or_else(|| format!("network {} has no valid addressing", network_name(network)))?;
        let addr = a.first_free(&trial.taken_set(&w.target)).ok_or_else(|| {
            format!(
                "no free address on network {} ({}): scale down or remove services on it, or use a network with a larger subnet",
                network_name(network),
                a.subnet
            )
        })?;
        trial.take(
            &w.target,
            addr,
            Holder::Task {
                task_id: task.id.clone(),
            },
        );
        out.push(NetworkAttachment {
            network_id: w.target.clone(),
            addresses: vec![a.subnet.with_prefix(addr)],
            aliases: w.aliases.clone(),
        });
    }
    for (network_id, taken) in trial.taken {
        usage.taken.insert(network_id, taken);
    }
    Ok(out)
}

impl Usage {
    /// A copy of the entries of `networks` only: a trial allocation that is
    /// merged back on success.
    fn clone_for<'a>(&self, networks: impl Iterator<Item = &'a str>) -> Usage {
        let mut out = Usage::default();
        for id in networks {
            if let Some(m) = self.taken.get(id) {
                out.taken.insert(id.to_string(), m.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
