//! `shoal example-server`: the quick start's example task. It answers every
//! HTTP request with one line naming the task and node that served it and
//! the client address it saw (through the routing mesh that is the real
//! client's, not a node's).
//!
//! Where it listens: by default 127.0.0.1:(base port + slot), so that each
//! replica on a node's own network is reachable on its own port; with
//! `--listen ADDR:PORT` on that one address, for replicas that have an
//! address of their own on an overlay network and are published through the
//! mesh. With `--state-dir DIR` it counts the requests it served in
//! `DIR/requests`, so a volume mounted there shows its data outliving the
//! task.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Options {
    pub base_port: u16,
    pub listen: Option<SocketAddr>,
    pub state_dir: Option<PathBuf>,
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let slot: u16 = std::env::var("SHOAL_TASK_SLOT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let name = std::env::var("SHOAL_TASK_NAME").unwrap_or_else(|_| "example".into());
    let node = std::env::var("SHOAL_NODE_ID").unwrap_or_default();
    let address = match options.listen {
        Some(address) => address,
        None => {
            let port = options
                .base_port
                .checked_add(slot)
                .context("base port plus slot is beyond 65535: choose a lower --base-port")?;
            SocketAddr::from(([127, 0, 0, 1], port))
        }
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    println!("{name} listening on {address}");
    let mut served = match &options.state_dir {
        Some(dir) => read_count(dir)?,
        None => 0,
    };
    loop {
        let (mut socket, client) = listener.accept().await?;
        served += 1;
        if let Some(dir) = &options.state_dir {
            // A lost count is not worth failing a request over: say so in
            // the task's log and keep answering.
            if let Err(e) = write_count(dir, served) {
                eprintln!(
                    "cannot record the request count in {}: {e:#}",
                    dir.display()
                );
            }
        }
        let mut body = format!("hello from {name} on node {node}; you are {client}");
        if options.state_dir.is_some() {
            body.push_str(&format!("; requests served from this volume: {served}"));
        }
        body.push('\n');
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        });
    }
}

fn count_file(dir: &Path) -> PathBuf {
    dir.join("requests")
}

fn read_count(dir: &Path) -> anyhow::Result<u64> {
    match std::fs::read_to_string(count_file(dir)) {
        Ok(text) => text.trim().parse().with_context(|| {
            format!(
                "{} does not hold a request count: remove it to start from 0",
                count_file(dir).display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", count_file(dir).display())),
    }
}

fn write_count(dir: &Path, count: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let partial = dir.join("requests.partial");
    std::fs::write(&partial, format!("{count}\n"))?;
    std::fs::rename(&partial, count_file(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_survives_a_restart_of_the_server() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_count(dir.path()).unwrap(), 0);
        write_count(dir.path(), 41).unwrap();
        assert_eq!(read_count(dir.path()).unwrap(), 41);
        std::fs::write(count_file(dir.path()), "garbage").unwrap();
        let error = read_count(dir.path()).unwrap_err().to_string();
        assert!(error.contains("remove it"), "{error}");
    }
}
