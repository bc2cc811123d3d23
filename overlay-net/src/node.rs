//! The executor: reads shoal's objects from the kernel, asks
//! [`crate::reconcile::plan`] what to change and does it.
//!
//! [`OverlayNode`] works on one network namespace — the node's own (the
//! host's), or in tests a namespace standing in for a host. Everything it
//! reads back is identified by its derived name, so a restarted daemon
//! adopts the devices, entries and task interfaces it made before and a
//! second [`OverlayNode::reconcile`] with the same input changes nothing.

use std::net::IpAddr;

use rtnetlink::packet_route::link::{
    InfoBridgePort, InfoData, InfoPortData, InfoVxlan, LinkAttribute, LinkInfo,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourState,
};

use crate::firewall::{self, FirewallError};
use crate::kernel::{KernelError, Link, Netlink};
use crate::model::{LocalTask, NodeView, OverlayNetwork, TaskNetns};
use crate::names;
use crate::netns::{NetNs, NetNsError};
use crate::reconcile::{
    self, Action, Attachment, FdbEntry, NeighbourEntry, Observed, ObservedBridge, ObservedVeth,
    ObservedVxlan, Plan, VxlanConfig,
};
use crate::vip;

/// Why applying a view failed.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Netns(#[from] NetNsError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    #[error("this node's VTEP address {0} is not on any of its interfaces: the node's advertise address must be a local address")]
    VtepNotLocal(IpAddr),
    #[error("task {task}: {source}")]
    Attach {
        task: String,
        #[source]
        source: Box<OverlayError>,
    },
}

/// What a reconcile did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The actions carried out, in order.
    pub applied: Vec<Action>,
    /// What in the input could not be honoured (see [`Plan::problems`]).
    pub problems: Vec<String>,
}

/// The overlay plumbing of one node, in one network namespace.
pub struct OverlayNode {
    netlink: Netlink,
    /// The namespace worked in; `None` is the daemon's own.
    ns: Option<NetNs>,
}

impl OverlayNode {
    /// Works in the daemon's own network namespace (the node's).
    pub fn host() -> Result<OverlayNode, OverlayError> {
        Ok(OverlayNode {
            netlink: Netlink::current().map_err(|source| OverlayError::Io {
                what: "opening a netlink socket".to_string(),
                source,
            })?,
            ns: None,
        })
    }

    /// Works in `ns`, e.g. a namespace standing in for a host in tests.
    pub async fn in_netns(ns: &NetNs) -> Result<OverlayNode, OverlayError> {
        Ok(OverlayNode {
            netlink: Netlink::in_netns(ns)
                .await
                .map_err(|source| OverlayError::Io {
                    what: format!("opening a netlink socket in {}", ns.path().display()),
                    source,
                })?,
            ns: Some(ns.try_clone().map_err(|source| OverlayError::Io {
                what: format!("duplicating {}", ns.path().display()),
                source,
            })?),
        })
    }

    /// Runs blocking work (the `nft` binary) in this node's namespace, off
    /// the runtime's worker threads.
    pub(crate) async fn run_blocking<T, F>(&self, f: F) -> Result<T, OverlayError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let io = |source| OverlayError::Io {
            what: "running in the node's namespace".to_string(),
            source,
        };
        match &self.ns {
            Some(ns) => ns.run_async(f).await.map_err(io),
            None => tokio::task::spawn_blocking(f)
                .await
                .map_err(|e| io(std::io::Error::other(e.to_string()))),
        }
    }

    /// Sets the node's netfilter rules for these networks (see [`firewall`]).
    pub async fn apply_firewall(&self, networks: Vec<OverlayNetwork>) -> Result<(), OverlayError> {
        self.run_blocking(move || {
            let refs: Vec<&OverlayNetwork> = networks.iter().collect();
            firewall::apply(&refs)
        })
        .await??;
        Ok(())
    }

    /// Replaces the VIP load-balancing rules inside a task's namespace
    /// with those the view implies (see [`vip`]).
    pub async fn apply_vips(&self, view: &NodeView, task: &LocalTask) -> Result<(), OverlayError> {
        let ruleset = vip::ruleset(&vip::vip_rules(view, task));
        let ns = open_task_netns(&task.netns)?;
        let applied = ns
            .run_async(move || nftables::helper::apply_ruleset(&ruleset))
            .await
            .map_err(|source| OverlayError::Io {
                what: format!("entering {}", ns.path().display()),
                source,
            })?;
        applied.map_err(|e| OverlayError::Attach {
            task: task.task_id.clone(),
            source: Box::new(OverlayError::Firewall(firewall::nft_error(e))),
        })
    }

    /// Brings the kernel to what `view` and the local `tasks` describe:
    /// reads the state, plans, and applies the plan. Stops at the first
    /// failing action; calling it again resumes from what exists.
    pub async fn reconcile(
        &self,
        view: &NodeView,
        tasks: &[LocalTask],
    ) -> Result<Report, OverlayError> {
        let observed = self.observe().await?;
        let underlay_mtu = match view.vtep {
            Some(vtep) => self.underlay_mtu(vtep).await?,
            None => 0,
        };
        let Plan { actions, problems } = reconcile::plan(view, tasks, underlay_mtu, &observed);
        for problem in &problems {
            tracing::warn!(%problem, "overlay view not fully applied");
        }
        self.execute(&actions).await?;
        if view.vtep.is_some() {
            let local = reconcile::local_networks(view, tasks)
                .into_iter()
                .cloned()
                .collect();
            self.apply_firewall(local).await?;
            for task in tasks {
                self.apply_vips(view, task).await?;
            }
        }
        Ok(Report {
            applied: actions,
            problems,
        })
    }

    /// Removes every bridge, VXLAN device and task veth of shoal's in this
    /// namespace (a node leaving the cluster). Task namespaces are the
    /// agent's and stay.
    pub async fn cleanup_all(&self) -> Result<Vec<Action>, OverlayError> {
        let actions = reconcile::plan_cleanup(&self.observe().await?);
        self.execute(&actions).await?;
        self.apply_firewall(Vec::new()).await?;
        Ok(actions)
    }

    /// The MTU of the link holding the VTEP address.
    pub async fn underlay_mtu(&self, vtep: IpAddr) -> Result<u32, OverlayError> {
        let addresses = self.netlink.addresses().await?;
        let Some(&(index, _, _)) = addresses.iter().find(|(_, ip, _)| *ip == vtep) else {
            return Err(OverlayError::VtepNotLocal(vtep));
        };
        let links = self.netlink.links().await?;
        links
            .iter()
            .find(|l| l.index == index)
            .map(|l| l.mtu)
            .ok_or(OverlayError::VtepNotLocal(vtep))
    }

    /// shoal's objects as the kernel has them now.
    pub async fn observe(&self) -> Result<Observed, OverlayError> {
        let links = self.netlink.links().await?;
        let addresses = self.netlink.addresses().await?;
        let name_of = |index: u32| {
            links
                .iter()
                .find(|l| l.index == index)
                .map(|l| l.name.clone())
        };
        let mut observed = Observed::default();
        for link in &links {
            if let Some(vni) = names::parse_bridge_name(&link.name) {
                observed.bridges.push(ObservedBridge {
                    vni,
                    mtu: link.mtu,
                    up: link.up,
                    addrs: addresses
                        .iter()
                        .filter(|(index, _, _)| *index == link.index)
                        .filter_map(|(_, ip, prefix)| match ip {
                            IpAddr::V4(v4) => Some((*v4, *prefix)),
                            IpAddr::V6(_) => None,
                        })
                        .collect(),
                });
            } else if let Some(vni) = names::parse_vxlan_name(&link.name) {
                observed.vxlans.push(
                    self.observe_vxlan(link, vni, link.master.and_then(name_of))
                        .await?,
                );
            } else if names::is_host_veth_name(&link.name) {
                // A veth without shoal's alias was left half-made: the
                // empty IDs match no task, so the plan removes it.
                let (task_id, network_id) = link
                    .alias
                    .as_deref()
                    .and_then(names::parse_veth_alias)
                    .unwrap_or_default();
                observed.veths.push(ObservedVeth {
                    name: link.name.clone(),
                    task_id,
                    network_id,
                    master: link.master.and_then(name_of),
                    up: link.up,
                    mtu: link.mtu,
                });
            }
        }
        Ok(observed)
    }

    async fn observe_vxlan(
        &self,
        link: &Link,
        name_vni: u32,
        master: Option<String>,
    ) -> Result<ObservedVxlan, OverlayError> {
        let mut config = None;
        let mut port_learning = false;
        for attribute in &link.message.attributes {
            let LinkAttribute::LinkInfo(infos) = attribute else {
                continue;
            };
            for info in infos {
                match info {
                    LinkInfo::Data(InfoData::Vxlan(vxlan)) => config = vxlan_config(vxlan),
                    LinkInfo::PortData(InfoPortData::BridgePort(port)) => {
                        port_learning = port
                            .iter()
                            .any(|p| matches!(p, InfoBridgePort::Learning(true)));
                    }
                    _ => {}
                }
            }
        }
        let mut fdb = Vec::new();
        let mut port_fdb = Vec::new();
        for entry in self.netlink.fdb(link.index).await? {
            let Some(mac) = entry.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::LinkLayerAddress(mac) => {
                    <[u8; 6]>::try_from(mac.as_slice()).ok()
                }
                _ => None,
            }) else {
                continue;
            };
            let dst = entry.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::Destination(address) => ip_of(address),
                _ => None,
            });
            if entry.header.flags.contains(NeighbourFlags::Own) {
                // A self entry without a destination would be the default
                // (all-zero) entry, which shoal never makes: it floods.
                fdb.push(FdbEntry {
                    mac,
                    dst: dst.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
                });
            } else if entry.header.state != NeighbourState::Permanent {
                // The bridge's permanent entry for the port's own MAC is the
                // kernel's; everything else pointing at the port is ours or
                // learned, and only the view's entries may stay.
                port_fdb.push(mac);
            }
        }
        let neighbours = self
            .netlink
            .neighbours(link.index)
            .await?
            .into_iter()
            .filter_map(|n| {
                let ip = n.attributes.iter().find_map(|a| match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => Some(*v4),
                    _ => None,
                })?;
                let mac = n.attributes.iter().find_map(|a| match a {
                    NeighbourAttribute::LinkLayerAddress(mac) => {
                        <[u8; 6]>::try_from(mac.as_slice()).ok()
                    }
                    _ => None,
                })?;
                Some(NeighbourEntry { ip, mac })
            })
            .collect();
        Ok(ObservedVxlan {
            name_vni,
            config,
            mtu: link.mtu,
            up: link.up,
            master,
            port_learning,
            fdb,
            port_fdb,
            neighbours,
        })
    }

    /// Carries out actions in order, stopping at the first failure.
    pub async fn execute(&self, actions: &[Action]) -> Result<(), OverlayError> {
        for action in actions {
            tracing::debug!(?action, "overlay");
            self.execute_one(action).await?;
        }
        Ok(())
    }

    async fn execute_one(&self, action: &Action) -> Result<(), OverlayError> {
        let nl = &self.netlink;
        match action {
            Action::DeleteLink { name } => nl.delete_link(name).await?,
            Action::CreateBridge { name, mtu } => nl.create_bridge(name, *mtu).await?,
            Action::SetMtu { name, mtu } => nl.set_mtu(name, *mtu).await?,
            Action::SetUp { name } => nl.set_up(name).await?,
            Action::AddAddress {
                link,
                addr,
                prefix_len,
            } => nl.add_address(link, IpAddr::V4(*addr), *prefix_len).await?,
            Action::DeleteAddress {
                link,
                addr,
                prefix_len,
            } => {
                nl.delete_address(link, IpAddr::V4(*addr), *prefix_len)
                    .await?
            }
            Action::CreateVxlan {
                name,
                bridge,
                config,
                mtu,
            } => nl.create_vxlan(name, bridge, config, *mtu).await?,
            Action::AddFdb { vxlan, entry } => nl.add_fdb(vxlan, entry.mac, entry.dst).await?,
            Action::DeleteFdb { vxlan, entry } => {
                nl.delete_fdb(vxlan, entry.mac, entry.dst).await?
            }
            Action::AddPortFdb { vxlan, mac } => nl.add_port_fdb(vxlan, *mac).await?,
            Action::DeletePortFdb { vxlan, mac } => nl.delete_port_fdb(vxlan, *mac).await?,
            Action::AddNeighbour { vxlan, entry } => {
                nl.add_neighbour(vxlan, IpAddr::V4(entry.ip), entry.mac)
                    .await?
            }
            Action::DeleteNeighbour { vxlan, entry } => {
                nl.delete_neighbour(vxlan, IpAddr::V4(entry.ip)).await?
            }
            Action::Attach(attachment) => {
                self.attach(attachment)
                    .await
                    .map_err(|e| OverlayError::Attach {
                        task: attachment.task_id.clone(),
                        source: Box::new(e),
                    })?
            }
        }
        Ok(())
    }

    /// Connects a task to a network: the veth pair, the task side configured
    /// inside its namespace, and only then the host end enslaved and up —
    /// so a veth found up in its bridge is a finished one.
    async fn attach(&self, a: &Attachment) -> Result<(), OverlayError> {
        let ns = open_task_netns(&a.netns)?;
        // A leftover of an earlier attempt would make the name clash.
        self.netlink.delete_link(&a.host_veth).await?;
        self.netlink
            .create_veth_into(
                &a.host_veth,
                &names::veth_alias(&a.task_id, &a.network_id),
                &ns,
                &a.ifname,
                a.mac,
                a.mtu,
            )
            .await?;
        let inside = Netlink::in_netns(&ns)
            .await
            .map_err(|source| OverlayError::Io {
                what: format!("opening a netlink socket in {}", ns.path().display()),
                source,
            })?;
        inside.set_up("lo").await?;
        inside
            .add_address(&a.ifname, IpAddr::V4(a.addr), a.prefix_len)
            .await?;
        inside.set_up(&a.ifname).await?;
        if let Some(gateway) = a.default_gateway {
            inside.replace_default_route(gateway).await?;
        }
        self.netlink.enslave_up(&a.host_veth, &a.bridge).await?;
        Ok(())
    }
}

/// Opens a task's namespace.
pub fn open_task_netns(netns: &TaskNetns) -> Result<NetNs, NetNsError> {
    match netns {
        TaskNetns::Named(name) => NetNs::open(name),
        TaskNetns::Pid(pid) => NetNs::open_pid(*pid),
    }
}

/// An address in a neighbour message. In bridge-family (FDB) messages the
/// parser cannot know the address family and leaves the raw bytes.
fn ip_of(address: &NeighbourAddress) -> Option<IpAddr> {
    match address {
        NeighbourAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        NeighbourAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        NeighbourAddress::Other(bytes) => match bytes.len() {
            4 => <[u8; 4]>::try_from(bytes.as_slice()).ok().map(IpAddr::from),
            16 => <[u8; 16]>::try_from(bytes.as_slice())
                .ok()
                .map(IpAddr::from),
            _ => None,
        },
        _ => None,
    }
}

fn vxlan_config(infos: &[InfoVxlan]) -> Option<VxlanConfig> {
    let mut vni = None;
    let mut local = None;
    let mut port = None;
    let mut learning = None;
    let mut proxy = None;
    for info in infos {
        match info {
            InfoVxlan::Id(id) => vni = Some(*id),
            InfoVxlan::Local(v4) => local = Some(IpAddr::V4(*v4)),
            InfoVxlan::Local6(v6) => local = Some(IpAddr::V6(*v6)),
            InfoVxlan::Port(p) => port = Some(*p),
            InfoVxlan::Learning(l) => learning = Some(*l),
            InfoVxlan::Proxy(p) => proxy = Some(*p),
            _ => {}
        }
    }
    Some(VxlanConfig {
        vni: vni?,
        local: local?,
        port: port?,
        learning: learning?,
        proxy: proxy?,
    })
}
