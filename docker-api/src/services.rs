//! `/services` (`docker service create|ls|inspect|update|scale|rollback|rm`,
//! and the services of `docker stack …`) and `/distribution`, which the CLI
//! asks before a create or update to pin the image's digest.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bollard::models as d;
use shoal_proto::v1 as s;

use crate::api::{query_flag, Api, Query, State};
use crate::errors::{ApiError, ApiResult};
use crate::filters::Filters;
use crate::mapping::objects::{service_to_docker, ServiceView};
use crate::mapping::spec::service_spec_from_docker;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/services", get(list))
        .route("/services/create", post(create))
        .route("/services/:id", get(inspect).delete(remove))
        .route("/services/:id/update", post(update))
        .route("/distribution/*name", get(distribution))
}

/// Docker's service filters: `id` and `name` by prefix (as dockerd asks
/// swarmkit), `label` (stacks: `com.docker.stack.namespace=NAME`), `mode`.
pub fn service_matches(filters: &Filters, service: &s::Service) -> bool {
    let spec = service.spec.clone().unwrap_or_default();
    let mode = match spec.mode() {
        s::ServiceMode::Replicated => "replicated",
        s::ServiceMode::Global => "global",
    };
    filters.any("id", |v| service.id.starts_with(v))
        && filters.any("name", |v| spec.name.starts_with(v))
        && filters.any("mode", |v| v == mode)
        && filters.labels_match(&spec.labels)
}

/// Every service, for this module and for tasks' label filters.
pub async fn all_services(state: &Api) -> ApiResult<Vec<s::ServiceInfo>> {
    Ok(state
        .backend
        .control()
        .list_services(s::ListServicesRequest { local: false })
        .await?
        .into_inner()
        .services)
}

async fn list(state: State, query: Query) -> ApiResult<Json<Vec<ServiceView>>> {
    let filters = Filters::parse(query.get("filters").map(String::as_str))?;
    filters.only(&["id", "name", "label", "mode"])?;
    let status = query_flag(&query, "status");
    let services = all_services(&state).await?;
    let mut listed: Vec<ServiceView> = services
        .iter()
        .filter_map(|info| {
            let service = info.service.as_ref()?;
            service_matches(&filters, service).then(|| {
                service_to_docker(
                    service,
                    status.then_some((info.running_tasks, info.desired_tasks)),
                )
            })
        })
        .collect();
    listed.sort_by(|a, b| a.service.id.cmp(&b.service.id));
    Ok(Json(listed))
}

pub async fn get_service(state: &Api, reference: &str) -> ApiResult<s::ServiceInfo> {
    Ok(state
        .backend
        .control()
        .get_service(s::GetServiceRequest {
            service: reference.into(),
        })
        .await?
        .into_inner())
}

async fn inspect(state: State, Path(id): Path<String>) -> ApiResult<Json<ServiceView>> {
    let info = get_service(&state, &id).await?;
    let service = info
        .service
        .as_ref()
        .ok_or_else(|| ApiError::not_found(format!("service {id} not found")))?;
    Ok(Json(service_to_docker(
        service,
        Some((info.running_tasks, info.desired_tasks)),
    )))
}

fn decode_spec(body: &[u8]) -> ApiResult<d::ServiceSpec> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid service spec: {e}")))
}

fn warnings(list: Vec<String>) -> Option<Vec<String>> {
    (!list.is_empty()).then_some(list)
}

async fn create(
    state: State,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<d::ServiceCreateResponse>)> {
    let translated = service_spec_from_docker(&decode_spec(&body)?, None)?;
    let service = state
        .backend
        .control()
        .create_service(s::CreateServiceRequest {
            spec: Some(translated.spec),
        })
        .await?
        .into_inner();
    Ok((
        StatusCode::CREATED,
        Json(d::ServiceCreateResponse {
            id: Some(service.id),
            warnings: warnings(translated.warnings),
        }),
    ))
}

/// `POST /services/{id}/update?version=N[&rollback=previous]`. The version
/// is the spec version read by the client; shoal's store refuses the write
/// when the service moved on meanwhile, so two clients never overwrite each
/// other (Swarm's "update out of sequence").
async fn update(
    state: State,
    Path(id): Path<String>,
    query: Query,
    body: axum::body::Bytes,
) -> ApiResult<Json<d::ServiceUpdateResponse>> {
    let version: u64 = query
        .get("version")
        .ok_or_else(|| ApiError::bad_request("the version query parameter is required"))?
        .parse()
        .map_err(|_| ApiError::bad_request("invalid version: expected a number"))?;
    let rollback = match query.get("rollback").map(String::as_str) {
        None | Some("") => false,
        Some("previous") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unrecognized rollback option {other}: expected \"previous\""
            )))
        }
    };
    let info = get_service(&state, &id).await?;
    let current = info
        .service
        .ok_or_else(|| ApiError::not_found(format!("service {id} not found")))?;
    if version != current.spec_version {
        return Err(ApiError::conflict(format!(
            "update out of sequence: service {} is at version {}, the update was made for \
             version {version}; inspect it again and retry",
            current
                .spec
                .as_ref()
                .map_or(current.id.as_str(), |s| s.name.as_str()),
            current.spec_version
        )));
    }
    let mut request = s::UpdateServiceRequest {
        service: current.id.clone(),
        expected_spec_version: version,
        rollback,
        ..Default::default()
    };
    let mut warned = Vec::new();
    if !rollback {
        let translated = service_spec_from_docker(&decode_spec(&body)?, current.spec.as_ref())?;
        request.spec = Some(translated.spec);
        warned = translated.warnings;
    }
    state.backend.control().update_service(request).await?;
    Ok(Json(d::ServiceUpdateResponse {
        warnings: warnings(warned),
    }))
}

async fn remove(state: State, Path(id): Path<String>) -> ApiResult<()> {
    state
        .backend
        .control()
        .remove_service(s::RemoveServiceRequest { service: id })
        .await?;
    Ok(())
}

/// shoal does not talk to registries (each node's engine pulls for
/// itself), so this answers as dockerd does when the registry cannot be
/// reached; the CLI then warns that the digest could not be pinned and goes
/// on with the tag.
async fn distribution(Path(name): Path<String>) -> ApiError {
    let image = name.strip_suffix("/json").unwrap_or(&name);
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!(
            "shoal does not query registries for image digests: {image} is pulled by each \
             node's engine as the tag says"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_label_and_name_filters() {
        let mut spec = s::ServiceSpec {
            name: "demo_web".into(),
            labels: [("com.docker.stack.namespace".to_string(), "demo".to_string())].into(),
            ..Default::default()
        };
        spec.set_mode(s::ServiceMode::Replicated);
        let service = s::Service {
            id: "k2j3h4".into(),
            spec: Some(spec),
            ..Default::default()
        };
        let f = |raw: &str| Filters::parse(Some(raw)).unwrap();
        assert!(service_matches(
            &f(r#"{"label":{"com.docker.stack.namespace=demo":true}}"#),
            &service
        ));
        assert!(!service_matches(
            &f(r#"{"label":{"com.docker.stack.namespace=other":true}}"#),
            &service
        ));
        assert!(service_matches(&f(r#"{"name":{"demo_":true}}"#), &service));
        assert!(!service_matches(&f(r#"{"name":{"web":true}}"#), &service));
        assert!(service_matches(&f(r#"{"id":{"k2j":true}}"#), &service));
        assert!(!service_matches(
            &f(r#"{"mode":{"global":true}}"#),
            &service
        ));
    }
}
