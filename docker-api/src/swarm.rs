//! `/swarm`: `docker swarm init|join|join-token|leave|update`, mapped onto
//! shoal's local node API (membership) and control API (cluster settings,
//! join tokens).

use std::sync::Arc;

use axum::routing::{get, post};
use axum::{Json, Router};
use bollard::models as d;
use shoal_proto::v1 as s;

use crate::api::{query_flag, Api, Query, State};
use crate::errors::{ApiError, ApiResult};
use crate::mapping::objects::{swarm_spec_to_docker, swarm_to_docker};
use crate::mapping::time::ns_to_ms;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/swarm", get(inspect))
        .route("/swarm/init", post(init))
        .route("/swarm/join", post(join))
        .route("/swarm/leave", post(leave))
        .route("/swarm/update", post(update))
}

async fn get_cluster(state: &Api) -> ApiResult<s::Cluster> {
    Ok(state
        .backend
        .control()
        .get_cluster(s::GetClusterRequest {})
        .await?
        .into_inner())
}

async fn inspect(state: State) -> ApiResult<Json<d::Swarm>> {
    Ok(Json(swarm_to_docker(&get_cluster(&state).await?)))
}

fn decode<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid {what}: {e}")))
}

/// `POST /swarm/init`; answers the new node's ID as a JSON string.
async fn init(state: State, body: axum::body::Bytes) -> ApiResult<Json<String>> {
    let request: d::SwarmInitRequest = decode(&body, "swarm init request")?;
    if request
        .data_path_addr
        .as_deref()
        .is_some_and(|a| !a.is_empty())
        || request.data_path_port.is_some_and(|p| p != 0)
    {
        return Err(ApiError::bad_request(
            "shoal's overlay traffic uses each node's advertise address: --data-path-addr and \
             --data-path-port cannot be set",
        ));
    }
    if request
        .spec
        .as_ref()
        .and_then(|s| s.encryption_config.as_ref())
        .is_some_and(|e| e.auto_lock_managers == Some(true))
    {
        return Err(ApiError::bad_request(
            "shoal's Docker API does not serve autolock yet: create the swarm with              `shoal swarm init --autolock`, then `shoal swarm unlock-key` shows the key",
        ));
    }
    let heartbeat_ms = match request
        .spec
        .as_ref()
        .and_then(|s| s.dispatcher.as_ref())
        .and_then(|d| d.heartbeat_period)
    {
        Some(ns) => ns_to_ms(ns, "Dispatcher.HeartbeatPeriod").map_err(ApiError::bad_request)?,
        None => 0,
    };
    let answer = state
        .backend
        .local()
        .init(s::InitRequest {
            listen_addr: request.listen_addr.unwrap_or_default(),
            advertise_addr: request.advertise_addr.unwrap_or_default(),
            force_new_cluster: request.force_new_cluster.unwrap_or(false),
            raft: None,
            dispatcher_heartbeat_ms: heartbeat_ms,
            autolock: false,
            default_addr_pool: request.default_addr_pool.clone().unwrap_or_default(),
            default_addr_pool_mask_length: request.subnet_size.unwrap_or(0),
            node_provisioning: None,
        })
        .await?
        .into_inner();
    Ok(Json(answer.node_id))
}

async fn join(state: State, body: axum::body::Bytes) -> ApiResult<()> {
    let request: d::SwarmJoinRequest = decode(&body, "swarm join request")?;
    let remote = request
        .remote_addrs
        .unwrap_or_default()
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::bad_request("a manager address to join is required"))?;
    state
        .backend
        .local()
        .join(s::JoinRequest {
            token: request.join_token.unwrap_or_default(),
            remote_addr: remote,
            listen_addr: request.listen_addr.unwrap_or_default(),
            advertise_addr: request.advertise_addr.unwrap_or_default(),
        })
        .await?;
    Ok(())
}

async fn leave(state: State, query: Query) -> ApiResult<()> {
    state
        .backend
        .local()
        .leave(s::LeaveRequest {
            force: query_flag(&query, "force"),
        })
        .await?;
    Ok(())
}

/// What `POST /swarm/update` changes in shoal's terms, or why it cannot.
pub fn cluster_update(
    current: &s::Cluster,
    new: &d::SwarmSpec,
) -> Result<s::UpdateClusterRequest, ApiError> {
    let now = swarm_spec_to_docker(current);
    let mut request = s::UpdateClusterRequest::default();
    let heartbeat = new.dispatcher.as_ref().and_then(|d| d.heartbeat_period);
    if heartbeat.is_some() && heartbeat != now.dispatcher.as_ref().and_then(|d| d.heartbeat_period)
    {
        request.dispatcher_heartbeat_ms = heartbeat
            .map(|ns| ns_to_ms(ns, "Dispatcher.HeartbeatPeriod"))
            .transpose()
            .map_err(ApiError::bad_request)?;
    }
    let history = new
        .orchestration
        .as_ref()
        .and_then(|o| o.task_history_retention_limit);
    if history.is_some()
        && history
            != now
                .orchestration
                .as_ref()
                .and_then(|o| o.task_history_retention_limit)
    {
        let limit = history.unwrap_or(0);
        if limit < 0 {
            return Err(ApiError::bad_request(
                "the task history limit must not be negative",
            ));
        }
        request.task_history_limit = Some(limit as u64);
    }
    let expiry = new.ca_config.as_ref().and_then(|c| c.node_cert_expiry);
    if expiry.is_some() && expiry != now.ca_config.as_ref().and_then(|c| c.node_cert_expiry) {
        let ns = expiry.unwrap_or(0);
        if ns < 0 {
            return Err(ApiError::bad_request(
                "the certificate expiry must not be negative",
            ));
        }
        request.node_cert_expiry_secs = Some((ns / 1_000_000_000) as u64);
    }
    let mut refused = Vec::new();
    if new.ca_config.as_ref().is_some_and(|c| {
        c.external_cas.as_ref().is_some_and(|e| !e.is_empty())
            || c.signing_ca_cert.as_ref().is_some_and(|s| !s.is_empty())
            || c.force_rotate.is_some_and(|r| r != 0)
    }) {
        refused.push("CA rotation and external CAs (swarm ca, --external-ca)");
    }
    if new
        .encryption_config
        .as_ref()
        .is_some_and(|e| e.auto_lock_managers == Some(true))
    {
        refused.push("autolock (--autolock)");
    }
    let raft = |s: &d::SwarmSpec| s.raft.as_ref().and_then(|r| r.snapshot_interval);
    if new.raft.is_some() && raft(new).is_some() && raft(new) != raft(&now) {
        refused.push("Raft settings after init (--snapshot-interval)");
    }
    if new
        .task_defaults
        .as_ref()
        .is_some_and(|t| t.log_driver.is_some())
    {
        refused.push("a default log driver (--log-driver)");
    }
    if !refused.is_empty() {
        return Err(ApiError::bad_request(format!(
            "shoal does not support {} in swarm update",
            refused.join(", ")
        )));
    }
    Ok(request)
}

async fn update(state: State, query: Query, body: axum::body::Bytes) -> ApiResult<()> {
    let version: u64 = query
        .get("version")
        .ok_or_else(|| ApiError::bad_request("the version query parameter is required"))?
        .parse()
        .map_err(|_| ApiError::bad_request("invalid version: expected a number"))?;
    let spec: d::SwarmSpec = decode(&body, "swarm spec")?;
    let current = get_cluster(&state).await?;
    let at = current.meta.as_ref().map_or(0, |m| m.version);
    if at != version {
        return Err(ApiError::conflict(format!(
            "update out of sequence: the swarm is at version {at}, the update was made for \
             {version}; inspect it again and retry"
        )));
    }
    if query_flag(&query, "rotateManagerUnlockKey") {
        return Err(ApiError::unsupported(
            "autolock unlock keys (--rotate-manager-unlock-key)",
        ));
    }
    let request = cluster_update(&current, &spec)?;
    let mut control = state.backend.control();
    if request.dispatcher_heartbeat_ms.is_some()
        || request.task_history_limit.is_some()
        || request.node_cert_expiry_secs.is_some()
    {
        control.update_cluster(request).await?;
    }
    for (flag, role) in [
        ("rotateWorkerToken", s::NodeRole::Worker),
        ("rotateManagerToken", s::NodeRole::Manager),
    ] {
        if query_flag(&query, flag) {
            control
                .rotate_join_token(s::RotateJoinTokenRequest { role: role as i32 })
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> s::Cluster {
        s::Cluster {
            id: "c1".into(),
            spec: Some(s::ClusterSpec {
                dispatcher: Some(s::DispatcherConfig {
                    heartbeat_period_ms: 1000,
                }),
                orchestration: Some(s::OrchestrationConfig {
                    task_history_limit: 5,
                }),
                node_cert_expiry_secs: 90 * 86400,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn an_unchanged_spec_changes_nothing() {
        let c = cluster();
        let r = cluster_update(&c, &swarm_spec_to_docker(&c)).unwrap();
        assert_eq!(r, s::UpdateClusterRequest::default());
    }

    #[test]
    fn changed_settings_map_to_update_cluster() {
        let c = cluster();
        let mut spec = swarm_spec_to_docker(&c);
        spec.orchestration = Some(d::SwarmSpecOrchestration {
            task_history_retention_limit: Some(2),
        });
        spec.dispatcher = Some(d::SwarmSpecDispatcher {
            heartbeat_period: Some(2_000_000_000),
        });
        let r = cluster_update(&c, &spec).unwrap();
        assert_eq!(r.task_history_limit, Some(2));
        assert_eq!(r.dispatcher_heartbeat_ms, Some(2000));
        assert_eq!(r.node_cert_expiry_secs, None);
    }

    #[test]
    fn autolock_is_refused() {
        let c = cluster();
        let mut spec = swarm_spec_to_docker(&c);
        spec.encryption_config = Some(d::SwarmSpecEncryptionConfig {
            auto_lock_managers: Some(true),
        });
        assert!(cluster_update(&c, &spec)
            .unwrap_err()
            .message
            .contains("autolock"));
    }
}
