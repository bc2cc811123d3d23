//! The userspace L4 proxy: one listener per published port, forwarding to
//! the port's backends, picked at random per connection (TCP) or per
//! client flow (UDP).
//!
//! Backends (and whether to send the PROXY header) change under a running
//! proxy through a `watch` channel, never by rebinding its port: a backend
//! that leaves gets no new connection, and connections already open on it
//! keep going until either side closes — the proxy sets no idle timeout on
//! TCP. UDP has no close, so a flow is forgotten after
//! [`UDP_IDLE`] without datagrams (conntrack's own UDP stream timeout).
//!
//! With `proxy_protocol`, each TCP connection to a backend opens with a
//! PROXY protocol v1 line carrying the client's address, since the
//! backend otherwise sees this node's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

/// How long a UDP flow lives without datagrams.
pub const UDP_IDLE: Duration = Duration::from_secs(180);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

/// One published port as the proxy serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedPort {
    pub protocol: Protocol,
    pub published: u16,
    pub backends: Vec<SocketAddr>,
    pub proxy_protocol: bool,
}

/// Where a listener forwards new connections to, changed in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarding {
    pub backends: Vec<SocketAddr>,
    /// TCP: open each upstream connection with a PROXY protocol v1 line.
    pub proxy_protocol: bool,
}

fn pick(backends: &[SocketAddr]) -> Option<SocketAddr> {
    if backends.is_empty() {
        return None;
    }
    Some(backends[rand::thread_rng().gen_range(0..backends.len())])
}

/// The PROXY protocol v1 line for a connection from `client` to `local`.
pub fn proxy_header(client: SocketAddr, local: SocketAddr) -> String {
    let family = if client.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        client.ip(),
        local.ip(),
        client.port(),
        local.port()
    )
}

/// Serves TCP connections on `listener` until the task is aborted.
pub async fn serve_tcp(listener: TcpListener, forwarding: watch::Receiver<Forwarding>) {
    loop {
        let Ok((client, from)) = listener.accept().await else {
            continue;
        };
        let (backend, proxy_protocol) = {
            let now = forwarding.borrow();
            (pick(&now.backends), now.proxy_protocol)
        };
        let Some(backend) = backend else {
            // Nothing to forward to: closing at once tells the client.
            drop(client);
            continue;
        };
        tokio::spawn(async move {
            let local = client.local_addr().ok();
            let Ok(mut upstream) = TcpStream::connect(backend).await else {
                return;
            };
            let _ = upstream.set_nodelay(true);
            let _ = client.set_nodelay(true);
            if let (true, Some(local)) = (proxy_protocol, local) {
                if upstream
                    .write_all(proxy_header(from, local).as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let mut client = client;
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        });
    }
}

/// Serves UDP flows on `socket`: each client address gets its own upstream
/// socket connected to one backend; replies go back from the published port.
pub async fn serve_udp(socket: UdpSocket, forwarding: watch::Receiver<Forwarding>) {
    let socket = Arc::new(socket);
    let flows: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Arc::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let existing = flows.lock().await.get(&from).cloned();
        let upstream = match existing {
            Some(u) => u,
            None => {
                let Some(backend) = pick(&forwarding.borrow().backends) else {
                    continue;
                };
                let bind: SocketAddr = if backend.is_ipv4() {
                    "0.0.0.0:0".parse().expect("an address")
                } else {
                    "[::]:0".parse().expect("an address")
                };
                let Ok(u) = UdpSocket::bind(bind).await else {
                    continue;
                };
                if u.connect(backend).await.is_err() {
                    continue;
                }
                let u = Arc::new(u);
                flows.lock().await.insert(from, u.clone());
                let (reply, flows, u2) = (socket.clone(), flows.clone(), u.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, u2.recv(&mut buf)).await {
                        let _ = reply.send_to(&buf[..n], from).await;
                    }
                    flows.lock().await.remove(&from);
                });
                u
            }
        };
        let _ = upstream.send(&buf[..n]).await;
    }
}

struct Running {
    forwarding: watch::Sender<Forwarding>,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The proxies of this node, kept equal to the published ports.
#[derive(Default)]
pub struct Proxies {
    running: HashMap<(Protocol, u16), Running>,
    /// The address listeners bind (all addresses in production; a test's
    /// loopback address in tests).
    bind_ip: Option<std::net::IpAddr>,
}

impl Proxies {
    pub fn new(bind_ip: std::net::IpAddr) -> Proxies {
        Proxies {
            running: HashMap::new(),
            bind_ip: Some(bind_ip),
        }
    }

    /// Starts, updates and stops proxies so that exactly `ports` are
    /// served. A port whose listener cannot bind is reported and retried
    /// on the next call.
    pub async fn apply(&mut self, ports: &[ProxiedPort]) -> Vec<String> {
        let mut problems = Vec::new();
        self.running
            .retain(|key, _| ports.iter().any(|p| (p.protocol, p.published) == *key));
        for port in ports {
            let key = (port.protocol, port.published);
            let forwarding = Forwarding {
                backends: port.backends.clone(),
                proxy_protocol: port.proxy_protocol,
            };
            if let Some(r) = self.running.get_mut(&key) {
                r.forwarding.send_replace(forwarding);
                continue;
            }
            let ip = self
                .bind_ip
                .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
            let addr = SocketAddr::new(ip, port.published);
            let (tx, rx) = watch::channel(forwarding);
            let task = match port.protocol {
                Protocol::Tcp => match TcpListener::bind(addr).await {
                    Ok(l) => tokio::spawn(serve_tcp(l, rx)),
                    Err(e) => {
                        problems.push(format!("publishing {addr}/tcp: {e}"));
                        continue;
                    }
                },
                Protocol::Udp => match UdpSocket::bind(addr).await {
                    Ok(s) => tokio::spawn(serve_udp(s, rx)),
                    Err(e) => {
                        problems.push(format!("publishing {addr}/udp: {e}"));
                        continue;
                    }
                },
            };
            self.running.insert(
                key,
                Running {
                    forwarding: tx,
                    task,
                },
            );
        }
        problems
    }

    /// The ports served now.
    pub fn ports(&self) -> Vec<(Protocol, u16)> {
        let mut v: Vec<_> = self.running.keys().copied().collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests;
