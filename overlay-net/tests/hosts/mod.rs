//! Two "hosts" as network namespaces for the overlay suites.
//!
//! Each host is a namespace the test creates, joined to the other by a veth
//! pair on an underlay subnet of the test's own, 192.168.251.0/24 (host 1 is
//! .1, host 2 is .2) — it exists only inside these namespaces, so parallel
//! tests (each with its own pair) cannot meet and nothing outside is ever
//! addressed. Nothing is bridged in the root namespace, so Docker's FORWARD
//! DROP policy there is not involved. Task namespaces are named namespaces
//! too. Everything is removed on drop, also when the test fails; the names
//! carry the test process's PID and a counter.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use shoal_overlay_net::netns::NetNs;

/// Whether to run a privileged test: with `SHOAL_E2E_PRIVILEGED=1` (CI sets
/// it) it must run, and not being root is a failure, not a skip.
pub fn privileged(test: &str) -> bool {
    if std::env::var("SHOAL_E2E_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!("SKIPPED {test}: needs root; set SHOAL_E2E_PRIVILEGED=1 to run it (CI does)");
        return false;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "SHOAL_E2E_PRIVILEGED=1 but this test does not run as root"
    );
    true
}

/// A tag unique to this test process and call, for every name made.
pub fn unique_tag() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("{}x{n}", std::process::id())
}

/// Runs a command that must succeed; returns its stdout.
#[track_caller]
pub fn must(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "`{program} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The underlay address of host `i` (1 or 2).
pub fn underlay(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 251, i)
}

/// The two hosts and the task namespaces of one test.
pub struct Hosts {
    pub tag: String,
    hosts: Vec<String>,
    tasks: Vec<String>,
}

impl Hosts {
    pub fn new() -> Hosts {
        let tag = unique_tag();
        let mut hosts = Hosts {
            tag: tag.clone(),
            hosts: Vec::new(),
            tasks: Vec::new(),
        };
        for i in 1..=2 {
            let name = format!("shoal-ovl-{tag}-h{i}");
            NetNs::create(&name).expect("creating a host namespace");
            hosts.hosts.push(name);
        }
        // The underlay: one veth pair, made in the root namespace under
        // unique names and moved at once.
        let (a, b) = (format!("sou{tag}a"), format!("sou{tag}b"));
        must(
            "ip",
            &["link", "add", &a, "type", "veth", "peer", "name", &b],
        );
        must("ip", &["link", "set", &a, "netns", &hosts.hosts[0]]);
        must("ip", &["link", "set", &b, "netns", &hosts.hosts[1]]);
        for (i, dev) in [(1u8, &a), (2u8, &b)] {
            hosts.ip(i, &["link", "set", dev, "name", "ul0"]);
            hosts.ip(
                i,
                &["addr", "add", &format!("{}/24", underlay(i)), "dev", "ul0"],
            );
            hosts.ip(i, &["link", "set", "ul0", "up"]);
            hosts.ip(i, &["link", "set", "lo", "up"]);
        }
        hosts
    }

    /// The namespace name of host `i`.
    pub fn host(&self, i: u8) -> &str {
        &self.hosts[usize::from(i - 1)]
    }

    pub fn host_ns(&self, i: u8) -> NetNs {
        NetNs::open(self.host(i)).expect("opening a host namespace")
    }

    /// A new task namespace; returns its name.
    pub fn task_ns(&mut self, short: &str) -> String {
        let name = format!("shoal-ovl-{}-{short}", self.tag);
        NetNs::create(&name).expect("creating a task namespace");
        self.tasks.push(name.clone());
        name
    }

    /// A client outside the cluster: a namespace joined to host `i` by a
    /// veth on a subnet of its own, `192.168.(10+i).0/24` (host .1, client
    /// .2), its default route via the host. Returns its name and address.
    pub fn client(&mut self, i: u8) -> (String, Ipv4Addr) {
        let name = self.task_ns(&format!("c{i}"));
        let (a, b) = (
            format!("soc{}{i}a", self.tag),
            format!("soc{}{i}b", self.tag),
        );
        must(
            "ip",
            &["link", "add", &a, "type", "veth", "peer", "name", &b],
        );
        must("ip", &["link", "set", &a, "netns", self.host(i)]);
        must("ip", &["link", "set", &b, "netns", &name]);
        let net = 10 + i;
        self.ip(
            i,
            &["addr", "add", &format!("192.168.{net}.1/24"), "dev", &a],
        );
        self.ip(i, &["link", "set", &a, "up"]);
        let client = Ipv4Addr::new(192, 168, net, 2);
        for args in [
            vec!["addr", "add", &format!("{client}/24") as &str, "dev", &b],
            vec!["link", "set", &b, "up"],
            vec!["link", "set", "lo", "up"],
            vec![
                "route",
                "add",
                "default",
                "via",
                &format!("192.168.{net}.1") as &str,
            ],
        ] {
            let mut all = vec!["-n", name.as_str()];
            all.extend(args.iter().map(|s| &**s));
            must("ip", &all);
        }
        (name, client)
    }

    /// `ip -n HOST ARGS…` on host `i`; returns stdout.
    #[track_caller]
    pub fn ip(&self, i: u8, args: &[&str]) -> String {
        let mut all = vec!["-n", self.host(i)];
        all.extend(args);
        must("ip", &all)
    }

    /// `bridge -n HOST ARGS…` on host `i`.
    #[track_caller]
    pub fn bridge(&self, i: u8, args: &[&str]) -> String {
        let mut all = vec!["-n", self.host(i)];
        all.extend(args);
        must("bridge", &all)
    }

    /// The names of the links of host `i`.
    pub fn links(&self, i: u8) -> Vec<String> {
        link_names(&self.ip(i, &["-o", "link", "show"]))
    }

    /// The neighbour entries on a device of host `i`, as `IP MAC` lines.
    pub fn neighbours(&self, i: u8, dev: &str) -> Vec<String> {
        let mut lines: Vec<String> = self
            .ip(i, &["neigh", "show", "dev", dev])
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|l| !l.is_empty())
            .collect();
        lines.sort();
        lines
    }

    /// The FDB entries of a device of host `i`, leaving out the bridge's
    /// permanent entries for the port's own addresses.
    pub fn fdb(&self, i: u8, dev: &str) -> Vec<String> {
        let mut lines: Vec<String> = self
            .bridge(i, &["fdb", "show", "dev", dev])
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|l| !l.is_empty())
            .filter(|l| !(l.contains(" master ") && l.ends_with(" permanent")))
            .collect();
        lines.sort();
        lines
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // Deleting a namespace deletes the devices in it; errors are
        // printed so that a failing test's drop still removes the rest.
        for name in self.tasks.iter().chain(&self.hosts) {
            if let Err(e) = NetNs::delete(name) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// Interface names from `ip -o link show` (`3: name@peer: <…>`).
pub fn link_names(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// The named namespaces that exist (`ip netns list`).
pub fn named_namespaces() -> Vec<String> {
    must("ip", &["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// A TCP echo server inside a namespace; serves until the test ends.
pub fn tcp_echo(ns: &str, addr: SocketAddr) {
    let listener = NetNs::open(ns)
        .unwrap()
        .run(move || TcpListener::bind(addr))
        .unwrap()
        .expect("binding the TCP echo server");
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
}

/// A UDP echo server inside a namespace.
pub fn udp_echo(ns: &str, addr: SocketAddr) {
    let socket = NetNs::open(ns)
        .unwrap()
        .run(move || UdpSocket::bind(addr))
        .unwrap()
        .expect("binding the UDP echo server");
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], from);
        }
    });
}

/// A TCP round trip from inside `ns` to `to`: connect, send, read the echo.
pub fn tcp_probe(ns: &str, to: SocketAddr) -> Result<(), String> {
    NetNs::open(ns)
        .unwrap()
        .run(move || -> Result<(), String> {
            let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(3))
                .map_err(|e| format!("connect {to}: {e}"))?;
            stream
                .set_read_timeout(Some(Duration::from_secs(3)))
                .unwrap();
            stream.write_all(b"shoal").map_err(|e| e.to_string())?;
            let mut buf = [0u8; 5];
            stream
                .read_exact(&mut buf)
                .map_err(|e| format!("read from {to}: {e}"))?;
            if &buf == b"shoal" {
                Ok(())
            } else {
                Err(format!("{to} echoed {buf:?}"))
            }
        })
        .unwrap()
}

/// A UDP round trip from inside `ns`: a datagram and its echo, retried
/// (UDP may drop) until `deadline`.
pub fn udp_probe(ns: &str, to: SocketAddr, patience: Duration) -> Result<(), String> {
    NetNs::open(ns)
        .unwrap()
        .run(move || -> Result<(), String> {
            let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
            socket
                .set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let deadline = Instant::now() + patience;
            let mut last = String::from("no answer");
            while Instant::now() < deadline {
                if let Err(e) = socket.send_to(b"shoal", to) {
                    last = e.to_string();
                    // An unreachable answer ends the wait for this attempt.
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                let mut buf = [0u8; 16];
                match socket.recv_from(&mut buf) {
                    Ok((5, from)) if from == to && &buf[..5] == b"shoal" => return Ok(()),
                    Ok((_, from)) => last = format!("unexpected datagram from {from}"),
                    Err(e) => last = e.to_string(),
                }
            }
            Err(format!("UDP to {to}: {last}"))
        })
        .unwrap()
}

/// A TCP server inside a namespace that answers each connection with the
/// address it was reached on (after any DNAT: the backend's own), then
/// closes.
pub fn tcp_whoami(ns: &str, addr: SocketAddr) {
    let listener = NetNs::open(ns)
        .unwrap()
        .run(move || TcpListener::bind(addr))
        .unwrap()
        .expect("binding the whoami server");
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let me = stream
                .local_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            let _ = stream.write_all(me.as_bytes());
        }
    });
}

/// Connects from inside `ns` to `to` and reads the whole answer.
pub fn tcp_ask(ns: &str, to: SocketAddr) -> Result<String, String> {
    NetNs::open(ns)
        .unwrap()
        .run(move || -> Result<String, String> {
            let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(3))
                .map_err(|e| format!("connect {to}: {e}"))?;
            stream
                .set_read_timeout(Some(Duration::from_secs(3)))
                .unwrap();
            let mut answer = String::new();
            stream
                .read_to_string(&mut answer)
                .map_err(|e| format!("read from {to}: {e}"))?;
            Ok(answer)
        })
        .unwrap()
}

/// A TCP server inside a namespace that answers each connection with
/// `NAME PEER`: who answered, and the source address it saw.
pub fn tcp_peer(ns: &str, addr: SocketAddr, name: &str) {
    let listener = NetNs::open(ns)
        .unwrap()
        .run(move || TcpListener::bind(addr))
        .unwrap()
        .expect("binding the peer server");
    let name = name.to_string();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let peer = stream
                .peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            let _ = stream.write_all(format!("{name} {peer}").as_bytes());
        }
    });
}

/// A UDP server answering each datagram with `NAME PEER`.
pub fn udp_peer(ns: &str, addr: SocketAddr, name: &str) {
    let socket = NetNs::open(ns)
        .unwrap()
        .run(move || UdpSocket::bind(addr))
        .unwrap()
        .expect("binding the UDP peer server");
    let name = name.to_string();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((_, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(format!("{name} {}", from.ip()).as_bytes(), from);
        }
    });
}

/// One UDP question from inside `ns` and its answer, retried until `patience` ends.
pub fn udp_ask(ns: &str, to: SocketAddr, patience: Duration) -> Result<String, String> {
    NetNs::open(ns)
        .unwrap()
        .run(move || -> Result<String, String> {
            let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
            socket
                .set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let deadline = Instant::now() + patience;
            let mut last = String::from("no answer");
            while Instant::now() < deadline {
                if let Err(e) = socket.send_to(b"who", to) {
                    last = e.to_string();
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                let mut buf = [0u8; 64];
                match socket.recv_from(&mut buf) {
                    Ok((n, from)) if from == to => {
                        return Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
                    }
                    Ok((_, from)) => last = format!("unexpected datagram from {from}"),
                    Err(e) => last = e.to_string(),
                }
            }
            Err(format!("UDP to {to}: {last}"))
        })
        .unwrap()
}
