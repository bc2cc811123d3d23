//! `shoal daemon`: wires one node from the library crates — the local socket
//! always, the agent once the node is in a swarm, the manager when the node
//! is one — and resumes the node's role from its data dir after a restart.
//!
//! # Layout
//! - [`config`]: how the daemon was started ([`DaemonConfig`]).
//! - [`state`]: the node's membership record on disk (`state.json`).
//! - [`membership`]: this node's swarm membership and what runs for it:
//!   init, join, leave, promotion and demotion, resume, stop.
//! - [`addresses`]: listen, advertise and manager addresses.
//! - [`local_api`]: the unix-socket server (local node API and control API).
//! - [`private`]: umask, data dir and socket permissions.
//! - [`renewal`]: renews this node's certificate before it expires.

pub mod addresses;
pub mod config;
pub mod local_api;
pub mod membership;
pub mod private;
pub mod renewal;
pub mod state;

use std::sync::Arc;

use anyhow::Context;

pub use config::DaemonConfig;

/// Runs the daemon until `shutdown` resolves, then stops cleanly.
pub async fn run(
    config: DaemonConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Before anything is created: every file of the daemon is its own.
    private::restrict_umask();
    private::prepare_data_dir(&config.data_dir)?;
    let listener = local_api::bind(&config.socket, config.socket_group)?;
    let docker_api = match &config.docker_api {
        Some(listen) => Some(docker_api(&config, listen).await?),
        None => None,
    };
    let node = Arc::new(membership::Membership::new(config.clone()));
    node.resume()
        .await
        .context("cannot resume this node's swarm membership from its data dir")?;
    let follower = tokio::spawn(node.clone().follow_desired_role());
    let renewer = tokio::spawn(renewal::run(
        node.clone(),
        config.hostname.clone(),
        config.data_dir.clone(),
    ));
    tracing::info!(socket = %config.socket.display(), data_dir = %config.data_dir.display(), "shoal daemon ready");
    let served = local_api::serve(node.clone(), listener, shutdown).await;
    follower.abort();
    renewer.abort();
    if let Some(docker_api) = docker_api {
        docker_api.abort();
    }
    if let Some(shoal_docker_api::Listen::Unix(path)) = &config.docker_api {
        let _ = std::fs::remove_file(path);
    }
    node.stop().await;
    let _ = std::fs::remove_file(&config.socket);
    tracing::info!("shoal daemon stopped");
    served
}

/// Binds the Docker Engine API (before anything else starts, so that a bad
/// address fails the start) and serves it over the daemon's own socket:
/// the same access rule as the socket (owner, and `--group` when given).
async fn docker_api(
    config: &DaemonConfig,
    listen: &shoal_docker_api::Listen,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = shoal_docker_api::Listener::bind(listen)
        .await
        .with_context(|| format!("cannot serve the Docker API on {listen:?}"))?;
    if let shoal_docker_api::Listen::Unix(path) = listen {
        private::share_socket(path, config.socket_group)?;
    }
    tracing::info!(docker_host = %listener.docker_host(), "serving the Docker Engine API");
    let backend = shoal_docker_api::Backend::unix(config.socket.clone());
    let api_config = shoal_docker_api::Config {
        hostname: config.hostname.clone(),
        shoal_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    Ok(tokio::spawn(shoal_docker_api::serve(
        listener,
        backend,
        api_config,
        std::future::pending(),
    )))
}

/// The hostname this node reports unless `--hostname` says otherwise.
pub fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
