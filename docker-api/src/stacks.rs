//! What `docker stack deploy|rm` touches besides services: `/networks`,
//! `/secrets`, `/configs`.
//!
//! shoal has none of these objects yet, so lists are empty but valid (the
//! CLI then finds nothing to reuse or remove) and single objects are not
//! found (404, which the CLI's stack logic expects for "absent"). A stack's
//! own networks — `POST /networks/create` with the
//! `com.docker.stack.namespace` label, which `stack deploy` sends for every
//! network of the file — are accepted with a warning and recorded on the
//! services that use them (`com.shoal.stack.networks`), as `shoal stack
//! deploy` does; any other network create is refused. When overlay
//! networks exist, this module is where they are listed and created.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bollard::models as d;

use crate::errors::{ApiError, ApiResult};
use crate::filters::Filters;
use crate::{Api, Query};

/// Docker's stack label.
pub const STACK_LABEL: &str = "com.docker.stack.namespace";

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/networks", get(empty_list))
        .route("/networks/create", post(create_network))
        .route("/networks/:id", get(no_network).delete(no_network))
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

async fn no_network(Path(id): Path<String>) -> ApiError {
    ApiError::not_found(format!(
        "network {id} not found (shoal has no networks yet)"
    ))
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
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<d::NetworkCreateResponse>)> {
    let request: d::NetworkCreateRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid network create request: {e}")))?;
    if !is_stack_network(&request) {
        return Err(ApiError::unsupported(format!(
            "creating networks (POST /networks/create {}): shoal has no overlay networks yet",
            request.name
        )));
    }
    Ok((
        StatusCode::CREATED,
        Json(d::NetworkCreateResponse {
            id: request.name.clone(),
            warning: format!(
                "network {} is recorded on the stack's services (label \
                 com.shoal.stack.networks), not created: shoal has no overlay networks yet",
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
