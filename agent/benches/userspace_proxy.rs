//! The userspace fallback of the routing mesh against going straight to
//! the backend (issue 16): `cargo bench -p shoal-agent --bench
//! userspace_proxy`.
//!
//! A backend (a thread per connection answering 16-byte exchanges) on
//! 127.0.0.1, and the agent's proxy (`ingress::proxy::Proxies`, as a node
//! without CAP_NET_ADMIN runs it, on a two-worker runtime like the
//! daemon's) on another port forwarding to it. 8 client threads, two
//! loads: a new TCP connection per exchange (connections/s) and exchanges
//! over one kept-alive connection per thread (requests/s), each direct and
//! through the proxy, `SHOAL_BENCH_RUNS` times (default 3). Prints req/s,
//! p50 and p99 and the ratio. In a cluster the proxy forwards to another
//! node's kernel mesh, whose cost the mesh benchmark measures; this is the
//! proxy's own part.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use shoal_agent::ingress::proxy::{Protocol, ProxiedPort, Proxies};

const THREADS: usize = 8;
const NEW_CONNECTIONS_PER_THREAD: usize = 300;
const EXCHANGES_PER_THREAD: usize = 2_000;
const MESSAGE: &[u8; 16] = b"0123456789abcdef";

/// Answers every 16 bytes with the same 16, a thread per connection.
fn start_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the backend");
    let addr = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let _ = stream.set_nodelay(true);
                let mut buf = [0u8; 16];
                while stream.read_exact(&mut buf).is_ok() {
                    if stream.write_all(&buf).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn exchange(stream: &mut TcpStream) {
    stream.write_all(MESSAGE).expect("a request");
    let mut buf = [0u8; 16];
    stream.read_exact(&mut buf).expect("an answer");
    assert_eq!(&buf, MESSAGE, "the answer is the request");
}

fn connect(to: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(to).expect("a connection");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

struct Figures {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

/// `per` timed calls of each thread's request function, on `THREADS`
/// threads at once.
fn measure<O, R>(per: usize, open: O) -> Figures
where
    O: Fn() -> R + Clone + Send + 'static,
    R: FnMut(),
{
    let start = Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let open = open.clone();
            std::thread::spawn(move || {
                let mut request = open();
                (0..per)
                    .map(|_| {
                        let t = Instant::now();
                        request();
                        t.elapsed()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut lat: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("a client thread"))
        .collect();
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    Figures {
        rps: lat.len() as f64 / secs,
        p50: lat[lat.len() / 2],
        p99: lat[lat.len() * 99 / 100],
    }
}

fn new_connections(to: SocketAddr) -> Figures {
    measure(NEW_CONNECTIONS_PER_THREAD, move || {
        move || exchange(&mut connect(to))
    })
}

fn kept_alive(to: SocketAddr) -> Figures {
    measure(EXCHANGES_PER_THREAD, move || {
        let mut stream = connect(to);
        move || exchange(&mut stream)
    })
}

fn report(load: &str, direct: &Figures, proxied: &Figures) {
    println!(
        "{load}: direct {:.0} req/s p50 {:?} p99 {:?} | userspace proxy {:.0} req/s p50 {:?} p99 {:?} | ratio proxy/direct {:.2}",
        direct.rps,
        direct.p50,
        direct.p99,
        proxied.rps,
        proxied.p50,
        proxied.p99,
        proxied.rps / direct.rps
    );
}

fn main() {
    let runs: usize = std::env::var("SHOAL_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let backend = start_backend();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let published = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut proxies = Proxies::new("127.0.0.1".parse().expect("an address"));
    let problems = runtime.block_on(proxies.apply(&[ProxiedPort {
        protocol: Protocol::Tcp,
        published,
        backends: vec![backend],
        proxy_protocol: false,
    }]));
    assert!(problems.is_empty(), "{problems:?}");
    let proxy = SocketAddr::from(([127, 0, 0, 1], published));
    // Both paths answer before anything is timed.
    exchange(&mut connect(backend));
    exchange(&mut connect(proxy));
    for run in 1..=runs {
        println!("run {run}/{runs}");
        report(
            "new connection per request",
            &new_connections(backend),
            &new_connections(proxy),
        );
        report(
            "kept-alive connections",
            &kept_alive(backend),
            &kept_alive(proxy),
        );
    }
    drop(proxies);
}
