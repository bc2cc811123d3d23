//! The typed, normalized result of loading a stack: what the CLI turns into
//! shoal service specs. Every short form of the Compose file has been
//! expanded (list-form `environment` into a map, short port syntax into
//! [`Port`]s, string `command` into argv), durations and sizes are numbers,
//! and every reference has been checked. Options that shoal does not apply
//! are not here; they are [`Warning`]s.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::Location;
use crate::yaml::Node;

/// A loaded stack.
#[derive(Debug, Clone, PartialEq)]
pub struct Stack {
    /// The top-level `name:`, if the file sets one.
    pub name: Option<String>,
    pub services: BTreeMap<String, ServiceDef>,
    /// Declared networks, plus `default` when a service uses it implicitly
    /// (a service without `networks:` joins `default`, as in Docker).
    pub networks: BTreeMap<String, NetworkDef>,
    pub volumes: BTreeMap<String, VolumeDef>,
    pub secrets: BTreeMap<String, FileObjectDef>,
    pub configs: BTreeMap<String, FileObjectDef>,
    /// Options present in the files that shoal does not apply, in file
    /// order; see [`crate::unsupported_options_line`].
    pub warnings: Vec<Warning>,
    /// The merged, interpolated document, for [`crate::render`].
    pub(crate) document: Node,
}

/// How a service's tasks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Runtime {
    /// A container from `image` (the default).
    #[default]
    Container,
    /// A plain process (`x-shoal-runtime: process`): `entrypoint` followed
    /// by `command` is its command line, and there is no image.
    Process,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceDef {
    /// `None` only for a container service that relied on `build:` (which
    /// shoal ignores with a warning) or for a process service.
    pub image: Option<String>,
    pub runtime: Runtime,
    pub command: Vec<String>,
    pub entrypoint: Vec<String>,
    /// `env_file` contents overlaid by `environment`; a bare `KEY` takes its
    /// value from the loader's environment and is left out when unset there.
    pub environment: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub ports: Vec<Port>,
    /// Ports exposed to other services only, as written (`3000`,
    /// `8000-8010/udp`), checked for range.
    pub expose: Vec<String>,
    pub healthcheck: Option<Healthcheck>,
    pub mode: ServiceMode,
    /// `None` when not set (Swarm then runs one replica).
    pub replicas: Option<u64>,
    pub constraints: Vec<String>,
    /// Placement preferences as their spread descriptors
    /// (`node.labels.zone`).
    pub preferences: Vec<String>,
    pub max_replicas_per_node: Option<u64>,
    pub limits: Resources,
    pub reservations: Resources,
    pub update_config: Option<UpdateConfig>,
    pub rollback_config: Option<UpdateConfig>,
    pub restart_policy: Option<RestartPolicy>,
    /// `deploy.x-shoal-autoscale`: shoal's autoscaler steers `replicas`.
    pub autoscale: Option<Autoscale>,
    pub deploy_labels: BTreeMap<String, String>,
    pub endpoint_mode: Option<EndpointMode>,
    /// The networks the service joins, in file order.
    pub networks: Vec<NetworkRef>,
    pub secrets: Vec<FileRef>,
    pub configs: Vec<FileRef>,
    /// `volumes:` (named, anonymous, binds and tmpfs, in file order)
    /// followed by `tmpfs:`'s paths.
    pub volumes: Vec<Mount>,
    /// `read_only:`: the task's root filesystem is read-only.
    pub read_only: bool,
    pub stop_grace_period: Option<Duration>,
    pub stop_signal: Option<String>,
    pub depends_on: BTreeMap<String, Condition>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub dns: Vec<String>,
}

impl ServiceDef {
    /// The full command line: `entrypoint` then `command`. For a process
    /// service this is what runs; for a container an empty part means "the
    /// image's default".
    pub fn command_line(&self) -> Vec<String> {
        self.entrypoint
            .iter()
            .chain(&self.command)
            .cloned()
            .collect()
    }
}

/// `deploy.x-shoal-autoscale:` — the bounds and targets of shoal's
/// autoscaler (`service create --autoscale-*`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Autoscale {
    pub min: u64,
    pub max: u64,
    /// Percent of the task's CPU reservation, else of one core.
    pub cpu_percent: Option<f64>,
    /// Percent of the task's memory limit, else of its reservation.
    pub memory_percent: Option<f64>,
    /// Requests per second per task.
    pub rps: Option<f64>,
    pub scale_down_window: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServiceMode {
    #[default]
    Replicated,
    Global,
    ReplicatedJob,
    GlobalJob,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Port inside the container (or the process's port).
    pub target: u16,
    /// Port published on the cluster; `None` lets the manager pick one.
    pub published: Option<u16>,
    pub protocol: Protocol,
    pub mode: PortMode,
    /// `ip:` of the short syntax / `host_ip` of the long one.
    pub host_ip: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PortMode {
    /// Published on every node through the routing mesh.
    #[default]
    Ingress,
    /// Published only on the node running the task.
    Host,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Healthcheck {
    /// `["CMD", …]`, `["CMD-SHELL", "…"]` or `["NONE"]`; empty means "the
    /// image's own test" (only timing was overridden).
    pub test: Vec<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub retries: Option<u64>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
    pub disable: bool,
}

/// CPU and memory amounts; 0 means "not set", as in Swarm's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resources {
    pub nano_cpus: i64,
    pub memory_bytes: i64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct UpdateConfig {
    pub parallelism: Option<u64>,
    pub delay: Option<Duration>,
    pub failure_action: Option<FailureAction>,
    pub monitor: Option<Duration>,
    pub max_failure_ratio: Option<f64>,
    pub order: Option<UpdateOrder>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureAction {
    Continue,
    Pause,
    Rollback,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateOrder {
    StopFirst,
    StartFirst,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RestartPolicy {
    pub condition: Option<RestartCondition>,
    pub delay: Option<Duration>,
    pub max_attempts: Option<u64>,
    pub window: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartCondition {
    None,
    OnFailure,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointMode {
    Vip,
    Dnsrr,
}

/// What a dependency must reach before the dependent service starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Condition {
    #[default]
    ServiceStarted,
    ServiceHealthy,
    ServiceCompletedSuccessfully,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRef {
    pub name: String,
    pub aliases: Vec<String>,
}

/// A service's use of a secret or config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// The top-level secret/config name.
    pub source: String,
    /// File name or path inside the task; `None` means the default
    /// (`/run/secrets/<source>` or `/<source>`).
    pub target: Option<String>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub mode: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mount {
    /// What is mounted: a volume (the default), a bind or a tmpfs.
    pub kind: MountKind,
    /// Volumes: a top-level volume's key (`None`: an anonymous volume);
    /// binds: the host path as written; tmpfs: `None`.
    pub source: Option<String>,
    pub target: String,
    pub read_only: bool,
    /// Tmpfs: `tmpfs.size` in bytes and `tmpfs.mode`.
    pub tmpfs_size: Option<i64>,
    pub tmpfs_mode: Option<u32>,
}

/// The kinds of mount shoal applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MountKind {
    #[default]
    Volume,
    Bind,
    Tmpfs,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkDef {
    pub driver: Option<String>,
    pub driver_opts: BTreeMap<String, String>,
    pub attachable: bool,
    pub internal: bool,
    pub external: bool,
    /// The name on the cluster, when it differs from the key.
    pub name: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `ipam.config` entries (shoal uses the first: one IPv4 subnet).
    pub ipam: Vec<IpamPool>,
}

/// One `ipam.config` entry of a network.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpamPool {
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumeDef {
    pub driver: Option<String>,
    pub driver_opts: BTreeMap<String, String>,
    pub external: bool,
    pub name: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// A top-level secret or config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileObjectDef {
    pub source: FileSource,
    pub name: Option<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    /// `file:`, resolved against the first Compose file's directory.
    File(PathBuf),
    /// `environment:`: the value of this variable of the loader's
    /// environment.
    Environment(String),
    /// `content:` (configs only): the inline text.
    Content(String),
    /// `external: true`: already exists on the cluster.
    External,
}

/// An option that is valid Compose but that shoal does not apply; the
/// stack deploys without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The option's key, as Docker names it in "Ignoring unsupported
    /// options: …" (`build`, `restart`, `volumes`).
    pub option: String,
    /// Full key path, e.g. `services.web.build`.
    pub path: String,
    pub at: Location,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: ignored: shoal does not support `{}`",
            self.at, self.path, self.option
        )
    }
}
