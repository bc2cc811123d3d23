//! The node's overlay networks, as the agent runs them: the glue between the
//! managers' pushed view and `shoal-overlay-net`.
//!
//! One actor owns the node's [`OverlayNode`], the latest view and the local
//! tasks on networks. Every change — a new view, a task attached before it
//! starts, a task that ended — re-runs `OverlayNode::reconcile` with the
//! whole picture (level-triggered, idempotent); a failed reconcile is logged
//! and retried every [`RETRY`] until it succeeds. It never decides an
//! address: the managers did.
//!
//! - A **process task** on networks gets a named network namespace
//!   ([`netns_name`], derived from its ID) created and plumbed *before* it is
//!   spawned, so its network is there when it starts; [`enter`] spawns it
//!   inside. A **container** starts on the engine's `none` network and is
//!   plumbed through its PID once it runs.
//! - Each attached task gets an embedded DNS resolver: sockets bound to
//!   127.0.0.11:53 inside its namespace, served from the daemon's runtime
//!   with the one shared view (a `watch`), so a new view is seen by the next
//!   query.
//! - What was attached is recorded under `<data dir>/overlay/` (ID,
//!   namespace, networks), so a restarted daemon adopts the namespaces,
//!   devices and resolvers of tasks that still run — the kernel objects are
//!   found by their derived names — and tears down those of tasks that do
//!   not. Nothing is reconciled before the first view arrives: an empty view
//!   would remove a restarted node's working plumbing.
//! - `swarm leave` removes everything ([`Overlay::cleanup_all`]).
//! - The **routing mesh** rides on the same reconcile: when the view
//!   publishes ports and gives this node a sandbox, the sandbox (a named
//!   namespace, [`sandbox_netns_name`]) joins the picture as one more local
//!   endpoint of the ingress network, and after the plumbing the mesh's
//!   rules are applied: the node's and the sandbox's tables, and the
//!   return path in each local task on the ingress network
//!   (`shoal_overlay_net::ingress` explains the path). Each is re-applied
//!   only when what it depends on changed: the return path's policy rules
//!   are replaced whole, which for an instant misroutes replies.
//! - **Host-mode ports** of an attached task (`--publish mode=host`) are a
//!   DNAT in the node's table to the task's address while it is attached
//!   (`shoal_overlay_net::host_ports`); a container on no network gets
//!   them from the engine instead (`executor::docker::config`).
//!
//! # Layout
//! - [`view`]: the wire view to overlay-net's model (pure).
//! - [`enter`]: spawning a process inside its task's namespaces.

pub mod enter;
pub mod view;

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use shoal_overlay_net::dns::{self, BoundSockets, ServeConfig};
use shoal_overlay_net::host_ports::{self, HostBinding};
use shoal_overlay_net::ingress::{self, IngressView};
use shoal_overlay_net::model::{LocalTask, NodeView, TaskNetns};
use shoal_overlay_net::netns::{NetNs, NetNsError};
use shoal_overlay_net::OverlayNode;
use shoal_proto::v1::{NetworkView, OverlayCapability, Task};
use tokio::sync::{mpsc, oneshot, watch};

use crate::executor::AbortOnDrop;

/// Pause between attempts when a reconcile failed.
pub const RETRY: Duration = Duration::from_secs(2);
/// Where the node's resolvers are read from (upstreams, search domains).
const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

// Where a task's namespace and resolver file are: `enter`'s, which spawns
// into them and is below this module.
pub use enter::{netns_name, resolv_conf_path};

/// The named namespace of this node's ingress sandbox. Named namespaces
/// are machine-wide, so the name carries the node (several test nodes may
/// share one machine).
pub fn sandbox_netns_name(node_id: &str) -> String {
    let short: String = node_id.chars().take(12).collect();
    format!("shoal-sbox-{short}")
}

/// Whether a task is on any overlay network.
pub fn is_networked(task: &Task) -> bool {
    !task.networks.is_empty()
}

/// What a node's overlay needs to know about the node.
#[derive(Debug, Clone)]
pub struct OverlayConfig {
    pub data_dir: PathBuf,
    pub node_id: String,
    /// The node's advertise address (`IP[:PORT]`): its VTEP.
    pub advertise_addr: String,
}

/// A handle on the node's overlay actor. Cheap to clone.
#[derive(Clone)]
pub struct Overlay {
    commands: mpsc::Sender<Command>,
    capability: OverlayCapability,
}

enum Command {
    View(Box<NetworkView>),
    Attach {
        task: Box<Task>,
        pid: Option<u32>,
        done: oneshot::Sender<Result<(), String>>,
    },
    Detach {
        task_id: String,
        done: oneshot::Sender<()>,
    },
    Retain {
        live: HashSet<String>,
    },
    Cleanup {
        done: oneshot::Sender<()>,
    },
}

/// What is recorded of an attached task (the restart's memory).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Record {
    task_id: String,
    /// The container's PID; `None`: the task's named namespace.
    pid: Option<u32>,
    networks: Vec<String>,
    /// Its host-mode ports, as bound on this node.
    #[serde(default)]
    host_ports: Vec<RecordedPort>,
}

/// A host-mode port of an attached task (`host_ports::HostBinding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct RecordedPort {
    udp: bool,
    published: u16,
    target: u16,
    addr: std::net::Ipv4Addr,
}

impl RecordedPort {
    fn binding(self) -> HostBinding {
        HostBinding {
            protocol: if self.udp {
                ingress::Protocol::Udp
            } else {
                ingress::Protocol::Tcp
            },
            published: self.published,
            target: self.target,
            addr: self.addr,
        }
    }
}

/// The host-mode ports `task` binds here: to its address on the network
/// its default route uses; none on internal networks only (no route back
/// to a client), which is said once.
fn host_bindings(task: &Task, view: &NodeView) -> Vec<RecordedPort> {
    if task.host_ports.is_empty() {
        return Vec::new();
    }
    let attachments: Vec<(String, std::net::Ipv4Addr)> = task
        .networks
        .iter()
        .filter_map(|a| Some((a.network_id.clone(), view::bare_addr(a.addresses.first()?)?)))
        .collect();
    let Some(addr) = host_ports::binding_address(&attachments, &view.networks) else {
        tracing::warn!(task = %task.id, "host-mode ports not published: the task is on internal networks only, which have no route to a client");
        return Vec::new();
    };
    task.host_ports
        .iter()
        .filter_map(|p| {
            Some(RecordedPort {
                udp: p.protocol == shoal_proto::v1::PortProtocol::Udp as i32,
                published: u16::try_from(p.published_port).ok()?,
                target: u16::try_from(p.target_port).ok()?,
                addr,
            })
        })
        .collect()
}

struct Attached {
    record: Record,
    /// Where its namespace is reached: the container's PID, the task's
    /// named namespace, or, for a process task adopted by a daemon that
    /// cannot see the name's mount, its process's PID (see
    /// [`enter::task_netns_file`]).
    netns: TaskNetns,
    /// Serving DNS in the task's namespace; ends when dropped.
    resolver: Option<AbortOnDrop>,
}

impl Overlay {
    /// Probes whether this node can do overlay networking and starts the
    /// actor. `SHOAL_OVERLAY_UNSUPPORTED=REASON` forces "unsupported" (the
    /// e2e suite's way to test placement on an incapable node).
    pub async fn start(config: OverlayConfig) -> Overlay {
        let forced = std::env::var("SHOAL_OVERLAY_UNSUPPORTED")
            .ok()
            .filter(|r| !r.is_empty());
        let support = match forced {
            Some(reason) => Err(reason),
            // No VTEP to put in a VXLAN device: nothing to probe (the scale
            // simulator's nodes, thousands in one process, have none).
            None if config.advertise_addr.is_empty() => {
                Err("the node has no advertise address to carry overlay traffic".to_string())
            }
            None => shoal_overlay_net::overlay_support()
                .await
                .map_err(|r| r.to_string()),
        };
        let node = match support {
            Ok(()) => match OverlayNode::host() {
                // Several daemons sharing one network namespace (a loopback
                // test cluster: 127.0.0.2 and .3 beside lo's 127.0.0.1)
                // cannot each own a VTEP. Say so now, so the scheduler keeps
                // network tasks off this node with the reason, rather than
                // failing every task's plumbing later.
                Ok(node) => match vtep_problem(&node, &config.advertise_addr).await {
                    Some(reason) => Err(reason),
                    None => Ok(node),
                },
                Err(e) => Err(format!("cannot open the node's netlink socket: {e}")),
            },
            Err(reason) => Err(reason),
        };
        let (node, capability) = match node {
            Ok(node) => {
                tracing::info!("overlay networking available");
                let capability = OverlayCapability {
                    supported: true,
                    reason: String::new(),
                };
                (Some(node), capability)
            }
            Err(reason) => {
                tracing::warn!(%reason, "overlay networking not available on this node");
                let capability = OverlayCapability {
                    supported: false,
                    reason,
                };
                (None, capability)
            }
        };
        let (commands, receiver) = mpsc::channel(64);
        let vtep = view::vtep_of(&config.advertise_addr);
        let (views, _) = watch::channel(Arc::new(NodeView::default()));
        let mut actor = Actor {
            dir: config.data_dir.join("overlay"),
            tasks_dir: config.data_dir.join("tasks"),
            node_id: config.node_id,
            vtep,
            node,
            view: None,
            views,
            tasks: BTreeMap::new(),
            failing: false,
            mesh: None,
            mesh_applied: None,
            returns_applied: BTreeMap::new(),
            userspace: crate::ingress::capability().mode == crate::ingress::USERSPACE,
            proxies: crate::ingress::proxy::Proxies::new(std::net::IpAddr::V4(
                std::net::Ipv4Addr::UNSPECIFIED,
            )),
            host_ports_applied: None,
        };
        actor.load_records();
        tokio::spawn(actor.run(receiver));
        Overlay {
            commands,
            capability,
        }
    }

    /// What the node reports in `NodeDescription.overlay`.
    pub fn capability(&self) -> OverlayCapability {
        self.capability.clone()
    }

    /// The managers pushed a new view (with the assignments).
    pub async fn view(&self, view: NetworkView) {
        let _ = self.commands.send(Command::View(Box::new(view))).await;
    }

    /// Plumbs a task before it starts (a process: `pid` `None`, its named
    /// namespace is created) or once it runs (a container: its init's PID).
    /// Returns once its interfaces and resolver are up, or why not.
    pub async fn attach(&self, task: &Task, pid: Option<u32>) -> Result<(), String> {
        let (done, answer) = oneshot::channel();
        let sent = self
            .commands
            .send(Command::Attach {
                task: Box::new(task.clone()),
                pid,
                done,
            })
            .await;
        if sent.is_err() {
            return Err("the overlay stopped".into());
        }
        answer
            .await
            .unwrap_or_else(|_| Err("the overlay stopped".into()))
    }

    /// A task ended: its interfaces, resolver and namespace go. Unknown
    /// tasks (on no network) are ignored.
    pub async fn detach(&self, task_id: &str) {
        let (done, finished) = oneshot::channel();
        let command = Command::Detach {
            task_id: task_id.to_string(),
            done,
        };
        if self.commands.send(command).await.is_ok() {
            let _ = finished.await;
        }
    }

    /// After a restart: the tasks still running (adopted). Recorded tasks
    /// not among them ended while the daemon was away and are torn down.
    pub async fn retain(&self, live: HashSet<String>) {
        let _ = self.commands.send(Command::Retain { live }).await;
    }

    /// The node leaves the swarm: every namespace, device and rule shoal
    /// made goes.
    pub async fn cleanup_all(&self) {
        let (done, finished) = oneshot::channel();
        if self.commands.send(Command::Cleanup { done }).await.is_ok() {
            let _ = finished.await;
        }
    }
}

struct Actor {
    /// `<data dir>/overlay`: the records.
    dir: PathBuf,
    tasks_dir: PathBuf,
    node_id: String,
    vtep: Option<IpAddr>,
    /// `None` when the node cannot do overlay networking.
    node: Option<OverlayNode>,
    /// The latest view; `None` until the first one arrives.
    view: Option<NodeView>,
    views: watch::Sender<Arc<NodeView>>,
    tasks: BTreeMap<String, Attached>,
    /// The last reconcile failed: retry.
    failing: bool,
    /// The routing mesh this node serves, from the latest view.
    mesh: Option<IngressView>,
    /// The mesh last applied to the node's and the sandbox's tables.
    mesh_applied: Option<IngressView>,
    /// Per local task on the ingress network, the sandboxes its return
    /// path was last set for.
    returns_applied: BTreeMap<String, Vec<(String, std::net::Ipv4Addr)>>,
    /// The node serves published ports in userspace (no CAP_NET_ADMIN, or
    /// forced): see [`crate::ingress`].
    userspace: bool,
    /// The userspace proxy's listeners, when the kernel mesh does not serve
    /// this node.
    proxies: crate::ingress::proxy::Proxies,
    /// The host-mode ports last put in the node's table (`None`: not yet,
    /// so a restarted daemon rewrites whatever a previous one left).
    host_ports_applied: Option<Vec<HostBinding>>,
}

impl Actor {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        loop {
            let retry = async {
                if self.failing {
                    tokio::time::sleep(RETRY).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            let command = tokio::select! {
                command = commands.recv() => command,
                () = retry => {
                    let _ = self.reconcile().await;
                    continue;
                }
            };
            let Some(command) = command else { return };
            match command {
                Command::View(wire) => {
                    let view = view::node_view(&self.node_id, self.vtep, &wire);
                    let mesh = self.serve_ports(&wire).await;
                    if self.view.as_ref() != Some(&view) || self.mesh != mesh {
                        self.views.send_replace(Arc::new(view.clone()));
                        self.view = Some(view);
                        self.mesh = mesh;
                        let _ = self.reconcile().await;
                    }
                }
                Command::Attach { task, pid, done } => {
                    let _ = done.send(self.attach(&task, pid).await);
                }
                Command::Detach { task_id, done } => {
                    if self.tasks.contains_key(&task_id) {
                        self.detach(&task_id).await;
                    }
                    let _ = done.send(());
                }
                Command::Retain { live } => {
                    let gone: Vec<String> = self
                        .tasks
                        .keys()
                        .filter(|id| !live.contains(*id))
                        .cloned()
                        .collect();
                    for task_id in gone {
                        tracing::info!(task = %task_id, "removing the overlay plumbing of a task that ended while the agent was away");
                        self.detach(&task_id).await;
                    }
                }
                Command::Cleanup { done } => {
                    self.cleanup().await;
                    let _ = done.send(());
                }
            }
        }
    }

    fn locals(&self) -> Vec<LocalTask> {
        self.tasks
            .values()
            .map(|a| LocalTask {
                task_id: a.record.task_id.clone(),
                netns: a.netns.clone(),
                networks: a.record.networks.clone(),
            })
            .collect()
    }

    /// Applies the whole picture; then gives every attached task that has
    /// none a resolver (its loopback is up only once it is plumbed).
    async fn reconcile(&mut self) -> Result<(), String> {
        let (Some(node), Some(view)) = (self.node.as_ref(), self.view.as_ref()) else {
            self.failing = false;
            return Ok(());
        };
        let mut locals = self.locals();
        let mut view = view.clone();
        let sandbox = sandbox_netns_name(&self.node_id);
        if let Some(mesh) = self.mesh.as_ref() {
            match NetNs::create(&sandbox) {
                Ok(_) | Err(NetNsError::Exists(_)) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot create the ingress sandbox");
                    self.failing = true;
                    return Err(e.to_string());
                }
            }
            ingress::with_sandbox(&mut view, &mut locals, mesh, &sandbox);
        }
        match node.reconcile(&view, &locals).await {
            Ok(report) => {
                self.failing = false;
                if !report.applied.is_empty() {
                    tracing::debug!(actions = report.applied.len(), "overlay reconciled");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_s = RETRY.as_secs(), "overlay reconcile failed");
                self.failing = true;
                return Err(e.to_string());
            }
        }
        if let Err(e) = self.apply_mesh(&locals, &sandbox).await {
            tracing::warn!(error = %e, retry_in_s = RETRY.as_secs(), "routing mesh not applied");
            self.failing = true;
            return Err(e);
        }
        if let Err(e) = self.apply_host_ports().await {
            tracing::warn!(error = %e, retry_in_s = RETRY.as_secs(), "host-mode ports not applied");
            self.failing = true;
            return Err(e);
        }
        let upstreams = host_upstreams();
        for attached in self.tasks.values_mut() {
            if attached.resolver.is_some() {
                continue;
            }
            let resolver = start_resolver(
                &attached.record,
                &attached.netns,
                self.views.subscribe(),
                upstreams.clone(),
            )
            .await;
            match resolver {
                Ok(resolver) => attached.resolver = Some(resolver),
                Err(e) => {
                    tracing::warn!(task = %attached.record.task_id, error = %e, "cannot start the task's DNS resolver");
                    self.failing = true;
                    return Err(format!("the embedded DNS resolver: {e}"));
                }
            }
        }
        Ok(())
    }

    /// Which path serves the view's published ports here, and the
    /// userspace proxy's listeners set accordingly: the kernel mesh when
    /// the node does overlay networking, may program nftables and has a
    /// sandbox in the view (its view is returned); otherwise the proxy,
    /// forwarding to the nodes that do (`None` is returned).
    async fn serve_ports(&mut self, wire: &NetworkView) -> Option<IngressView> {
        let mesh = wire
            .ingress
            .as_ref()
            .and_then(crate::ingress::mesh::mesh_view);
        let kernel = self.node.is_some()
            && !self.userspace
            && mesh
                .as_ref()
                .is_some_and(|m| m.sandboxes.iter().any(|(n, _)| *n == self.node_id));
        let proxied = match (&wire.ingress, kernel) {
            (Some(ports), false) => crate::ingress::mesh::entry_ports(ports, &self.node_id),
            _ => Vec::new(),
        };
        for problem in self.proxies.apply(&proxied).await {
            tracing::warn!(%problem, "a published port is not served in userspace");
        }
        mesh.filter(|_| kernel)
    }

    /// The mesh's rules after the plumbing: the node's and the sandbox's
    /// tables when the published ports or backends changed, the return
    /// path of each local ingress task whose sandboxes changed; or, with
    /// nothing published any more, the tables and the sandbox go.
    async fn apply_mesh(&mut self, locals: &[LocalTask], sandbox: &str) -> Result<(), String> {
        let Some(node) = self.node.as_ref() else {
            return Ok(());
        };
        let Some(mesh) = self.mesh.as_ref() else {
            self.returns_applied.clear();
            if self.mesh_applied.take().is_some() {
                node.remove_ingress().await.map_err(|e| e.to_string())?;
                if let Err(e) = NetNs::delete(sandbox) {
                    tracing::warn!(error = %e, "cannot delete the ingress sandbox");
                }
                tracing::info!("routing mesh removed: nothing is published");
            }
            return Ok(());
        };
        if self.mesh_applied.as_ref() != Some(mesh) {
            node.apply_ingress(mesh, &self.node_id, &TaskNetns::Named(sandbox.to_string()))
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(ports = mesh.ports.len(), "routing mesh applied");
            self.mesh_applied = Some(mesh.clone());
        }
        let me = ingress::sandbox_task_id(&self.node_id);
        self.returns_applied
            .retain(|id, _| locals.iter().any(|t| &t.task_id == id));
        for task in locals
            .iter()
            .filter(|t| t.task_id != me && t.networks.contains(&mesh.network.id))
        {
            if self.returns_applied.get(&task.task_id) == Some(&mesh.sandboxes) {
                continue;
            }
            node.apply_ingress_return(mesh, task)
                .await
                .map_err(|e| e.to_string())?;
            self.returns_applied
                .insert(task.task_id.clone(), mesh.sandboxes.clone());
        }
        Ok(())
    }

    /// The node's host-mode table, when the attached tasks' ports changed.
    async fn apply_host_ports(&mut self) -> Result<(), String> {
        let Some(node) = self.node.as_ref() else {
            return Ok(());
        };
        let mut wanted: Vec<HostBinding> = self
            .tasks
            .values()
            .flat_map(|a| a.record.host_ports.iter().map(|p| p.binding()))
            .collect();
        wanted.sort();
        if self.host_ports_applied.as_ref() == Some(&wanted) {
            return Ok(());
        }
        node.apply_host_ports(&wanted)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(ports = wanted.len(), "host-mode ports applied");
        self.host_ports_applied = Some(wanted);
        Ok(())
    }

    async fn attach(&mut self, task: &Task, pid: Option<u32>) -> Result<(), String> {
        if self.node.is_none() {
            return Err("this node cannot do overlay networking".into());
        }
        let Some(view) = self.view.as_ref() else {
            return Err("no network view from the managers yet".into());
        };
        let record = Record {
            task_id: task.id.clone(),
            pid,
            networks: task.networks.iter().map(|n| n.network_id.clone()).collect(),
            host_ports: host_bindings(task, view),
        };
        if pid.is_none() {
            let name = netns_name(&task.id);
            match NetNs::create(&name) {
                Ok(_) | Err(NetNsError::Exists(_)) => {}
                Err(e) => return Err(e.to_string()),
            }
            let conf = std::fs::read_to_string(HOST_RESOLV_CONF).unwrap_or_default();
            let path = resolv_conf_path(&self.tasks_dir.join(&task.id));
            crate::executor::write_atomically(&path, dns::resolv_conf(&conf).as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        self.write_record(&record)
            .map_err(|e| format!("cannot record the attachment: {e}"))?;
        let netns = match pid {
            Some(pid) => TaskNetns::Pid(pid),
            None => TaskNetns::Named(netns_name(&task.id)),
        };
        self.tasks.insert(
            task.id.clone(),
            Attached {
                record,
                netns,
                resolver: None,
            },
        );
        match self.reconcile().await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.detach(&task.id).await;
                Err(e)
            }
        }
    }

    /// Reconciles without the task, then deletes its namespace and record.
    async fn detach(&mut self, task_id: &str) {
        let Some(attached) = self.tasks.remove(task_id) else {
            return;
        };
        drop(attached.resolver);
        let _ = self.reconcile().await;
        if attached.record.pid.is_none() {
            if let Err(e) = NetNs::delete(&netns_name(task_id)) {
                tracing::warn!(task = %task_id, error = %e, "cannot delete the task's network namespace");
            }
        }
        let _ = std::fs::remove_file(self.record_path(task_id));
    }

    async fn cleanup(&mut self) {
        let ids: Vec<String> = self.tasks.keys().cloned().collect();
        self.view = None;
        self.mesh = None;
        if let Some(node) = self.node.as_ref() {
            if let Err(e) = node.remove_ingress().await {
                tracing::warn!(error = %e, "cannot remove the routing mesh's table");
            }
            // Deleting an absent namespace is no error worth a word here.
            let _ = NetNs::delete(&sandbox_netns_name(&self.node_id));
        }
        self.mesh_applied = None;
        self.returns_applied.clear();
        self.proxies.apply(&[]).await;
        if let Some(node) = self.node.as_ref() {
            if let Err(e) = node.apply_host_ports(&[]).await {
                tracing::warn!(error = %e, "cannot remove the host-mode ports' table");
            }
        }
        self.host_ports_applied = None;
        for task_id in ids {
            self.detach(&task_id).await;
        }
        if let Some(node) = self.node.as_ref() {
            if let Err(e) = node.cleanup_all().await {
                tracing::warn!(error = %e, "overlay cleanup failed");
            }
        }
        self.failing = false;
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    fn record_path(&self, task_id: &str) -> PathBuf {
        self.dir.join(format!("{task_id}.json"))
    }

    fn write_record(&self, record: &Record) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let bytes = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        crate::executor::write_atomically(&self.record_path(&record.task_id), &bytes)
    }

    /// The tasks a previous daemon attached: adopted until
    /// [`Overlay::retain`] says which still run.
    fn load_records(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Some(record) = std::fs::read(entry.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
            else {
                continue;
            };
            let netns = match record.pid {
                Some(pid) => TaskNetns::Pid(pid),
                None => {
                    let name = netns_name(&record.task_id);
                    let usable = NetNs::open(&name).is_ok_and(|ns| ns.run(|| ()).is_ok());
                    let pid = enter::task_pid(&self.tasks_dir.join(&record.task_id));
                    match (usable, pid) {
                        (false, Some(pid)) => TaskNetns::Pid(pid),
                        _ => TaskNetns::Named(name),
                    }
                }
            };
            tracing::info!(task = %record.task_id, ?netns, "adopting a task's overlay plumbing");
            self.tasks.insert(
                record.task_id.clone(),
                Attached {
                    record,
                    netns,
                    resolver: None,
                },
            );
        }
    }
}

/// The node's own resolvers, for names outside the overlay.
fn host_upstreams() -> Vec<SocketAddr> {
    let conf = std::fs::read_to_string(HOST_RESOLV_CONF).unwrap_or_default();
    dns::upstreams_from_resolv_conf(&conf)
}

/// Binds 127.0.0.11:53 (UDP and TCP) inside the task's namespace and serves
/// it on the daemon's runtime.
/// Why this node's advertise address cannot be its VTEP, if it cannot: it
/// must be an address of one of the node's own interfaces, because VXLAN
/// packets leave from it and peers send theirs to it.
async fn vtep_problem(node: &OverlayNode, advertise_addr: &str) -> Option<String> {
    let Some(vtep) = view::vtep_of(advertise_addr) else {
        return Some(format!(
            "the advertise address {advertise_addr:?} is not an IP address a VTEP can use"
        ));
    };
    if vtep.is_loopback() {
        // lo would take the VXLAN device (a lone manager on 127.0.0.1), but
        // no peer can reach it there, and every daemon of every loopback
        // cluster on the machine would share one namespace's devices, which
        // are named by VNI alone.
        return Some(format!(
            "the advertise address {vtep} is a loopback address, which no other node can reach: advertise an address of one of the node's interfaces (each node on its own host, VM or network namespace)"
        ));
    }
    node.underlay_mtu(vtep).await.err().map(|e| e.to_string())
}

async fn start_resolver(
    record: &Record,
    netns: &TaskNetns,
    view: dns::ViewReceiver,
    upstreams: Vec<SocketAddr>,
) -> Result<AbortOnDrop, String> {
    let ns = match netns {
        TaskNetns::Pid(pid) => NetNs::open_pid(*pid),
        TaskNetns::Named(name) => NetNs::open(name),
    }
    .map_err(|e| e.to_string())?;
    let addr = SocketAddr::from((dns::RESOLVER_ADDR, dns::RESOLVER_PORT));
    let sockets = ns
        .run_async(move || BoundSockets::bind(addr))
        .await
        .and_then(|bound| bound)
        .map_err(|e| format!("binding {addr} in {}: {e}", ns.path().display()))?;
    let (udp, tcp) = sockets.into_tokio().map_err(|e| e.to_string())?;
    let config = ServeConfig::new(record.networks.clone(), upstreams);
    let task_id = record.task_id.clone();
    Ok(AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = dns::serve(udp, tcp, view, config).await {
            tracing::warn!(task = %task_id, error = %e, "the task's DNS resolver stopped");
        }
    })))
}
