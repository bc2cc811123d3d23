//! Where the Docker API listens: `unix:///PATH` or `tcp://127.0.0.1:PORT`.
//!
//! **Decision:** TCP only on a loopback address for now. The Engine API
//! carries no authentication of its own — Docker protects TCP with TLS
//! client certificates — and whoever reaches it can create services, which
//! is code execution on every node. Mutual TLS with the cluster's CA can
//! lift the restriction later; until then a unix socket (file permissions
//! are the access check) or loopback is all that is offered.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A parsed `--docker-api` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl std::str::FromStr for Listen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(path) = text.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "invalid --docker-api {text:?}: a unix socket needs an absolute path \
                     (unix:///run/shoal/docker.sock)"
                ));
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        if let Some(addr) = text.strip_prefix("tcp://") {
            let addr: SocketAddr = addr.parse().map_err(|_| {
                format!("invalid --docker-api {text:?}: expected tcp://127.0.0.1:PORT")
            })?;
            if !addr.ip().is_loopback() {
                return Err(format!(
                    "invalid --docker-api {text:?}: the Docker API is served over TCP on loopback \
                     addresses only (it has no authentication of its own; mutual TLS is not \
                     implemented yet): use tcp://127.0.0.1:PORT or unix:///PATH"
                ));
            }
            return Ok(Listen::Tcp(addr));
        }
        Err(format!(
            "invalid --docker-api {text:?}: expected unix:///PATH or tcp://127.0.0.1:PORT"
        ))
    }
}

/// A bound listener of either kind.
pub enum Listener {
    Unix(tokio::net::UnixListener, PathBuf),
    Tcp(tokio::net::TcpListener),
}

impl Listener {
    /// Binds the address. A stale socket file (nobody answering) is
    /// replaced; a live one is refused. The socket gets the permissions of
    /// the process's umask (the daemon's is 077: owner only).
    pub async fn bind(listen: &Listen) -> std::io::Result<Listener> {
        match listen {
            Listen::Unix(path) => {
                replace_stale_socket(path)?;
                Ok(Listener::Unix(
                    tokio::net::UnixListener::bind(path)?,
                    path.clone(),
                ))
            }
            Listen::Tcp(addr) => Ok(Listener::Tcp(tokio::net::TcpListener::bind(addr).await?)),
        }
    }

    /// What `docker -H` takes to reach this listener.
    pub fn docker_host(&self) -> String {
        match self {
            Listener::Unix(_, path) => format!("unix://{}", path.display()),
            Listener::Tcp(l) => match l.local_addr() {
                Ok(addr) => format!("tcp://{addr}"),
                Err(_) => "tcp://?".into(),
            },
        }
    }
}

fn replace_stale_socket(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("something already listens on {}", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unix_and_loopback_tcp() {
        assert_eq!(
            "unix:///tmp/d.sock".parse::<Listen>().unwrap(),
            Listen::Unix("/tmp/d.sock".into())
        );
        assert_eq!(
            "tcp://127.0.0.1:2375".parse::<Listen>().unwrap(),
            Listen::Tcp("127.0.0.1:2375".parse().unwrap())
        );
        assert!("tcp://[::1]:2375".parse::<Listen>().is_ok());
    }

    #[test]
    fn refuses_what_would_expose_the_api() {
        let err = "tcp://0.0.0.0:2375".parse::<Listen>().unwrap_err();
        assert!(
            err.contains("loopback") && err.contains("mutual TLS"),
            "{err}"
        );
        assert!("tcp://10.0.0.1:2375".parse::<Listen>().is_err());
        assert!("unix://relative.sock".parse::<Listen>().is_err());
        assert!("/tmp/x.sock".parse::<Listen>().is_err());
        assert!("tcp://localhost".parse::<Listen>().is_err());
    }
}
