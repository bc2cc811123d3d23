//! The command line. Flag names follow Docker's where Docker has the flag.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// shoal: a cluster manager in the spirit of Docker Swarm mode.
#[derive(Debug, Parser)]
#[command(name = "shoal", version, propagate_version = true)]
pub struct Cli {
    /// Daemon socket to talk to: unix:///path/to.sock or a plain path.
    #[arg(short = 'H', long = "host", env = "SHOAL_HOST", global = true)]
    pub host: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: variant sizes do not matter here.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node daemon.
    Daemon(DaemonArgs),
    /// Manage the swarm.
    #[command(subcommand)]
    Swarm(SwarmCommand),
    /// Manage swarm nodes.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Show this node's swarm membership.
    Info(InfoArgs),
    /// Manage services.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Manage stacks: groups of services deployed from Compose files.
    #[command(subcommand)]
    Stack(StackCommand),
    /// Manage overlay networks.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Manage secrets: data only the tasks granted it can read.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Manage configs: files granted to tasks, not secret.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage the nodes' volumes.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Serve a one-line HTTP greeting (task, node, the client's address) on
    /// 127.0.0.1:(BASE_PORT + $SHOAL_TASK_SLOT), or on --listen; the quick
    /// start's example services run it.
    ExampleServer {
        /// Port of slot 0; slot N listens on BASE_PORT + N.
        #[arg(long, default_value_t = 18080)]
        base_port: u16,
        /// Listen on this one address instead (e.g. 0.0.0.0:80 for a task
        /// with its own overlay address).
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<std::net::SocketAddr>,
        /// Count the requests served in DIR/requests (e.g. a volume's mount).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<std::path::PathBuf>,
    },
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Create a new service.
    Create(ServiceCreateArgs),
    /// List services.
    #[command(alias = "list")]
    Ls {
        /// Only display IDs.
        #[arg(short, long)]
        quiet: bool,
        /// Output format: table, json, or a Go template ('{{.Name}}',
        /// '{{json .}}', 'table {{.ID}}\t{{.Name}}').
        #[arg(long, default_value_t)]
        format: Format,
        /// Read this manager's own replica instead of asking the leader
        /// (diagnostics: compare what each manager has applied).
        #[arg(long, hide = true)]
        local: bool,
    },
    /// List the tasks of one or more services.
    Ps {
        /// Only display task IDs.
        #[arg(short, long)]
        quiet: bool,
        /// Do not truncate output.
        #[arg(long)]
        no_trunc: bool,
        /// Output format: table, json, or a Go template ('{{.Name}}',
        /// '{{json .}}', 'table {{.ID}}\t{{.Name}}').
        #[arg(long, default_value_t)]
        format: Format,
        /// Service names or IDs.
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Display detailed information on one or more services.
    Inspect {
        /// Output format: json, or a Go template over Docker's shape
        /// ('{{.Spec.Name}}', '{{json .}}').
        #[arg(long, default_value = "json")]
        format: Format,
        /// Service names or IDs.
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Update a service: its tasks are replaced a few at a time (rolling).
    Update(ServiceUpdateArgs),
    /// Scale one or multiple replicated services.
    Scale {
        #[command(flatten)]
        wait: WaitFlags,
        /// SERVICE=REPLICAS pairs.
        #[arg(required = true)]
        scales: Vec<String>,
    },
    /// Revert changes to a service's configuration (to its previous spec).
    Rollback {
        #[command(flatten)]
        wait: WaitFlags,
        /// Service name or ID.
        service: String,
    },
    /// Remove one or more services.
    #[command(alias = "remove")]
    Rm {
        /// Service names or IDs.
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Fetch the logs of a service or task.
    Logs(ServiceLogsArgs),
    /// Run a command in a running task.
    Exec(ServiceExecArgs),
}

#[derive(Debug, Args)]
pub struct ServiceLogsArgs {
    /// Follow log output (until Ctrl-C, or until every task ended).
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs ("all" for all).
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show logs since a timestamp (RFC 3339, e.g. 2024-05-01T12:00:00Z, or
    /// Unix seconds) or relative (e.g. 42m).
    #[arg(long)]
    pub since: Option<String>,
    /// Show timestamps.
    #[arg(short, long)]
    pub timestamps: bool,
    /// Do not truncate task IDs.
    #[arg(long)]
    pub no_trunc: bool,
    /// A service (name, ID or ID prefix) or a task (ID or ID prefix).
    pub target: String,
}

#[derive(Debug, Args)]
pub struct ServiceExecArgs {
    /// The task (ID or unique ID prefix) to run the command in.
    pub task: String,
    /// The command and its arguments (after `--`).
    // `allow_hyphen_values` is safe here: clap applies it to the positional
    // being filled, and TASK (which takes no hyphen values) comes first, so an
    // unknown flag before TASK is still refused; after TASK, as in `docker
    // exec`, every word is the command's.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ServiceUpdateArgs {
    /// Service image tag (container services).
    #[arg(long)]
    pub image: Option<String>,
    /// Replace the command: the program and its arguments, as one
    /// shell-quoted string (e.g. --command "serve --port 80").
    #[arg(long, allow_hyphen_values = true)]
    pub command: Option<String>,
    /// Replace the service command's arguments (one shell-quoted string).
    #[arg(long, allow_hyphen_values = true)]
    pub args: Option<String>,
    /// Add or update an environment variable (KEY=VALUE).
    #[arg(long)]
    pub env_add: Vec<String>,
    /// Remove an environment variable.
    #[arg(long)]
    pub env_rm: Vec<String>,
    /// Add or update a service label (KEY=VALUE).
    #[arg(long)]
    pub label_add: Vec<String>,
    /// Remove a service label.
    #[arg(long)]
    pub label_rm: Vec<String>,
    /// Add a placement constraint.
    #[arg(long)]
    pub constraint_add: Vec<String>,
    /// Remove a placement constraint.
    #[arg(long)]
    pub constraint_rm: Vec<String>,
    /// Add a placement preference, e.g. spread=node.labels.zone.
    #[arg(long)]
    pub placement_pref_add: Vec<String>,
    /// Remove a placement preference.
    #[arg(long)]
    pub placement_pref_rm: Vec<String>,
    /// Number of tasks.
    #[arg(long, allow_hyphen_values = true)]
    pub replicas: Option<String>,
    /// Force an update even if no changes require it: every task is
    /// replaced (rolling, under the update config). Also rebalances tasks
    /// over the nodes there are now.
    #[arg(long)]
    pub force: bool,
    /// Roll back to the previous specification.
    #[arg(long)]
    pub rollback: bool,
    /// Attach the service to a network: NAME, or name=NAME,alias=ALIAS.
    #[arg(long, value_name = "NETWORK")]
    pub network_add: Vec<String>,
    /// Detach the service from a network (name or ID).
    #[arg(long, value_name = "NETWORK")]
    pub network_rm: Vec<String>,
    /// Grant a secret: NAME, or source=NAME,target=FILE,uid=,gid=,mode=.
    #[arg(long, value_name = "SECRET")]
    pub secret_add: Vec<String>,
    /// Revoke a secret (by name).
    #[arg(long, value_name = "SECRET")]
    pub secret_rm: Vec<String>,
    /// Grant a config: NAME, or source=NAME,target=PATH,uid=,gid=,mode=.
    #[arg(long, value_name = "CONFIG")]
    pub config_add: Vec<String>,
    /// Revoke a config (by name).
    #[arg(long, value_name = "CONFIG")]
    pub config_rm: Vec<String>,
    /// How the service is found on its networks: vip or dnsrr.
    #[arg(long, value_name = "MODE")]
    pub endpoint_mode: Option<String>,
    /// Publish a port: [PUBLISHED:]TARGET[/tcp|udp], or
    /// published=N,target=N,protocol=tcp|udp,mode=ingress|host (repeatable).
    #[arg(long, value_name = "PORT")]
    pub publish_add: Vec<String>,
    /// Stop publishing a port: its published number (as `service ls`
    /// shows it) or target port, PORT[/tcp|udp] (repeatable).
    #[arg(long, value_name = "PORT")]
    pub publish_rm: Vec<String>,
    /// Add or replace a mount (same syntax as `create --mount`).
    #[arg(long, value_name = "MOUNT")]
    pub mount_add: Vec<String>,
    /// Remove the mount at this target path.
    #[arg(long, value_name = "TARGET")]
    pub mount_rm: Vec<String>,
    /// Mount the task's root filesystem read-only (`--read-only=false` undoes it).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub read_only: Option<bool>,
    /// User the task runs as: USER[:GROUP] (empty: the image's or the daemon's).
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,
    #[command(flatten)]
    pub task: TaskFlags,
    #[command(flatten)]
    pub autoscale: AutoscaleFlags,
    #[command(flatten)]
    pub wait: WaitFlags,
    /// Service name or ID.
    pub service: String,
}

/// `--autoscale-*`, shared by `service create` and `service update`: the
/// leader then sets the replica count within MIN..MAX from the tasks' load.
#[derive(Debug, Args, Default, Clone)]
pub struct AutoscaleFlags {
    /// Autoscale: fewest replicas.
    #[arg(long, allow_hyphen_values = true)]
    pub autoscale_min: Option<String>,
    /// Autoscale: most replicas.
    #[arg(long, allow_hyphen_values = true)]
    pub autoscale_max: Option<String>,
    /// Autoscale: target CPU per task, percent of its CPU reservation or else of one core (e.g. 60%).
    #[arg(long, allow_hyphen_values = true)]
    pub autoscale_cpu: Option<String>,
    /// Autoscale: target memory per task, percent of its memory limit or else reservation (e.g. 80%).
    #[arg(long, allow_hyphen_values = true)]
    pub autoscale_memory: Option<String>,
    /// Autoscale: target requests per second per task (e.g. 200).
    #[arg(long, allow_hyphen_values = true)]
    pub autoscale_rps: Option<String>,
    /// Autoscale: how long load must stay low before tasks are removed (default 5m).
    #[arg(long)]
    pub autoscale_scale_down_window: Option<String>,
    /// Stop autoscaling: the replica count stays where it is.
    #[arg(long, conflicts_with_all = [
        "autoscale_min", "autoscale_max", "autoscale_cpu", "autoscale_memory",
        "autoscale_rps", "autoscale_scale_down_window",
    ])]
    pub autoscale_off: bool,
}

/// Whether a command that changes a service waits for it to converge.
#[derive(Debug, Args, Clone, Copy)]
pub struct WaitFlags {
    /// Exit immediately instead of waiting for the service to converge.
    #[arg(short, long)]
    pub detach: bool,
    /// Suppress progress output.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Flags `service create` and `service update` share: they set the same
/// spec fields.
#[derive(Debug, Args, Default)]
pub struct TaskFlags {
    /// Maximum number of tasks per node (0: unlimited).
    #[arg(long)]
    pub replicas_max_per_node: Option<u64>,
    /// Reserve CPUs, e.g. 0.5.
    #[arg(long)]
    pub reserve_cpu: Option<String>,
    /// Reserve memory, e.g. 512M.
    #[arg(long)]
    pub reserve_memory: Option<String>,
    /// Limit CPUs, e.g. 1.5.
    #[arg(long)]
    pub limit_cpu: Option<String>,
    /// Limit memory, e.g. 1G.
    #[arg(long)]
    pub limit_memory: Option<String>,
    /// Restart when the task ends: none, on-failure or any (default any).
    #[arg(long)]
    pub restart_condition: Option<String>,
    /// Delay between restart attempts (default 5s).
    #[arg(long)]
    pub restart_delay: Option<String>,
    /// Maximum number of restarts before giving up (0: unlimited).
    #[arg(long)]
    pub restart_max_attempts: Option<u64>,
    /// Window used to evaluate the restart policy (e.g. 1m; default: the slot's whole life).
    #[arg(long)]
    pub restart_window: Option<String>,
    /// Time to wait before force-killing a task (default 10s).
    #[arg(long)]
    pub stop_grace_period: Option<String>,

    /// Command to run to check health (run by a shell; exit 0 is healthy).
    #[arg(long)]
    pub health_cmd: Option<String>,
    /// Time between running the check (default 30s).
    #[arg(long)]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (default 30s).
    #[arg(long)]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy (default 3).
    #[arg(long)]
    pub health_retries: Option<u64>,
    /// Start period for the task to initialize before failures count (default 0s).
    #[arg(long)]
    pub health_start_period: Option<String>,
    /// Disable any health check (including the image's).
    #[arg(long, conflicts_with = "health_cmd")]
    pub no_healthcheck: bool,

    /// Maximum number of tasks updated simultaneously (0 to update all at once; default 1).
    #[arg(long)]
    pub update_parallelism: Option<u64>,
    /// Delay between updates (default 0s).
    #[arg(long)]
    pub update_delay: Option<String>,
    /// Duration after each task update to monitor for failure (default 5s).
    #[arg(long)]
    pub update_monitor: Option<String>,
    /// Action on update failure: pause, continue or rollback (default pause).
    #[arg(long)]
    pub update_failure_action: Option<String>,
    /// Failure rate to tolerate during an update (default 0).
    #[arg(long)]
    pub update_max_failure_ratio: Option<f64>,
    /// Update order: start-first or stop-first (default stop-first).
    #[arg(long)]
    pub update_order: Option<String>,
    /// Maximum number of tasks rolled back simultaneously (0 to roll back all at once; default 1).
    #[arg(long)]
    pub rollback_parallelism: Option<u64>,
    /// Delay between task rollbacks (default 0s).
    #[arg(long)]
    pub rollback_delay: Option<String>,
    /// Duration after each task rollback to monitor for failure (default 5s).
    #[arg(long)]
    pub rollback_monitor: Option<String>,
    /// Action on rollback failure: pause or continue (default pause).
    #[arg(long)]
    pub rollback_failure_action: Option<String>,
    /// Failure rate to tolerate during a rollback (default 0).
    #[arg(long)]
    pub rollback_max_failure_ratio: Option<f64>,
    /// Rollback order: start-first or stop-first (default stop-first).
    #[arg(long)]
    pub rollback_order: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServiceCreateArgs {
    /// Service name (default: a generated one).
    #[arg(long)]
    pub name: Option<String>,
    /// Number of tasks.
    #[arg(long, default_value = "1", allow_hyphen_values = true)]
    pub replicas: String,
    /// Set environment variables (KEY=VALUE, or KEY to copy it from this shell).
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Service labels (KEY=VALUE).
    #[arg(short, long = "label")]
    pub label: Vec<String>,
    /// Task runtime: "docker" runs IMAGE [CMD] [ARG…]; "process" runs CMD [ARG…].
    #[arg(long, default_value = "docker")]
    pub runtime: String,
    /// Service mode: replicated or global.
    #[arg(long, default_value = "replicated")]
    pub mode: String,
    /// Placement constraint, e.g. node.labels.zone==eu (repeatable).
    #[arg(long)]
    pub constraint: Vec<String>,
    /// Placement preference, e.g. spread=node.labels.zone (repeatable).
    #[arg(long)]
    pub placement_pref: Vec<String>,
    /// Network to attach to: NAME, or name=NAME,alias=ALIAS (repeatable).
    #[arg(long, value_name = "NETWORK")]
    pub network: Vec<String>,
    /// Grant a secret: NAME, or source=NAME,target=FILE,uid=,gid=,mode=
    /// (read at /run/secrets/TARGET; repeatable).
    #[arg(long, value_name = "SECRET")]
    pub secret: Vec<String>,
    /// Grant a config: NAME, or source=NAME,target=PATH,uid=,gid=,mode=
    /// (read at /NAME unless a target is given; repeatable).
    #[arg(long, value_name = "CONFIG")]
    pub config: Vec<String>,
    /// How the service is found on its networks: vip (default) or dnsrr.
    #[arg(long, value_name = "MODE")]
    pub endpoint_mode: Option<String>,
    /// Publish a port on every node (routing mesh) or, with mode=host, on
    /// the nodes running a task: [PUBLISHED:]TARGET[/tcp|udp], or
    /// published=N,target=N,protocol=tcp|udp,mode=ingress|host. Without a
    /// published number one is allocated from 30000-32767 (repeatable).
    #[arg(long, short = 'p', value_name = "PORT")]
    pub publish: Vec<String>,
    /// Attach a filesystem mount (repeatable): type=volume|bind|tmpfs,
    /// source=NAME|/HOST/PATH,target=/PATH[,readonly][,volume-driver=D]
    /// [,volume-opt=K=V][,volume-label=K=V][,tmpfs-size=64m][,tmpfs-mode=1777].
    #[arg(long, value_name = "MOUNT")]
    pub mount: Vec<String>,
    /// Mount the task's root filesystem read-only (`--read-only=false` undoes it).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub read_only: Option<bool>,
    /// User the task runs as: USER[:GROUP], names or IDs (process tasks:
    /// instead of the daemon's user).
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,
    #[command(flatten)]
    pub task: TaskFlags,
    #[command(flatten)]
    pub autoscale: AutoscaleFlags,
    #[command(flatten)]
    pub wait: WaitFlags,

    /// IMAGE [CMD] [ARG…] for containers, CMD [ARG…] for processes.
    // Docker's rule: the flags of `create` end at the first positional, and
    // everything after it belongs to the task's command (`trailing_var_arg`).
    // No `allow_hyphen_values`: it would take an unknown flag *before* the
    // image as the image itself (`--replicass` became a service). An image
    // or program that does start with '-' still goes after `--`.
    #[arg(trailing_var_arg = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Where the node keeps its certificates, Raft store and task state.
    #[arg(long, default_value = "/var/lib/shoal")]
    pub data_dir: PathBuf,
    /// Unix socket to serve the local API on (default: /run/shoal/shoal.sock
    /// as root, a per-user path otherwise).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Hostname this node reports (default: the system's).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Group (name or GID) whose members may use the socket, as dockerd's
    /// `docker` group; without it only the daemon's user can.
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
    /// Also serve the Docker Engine API (swarm subset) for the `docker` CLI:
    /// unix:///PATH or tcp://127.0.0.1:PORT (loopback only). Off by default.
    #[arg(long, value_name = "ADDR")]
    pub docker_api: Option<shoal_docker_api::Listen>,
}

#[derive(Debug, Subcommand)]
pub enum SwarmCommand {
    /// Initialize a swarm with this node as its first manager.
    Init {
        /// Advertised address (IP[:PORT]).
        #[arg(long, default_value = "")]
        advertise_addr: String,
        /// Listen address (IP:PORT).
        #[arg(long, default_value = "0.0.0.0:2377")]
        listen_addr: String,
        /// Force create a new cluster from this manager's current state, as
        /// its only manager (recovery after losing quorum).
        #[arg(long)]
        force_new_cluster: bool,
        /// Raft heartbeat interval (e.g. 100ms).
        #[arg(long, value_parser = shoal_proto::syntax::parse_duration)]
        raft_heartbeat: Option<std::time::Duration>,
        /// Minimum Raft election timeout (e.g. 300ms); the maximum is 1.5 times it.
        #[arg(long, value_parser = shoal_proto::syntax::parse_duration)]
        raft_election_timeout: Option<std::time::Duration>,
        /// Raft log entries between snapshots.
        #[arg(long)]
        snapshot_interval: Option<u64>,
        /// How often agents heartbeat (a node is Down after three missed).
        #[arg(long, value_parser = shoal_proto::syntax::parse_duration)]
        dispatcher_heartbeat: Option<std::time::Duration>,
        /// Enable manager autolocking: a restarted manager needs the unlock
        /// key (`swarm unlock`) before it serves.
        #[arg(long)]
        autolock: bool,
        /// Address pool (CIDR) that overlay networks without --subnet are
        /// carved from (repeatable; default 10.0.0.0/8).
        #[arg(long, value_name = "CIDR")]
        default_addr_pool: Vec<String>,
        /// Prefix length of the subnets carved from the pools (default 24).
        #[arg(long, value_name = "N")]
        default_addr_pool_mask_length: Option<u32>,
        #[command(flatten)]
        provisioning: ProvisioningFlags,
    },
    /// Join a swarm as a node.
    Join {
        /// Token for entry into the swarm.
        #[arg(long)]
        token: String,
        /// Advertised address (IP[:PORT]).
        #[arg(long, default_value = "")]
        advertise_addr: String,
        /// Listen address (IP:PORT).
        #[arg(long, default_value = "")]
        listen_addr: String,
        /// A manager's address, HOST[:PORT].
        manager_addr: String,
    },
    /// Manage join tokens.
    JoinToken {
        /// Only display the token.
        #[arg(short, long)]
        quiet: bool,
        /// Rotate the join token.
        #[arg(long)]
        rotate: bool,
        /// worker or manager.
        role: TokenRole,
    },
    /// Update the swarm's settings.
    Update {
        /// How often agents heartbeat (a node is Down after three missed), e.g. 1s.
        #[arg(long, value_parser = shoal_proto::syntax::parse_duration)]
        dispatcher_heartbeat: Option<std::time::Duration>,
        /// Dead tasks kept per slot for `service ps`.
        #[arg(long)]
        task_history_limit: Option<u64>,
        /// Lifetime of node certificates, e.g. 2160h (at least 1h); nodes
        /// renew at 50–80 % of it.
        #[arg(long, value_parser = shoal_proto::syntax::parse_duration)]
        cert_expiry: Option<std::time::Duration>,
        /// Change manager autolocking (`--autolock` alone means true).
        #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
        autolock: Option<bool>,
        #[command(flatten)]
        provisioning: ProvisioningFlags,
        /// Allow bind mounts only from this host path or below it
        /// (repeatable; replaces the list). Default: any path, as Docker.
        #[arg(long, value_name = "PATH")]
        bind_mount_prefix: Vec<String>,
        /// Allow bind mounts from any host path again.
        #[arg(long, conflicts_with = "bind_mount_prefix")]
        bind_mount_any: bool,
    },
    /// Display the swarm's settings and the machine hooks' recent calls
    /// (JSON; join tokens and keys are never shown).
    Inspect,
    /// Unlock a locked manager: reads the unlock key from the terminal or stdin.
    Unlock,
    /// Manage the unlock key.
    UnlockKey {
        /// Only display the key.
        #[arg(short, long)]
        quiet: bool,
        /// Rotate the unlock key.
        #[arg(long)]
        rotate: bool,
    },
    /// Display and rotate the root CA.
    Ca {
        /// Replace the root CA: every node gets a certificate of a new root
        /// (and new join tokens name it); the old root is dropped once every
        /// node holds one.
        #[arg(long)]
        rotate: bool,
        /// With --rotate: return once the rotation has started instead of
        /// waiting for every node.
        #[arg(short, long, requires = "rotate")]
        detach: bool,
        /// Suppress the progress output.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Leave the swarm.
    Leave {
        /// Force this node to leave the swarm, ignoring warnings.
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TokenRole {
    Worker,
    Manager,
}

pub use crate::template::Format;

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List nodes in the swarm.
    #[command(alias = "list")]
    Ls {
        /// Only display IDs.
        #[arg(short, long)]
        quiet: bool,
        /// Output format: table, json, or a Go template ('{{.Name}}',
        /// '{{json .}}', 'table {{.ID}}\t{{.Name}}').
        #[arg(long, default_value_t)]
        format: Format,
    },
    /// Display detailed information on one or more nodes.
    Inspect {
        /// Print the information in a human-friendly format.
        #[arg(long)]
        pretty: bool,
        /// Output format: json (unless --pretty), or a Go template over
        /// Docker's shape ('{{.Description.Hostname}}').
        #[arg(long, default_value = "json")]
        format: Format,
        /// Node IDs, ID prefixes or hostnames ("self" is this node).
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Promote one or more nodes to manager in the swarm.
    Promote {
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Demote one or more nodes from manager in the swarm.
    Demote {
        /// Demote even if the remaining managers would lose their quorum.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Update a node: availability, labels.
    Update {
        /// Availability: active, pause or drain.
        #[arg(long, value_enum)]
        availability: Option<AvailabilityArg>,
        /// Add or update a node label (KEY=VALUE or KEY).
        #[arg(long)]
        label_add: Vec<String>,
        /// Remove a node label if it exists.
        #[arg(long)]
        label_rm: Vec<String>,
        /// Node ID, ID prefix or hostname.
        node: String,
    },
    /// Remove one or more nodes from the swarm.
    #[command(alias = "remove")]
    Rm {
        /// Force remove a node from the swarm.
        #[arg(short, long)]
        force: bool,
        /// Node IDs, ID prefixes or hostnames.
        #[arg(required = true)]
        nodes: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AvailabilityArg {
    Active,
    Pause,
    Drain,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Output format: table, json, or a Go template ('{{.Name}}',
    /// '{{json .}}', 'table {{.ID}}\t{{.Name}}').
    #[arg(long, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Subcommand)]
pub enum StackCommand {
    /// Deploy a new stack or update an existing stack.
    #[command(alias = "up")]
    Deploy {
        /// Path to a Compose file; repeat to merge several, later ones win.
        #[arg(short = 'c', long = "compose-file", required = true)]
        compose_file: Vec<PathBuf>,
        /// Prune services that are no longer referenced.
        #[arg(long)]
        prune: bool,
        /// Do not wait for depends_on services before creating their
        /// dependents.
        #[arg(short, long)]
        detach: bool,
        /// Stack name.
        name: String,
    },
    /// List stacks.
    #[command(alias = "list")]
    Ls {
        /// Output format: table, json, or a Go template ('{{.Name}}',
        /// '{{json .}}', 'table {{.ID}}\t{{.Name}}').
        #[arg(long, default_value_t)]
        format: Format,
    },
    /// List the services in the stack.
    Services {
        /// Only display IDs.
        #[arg(short, long)]
        quiet: bool,
        /// Output format: table, json, or a Go template ('{{.Name}}',
        /// '{{json .}}', 'table {{.ID}}\t{{.Name}}').
        #[arg(long, default_value_t)]
        format: Format,
        /// Stack name.
        name: String,
    },
    /// List the tasks in the stack.
    Ps {
        /// Only display task IDs.
        #[arg(short, long)]
        quiet: bool,
        /// Do not truncate output.
        #[arg(long)]
        no_trunc: bool,
        /// Output format: table, json, or a Go template ('{{.Name}}',
        /// '{{json .}}', 'table {{.ID}}\t{{.Name}}').
        #[arg(long, default_value_t)]
        format: Format,
        /// Stack name.
        name: String,
    },
    /// Remove one or more stacks.
    #[command(aliases = ["remove", "down"])]
    Rm {
        /// Stack names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Output the final config file, after doing merges and interpolations.
    Config {
        /// Path to a Compose file; repeat to merge several, later ones win.
        #[arg(short = 'c', long = "compose-file", required = true)]
        compose_file: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create an overlay network.
    Create(NetworkCreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls {
        /// Only display IDs.
        #[arg(short, long)]
        quiet: bool,
        /// Do not truncate the output.
        #[arg(long)]
        no_trunc: bool,
        /// Output format: table, json, or a Go template ('{{.Name}}',
        /// '{{json .}}', 'table {{.ID}}\t{{.Name}}').
        #[arg(long, default_value_t)]
        format: Format,
    },
    /// Display detailed information on one or more networks, with who
    /// holds which address.
    Inspect {
        /// Output format: json, or a Go template over Docker's shape
        /// ('{{.Spec.Name}}', '{{json .}}').
        #[arg(long, default_value = "json")]
        format: Format,
        /// Network names or IDs.
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove one or more networks (refused while a service uses one).
    #[command(alias = "remove")]
    Rm {
        /// Network names or IDs.
        #[arg(required = true)]
        networks: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    /// Driver to manage the network (only overlay).
    #[arg(short, long, default_value = "overlay")]
    pub driver: String,
    /// Subnet in CIDR format (default: one from the swarm's address pools).
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// Gateway address of the subnet (default: its first address).
    #[arg(long, value_name = "IP")]
    pub gateway: Option<String>,
    /// Allocate task and VIP addresses from this part of the subnet (CIDR).
    #[arg(long, value_name = "CIDR")]
    pub ip_range: Option<String>,
    /// Restrict external access to the network.
    #[arg(long)]
    pub internal: bool,
    /// Accepted for Docker compatibility (shoal has no standalone containers).
    #[arg(long)]
    pub attachable: bool,
    /// Driver options, e.g. mtu=1400 (KEY=VALUE).
    #[arg(short, long = "opt", value_name = "KEY=VALUE")]
    pub opt: Vec<String>,
    /// Network labels (KEY=VALUE).
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Network name.
    pub name: String,
}

/// The machine hooks (`swarm init` and `swarm update`): the leader runs
/// them through `sh -c`, with JSON on stdin.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ProvisioningFlags {
    /// Command run when tasks stay pending for lack of CPU or memory; it
    /// gets the shortfall and the worker join token as JSON on stdin ("" turns it off).
    #[arg(long, value_name = "CMD")]
    pub node_provisioner: Option<String>,
    /// How long tasks stay pending for lack of resources before the
    /// provisioner runs (default 30s).
    #[arg(long, value_name = "DURATION", value_parser = shoal_proto::syntax::parse_duration)]
    pub node_provisioner_threshold: Option<std::time::Duration>,
    /// A hook still running after this long is killed (default 10m).
    #[arg(long, value_name = "DURATION", value_parser = shoal_proto::syntax::parse_duration)]
    pub node_provisioner_timeout: Option<std::time::Duration>,
    /// After a provisioner call, how long the new machine has to join
    /// before another call (default 3m).
    #[arg(long, value_name = "DURATION", value_parser = shoal_proto::syntax::parse_duration)]
    pub node_provisioner_cooldown: Option<std::time::Duration>,
    /// Command run for a worker that stayed without tasks for the idle
    /// window, after draining it; it gets the node (id, hostname, addr) as
    /// JSON on stdin ("" turns it off).
    #[arg(long, value_name = "CMD")]
    pub node_decommissioner: Option<String>,
    /// How long a worker stays without tasks before it is decommissioned
    /// (default 10m).
    #[arg(long, value_name = "DURATION", value_parser = shoal_proto::syntax::parse_duration)]
    pub node_idle_window: Option<std::time::Duration>,
    /// Decommissioning never leaves fewer Ready, active nodes than this
    /// (managers are never decommissioned).
    #[arg(long, value_name = "N")]
    pub node_floor: Option<u64>,
}

impl ProvisioningFlags {
    pub fn is_empty(&self) -> bool {
        self.node_provisioner.is_none()
            && self.node_provisioner_threshold.is_none()
            && self.node_provisioner_timeout.is_none()
            && self.node_provisioner_cooldown.is_none()
            && self.node_decommissioner.is_none()
            && self.node_idle_window.is_none()
            && self.node_floor.is_none()
    }
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Create a secret from a file or from standard input ("-").
    Create(ObjectCreateArgs),
    /// List secrets (never their data).
    #[command(alias = "list")]
    Ls(ObjectLsArgs),
    /// Display detailed information on one or more secrets (never their data).
    Inspect {
        /// Output format (inspect always prints JSON).
        #[arg(long, default_value = "json")]
        format: Format,
        /// Secret names or IDs.
        #[arg(required = true)]
        secrets: Vec<String>,
    },
    /// Remove one or more secrets (refused while a service uses one).
    #[command(alias = "remove")]
    Rm {
        /// Secret names or IDs.
        #[arg(required = true)]
        secrets: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Create a config from a file or from standard input ("-").
    Create(ObjectCreateArgs),
    /// List configs.
    #[command(alias = "list")]
    Ls(ObjectLsArgs),
    /// Display detailed information on one or more configs, with their data.
    Inspect {
        /// Output format (inspect always prints JSON).
        #[arg(long, default_value = "json")]
        format: Format,
        /// Config names or IDs.
        #[arg(required = true)]
        configs: Vec<String>,
    },
    /// Remove one or more configs (refused while a service uses one).
    #[command(alias = "remove")]
    Rm {
        /// Config names or IDs.
        #[arg(required = true)]
        configs: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct ObjectCreateArgs {
    /// Labels (KEY=VALUE).
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// The name.
    pub name: String,
    /// File to read the data from, or "-" for standard input.
    pub file: String,
}

#[derive(Debug, Args)]
pub struct ObjectLsArgs {
    /// Only display IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format.
    #[arg(long, default_value_t)]
    pub format: Format,
}
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// List every node's volumes (the engine's that shoal created, and
    /// process tasks' directories), as their agents last reported them.
    #[command(alias = "list")]
    Ls {
        /// Only volumes of this node (hostname or ID).
        #[arg(long)]
        node: Option<String>,
        /// Only display volume names.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Display a volume on each node that has it, as JSON.
    Inspect {
        /// Volume names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes from the nodes that have them (refused while a task uses one).
    #[command(alias = "remove")]
    Rm {
        /// Only on this node (hostname or ID).
        #[arg(long)]
        node: Option<String>,
        /// Volume names.
        #[arg(required = true)]
        names: Vec<String>,
    },
}
