//! The netlink calls behind the plan's actions: links, addresses, routes,
//! neighbour and FDB entries, each one request over `rtnetlink`, plus the
//! dumps [`crate::node`] reads the observed state from.
//!
//! A [`Netlink`] talks to the namespace its socket was opened in. The socket
//! is opened on a thread inside that namespace ([`NetNs::run`]) and then
//! driven by the caller's tokio runtime, so async code can work on a task's
//! or a test host's namespace while its own threads stay where they are.

use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{
    InfoData, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::sys::{protocols::NETLINK_ROUTE, AsyncSocket, TokioSocket};
use rtnetlink::{
    Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth, LinkVxlan,
    RouteMessageBuilder,
};

use crate::netns::NetNs;
use crate::reconcile::VxlanConfig;

/// A failed kernel request, saying what was being done.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct KernelError {
    pub what: String,
    #[source]
    pub source: rtnetlink::Error,
}

impl KernelError {
    /// The errno the kernel answered with, if it answered with one.
    pub fn errno(&self) -> Option<i32> {
        match &self.source {
            rtnetlink::Error::NetlinkError(e) => Some(-e.raw_code()),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, KernelError>;

fn ctx<T>(
    result: std::result::Result<T, rtnetlink::Error>,
    what: impl FnOnce() -> String,
) -> Result<T> {
    result.map_err(|source| KernelError {
        what: what(),
        source,
    })
}

/// Treats "it is not there" as done: removals are repeated safely.
fn absent_ok(result: Result<()>) -> Result<()> {
    match result {
        Err(e) if matches!(e.errno(), Some(ENOENT | ENODEV)) => Ok(()),
        other => other,
    }
}

const ENOENT: i32 = 2;
const ENODEV: i32 = 19;

/// A link as dumped, with the fields shoal reads.
#[derive(Debug, Clone)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub up: bool,
    pub mtu: u32,
    pub master: Option<u32>,
    pub alias: Option<String>,
    pub kind: Option<String>,
    pub message: LinkMessage,
}

/// A netlink route socket in one network namespace.
pub struct Netlink {
    handle: Handle,
    connection: tokio::task::JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Netlink {
    /// A socket in the calling thread's namespace. Needs a tokio runtime.
    pub fn current() -> io::Result<Netlink> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        Ok(Netlink {
            handle,
            connection: tokio::spawn(connection),
        })
    }

    /// A socket in `ns`, driven by the current tokio runtime.
    pub async fn in_netns(ns: &NetNs) -> io::Result<Netlink> {
        let runtime = tokio::runtime::Handle::current();
        // The socket is created inside the namespace (and registered with
        // this runtime's reactor from there); only that thread moves.
        let socket = ns
            .run_async(move || {
                let _entered = runtime.enter();
                TokioSocket::new(NETLINK_ROUTE)
            })
            .await??;
        let (connection, handle, _) = rtnetlink::from_socket(socket);
        Ok(Netlink {
            handle,
            connection: tokio::spawn(connection),
        })
    }

    /// The underlying rtnetlink handle, for what this module does not wrap.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Every link of the namespace.
    pub async fn links(&self) -> Result<Vec<Link>> {
        let messages: Vec<LinkMessage> = ctx(
            self.handle.link().get().execute().try_collect().await,
            || "listing links".to_string(),
        )?;
        Ok(messages.into_iter().map(link_of).collect())
    }

    /// The link called `name`, if there is one.
    pub async fn link(&self, name: &str) -> Result<Option<Link>> {
        let found: std::result::Result<Vec<LinkMessage>, _> = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute()
            .try_collect()
            .await;
        match found {
            Ok(messages) => Ok(messages.into_iter().next().map(link_of)),
            Err(source) => {
                let e = KernelError {
                    what: format!("looking up link {name}"),
                    source,
                };
                if matches!(e.errno(), Some(ENODEV)) {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// The index of the link called `name`, which must exist.
    pub async fn index(&self, name: &str) -> Result<u32> {
        match self.link(name).await? {
            Some(link) => Ok(link.index),
            None => Err(KernelError {
                what: format!("link {name} does not exist"),
                source: rtnetlink::Error::RequestFailed,
            }),
        }
    }

    /// Deletes the link called `name`; a missing one is not an error.
    pub async fn delete_link(&self, name: &str) -> Result<()> {
        let Some(link) = self.link(name).await? else {
            return Ok(());
        };
        absent_ok(ctx(
            self.handle.link().del(link.index).execute().await,
            || format!("deleting link {name}"),
        ))
    }

    /// Sets a link up.
    pub async fn set_up(&self, name: &str) -> Result<()> {
        let index = self.index(name).await?;
        ctx(
            self.handle
                .link()
                .set(LinkUnspec::new_with_index(index).up().build())
                .execute()
                .await,
            || format!("setting {name} up"),
        )
    }

    /// Sets a link's MTU.
    pub async fn set_mtu(&self, name: &str, mtu: u32) -> Result<()> {
        let index = self.index(name).await?;
        ctx(
            self.handle
                .link()
                .set(LinkUnspec::new_with_index(index).mtu(mtu).build())
                .execute()
                .await,
            || format!("setting the MTU of {name} to {mtu}"),
        )
    }

    /// Creates a bridge, up, with `mtu`.
    pub async fn create_bridge(&self, name: &str, mtu: u32) -> Result<()> {
        ctx(
            self.handle
                .link()
                .add(LinkBridge::new(name).mtu(mtu).build())
                .execute()
                .await,
            || format!("creating bridge {name}"),
        )
    }

    /// Creates a VXLAN device enslaved to `bridge`, with learning off on
    /// both the device and its bridge port, and sets it up.
    pub async fn create_vxlan(
        &self,
        name: &str,
        bridge: &str,
        config: &VxlanConfig,
        mtu: u32,
    ) -> Result<()> {
        let bridge_index = self.index(bridge).await?;
        let builder = LinkVxlan::new(name, config.vni)
            .port(config.port)
            .learning(config.learning)
            .proxy(config.proxy);
        let builder = match config.local {
            IpAddr::V4(v4) => builder.local(v4),
            IpAddr::V6(v6) => builder.local6(v6),
        };
        ctx(
            self.handle
                .link()
                .add(builder.mtu(mtu).controller(bridge_index).build())
                .execute()
                .await,
            || format!("creating VXLAN device {name} (VNI {})", config.vni),
        )?;
        let index = self.index(name).await?;
        // The bridge must not learn remote MACs on this port either: the
        // pushed port entries say where they are.
        ctx(
            self.handle
                .link()
                .set_port(LinkBridgePort::new(index).learning(false).build())
                .execute()
                .await,
            || format!("turning learning off on bridge port {name}"),
        )?;
        self.set_up(name).await
    }

    /// Adds an IPv4 address to a link.
    pub async fn add_address(&self, link: &str, addr: IpAddr, prefix_len: u8) -> Result<()> {
        let index = self.index(link).await?;
        let result = ctx(
            self.handle
                .address()
                .add(index, addr, prefix_len)
                .execute()
                .await,
            || format!("adding {addr}/{prefix_len} to {link}"),
        );
        match result {
            // EEXIST: already there (a repeated apply).
            Err(e) if e.errno() == Some(17) => Ok(()),
            other => other,
        }
    }

    /// Removes an address from a link.
    pub async fn delete_address(&self, link: &str, addr: IpAddr, prefix_len: u8) -> Result<()> {
        let index = self.index(link).await?;
        let messages: Vec<_> = ctx(
            self.handle
                .address()
                .get()
                .set_link_index_filter(index)
                .execute()
                .try_collect()
                .await,
            || format!("listing the addresses of {link}"),
        )?;
        for message in messages {
            let has = message
                .attributes
                .iter()
                .any(|a| matches!(a, AddressAttribute::Address(a) if *a == addr));
            if has && message.header.prefix_len == prefix_len {
                absent_ok(ctx(
                    self.handle.address().del(message).execute().await,
                    || format!("removing {addr}/{prefix_len} from {link}"),
                ))?;
            }
        }
        Ok(())
    }

    /// The IPv4/IPv6 addresses of the namespace: (link index, address, prefix).
    pub async fn addresses(&self) -> Result<Vec<(u32, IpAddr, u8)>> {
        let messages: Vec<_> = ctx(
            self.handle.address().get().execute().try_collect().await,
            || "listing addresses".to_string(),
        )?;
        Ok(messages
            .into_iter()
            .flat_map(|m| {
                let (index, prefix) = (m.header.index, m.header.prefix_len);
                m.attributes.into_iter().filter_map(move |a| match a {
                    AddressAttribute::Address(ip) => Some((index, ip, prefix)),
                    _ => None,
                })
            })
            .collect())
    }

    /// Adds (or replaces) a VXLAN FDB entry: frames for `mac` are sent to
    /// the VTEP `dst` (`bridge fdb replace MAC dev DEV dst DST self permanent`).
    pub async fn add_fdb(&self, vxlan: &str, mac: [u8; 6], dst: IpAddr) -> Result<()> {
        let index = self.index(vxlan).await?;
        ctx(
            self.handle
                .neighbours()
                .add_bridge(index, &mac)
                .flags(NeighbourFlags::Own)
                .state(NeighbourState::Permanent)
                .destination(dst)
                .replace()
                .execute()
                .await,
            || format!("adding FDB entry {} dst {dst} on {vxlan}", fmt_mac(&mac)),
        )
    }

    /// Removes a VXLAN FDB entry.
    pub async fn delete_fdb(&self, vxlan: &str, mac: [u8; 6], dst: IpAddr) -> Result<()> {
        let index = self.index(vxlan).await?;
        let mut message = fdb_message(index, mac, NeighbourFlags::Own);
        message
            .attributes
            .push(NeighbourAttribute::Destination(address_of(dst)));
        absent_ok(ctx(
            self.handle.neighbours().del(message).execute().await,
            || {
                format!(
                    "removing FDB entry {} dst {dst} from {vxlan}",
                    fmt_mac(&mac)
                )
            },
        ))
    }

    /// Adds a static bridge FDB entry saying `mac` is behind the port
    /// `vxlan` (`bridge fdb replace MAC dev DEV master static`).
    pub async fn add_port_fdb(&self, vxlan: &str, mac: [u8; 6]) -> Result<()> {
        let index = self.index(vxlan).await?;
        ctx(
            self.handle
                .neighbours()
                .add_bridge(index, &mac)
                .flags(NeighbourFlags::Controller)
                .state(NeighbourState::Noarp)
                .replace()
                .execute()
                .await,
            || format!("adding bridge FDB entry {} on port {vxlan}", fmt_mac(&mac)),
        )
    }

    /// Removes a bridge FDB entry of the port `vxlan`.
    pub async fn delete_port_fdb(&self, vxlan: &str, mac: [u8; 6]) -> Result<()> {
        let index = self.index(vxlan).await?;
        let message = fdb_message(index, mac, NeighbourFlags::Controller);
        absent_ok(ctx(
            self.handle.neighbours().del(message).execute().await,
            || {
                format!(
                    "removing bridge FDB entry {} from port {vxlan}",
                    fmt_mac(&mac)
                )
            },
        ))
    }

    /// The bridge-family FDB entries of a link (self and master).
    pub async fn fdb(&self, index: u32) -> Result<Vec<NeighbourMessage>> {
        let messages: Vec<NeighbourMessage> = ctx(
            self.handle
                .neighbours()
                .get()
                .set_address_family(AddressFamily::Bridge)
                .execute()
                .try_collect()
                .await,
            || "listing FDB entries".to_string(),
        )?;
        Ok(messages
            .into_iter()
            .filter(|m| m.header.ifindex == index)
            .collect())
    }

    /// Adds (or replaces) a permanent neighbour entry `ip → mac` on a link.
    pub async fn add_neighbour(&self, link: &str, ip: IpAddr, mac: [u8; 6]) -> Result<()> {
        let index = self.index(link).await?;
        ctx(
            self.handle
                .neighbours()
                .add(index, ip)
                .link_layer_address(&mac)
                .state(NeighbourState::Permanent)
                .replace()
                .execute()
                .await,
            || format!("adding neighbour {ip} lladdr {} on {link}", fmt_mac(&mac)),
        )
    }

    /// Removes the neighbour entry for `ip` on a link.
    pub async fn delete_neighbour(&self, link: &str, ip: IpAddr) -> Result<()> {
        let index = self.index(link).await?;
        let mut message = NeighbourMessage::default();
        message.header.family = match ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        message.header.ifindex = index;
        message
            .attributes
            .push(NeighbourAttribute::Destination(address_of(ip)));
        absent_ok(ctx(
            self.handle.neighbours().del(message).execute().await,
            || format!("removing neighbour {ip} from {link}"),
        ))
    }

    /// The IPv4 neighbour entries of a link.
    pub async fn neighbours(&self, index: u32) -> Result<Vec<NeighbourMessage>> {
        let messages: Vec<NeighbourMessage> = ctx(
            self.handle
                .neighbours()
                .get()
                .set_address_family(AddressFamily::Inet)
                .execute()
                .try_collect()
                .await,
            || "listing neighbours".to_string(),
        )?;
        Ok(messages
            .into_iter()
            .filter(|m| m.header.ifindex == index)
            .collect())
    }

    /// Creates a veth pair whose peer is created directly inside `peer_ns`
    /// with its final name, MAC and MTU (so it never appears, even briefly,
    /// in this namespace under a name that could clash). The host end stays
    /// down and unattached; [`Netlink::enslave_up`] finishes it.
    pub async fn create_veth_into(
        &self,
        host: &str,
        host_alias: &str,
        peer_ns: &NetNs,
        peer: &str,
        peer_mac: [u8; 6],
        mtu: u32,
    ) -> Result<()> {
        let peer_message = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_string())
            .address(peer_mac.to_vec())
            .mtu(mtu)
            .setns_by_fd(peer_ns.as_raw_fd())
            .build();
        let message = LinkMessageBuilder::<LinkVeth>::new(host, peer)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_message)))
            .mtu(mtu)
            .build();
        ctx(self.handle.link().add(message).execute().await, || {
            format!(
                "creating veth {host} with {peer} in {}",
                peer_ns.path().display()
            )
        })?;
        let index = self.index(host).await?;
        ctx(
            self.handle
                .link()
                .set(
                    LinkUnspec::new_with_index(index)
                        .append_extra_attribute(LinkAttribute::IfAlias(host_alias.to_string()))
                        .build(),
                )
                .execute()
                .await,
            || format!("labelling veth {host}"),
        )
    }

    /// Enslaves a link to a bridge and sets it up.
    pub async fn enslave_up(&self, link: &str, bridge: &str) -> Result<()> {
        let bridge_index = self.index(bridge).await?;
        let index = self.index(link).await?;
        ctx(
            self.handle
                .link()
                .set(
                    LinkUnspec::new_with_index(index)
                        .controller(bridge_index)
                        .up()
                        .build(),
                )
                .execute()
                .await,
            || format!("attaching {link} to {bridge}"),
        )
    }

    /// Adds a default route via `gateway` (replacing one that exists).
    pub async fn replace_default_route(&self, gateway: std::net::Ipv4Addr) -> Result<()> {
        let route = RouteMessageBuilder::<std::net::Ipv4Addr>::new()
            .gateway(gateway)
            .build();
        ctx(
            self.handle.route().add(route).replace().execute().await,
            || format!("adding the default route via {gateway}"),
        )
    }
}

fn fdb_message(index: u32, mac: [u8; 6], flags: NeighbourFlags) -> NeighbourMessage {
    let mut message = NeighbourMessage::default();
    message.header.family = AddressFamily::Bridge;
    message.header.ifindex = index;
    message.header.flags = flags;
    message
        .attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    message
}

fn address_of(ip: IpAddr) -> NeighbourAddress {
    match ip {
        IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
        IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
    }
}

/// `02:42:0a:00:01:05`.
pub fn fmt_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn link_of(message: LinkMessage) -> Link {
    let mut link = Link {
        index: message.header.index,
        name: String::new(),
        up: message.header.flags.contains(LinkFlags::Up),
        mtu: 0,
        master: None,
        alias: None,
        kind: None,
        message: LinkMessage::default(),
    };
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name = name.clone(),
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            LinkAttribute::Controller(index) => link.master = Some(*index),
            LinkAttribute::IfAlias(alias) => link.alias = Some(alias.clone()),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.kind = Some(kind.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    link.message = message;
    link
}
