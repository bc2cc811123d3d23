//! `/tasks`: `docker service ps`, `docker stack ps`, and the CLI's progress
//! display after `service create|update|scale|rollback` (which asks for the
//! tasks of the current spec with the `_up-to-date` filter).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};
use bollard::models as d;
use shoal_proto::v1 as s;

use crate::api::{Api, Query, State};
use crate::errors::{ApiError, ApiResult};
use crate::filters::{label_matches, Filters};
use crate::mapping::objects::{task_state_name, task_to_docker};
use crate::services::all_services;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/tasks", get(list))
        .route("/tasks/:id", get(inspect))
}

/// Resolves a `service` filter value as dockerd does: an exact ID, an exact
/// name, else a unique ID prefix.
pub fn resolve_service<'a>(services: &'a [s::Service], reference: &str) -> Option<&'a s::Service> {
    let name = |s: &s::Service| s.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default();
    services
        .iter()
        .find(|s| s.id == reference)
        .or_else(|| services.iter().find(|s| name(s) == reference))
        .or_else(|| {
            let mut prefixed = services.iter().filter(|s| s.id.starts_with(reference));
            match (prefixed.next(), prefixed.next()) {
                (Some(one), None) => Some(one),
                _ => None,
            }
        })
}

/// Docker's task filters over shoal's tasks. `services` are all services
/// (for `service`, `label`, `_up-to-date` and task names).
pub fn task_matches(filters: &Filters, task: &s::TaskInfo, services: &[s::Service]) -> bool {
    let Some(t) = task.task.as_ref() else {
        return false;
    };
    let service = services.iter().find(|s| s.id == t.service_id);
    let service_spec = service.and_then(|s| s.spec.clone()).unwrap_or_default();
    let name = if t.slot != 0 {
        format!("{}.{}", service_spec.name, t.slot)
    } else {
        format!("{}.{}", service_spec.name, t.node_id)
    };
    let mut labels: HashMap<String, String> = service_spec.labels.clone();
    if let Some(spec) = &t.spec {
        labels.extend(spec.labels.clone());
    }
    filters.any("id", |v| t.id.starts_with(v))
        && filters.any("name", |v| name.starts_with(v))
        && filters.any("service", |v| {
            resolve_service(services, v).is_some_and(|s| s.id == t.service_id)
        })
        && filters.any("node", |v| {
            t.node_id == v
                || (!t.node_id.is_empty() && t.node_id.starts_with(v))
                || task.node_hostname == v
        })
        && filters.any("desired-state", |v| task_state_name(t.desired_state()) == v)
        && filters
            .values("label")
            .is_none_or(|vs| vs.iter().all(|v| label_matches(v, &labels)))
        && filters.any("_up-to-date", |v| {
            let current = service_spec.task.as_ref() == t.spec.as_ref();
            (v == "true") == current
        })
}

async fn all_tasks(state: &Api) -> ApiResult<Vec<s::TaskInfo>> {
    Ok(state
        .backend
        .control()
        .list_tasks(s::ListTasksRequest::default())
        .await?
        .into_inner()
        .tasks)
}

async fn list(state: State, query: Query) -> ApiResult<Json<Vec<d::Task>>> {
    let filters = Filters::parse(query.get("filters").map(String::as_str))?;
    filters.only(&[
        "id",
        "name",
        "service",
        "node",
        "label",
        "desired-state",
        "_up-to-date",
    ])?;
    let services: Vec<s::Service> = all_services(&state)
        .await?
        .into_iter()
        .filter_map(|i| i.service)
        .collect();
    let tasks = all_tasks(&state).await?;
    let mut listed: Vec<&s::Task> = tasks
        .iter()
        .filter(|t| task_matches(&filters, t, &services))
        .filter_map(|t| t.task.as_ref())
        .collect();
    listed.sort_by(|a, b| {
        (a.service_id.as_str(), a.slot, a.id.as_str()).cmp(&(
            b.service_id.as_str(),
            b.slot,
            b.id.as_str(),
        ))
    });
    Ok(Json(listed.into_iter().map(task_to_docker).collect()))
}

/// A task by ID or unique ID prefix.
pub async fn find_task(state: &Api, reference: &str) -> ApiResult<s::TaskInfo> {
    let tasks = all_tasks(state).await?;
    if let Some(exact) = tasks
        .iter()
        .find(|t| t.task.as_ref().is_some_and(|t| t.id == reference))
    {
        return Ok(exact.clone());
    }
    let mut prefixed = tasks.iter().filter(|t| {
        !reference.is_empty() && t.task.as_ref().is_some_and(|t| t.id.starts_with(reference))
    });
    match (prefixed.next(), prefixed.next()) {
        (Some(one), None) => Ok(one.clone()),
        (Some(_), Some(_)) => Err(ApiError::bad_request(format!(
            "task {reference} is ambiguous: more than one task ID starts with it"
        ))),
        _ => Err(ApiError::not_found(format!("no such task: {reference}"))),
    }
}

async fn inspect(state: State, Path(id): Path<String>) -> ApiResult<Json<d::Task>> {
    let task = find_task(&state, &id).await?;
    let task = task
        .task
        .as_ref()
        .ok_or_else(|| ApiError::not_found(format!("no such task: {id}")))?;
    Ok(Json(task_to_docker(task)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> (Vec<s::Service>, s::TaskInfo) {
        let task_spec = s::TaskSpec {
            image: "busybox:1".into(),
            labels: [("com.docker.stack.namespace".to_string(), "demo".to_string())].into(),
            ..Default::default()
        };
        let service = s::Service {
            id: "svc1".into(),
            spec: Some(s::ServiceSpec {
                name: "demo_web".into(),
                task: Some(task_spec.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut task = s::Task {
            id: "task1".into(),
            service_id: "svc1".into(),
            slot: 2,
            node_id: "nodeA".into(),
            spec: Some(task_spec),
            ..Default::default()
        };
        task.set_desired_state(s::TaskState::Running);
        (
            vec![service],
            s::TaskInfo {
                task: Some(task),
                node_hostname: "node1".into(),
            },
        )
    }

    #[test]
    fn filters_the_cli_sends() {
        let (services, task) = fixture();
        let f = |raw: &str| Filters::parse(Some(raw)).unwrap();
        let m = |raw: &str| task_matches(&f(raw), &task, &services);
        assert!(m(r#"{"service":{"svc1":true}}"#));
        assert!(m(r#"{"service":{"demo_web":true}}"#));
        assert!(!m(r#"{"service":{"other":true}}"#));
        assert!(m(r#"{"label":{"com.docker.stack.namespace=demo":true}}"#));
        assert!(m(r#"{"desired-state":{"running":true}}"#));
        assert!(!m(r#"{"desired-state":{"shutdown":true}}"#));
        assert!(m(r#"{"node":{"node1":true}}"#));
        assert!(m(r#"{"node":{"nodeA":true}}"#));
        assert!(m(r#"{"name":{"demo_web.2":true}}"#));
        assert!(m(r#"{"_up-to-date":{"true":true}}"#));
    }

    #[test]
    fn up_to_date_means_the_services_current_task_spec() {
        let (mut services, task) = fixture();
        if let Some(t) = services[0].spec.as_mut().and_then(|s| s.task.as_mut()) {
            t.image = "busybox:2".into();
        }
        let f = Filters::parse(Some(r#"{"_up-to-date":{"true":true}}"#)).unwrap();
        assert!(!task_matches(&f, &task, &services));
    }
}
