//! What to change on this node so its kernel state matches the view: a pure
//! function from (view, local tasks, observed state) to a list of actions.
//!
//! The executor ([`crate::node`]) reads the observed state from the kernel,
//! calls [`plan`] and carries the actions out; nothing here touches the
//! kernel, so every decision is unit-tested. The rules:
//!
//! - A network gets its devices (bridge `shbr-<vni>`, VXLAN `shvx-<vni>`)
//!   only while a local task is on it; the last task leaving, or the network
//!   leaving the view, removes them.
//! - Forwarding is static: on each VXLAN device exactly one FDB entry (MAC →
//!   peer VTEP), one bridge FDB entry (MAC → the VXLAN port) and one
//!   neighbour entry (IP → MAC) per remote endpoint of the view. Every other
//!   entry is removed, so a view change replaces the whole set.
//! - A device whose configuration differs from the desired one (a VNI, VTEP
//!   or MTU that changed, learning found on) is fixed or recreated; what
//!   already matches is left alone, so applying twice changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use crate::model::{mac_for, LocalTask, NodeView, OverlayNetwork, TaskNetns};
use crate::names;

/// The IANA VXLAN port.
pub const VXLAN_PORT: u16 = 4789;
/// VXLAN over IPv4 adds 50 bytes (outer Ethernet 14, IPv4 20, UDP 8, VXLAN 8).
pub const VXLAN_OVERHEAD: u32 = 50;

/// A VXLAN device's settings that shoal decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanConfig {
    pub vni: u32,
    pub local: IpAddr,
    pub port: u16,
    /// Always false: entries are pushed, never learned.
    pub learning: bool,
    /// Always true: the device answers ARP from its neighbour table, so an
    /// ARP request never leaves the node.
    pub proxy: bool,
}

/// A VXLAN FDB entry (`bridge fdb … dev shvx-N dst VTEP self`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FdbEntry {
    pub mac: [u8; 6],
    pub dst: IpAddr,
}

/// A neighbour entry on a VXLAN device (`ip neigh … dev shvx-N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NeighbourEntry {
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
}

/// A network's bridge as found in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedBridge {
    pub vni: u32,
    pub mtu: u32,
    pub up: bool,
    /// IPv4 addresses with prefix lengths.
    pub addrs: Vec<(Ipv4Addr, u8)>,
}

/// A network's VXLAN device as found in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedVxlan {
    /// The VNI in its name.
    pub name_vni: u32,
    /// Its actual settings (`None` when the link is not a VXLAN device, or
    /// lacks a local address).
    pub config: Option<VxlanConfig>,
    pub mtu: u32,
    pub up: bool,
    /// The name of the bridge it is enslaved to.
    pub master: Option<String>,
    /// Whether its bridge port learns source MACs.
    pub port_learning: bool,
    /// Its own (`self`) FDB entries.
    pub fdb: Vec<FdbEntry>,
    /// Bridge (`master`) FDB entries pointing at it, other than the bridge's
    /// permanent entry for the port's own MAC.
    pub port_fdb: Vec<[u8; 6]>,
    pub neighbours: Vec<NeighbourEntry>,
}

/// A task's host-side veth as found in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedVeth {
    pub name: String,
    pub task_id: String,
    pub network_id: String,
    pub master: Option<String>,
    pub up: bool,
    pub mtu: u32,
}

/// Everything of shoal's found in the node's (host) namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub bridges: Vec<ObservedBridge>,
    pub vxlans: Vec<ObservedVxlan>,
    pub veths: Vec<ObservedVeth>,
}

/// Connecting one task to one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub task_id: String,
    pub network_id: String,
    pub netns: TaskNetns,
    /// Host end, enslaved to `bridge`.
    pub host_veth: String,
    pub bridge: String,
    /// The task's end, inside its namespace.
    pub ifname: String,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    pub mac: [u8; 6],
    pub mtu: u32,
    /// Set on the task's first non-internal network only.
    pub default_gateway: Option<Ipv4Addr>,
}

/// One change to the kernel. [`plan`] orders them so that each can run when
/// its turn comes (removals first, then devices, entries, tasks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Deletes a link (a veth's peer goes with it).
    DeleteLink {
        name: String,
    },
    CreateBridge {
        name: String,
        mtu: u32,
    },
    SetMtu {
        name: String,
        mtu: u32,
    },
    SetUp {
        name: String,
    },
    AddAddress {
        link: String,
        addr: Ipv4Addr,
        prefix_len: u8,
    },
    DeleteAddress {
        link: String,
        addr: Ipv4Addr,
        prefix_len: u8,
    },
    /// Creates the VXLAN device, enslaves it to `bridge` with port learning
    /// off, and sets it up.
    CreateVxlan {
        name: String,
        bridge: String,
        config: VxlanConfig,
        mtu: u32,
    },
    AddFdb {
        vxlan: String,
        entry: FdbEntry,
    },
    DeleteFdb {
        vxlan: String,
        entry: FdbEntry,
    },
    AddPortFdb {
        vxlan: String,
        mac: [u8; 6],
    },
    DeletePortFdb {
        vxlan: String,
        mac: [u8; 6],
    },
    AddNeighbour {
        vxlan: String,
        entry: NeighbourEntry,
    },
    DeleteNeighbour {
        vxlan: String,
        entry: NeighbourEntry,
    },
    Attach(Attachment),
}

/// The actions, and what in the inputs could not be honoured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Human-readable: a task on a network without an address, a remote
    /// endpoint on a node the view has no VTEP for, …
    pub problems: Vec<String>,
}

/// The MTU of a network's devices and task interfaces.
pub fn network_mtu(network: &OverlayNetwork, underlay_mtu: u32) -> u32 {
    network
        .mtu
        .unwrap_or_else(|| underlay_mtu.saturating_sub(VXLAN_OVERHEAD))
}

/// The networks that have devices on this node: those of the view with a
/// local task that has an address on them (what [`plan`] builds).
pub fn local_networks<'a>(view: &'a NodeView, tasks: &[LocalTask]) -> Vec<&'a OverlayNetwork> {
    view.networks
        .iter()
        .filter(|n| {
            tasks.iter().any(|t| {
                t.networks.contains(&n.id)
                    && view
                        .endpoints
                        .iter()
                        .any(|e| e.task_id == t.task_id && e.network_id == n.id)
            })
        })
        .collect()
}

/// What one local network should look like.
struct DesiredNetwork<'a> {
    network: &'a OverlayNetwork,
    mtu: u32,
    fdb: BTreeSet<FdbEntry>,
    neighbours: BTreeSet<NeighbourEntry>,
}

/// The actions that bring `observed` to what `view` and `tasks` describe,
/// for a node whose underlay link has MTU `underlay_mtu`.
pub fn plan(view: &NodeView, tasks: &[LocalTask], underlay_mtu: u32, observed: &Observed) -> Plan {
    let mut problems = Vec::new();
    let Some(vtep) = view.vtep else {
        // Without its own VTEP the node cannot build anything; tearing down
        // what exists over a view that is merely incomplete would cut tasks
        // off, so nothing is changed.
        return Plan {
            actions: Vec::new(),
            problems: vec!["this node's VTEP address is not known yet".to_string()],
        };
    };
    let networks: BTreeMap<&str, &OverlayNetwork> =
        view.networks.iter().map(|n| (n.id.as_str(), n)).collect();

    // The attachments: a task's interface per network it is on.
    let mut attachments: Vec<Attachment> = Vec::new();
    let mut local_networks: BTreeSet<&str> = BTreeSet::new();
    for task in tasks {
        let mut gateway_taken = false;
        for (index, network_id) in task.networks.iter().enumerate() {
            let Some(network) = networks.get(network_id.as_str()) else {
                problems.push(format!(
                    "task {}: network {network_id} is not in this node's view",
                    task.task_id
                ));
                continue;
            };
            let Some(endpoint) = view
                .endpoints
                .iter()
                .find(|e| e.task_id == task.task_id && e.network_id == *network_id)
            else {
                problems.push(format!(
                    "task {}: no address on network {}",
                    task.task_id, network.name
                ));
                continue;
            };
            let default_gateway = (!network.internal && !gateway_taken).then_some(network.gateway);
            gateway_taken |= default_gateway.is_some();
            local_networks.insert(network.id.as_str());
            attachments.push(Attachment {
                task_id: task.task_id.clone(),
                network_id: network.id.clone(),
                netns: task.netns.clone(),
                host_veth: names::host_veth_name(&task.task_id, &network.id),
                bridge: names::bridge_name(network.vni),
                ifname: names::task_ifname(index),
                addr: endpoint.addr,
                prefix_len: network.subnet.prefix_len,
                mac: mac_for(endpoint.addr),
                mtu: network_mtu(network, underlay_mtu),
                default_gateway,
            });
        }
    }

    // The forwarding entries of each local network.
    let vteps: BTreeMap<&str, IpAddr> = view
        .peers
        .iter()
        .map(|p| (p.node_id.as_str(), p.vtep))
        .collect();
    let mut desired: BTreeMap<u32, DesiredNetwork> = BTreeMap::new();
    for network_id in &local_networks {
        let network = networks[network_id];
        let mut fdb = BTreeSet::new();
        let mut neighbours = BTreeSet::new();
        for endpoint in view
            .endpoints
            .iter()
            .filter(|e| e.network_id == network.id && e.node_id != view.node_id)
        {
            let Some(&dst) = vteps.get(endpoint.node_id.as_str()) else {
                problems.push(format!(
                    "task {} on network {}: node {} has no known VTEP",
                    endpoint.task_id, network.name, endpoint.node_id
                ));
                continue;
            };
            let mac = mac_for(endpoint.addr);
            fdb.insert(FdbEntry { mac, dst });
            neighbours.insert(NeighbourEntry {
                ip: endpoint.addr,
                mac,
            });
        }
        desired.insert(
            network.vni,
            DesiredNetwork {
                network,
                mtu: network_mtu(network, underlay_mtu),
                fdb,
                neighbours,
            },
        );
    }

    let mut removals = Vec::new();
    let mut devices = Vec::new();
    let mut entries = Vec::new();
    let mut attach = Vec::new();

    // Task veths: keep a complete, matching one; remove the rest.
    let mut kept_veths: BTreeSet<String> = BTreeSet::new();
    for veth in &observed.veths {
        let wanted = attachments.iter().find(|a| {
            a.task_id == veth.task_id && a.network_id == veth.network_id && a.host_veth == veth.name
        });
        // Attach enslaves and raises the host end last: a veth not up in its
        // bridge was left half-made (a crash mid-attach) and is redone.
        let complete = |a: &Attachment| {
            veth.master.as_deref() == Some(a.bridge.as_str()) && veth.up && veth.mtu == a.mtu
        };
        match wanted {
            Some(a) if complete(a) => {
                kept_veths.insert(a.host_veth.clone());
            }
            _ => removals.push(Action::DeleteLink {
                name: veth.name.clone(),
            }),
        }
    }

    // VXLAN devices before bridges: a device goes before its master.
    let mut vxlans_ok: BTreeSet<u32> = BTreeSet::new();
    for vxlan in &observed.vxlans {
        let name = names::vxlan_name(vxlan.name_vni);
        let Some(want) = desired.get(&vxlan.name_vni) else {
            removals.push(Action::DeleteLink { name });
            continue;
        };
        let config = wanted_vxlan_config(want.network.vni, vtep);
        let bridge = names::bridge_name(want.network.vni);
        let sound = vxlan.config == Some(config)
            && vxlan.master.as_deref() == Some(bridge.as_str())
            && !vxlan.port_learning;
        if !sound {
            removals.push(Action::DeleteLink { name });
            continue;
        }
        vxlans_ok.insert(vxlan.name_vni);
        if vxlan.mtu != want.mtu {
            devices.push(Action::SetMtu {
                name: name.clone(),
                mtu: want.mtu,
            });
        }
        if !vxlan.up {
            devices.push(Action::SetUp { name: name.clone() });
        }
        let have_fdb: BTreeSet<FdbEntry> = vxlan.fdb.iter().copied().collect();
        for entry in have_fdb.difference(&want.fdb) {
            entries.push(Action::DeleteFdb {
                vxlan: name.clone(),
                entry: *entry,
            });
        }
        for entry in want.fdb.difference(&have_fdb) {
            entries.push(Action::AddFdb {
                vxlan: name.clone(),
                entry: *entry,
            });
        }
        let want_port: BTreeSet<[u8; 6]> = want.fdb.iter().map(|e| e.mac).collect();
        let have_port: BTreeSet<[u8; 6]> = vxlan.port_fdb.iter().copied().collect();
        for mac in have_port.difference(&want_port) {
            entries.push(Action::DeletePortFdb {
                vxlan: name.clone(),
                mac: *mac,
            });
        }
        for mac in want_port.difference(&have_port) {
            entries.push(Action::AddPortFdb {
                vxlan: name.clone(),
                mac: *mac,
            });
        }
        let have_neigh: BTreeSet<NeighbourEntry> = vxlan.neighbours.iter().copied().collect();
        for entry in have_neigh.difference(&want.neighbours) {
            entries.push(Action::DeleteNeighbour {
                vxlan: name.clone(),
                entry: *entry,
            });
        }
        for entry in want.neighbours.difference(&have_neigh) {
            entries.push(Action::AddNeighbour {
                vxlan: name.clone(),
                entry: *entry,
            });
        }
    }

    let mut bridges_seen: BTreeSet<u32> = BTreeSet::new();
    for bridge in &observed.bridges {
        let name = names::bridge_name(bridge.vni);
        let Some(want) = desired.get(&bridge.vni) else {
            removals.push(Action::DeleteLink { name });
            continue;
        };
        bridges_seen.insert(bridge.vni);
        if bridge.mtu != want.mtu {
            devices.push(Action::SetMtu {
                name: name.clone(),
                mtu: want.mtu,
            });
        }
        if !bridge.up {
            devices.push(Action::SetUp { name: name.clone() });
        }
        let want_addrs = bridge_addrs(want.network);
        for &(addr, prefix_len) in bridge.addrs.iter().filter(|a| !want_addrs.contains(a)) {
            devices.push(Action::DeleteAddress {
                link: name.clone(),
                addr,
                prefix_len,
            });
        }
        for &(addr, prefix_len) in want_addrs.iter().filter(|a| !bridge.addrs.contains(a)) {
            devices.push(Action::AddAddress {
                link: name.clone(),
                addr,
                prefix_len,
            });
        }
    }

    for (vni, want) in &desired {
        let bridge = names::bridge_name(*vni);
        let vxlan = names::vxlan_name(*vni);
        if !bridges_seen.contains(vni) {
            devices.push(Action::CreateBridge {
                name: bridge.clone(),
                mtu: want.mtu,
            });
            for (addr, prefix_len) in bridge_addrs(want.network) {
                devices.push(Action::AddAddress {
                    link: bridge.clone(),
                    addr,
                    prefix_len,
                });
            }
        }
        if !vxlans_ok.contains(vni) {
            devices.push(Action::CreateVxlan {
                name: vxlan.clone(),
                bridge: bridge.clone(),
                config: wanted_vxlan_config(*vni, vtep),
                mtu: want.mtu,
            });
            // A new device starts with no entries at all.
            for entry in &want.fdb {
                entries.push(Action::AddFdb {
                    vxlan: vxlan.clone(),
                    entry: *entry,
                });
                entries.push(Action::AddPortFdb {
                    vxlan: vxlan.clone(),
                    mac: entry.mac,
                });
            }
            for entry in &want.neighbours {
                entries.push(Action::AddNeighbour {
                    vxlan: vxlan.clone(),
                    entry: *entry,
                });
            }
        }
    }

    for a in attachments {
        if !kept_veths.contains(&a.host_veth) {
            attach.push(Action::Attach(a));
        }
    }

    let mut actions = removals;
    actions.extend(devices);
    actions.extend(entries);
    actions.extend(attach);
    Plan { actions, problems }
}

fn wanted_vxlan_config(vni: u32, local: IpAddr) -> VxlanConfig {
    VxlanConfig {
        vni,
        local,
        port: VXLAN_PORT,
        learning: false,
        proxy: true,
    }
}

/// The bridge holds the gateway, except on an internal network: with no
/// address there is nothing on the node a task could route through, so an
/// internal network has no way out whatever the firewall says.
fn bridge_addrs(network: &OverlayNetwork) -> Vec<(Ipv4Addr, u8)> {
    if network.internal {
        Vec::new()
    } else {
        vec![(network.gateway, network.subnet.prefix_len)]
    }
}

/// The removals that take everything in `observed` away (a node leaving the
/// cluster): task veths, then VXLAN devices, then bridges.
pub fn plan_cleanup(observed: &Observed) -> Vec<Action> {
    let veths = observed.veths.iter().map(|v| v.name.clone());
    let vxlans = observed
        .vxlans
        .iter()
        .map(|v| names::vxlan_name(v.name_vni));
    let bridges = observed.bridges.iter().map(|b| names::bridge_name(b.vni));
    veths
        .chain(vxlans)
        .chain(bridges)
        .map(|name| Action::DeleteLink { name })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, Ipv4Subnet, Peer};

    const UNDERLAY_MTU: u32 = 1500;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn network(id: &str, vni: u32, third: u8, internal: bool) -> OverlayNetwork {
        OverlayNetwork {
            id: id.to_string(),
            name: format!("{id}-name"),
            vni,
            subnet: Ipv4Subnet {
                addr: Ipv4Addr::new(10, 0, third, 0),
                prefix_len: 24,
            },
            gateway: Ipv4Addr::new(10, 0, third, 1),
            mtu: None,
            internal,
        }
    }

    fn endpoint(task: &str, node: &str, net: &str, addr: &str) -> Endpoint {
        Endpoint {
            task_id: task.to_string(),
            node_id: node.to_string(),
            network_id: net.to_string(),
            addr: ip(addr),
        }
    }

    fn peer(node: &str, vtep: &str) -> Peer {
        Peer {
            node_id: node.to_string(),
            vtep: IpAddr::V4(ip(vtep)),
            networks: vec!["n1".to_string()],
        }
    }

    /// Node `a` (VTEP 192.168.1.1) runs task `t1` on `n1`; node `b`
    /// (192.168.1.2) runs `t2` and `t3` there.
    fn view() -> NodeView {
        NodeView {
            node_id: "a".to_string(),
            vtep: Some(IpAddr::V4(ip("192.168.1.1"))),
            networks: vec![network("n1", 4097, 1, false)],
            peers: vec![peer("b", "192.168.1.2")],
            endpoints: vec![
                endpoint("t1", "a", "n1", "10.0.1.2"),
                endpoint("t2", "b", "n1", "10.0.1.3"),
                endpoint("t3", "b", "n1", "10.0.1.4"),
            ],
            services: vec![],
        }
    }

    fn task(id: &str, networks: &[&str]) -> LocalTask {
        LocalTask {
            task_id: id.to_string(),
            netns: TaskNetns::Named(format!("ns-{id}")),
            networks: networks.iter().map(|n| n.to_string()).collect(),
        }
    }

    /// The state the kernel is in after a plan ran: its own result, as the
    /// executor would read it back.
    fn converged(view: &NodeView, tasks: &[LocalTask]) -> Observed {
        let mut observed = Observed::default();
        let plan = plan(view, tasks, UNDERLAY_MTU, &Observed::default());
        for action in plan.actions {
            match action {
                Action::CreateBridge { name, mtu } => observed.bridges.push(ObservedBridge {
                    vni: names::parse_bridge_name(&name).unwrap(),
                    mtu,
                    up: true,
                    addrs: vec![],
                }),
                Action::AddAddress {
                    link,
                    addr,
                    prefix_len,
                } => observed
                    .bridges
                    .iter_mut()
                    .find(|b| names::bridge_name(b.vni) == link)
                    .unwrap()
                    .addrs
                    .push((addr, prefix_len)),
                Action::CreateVxlan {
                    name,
                    bridge,
                    config,
                    mtu,
                } => observed.vxlans.push(ObservedVxlan {
                    name_vni: names::parse_vxlan_name(&name).unwrap(),
                    config: Some(config),
                    mtu,
                    up: true,
                    master: Some(bridge),
                    port_learning: false,
                    fdb: vec![],
                    port_fdb: vec![],
                    neighbours: vec![],
                }),
                Action::AddFdb { vxlan, entry } => vxlan_mut(&mut observed, &vxlan).fdb.push(entry),
                Action::AddPortFdb { vxlan, mac } => {
                    vxlan_mut(&mut observed, &vxlan).port_fdb.push(mac)
                }
                Action::AddNeighbour { vxlan, entry } => {
                    vxlan_mut(&mut observed, &vxlan).neighbours.push(entry)
                }
                Action::Attach(a) => observed.veths.push(ObservedVeth {
                    name: a.host_veth,
                    task_id: a.task_id,
                    network_id: a.network_id,
                    master: Some(a.bridge),
                    up: true,
                    mtu: a.mtu,
                }),
                other => panic!("a plan from nothing should only create: {other:?}"),
            }
        }
        observed
    }

    fn vxlan_mut<'a>(observed: &'a mut Observed, name: &str) -> &'a mut ObservedVxlan {
        observed
            .vxlans
            .iter_mut()
            .find(|v| names::vxlan_name(v.name_vni) == name)
            .unwrap()
    }

    fn mac(addr: &str) -> [u8; 6] {
        mac_for(ip(addr))
    }

    #[test]
    fn a_first_task_creates_the_network_devices_entries_and_its_interface() {
        let plan = plan(
            &view(),
            &[task("t1", &["n1"])],
            UNDERLAY_MTU,
            &Observed::default(),
        );
        assert!(plan.problems.is_empty(), "{:?}", plan.problems);
        let b = "192.168.1.2".parse().unwrap();
        assert_eq!(
            plan.actions,
            vec![
                Action::CreateBridge {
                    name: "shbr-4097".into(),
                    mtu: 1450
                },
                Action::AddAddress {
                    link: "shbr-4097".into(),
                    addr: ip("10.0.1.1"),
                    prefix_len: 24
                },
                Action::CreateVxlan {
                    name: "shvx-4097".into(),
                    bridge: "shbr-4097".into(),
                    config: VxlanConfig {
                        vni: 4097,
                        local: "192.168.1.1".parse().unwrap(),
                        port: 4789,
                        learning: false,
                        proxy: true
                    },
                    mtu: 1450
                },
                Action::AddFdb {
                    vxlan: "shvx-4097".into(),
                    entry: FdbEntry {
                        mac: mac("10.0.1.3"),
                        dst: b
                    }
                },
                Action::AddPortFdb {
                    vxlan: "shvx-4097".into(),
                    mac: mac("10.0.1.3")
                },
                Action::AddFdb {
                    vxlan: "shvx-4097".into(),
                    entry: FdbEntry {
                        mac: mac("10.0.1.4"),
                        dst: b
                    }
                },
                Action::AddPortFdb {
                    vxlan: "shvx-4097".into(),
                    mac: mac("10.0.1.4")
                },
                Action::AddNeighbour {
                    vxlan: "shvx-4097".into(),
                    entry: NeighbourEntry {
                        ip: ip("10.0.1.3"),
                        mac: mac("10.0.1.3")
                    }
                },
                Action::AddNeighbour {
                    vxlan: "shvx-4097".into(),
                    entry: NeighbourEntry {
                        ip: ip("10.0.1.4"),
                        mac: mac("10.0.1.4")
                    }
                },
                Action::Attach(Attachment {
                    task_id: "t1".into(),
                    network_id: "n1".into(),
                    netns: TaskNetns::Named("ns-t1".into()),
                    host_veth: names::host_veth_name("t1", "n1"),
                    bridge: "shbr-4097".into(),
                    ifname: "eth0".into(),
                    addr: ip("10.0.1.2"),
                    prefix_len: 24,
                    mac: mac("10.0.1.2"),
                    mtu: 1450,
                    default_gateway: Some(ip("10.0.1.1")),
                }),
            ]
        );
    }

    #[test]
    fn applying_to_its_own_result_changes_nothing() {
        let tasks = [task("t1", &["n1"])];
        let observed = converged(&view(), &tasks);
        let again = plan(&view(), &tasks, UNDERLAY_MTU, &observed);
        assert_eq!(again.actions, vec![]);
    }

    #[test]
    fn a_remote_task_gone_removes_exactly_its_entries() {
        let tasks = [task("t1", &["n1"])];
        let observed = converged(&view(), &tasks);
        let mut changed = view();
        changed.endpoints.retain(|e| e.task_id != "t3");
        let plan = plan(&changed, &tasks, UNDERLAY_MTU, &observed);
        let gone = mac("10.0.1.4");
        assert_eq!(
            plan.actions,
            vec![
                Action::DeleteFdb {
                    vxlan: "shvx-4097".into(),
                    entry: FdbEntry {
                        mac: gone,
                        dst: "192.168.1.2".parse().unwrap()
                    }
                },
                Action::DeletePortFdb {
                    vxlan: "shvx-4097".into(),
                    mac: gone
                },
                Action::DeleteNeighbour {
                    vxlan: "shvx-4097".into(),
                    entry: NeighbourEntry {
                        ip: ip("10.0.1.4"),
                        mac: gone
                    }
                },
            ]
        );
    }

    #[test]
    fn a_peer_moving_its_vtep_replaces_the_fdb_entries() {
        let tasks = [task("t1", &["n1"])];
        let observed = converged(&view(), &tasks);
        let mut moved = view();
        moved.peers[0].vtep = "192.168.1.9".parse().unwrap();
        let plan = plan(&moved, &tasks, UNDERLAY_MTU, &observed);
        let deleted: Vec<_> = plan
            .actions
            .iter()
            .filter(|a| matches!(a, Action::DeleteFdb { .. }))
            .collect();
        let added: Vec<_> = plan
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::AddFdb { entry, .. } => Some(entry.dst),
                _ => None,
            })
            .collect();
        assert_eq!(deleted.len(), 2);
        assert_eq!(added, vec!["192.168.1.9".parse::<IpAddr>().unwrap(); 2]);
        // The neighbour entries (IP → MAC) did not change.
        assert!(!plan.actions.iter().any(|a| matches!(
            a,
            Action::AddNeighbour { .. } | Action::DeleteNeighbour { .. }
        )));
    }

    #[test]
    fn a_peer_gone_removes_its_entries_and_says_so() {
        let tasks = [task("t1", &["n1"])];
        let observed = converged(&view(), &tasks);
        let mut gone = view();
        gone.peers.clear();
        let plan = plan(&gone, &tasks, UNDERLAY_MTU, &observed);
        assert_eq!(
            plan.actions
                .iter()
                .filter(|a| matches!(
                    a,
                    Action::DeleteFdb { .. }
                        | Action::DeletePortFdb { .. }
                        | Action::DeleteNeighbour { .. }
                ))
                .count(),
            6
        );
        assert_eq!(plan.problems.len(), 2, "{:?}", plan.problems);
        assert!(plan.problems[0].contains("node b has no known VTEP"));
    }

    #[test]
    fn the_last_local_task_leaving_removes_the_devices() {
        let observed = converged(&view(), &[task("t1", &["n1"])]);
        let plan = plan(&view(), &[], UNDERLAY_MTU, &observed);
        assert_eq!(
            plan.actions,
            vec![
                Action::DeleteLink {
                    name: names::host_veth_name("t1", "n1")
                },
                Action::DeleteLink {
                    name: "shvx-4097".into()
                },
                Action::DeleteLink {
                    name: "shbr-4097".into()
                },
            ]
        );
    }

    #[test]
    fn the_network_leaving_the_view_removes_everything_of_it() {
        let tasks = [task("t1", &["n1"])];
        let observed = converged(&view(), &tasks);
        let mut without = view();
        without.networks.clear();
        let plan = plan(&without, &tasks, UNDERLAY_MTU, &observed);
        assert_eq!(plan.actions, plan_cleanup(&observed));
        assert_eq!(plan.problems.len(), 1);
    }

    #[test]
    fn learned_or_foreign_entries_are_removed() {
        let tasks = [task("t1", &["n1"])];
        let mut observed = converged(&view(), &tasks);
        let stray = FdbEntry {
            mac: [0x02, 0x42, 10, 0, 1, 99],
            dst: "192.168.1.7".parse().unwrap(),
        };
        observed.vxlans[0].fdb.push(stray);
        observed.vxlans[0].port_fdb.push(stray.mac);
        let plan = plan(&view(), &tasks, UNDERLAY_MTU, &observed);
        assert_eq!(
            plan.actions,
            vec![
                Action::DeleteFdb {
                    vxlan: "shvx-4097".into(),
                    entry: stray
                },
                Action::DeletePortFdb {
                    vxlan: "shvx-4097".into(),
                    mac: stray.mac
                },
            ]
        );
    }

    #[test]
    fn a_vxlan_device_that_learns_or_has_another_vtep_is_recreated_with_its_entries() {
        let tasks = [task("t1", &["n1"])];
        for spoil in [
            (|v: &mut ObservedVxlan| v.config.as_mut().unwrap().learning = true)
                as fn(&mut ObservedVxlan),
            |v| v.config.as_mut().unwrap().local = "192.168.1.50".parse().unwrap(),
            |v| v.port_learning = true,
            |v| v.master = None,
        ] {
            let mut observed = converged(&view(), &tasks);
            spoil(&mut observed.vxlans[0]);
            let plan = plan(&view(), &tasks, UNDERLAY_MTU, &observed);
            assert_eq!(
                plan.actions[0],
                Action::DeleteLink {
                    name: "shvx-4097".into()
                }
            );
            assert!(matches!(plan.actions[1], Action::CreateVxlan { .. }));
            assert_eq!(plan.actions.len(), 2 + 3 * 2, "{:?}", plan.actions);
        }
    }

    #[test]
    fn an_mtu_setting_changes_the_devices_and_replumbs_the_task() {
        let tasks = [task("t1", &["n1"])];
        let observed = converged(&view(), &tasks);
        let mut jumbo = view();
        jumbo.networks[0].mtu = Some(8950);
        let plan = plan(&jumbo, &tasks, UNDERLAY_MTU, &observed);
        let veth = names::host_veth_name("t1", "n1");
        assert_eq!(plan.actions[0], Action::DeleteLink { name: veth });
        assert!(plan.actions.contains(&Action::SetMtu {
            name: "shvx-4097".into(),
            mtu: 8950
        }));
        assert!(plan.actions.contains(&Action::SetMtu {
            name: "shbr-4097".into(),
            mtu: 8950
        }));
        assert!(matches!(plan.actions.last(), Some(Action::Attach(a)) if a.mtu == 8950));
    }

    #[test]
    fn a_half_made_attachment_is_redone() {
        let tasks = [task("t1", &["n1"])];
        let mut observed = converged(&view(), &tasks);
        observed.veths[0].master = None;
        observed.veths[0].up = false;
        let plan = plan(&view(), &tasks, UNDERLAY_MTU, &observed);
        assert_eq!(plan.actions.len(), 2);
        assert!(
            matches!(&plan.actions[0], Action::DeleteLink { name } if *name == observed.veths[0].name)
        );
        assert!(matches!(&plan.actions[1], Action::Attach(_)));
    }

    #[test]
    fn internal_networks_get_no_gateway_and_no_default_route() {
        let mut view = view();
        view.networks.push(network("back", 4098, 2, true));
        view.endpoints.push(endpoint("t1", "a", "back", "10.0.2.5"));
        // The internal network is first: the default route still goes to
        // the first non-internal one, and the interfaces keep spec order.
        let plan = plan(
            &view,
            &[task("t1", &["back", "n1"])],
            UNDERLAY_MTU,
            &Observed::default(),
        );
        let attachments: Vec<&Attachment> = plan
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Attach(a) => Some(a),
                _ => None,
            })
            .collect();
        assert_eq!(attachments.len(), 2);
        assert_eq!(
            (
                attachments[0].ifname.as_str(),
                attachments[0].default_gateway
            ),
            ("eth0", None)
        );
        assert_eq!(
            (
                attachments[1].ifname.as_str(),
                attachments[1].default_gateway
            ),
            ("eth1", Some(ip("10.0.1.1")))
        );
        assert!(!plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::AddAddress { link, .. } if link == "shbr-4098")));
        assert!(plan.actions.contains(&Action::CreateBridge {
            name: "shbr-4098".into(),
            mtu: 1450
        }));
    }

    #[test]
    fn a_task_without_an_address_is_reported_not_plumbed() {
        let plan = plan(
            &view(),
            &[task("t9", &["n1"]), task("t1", &["nope"])],
            UNDERLAY_MTU,
            &Observed::default(),
        );
        assert_eq!(plan.actions, vec![]);
        assert_eq!(plan.problems.len(), 2, "{:?}", plan.problems);
        assert!(plan.problems[0].contains("task t9: no address on network n1-name"));
        assert!(plan.problems[1].contains("network nope is not in this node's view"));
    }

    #[test]
    fn without_its_own_vtep_the_node_changes_nothing() {
        let tasks = [task("t1", &["n1"])];
        let observed = converged(&view(), &tasks);
        let mut unknown = view();
        unknown.vtep = None;
        let plan = plan(&unknown, &tasks, UNDERLAY_MTU, &observed);
        assert_eq!(plan.actions, vec![]);
        assert_eq!(plan.problems.len(), 1);
    }
}
