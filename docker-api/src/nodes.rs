//! `/nodes`: `docker node ls|inspect|update|rm|promote|demote`.

use std::sync::Arc;

use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Json, Router};
use bollard::models as d;
use shoal_proto::v1 as s;

use crate::api::{query_flag, Api, Query, State};
use crate::errors::{ApiError, ApiResult};
use crate::filters::{label_matches, Filters};
use crate::mapping::objects::node_to_docker;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/nodes", get(list))
        .route("/nodes/:id", get(inspect).delete(remove))
        .route("/nodes/:id/update", post(update))
}

/// Docker's node filters over shoal's nodes.
pub fn node_matches(filters: &Filters, node: &s::Node) -> bool {
    let hostname = node
        .description
        .as_ref()
        .map(|d| d.hostname.as_str())
        .unwrap_or("");
    let labels = node
        .spec
        .as_ref()
        .map(|s| s.labels.clone())
        .unwrap_or_default();
    let role = if node.role() == s::NodeRole::Manager {
        "manager"
    } else {
        "worker"
    };
    filters.any("id", |v| node.id.starts_with(v))
        && filters.any("name", |v| hostname.starts_with(v))
        && filters.any("role", |v| v == role)
        && filters.any("membership", |v| v == "accepted")
        && filters
            .values("node.label")
            .is_none_or(|vs| vs.iter().all(|v| label_matches(v, &labels)))
}

async fn list(state: State, query: Query) -> ApiResult<Json<Vec<d::Node>>> {
    let filters = Filters::parse(query.get("filters").map(String::as_str))?;
    filters.only(&["id", "name", "role", "membership", "node.label", "label"])?;
    if filters.values("label").is_some() {
        return Err(ApiError::unsupported(
            "the node filter 'label' (engine labels); use 'node.label'",
        ));
    }
    let nodes = state
        .backend
        .control()
        .list_nodes(s::ListNodesRequest {})
        .await?
        .into_inner()
        .nodes;
    Ok(Json(
        nodes
            .iter()
            .filter(|n| node_matches(&filters, n))
            .map(node_to_docker)
            .collect(),
    ))
}

async fn get_node(state: &Api, id: &str) -> ApiResult<s::Node> {
    Ok(state
        .backend
        .control()
        .get_node(s::GetNodeRequest { node: id.into() })
        .await?
        .into_inner())
}

async fn inspect(state: State, Path(id): Path<String>) -> ApiResult<Json<d::Node>> {
    Ok(Json(node_to_docker(&get_node(&state, &id).await?)))
}

async fn remove(state: State, Path(id): Path<String>, query: Query) -> ApiResult<()> {
    state
        .backend
        .control()
        .remove_node(s::RemoveNodeRequest {
            node: id,
            force: query_flag(&query, "force"),
        })
        .await?;
    Ok(())
}

/// What a new node spec changes, as shoal's `UpdateNode` fields.
pub fn node_update(current: &s::Node, new: &d::NodeSpec) -> Result<s::UpdateNodeRequest, ApiError> {
    let spec = current.spec.clone().unwrap_or_default();
    let mut request = s::UpdateNodeRequest {
        node: current.id.clone(),
        ..Default::default()
    };
    if new.name.as_deref().is_some_and(|n| !n.is_empty()) {
        return Err(ApiError::bad_request(
            "shoal nodes have no name apart from their hostname: Spec.Name cannot be set",
        ));
    }
    let role = match new.role {
        Some(d::NodeSpecRoleEnum::MANAGER) => Some(s::NodeRole::Manager),
        Some(d::NodeSpecRoleEnum::WORKER) => Some(s::NodeRole::Worker),
        _ => None,
    };
    if let Some(role) = role.filter(|r| *r != spec.desired_role()) {
        request.role = Some(role as i32);
    }
    let availability = match new.availability {
        Some(d::NodeSpecAvailabilityEnum::ACTIVE) => Some(s::NodeAvailability::Active),
        Some(d::NodeSpecAvailabilityEnum::PAUSE) => Some(s::NodeAvailability::Pause),
        Some(d::NodeSpecAvailabilityEnum::DRAIN) => Some(s::NodeAvailability::Drain),
        _ => None,
    };
    if let Some(a) = availability.filter(|a| *a != spec.availability()) {
        request.availability = Some(a as i32);
    }
    let labels = new.labels.clone().unwrap_or_default();
    let mut added: Vec<String> = labels
        .iter()
        .filter(|(k, v)| spec.labels.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    added.sort();
    let mut removed: Vec<String> = spec
        .labels
        .keys()
        .filter(|k| !labels.contains_key(*k))
        .cloned()
        .collect();
    removed.sort();
    request.label_add = added;
    request.label_rm = removed;
    Ok(request)
}

/// `POST /nodes/{id}/update?version=N`. shoal's `UpdateNode` changes fields
/// rather than replacing the spec, so the version is checked here against
/// the node as read just before; a change in between is not caught (a
/// narrow window, documented).
async fn update(
    state: State,
    Path(id): Path<String>,
    query: Query,
    body: axum::body::Bytes,
) -> ApiResult<()> {
    let version: u64 = query
        .get("version")
        .ok_or_else(|| ApiError::bad_request("the version query parameter is required"))?
        .parse()
        .map_err(|_| ApiError::bad_request("invalid version: expected a number"))?;
    let spec: d::NodeSpec = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid node spec: {e}")))?;
    let current = get_node(&state, &id).await?;
    let at = current.meta.as_ref().map_or(0, |m| m.version);
    if at != version {
        return Err(ApiError::conflict(format!(
            "update out of sequence: node {} is at version {at}, the update was made for {version}",
            current.id
        )));
    }
    let request = node_update(&current, &spec)?;
    if request.role.is_some()
        || request.availability.is_some()
        || !request.label_add.is_empty()
        || !request.label_rm.is_empty()
    {
        state.backend.control().update_node(request).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> s::Node {
        let mut spec = s::NodeSpec {
            labels: [("zone".to_string(), "eu".to_string())].into(),
            ..Default::default()
        };
        spec.set_availability(s::NodeAvailability::Active);
        s::Node {
            id: "abc123".into(),
            spec: Some(spec),
            description: Some(s::NodeDescription {
                hostname: "node1".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn an_update_names_only_what_changed() {
        let n = node();
        let same = node_update(&n, &node_to_docker(&n).spec.unwrap()).unwrap();
        assert!(same.role.is_none() && same.availability.is_none());
        assert!(same.label_add.is_empty() && same.label_rm.is_empty());

        let mut drain = node_to_docker(&n).spec.unwrap();
        drain.availability = Some(d::NodeSpecAvailabilityEnum::DRAIN);
        drain.labels = Some([("disk".to_string(), "ssd".to_string())].into());
        let r = node_update(&n, &drain).unwrap();
        assert_eq!(r.availability, Some(s::NodeAvailability::Drain as i32));
        assert_eq!(r.label_add, ["disk=ssd"]);
        assert_eq!(r.label_rm, ["zone"]);

        let mut promote = node_to_docker(&n).spec.unwrap();
        promote.role = Some(d::NodeSpecRoleEnum::MANAGER);
        assert_eq!(
            node_update(&n, &promote).unwrap().role,
            Some(s::NodeRole::Manager as i32)
        );
    }

    #[test]
    fn node_filters() {
        let n = node();
        let f = |raw: &str| Filters::parse(Some(raw)).unwrap();
        assert!(node_matches(&f(r#"{"id":{"abc":true}}"#), &n));
        assert!(!node_matches(&f(r#"{"id":{"x":true}}"#), &n));
        assert!(node_matches(&f(r#"{"name":{"node":true}}"#), &n));
        assert!(node_matches(&f(r#"{"role":{"worker":true}}"#), &n));
        assert!(!node_matches(&f(r#"{"role":{"manager":true}}"#), &n));
        assert!(node_matches(&f(r#"{"node.label":{"zone=eu":true}}"#), &n));
        assert!(!node_matches(&f(r#"{"node.label":{"zone=us":true}}"#), &n));
    }
}
