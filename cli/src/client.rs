//! Reaching the daemon: the socket path (`-H`, `SHOAL_HOST`, or the
//! default), the connection, and the wording of failures.

use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use shoal_proto::v1::control_client::ControlClient;
use tonic::transport::{Channel, Endpoint, Uri};

/// The default socket: `/run/shoal/shoal.sock` for root, else a per-user path.
pub fn default_socket() -> PathBuf {
    if is_root() {
        return PathBuf::from("/run/shoal/shoal.sock");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) => PathBuf::from(dir).join("shoal/shoal.sock"),
        None => std::env::temp_dir().join(format!("shoal-{}/shoal.sock", uid())),
    }
}

fn uid() -> u32 {
    // The owner of /proc/self is this process's user, without unsafe libc calls.
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

fn is_root() -> bool {
    uid() == 0
}

/// `-H` accepts `unix:///path` or a plain path. The default path's directory
/// must be this user's alone (see `daemon::private::check_own_dir`).
pub fn socket_path(host: Option<&str>) -> anyhow::Result<PathBuf> {
    match host {
        None | Some("") => {
            let path = default_socket();
            if let Some(dir) = path.parent() {
                crate::daemon::private::check_own_dir(dir, uid())?;
            }
            Ok(path)
        }
        Some(h) => {
            if let Some(path) = h.strip_prefix("unix://") {
                Ok(PathBuf::from(path))
            } else if h.contains("://") {
                anyhow::bail!(
                    "unsupported daemon address {h:?}: use unix:///path/to.sock or a plain path"
                )
            } else {
                Ok(PathBuf::from(h))
            }
        }
    }
}

/// A failure to reach the daemon, worded for the operator.
#[derive(Debug, thiserror::Error)]
pub enum DaemonUnreachable {
    #[error("cannot reach the shoal daemon at {path}: is it running? (start it with `shoal daemon`; choose another socket with -H or SHOAL_HOST)")]
    NotRunning { path: String },
    #[error("permission denied on the shoal daemon's socket {path}: run as the daemon's user (root), or start the daemon with `--group NAME` and join that group")]
    PermissionDenied { path: String },
}

/// Connects to the daemon's socket.
pub async fn connect(host: Option<&str>) -> anyhow::Result<Channel> {
    let path = socket_path(host)?;
    let display = path.display().to_string();
    // The URI is a placeholder: the connector always dials the socket.
    let channel = Endpoint::from_static("http://shoal.local")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| {
            if io_error_kind(&e) == Some(std::io::ErrorKind::PermissionDenied) {
                DaemonUnreachable::PermissionDenied { path: display }
            } else {
                DaemonUnreachable::NotRunning { path: display }
            }
        })?;
    Ok(channel)
}

/// A control client over `channel` (to the node's own daemon) that reads
/// answers as large as the cluster's listings
/// ([`shoal_proto::MAX_RESPONSE_BYTES`]).
pub fn control(channel: Channel) -> ControlClient<Channel> {
    ControlClient::new(channel).max_decoding_message_size(shoal_proto::MAX_RESPONSE_BYTES)
}

/// The kind of the I/O error somewhere in `error`'s chain of sources.
fn io_error_kind(error: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = e.source();
    }
    None
}

/// The text after `Error: ` for any failure: a gRPC status shows its message
/// only, other errors their chain.
pub fn describe_error(error: &anyhow::Error) -> String {
    if let Some(status) = error.downcast_ref::<tonic::Status>() {
        return status.message().to_string();
    }
    format!("{error:#}")
}
