//! From a loaded Compose [`Stack`] to shoal service specs: pure functions,
//! no I/O, so the mapping is tested field by field.
//!
//! Every service is named `STACK_SERVICE` and carries Docker's namespace
//! label on the service and on its tasks. What shoal applies goes into the
//! spec's fields (networks become attachments to `STACK_NET` overlay
//! networks, created by [`stack_networks`]' plan); what it does not have
//! yet is either *recorded* in `com.shoal.stack.*` service labels (
//! volumes, secrets, configs: the things a later release will create from
//! them) or *reported* beside the loader's own warnings (container
//! `entrypoint`, `user`, …).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use shoal_compose::{
    Condition, FailureAction, Healthcheck, RestartCondition, Runtime, ServiceDef, ServiceMode,
    Stack, UpdateConfig, UpdateOrder,
};
use shoal_proto::v1;

/// Docker's label naming the stack an object belongs to.
pub const NAMESPACE_LABEL: &str = "com.docker.stack.namespace";
/// Docker's label holding a container service's image as written.
pub const IMAGE_LABEL: &str = "com.docker.stack.image";
/// Volume mounts (`SOURCE:TARGET[:ro]`), recorded.
pub const VOLUMES_LABEL: &str = "com.shoal.stack.volumes";
/// Secrets and configs the service uses (stack-scoped names), recorded.
pub const SECRETS_LABEL: &str = "com.shoal.stack.secrets";
pub const CONFIGS_LABEL: &str = "com.shoal.stack.configs";

/// One service ready to deploy.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// The name in the Compose file (`web`).
    pub key: String,
    pub spec: v1::ServiceSpec,
    /// Compose keys of the services this one waits for, with the condition.
    pub depends_on: BTreeMap<String, Condition>,
}

/// Why a stack cannot be deployed at all (checked before anything changes).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConvertError {
    #[error("invalid stack name {0:?}: use letters, digits, '-' and '_', starting with a letter or digit (service names are STACK_SERVICE, at most 63 characters)")]
    StackName(String),
    #[error("service {service:?}: the service name {full:?} is longer than 63 characters: use a shorter stack or service name")]
    NameTooLong { service: String, full: String },
    #[error("service {0:?} has `build:` but no `image:`; shoal does not build images: build and push it, then set `image:`")]
    BuildOnly(String),
    #[error("service {service:?}: deploy.mode {mode} is not supported by shoal yet: use replicated (or global)")]
    Mode { service: String, mode: &'static str },
    #[error("service {service:?}: ports: {message}")]
    Port { service: String, message: String },
    #[error("network {network:?}: driver {driver:?} is not supported: shoal's stack networks are overlay networks (use `driver: overlay` or leave it out)")]
    NetworkDriver { network: String, driver: String },
    #[error("service {service:?}: the host network cannot be combined with other networks: a task on the node's own network has no overlay endpoint; attach it to `host` alone, or drop `host`")]
    HostAndOthers { service: String },
}

/// Docker's predefined network that means "the node's own network stack",
/// declared in Compose as `external: true` with `name: host`. A service on
/// it gets no overlay attachment at all: its tasks run in the node's network
/// namespace, as before networks existed and as Swarm does.
pub const HOST_NETWORK: &str = "host";

/// Is the Compose network `key` the node's own network?
fn is_host_network(stack: &Stack, key: &str) -> bool {
    stack
        .networks
        .get(key)
        .is_some_and(|d| d.external && d.name.as_deref().unwrap_or(key) == HOST_NETWORK)
}

/// A network the stack's services use: created unless external.
#[derive(Debug, Clone, PartialEq)]
pub struct StackNetwork {
    /// The Compose key (`frontend`).
    pub key: String,
    /// `external: true`: it must exist already, and is never removed.
    pub external: bool,
    /// The cluster name is `spec.name` (`STACK_KEY`, or its `name:`).
    pub spec: v1::NetworkSpec,
}

/// The networks the stack's services use (Docker creates only those, not
/// every declared one), in key order, as network specs labelled with the
/// stack's namespace. `default` is an ordinary network, `STACK_default`.
pub fn stack_networks(stack_name: &str, stack: &Stack) -> Result<Vec<StackNetwork>, ConvertError> {
    let used: std::collections::BTreeSet<&str> = stack
        .services
        .values()
        .flat_map(|s| s.networks.iter().map(|n| n.name.as_str()))
        .collect();
    let mut out = Vec::new();
    for key in used {
        if is_host_network(stack, key) {
            continue;
        }
        let def = stack.networks.get(key).cloned().unwrap_or_default();
        let driver = def.driver.clone().unwrap_or_default();
        if !def.external && !driver.is_empty() && driver != "overlay" {
            return Err(ConvertError::NetworkDriver {
                network: key.to_owned(),
                driver,
            });
        }
        let mut labels: HashMap<String, String> = def
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.insert(NAMESPACE_LABEL.to_owned(), stack_name.to_owned());
        let pool = def.ipam.first().cloned().unwrap_or_default();
        let ipam = pool.subnet.as_ref().map(|subnet| v1::IpamConfig {
            subnet: subnet.clone(),
            gateway: pool.gateway.clone().unwrap_or_default(),
            ip_range: pool.ip_range.clone().unwrap_or_default(),
        });
        out.push(StackNetwork {
            key: key.to_owned(),
            external: def.external,
            spec: v1::NetworkSpec {
                name: object_name(stack_name, key, def.name.as_ref(), def.external),
                labels,
                driver: "overlay".into(),
                internal: def.internal,
                attachable: def.attachable,
                ipam,
                driver_opts: def
                    .driver_opts
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            },
        });
    }
    Ok(out)
}

/// Checks a stack name the way the names it produces will be checked.
pub fn check_stack_name(name: &str) -> Result<(), ConvertError> {
    if shoal_proto::syntax::is_valid_stack_name(name) {
        Ok(())
    } else {
        Err(ConvertError::StackName(name.to_owned()))
    }
}

/// `STACK_SERVICE`, Docker's scoping of a stack's objects.
pub use shoal_proto::syntax::scoped;

/// Every service of `stack` as a spec, in file (name) order, plus the
/// option names shoal ignores beyond the loader's warnings (sorted,
/// de-duplicated). Fails, changing nothing, when one service cannot run.
pub fn convert(
    stack_name: &str,
    stack: &Stack,
) -> Result<(Vec<Planned>, Vec<String>), ConvertError> {
    check_stack_name(stack_name)?;
    let mut planned = Vec::new();
    let mut ignored = std::collections::BTreeSet::new();
    for (key, def) in &stack.services {
        let (spec, ignored_here) = service_spec(stack_name, key, def, stack)?;
        ignored.extend(ignored_here);
        planned.push(Planned {
            key: key.clone(),
            spec,
            depends_on: def.depends_on.clone(),
        });
    }
    Ok((planned, ignored.into_iter().collect()))
}

fn ms(d: Option<Duration>) -> u64 {
    d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn resources(r: &shoal_compose::Resources) -> Option<v1::Resources> {
    (r.nano_cpus != 0 || r.memory_bytes != 0).then_some(v1::Resources {
        nano_cpus: r.nano_cpus,
        memory_bytes: r.memory_bytes,
    })
}

fn healthcheck(h: &Healthcheck) -> v1::HealthCheck {
    v1::HealthCheck {
        test: h.test.clone(),
        interval_ms: ms(h.interval),
        timeout_ms: ms(h.timeout),
        retries: h.retries.unwrap_or(0),
        start_period_ms: ms(h.start_period),
    }
}

fn update_config(u: &UpdateConfig) -> v1::UpdateConfig {
    let mut out = v1::UpdateConfig {
        // Compose's (and Swarm's) default is one task at a time; 0 in the
        // proto means "all at once".
        parallelism: u.parallelism.unwrap_or(1),
        delay_ms: ms(u.delay),
        monitor_ms: ms(u.monitor),
        max_failure_ratio: u.max_failure_ratio.unwrap_or(0.0),
        ..Default::default()
    };
    out.set_failure_action(match u.failure_action {
        None | Some(FailureAction::Pause) => v1::UpdateFailureAction::Pause,
        Some(FailureAction::Continue) => v1::UpdateFailureAction::Continue,
        Some(FailureAction::Rollback) => v1::UpdateFailureAction::Rollback,
    });
    out.set_order(match u.order {
        None | Some(UpdateOrder::StopFirst) => v1::UpdateOrder::StopFirst,
        Some(UpdateOrder::StartFirst) => v1::UpdateOrder::StartFirst,
    });
    out
}

fn restart_policy(r: &shoal_compose::RestartPolicy) -> v1::RestartPolicy {
    let mut out = v1::RestartPolicy {
        delay_ms: ms(r.delay),
        delay_set: r.delay.is_some(),
        max_attempts: r.max_attempts.unwrap_or(0),
        window_ms: ms(r.window),
        ..Default::default()
    };
    out.set_condition(match r.condition {
        None | Some(RestartCondition::Any) => v1::RestartCondition::Any,
        Some(RestartCondition::OnFailure) => v1::RestartCondition::OnFailure,
        Some(RestartCondition::None) => v1::RestartCondition::None,
    });
    out
}

/// The cluster name of a stack network, secret, config or volume: its
/// `name:` when set, its key when external, else `STACK_KEY`.
fn object_name(stack_name: &str, key: &str, name: Option<&String>, external: bool) -> String {
    match name {
        Some(name) => name.clone(),
        None if external => key.to_owned(),
        None => scoped(stack_name, key),
    }
}

/// The cluster name of a stack's secret or config `key`.
fn file_object_name(
    stack_name: &str,
    key: &str,
    defs: &BTreeMap<String, shoal_compose::FileObjectDef>,
) -> String {
    let d = defs.get(key);
    object_name(
        stack_name,
        key,
        d.and_then(|d| d.name.as_ref()),
        d.is_some_and(|d| d.source == shoal_compose::FileSource::External),
    )
}

/// A service's use of a secret or config as the grant's file target; the
/// default target (the key, as Compose has it) is filled in here because
/// the cluster name is `STACK_KEY`.
fn file_target(r: &shoal_compose::FileRef) -> v1::FileTarget {
    v1::FileTarget {
        name: r.target.clone().unwrap_or_else(|| r.source.clone()),
        uid: r.uid.clone().unwrap_or_default(),
        gid: r.gid.clone().unwrap_or_default(),
        mode: r.mode.unwrap_or(0),
    }
}

/// A secret or config a stack declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackFile {
    pub key: String,
    /// The cluster name (`STACK_KEY`, its `name:`, or the key when external).
    pub name: String,
    pub secret: bool,
    pub source: shoal_compose::FileSource,
    /// Its labels and the stack's namespace label (so `stack rm` finds it).
    pub labels: HashMap<String, String>,
}

/// Every top-level secret and config of the stack, secrets first.
pub fn stack_files(stack_name: &str, stack: &Stack) -> Vec<StackFile> {
    let mut out = Vec::new();
    for (secret, defs) in [(true, &stack.secrets), (false, &stack.configs)] {
        for (key, def) in defs {
            let mut labels: HashMap<String, String> = def.labels.clone().into_iter().collect();
            labels.insert(NAMESPACE_LABEL.into(), stack_name.into());
            out.push(StackFile {
                key: key.clone(),
                name: file_object_name(stack_name, key, defs),
                secret,
                source: def.source.clone(),
                labels,
            });
        }
    }
    out
}

/// One service's spec and the options it uses that shoal ignores.
pub fn service_spec(
    stack_name: &str,
    key: &str,
    def: &ServiceDef,
    stack: &Stack,
) -> Result<(v1::ServiceSpec, Vec<String>), ConvertError> {
    let name = scoped(stack_name, key);
    if name.len() > shoal_proto::syntax::MAX_SERVICE_NAME {
        return Err(ConvertError::NameTooLong {
            service: key.to_owned(),
            full: name,
        });
    }
    let on_host = def
        .networks
        .iter()
        .filter(|n| is_host_network(stack, &n.name))
        .count();
    if on_host > 0 && def.networks.len() > on_host {
        return Err(ConvertError::HostAndOthers {
            service: key.to_owned(),
        });
    }
    let mut ignored: Vec<&str> = Vec::new();
    let mode = match def.mode {
        ServiceMode::Replicated => v1::ServiceMode::Replicated,
        ServiceMode::Global => v1::ServiceMode::Global,
        ServiceMode::ReplicatedJob | ServiceMode::GlobalJob => {
            return Err(ConvertError::Mode {
                service: key.to_owned(),
                mode: if def.mode == ServiceMode::ReplicatedJob {
                    "replicated-job"
                } else {
                    "global-job"
                },
            })
        }
    };

    let mut service_labels: HashMap<String, String> = def
        .deploy_labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut task_labels: HashMap<String, String> = def
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    service_labels.insert(NAMESPACE_LABEL.to_owned(), stack_name.to_owned());
    task_labels.insert(NAMESPACE_LABEL.to_owned(), stack_name.to_owned());

    let (runtime, image, command, args) = match def.runtime {
        Runtime::Process => ("process", String::new(), def.command_line(), Vec::new()),
        Runtime::Container => {
            let image = def
                .image
                .clone()
                .ok_or_else(|| ConvertError::BuildOnly(key.to_owned()))?;
            service_labels.insert(IMAGE_LABEL.to_owned(), image.clone());
            // A container keeps its image's ENTRYPOINT (TaskSpec has no
            // field to replace it): `command` replaces the image's CMD.
            if !def.entrypoint.is_empty() {
                ignored.push("entrypoint");
            }
            ("docker", image, def.command.clone(), Vec::new())
        }
    };

    // Recorded: what a later release creates or wires from these labels.
    let mut record = |label: &str, values: Vec<String>| {
        if !values.is_empty() {
            service_labels.insert(label.to_owned(), values.join(","));
        }
    };
    record(
        VOLUMES_LABEL,
        def.volumes
            .iter()
            .map(|m| {
                let source = m
                    .source
                    .as_ref()
                    .map(|s| {
                        let v = stack.volumes.get(s);
                        object_name(
                            stack_name,
                            s,
                            v.and_then(|d| d.name.as_ref()),
                            v.is_some_and(|d| d.external),
                        )
                    })
                    .unwrap_or_default();
                format!(
                    "{source}:{}{}",
                    m.target,
                    if m.read_only { ":ro" } else { "" }
                )
            })
            .collect(),
    );
    let files = |refs: &[shoal_compose::FileRef],
                 defs: &BTreeMap<String, shoal_compose::FileObjectDef>| {
        refs.iter()
            .map(|r| {
                let d = defs.get(&r.source);
                object_name(
                    stack_name,
                    &r.source,
                    d.and_then(|d| d.name.as_ref()),
                    d.is_some_and(|d| d.source == shoal_compose::FileSource::External),
                )
            })
            .collect::<Vec<_>>()
    };
    record(SECRETS_LABEL, files(&def.secrets, &stack.secrets));
    record(CONFIGS_LABEL, files(&def.configs, &stack.configs));

    // Reported: valid options with no place in a shoal spec yet.
    for (set, option) in [
        (!def.expose.is_empty(), "expose"),
        (def.stop_signal.is_some(), "stop_signal"),
        (def.working_dir.is_some(), "working_dir"),
        (def.hostname.is_some(), "hostname"),
        (!def.dns.is_empty(), "dns"),
        (
            def.healthcheck
                .as_ref()
                .is_some_and(|h| h.start_interval.is_some()),
            "start_interval",
        ),
    ] {
        if set {
            ignored.push(option);
        }
    }

    let placement = (!def.constraints.is_empty()
        || !def.preferences.is_empty()
        || def.max_replicas_per_node.is_some())
    .then(|| v1::Placement {
        constraints: def.constraints.clone(),
        preferences: def
            .preferences
            .iter()
            .map(|p| format!("spread={p}"))
            .collect(),
        max_replicas_per_node: def.max_replicas_per_node.unwrap_or(0),
    });
    let limits = resources(&def.limits);
    let reservations = resources(&def.reservations);
    let task_resources =
        (limits.is_some() || reservations.is_some()).then_some(v1::ResourceRequirements {
            limits,
            reservations,
        });

    let spec = v1::ServiceSpec {
        name,
        labels: service_labels,
        mode: mode as i32,
        replicas: match (def.mode, def.autoscale.as_ref()) {
            // An autoscaled service starts at `replicas` brought within its range.
            (ServiceMode::Replicated, Some(a)) => {
                def.replicas.unwrap_or(a.min).max(a.min).min(a.max)
            }
            (ServiceMode::Replicated, None) => def.replicas.unwrap_or(1),
            _ => 0,
        },
        task: Some(v1::TaskSpec {
            runtime: runtime.to_owned(),
            image,
            command,
            args,
            env: def
                .environment
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            labels: task_labels,
            stop_grace_period_ms: ms(def.stop_grace_period),
            placement,
            resources: task_resources,
            restart_policy: def.restart_policy.as_ref().map(restart_policy),
            healthcheck: def.healthcheck.as_ref().map(healthcheck),
            force_update: 0,
            // Grants by cluster name: the managers resolve them to IDs.
            secrets: def
                .secrets
                .iter()
                .map(|r| {
                    let name = file_object_name(stack_name, &r.source, &stack.secrets);
                    v1::SecretReference {
                        secret_id: name.clone(),
                        secret_name: name,
                        file: Some(file_target(r)),
                    }
                })
                .collect(),
            configs: def
                .configs
                .iter()
                .map(|r| {
                    let name = file_object_name(stack_name, &r.source, &stack.configs);
                    v1::ConfigReference {
                        config_id: name.clone(),
                        config_name: name,
                        // Compose's default config target is /<source>,
                        // the key, not the cluster name.
                        file: Some(v1::FileTarget {
                            name: r.target.clone().unwrap_or_else(|| format!("/{}", r.source)),
                            ..file_target(r)
                        }),
                    }
                })
                .collect(),
            // Cluster names; `stack deploy` swaps in the networks' IDs once
            // it has created them.
            networks: def
                .networks
                .iter()
                .filter(|n| !is_host_network(stack, &n.name))
                .map(|n| {
                    let network = stack.networks.get(&n.name);
                    v1::NetworkAttachmentConfig {
                        target: object_name(
                            stack_name,
                            &n.name,
                            network.and_then(|d| d.name.as_ref()),
                            network.is_some_and(|d| d.external),
                        ),
                        aliases: n.aliases.clone(),
                    }
                })
                .collect(),
            mounts: def
                .volumes
                .iter()
                .map(|m| compose_mount(stack, stack_name, m))
                .collect(),
            read_only: def.read_only,
            user: def.user.clone().unwrap_or_default(),
        }),
        update_config: def.update_config.as_ref().map(update_config),
        rollback_config: def.rollback_config.as_ref().map(update_config),
        endpoint: endpoint(key, def)?,
        autoscale: def.autoscale.as_ref().map(autoscale),
    };
    Ok((spec, ignored.into_iter().map(str::to_owned).collect()))
}

/// `endpoint_mode` and `ports:` (every one published, as Docker does).
fn endpoint(key: &str, def: &ServiceDef) -> Result<Option<v1::EndpointSpec>, ConvertError> {
    let ports = def
        .ports
        .iter()
        .map(crate::commands::service::ports::to_port_config)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|message| ConvertError::Port {
            service: key.to_owned(),
            message,
        })?;
    if def.endpoint_mode.is_none() && ports.is_empty() {
        return Ok(None);
    }
    Ok(Some(v1::EndpointSpec {
        mode: match def.endpoint_mode {
            Some(shoal_compose::EndpointMode::Dnsrr) => v1::ResolutionMode::Dnsrr,
            _ => v1::ResolutionMode::Vip,
        } as i32,
        ports,
    }))
}

/// A Compose mount as the task's: named volumes get their stack-scoped
/// name (`STACK_vol`, or `name:`/the key when external) and the top-level
/// definition's driver, options and labels.
fn compose_mount(
    stack: &shoal_compose::Stack,
    stack_name: &str,
    m: &shoal_compose::Mount,
) -> v1::Mount {
    let mut out = v1::Mount {
        target: m.target.clone(),
        readonly: m.read_only,
        tmpfs_size: m.tmpfs_size.unwrap_or(0),
        tmpfs_mode: m.tmpfs_mode.unwrap_or(0),
        ..Default::default()
    };
    match m.kind {
        shoal_compose::MountKind::Volume => {
            out.r#type = v1::MountType::Volume as i32;
            if let Some(key) = &m.source {
                let def = stack.volumes.get(key);
                out.source = object_name(
                    stack_name,
                    key,
                    def.and_then(|d| d.name.as_ref()),
                    def.is_some_and(|d| d.external),
                );
                if let Some(def) = def {
                    out.volume_driver = def.driver.clone().unwrap_or_default();
                    out.volume_opts = def.driver_opts.clone().into_iter().collect();
                    out.volume_labels = def.labels.clone().into_iter().collect();
                }
            }
        }
        shoal_compose::MountKind::Bind => {
            out.r#type = v1::MountType::Bind as i32;
            out.source = m.source.clone().unwrap_or_default();
        }
        shoal_compose::MountKind::Tmpfs => out.r#type = v1::MountType::Tmpfs as i32,
    }
    out
}

/// `x-shoal-autoscale` → the stored policy (what `--autoscale-*` set).
fn autoscale(a: &shoal_compose::Autoscale) -> v1::AutoscalePolicy {
    v1::AutoscalePolicy {
        min: a.min,
        max: a.max,
        cpu_percent: a.cpu_percent.unwrap_or(0.0),
        memory_percent: a.memory_percent.unwrap_or(0.0),
        rps: a.rps.unwrap_or(0.0),
        scale_down_window_ms: a.scale_down_window.map(|d| d.as_millis() as u64),
        ..Default::default()
    }
}

/// Whether two specs ask for the same thing: equal once a present-but-empty
/// sub-message is read as absent (a server may fill defaults in either
/// form). Labels and env compare as sets/maps, as the proto types do.
pub fn same_spec(a: &v1::ServiceSpec, b: &v1::ServiceSpec) -> bool {
    normalized(a) == normalized(b)
}

fn normalized(spec: &v1::ServiceSpec) -> v1::ServiceSpec {
    fn none_if_default<T: Default + PartialEq>(v: Option<T>) -> Option<T> {
        v.filter(|v| *v != T::default())
    }
    let mut spec = spec.clone();
    if let Some(task) = spec.task.as_mut() {
        task.placement = none_if_default(task.placement.take());
        task.resources = none_if_default(task.resources.take()).map(|mut r| {
            r.limits = none_if_default(r.limits.take());
            r.reservations = none_if_default(r.reservations.take());
            r
        });
        task.healthcheck = none_if_default(task.healthcheck.take());
        // env order carries no meaning.
        task.env.sort();
    }
    spec.task = none_if_default(spec.task.take());
    spec
}

#[cfg(test)]
mod tests;
