//! What `docker stack deploy|rm` touches besides services: `/networks`,
//! `/secrets`, `/configs`.
//!
//! Networks are shoal's overlay networks: listed (with Docker's `id`,
//! `name`, `label` and `driver` filters), inspected, created (`docker
//! network create -d overlay`) and removed through the control API, in
//! Docker's shape (`mapping::objects::network_to_docker`). A *stack's* own
//! networks — `POST /networks/create` with the `com.docker.stack.namespace`
//! label, which `stack deploy` sends for every network of the file — are
//! still accepted with a warning and recorded on the services that use them
//! (`com.shoal.stack.networks`) rather than created and attached: attaching
//! a service to an overlay through the Docker API is not mapped yet (see
//! `mapping::spec`). Secrets and configs do not exist in shoal yet: their
//! lists are empty but valid and single objects are not found (404, which
//! the CLI's stack logic expects for "absent").

use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bollard::models as d;

use shoal_proto::v1 as s;

use crate::errors::{ApiError, ApiResult};
use crate::filters::Filters;
use crate::mapping::objects::network_to_docker;
use crate::{Api, Query, State};

/// Docker's stack label.
pub const STACK_LABEL: &str = "com.docker.stack.namespace";

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/networks", get(list_networks))
        .route("/networks/create", post(create_network))
        .route("/networks/:id", get(inspect_network).delete(remove_network))
        .route("/secrets", get(empty_list))
        .route("/secrets/:id", get(no_secret))
        .route("/configs", get(empty_list))
        .route("/configs/:id", get(no_config))
}

/// An empty list, after checking the filters are well formed (a malformed
/// one is still a 400, as for every list).
async fn empty_list(query: Query) -> ApiResult<Json<Vec<serde_json::Value>>> {
    Filters::parse(query.get("filters").map(String::as_str))?;
    Ok(Json(Vec::new()))
}

/// Docker's network filters this front end knows.
pub fn network_matches(filters: &Filters, network: &s::Network) -> bool {
    let spec = network.spec.clone().unwrap_or_default();
    let driver = if spec.driver.is_empty() {
        "overlay"
    } else {
        spec.driver.as_str()
    };
    filters.any("id", |v| network.id.starts_with(v))
        && filters.any("name", |v| spec.name.contains(v))
        && filters.any("driver", |v| v == driver)
        && filters.any("scope", |v| v == "swarm")
        && filters.labels_match(&spec.labels)
}

async fn list_networks(state: State, query: Query) -> ApiResult<Json<Vec<d::Network>>> {
    let filters = Filters::parse(query.get("filters").map(String::as_str))?;
    filters.only(&["id", "name", "label", "driver", "scope"])?;
    let mut networks: Vec<d::Network> = state
        .backend
        .control()
        .list_networks(s::ListNetworksRequest {})
        .await?
        .into_inner()
        .networks
        .iter()
        .filter(|n| network_matches(&filters, n))
        .map(network_to_docker)
        .collect();
    networks.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(networks))
}

async fn get_network(state: &Api, id: &str) -> ApiResult<s::Network> {
    state
        .backend
        .control()
        .get_network(s::GetNetworkRequest {
            network: id.to_string(),
        })
        .await?
        .into_inner()
        .network
        .ok_or_else(|| ApiError::not_found(format!("network {id} not found")))
}

async fn inspect_network(state: State, Path(id): Path<String>) -> ApiResult<Json<d::Network>> {
    Ok(Json(network_to_docker(&get_network(&state, &id).await?)))
}

async fn remove_network(state: State, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let network = get_network(&state, &id).await?;
    state
        .backend
        .control()
        .remove_network(s::RemoveNetworkRequest {
            network: network.id,
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A network create as shoal's spec; what shoal cannot do is refused.
pub fn network_spec_from_docker(request: &d::NetworkCreateRequest) -> ApiResult<s::NetworkSpec> {
    let driver = request.driver.clone().unwrap_or_else(|| "overlay".into());
    if driver != "overlay" {
        return Err(ApiError::bad_request(format!(
            "network {}: driver {driver:?} is not supported: shoal's networks are overlay \
             networks (docker network create -d overlay)",
            request.name
        )));
    }
    if request.enable_ipv6 == Some(true) || request.ingress == Some(true) {
        return Err(ApiError::bad_request(format!(
            "network {}: shoal has no IPv6 or ingress networks",
            request.name
        )));
    }
    let configs = request
        .ipam
        .as_ref()
        .and_then(|i| i.config.clone())
        .unwrap_or_default();
    if configs.len() > 1 {
        return Err(ApiError::bad_request(format!(
            "network {}: shoal's networks have one subnet",
            request.name
        )));
    }
    let ipam = configs.first().map(|c| s::IpamConfig {
        subnet: c.subnet.clone().unwrap_or_default(),
        gateway: c.gateway.clone().unwrap_or_default(),
        ip_range: c.ip_range.clone().unwrap_or_default(),
    });
    Ok(s::NetworkSpec {
        name: request.name.clone(),
        labels: request.labels.clone().unwrap_or_default(),
        driver,
        internal: request.internal.unwrap_or(false),
        attachable: request.attachable.unwrap_or(false),
        ipam,
        driver_opts: request.options.clone().unwrap_or_default(),
    })
}

async fn no_secret(Path(id): Path<String>) -> ApiError {
    ApiError::not_found(format!("secret {id} not found (shoal has no secrets yet)"))
}

async fn no_config(Path(id): Path<String>) -> ApiError {
    ApiError::not_found(format!("config {id} not found (shoal has no configs yet)"))
}

/// Whether a network create is a stack's own network, which is recorded
/// on its services rather than created.
pub fn is_stack_network(request: &d::NetworkCreateRequest) -> bool {
    request
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(STACK_LABEL))
}

async fn create_network(
    state: State,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<d::NetworkCreateResponse>)> {
    let request: d::NetworkCreateRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid network create request: {e}")))?;
    if !is_stack_network(&request) {
        let spec = network_spec_from_docker(&request)?;
        let network = state
            .backend
            .control()
            .create_network(s::CreateNetworkRequest { spec: Some(spec) })
            .await?
            .into_inner();
        return Ok((
            StatusCode::CREATED,
            Json(d::NetworkCreateResponse {
                id: network.id,
                warning: String::new(),
            }),
        ));
    }
    Ok((
        StatusCode::CREATED,
        Json(d::NetworkCreateResponse {
            id: request.name.clone(),
            warning: format!(
                "network {} is recorded on the stack's services (label \
                 com.shoal.stack.networks), not created: the Docker API does not attach \
                 services to overlay networks yet",
                request.name
            ),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_stacks_networks_are_recorded() {
        let mut request = d::NetworkCreateRequest {
            name: "demo_default".into(),
            ..Default::default()
        };
        assert!(!is_stack_network(&request));
        request.labels = Some([(STACK_LABEL.to_string(), "demo".to_string())].into());
        assert!(is_stack_network(&request));
    }
}
