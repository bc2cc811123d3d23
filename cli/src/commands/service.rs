//! `shoal service create | ls | ps | inspect | update | scale | rollback | rm`.
//! `create`, `update`, `scale` and `rollback` wait for the service to
//! converge and show progress ([`progress`]) unless `-d`.
//!
//! # Layout
//! - [`flags`]: spec fields shared by `create` and `update`.
//! - [`networks`]: `--network`, `--network-add|rm`, `--endpoint-mode`.
//! - [`grants`]: `--secret`, `--config` and their `-add|-rm`.
//! - [`ports`]: `--publish`, `--publish-add|rm`, and how ports are shown.
//! - [`progress`]: waiting for convergence, with Docker's progress lines.
//! - [`autoscale`]: `--autoscale-*`, and refusing `scale` of an autoscaled service.

pub mod autoscale;
pub mod flags;
pub mod grants;
pub mod mounts;
pub mod networks;
pub mod ports;
pub mod progress;

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};
use shoal_proto::v1::control_client::ControlClient;
use shoal_proto::v1::{
    CreateServiceRequest, GetNetworkRequest, GetServiceRequest, ListServicesRequest,
    ListTasksRequest, Placement, RemoveServiceRequest, RestartCondition, Service, ServiceInfo,
    ServiceMode, ServiceSpec, TaskSpec, UpdateConfig, UpdateFailureAction, UpdateOrder,
    UpdateServiceRequest,
};
use tonic::transport::Channel;

use shoal_docker_api::mapping::objects::service_to_docker;

use crate::args::{Format, ServiceCommand, ServiceCreateArgs, ServiceUpdateArgs, WaitFlags};
use crate::client;
use crate::commands::listing;
use crate::output;

pub async fn run(host: Option<&str>, command: ServiceCommand) -> anyhow::Result<()> {
    let channel = client::connect(host).await?;
    let mut control = client::control(channel.clone());
    match command {
        ServiceCommand::Create(args) => {
            autoscale::warn(&args.autoscale);
            let wait = args.wait;
            let spec = spec_from_args(args)?;
            let service = control
                .create_service(CreateServiceRequest { spec: Some(spec) })
                .await?
                .into_inner();
            println!("{}", service.id);
            let name = name_of(Some(&service));
            progress::wait(
                &mut control,
                &service.id,
                &name,
                progress::Change::Create,
                wait,
            )
            .await?;
        }
        ServiceCommand::Ls {
            quiet,
            format,
            local,
        } => {
            let mut services = control
                .list_services(ListServicesRequest { local })
                .await?
                .into_inner()
                .services;
            services.sort_by_key(|s| name_of(s.service.as_ref()));
            listing::print_services(&services, quiet, format)?;
        }
        ServiceCommand::Ps {
            quiet,
            no_trunc,
            format,
            services,
        } => {
            let mut tasks = Vec::new();
            for service in &services {
                tasks.extend(
                    control
                        .list_tasks(ListTasksRequest {
                            service: service.clone(),
                            node: String::new(),
                        })
                        .await?
                        .into_inner()
                        .tasks,
                );
            }
            listing::print_tasks(&tasks, quiet, no_trunc, format)?;
        }
        ServiceCommand::Inspect { format, services } => {
            let mut found = Vec::new();
            for service in services {
                let info = get(&mut control, &service).await?;
                let id = info
                    .service
                    .as_ref()
                    .map(|s| s.id.clone())
                    .unwrap_or_default();
                let tasks = control
                    .list_tasks(ListTasksRequest {
                        service: id,
                        node: String::new(),
                    })
                    .await?
                    .into_inner()
                    .tasks;
                found.push((info, tasks));
            }
            if let Format::Template { text, .. } = &format {
                // **Decision:** a template reads Docker's shape as the Docker
                // API's one mapping makes it (`service_to_docker`, what
                // `docker service inspect` reads through `--docker-api`), so
                // `{{.Spec.TaskTemplate.ContainerSpec.Image}}` and `{{json .}}`
                // print what Docker's would. The default JSON below keeps
                // shoal's own additions (autoscaling, task addresses), for
                // which Docker's types have no place.
                let docker: Vec<Value> = found
                    .iter()
                    .filter_map(|(info, _)| {
                        let service = info.service.as_ref()?;
                        Some(serde_json::to_value(service_to_docker(
                            service,
                            Some((info.running_tasks, info.desired_tasks)),
                        )))
                    })
                    .collect::<Result<_, _>>()?;
                print!("{}", crate::template::render_each(text, &docker)?);
                return Ok(());
            }
            let array: Vec<Value> = found
                .iter()
                .map(|(info, tasks)| {
                    let mut value = inspect_json(info);
                    value["TaskAddresses"] = task_addresses(tasks);
                    value
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&array)?);
        }
        ServiceCommand::Update(args) if args.rollback => {
            rollback(&mut control, &args.service, args.wait).await?
        }
        ServiceCommand::Update(args) => {
            autoscale::warn(&args.autoscale);
            let info = get(&mut control, &args.service).await?;
            let service = info.service.unwrap_or_default();
            let mut spec = apply_update(service.spec.clone().unwrap_or_default(), &args)?;
            // The spec holds network IDs: resolve the names to detach.
            let mut remove = Vec::new();
            for network in &args.network_rm {
                let found = control
                    .get_network(GetNetworkRequest {
                        network: network.clone(),
                    })
                    .await?
                    .into_inner();
                let id = found.network.unwrap_or_default().id;
                let attached = spec
                    .task
                    .as_ref()
                    .is_some_and(|t| t.networks.iter().any(|n| n.target == id));
                if !attached {
                    anyhow::bail!(
                        "invalid --network-rm {network}: service {} is not attached to it",
                        args.service
                    );
                }
                remove.push(id);
            }
            networks::apply_update(
                &mut spec,
                &remove,
                &args.network_add,
                args.endpoint_mode.as_deref(),
            )?;
            grants::apply_update(
                &mut spec,
                &args.secret_add,
                &args.secret_rm,
                &args.config_add,
                &args.config_rm,
            )?;
            ports::apply_update(
                &mut spec,
                service
                    .endpoint
                    .as_ref()
                    .map(|e| e.ports.as_slice())
                    .unwrap_or(&[]),
                &args.publish_add,
                &args.publish_rm,
            )?;
            control
                .update_service(UpdateServiceRequest {
                    service: service.id.clone(),
                    spec: Some(spec),
                    expected_spec_version: service.spec_version,
                    rollback: false,
                })
                .await?;
            println!("{}", args.service);
            progress::wait(
                &mut control,
                &service.id,
                &args.service,
                progress::Change::Update,
                args.wait,
            )
            .await?;
        }
        ServiceCommand::Rollback { wait, service } => {
            rollback(&mut control, &service, wait).await?
        }
        ServiceCommand::Scale { wait, scales } => {
            // Parse every pair before changing anything.
            let mut parsed = Vec::new();
            for pair in &scales {
                let (name, replicas) = pair.split_once('=').ok_or_else(|| {
                    anyhow::anyhow!(
                        "invalid scale specifier {pair:?}: expected SERVICE=REPLICAS, e.g. web=3"
                    )
                })?;
                parsed.push((name.to_string(), parse_replicas(replicas)?));
            }
            let mut found = Vec::new();
            for (name, replicas) in parsed {
                let info = get(&mut control, &name).await?;
                // Refused before anything changes, as a bad name is.
                let spec = info.service.as_ref().and_then(|s| s.spec.as_ref());
                if let Some(refusal) = spec.and_then(|s| autoscale::refuse_manual_scale(s, &name)) {
                    anyhow::bail!(refusal);
                }
                found.push((info, name, replicas));
            }
            for (info, name, replicas) in found {
                let service = info.service.unwrap_or_default();
                let mut spec = service.spec.clone().unwrap_or_default();
                if spec.mode() != ServiceMode::Replicated {
                    anyhow::bail!("{name}: scale can only be used with replicated mode");
                }
                if let Some(refusal) = autoscale::refuse_manual_scale(&spec, &name) {
                    anyhow::bail!(refusal);
                }
                spec.replicas = replicas;
                control
                    .update_service(UpdateServiceRequest {
                        service: service.id.clone(),
                        spec: Some(spec),
                        expected_spec_version: service.spec_version,
                        rollback: false,
                    })
                    .await?;
                println!("{name} scaled to {replicas}");
                progress::wait(
                    &mut control,
                    &service.id,
                    &name,
                    progress::Change::Update,
                    wait,
                )
                .await?;
            }
        }
        ServiceCommand::Logs(args) => return super::logs::logs(channel, args).await,
        ServiceCommand::Exec(args) => return super::logs::exec(channel, args).await,
        ServiceCommand::Rm { services } => {
            // Every name must resolve before anything is removed.
            let mut ids = Vec::new();
            for service in &services {
                let info = get(&mut control, service).await?;
                ids.push((info.service.unwrap_or_default().id, service.clone()));
            }
            for (id, name) in ids {
                control
                    .remove_service(RemoveServiceRequest { service: id })
                    .await?;
                println!("{name}");
            }
        }
    }
    Ok(())
}

/// `service rollback` and `service update --rollback`: the previous spec
/// becomes the spec, rolled out under the rollback config.
async fn rollback(
    control: &mut ControlClient<Channel>,
    service: &str,
    wait: WaitFlags,
) -> anyhow::Result<()> {
    let current = get(control, service).await?.service.unwrap_or_default();
    control
        .update_service(UpdateServiceRequest {
            service: current.id.clone(),
            spec: None,
            expected_spec_version: current.spec_version,
            rollback: true,
        })
        .await?;
    println!("{service}");
    progress::wait(
        control,
        &current.id,
        service,
        progress::Change::Rollback,
        wait,
    )
    .await?;
    Ok(())
}

async fn get(control: &mut ControlClient<Channel>, service: &str) -> anyhow::Result<ServiceInfo> {
    Ok(control
        .get_service(GetServiceRequest {
            service: service.to_string(),
        })
        .await?
        .into_inner())
}

fn name_of(service: Option<&Service>) -> String {
    service
        .and_then(|s| s.spec.as_ref())
        .map(|s| s.name.clone())
        .unwrap_or_default()
}

/// A service's spec with `service update`'s changes applied. Every flag is
/// parsed before anything is sent, so a bad one changes nothing.
pub fn apply_update(
    mut spec: ServiceSpec,
    args: &ServiceUpdateArgs,
) -> anyhow::Result<ServiceSpec> {
    let command = args
        .command
        .as_deref()
        .map(|c| split_words("--command", c))
        .transpose()?;
    let task_args = args
        .args
        .as_deref()
        .map(|c| split_words("--args", c))
        .transpose()?;
    let labels = key_values(&args.label_add, "--label-add")?;
    let replicas = args.replicas.as_deref().map(parse_replicas).transpose()?;
    if replicas.is_some() && !autoscale::given(&args.autoscale) {
        if let Some(refusal) = autoscale::refuse_manual_scale(&spec, &args.service) {
            anyhow::bail!(refusal);
        }
    }
    // Parsed before anything else changes; applied last, so that the count
    // it brings into range is the final one.
    let mut with_policy = spec.clone();
    autoscale::apply(&mut with_policy, &args.autoscale, replicas.is_some())?;
    flags::apply(&mut spec, &args.task)?;
    mounts::apply_update(
        &mut spec,
        &args.mount_rm,
        &args.mount_add,
        args.read_only,
        args.user.as_deref(),
    )?;
    let task = spec.task.get_or_insert_with(Default::default);
    if let Some(image) = &args.image {
        if task.runtime == "process" {
            anyhow::bail!(
                "--image applies to container services; {} runs a process (change it with --command)",
                spec.name
            );
        }
        task.image = image.clone();
    }
    if let Some(command) = command {
        if command.is_empty() && task.runtime == "process" {
            anyhow::bail!("invalid --command \"\": a process service needs a command");
        }
        task.command = command;
    }
    if let Some(task_args) = task_args {
        task.args = task_args;
    }
    for key in &args.env_rm {
        task.env
            .retain(|e| e.split('=').next() != Some(key.as_str()));
    }
    for entry in &args.env_add {
        let (key, _) = entry
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| anyhow::anyhow!("invalid --env-add {entry:?}: expected KEY=VALUE"))?;
        task.env.retain(|e| e.split('=').next() != Some(key));
        task.env.push(entry.clone());
    }
    if args.force {
        task.force_update += 1;
    }
    for key in &args.label_rm {
        spec.labels.remove(key);
    }
    for (key, value) in labels {
        spec.labels.insert(key, value);
    }
    if !args.constraint_add.is_empty()
        || !args.constraint_rm.is_empty()
        || !args.placement_pref_add.is_empty()
        || !args.placement_pref_rm.is_empty()
    {
        let placement = spec
            .task
            .get_or_insert_with(Default::default)
            .placement
            .get_or_insert_with(Default::default);
        placement
            .constraints
            .retain(|c| !args.constraint_rm.contains(c));
        for constraint in &args.constraint_add {
            if !placement.constraints.contains(constraint) {
                placement.constraints.push(constraint.clone());
            }
        }
        placement
            .preferences
            .retain(|p| !args.placement_pref_rm.contains(p));
        for preference in &args.placement_pref_add {
            if !placement.preferences.contains(preference) {
                placement.preferences.push(preference.clone());
            }
        }
    }
    if let Some(replicas) = replicas {
        spec.replicas = replicas;
    }
    autoscale::apply(&mut spec, &args.autoscale, replicas.is_some())?;
    Ok(spec)
}

/// Splits a flag's value into words as a POSIX shell would.
fn split_words(flag: &str, text: &str) -> anyhow::Result<Vec<String>> {
    shoal_proto::syntax::split_command(text)
        .map_err(|e| anyhow::anyhow!("invalid {flag} {text:?}: {e}"))
}

/// `--replicas` and `scale` values: whole numbers, 0 or more.
pub fn parse_replicas(text: &str) -> anyhow::Result<u64> {
    text.trim().parse::<u64>().map_err(|_| {
        anyhow::anyhow!("invalid replicas value {text:?}: expected a whole number, 0 or more")
    })
}

fn key_values(entries: &[String], flag: &str) -> anyhow::Result<HashMap<String, String>> {
    entries
        .iter()
        .map(|entry| match entry.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(anyhow::anyhow!(
                "invalid {flag} {entry:?}: expected KEY=VALUE"
            )),
        })
        .collect()
}

/// Builds the spec from `service create`'s flags. The manager validates it
/// again; checks here only make the CLI's own parsing errors precise.
pub fn spec_from_args(args: ServiceCreateArgs) -> anyhow::Result<ServiceSpec> {
    let replicas = parse_replicas(&args.replicas)?;
    let mode = match args.mode.as_str() {
        "replicated" => ServiceMode::Replicated,
        "global" => ServiceMode::Global,
        other => anyhow::bail!("invalid --mode {other:?}: expected replicated or global"),
    };
    let mut env = Vec::new();
    for entry in &args.env {
        if entry.contains('=') {
            if entry.starts_with('=') {
                anyhow::bail!("invalid --env {entry:?}: expected KEY=VALUE");
            }
            env.push(entry.clone());
        } else {
            let value = std::env::var(entry).map_err(|_| {
                anyhow::anyhow!("invalid --env {entry:?}: expected KEY=VALUE, or the name of a variable set in this shell")
            })?;
            env.push(format!("{entry}={value}"));
        }
    }
    let labels = key_values(&args.label, "--label")?;
    let (image, command) = match args.runtime.as_str() {
        "process" => {
            if args.command.is_empty() {
                anyhow::bail!(
                    "a command is required: shoal service create --runtime process CMD [ARG…]"
                );
            }
            (String::new(), args.command.clone())
        }
        _ => {
            let mut parts = args.command.clone().into_iter();
            let image = parts.next().ok_or_else(|| {
                anyhow::anyhow!(
                    "an image is required: shoal service create IMAGE [CMD] [ARG…] \
                     (or --runtime process CMD [ARG…] for a plain process)"
                )
            })?;
            (image, parts.collect())
        }
    };
    let mut spec = ServiceSpec {
        name: args.name.unwrap_or_else(generated_name),
        labels: labels.clone(),
        mode: mode as i32,
        replicas,
        task: Some(TaskSpec {
            runtime: args.runtime,
            image,
            command,
            args: Vec::new(),
            env,
            labels,
            placement: Some(Placement {
                constraints: args.constraint.clone(),
                preferences: args.placement_pref.clone(),
                max_replicas_per_node: 0,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    flags::apply(&mut spec, &args.task)?;
    networks::apply_create(&mut spec, &args.network, args.endpoint_mode.as_deref())?;
    grants::apply_create(&mut spec, &args.secret, &args.config)?;
    ports::apply_create(&mut spec, &args.publish)?;
    mounts::apply_create(&mut spec, &args.mount, args.read_only, args.user.as_deref())?;
    autoscale::apply(&mut spec, &args.autoscale, false)?;
    Ok(spec)
}

/// A Docker-style random name, e.g. "brave_turing".
fn generated_name() -> String {
    const ADJECTIVES: &[&str] = &[
        "brave", "calm", "eager", "gentle", "happy", "keen", "lucid", "nimble", "quiet", "swift",
    ];
    const NAMES: &[&str] = &[
        "curie", "dijkstra", "hopper", "knuth", "lamport", "liskov", "lovelace", "ritchie",
        "thompson", "turing",
    ];
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as usize)
        .unwrap_or(0);
    format!(
        "{}_{}",
        ADJECTIVES[n % ADJECTIVES.len()],
        NAMES[(n / ADJECTIVES.len()) % NAMES.len()]
    )
}

/// The addresses of the service's live tasks (shoal's addition to Docker's
/// inspect): `[{"Task": "web.1", "ID", "Node", "NetworkID", "Addr"}]`.
fn task_addresses(tasks: &[shoal_proto::v1::TaskInfo]) -> Value {
    let mut out = Vec::new();
    for info in tasks {
        let Some(task) = info.task.as_ref() else {
            continue;
        };
        let state = task.status.as_ref().map(|s| s.state()).unwrap_or_default();
        if task.desired_state > shoal_proto::v1::TaskState::Running as i32
            && state > shoal_proto::v1::TaskState::Running
        {
            continue;
        }
        for attachment in &task.networks {
            for addr in &attachment.addresses {
                out.push(json!({
                    "Task": format!("{}.{}", task.service_name, task.slot),
                    "ID": task.id,
                    "Node": info.node_hostname,
                    "NetworkID": attachment.network_id,
                    "Addr": addr,
                }));
            }
        }
    }
    Value::Array(out)
}

/// One element of `service inspect`, shaped like Docker's.
pub fn inspect_json(info: &ServiceInfo) -> Value {
    let service = info.service.clone().unwrap_or_default();
    let meta = service.meta.unwrap_or_default();
    let spec_json = |spec: &ServiceSpec| {
        let task = spec.task.clone().unwrap_or_default();
        let labels: BTreeMap<_, _> = spec.labels.clone().into_iter().collect();
        let task_labels: BTreeMap<_, _> = task.labels.clone().into_iter().collect();
        let mode = match spec.mode() {
            ServiceMode::Replicated => json!({"Replicated": {"Replicas": spec.replicas}}),
            ServiceMode::Global => json!({"Global": {}}),
        };
        let update_config = |c: Option<&UpdateConfig>| {
            c.map(|c| {
                json!({
                    "Parallelism": c.parallelism,
                    "Delay": c.delay_ms * 1_000_000,
                    "FailureAction": match c.failure_action() {
                        UpdateFailureAction::Pause => "pause",
                        UpdateFailureAction::Continue => "continue",
                        UpdateFailureAction::Rollback => "rollback",
                    },
                    "Monitor": c.monitor_ms * 1_000_000,
                    "MaxFailureRatio": c.max_failure_ratio,
                    "Order": match c.order() {
                        UpdateOrder::StopFirst => "stop-first",
                        UpdateOrder::StartFirst => "start-first",
                    },
                })
            })
        };
        let resources = task.resources.unwrap_or_default();
        let placement = task.placement.clone().unwrap_or_default();
        let mut value = json!({
            "Name": spec.name,
            "Labels": labels,
            "TaskTemplate": {
                "Runtime": task.runtime,
                "ContainerSpec": {
                    "Image": task.image,
                    "Command": task.command,
                    "Args": task.args,
                    "Env": task.env,
                    "Labels": task_labels,
                    "StopGracePeriod": task.stop_grace_period_ms * 1_000_000,
                },
                "Resources": {
                    "Limits": {
                        "NanoCPUs": resources.limits.unwrap_or_default().nano_cpus,
                        "MemoryBytes": resources.limits.unwrap_or_default().memory_bytes,
                    },
                    "Reservations": {
                        "NanoCPUs": resources.reservations.unwrap_or_default().nano_cpus,
                        "MemoryBytes": resources.reservations.unwrap_or_default().memory_bytes,
                    },
                },
                "Placement": {
                    "Constraints": placement.constraints,
                    "Preferences": placement.preferences,
                    "MaxReplicas": placement.max_replicas_per_node,
                },
                "ForceUpdate": task.force_update,
                "Mounts": mounts::inspect(&task.mounts),
                "ReadOnly": task.read_only,
                "User": task.user,
                "Networks": task.networks.iter().map(|n| json!({
                    "Target": n.target,
                    "Aliases": n.aliases,
                })).collect::<Vec<_>>(),
            },
            "Mode": mode,
            "EndpointSpec": {
                "Mode": match spec.endpoint.as_ref().map(|e| e.mode()).unwrap_or_default() {
                    shoal_proto::v1::ResolutionMode::Vip => "vip",
                    shoal_proto::v1::ResolutionMode::Dnsrr => "dnsrr",
                },
                "Ports": ports::ports_json(spec.endpoint.as_ref().map(|e| e.ports.as_slice()).unwrap_or(&[])),
            },
        });
        // Docker's shape: references only, never data.
        let file = |f: Option<&shoal_proto::v1::FileTarget>| {
            let f = f.cloned().unwrap_or_default();
            json!({
                "Name": f.name,
                "UID": if f.uid.is_empty() { "0".to_string() } else { f.uid },
                "GID": if f.gid.is_empty() { "0".to_string() } else { f.gid },
                "Mode": if f.mode == 0 { 0o444 } else { f.mode },
            })
        };
        if !task.secrets.is_empty() {
            value["TaskTemplate"]["ContainerSpec"]["Secrets"] = task
                .secrets
                .iter()
                .map(|r| json!({"File": file(r.file.as_ref()), "SecretID": r.secret_id, "SecretName": r.secret_name}))
                .collect();
        }
        if !task.configs.is_empty() {
            value["TaskTemplate"]["ContainerSpec"]["Configs"] = task
                .configs
                .iter()
                .map(|r| json!({"File": file(r.file.as_ref()), "ConfigID": r.config_id, "ConfigName": r.config_name}))
                .collect();
        }
        if let Some(check) = task.healthcheck.as_ref() {
            value["TaskTemplate"]["ContainerSpec"]["Healthcheck"] = json!({
                "Test": check.test,
                "Interval": check.interval_ms * 1_000_000,
                "Timeout": check.timeout_ms * 1_000_000,
                "Retries": check.retries,
                "StartPeriod": check.start_period_ms * 1_000_000,
            });
        }
        if let Some(policy) = task.restart_policy.as_ref() {
            value["TaskTemplate"]["RestartPolicy"] = json!({
                "Condition": match policy.condition() {
                    RestartCondition::Any => "any",
                    RestartCondition::OnFailure => "on-failure",
                    RestartCondition::None => "none",
                },
                "Delay": policy.delay_ms * 1_000_000,
                "MaxAttempts": policy.max_attempts,
                "Window": policy.window_ms * 1_000_000,
            });
        }
        if let Some(c) = update_config(spec.update_config.as_ref()) {
            value["UpdateConfig"] = c;
        }
        if let Some(c) = update_config(spec.rollback_config.as_ref()) {
            value["RollbackConfig"] = c;
        }
        if let Some(p) = spec.autoscale.as_ref() {
            value["Autoscale"] = json!({
                "Min": p.min,
                "Max": p.max,
                "CPUPercent": p.cpu_percent,
                "MemoryPercent": p.memory_percent,
                "RPS": p.rps,
                "RPSStatus": (p.rps > 0.0)
                    .then_some(shoal_manager::autoscale::RPS_UNMEASURED),
                "ScaleDownWindow": p.scale_down_window_ms.unwrap_or(300_000) * 1_000_000,
                "ScaleUpWindow": p.scale_up_window_ms.unwrap_or(0) * 1_000_000,
            });
        }
        value
    };
    let mut value = json!({
        "ID": service.id,
        "Version": {"Index": meta.version},
        "CreatedAt": output::rfc3339(meta.created_at_ms),
        "UpdatedAt": output::rfc3339(meta.updated_at_ms),
        "Spec": spec_json(&service.spec.clone().unwrap_or_default()),
        "SpecVersion": service.spec_version,
        "ServiceStatus": {
            "RunningTasks": info.running_tasks,
            "DesiredTasks": info.desired_tasks,
        },
    });
    if let Some(previous) = service.previous_spec.as_ref() {
        value["PreviousSpec"] = spec_json(previous);
    }
    value["Endpoint"] = json!({
        "Spec": value["Spec"]["EndpointSpec"].clone(),
        "Ports": ports::ports_json(service.endpoint.as_ref().map(|e| e.ports.as_slice()).unwrap_or(&[])),
        "VirtualIPs": service
            .endpoint
            .iter()
            .flat_map(|e| &e.virtual_ips)
            .map(|v| json!({"NetworkID": v.network_id, "Addr": v.addr}))
            .collect::<Vec<_>>(),
    });
    if !service.autoscale_events.is_empty() {
        value["AutoscaleEvents"] = service
            .autoscale_events
            .iter()
            .map(|e| {
                json!({
                    "Time": output::rfc3339(e.at_ms),
                    "From": e.from,
                    "To": e.to,
                    "Message": e.message,
                })
            })
            .collect();
    }
    if let Some(status) = service.update_status.as_ref() {
        let mut update = json!({
            "State": shoal_proto::names::update_state(status.state()),
            "StartedAt": output::rfc3339(status.started_at_ms),
            "Message": status.message,
        });
        if status.completed_at_ms > 0 {
            update["CompletedAt"] = json!(output::rfc3339(status.completed_at_ms));
        }
        value["UpdateStatus"] = update;
    }
    value
}
