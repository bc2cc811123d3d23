//! `shoal daemon`: wires one node from the library crates — the local socket
//! always, the agent once the node is in a swarm, the manager when the node
//! is one — and resumes the node's role from its data dir after a restart.
//!
//! # Layout
//! - [`state`]: the node's membership record on disk (`state.json`).
//! - [`node`]: the running node: init, join, leave, resume, stop.
//! - [`local_api`]: the unix-socket server (local node API and control API).
//! - [`private`]: umask, data dir and socket permissions.
//! - [`renewal`]: renews this node's certificate before it expires.

pub mod local_api;
pub mod node;
pub mod private;
pub mod renewal;
pub mod state;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

/// How the daemon was started.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub data_dir: PathBuf,
    pub socket: PathBuf,
    pub hostname: String,
    /// A group allowed to use the socket besides the daemon's user.
    pub socket_group: Option<private::SocketGroup>,
}

/// Runs the daemon until `shutdown` resolves, then stops cleanly.
pub async fn run(
    config: DaemonConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Before anything is created: every file of the daemon is its own.
    private::restrict_umask();
    private::prepare_data_dir(&config.data_dir)?;
    let listener = local_api::bind(&config.socket, config.socket_group)?;
    let node = Arc::new(node::Node::new(config.clone()));
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
    node.stop().await;
    let _ = std::fs::remove_file(&config.socket);
    tracing::info!("shoal daemon stopped");
    served
}

/// The hostname this node reports unless `--hostname` says otherwise.
pub fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
