//! `/secrets` and `/configs`: shoal's secrets and configs in Docker's shape,
//! so `docker secret create|ls|inspect|rm`, `docker config …` and the
//! `secrets:`/`configs:` of `docker stack deploy` work.
//!
//! A secret's data is write-only, as in Docker: the control API never
//! returns it and neither does this front end (`Spec.Data` is absent).
//! A config's data is returned (base64, as Docker encodes it). Both are
//! immutable: Docker's `POST /secrets/{id}/update` may change labels only,
//! which shoal does not offer: an update that changes nothing (what `docker
//! stack deploy` sends for every existing secret) succeeds, any other is
//! refused with a message.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use bollard::models as d;
use shoal_proto::v1 as s;

use crate::api::{Api, Query, State};
use crate::errors::{ApiError, ApiResult};
use crate::filters::Filters;
use crate::mapping::time::timestamp;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/secrets", get(list_secrets))
        .route("/secrets/create", post(create_secret))
        .route("/secrets/:id", get(inspect_secret).delete(remove_secret))
        .route("/secrets/:id/update", post(update_secret))
        .route("/configs", get(list_configs))
        .route("/configs/create", post(create_config))
        .route("/configs/:id", get(inspect_config).delete(remove_config))
        .route("/configs/:id/update", post(update_config))
}

/// Docker's secret and config filters, as dockerd reads them: `id` and
/// `name` by prefix, `names` exactly, `label` by Docker's label rule.
pub fn object_matches(
    filters: &Filters,
    id: &str,
    name: &str,
    labels: &std::collections::HashMap<String, String>,
) -> bool {
    filters.any("id", |v| id.starts_with(v))
        && filters.any("name", |v| name.starts_with(v))
        && filters.any("names", |v| name == v)
        && filters.labels_match(labels)
}

fn decode_data(data: Option<&str>, what: &str) -> ApiResult<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(data.unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("invalid {what} data (base64 expected): {e}")))
}

pub fn secret_to_docker(secret: &s::Secret) -> d::Secret {
    let meta = secret.meta.unwrap_or_default();
    let spec = secret.spec.clone().unwrap_or_default();
    d::Secret {
        id: Some(secret.id.clone()),
        version: Some(d::ObjectVersion {
            index: Some(meta.version),
        }),
        created_at: Some(timestamp(meta.created_at_ms)),
        updated_at: Some(timestamp(meta.updated_at_ms)),
        spec: Some(d::SecretSpec {
            name: Some(spec.name),
            labels: Some(spec.labels),
            // Never the data: Docker returns none either.
            data: None,
            driver: None,
            templating: None,
        }),
    }
}

pub fn config_to_docker(config: &s::Config) -> d::Config {
    let meta = config.meta.unwrap_or_default();
    let spec = config.spec.clone().unwrap_or_default();
    d::Config {
        id: Some(config.id.clone()),
        version: Some(d::ObjectVersion {
            index: Some(meta.version),
        }),
        created_at: Some(timestamp(meta.created_at_ms)),
        updated_at: Some(timestamp(meta.updated_at_ms)),
        spec: Some(d::ConfigSpec {
            name: Some(spec.name),
            labels: Some(spec.labels),
            data: Some(base64::engine::general_purpose::STANDARD.encode(&spec.data)),
            templating: None,
        }),
    }
}

/// A secret create in shoal's terms; drivers and templating are refused
/// (shoal keeps secrets in its own store and writes them verbatim).
pub fn secret_spec_from_docker(spec: &d::SecretSpec) -> ApiResult<s::SecretSpec> {
    let name = spec.name.clone().unwrap_or_default();
    if spec.driver.as_ref().is_some_and(|d| !d.name.is_empty()) {
        return Err(ApiError::bad_request(format!(
            "secret {name}: secret drivers are not supported: shoal keeps secrets in its own \
             encrypted store (omit --driver)"
        )));
    }
    if spec.templating.as_ref().is_some_and(|d| !d.name.is_empty()) {
        return Err(ApiError::bad_request(format!(
            "secret {name}: templating is not supported: shoal writes secrets verbatim \
             (omit --template-driver)"
        )));
    }
    Ok(s::SecretSpec {
        name,
        labels: spec.labels.clone().unwrap_or_default(),
        data: decode_data(spec.data.as_deref(), "secret")?,
        driver: String::new(),
    })
}

pub fn config_spec_from_docker(spec: &d::ConfigSpec) -> ApiResult<s::ConfigSpec> {
    let name = spec.name.clone().unwrap_or_default();
    if spec.templating.as_ref().is_some_and(|d| !d.name.is_empty()) {
        return Err(ApiError::bad_request(format!(
            "config {name}: templating is not supported: shoal writes configs verbatim \
             (omit --template-driver)"
        )));
    }
    Ok(s::ConfigSpec {
        name,
        labels: spec.labels.clone().unwrap_or_default(),
        data: decode_data(spec.data.as_deref(), "config")?,
    })
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid {what} create request: {e}")))
}

async fn list_secrets(state: State, query: Query) -> ApiResult<Json<Vec<d::Secret>>> {
    let filters = Filters::parse(query.get("filters").map(String::as_str))?;
    filters.only(&["id", "name", "names", "label"])?;
    let mut secrets: Vec<d::Secret> = state
        .backend
        .control()
        .list_secrets(s::ListSecretsRequest {})
        .await?
        .into_inner()
        .secrets
        .iter()
        .filter(|x| {
            let spec = x.spec.clone().unwrap_or_default();
            object_matches(&filters, &x.id, &spec.name, &spec.labels)
        })
        .map(secret_to_docker)
        .collect();
    secrets.sort_by(|a, b| {
        a.spec
            .as_ref()
            .map(|s| &s.name)
            .cmp(&b.spec.as_ref().map(|s| &s.name))
    });
    Ok(Json(secrets))
}

async fn get_secret(state: &Api, id: &str) -> ApiResult<s::Secret> {
    Ok(state
        .backend
        .control()
        .get_secret(s::GetSecretRequest {
            secret: id.to_string(),
        })
        .await?
        .into_inner())
}

async fn inspect_secret(state: State, Path(id): Path<String>) -> ApiResult<Json<d::Secret>> {
    Ok(Json(secret_to_docker(&get_secret(&state, &id).await?)))
}

async fn create_secret(
    state: State,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<d::IdResponse>)> {
    let spec = secret_spec_from_docker(&parse_body::<d::SecretSpec>(&body, "secret")?)?;
    let secret = state
        .backend
        .control()
        .create_secret(s::CreateSecretRequest { spec: Some(spec) })
        .await?
        .into_inner();
    Ok((StatusCode::CREATED, Json(d::IdResponse { id: secret.id })))
}

async fn remove_secret(state: State, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state
        .backend
        .control()
        .remove_secret(s::RemoveSecretRequest { secret: id })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_configs(state: State, query: Query) -> ApiResult<Json<Vec<d::Config>>> {
    let filters = Filters::parse(query.get("filters").map(String::as_str))?;
    filters.only(&["id", "name", "names", "label"])?;
    let mut configs: Vec<d::Config> = state
        .backend
        .control()
        .list_configs(s::ListConfigsRequest {})
        .await?
        .into_inner()
        .configs
        .iter()
        .filter(|x| {
            let spec = x.spec.clone().unwrap_or_default();
            object_matches(&filters, &x.id, &spec.name, &spec.labels)
        })
        .map(config_to_docker)
        .collect();
    configs.sort_by(|a, b| {
        a.spec
            .as_ref()
            .map(|s| &s.name)
            .cmp(&b.spec.as_ref().map(|s| &s.name))
    });
    Ok(Json(configs))
}

async fn inspect_config(state: State, Path(id): Path<String>) -> ApiResult<Json<d::Config>> {
    let config = state
        .backend
        .control()
        .get_config(s::GetConfigRequest { config: id })
        .await?
        .into_inner();
    Ok(Json(config_to_docker(&config)))
}

async fn create_config(
    state: State,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<d::IdResponse>)> {
    let spec = config_spec_from_docker(&parse_body::<d::ConfigSpec>(&body, "config")?)?;
    let config = state
        .backend
        .control()
        .create_config(s::CreateConfigRequest { spec: Some(spec) })
        .await?
        .into_inner();
    Ok((StatusCode::CREATED, Json(d::IdResponse { id: config.id })))
}

async fn remove_config(state: State, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state
        .backend
        .control()
        .remove_config(s::RemoveConfigRequest { config: id })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn immutable(id: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{id}: shoal's secrets and configs are immutable, labels included: create a new one \
         and update the services to use it"
    ))
}

/// `docker stack deploy` "updates" every secret it finds already there,
/// with the spec it would create. An update that changes nothing is
/// accepted as the no-op it is; any change is refused (shoal's objects are
/// immutable). The front end cannot compare a secret's data — the control
/// API never returns it — so a secret matches on name and labels: a changed
/// secret file goes unnoticed here, as it would in the shoal CLI's
/// redeploy; rotate a secret under a new name.
async fn update_secret(
    state: State,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let wanted = secret_spec_from_docker(&parse_body::<d::SecretSpec>(&body, "secret")?)?;
    let current = get_secret(&state, &id).await?.spec.unwrap_or_default();
    if current.name == wanted.name && current.labels == wanted.labels {
        Ok(StatusCode::OK)
    } else {
        Err(immutable(&id))
    }
}

/// As [`update_secret`], comparing the config's data too (it is readable).
async fn update_config(
    state: State,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let wanted = config_spec_from_docker(&parse_body::<d::ConfigSpec>(&body, "config")?)?;
    let current = state
        .backend
        .control()
        .get_config(s::GetConfigRequest { config: id.clone() })
        .await?
        .into_inner()
        .spec
        .unwrap_or_default();
    if current == wanted {
        Ok(StatusCode::OK)
    } else {
        Err(immutable(&id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secrets_data_never_leaves() {
        let secret = s::Secret {
            id: "abc".into(),
            meta: None,
            spec: Some(s::SecretSpec {
                name: "db".into(),
                data: b"hunter2".to_vec(),
                ..Default::default()
            }),
        };
        let shown = serde_json::to_string(&secret_to_docker(&secret)).unwrap();
        assert!(!shown.contains("Data"), "{shown}");
        assert!(!shown.contains("aHVudGVyMg"), "{shown}");
    }

    #[test]
    fn data_travels_as_base64_and_drivers_are_refused() {
        let spec = d::SecretSpec {
            name: Some("db".into()),
            data: Some("aHVudGVyMg==".into()),
            ..Default::default()
        };
        assert_eq!(secret_spec_from_docker(&spec).unwrap().data, b"hunter2");
        let bad = d::SecretSpec {
            data: Some("***".into()),
            ..spec.clone()
        };
        assert!(secret_spec_from_docker(&bad).is_err());
        let vault = d::SecretSpec {
            driver: Some(d::Driver {
                name: "vault".into(),
                options: None,
            }),
            ..spec
        };
        let err = secret_spec_from_docker(&vault).unwrap_err();
        assert!(
            err.message.contains("drivers are not supported"),
            "{}",
            err.message
        );
    }

    #[test]
    fn filters_as_docker() {
        let labels = [("a".to_string(), "1".to_string())].into();
        let f = |raw: &str| Filters::parse(Some(raw)).unwrap();
        assert!(object_matches(
            &f(r#"{"name":{"demo_":true}}"#),
            "x",
            "demo_db",
            &labels
        ));
        assert!(!object_matches(
            &f(r#"{"names":{"demo":true}}"#),
            "x",
            "demo_db",
            &labels
        ));
        assert!(object_matches(
            &f(r#"{"label":{"a=1":true}}"#),
            "x",
            "db",
            &labels
        ));
        assert!(!object_matches(
            &f(r#"{"id":{"y":true}}"#),
            "x",
            "db",
            &labels
        ));
    }
}
