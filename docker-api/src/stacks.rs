//! `/networks`: what `docker network …` and `docker stack deploy|rm` touch
//! besides services, secrets and configs (those are in `secrets`).
//!
//! Networks are shoal's overlay networks: listed (with Docker's `id`,
//! `name`, `label` and `driver` filters), inspected, created (`docker
//! network create -d overlay`) and removed through the control API, in
//! Docker's shape (`mapping::objects::network_to_docker`). A stack's own
//! networks (`POST /networks/create` with the `com.docker.stack.namespace`
//! label, which `stack deploy` sends for every network of the file and for
//! `STACK_default`) are created like any other, labels, `internal`,
//! `attachable` and IPAM included, and `stack rm` removes them by ID. A
//! network absent is a 404, which the CLI's stack logic reads as "create it".

use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bollard::models as d;

use shoal_proto::v1 as s;

use crate::api::{Api, Query, State};
use crate::errors::{ApiError, ApiResult};
use crate::filters::Filters;
use crate::mapping::objects::network_to_docker;

/// Docker's stack label.
pub const STACK_LABEL: &str = "com.docker.stack.namespace";

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/networks", get(list_networks))
        .route("/networks/create", post(create_network))
        .route("/networks/:id", get(inspect_network).delete(remove_network))
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

async fn create_network(
    state: State,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<d::NetworkCreateResponse>)> {
    let request: d::NetworkCreateRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid network create request: {e}")))?;
    let spec = network_spec_from_docker(&request)?;
    let network = state
        .backend
        .control()
        .create_network(s::CreateNetworkRequest { spec: Some(spec) })
        .await?
        .into_inner();
    Ok((
        StatusCode::CREATED,
        Json(d::NetworkCreateResponse {
            id: network.id,
            warning: String::new(),
        }),
    ))
}
