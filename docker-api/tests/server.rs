//! The server itself on loopback TCP: version negotiation, the 501 for
//! what shoal does not serve, and answers when the daemon behind it is not
//! there. (The e2e suite drives it with the real docker CLI against a live
//! cluster; this covers the listener and routing without one.)

// A test crate: its helpers unwrap like its tests (the workspace denies
// unwrap_used in everything else).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use shoal_docker_api::{Backend, Config, Listen, Listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn request(addr: &str, method: &str, path: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let text = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("an answer within 10 s")
    .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[tokio::test]
async fn serves_versions_pings_and_refusals_on_loopback_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let listen: Listen = "tcp://127.0.0.1:0".parse().unwrap();
    let listener = Listener::bind(&listen).await.unwrap();
    let addr = listener
        .docker_host()
        .trim_start_matches("tcp://")
        .to_string();
    // No daemon behind it: the socket does not exist.
    let backend = Backend::unix(dir.path().join("absent.sock"));
    let config = Config {
        hostname: "node1".into(),
        shoal_version: "0.0.0".into(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(shoal_docker_api::serve(listener, backend, config, async {
        let _ = stopped.await;
    }));

    let (status, head, body) = request(&addr, "GET", "/_ping").await;
    assert_eq!((status, body.as_str()), (200, "OK"));
    assert!(head.contains("api-version: 1.47"), "{head}");
    assert!(head.contains("swarm: inactive"), "{head}");
    let (status, head, _) = request(&addr, "HEAD", "/v1.45/_ping").await;
    assert_eq!(status, 200);
    assert!(head.contains("ostype: linux"), "{head}");

    let (status, _, body) = request(&addr, "GET", "/v1.99/info").await;
    assert_eq!(status, 400);
    assert!(body.contains("too new"), "{body}");

    let (status, _, body) = request(&addr, "POST", "/v1.47/containers/create").await;
    assert_eq!(status, 501);
    assert!(
        body.contains("shoal does not support POST /containers/create"),
        "{body}"
    );

    // The daemon is down: a service answer says so, it does not hang.
    let (status, _, body) = request(&addr, "GET", "/v1.47/services").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("{\"message\":"), "{body}");

    let (status, _, _) = request(&addr, "GET", "/v1.47/networks?filters=%7B").await;
    assert_eq!(status, 400);

    stop.send(()).unwrap();
    server.await.unwrap();
}
