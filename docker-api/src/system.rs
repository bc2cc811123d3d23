//! `/_ping`, `/version`, `/info`: what the CLI reads before anything else
//! (version negotiation, whether this node is a swarm manager) and what
//! `docker version` / `docker info` print.

use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use bollard::models as d;
use shoal_proto::v1::{GetClusterRequest, InfoResponse, ListNodesRequest, NodeRole};

use crate::api::{Api, State};
use crate::errors::ApiResult;
use crate::mapping::objects::cluster_info;
use crate::routing::{version_string, API_VERSION, MIN_API_VERSION};

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/_ping", get(ping))
        .route("/version", get(version))
        .route("/info", get(info))
}

/// The `Swarm` ping header: `inactive`, `active/worker` or `active/manager`.
pub fn swarm_header(info: Option<&InfoResponse>) -> &'static str {
    match info {
        Some(i) if i.local_node_state == "active" => {
            if i.role() == NodeRole::Manager {
                "active/manager"
            } else {
                "active/worker"
            }
        }
        _ => "inactive",
    }
}

/// GET and HEAD (axum answers HEAD with the GET route, without the body).
async fn ping(state: State) -> impl IntoResponse {
    let info = state.backend.info().await.ok();
    let mut headers = HeaderMap::new();
    headers.insert(
        "Api-Version",
        HeaderValue::from_str(&version_string(API_VERSION)).expect("version header"),
    );
    headers.insert("Ostype", HeaderValue::from_static("linux"));
    headers.insert("Docker-Experimental", HeaderValue::from_static("false"));
    headers.insert(
        "Swarm",
        HeaderValue::from_static(swarm_header(info.as_ref())),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    (headers, "OK")
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Go's name for this machine's architecture, as Docker reports it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

async fn version(state: State) -> Json<d::SystemVersion> {
    let shoal = state.config.shoal_version.clone();
    let details = [
        ("ApiVersion", version_string(API_VERSION)),
        ("MinAPIVersion", version_string(MIN_API_VERSION)),
        ("GitCommit", String::new()),
        ("GoVersion", "none (shoal is written in Rust)".to_string()),
        ("Os", "linux".to_string()),
        ("Arch", go_arch().to_string()),
        ("KernelVersion", kernel_version()),
        ("Experimental", "false".to_string()),
        ("BuildTime", String::new()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Json(d::SystemVersion {
        platform: Some(d::SystemVersionPlatform {
            name: format!("shoal {shoal} (Docker Engine API, swarm subset)"),
        }),
        components: Some(vec![d::SystemVersionComponents {
            name: "Engine".into(),
            version: format!("shoal-{shoal}"),
            details: Some(details),
        }]),
        version: Some(format!("shoal-{shoal}")),
        api_version: Some(version_string(API_VERSION)),
        min_api_version: Some(version_string(MIN_API_VERSION)),
        git_commit: Some(String::new()),
        go_version: Some("none (shoal is written in Rust)".into()),
        os: Some("linux".into()),
        arch: Some(go_arch().into()),
        kernel_version: Some(kernel_version()),
        experimental: Some(false),
        build_time: None,
    })
}

fn mem_total() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<i64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The Swarm section of `/info`, from this node's membership and, on a
/// manager, the node list and cluster.
pub async fn swarm_info(state: &Api) -> ApiResult<d::SwarmInfo> {
    let info = state.backend.info().await?;
    let active = info.local_node_state == "active";
    let manager = active && info.role() == NodeRole::Manager;
    let mut swarm = d::SwarmInfo {
        node_id: Some(info.node_id.clone()),
        node_addr: Some(info.node_addr.clone()),
        local_node_state: Some(if active {
            d::LocalNodeState::ACTIVE
        } else {
            d::LocalNodeState::INACTIVE
        }),
        control_available: Some(manager),
        error: Some(String::new()),
        remote_managers: Some(
            info.managers
                .iter()
                .map(|addr| d::PeerNode {
                    node_id: None,
                    addr: Some(addr.clone()),
                })
                .collect(),
        ),
        nodes: None,
        managers: None,
        cluster: None,
    };
    if manager {
        let mut control = state.backend.control();
        let nodes = control
            .list_nodes(ListNodesRequest {})
            .await?
            .into_inner()
            .nodes;
        swarm.nodes = Some(nodes.len() as i64);
        swarm.managers = Some(nodes.iter().filter(|n| n.manager_status.is_some()).count() as i64);
        let cluster = control
            .get_cluster(GetClusterRequest {})
            .await?
            .into_inner();
        swarm.cluster = Some(cluster_info(&cluster));
    }
    Ok(swarm)
}

async fn info(state: State) -> ApiResult<Json<d::SystemInfo>> {
    let swarm = swarm_info(&state).await?;
    Ok(Json(d::SystemInfo {
        id: swarm.node_id.clone(),
        containers: Some(0),
        containers_running: Some(0),
        containers_paused: Some(0),
        containers_stopped: Some(0),
        images: Some(0),
        name: Some(state.config.hostname.clone()),
        server_version: Some(format!("shoal-{}", state.config.shoal_version)),
        os_type: Some("linux".into()),
        operating_system: Some("shoal (Docker Engine API, swarm subset)".into()),
        architecture: Some(std::env::consts::ARCH.into()),
        kernel_version: Some(kernel_version()),
        ncpu: Some(std::thread::available_parallelism().map_or(1, |n| n.get() as i64)),
        mem_total: Some(mem_total()),
        experimental_build: Some(false),
        live_restore_enabled: Some(false),
        debug: Some(false),
        swarm: Some(swarm),
        // The CLI prints these instead of its own guesses about a local
        // engine's features (memory limits, swap…), which do not apply.
        warnings: Some(vec![
            "WARNING: this is shoal's Docker Engine API: it serves swarm operations (nodes, \
             services, tasks, stacks, swarm) and no containers, images or volumes of its own"
                .into(),
        ]),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swarm_header_follows_membership_and_role() {
        assert_eq!(swarm_header(None), "inactive");
        let mut info = InfoResponse {
            local_node_state: "inactive".into(),
            ..Default::default()
        };
        assert_eq!(swarm_header(Some(&info)), "inactive");
        info.local_node_state = "active".into();
        assert_eq!(swarm_header(Some(&info)), "active/worker");
        info.set_role(NodeRole::Manager);
        assert_eq!(swarm_header(Some(&info)), "active/manager");
    }
}
