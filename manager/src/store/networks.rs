//! Applying network commands, and the store's half of address allocation:
//! whatever the leader decided, an address is stored only if no live owner
//! holds it when the command applies (the same check on every manager), so
//! two decisions made from one snapshot never both commit an address.

use std::net::Ipv4Addr;

use shoal_proto::v1::{Endpoint, Network, NetworkAttachment, VirtualIp};

use super::state::{bump, Change, ClusterState, CommandResult, ObjectKind, StoreError, StoreEvent};
use crate::network::{self, ipam, Holder, Usage};

impl ClusterState {
    pub(super) fn create_network(
        &mut self,
        network: Network,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        if self.networks.contains_key(&network.id) {
            return Err(StoreError::AlreadyExists {
                kind: ObjectKind::Network,
                id: network.id,
            });
        }
        if let Some(conflict) = network::spec::conflicts(self, &network) {
            return Err(StoreError::Conflict(conflict));
        }
        events.push(StoreEvent::Network(Change::Created, network.clone()));
        self.networks.insert(network.id.clone(), network);
        Ok(())
    }

    pub(super) fn remove_network(
        &mut self,
        network_id: &str,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        let users = self.services_using(network_id);
        if !users.is_empty() {
            return Err(StoreError::Conflict(format!(
                "network {} is in use by service {}: remove the service or its --network first",
                self.networks
                    .get(network_id)
                    .map(network::network_name)
                    .unwrap_or_else(|| network_id.to_string()),
                users.join(", ")
            )));
        }
        let network = self
            .networks
            .remove(network_id)
            .ok_or(StoreError::NotFound {
                kind: ObjectKind::Network,
                id: network_id.to_string(),
            })?;
        events.push(StoreEvent::Network(Change::Removed, network));
        Ok(())
    }

    /// Names of the services whose spec attaches them to `network_id`.
    pub fn services_using(&self, network_id: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .services
            .values()
            .filter(|s| network::spec_networks(s).iter().any(|n| n == network_id))
            .map(|s| s.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default())
            .collect();
        names.sort();
        names
    }

    /// Whether `addr` may be stored for `holder` on `network_id`: inside the
    /// network's range, not its gateway, and not held by anyone else.
    fn address_free(
        &self,
        usage: &Usage,
        network_id: &str,
        addr: Option<Ipv4Addr>,
        holder: &Holder,
    ) -> bool {
        let (Some(addr), Some(a)) = (
            addr,
            self.networks.get(network_id).and_then(network::addressing),
        ) else {
            return false;
        };
        a.assignable(addr) && usage.holder(network_id, addr).is_none_or(|h| h == holder)
    }

    pub(super) fn check_vips_free(&self, service_id: &str, vips: &[VirtualIp]) -> CommandResult {
        if vips.is_empty() {
            return Ok(());
        }
        let usage = network::usage(self);
        let holder = Holder::Vip {
            service_id: service_id.to_string(),
        };
        for vip in vips {
            if !self.address_free(
                &usage,
                &vip.network_id,
                ipam::address_of(&vip.addr),
                &holder,
            ) {
                return Err(StoreError::Conflict(format!(
                    "virtual IP {} on network {} is taken or outside the network: retry",
                    vip.addr, vip.network_id
                )));
            }
        }
        Ok(())
    }

    pub(super) fn set_ingress_sandboxes(
        &mut self,
        assignments: Vec<(String, String)>,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        let Some(ingress_id) = network::ingress::ingress_network(self).map(|n| n.id.clone()) else {
            return Ok(());
        };
        let mut usage = network::usage(self);
        for (node_id, addr) in assignments {
            let holder = Holder::Sandbox {
                node_id: node_id.clone(),
            };
            let parsed = ipam::address_of(&addr);
            let wanted = self
                .nodes
                .get(&node_id)
                .is_some_and(|n| n.ingress_sandbox_addr.is_empty());
            if !wanted || !self.address_free(&usage, &ingress_id, parsed, &holder) {
                continue;
            }
            usage.take(&ingress_id, parsed.expect("checked"), holder);
            let node = self.nodes.get_mut(&node_id).expect("looked up above");
            node.ingress_sandbox_addr = addr;
            events.push(StoreEvent::Node(Change::Updated, node.clone()));
        }
        Ok(())
    }

    pub(super) fn attach_tasks(
        &mut self,
        attachments: Vec<(String, Vec<NetworkAttachment>)>,
        at_ms: i64,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        let mut usage = network::usage(self);
        for (task_id, list) in attachments {
            let Some(task) = self.tasks.get(&task_id) else {
                continue;
            };
            // Once attached, a task's addresses never change: a repeated
            // or stale decision is dropped.
            if !task.networks.is_empty() || !network::holds_addresses(task) {
                continue;
            }
            let holder = Holder::Task {
                task_id: task_id.clone(),
            };
            let addrs: Vec<(String, Option<Ipv4Addr>)> = list
                .iter()
                .flat_map(|a| {
                    a.addresses
                        .iter()
                        .map(|addr| (a.network_id.clone(), ipam::address_of(addr)))
                })
                .collect();
            let mut seen = std::collections::HashSet::new();
            let free = !addrs.is_empty()
                && addrs.iter().all(|(network_id, addr)| {
                    seen.insert((network_id.clone(), *addr))
                        && self.address_free(&usage, network_id, *addr, &holder)
                });
            if !free {
                continue;
            }
            for (network_id, addr) in addrs {
                usage.take(&network_id, addr.expect("checked"), holder.clone());
            }
            let task = self.tasks.get_mut(&task_id).expect("looked up above");
            task.networks = list;
            if let Some(status) = task.status.as_mut() {
                // The allocator's "no free address" reason no longer holds.
                if status.err.starts_with("no free address") {
                    status.err.clear();
                }
            }
            bump(&mut task.meta, at_ms);
            events.push(StoreEvent::Task(Change::Updated, task.clone()));
        }
        Ok(())
    }

    pub(super) fn set_service_vips(
        &mut self,
        service_id: &str,
        virtual_ips: Vec<VirtualIp>,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        if !self.services.contains_key(service_id) {
            return Ok(());
        }
        if self.check_vips_free(service_id, &virtual_ips).is_err() {
            return Ok(());
        }
        let service = self.services.get_mut(service_id).expect("checked above");
        let endpoint = service.endpoint.get_or_insert_with(Endpoint::default);
        if endpoint.virtual_ips == virtual_ips {
            return Ok(());
        }
        endpoint.virtual_ips = virtual_ips;
        // Not a spec change: the version stays, so an operator's update
        // carrying the version it read is not refused for it.
        events.push(StoreEvent::Service(Change::Updated, service.clone()));
        Ok(())
    }
}
