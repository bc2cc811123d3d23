//! Hosts as network namespaces, for partition tests (issue 14).
//!
//! Each host is a namespace the test creates (`ip netns add`), joined by a
//! veth pair to a bridge of the test's own in the root namespace, with an
//! address in 10.77.0.0/24 on that bridge only (the bridge itself has no
//! address, so nothing in the root namespace routes there, and concurrent
//! tests with their own bridges never see each other). Each `shoal daemon`
//! runs inside its host (`ip netns exec`); the CLI stays in the root
//! namespace and talks to the daemon's unix socket, which the network cut
//! does not touch.
//!
//! A cut is silent: an nftables table inside the host drops every packet in
//! and out of its veth, so peers see no reset and no unreachable — the TCP
//! connections just stall, as on a real partition (`ip link set down`
//! would not be silent). Healing deletes that table.
//!
//! Docker sets the root namespace's FORWARD policy to DROP, and bridged
//! traffic passes through it (`br_netfilter`): the net adds an ACCEPT rule
//! for its own bridge and removes it on drop, with the namespaces and the
//! bridge, also when the test fails.

use std::process::Command;

use crate::util::{Daemon, TestDir};

/// Which of a host's packets a cut drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Everything in and out: the host is gone for everyone else.
    Both,
    /// What reaches the host: it still sends (heartbeats, append-entries,
    /// TCP segments) but hears no answer, not even TCP's acknowledgements.
    Incoming,
    /// What the host sends: it hears everyone (a new leader's higher term
    /// included) but nobody hears it.
    Outgoing,
}

/// The namespaces, veths, bridge and FORWARD rule of one test.
pub struct Net {
    /// A short tag unique to this test process, in every name it creates.
    tag: String,
    bridge: String,
    hosts: Vec<String>,
    forward_rule: bool,
}

/// Runs a command that must succeed (setting up or tearing down the net).
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

#[track_caller]
fn must(program: &str, args: &[&str]) {
    if let Err(e) = run(program, args) {
        panic!("{e}");
    }
}

/// The FORWARD rule that lets the test bridge's traffic through.
fn forward_rule(bridge: &str) -> [&str; 7] {
    ["FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"]
}

impl Net {
    /// A bridge with no host yet.
    pub fn new() -> Self {
        // The PID keeps names of concurrent test processes apart (nextest
        // runs each test in its own); a counter keeps nets of one process
        // apart. Interface names stay under 15 characters.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tag = format!("{}{}", std::process::id() % 100_000, n);
        let bridge = format!("shbr{tag}");
        let mut net = Net {
            tag,
            bridge: bridge.clone(),
            hosts: Vec::new(),
            forward_rule: false,
        };
        must("ip", &["link", "add", &bridge, "type", "bridge"]);
        must("ip", &["link", "set", &bridge, "up"]);
        let mut insert = vec!["-I"];
        insert.extend(forward_rule(&bridge));
        must("iptables", &insert);
        net.forward_rule = true;
        net
    }

    /// Adds host number `i` (1..=250) as a namespace with address 10.77.0.`i`;
    /// returns the address.
    pub fn add_host(&mut self, i: u8) -> String {
        let ns = self.ns(i);
        must("ip", &["netns", "add", &ns]);
        self.hosts.push(ns.clone());
        let outer = format!("shv{}h{i}", self.tag);
        let inner = format!("shi{}h{i}", self.tag);
        must(
            "ip",
            &[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ],
        );
        must("ip", &["link", "set", &outer, "master", &self.bridge]);
        must("ip", &["link", "set", &outer, "up"]);
        must("ip", &["link", "set", &inner, "netns", &ns]);
        let addr = format!("10.77.0.{i}");
        self.exec(i, &["ip", "link", "set", "lo", "up"]);
        self.exec(i, &["ip", "link", "set", &inner, "name", "eth0"]);
        self.exec(
            i,
            &["ip", "addr", "add", &format!("{addr}/24"), "dev", "eth0"],
        );
        self.exec(i, &["ip", "link", "set", "eth0", "up"]);
        addr
    }

    /// The namespace name of host `i`.
    pub fn ns(&self, i: u8) -> String {
        format!("shoal-{}-h{i}", self.tag)
    }

    /// Runs a command inside host `i` and returns its standard output.
    #[track_caller]
    pub fn output(&self, i: u8, args: &[&str]) -> String {
        let ns = self.ns(i);
        let mut all = vec!["netns", "exec", &ns];
        all.extend(args);
        let out = Command::new("ip")
            .args(&all)
            .output()
            .expect("ip netns exec");
        assert!(
            out.status.success(),
            "`ip {}` failed: {}",
            all.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a command inside host `i`.
    #[track_caller]
    fn exec(&self, i: u8, args: &[&str]) {
        let ns = self.ns(i);
        let mut all = vec!["netns", "exec", &ns];
        all.extend(args);
        must("ip", &all);
    }

    /// Cuts host `i` off: every packet in or out of its veth is dropped.
    pub fn cut(&self, i: u8) {
        self.cut_with(i, Cut::Both);
    }

    /// Cuts host `i` off in the directions `cut` names (silent drops on its
    /// veth, inside the host). One cut per host at a time; [`Net::heal`]
    /// removes it.
    pub fn cut_with(&self, i: u8, cut: Cut) {
        let (drop_in, drop_out) = match cut {
            Cut::Both => (true, true),
            Cut::Incoming => (true, false),
            Cut::Outgoing => (false, true),
        };
        let mut rules = String::from(
            "add table inet shoalcut; \
             add chain inet shoalcut in { type filter hook input priority -300; policy accept; }; \
             add chain inet shoalcut out { type filter hook output priority -300; policy accept; }",
        );
        if drop_in {
            rules.push_str("; add rule inet shoalcut in iifname \"eth0\" drop");
        }
        if drop_out {
            rules.push_str("; add rule inet shoalcut out oifname \"eth0\" drop");
        }
        self.exec(i, &["nft", &rules]);
    }

    /// Drops host `i`'s TCP segments from `port` to host `to`: the answers
    /// of `i`'s listener to `to` are lost while everything else (`i`'s own
    /// connections to `to`, and `to`'s requests, which still arrive) passes.
    /// A later [`Net::cut_with`] adds to it; [`Net::heal`] removes both.
    pub fn drop_answers(&self, i: u8, port: u16, to: u8) {
        let rules = format!(
            "add table inet shoalcut; \
             add chain inet shoalcut out {{ type filter hook output priority -300; policy accept; }}; \
             add rule inet shoalcut out ip daddr 10.77.0.{to} tcp sport {port} drop"
        );
        self.exec(i, &["nft", &rules]);
    }

    /// Heals host `i`'s cut.
    pub fn heal(&self, i: u8) {
        self.exec(i, &["nft", "delete", "table", "inet", "shoalcut"]);
    }

    /// A daemon of `dir` running inside host `i`.
    pub fn daemon(&self, dir: &TestDir, i: u8, name: &str) -> Daemon {
        dir.daemon_in(name, &["ip", "netns", "exec", &self.ns(i)])
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Errors are printed, not raised: a drop during a failing test must
        // go on removing the rest. Deleting a namespace deletes its veth
        // end, and with it the peer on the bridge.
        for ns in &self.hosts {
            if let Err(e) = run("ip", &["netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
        if self.forward_rule {
            let mut delete = vec!["-D"];
            delete.extend(forward_rule(&self.bridge));
            if let Err(e) = run("iptables", &delete) {
                eprintln!("cleanup: {e}");
            }
        }
        if let Err(e) = run("ip", &["link", "del", &self.bridge]) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// Three managers (hosts 1–3) and two workers (hosts 4–5), each in its own
/// namespace, all Ready. Fields drop in order: daemons first (a namespace
/// outlives its name while a process is in it), then the test directory
/// (which kills task processes left over), then the net.
pub struct NetCluster {
    pub managers: Vec<Daemon>,
    pub workers: Vec<Daemon>,
    pub dir: TestDir,
    pub net: Net,
}

impl NetCluster {
    pub fn new() -> Self {
        Self::sized(3, 2)
    }

    /// `managers` managers (hosts 1..) and `workers` workers after them.
    pub fn sized(manager_hosts: u8, worker_hosts: u8) -> Self {
        let dir = TestDir::new();
        let mut net = Net::new();
        let first_addr = net.add_host(1);
        let first = net.daemon(&dir, 1, "h1");
        first.ok(&[
            "swarm",
            "init",
            "--listen-addr",
            &format!("{first_addr}:2377"),
        ]);
        let manager_token = first
            .ok(&["swarm", "join-token", "-q", "manager"])
            .trim()
            .to_string();
        let worker_token = first.worker_token();
        let join = format!("{first_addr}:2377");
        let mut managers = vec![first];
        for i in 2..=manager_hosts {
            let addr = net.add_host(i);
            let manager = net.daemon(&dir, i, &format!("h{i}"));
            manager.ok(&[
                "swarm",
                "join",
                "--token",
                &manager_token,
                "--listen-addr",
                &format!("{addr}:2377"),
                &join,
            ]);
            managers.push(manager);
        }
        let mut workers = Vec::new();
        for i in manager_hosts + 1..=manager_hosts + worker_hosts {
            let addr = net.add_host(i);
            let worker = net.daemon(&dir, i, &format!("h{i}"));
            worker.join(&worker_token, &join, &addr);
            workers.push(worker);
        }
        let cluster = NetCluster {
            managers,
            workers,
            dir,
            net,
        };
        crate::util::eventually(
            crate::util::patience(),
            "every node Ready with one leader",
            || {
                let nodes = cluster.managers[0].nodes();
                let leaders = nodes
                    .iter()
                    .filter(|n| n["ManagerStatus"] == "Leader")
                    .count();
                if nodes.len() == usize::from(manager_hosts + worker_hosts)
                    && nodes.iter().all(|n| n["Status"] == "Ready")
                    && leaders == 1
                {
                    Ok(())
                } else {
                    Err(format!("{nodes:?}"))
                }
            },
        );
        cluster
    }

    /// Every daemon, by host number (1-based) minus one.
    pub fn hosts(&self) -> Vec<&Daemon> {
        self.managers.iter().chain(&self.workers).collect()
    }

    /// The host number of the current leader, as seen through a reachable manager.
    pub fn leader_host(&self, except: Option<u8>) -> Option<u8> {
        self.managers
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i as u8 + 1) != except)
            .find_map(|(_, m)| crate::util::leader_name(m))
            .and_then(|name| name.strip_prefix('h')?.parse().ok())
            .filter(|h| Some(*h) != except)
    }
}
