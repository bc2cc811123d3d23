//! The etcd side of the write-throughput figure (issue 20): a 3-member etcd
//! cluster on loopback, driven at the shoal run's client concurrency for the
//! same duration, so that shoal's writes/s has a well-known Raft store beside
//! it, measured on the same machine in the same sitting.
//!
//! Each member is a real `etcd` process (Debian's `etcd-server`) on its own
//! loopback address (127.0.0.11–13, as the managers are on 127.0.0.1–3) with
//! free client and peer ports, its data dir under the bench's [`TestDir`],
//! bootstrapped statically (`--initial-cluster`). A write is a PUT of a
//! 200-byte value to the writer's own key through etcd's JSON gateway
//! (`POST /v3/kv/put`); only a `200 OK` counts as acknowledged.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;

use shoal_e2e::util::{patience, TestDir};

const MEMBERS: u8 = 3;
/// About a service spec: what a shoal write carries (a spec in its Raft
/// entry) is of this order, not a few bytes.
const VALUE_BYTES: usize = 200;
/// One request of the readiness poll; a member still starting may accept
/// the connection and answer late.
const POLL_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs the etcd side and prints its figure and the ratio `shoal_rate`/etcd's,
/// or one line saying why it was skipped.
pub async fn compare(dir: &TestDir, concurrency: usize, duration: Duration, shoal_rate: f64) {
    let Some(etcd) = etcd_on_path() else {
        println!("etcd comparison skipped: no `etcd` on PATH (apt-get install etcd-server)");
        return;
    };
    let version = etcd_version(&etcd);
    let cluster = Cluster::start(&etcd, &dir.dir.path().join("etcd"));
    let leader = cluster.wait_for_leader().await;

    // Every writer goes to the leader: shoal's figure is taken through its
    // leader's socket, so neither side pays a follower's forwarding hop
    // (etcd would forward a follower's proposal to its leader internally).
    let addr = cluster.members[leader].client;
    // Connected before the clock starts, as shoal's channel is.
    let mut connections = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        connections.push(
            Conn::connect(addr)
                .await
                .expect("connection to etcd's leader"),
        );
    }
    let acked = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut workers = Vec::new();
    for (w, mut conn) in connections.into_iter().enumerate() {
        let acked = acked.clone();
        let errors = errors.clone();
        workers.push(tokio::spawn(async move {
            let key = format!("bench/{w:04}");
            let mut i = 0u64;
            while Instant::now() < deadline {
                i += 1;
                match conn.post("/v3/kv/put", put_body(&key, w, i)).await {
                    Ok((StatusCode::OK, _)) => {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    // A broken connection: count it, and carry on with a new one.
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        if let Ok(fresh) = Conn::connect(addr).await {
                            conn = fresh;
                        }
                    }
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = acked.load(Ordering::Relaxed);
    let errors = errors.load(Ordering::Relaxed);
    let rate = total as f64 / elapsed;
    let errors = if errors == 0 {
        String::new()
    } else {
        format!(" ({errors} errors)")
    };
    println!(
        "etcd {version} write throughput ({MEMBERS} members on loopback, {VALUE_BYTES}-byte puts through the leader): \
         {total} puts acknowledged in {elapsed:.2} s with {concurrency} concurrent clients = {rate:.0} writes/s{errors}; \
         shoal/etcd = {:.2}",
        shoal_rate / rate
    );
    drop(cluster);
}

/// The first `etcd` on `PATH`.
fn etcd_on_path() -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join("etcd"))
        .find(|path| path.is_file())
}

/// `3.4.23` from `etcd --version`'s first line (`etcd Version: 3.4.23`).
fn etcd_version(etcd: &Path) -> String {
    let output = Command::new(etcd)
        .arg("--version")
        .output()
        .expect("etcd --version");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .next()
        .and_then(|line| line.rsplit(' ').next())
        .unwrap_or("(unknown version)")
        .to_string()
}

/// The request body of one put: the writer's key, a value that changes with
/// every write (as each shoal update carries a new label), padded to
/// [`VALUE_BYTES`].
fn put_body(key: &str, writer: usize, i: u64) -> Vec<u8> {
    let mut value = format!("{writer}:{i}:").into_bytes();
    value.resize(VALUE_BYTES, b'.');
    json!({ "key": BASE64.encode(key), "value": BASE64.encode(value) })
        .to_string()
        .into_bytes()
}

struct Member {
    name: String,
    client: SocketAddr,
    peer: SocketAddr,
    log: PathBuf,
}

/// The running members. Dropping it (also while a panic unwinds) kills them:
/// they are not the harness's daemons, and [`TestDir`]'s sweep only finds
/// programs under its own directory, not `/usr/bin/etcd`.
struct Cluster {
    members: Vec<Member>,
    children: Vec<Child>,
}

impl Cluster {
    fn start(etcd: &Path, root: &Path) -> Cluster {
        let members: Vec<Member> = (1..=MEMBERS)
            .map(|i| {
                let ip = Ipv4Addr::new(127, 0, 0, 10 + i);
                // Both bound at once so they differ, then released for etcd:
                // nothing else here picks ports on 127.0.0.11–13 meanwhile.
                let client = TcpListener::bind((ip, 0)).expect("a free client port");
                let peer = TcpListener::bind((ip, 0)).expect("a free peer port");
                Member {
                    name: format!("etcd{i}"),
                    client: client.local_addr().unwrap(),
                    peer: peer.local_addr().unwrap(),
                    log: root.join(format!("etcd{i}.log")),
                }
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        std::fs::create_dir_all(root).expect("etcd dir");
        let mut cluster = Cluster {
            members: Vec::new(),
            children: Vec::new(),
        };
        for member in members {
            let log = std::fs::File::create(&member.log).expect("etcd log file");
            let client_url = format!("http://{}", member.client);
            let peer_url = format!("http://{}", member.peer);
            let child = Command::new(etcd)
                .arg("--name")
                .arg(&member.name)
                .arg("--data-dir")
                .arg(root.join(&member.name))
                .args(["--listen-client-urls", &client_url])
                .args(["--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url])
                .args(["--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &initial_cluster])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", "shoal-bench"])
                // capnslog, 3.4's default, warns that it is deprecated.
                .args(["--logger", "zap", "--log-outputs", "stderr"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("etcd log file"))
                .stderr(log)
                .spawn()
                .expect("spawn etcd");
            // Held before the next spawn, so a failure there kills this one.
            cluster.children.push(child);
            cluster.members.push(member);
        }
        cluster
    }

    /// Polls every member's status until one says it is the leader and a put
    /// through it is acknowledged; returns its index.
    async fn wait_for_leader(&self) -> usize {
        let start = Instant::now();
        loop {
            let last = match self.leader().await {
                Ok(leader) => {
                    let body = put_body("bench/ready", 0, 0);
                    match request(self.members[leader].client, "/v3/kv/put", body).await {
                        Ok((StatusCode::OK, _)) => return leader,
                        Ok((status, body)) => {
                            format!("put: {status} {}", String::from_utf8_lossy(&body))
                        }
                        Err(e) => format!("put: {e:#}"),
                    }
                }
                Err(e) => format!("{e:#}"),
            };
            assert!(
                start.elapsed() < patience(),
                "timed out after {:?} waiting for etcd to take a write; last seen: {last}",
                patience()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The member that reports itself leader (`/v3/maintenance/status`:
    /// its own ID in `header.member_id` equals `leader`).
    async fn leader(&self) -> anyhow::Result<usize> {
        let mut seen = Vec::new();
        for (i, member) in self.members.iter().enumerate() {
            match request(member.client, "/v3/maintenance/status", b"{}".to_vec()).await {
                Ok((StatusCode::OK, body)) => {
                    let status: Value = serde_json::from_slice(&body)?;
                    let leader = &status["leader"];
                    if leader.is_string() && *leader == status["header"]["member_id"] {
                        return Ok(i);
                    }
                    seen.push(format!("{}: leader {leader}", member.name));
                }
                Ok((status, _)) => seen.push(format!("{}: {status}", member.name)),
                Err(e) => seen.push(format!("{}: {e:#}", member.name)),
            }
        }
        anyhow::bail!("no leader yet ({})", seen.join("; "))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for member in &self.members {
                let log = std::fs::read_to_string(&member.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- log of {} (last lines) ---", member.name);
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One request on a new connection, bounded by [`POLL_TIMEOUT`] (the
/// readiness poll).
async fn request(
    addr: SocketAddr,
    path: &str,
    body: Vec<u8>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    tokio::time::timeout(POLL_TIMEOUT, async {
        Conn::connect(addr).await?.post(path, body).await
    })
    .await
    .context("no answer")?
}

/// One keep-alive HTTP/1.1 connection to a member's client URL. hyper's own
/// client connection: its `client` feature is already built for tonic, so
/// this adds no code to the build (a pooled client would hide which
/// connection a writer uses; each writer has its own here).
struct Conn {
    host: String,
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        // Small request/response pairs: no Nagle delay on either side.
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // Drives the socket; ends when `sender` is dropped or the peer closes.
        tokio::spawn(connection);
        Ok(Conn {
            host: addr.to_string(),
            sender,
        })
    }

    /// POSTs a JSON `body` and reads the whole response (the connection is
    /// reusable only once it is read).
    async fn post(&mut self, path: &str, body: Vec<u8>) -> anyhow::Result<(StatusCode, Bytes)> {
        self.sender.ready().await?;
        let request = hyper::Request::post(path)
            .header(HOST, &self.host)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}
