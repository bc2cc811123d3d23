//! `shoal stack deploy | ls | services | ps | rm | config`: Compose files
//! deployed as a group of services, as `docker stack` does.
//!
//! A stack is not an object of its own: it is the set of services and
//! networks that carry the label `com.docker.stack.namespace=NAME`
//! (Docker's label), and every command here finds a stack's services
//! through `ListServices` (its networks through `ListNetworks`). The
//! Compose files are read by `shoal-compose`; this module decides how a
//! loaded stack becomes shoal services and talks to the control API.
//!
//! # Layout
//! - [`convert`]: Compose service → `ServiceSpec` (pure).
//! - [`deploy`]: the deploy plan (pure) and carrying it out.
//! - [`list`]: `ls`, `services`, `ps` printing.
//! - [`objects`]: a stack's services and networks in the cluster.

pub mod convert;
pub mod deploy;
pub mod list;
pub mod objects;

use std::collections::BTreeMap;
use std::path::PathBuf;

use shoal_proto::v1::control_client::ControlClient;
use shoal_proto::v1::{
    ListTasksRequest, Network, RemoveNetworkRequest, RemoveServiceRequest, ServiceInfo,
};
use tonic::transport::Channel;

use crate::args::StackCommand;
use crate::client;
use convert::NAMESPACE_LABEL;
use objects::{all_services, namespace, stack_networks, stack_services};

pub async fn run(host: Option<&str>, command: StackCommand) -> anyhow::Result<()> {
    match command {
        StackCommand::Deploy {
            compose_file,
            prune,
            detach,
            name,
        } => {
            deploy::run(
                host,
                deploy::DeployArgs {
                    files: compose_file,
                    prune,
                    detach,
                    name,
                },
            )
            .await
        }
        StackCommand::Config { compose_file } => config(&compose_file),
        StackCommand::Ls { format } => {
            let mut control = client::control(client::connect(host).await?);
            let services = all_services(&mut control).await?;
            let mut stacks: BTreeMap<String, usize> = BTreeMap::new();
            for info in &services {
                if let Some(name) = namespace(info) {
                    *stacks.entry(name.to_owned()).or_default() += 1;
                }
            }
            list::print_stacks(&stacks, format)?;
            Ok(())
        }
        StackCommand::Services {
            quiet,
            format,
            name,
        } => {
            let mut control = client::control(client::connect(host).await?);
            let (services, _) = existing(&mut control, &name).await?;
            list::print_services(&services, quiet, format)?;
            Ok(())
        }
        StackCommand::Ps {
            quiet,
            no_trunc,
            format,
            name,
        } => {
            let mut control = client::control(client::connect(host).await?);
            let (services, _) = existing(&mut control, &name).await?;
            let mut tasks = Vec::new();
            for info in &services {
                let id = info
                    .service
                    .as_ref()
                    .map(|s| s.id.clone())
                    .unwrap_or_default();
                tasks.extend(
                    control
                        .list_tasks(ListTasksRequest {
                            service: id,
                            node: String::new(),
                        })
                        .await?
                        .into_inner()
                        .tasks,
                );
            }
            list::print_tasks(&tasks, quiet, no_trunc, format)?;
            Ok(())
        }
        StackCommand::Rm { names } => {
            let mut control = client::control(client::connect(host).await?);
            // Every stack must exist before anything is removed.
            let mut found = Vec::new();
            for name in &names {
                found.push(existing(&mut control, name).await?);
            }
            for (services, networks) in found {
                for info in services {
                    let service = info.service.unwrap_or_default();
                    let name = service.spec.map(|s| s.name).unwrap_or_default();
                    println!("Removing service {name}");
                    control
                        .remove_service(RemoveServiceRequest {
                            service: service.id,
                        })
                        .await?;
                }
                // Then the stack's own networks (never external ones: they
                // carry no namespace label). The services are gone from the
                // store, so nothing holds the networks any more.
                for network in networks {
                    let name = network.spec.map(|s| s.name).unwrap_or_default();
                    println!("Removing network {name}");
                    control
                        .remove_network(RemoveNetworkRequest {
                            network: network.id,
                        })
                        .await?;
                }
            }
            // The stacks' own secrets and configs (external ones carry no
            // namespace label), once no service of theirs grants them.
            for name in &names {
                remove_stack_files(&mut control, name).await?;
            }
            Ok(())
        }
    }
}

/// `stack config`: the merged, interpolated files, as Compose YAML.
fn config(files: &[PathBuf]) -> anyhow::Result<()> {
    let env = std::env::vars().collect();
    let stack = shoal_compose::load(files, &env)?;
    if let Some(line) = shoal_compose::unsupported_options_line(&stack.warnings) {
        eprintln!("{line}");
    }
    print!("{}", shoal_compose::render(&stack));
    Ok(())
}

/// Removes the secrets and configs created for stack `name`.
async fn remove_stack_files(
    control: &mut ControlClient<Channel>,
    name: &str,
) -> anyhow::Result<()> {
    use shoal_proto::v1::{
        ListConfigsRequest, ListSecretsRequest, RemoveConfigRequest, RemoveSecretRequest,
    };
    let of_stack = |labels: &std::collections::HashMap<String, String>| {
        labels
            .get(NAMESPACE_LABEL)
            .is_some_and(|stack| stack == name)
    };
    let secrets = control
        .list_secrets(ListSecretsRequest {})
        .await?
        .into_inner()
        .secrets;
    for secret in secrets {
        let Some(spec) = secret.spec.filter(|s| of_stack(&s.labels)) else {
            continue;
        };
        println!("Removing secret {}", spec.name);
        control
            .remove_secret(RemoveSecretRequest { secret: secret.id })
            .await?;
    }
    let configs = control
        .list_configs(ListConfigsRequest {})
        .await?
        .into_inner()
        .configs;
    for config in configs {
        let Some(spec) = config.spec.filter(|s| of_stack(&s.labels)) else {
            continue;
        };
        println!("Removing config {}", spec.name);
        control
            .remove_config(RemoveConfigRequest { config: config.id })
            .await?;
    }
    Ok(())
}

/// The services and networks of stack `name`, which must have at least one.
async fn existing(
    control: &mut ControlClient<Channel>,
    name: &str,
) -> anyhow::Result<(Vec<ServiceInfo>, Vec<Network>)> {
    let services = stack_services(control, name).await?;
    let networks = stack_networks(control, name).await?;
    if services.is_empty() && networks.is_empty() {
        anyhow::bail!("nothing found in stack: {name}");
    }
    Ok((services, networks))
}
