//! Shared harness: real `shoal daemon` processes with their own data dirs
//! and sockets under a per-test temporary directory, driven through the CLI.
//! Every daemon is killed when its handle drops, so a failing test leaves no
//! process behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// How long any wait may last before the test fails; one knob for slow machines.
pub fn patience() -> Duration {
    std::env::var("SHOAL_E2E_PATIENCE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(30))
}

/// The `shoal` binary built beside this test binary.
pub fn shoal_bin() -> PathBuf {
    if let Ok(path) = std::env::var("SHOAL_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/cluster-<hash> → target/<profile>/shoal
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("shoal"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} not found: build it first with `cargo build -p shoal-cli` (or set SHOAL_BIN)",
        bin.display()
    );
    bin
}

/// Polls `check` until it returns `Some`, failing after `deadline` with
/// `what` and the last observation.
pub fn eventually<T>(
    deadline: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) if start.elapsed() > deadline => {
                panic!("timed out after {deadline:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The result of one CLI invocation.
pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(output: Output) -> Self {
        Run {
            status: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts failure with an `Error:` line containing `expected`.
    #[track_caller]
    pub fn assert_error(&self, expected: &str) {
        assert_ne!(
            self.status, 0,
            "expected failure, got success: {}",
            self.stdout
        );
        assert!(
            self.stderr.starts_with("Error: ") && self.stderr.contains(expected),
            "stderr should start with `Error:` and mention {expected:?}, got: {}",
            self.stderr
        );
    }
}

/// A test's directory: every daemon's data dir and socket live under it.
pub struct TestDir {
    pub dir: tempfile::TempDir,
    /// Whether daemons may use the machine's Docker engine. Off by default:
    /// daemons then point `DOCKER_HOST` at a socket that does not exist, so
    /// that suites which do not ask for containers run the same with or
    /// without an engine (and never touch it).
    pub docker: bool,
}

impl Default for TestDir {
    fn default() -> Self {
        Self::new()
    }
}

impl TestDir {
    pub fn new() -> Self {
        TestDir {
            dir: tempfile::Builder::new()
                .prefix("shoal-e2e-")
                .tempdir()
                .expect("temp dir"),
            docker: false,
        }
    }

    /// A test directory whose daemons use the machine's Docker engine.
    pub fn with_docker() -> Self {
        let mut dir = TestDir::new();
        dir.docker = true;
        dir
    }

    pub fn daemon(&self, name: &str) -> Daemon {
        self.daemon_with_args(name, &[])
    }

    /// A daemon started with extra `shoal daemon` flags (kept across restarts).
    pub fn daemon_with_args(&self, name: &str, args: &[&str]) -> Daemon {
        self.daemon_full(name, args, &[])
    }

    /// A daemon started through `wrapper` (e.g. `ip netns exec NS`, which
    /// execs the daemon in place, so its PID and signals are the daemon's).
    pub fn daemon_in(&self, name: &str, wrapper: &[&str]) -> Daemon {
        self.daemon_full(name, &[], wrapper)
    }

    /// A daemon started with extra environment variables (kept across
    /// restarts; its hooks and tasks inherit them).
    pub fn daemon_with_env(&self, name: &str, env: &[(&str, &str)]) -> Daemon {
        self.daemon_env(name, &[], &[], env)
    }

    fn daemon_full(&self, name: &str, args: &[&str], wrapper: &[&str]) -> Daemon {
        self.daemon_env(name, args, wrapper, &[])
    }

    fn daemon_env(
        &self,
        name: &str,
        args: &[&str],
        wrapper: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let mut daemon = Daemon {
            name: name.to_string(),
            data_dir: self.dir.path().join(name),
            socket: self.dir.path().join(format!("{name}.sock")),
            log: self.dir.path().join(format!("{name}.log")),
            docker_host: (!self.docker).then(|| {
                format!(
                    "unix://{}",
                    self.dir.path().join("no-docker.sock").display()
                )
            }),
            extra_args: args.iter().map(|a| a.to_string()).collect(),
            wrapper: wrapper.iter().map(|a| a.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
        };
        daemon.start();
        daemon
    }
}

pub struct Daemon {
    pub name: String,
    pub data_dir: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    /// `DOCKER_HOST` for the daemon; `None` keeps the environment's.
    docker_host: Option<String>,
    /// Flags given to every start of this daemon.
    extra_args: Vec<String>,
    /// The program and arguments the daemon is started through, if any.
    wrapper: Vec<String>,
    /// Extra environment of every start.
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Daemon {
    /// Starts (or restarts) the daemon and waits until its socket answers.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(shoal_bin());
                command
            }
            None => Command::new(shoal_bin()),
        };
        if let Some(host) = &self.docker_host {
            command.env("DOCKER_HOST", host);
        }
        let child = command
            .arg("daemon")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--hostname")
            .arg(&self.name)
            .args(&self.extra_args)
            .env("SHOAL_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn shoal daemon");
        self.child = Some(child);
        eventually(
            patience(),
            &format!("daemon {} to answer", self.name),
            || {
                let run = self.shoal(&["info", "--format", "json"]);
                if run.status == 0 {
                    Ok(())
                } else {
                    Err(run.stderr)
                }
            },
        );
    }

    /// The daemon's process ID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the daemon and starts it again with `args` added to its flags
    /// (e.g. `--docker-api` on a daemon a shared fixture started).
    pub fn restart_with_args(&mut self, args: &[&str]) {
        self.terminate();
        self.extra_args.extend(args.iter().map(|a| a.to_string()));
        self.start();
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("SIGTERM");
        let status = eventually(
            patience(),
            &format!("daemon {} to exit", self.name),
            || match child.try_wait() {
                Ok(Some(status)) => Ok(status),
                other => Err(format!("{other:?}")),
            },
        );
        status.code()
    }

    /// Runs the CLI against this daemon.
    pub fn shoal(&self, args: &[&str]) -> Run {
        Run::from(
            Command::new(shoal_bin())
                .arg("-H")
                .arg(&self.socket)
                .args(args)
                .env_remove("SHOAL_HOST")
                .output()
                .expect("run shoal"),
        )
    }

    /// Starts the CLI against this daemon without waiting for it (for
    /// commands that wait, sampled meanwhile). Its output is piped.
    pub fn spawn_shoal(&self, args: &[&str]) -> Child {
        Command::new(shoal_bin())
            .arg("-H")
            .arg(&self.socket)
            .args(args)
            .env_remove("SHOAL_HOST")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run shoal")
    }

    /// Runs the CLI and asserts success; returns stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.shoal(args);
        assert_eq!(
            run.status,
            0,
            "`shoal {}` on {} failed: {}",
            args.join(" "),
            self.name,
            run.stderr
        );
        run.stdout
    }

    pub fn info(&self) -> Value {
        serde_json::from_str(&self.ok(&["info", "--format", "json"])).expect("info json")
    }

    /// `node ls --format json`, one object per line.
    pub fn nodes(&self) -> Vec<Value> {
        self.ok(&["node", "ls", "--format", "json"])
            .lines()
            .map(|l| serde_json::from_str(l).expect("node ls json line"))
            .collect()
    }

    pub fn node_status(&self, hostname: &str) -> Option<String> {
        self.nodes()
            .into_iter()
            .find(|n| n["Hostname"] == hostname)
            .map(|n| n["Status"].as_str().unwrap_or_default().to_string())
    }

    /// `swarm init` on 127.0.0.1 with an ephemeral port; returns the manager address.
    pub fn init(&self) -> String {
        self.ok(&["swarm", "init", "--listen-addr", "127.0.0.1:0"]);
        self.info()["NodeAddr"]
            .as_str()
            .expect("node addr")
            .to_string()
    }

    pub fn worker_token(&self) -> String {
        self.ok(&["swarm", "join-token", "-q", "worker"])
            .trim()
            .to_string()
    }

    pub fn join(&self, token: &str, manager: &str, advertise_ip: &str) {
        self.ok(&[
            "swarm",
            "join",
            "--token",
            token,
            "--advertise-addr",
            advertise_ip,
            manager,
        ]);
    }

    /// The daemon's log so far, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- log of {} ---\n{}", self.name, self.log_tail());
        }
        // A clean stop takes the daemon's tasks with it; SIGKILL if it hangs.
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        // Tasks of daemons that were SIGKILLed keep running by design (the
        // data plane outlives its agent): sweep every process started from
        // this test's directory.
        for pid in processes_under(self.dir.path()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        // Their network namespaces too: the agent that made them was killed
        // before it could remove them, and a killed process leaves its
        // namespace pinned under /run/netns.
        // And each node's ingress sandbox, named after the node.
        let sandboxes = node_ids_under(self.dir.path())
            .into_iter()
            .map(|id| shoal_agent::overlay::sandbox_netns_name(&id));
        for name in task_ids_under(self.dir.path())
            .into_iter()
            .map(|id| shoal_agent::overlay::netns_name(&id))
            .chain(sandboxes)
        {
            if Path::new("/run/netns").join(&name).exists() {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "delete", &name])
                    .status();
            }
        }
    }
}

/// The node IDs of the daemons under `dir` (`NAME/state.json`).
fn node_ids_under(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|daemon| std::fs::read(daemon.path().join("state.json")).ok())
        .filter_map(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .filter_map(|state| Some(state["node_id"].as_str()?.to_string()))
        .filter(|id| !id.is_empty())
        .collect()
}

/// The IDs of the tasks every daemon under `dir` has run (`NAME/tasks/ID`).
fn task_ids_under(dir: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    for daemon in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let tasks = daemon.path().join("tasks");
        for task in std::fs::read_dir(tasks).into_iter().flatten().flatten() {
            ids.push(task.file_name().to_string_lossy().into_owned());
        }
    }
    ids
}

/// One process of the machine, as `/proc` shows it: the one place the
/// suites read `/proc`. What it read can be gone by the time it is asked
/// (the process ended): every reader says "no" then.
pub struct ProcessEntry {
    pub pid: i32,
    dir: PathBuf,
}

impl ProcessEntry {
    /// The program it was started as (`argv[0]`).
    pub fn argv0(&self) -> Option<Vec<u8>> {
        let cmdline = std::fs::read(self.dir.join("cmdline")).ok()?;
        Some(
            cmdline
                .split(|b| *b == 0)
                .next()
                .unwrap_or_default()
                .to_vec(),
        )
    }

    /// Whether it has exited and waits to be reaped.
    pub fn is_zombie(&self) -> bool {
        let stat = std::fs::read_to_string(self.dir.join("stat")).unwrap_or_default();
        stat.rfind(')')
            .and_then(|i| stat.get(i + 2..)?.chars().next())
            == Some('Z')
    }

    /// Whether its environment holds exactly `variable` (`NAME=value`).
    pub fn has_env(&self, variable: &str) -> bool {
        std::fs::read(self.dir.join("environ"))
            .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == variable.as_bytes()))
    }
}

/// Every process of the machine now.
pub fn processes() -> Vec<ProcessEntry> {
    // Unreadable, "no process" would pass every "nothing left" check.
    std::fs::read_dir("/proc")
        .expect("reading /proc")
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse().ok()?;
            Some(ProcessEntry {
                pid,
                dir: entry.path(),
            })
        })
        .collect()
}

/// PIDs of live processes whose program lives under `dir`.
pub fn processes_under(dir: &Path) -> Vec<i32> {
    let prefix = dir.to_string_lossy().into_owned();
    processes()
        .into_iter()
        .filter(|p| p.argv0().is_some_and(|a| a.starts_with(prefix.as_bytes())))
        .map(|p| p.pid)
        .collect()
}

/// A manager and `workers` workers, all Ready.
pub fn cluster(dir: &TestDir, workers: usize) -> (Daemon, Vec<Daemon>, String) {
    let manager = dir.daemon("manager");
    let addr = manager.init();
    let token = manager.worker_token();
    let workers: Vec<Daemon> = (0..workers)
        .map(|i| {
            let worker = dir.daemon(&format!("worker{}", i + 1));
            worker.join(&token, &addr, &format!("127.0.0.{}", i + 2));
            worker
        })
        .collect();
    eventually(patience(), "every node Ready", || {
        let nodes = manager.nodes();
        if nodes.len() == workers.len() + 1 && nodes.iter().all(|n| n["Status"] == "Ready") {
            Ok(())
        } else {
            Err(format!("{nodes:?}"))
        }
    });
    (manager, workers, addr)
}

/// A copy of `sleep` under the test's directory: its path marks this test's
/// task processes, so they can be counted machine-wide (orphans included).
pub fn marker_program(dir: &TestDir) -> PathBuf {
    let bin = dir.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let program = bin.join("task-sleep");
    let sleep = ["/bin/sleep", "/usr/bin/sleep"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("a sleep binary");
    std::fs::copy(sleep, &program).unwrap();
    program
}

/// PIDs of live (non-zombie) processes whose program is `program`.
pub fn processes_of(program: &Path) -> Vec<i32> {
    let wanted = program.to_string_lossy().into_owned();
    let mut pids: Vec<i32> = processes()
        .into_iter()
        .filter(|p| p.argv0().is_some_and(|a| a == wanted.as_bytes()) && !p.is_zombie())
        .map(|p| p.pid)
        .collect();
    pids.sort();
    pids
}

/// `service ps --format json --no-trunc`, one object per task.
impl Daemon {
    pub fn tasks(&self, service: &str) -> Vec<Value> {
        self.ok(&["service", "ps", "--no-trunc", "--format", "json", service])
            .lines()
            .map(|l| serde_json::from_str(l).expect("service ps json line"))
            .collect()
    }

    /// Tasks desired and observed Running.
    pub fn running_tasks(&self, service: &str) -> Vec<Value> {
        self.tasks(service)
            .into_iter()
            .filter(|t| {
                t["DesiredState"] == "Running"
                    && t["CurrentState"]
                        .as_str()
                        .unwrap_or_default()
                        .starts_with("Running")
            })
            .collect()
    }

    /// The PID this node's agent recorded for a task.
    pub fn task_pid(&self, task_id: &str) -> Option<i32> {
        let text =
            std::fs::read_to_string(self.data_dir.join("tasks").join(task_id).join("pid")).ok()?;
        text.split_whitespace().next()?.parse().ok()
    }
}

/// `n` managers (the first inits; the others join with the manager token,
/// each listening on its own loopback address) and `workers` workers.
pub fn managers_cluster(dir: &TestDir, n: usize, workers: usize) -> (Vec<Daemon>, Vec<Daemon>) {
    let first = dir.daemon("manager1");
    let addr = first.init();
    let manager_token = first
        .ok(&["swarm", "join-token", "-q", "manager"])
        .trim()
        .to_string();
    let worker_token = first.worker_token();
    let mut managers = vec![first];
    for i in 2..=n {
        let manager = dir.daemon(&format!("manager{i}"));
        manager.ok(&[
            "swarm",
            "join",
            "--token",
            &manager_token,
            "--listen-addr",
            &format!("127.0.0.{i}:0"),
            &addr,
        ]);
        managers.push(manager);
    }
    let workers: Vec<Daemon> = (0..workers)
        .map(|i| {
            let worker = dir.daemon(&format!("worker{}", i + 1));
            worker.join(&worker_token, &addr, &format!("127.0.0.{}", 20 + i));
            worker
        })
        .collect();
    eventually(patience(), "every node Ready with one leader", || {
        let nodes = managers[0].nodes();
        let leaders = nodes
            .iter()
            .filter(|n| n["ManagerStatus"] == "Leader")
            .count();
        if nodes.len() == n + workers.len()
            && nodes.iter().all(|n| n["Status"] == "Ready")
            && leaders == 1
        {
            Ok(())
        } else {
            Err(format!("{nodes:?}"))
        }
    });
    (managers, workers)
}

/// The hostname of the current leader as seen through `via`.
pub fn leader_name(via: &Daemon) -> Option<String> {
    let run = via.shoal(&["node", "ls", "--format", "json"]);
    if run.status != 0 {
        return None;
    }
    run.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|n| n["ManagerStatus"] == "Leader")
        .and_then(|n| n["Hostname"].as_str().map(str::to_string))
}

impl Daemon {
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Service names and desired replicas in this manager's own replica.
    pub fn local_services(&self) -> std::collections::BTreeMap<String, String> {
        self.ok(&["service", "ls", "--local", "--format", "json"])
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("service ls json");
                let desired = v["Replicas"]
                    .as_str()
                    .unwrap_or("")
                    .split('/')
                    .nth(1)
                    .unwrap_or("")
                    .to_string();
                (v["Name"].as_str().unwrap().to_string(), desired)
            })
            .collect()
    }
}

/// Whether a test that needs root (cgroups, namespaces) runs: with
/// `SHOAL_E2E_PRIVILEGED=1` (which `.ci/run` sets) it must, and missing root
/// is a failure; without it the test reports itself skipped, loudly.
pub fn privileged(test: &str) -> bool {
    let is_root = nix::unistd::geteuid().is_root();
    if std::env::var("SHOAL_E2E_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!("SKIPPED {test}: needs root; set SHOAL_E2E_PRIVILEGED=1 to run it (CI does)");
        return false;
    }
    assert!(
        is_root,
        "SHOAL_E2E_PRIVILEGED=1 but this test does not run as root"
    );
    true
}

/// Creates `burner`, a process service autoscaled 1..5 on CPU (target 50 %,
/// scale-down window 3 s) whose tasks, run by `shell`, are busy while `flag`
/// exists (a builtin-only loop: one core per task) and idle otherwise. The
/// autoscaling suite and its benchmark drive the same service.
pub fn create_cpu_burner(manager: &Daemon, shell: &Path, flag: &Path) {
    let script = format!(
        "while :; do if [ -e {} ]; then :; else sleep 0.2; fi; done",
        flag.display()
    );
    manager.ok(&[
        "service",
        "create",
        "-q",
        "--name",
        "burner",
        "--autoscale-min",
        "1",
        "--autoscale-max",
        "5",
        "--autoscale-cpu",
        "50%",
        "--autoscale-scale-down-window",
        "3s",
        "--runtime",
        "process",
        shell.to_str().unwrap(),
        "-c",
        &script,
    ]);
}
