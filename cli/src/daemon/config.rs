//! How the daemon was started: what every part of it reads.

use std::path::PathBuf;

/// How the daemon was started.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub data_dir: PathBuf,
    pub socket: PathBuf,
    pub hostname: String,
    /// A group allowed to use the socket besides the daemon's user.
    pub socket_group: Option<super::private::SocketGroup>,
    /// Where to serve the Docker Engine API, if at all (`--docker-api`).
    pub docker_api: Option<shoal_docker_api::Listen>,
}
