use super::*;
use std::collections::BTreeSet;
use tokio::io::AsyncReadExt;

/// A backend answering each connection with its name and what it read first.
async fn backend(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let first = String::from_utf8_lossy(&buf[..n]).into_owned();
                let _ = s.write_all(format!("{name}|{first}").as_bytes()).await;
            });
        }
    });
    addr
}

async fn ask(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"hi").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn tcp_connections_reach_every_backend_and_a_removed_one_gets_none() {
    let (a, b) = (backend("a").await, backend("b").await);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let entry = l.local_addr().unwrap();
    let (tx, rx) = watch::channel(Forwarding {
        backends: vec![a, b],
        proxy_protocol: false,
    });
    let proxy = tokio::spawn(serve_tcp(l, rx));
    let mut seen = BTreeSet::new();
    for _ in 0..40 {
        seen.insert(ask(entry).await.split('|').next().unwrap().to_string());
    }
    assert_eq!(seen, BTreeSet::from(["a".to_string(), "b".to_string()]));
    tx.send_replace(Forwarding {
        backends: vec![b],
        proxy_protocol: false,
    });
    for _ in 0..20 {
        assert_eq!(ask(entry).await, "b|hi");
    }
    proxy.abort();
}

#[tokio::test]
async fn the_proxy_protocol_header_carries_the_clients_address() {
    let a = backend("a").await;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let entry = l.local_addr().unwrap();
    let (_tx, rx) = watch::channel(Forwarding {
        backends: vec![a],
        proxy_protocol: true,
    });
    let proxy = tokio::spawn(serve_tcp(l, rx));
    let mut s = TcpStream::connect(entry).await.unwrap();
    let me = s.local_addr().unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert_eq!(
        out,
        format!(
            "a|PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\n",
            me.port(),
            entry.port()
        )
    );
    proxy.abort();
}

#[tokio::test]
async fn udp_flows_are_forwarded_and_answered_from_the_published_port() {
    let echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = echo.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 64];
        while let Ok((n, from)) = echo.recv_from(&mut buf).await {
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&buf[..n]);
            let _ = echo.send_to(&reply, from).await;
        }
    });
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let entry = s.local_addr().unwrap();
    let (_tx, rx) = watch::channel(Forwarding {
        backends: vec![echo_addr],
        proxy_protocol: false,
    });
    let proxy = tokio::spawn(serve_udp(s, rx));
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(entry).await.unwrap();
    let mut buf = [0u8; 64];
    // UDP may drop: ask until answered, within a deadline.
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            client.send(b"x").await.unwrap();
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(300), client.recv(&mut buf)).await
            {
                return buf[..n].to_vec();
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(answer, b"echo:x");
    proxy.abort();
}

#[tokio::test]
async fn proxies_follow_the_published_set() {
    let a = backend("a").await;
    // A free port for the published one (taken back at once).
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut proxies = Proxies::new("127.0.0.1".parse().unwrap());
    let published = ProxiedPort {
        protocol: Protocol::Tcp,
        published: port,
        backends: vec![a],
        proxy_protocol: false,
    };
    assert!(proxies
        .apply(std::slice::from_ref(&published))
        .await
        .is_empty());
    assert_eq!(ask(SocketAddr::from(([127, 0, 0, 1], port))).await, "a|hi");
    // Switching the PROXY header on changes the running listener in place
    // (a rebind would race the old listener's release): the next
    // connection already carries it.
    let with_header = ProxiedPort {
        proxy_protocol: true,
        ..published.clone()
    };
    assert!(proxies
        .apply(std::slice::from_ref(&with_header))
        .await
        .is_empty());
    let answer = ask(SocketAddr::from(([127, 0, 0, 1], port))).await;
    assert!(
        answer.starts_with("a|PROXY TCP4 127.0.0.1 127.0.0.1 "),
        "{answer}"
    );
    proxies.apply(&[]).await;
    assert!(proxies.ports().is_empty());
    // Stopped: the port is free again (the aborted listener is dropped
    // when its task is next polled; bind until it is, within a deadline).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(_) => break,
            Err(e) if std::time::Instant::now() > deadline => panic!("port still held: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
