//! A stack's objects in the cluster, found by Docker's namespace label
//! (`com.docker.stack.namespace`): its services and its networks.

use shoal_proto::v1::control_client::ControlClient;
use shoal_proto::v1::{ListNetworksRequest, ListServicesRequest, Network, ServiceInfo};
use tonic::transport::Channel;

use super::convert::NAMESPACE_LABEL;

/// Every service of the cluster.
pub async fn all_services(
    control: &mut ControlClient<Channel>,
) -> anyhow::Result<Vec<ServiceInfo>> {
    Ok(control
        .list_services(ListServicesRequest { local: false })
        .await?
        .into_inner()
        .services)
}

/// The stack a service belongs to, if any.
pub fn namespace(info: &ServiceInfo) -> Option<&str> {
    info.service
        .as_ref()?
        .spec
        .as_ref()?
        .labels
        .get(NAMESPACE_LABEL)
        .map(String::as_str)
}

/// The services of stack `name`, sorted by name (none is not an error).
pub async fn stack_services(
    control: &mut ControlClient<Channel>,
    name: &str,
) -> anyhow::Result<Vec<ServiceInfo>> {
    let mut services: Vec<ServiceInfo> = all_services(control)
        .await?
        .into_iter()
        .filter(|info| namespace(info) == Some(name))
        .collect();
    services.sort_by_key(|info| {
        info.service
            .as_ref()
            .and_then(|s| s.spec.as_ref())
            .map(|s| s.name.clone())
            .unwrap_or_default()
    });
    Ok(services)
}

/// The networks created for stack `name`, sorted by name.
pub async fn stack_networks(
    control: &mut ControlClient<Channel>,
    name: &str,
) -> anyhow::Result<Vec<Network>> {
    let mut networks: Vec<Network> = control
        .list_networks(ListNetworksRequest {})
        .await?
        .into_inner()
        .networks
        .into_iter()
        .filter(|n| {
            n.spec
                .as_ref()
                .and_then(|s| s.labels.get(NAMESPACE_LABEL))
                .is_some_and(|stack| stack == name)
        })
        .collect();
    networks.sort_by_key(|n| n.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default());
    Ok(networks)
}
