//! `shoal example-server`: the quick start's example task. It answers every
//! HTTP request with one line naming the task and node that served it, on
//! 127.0.0.1:(base port + slot), so each replica is reachable on its own port.

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub async fn run(base_port: u16) -> anyhow::Result<()> {
    let slot: u16 = std::env::var("SHOAL_TASK_SLOT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let name = std::env::var("SHOAL_TASK_NAME").unwrap_or_else(|_| "example".into());
    let node = std::env::var("SHOAL_NODE_ID").unwrap_or_default();
    let port = base_port
        .checked_add(slot)
        .context("base port plus slot is beyond 65535: choose a lower --base-port")?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    println!("{name} listening on 127.0.0.1:{port}");
    let body = format!("hello from {name} on node {node}\n");
    loop {
        let (mut socket, _) = listener.accept().await?;
        let body = body.clone();
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
