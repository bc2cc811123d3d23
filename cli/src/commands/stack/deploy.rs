//! `shoal stack deploy`: what to create, update and remove is decided by
//! [`plan`], a pure function of the converted stack and the services the
//! cluster already has; [`run`] carries the plan out through the control
//! API, layer by layer in `depends_on` order, waiting between layers.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use shoal_compose::Condition;
use shoal_proto::v1::control_client::ControlClient;
use shoal_proto::v1::{
    ConfigSpec, CreateConfigRequest, CreateNetworkRequest, CreateSecretRequest,
    CreateServiceRequest, GetServiceRequest, ListConfigsRequest, ListNetworksRequest,
    ListSecretsRequest, ListTasksRequest, RemoveServiceRequest, SecretSpec, Service, ServiceSpec,
    TaskState, UpdateServiceRequest,
};
use tonic::transport::Channel;

use super::convert::{self, scoped, Planned};

/// How long a layer waits for the services it depends on before the
/// deploy fails (the services already deployed stay).
const DEPENDENCY_TIMEOUT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Create(ServiceSpec),
    Update {
        id: String,
        expected_version: u64,
        spec: ServiceSpec,
    },
    /// The cluster already runs exactly this spec: nothing is sent, so its
    /// spec version (and its tasks) stay as they are.
    Unchanged {
        name: String,
    },
}

/// A dependency a layer waits for: the service's full name and the
/// strongest condition any service of the layer asks of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub service: String,
    pub condition: Condition,
    /// The full names of the services waiting, for the progress line.
    pub for_services: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Layer {
    pub waits: Vec<Wait>,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// (name, id) of the stack's services no longer in the files, removed
    /// first when pruning.
    pub remove: Vec<(String, String)>,
    pub layers: Vec<Layer>,
}

fn strength(c: Condition) -> u8 {
    match c {
        Condition::ServiceStarted => 0,
        Condition::ServiceHealthy => 1,
        Condition::ServiceCompletedSuccessfully => 2,
    }
}

/// Decides every change of a deploy. `order` is
/// [`shoal_compose::startup_order`]'s layers of Compose keys; `existing`
/// are the services that carry this stack's namespace label.
pub fn plan(
    stack_name: &str,
    planned: &[Planned],
    order: &[Vec<String>],
    existing: &[Service],
    prune: bool,
) -> Plan {
    let by_key: HashMap<&str, &Planned> = planned.iter().map(|p| (p.key.as_str(), p)).collect();
    let current: HashMap<&str, &Service> = existing
        .iter()
        .filter_map(|s| s.spec.as_ref().map(|spec| (spec.name.as_str(), s)))
        .collect();
    let mut out = Plan::default();
    if prune {
        let wanted: Vec<&str> = planned.iter().map(|p| p.spec.name.as_str()).collect();
        let mut remove: Vec<(String, String)> = current
            .iter()
            .filter(|(name, _)| !wanted.contains(name))
            .map(|(name, s)| ((*name).to_owned(), s.id.clone()))
            .collect();
        remove.sort();
        out.remove = remove;
    }
    for keys in order {
        let mut layer = Layer::default();
        let mut waits: BTreeMap<String, Wait> = BTreeMap::new();
        for key in keys {
            let Some(p) = by_key.get(key.as_str()) else {
                continue;
            };
            for (dep, condition) in &p.depends_on {
                let service = scoped(stack_name, dep);
                let wait = waits.entry(service.clone()).or_insert(Wait {
                    service,
                    condition: *condition,
                    for_services: Vec::new(),
                });
                if strength(*condition) > strength(wait.condition) {
                    wait.condition = *condition;
                }
                wait.for_services.push(p.spec.name.clone());
            }
            // Stack deploy has no --force: keep the service's force counter
            // so that a redeploy replaces tasks only when the file changed
            // (as docker stack deploy does).
            let existing = current.get(p.spec.name.as_str());
            let mut spec = p.spec.clone();
            if let (Some(task), Some(current_task)) = (
                spec.task.as_mut(),
                existing
                    .and_then(|s| s.spec.as_ref())
                    .and_then(|s| s.task.as_ref()),
            ) {
                task.force_update = current_task.force_update;
            }
            // An autoscaled service keeps the count its autoscaler chose
            // (brought within the file's range): the file's `replicas` is
            // only where a new service starts.
            let current_replicas = existing
                .and_then(|s| s.spec.as_ref())
                .filter(|s| s.autoscale.is_some())
                .map(|s| s.replicas);
            if let (Some(policy), Some(replicas)) = (spec.autoscale.as_ref(), current_replicas) {
                spec.replicas = replicas.max(policy.min).min(policy.max);
            }
            layer.actions.push(match existing {
                None => Action::Create(spec),
                Some(service)
                    if service
                        .spec
                        .as_ref()
                        .is_some_and(|s| convert::same_spec(s, &spec)) =>
                {
                    Action::Unchanged {
                        name: p.spec.name.clone(),
                    }
                }
                Some(service) => Action::Update {
                    id: service.id.clone(),
                    expected_version: service.spec_version,
                    spec,
                },
            });
        }
        layer.waits = waits.into_values().collect();
        out.layers.push(layer);
    }
    out
}

pub struct DeployArgs {
    pub files: Vec<PathBuf>,
    pub prune: bool,
    pub detach: bool,
    pub name: String,
}

/// Loads, converts and checks everything before the first call that
/// changes the cluster, then carries the plan out.
pub async fn run(host: Option<&str>, args: DeployArgs) -> anyhow::Result<()> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let stack = shoal_compose::load(&args.files, &env)?;
    let order = shoal_compose::startup_order(&stack)?;
    let (mut planned, ignored) = convert::convert(&args.name, &stack)?;
    let networks = convert::stack_networks(&args.name, &stack)?;
    for network in networks.iter().filter(|n| !n.external) {
        shoal_manager::network::spec::validate_name(&network.spec.name)
            .map_err(|e| anyhow::anyhow!("network {:?}: {e}", network.key))?;
        shoal_manager::network::spec::mtu(&network.spec)
            .map_err(|e| anyhow::anyhow!("network {:?}: {e}", network.key))?;
    }
    // The managers' own checks, run here on every service first: one bad
    // image must refuse the whole deploy, not stop it halfway. The managers
    // still check each spec they receive.
    for service in &planned {
        shoal_manager::spec::validate_service_spec(&service.spec)
            .map_err(|e| anyhow::anyhow!("service {:?}: {e}", service.key))?;
    }
    let mut warnings = stack.warnings.clone();
    warnings.extend(ignored.into_iter().map(|option| shoal_compose::Warning {
        path: option.clone(),
        option,
        at: shoal_compose::Location {
            file: String::new(),
            line: None,
        },
    }));
    if let Some(line) = shoal_compose::unsupported_options_line(&warnings) {
        eprintln!("{line}");
    }

    // Secrets' and configs' data is read before anything changes: a
    // missing file or variable refuses the whole deploy.
    let files = convert::stack_files(&args.name, &stack);
    let mut file_data = Vec::new();
    for file in &files {
        file_data.push(file_data_of(file, &env)?);
    }

    let mut control = crate::client::control(crate::client::connect(host).await?);
    create_files(&mut control, &files, file_data).await?;
    // Networks first, as docker stack deploy: external ones must exist
    // (checked before anything is created), the others are created when
    // missing and left as they are when present.
    let mut ids: HashMap<String, String> = control
        .list_networks(ListNetworksRequest {})
        .await?
        .into_inner()
        .networks
        .into_iter()
        .filter_map(|n| Some((n.spec?.name, n.id)))
        .collect();
    for network in networks.iter().filter(|n| n.external) {
        if !ids.contains_key(&network.spec.name) {
            anyhow::bail!(
                "network {:?} is declared as external, but could not be found: create it with `shoal network create {}` before the stack is deployed",
                network.spec.name,
                network.spec.name
            );
        }
    }
    for network in networks.iter().filter(|n| !n.external) {
        if ids.contains_key(&network.spec.name) {
            continue;
        }
        println!("Creating network {}", network.spec.name);
        let created = control
            .create_network(CreateNetworkRequest {
                spec: Some(network.spec.clone()),
            })
            .await?
            .into_inner();
        ids.insert(network.spec.name.clone(), created.id);
    }
    // The managers store network IDs: compare and send specs in that form.
    for service in &mut planned {
        for attachment in service
            .spec
            .task
            .iter_mut()
            .flat_map(|t| t.networks.iter_mut())
        {
            if let Some(id) = ids.get(&attachment.target) {
                attachment.target = id.clone();
            }
        }
    }
    let existing = super::objects::stack_services(&mut control, &args.name).await?;
    let existing: Vec<Service> = existing.into_iter().filter_map(|s| s.service).collect();
    let plan = plan(&args.name, &planned, &order, &existing, args.prune);

    for (name, id) in &plan.remove {
        println!("Removing service {name}");
        control
            .remove_service(RemoveServiceRequest {
                service: id.clone(),
            })
            .await?;
    }
    for layer in plan.layers {
        if !args.detach {
            for wait in &layer.waits {
                wait_for(&mut control, wait).await?;
            }
        }
        for action in layer.actions {
            match action {
                Action::Create(spec) => {
                    println!("Creating service {}", spec.name);
                    control
                        .create_service(CreateServiceRequest { spec: Some(spec) })
                        .await?;
                }
                Action::Update {
                    id,
                    expected_version,
                    spec,
                } => {
                    println!("Updating service {} (id: {id})", spec.name);
                    control
                        .update_service(UpdateServiceRequest {
                            service: id,
                            spec: Some(spec),
                            expected_spec_version: expected_version,
                            rollback: false,
                        })
                        .await?;
                }
                Action::Unchanged { .. } => {}
            }
        }
    }
    Ok(())
}

/// The data of a stack's secret or config: `None` for an external one.
fn file_data_of(
    file: &convert::StackFile,
    env: &HashMap<String, String>,
) -> anyhow::Result<Option<Vec<u8>>> {
    let kind = if file.secret { "secret" } else { "config" };
    let data = match &file.source {
        shoal_compose::FileSource::External => return Ok(None),
        shoal_compose::FileSource::File(path) => {
            crate::commands::secret::read_data(kind, &path.to_string_lossy())
                .map_err(|e| anyhow::anyhow!("{kind} {:?}: {e}", file.key))?
        }
        shoal_compose::FileSource::Environment(var) => env
            .get(var)
            .filter(|v| !v.is_empty())
            .map(|v| v.clone().into_bytes())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{kind} {:?} comes from environment variable {var}, which is not set: set it and deploy again",
                    file.key
                )
            })?,
        shoal_compose::FileSource::Content(text) => text.clone().into_bytes(),
    };
    Ok(Some(data))
}

/// Creates the stack's secrets and configs that do not exist yet, as
/// docker stack deploy does before the services; external ones must exist.
/// An existing one is left as it is: their data is immutable, so a changed
/// file needs a new name (rotation).
async fn create_files(
    control: &mut ControlClient<Channel>,
    files: &[convert::StackFile],
    data: Vec<Option<Vec<u8>>>,
) -> anyhow::Result<()> {
    if files.is_empty() {
        return Ok(());
    }
    let secrets: Vec<String> = control
        .list_secrets(ListSecretsRequest {})
        .await?
        .into_inner()
        .secrets
        .into_iter()
        .filter_map(|s| Some(s.spec?.name))
        .collect();
    let configs: Vec<String> = control
        .list_configs(ListConfigsRequest {})
        .await?
        .into_inner()
        .configs
        .into_iter()
        .filter_map(|c| Some(c.spec?.name))
        .collect();
    for (file, data) in files.iter().zip(&data) {
        let (kind, present) = if file.secret {
            ("secret", secrets.contains(&file.name))
        } else {
            ("config", configs.contains(&file.name))
        };
        if data.is_none() && !present {
            anyhow::bail!(
                "{kind} {:?} is declared as external, but could not be found: create it with `shoal {kind} create {} FILE` before the stack is deployed",
                file.name,
                file.name
            );
        }
    }
    for (file, data) in files.iter().zip(data) {
        let Some(data) = data else { continue };
        if file.secret && !secrets.contains(&file.name) {
            println!("Creating secret {}", file.name);
            control
                .create_secret(CreateSecretRequest {
                    spec: Some(SecretSpec {
                        name: file.name.clone(),
                        labels: file.labels.clone(),
                        data,
                        driver: String::new(),
                    }),
                })
                .await?;
        } else if !file.secret && !configs.contains(&file.name) {
            println!("Creating config {}", file.name);
            control
                .create_config(CreateConfigRequest {
                    spec: Some(ConfigSpec {
                        name: file.name.clone(),
                        labels: file.labels.clone(),
                        data,
                    }),
                })
                .await?;
        }
    }
    Ok(())
}

/// Polls until `wait.service` meets its condition. `service_healthy` waits
/// for every replica to run: agents report a task with a health check
/// RUNNING only once it passed (see docs/architecture.md, "Agent").
async fn wait_for(control: &mut ControlClient<Channel>, wait: &Wait) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut last_progress = String::new();
    let (goal, word) = match wait.condition {
        Condition::ServiceCompletedSuccessfully => ("completed successfully", "complete"),
        Condition::ServiceHealthy => ("healthy", "healthy"),
        Condition::ServiceStarted => ("running", "running"),
    };
    loop {
        let info = control
            .get_service(GetServiceRequest {
                service: wait.service.clone(),
            })
            .await?
            .into_inner();
        let desired = info.desired_tasks;
        let (complete, err) = slots(control, &wait.service).await?;
        let done = match wait.condition {
            Condition::ServiceCompletedSuccessfully => complete,
            _ => info.running_tasks,
        };
        if done >= desired {
            return Ok(());
        }
        let progress = format!(
            "Waiting for service {} to be {goal} (depends_on of {}): {done}/{desired} {word}{}",
            wait.service,
            wait.for_services.join(", "),
            if err.is_empty() {
                String::new()
            } else {
                format!(" (last error: {err})")
            }
        );
        if progress != last_progress {
            println!("{progress}");
            last_progress = progress;
        }
        if start.elapsed() > DEPENDENCY_TIMEOUT {
            anyhow::bail!(
                "service {} did not become {goal} within {}s, so {} were not deployed: \
                 see `shoal stack ps`, fix the service and deploy again (or deploy with -d not to wait)",
                wait.service,
                DEPENDENCY_TIMEOUT.as_secs(),
                wait.for_services.join(", ")
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Slots whose newest task completed, and the newest task error seen.
async fn slots(
    control: &mut ControlClient<Channel>,
    service: &str,
) -> anyhow::Result<(u64, String)> {
    let tasks = control
        .list_tasks(ListTasksRequest {
            service: service.to_owned(),
            node: String::new(),
        })
        .await?
        .into_inner()
        .tasks;
    let mut newest: BTreeMap<u64, (i64, TaskState, String)> = BTreeMap::new();
    for info in tasks {
        let Some(task) = info.task else { continue };
        let created = task.meta.map(|m| m.created_at_ms).unwrap_or(0);
        let status = task.status.unwrap_or_default();
        let entry = (created, status.state(), status.err);
        match newest.get(&task.slot) {
            Some((at, _, _)) if *at >= created => {}
            _ => {
                newest.insert(task.slot, entry);
            }
        }
    }
    let done = newest
        .values()
        .filter(|(_, state, _)| *state == TaskState::Complete)
        .count() as u64;
    let err = newest
        .values()
        .filter(|(_, _, e)| !e.is_empty())
        .max_by_key(|(at, _, _)| *at)
        .map(|(_, _, e)| e.clone())
        .unwrap_or_default();
    Ok((done, err))
}

#[cfg(test)]
mod tests;
