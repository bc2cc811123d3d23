//! The routing mesh's data plane: a published port answers on every node
//! and reaches a backend task on any node, **keeping the client's address**.
//!
//! # The path of a connection
//! The mesh rides on one overlay network, *ingress*, on which every node
//! has a small namespace of its own, its **ingress sandbox**, with one
//! address (`10.255.0.N`), and every backend task an address too. The
//! sandbox is an ordinary endpoint of the network, so [`with_sandbox`]
//! only adds it to the view and the existing [`crate::reconcile`] plumbs
//! it (veth, FDB, neighbours; its MAC is derived from its address, as every
//! endpoint's is).
//!
//! 1. Client `C` → entry node `E`, port 8080. `E`'s table
//!    ([`host_rules`]) DNATs it to `E`'s sandbox, same port (in prerouting;
//!    in output too, when `C` is `E` itself on one of its own addresses).
//! 2. The sandbox ([`sandbox_rules`]) DNATs it again, to a backend picked by
//!    `numgen random mod N` from the service's chain, and forwards it out
//!    of its ingress interface: over VXLAN to the backend's node, source
//!    still `C`, L2 source the sandbox's MAC.
//! 3. In the backend task's namespace ([`return_rules`]) a new connection
//!    that came in on the ingress interface gets a connection mark keyed by
//!    that source MAC (one mark per sandbox, i.e. per entry node). Its
//!    replies are marked from the connection in the `output` route hook, and
//!    a policy rule per mark (`fwmark M lookup M`) routes them back via the
//!    sandbox they came from — not the task's default route, which would
//!    leave through the backend's own node, where no conntrack entry could
//!    undo the DNATs.
//! 4. The sandbox's and then `E`'s conntrack undo their DNATs, and the reply
//!    leaves `E` from the address the client connected to.
//!
//! No SNAT anywhere, so the task sees `C`. Two DNATs rather than one so that
//! the packet leaving `E` carries an L2 address that names `E` (the host's
//! bridge MAC is the kernel's choice; the sandbox's is derived), and so that
//! a node's published ports are one static rule per port in the host,
//! independent of backends.
//!
//! # Why not Swarm's IPVS + SNAT, or a tunnel
//! IPVS in the sandbox with SNAT loses the client's address
//! (moby/moby#25526) and IPVS's own 900 s idle timeout cuts idle
//! connections (moby/moby#31208). Here state lives only in conntrack, whose
//! established-TCP timeout is the kernel's (5 days by default): the mesh
//! sets no timeout of its own. A tunnel (IPIP/GUE from `E` to the backend's
//! node) would also keep `C`, but needs a tunnel device per node pair and a
//! decapsulation path into the task; connection marks reuse the overlay that
//! already exists.
//!
//! # Updates
//! Each published port has its own chain in the sandbox (`svc-tcp-8080`),
//! flushed and refilled in place in one `nft` transaction when its backends
//! change (kube-proxy's nftables mode); other ports' chains are untouched,
//! and no connection is cut: established flows are conntrack's, not the
//! ruleset's. A backend that leaves the chain gets no new connection.
//!
//! Rules are written in nft's own syntax and applied with `nft -f -`: the
//! numgen map and in-place chain refills read as nft's documentation
//! writes them. Policy routing goes through `ip rule` / `ip route` inside
//! the task's namespace.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use crate::model::{mac_for, Endpoint, LocalTask, NodeView, OverlayNetwork, TaskNetns};

/// The table in the node's, the sandbox's and a backend's namespace.
pub const TABLE: &str = "shoal-ingress";
/// The preference of the policy rules in a backend's namespace.
pub const RULE_PREF: u32 = 1600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One published port and where it leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPort {
    pub service_id: String,
    pub protocol: Protocol,
    pub published: u16,
    pub target: u16,
    /// The ingress-network addresses of the service's running, healthy
    /// tasks (on any node).
    pub backends: Vec<Ipv4Addr>,
}

/// What a node needs to know for the mesh, as the managers push it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressView {
    pub network: OverlayNetwork,
    /// Every node's sandbox address on the ingress network.
    pub sandboxes: Vec<(String, Ipv4Addr)>,
    pub ports: Vec<PublishedPort>,
}

impl IngressView {
    fn sandbox_of(&self, node_id: &str) -> Option<Ipv4Addr> {
        self.sandboxes
            .iter()
            .find(|(n, _)| n == node_id)
            .map(|(_, a)| *a)
    }
}

/// The task ID the sandbox of `node_id` has in the overlay view.
pub fn sandbox_task_id(node_id: &str) -> String {
    format!("ingress-sbox-{node_id}")
}

/// Adds the ingress network, every node's sandbox endpoint and this node's
/// sandbox (living in the named namespace `sandbox_ns`) to the overlay
/// inputs, so that [`crate::OverlayNode::reconcile`] plumbs them like any
/// task. Peers are left to the caller's view (the managers list every node
/// as a peer of the ingress network).
pub fn with_sandbox(
    view: &mut NodeView,
    tasks: &mut Vec<LocalTask>,
    ingress: &IngressView,
    sandbox_ns: &str,
) {
    if !view.networks.iter().any(|n| n.id == ingress.network.id) {
        view.networks.push(ingress.network.clone());
    }
    for (node, addr) in &ingress.sandboxes {
        let task_id = sandbox_task_id(node);
        if view.endpoints.iter().any(|e| e.task_id == task_id) {
            continue;
        }
        view.endpoints.push(Endpoint {
            task_id,
            node_id: node.clone(),
            network_id: ingress.network.id.clone(),
            addr: *addr,
        });
    }
    let me = sandbox_task_id(&view.node_id);
    if ingress.sandbox_of(&view.node_id).is_some() && !tasks.iter().any(|t| t.task_id == me) {
        tasks.push(LocalTask {
            task_id: me,
            netns: TaskNetns::Named(sandbox_ns.to_string()),
            networks: vec![ingress.network.id.clone()],
        });
    }
}

fn sorted_ports(ingress: &IngressView) -> Vec<&PublishedPort> {
    let mut ports: Vec<&PublishedPort> = ingress.ports.iter().collect();
    ports.sort_by_key(|p| (p.protocol, p.published));
    ports.dedup_by_key(|p| (p.protocol, p.published));
    ports
}

/// The node's own table: every published port, arriving for any local
/// address (prerouting) or opened by the node itself to one of its
/// non-loopback addresses (output), goes to this node's sandbox (same
/// port). Replaced whole: it changes only when ports are published or
/// removed, and its DNAT lives in conntrack for connections already open.
pub fn host_rules(ingress: &IngressView, node_id: &str) -> String {
    let Some(sandbox) = ingress.sandbox_of(node_id) else {
        return replace_table(TABLE);
    };
    let dnats: Vec<LocalDnat> = sorted_ports(ingress)
        .iter()
        .map(|p| LocalDnat {
            protocol: p.protocol,
            published: p.published,
            to: sandbox.to_string(),
        })
        .collect();
    local_dnat_script(TABLE, &dnats)
}

/// One published port of the node's namespace and where it leads: an
/// address (same port) or `address:port`.
pub(crate) struct LocalDnat {
    pub protocol: Protocol,
    pub published: u16,
    pub to: String,
}

/// The nft script that makes table `name` hold exactly `dnats`, for
/// connections to any local address, in two NAT chains of the node's
/// namespace: prerouting, for connections arriving from outside, and
/// output, for the node's own connections to its non-loopback addresses.
/// No `dnats` removes the table. Shared by the mesh and the host-mode
/// ports, which publish the same way and differ only in where a port
/// leads.
///
/// **Decision: not 127.0.0.0/8.** A connection from the node to
/// 127.0.0.1 has a loopback source, which may not leave the node for a
/// sandbox or task without `route_localnet` on the bridge — and that
/// setting also lets anything on the bridge's L2 reach the node's
/// localhost-only services (kube-proxy's CVE-2020-8558). kube-proxy's
/// nftables mode leaves localhost node ports out for the same reason, and
/// Docker serves `-p` on localhost with its userland proxy, not its rules.
pub(crate) fn local_dnat_script(name: &str, dnats: &[LocalDnat]) -> String {
    let mut out = replace_table(name);
    if dnats.is_empty() {
        return out;
    }
    let _ = writeln!(out, "table ip {name} {{");
    for (hook, only_non_loopback) in [("prerouting", ""), ("output", "ip daddr != 127.0.0.0/8 ")] {
        let _ = writeln!(
            out,
            // -100 is dstnat's number; older nft takes the name in
            // prerouting only.
            "  chain {hook} {{ type nat hook {hook} priority -100; policy accept;"
        );
        for d in dnats {
            let _ = writeln!(
                out,
                "    {only_non_loopback}fib daddr type local {} dport {} dnat to {}",
                d.protocol.name(),
                d.published,
                d.to
            );
        }
        let _ = writeln!(out, "  }}");
    }
    let _ = writeln!(out, "}}");
    out
}

/// The name of a published port's chain in the sandbox.
pub fn port_chain(protocol: Protocol, published: u16) -> String {
    format!("svc-{}-{published}", protocol.name())
}

/// The sandbox's table: a dispatch chain jumping to one chain per port,
/// each holding the numgen DNAT over the port's backends. `existing` are
/// the port chains there now (from [`list_chains`]): chains of ports still
/// published are flushed and refilled in place, the others deleted. A port
/// without backends keeps an empty chain: its connections are refused
/// (no listener at the sandbox) rather than hanging.
pub fn sandbox_rules(ingress: &IngressView, existing: &[String]) -> String {
    let ports = sorted_ports(ingress);
    let mut out = String::new();
    let _ = writeln!(out, "add table ip {TABLE}");
    let _ = writeln!(
        out,
        "add chain ip {TABLE} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}"
    );
    let _ = writeln!(out, "flush chain ip {TABLE} prerouting");
    let wanted: Vec<String> = ports
        .iter()
        .map(|p| port_chain(p.protocol, p.published))
        .collect();
    for p in &ports {
        let chain = port_chain(p.protocol, p.published);
        let _ = writeln!(out, "add chain ip {TABLE} {chain}");
        let _ = writeln!(out, "flush chain ip {TABLE} {chain}");
        let mut backends = p.backends.clone();
        backends.sort();
        backends.dedup();
        if !backends.is_empty() {
            let map: Vec<String> = backends
                .iter()
                .enumerate()
                .map(|(i, b)| format!("{i} : {b}"))
                .collect();
            let _ = writeln!(
                out,
                "add rule ip {TABLE} {chain} meta l4proto {} dnat to numgen random mod {} map {{ {} }} : {}",
                p.protocol.name(),
                backends.len(),
                map.join(", "),
                p.target
            );
        }
        let _ = writeln!(
            out,
            "add rule ip {TABLE} prerouting {} dport {} jump {chain}",
            p.protocol.name(),
            p.published
        );
    }
    // Jumps to them are gone (the dispatch chain was flushed above), so
    // chains of unpublished ports can be deleted in the same transaction.
    for chain in existing.iter().filter(|c| c.starts_with("svc-")) {
        if !wanted.contains(chain) {
            let _ = writeln!(out, "delete chain ip {TABLE} {chain}");
        }
    }
    out
}

/// The connection mark (and routing table) for replies to connections that
/// entered through the sandbox at `addr`: the address itself, unique per
/// node on the ingress network and never 0.
pub fn mark_for(addr: Ipv4Addr) -> u32 {
    u32::from(addr)
}

fn mac_text(addr: Ipv4Addr) -> String {
    mac_for(addr)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The return-path table in a backend task's namespace, whose ingress
/// interface is `ifname`. Marks new connections arriving there by their
/// entry sandbox's MAC and copies the mark onto their replies, where the
/// `route` hook re-routes by it. Replaced whole: marks are kept on the
/// connections themselves.
pub fn return_rules(ingress: &IngressView, ifname: &str) -> String {
    let mut out = replace_table(TABLE);
    if ingress.sandboxes.is_empty() {
        return out;
    }
    let map: Vec<String> = ingress
        .sandboxes
        .iter()
        .map(|(_, a)| format!("{} : {:#x}", mac_text(*a), mark_for(*a)))
        .collect();
    let _ = writeln!(out, "table ip {TABLE} {{");
    let _ = writeln!(
        out,
        "  chain prerouting {{ type filter hook prerouting priority mangle; policy accept;"
    );
    let _ = writeln!(
        out,
        "    iifname \"{ifname}\" ct state new ct mark set ether saddr map {{ {} }}",
        map.join(", ")
    );
    let _ = writeln!(out, "  }}");
    let _ = writeln!(
        out,
        "  chain output {{ type route hook output priority mangle; policy accept;"
    );
    let _ = writeln!(out, "    ct mark != 0 meta mark set ct mark");
    let _ = writeln!(out, "  }}");
    let _ = writeln!(out, "}}");
    out
}

/// The policy routes of a backend's namespace: for each sandbox, a table
/// whose default route goes back through it, and the rule selecting it.
pub fn return_routes(ingress: &IngressView) -> Vec<(u32, Ipv4Addr)> {
    let mut routes: Vec<(u32, Ipv4Addr)> = ingress
        .sandboxes
        .iter()
        .map(|(_, a)| (mark_for(*a), *a))
        .collect();
    routes.sort();
    routes.dedup();
    routes
}

/// Why applying the mesh's rules failed.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {detail}")]
pub struct IngressError {
    pub what: String,
    pub detail: String,
}

fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, IngressError> {
    let what = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| IngressError {
            what: what.clone(),
            detail: e.to_string(),
        })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        pipe.write_all(text.as_bytes()).map_err(|e| IngressError {
            what: what.clone(),
            detail: e.to_string(),
        })?;
    }
    let output = child.wait_with_output().map_err(|e| IngressError {
        what: what.clone(),
        detail: e.to_string(),
    })?;
    if !output.status.success() {
        return Err(IngressError {
            what,
            detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The start of a script that replaces table `ip NAME` whole: add it (so
/// the delete succeeds whether it existed or not), then delete it; what
/// follows recreates it, all in one transaction.
pub(crate) fn replace_table(name: &str) -> String {
    format!("table ip {name} {{}}\ndelete table ip {name}\n")
}

/// Applies an nft script in the calling thread's namespace, atomically.
pub fn nft_apply(script: &str) -> Result<(), IngressError> {
    run("nft", &["-f", "-"], Some(script)).map(|_| ())
}

/// The chains of shoal's ingress table in the calling thread's namespace
/// (empty when the table does not exist).
pub fn list_chains() -> Vec<String> {
    run("nft", &["list", "table", "ip", TABLE], None)
        .map(|text| {
            text.lines()
                .filter_map(|l| l.trim().strip_prefix("chain "))
                .filter(|l| l.ends_with('{'))
                .filter_map(|l| l.split_whitespace().next())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Sets a sandbox up (in the calling thread's namespace, the sandbox's):
/// forwarding on, redirects off (replies leave by the interface they came
/// in on, by design), and its port chains.
pub fn apply_sandbox(ingress: &IngressView) -> Result<(), IngressError> {
    let sysctl = |path: &str, value: &str| {
        std::fs::write(path, value).map_err(|e| IngressError {
            what: format!("writing {path}"),
            detail: e.to_string(),
        })
    };
    sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
    sysctl("/proc/sys/net/ipv4/conf/all/send_redirects", "0")?;
    sysctl("/proc/sys/net/ipv4/conf/default/send_redirects", "0")?;
    nft_apply(&sandbox_rules(ingress, &list_chains()))
}

/// Sets a backend task's return path (in the calling thread's namespace,
/// the task's): the mark table and the policy routes, replacing any left
/// from before.
pub fn apply_return_path(ingress: &IngressView, ifname: &str) -> Result<(), IngressError> {
    nft_apply(&return_rules(ingress, ifname))?;
    let pref = RULE_PREF.to_string();
    // Derived state: shoal's rules are all at one preference; remove them
    // all and add what the view implies.
    while run("ip", &["rule", "del", "pref", &pref], None).is_ok() {}
    for (mark, via) in return_routes(ingress) {
        let (mark, table, via) = (format!("{mark:#x}"), mark.to_string(), via.to_string());
        run(
            "ip",
            &[
                "route", "replace", "default", "via", &via, "dev", ifname, "table", &table,
            ],
            None,
        )?;
        run(
            "ip",
            &[
                "rule", "add", "pref", &pref, "fwmark", &mark, "lookup", &table,
            ],
            None,
        )?;
    }
    Ok(())
}

/// Removes the mesh's table from the calling thread's namespace (a node
/// with nothing published, or leaving).
pub fn remove_table() -> Result<(), IngressError> {
    nft_apply(&replace_table(TABLE))
}

impl crate::OverlayNode {
    /// Applies the mesh on this node once [`crate::OverlayNode::reconcile`]
    /// has plumbed the view [`with_sandbox`] extended: the node's table,
    /// then its sandbox's (in `sandbox`).
    pub async fn apply_ingress(
        &self,
        ingress: &IngressView,
        node_id: &str,
        sandbox: &TaskNetns,
    ) -> Result<(), crate::OverlayError> {
        let host = host_rules(ingress, node_id);
        self.run_blocking(move || nft_apply(&host))
            .await?
            .map_err(ingress_error)?;
        let ns = crate::node::open_task_netns(sandbox)?;
        let view = ingress.clone();
        ns.run_async(move || apply_sandbox(&view))
            .await
            .map_err(|source| crate::OverlayError::Io {
                what: format!("entering the ingress sandbox {}", ns.path().display()),
                source,
            })?
            .map_err(ingress_error)
    }

    /// Sets the return path in a backend task's namespace; `task.networks`
    /// must include the ingress network (its interface is found by position).
    pub async fn apply_ingress_return(
        &self,
        ingress: &IngressView,
        task: &LocalTask,
    ) -> Result<(), crate::OverlayError> {
        let Some(index) = task.networks.iter().position(|n| n == &ingress.network.id) else {
            return Ok(());
        };
        let ifname = crate::names::task_ifname(index);
        let ns = crate::node::open_task_netns(&task.netns)?;
        let view = ingress.clone();
        ns.run_async(move || apply_return_path(&view, &ifname))
            .await
            .map_err(|source| crate::OverlayError::Io {
                what: format!("entering {}", ns.path().display()),
                source,
            })?
            .map_err(|e| crate::OverlayError::Attach {
                task: task.task_id.clone(),
                source: Box::new(ingress_error(e)),
            })
    }

    /// Removes the node's mesh table (nothing published any more).
    pub async fn remove_ingress(&self) -> Result<(), crate::OverlayError> {
        self.run_blocking(remove_table)
            .await?
            .map_err(ingress_error)
    }
}

/// A failed nft or ip call of the mesh or the host-mode ports, as the
/// node's error.
pub(crate) fn ingress_error(e: IngressError) -> crate::OverlayError {
    crate::OverlayError::Firewall(crate::firewall::FirewallError(e.to_string()))
}

#[cfg(test)]
mod tests;
