//! The real `docker` CLI driving shoal through `shoal daemon --docker-api`.
//!
//! Every docker command here runs with `DOCKER_HOST` set to the test's own
//! socket and `DOCKER_CONFIG` to the test's directory, so the machine's
//! Docker engine (and the user's contexts) are never involved in what the CLI
//! talks to. The effects are checked through shoal's own CLI and, for
//! process tasks, through /proc.
//!
//! The process-runtime test needs only the docker CLI binary (missing: a
//! loud skip, or a failure with `SHOAL_E2E_DOCKER=1`); the container and
//! stack test needs the engine too and runs with `SHOAL_E2E_DOCKER=1`, as
//! `docker.rs` does. Stacks (which always join `STACK_default`) run on
//! namespace hosts: `stacks.rs`.

mod format;
mod stacks;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::docker::{docker_enabled, Containers, IMAGE, QUIET_LOOP};
use crate::util::{eventually, marker_program, patience, processes_of, Daemon, Run, TestDir};

/// Whether the docker CLI binary is there; with `SHOAL_E2E_DOCKER=1` it must be.
fn docker_cli_present(test: &str) -> bool {
    let present = Command::new("docker")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        assert!(
            std::env::var("SHOAL_E2E_DOCKER").as_deref() != Ok("1"),
            "SHOAL_E2E_DOCKER=1 but the docker CLI is not installed"
        );
        eprintln!("SKIPPED {test}: the docker CLI is not installed");
    }
    present
}

/// The docker CLI pointed at one shoal daemon's Docker API.
struct DockerCli {
    socket: PathBuf,
    config: PathBuf,
}

impl DockerCli {
    fn new(dir: &TestDir, socket: &Path) -> Self {
        let config = dir.dir.path().join("docker-config");
        std::fs::create_dir_all(&config).unwrap();
        DockerCli {
            socket: socket.to_path_buf(),
            config,
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            .env("DOCKER_CONFIG", &self.config)
            .env("DOCKER_CLI_HINTS", "false")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .env_remove("DOCKER_API_VERSION")
            .output()
            .expect("run docker");
        Run::from(out)
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(
            run.status,
            0,
            "docker {} failed:\nstdout: {}\nstderr: {}",
            args.join(" "),
            run.stdout,
            run.stderr
        );
        run.stdout
    }

    /// The CLI started in the background, stdout piped.
    fn spawn(&self, args: &[&str]) -> std::process::Child {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            .env("DOCKER_CONFIG", &self.config)
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .env_remove("DOCKER_API_VERSION")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn docker")
    }

    /// A raw request on the socket (what the CLI cannot be made to send:
    /// a stale version, malformed JSON): the status and the JSON body.
    fn http(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let mut stream = std::os::unix::net::UnixStream::connect(&self.socket).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, rest) = response.split_once("\r\n\r\n").expect("an HTTP response");
        let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(rest)
        } else {
            rest.to_string()
        };
        let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
        (status, value)
    }
}

fn dechunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        text = &rest[size + 2..];
    }
    out
}

/// A manager serving the Docker API and `workers` workers, all Ready.
fn api_cluster(dir: &TestDir, workers: usize) -> (Daemon, Vec<Daemon>, DockerCli) {
    let socket = dir.dir.path().join("docker.sock");
    let api = format!("unix://{}", socket.display());
    let manager = dir.daemon_with_args("manager", &["--docker-api", &api]);
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
    let cli = DockerCli::new(dir, &socket);
    (manager, workers, cli)
}

pub(crate) fn shoal_inspect(manager: &Daemon, service: &str) -> Value {
    serde_json::from_str::<Value>(&manager.ok(&["service", "inspect", service])).unwrap()[0].clone()
}

fn env_of(manager: &Daemon, service: &str) -> Vec<String> {
    let spec = shoal_inspect(manager, service);
    spec["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn replicas_line(cli: &DockerCli, service: &str) -> Result<String, String> {
    let out = cli.ok(&[
        "service",
        "ls",
        "--format",
        "{{.Name}} {{.Mode}} {{.Replicas}}",
    ]);
    out.lines()
        .find(|l| l.starts_with(&format!("{service} ")))
        .map(str::to_string)
        .ok_or(out)
}

#[test]
fn docker_cli_shows_the_swarm_and_drives_process_services() {
    if !docker_cli_present("docker_cli_shows_the_swarm_and_drives_process_services") {
        return;
    }
    let dir = TestDir::new();
    let (manager, _workers, cli) = api_cluster(&dir, 2);

    // Version negotiation and system.
    let version = cli.ok(&[
        "version",
        "--format",
        "{{.Server.Version}} {{.Server.APIVersion}}",
    ]);
    assert_eq!(
        version.trim(),
        format!("shoal-{} 1.47", env!("CARGO_PKG_VERSION"))
    );
    cli.ok(&["version"]);
    let info = cli.ok(&["info"]);
    for expected in [
        " Swarm: active",
        " Is Manager: true",
        " Managers: 1",
        " Nodes: 3",
    ] {
        assert!(
            info.contains(expected),
            "docker info lacks {expected:?}:\n{info}"
        );
    }
    let node_id = cli.ok(&["info", "--format", "{{.Swarm.NodeID}}"]);
    assert_eq!(node_id.trim(), manager.info()["NodeID"].as_str().unwrap());

    // Nodes: the three, this one marked, the leader shown.
    let nodes = cli.ok(&[
        "node",
        "ls",
        "--format",
        "{{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}} {{.Self}}",
    ]);
    let mut lines: Vec<&str> = nodes.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "manager Ready Active Leader true",
            "worker1 Ready Active  false",
            "worker2 Ready Active  false"
        ],
        "{nodes}"
    );
    let table = cli.ok(&["node", "ls"]);
    assert!(
        table
            .lines()
            .any(|l| l.contains(" * ") && l.contains("manager") && l.contains("Leader")),
        "{table}"
    );
    assert_eq!(
        cli.ok(&[
            "node",
            "inspect",
            "self",
            "--format",
            "{{.Description.Hostname}}"
        ])
        .trim(),
        "manager"
    );

    // A process service made by shoal's CLI, listed and driven by docker's.
    let program = marker_program(&dir);
    let program_text = program.to_str().unwrap();
    manager.ok(&[
        "service",
        "create",
        "-d",
        "--runtime",
        "process",
        "--name",
        "web",
        "--replicas",
        "2",
        program_text,
        "999",
    ]);
    eventually(patience(), "docker service ls to show 2/2", || {
        replicas_line(&cli, "web").and_then(|l| {
            if l == "web replicated 2/2" {
                Ok(())
            } else {
                Err(l)
            }
        })
    });
    let ps = cli.ok(&[
        "service",
        "ps",
        "web",
        "--format",
        "{{.Name}} {{.DesiredState}} {{.CurrentState}}",
    ]);
    let mut names: Vec<&str> = ps.lines().map(|l| l.split(' ').next().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["web.1", "web.2"], "{ps}");
    assert!(ps.lines().all(|l| l.contains(" Running Running ")), "{ps}");
    assert_eq!(
        cli.ok(&[
            "service",
            "inspect",
            "web",
            "--format",
            "{{.Spec.Mode.Replicated.Replicas}}"
        ])
        .trim(),
        "2"
    );
    let before = eventually(patience(), "two task processes", || {
        let pids = processes_of(&program);
        if pids.len() == 2 {
            Ok(pids)
        } else {
            Err(format!("{pids:?}"))
        }
    });

    // Scale: the CLI waits for convergence with its own progress display;
    // the two running tasks are kept.
    let scaled = cli.ok(&["service", "scale", "web=3"]);
    assert!(scaled.contains("converged"), "{scaled}");
    assert_eq!(replicas_line(&cli, "web").unwrap(), "web replicated 3/3");
    let after = eventually(patience(), "three task processes", || {
        let pids = processes_of(&program);
        if pids.len() == 3 {
            Ok(pids)
        } else {
            Err(format!("{pids:?}"))
        }
    });
    assert!(
        before.iter().all(|p| after.contains(p)),
        "scaling replaced tasks: {before:?} → {after:?}"
    );

    // A stale version is refused (409) and changes nothing; so are
    // malformed JSON (400) and an unknown service (404).
    let (status, service) = cli.http("GET", "/v1.47/services/web", "");
    assert_eq!(status, 200, "{service}");
    let version = service["Version"]["Index"].as_u64().unwrap();
    let mut spec = service["Spec"].clone();
    spec["Mode"]["Replicated"]["Replicas"] = Value::from(1);
    let (status, body) = cli.http(
        "POST",
        &format!("/v1.47/services/web/update?version={}", version - 1),
        &spec.to_string(),
    );
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("out of sequence"),
        "{body}"
    );
    let (status, body) = cli.http("POST", "/v1.47/services/create", "{\"Name\": ");
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("invalid service spec"),
        "{body}"
    );
    let (status, body) = cli.http("GET", "/v1.47/services/nosuch", "");
    assert_eq!(status, 404, "{body}");
    let (_, again) = cli.http("GET", "/v1.47/services/web", "");
    assert_eq!(
        again["Version"]["Index"].as_u64(),
        Some(version),
        "the refused update changed the service"
    );
    assert_eq!(again["Spec"]["Mode"]["Replicated"]["Replicas"], 3);
    assert_eq!(processes_of(&program).len(), 3);

    // A rolling update, then a rollback, both waited for by the CLI.
    let updated = cli.ok(&["service", "update", "--env-add", "GREETING=hi", "web"]);
    assert!(updated.contains("converged"), "{updated}");
    assert!(env_of(&manager, "web").contains(&"GREETING=hi".to_string()));
    let replaced = eventually(patience(), "three new task processes", || {
        let pids = processes_of(&program);
        if pids.len() == 3 && pids.iter().all(|p| !after.contains(p)) {
            Ok(pids)
        } else {
            Err(format!("{pids:?}"))
        }
    });
    let rolled = cli.run(&["service", "rollback", "web"]);
    assert_eq!(rolled.status, 0, "{}\n{}", rolled.stdout, rolled.stderr);
    eventually(patience(), "the rollback to drop GREETING", || {
        let env = env_of(&manager, "web");
        if env.iter().any(|e| e.starts_with("GREETING=")) {
            Err(format!("{env:?}"))
        } else {
            Ok(())
        }
    });
    eventually(patience(), "three rolled-back task processes", || {
        let pids = processes_of(&program);
        if pids.len() == 3 && pids.iter().all(|p| !replaced.contains(p)) {
            Ok(())
        } else {
            Err(format!("{pids:?}"))
        }
    });

    // Logs: Docker's prefix, from the details the stream carries.
    manager.ok(&[
        "service",
        "create",
        "-d",
        "--runtime",
        "process",
        "--name",
        "talker",
        "/bin/sh",
        "-c",
        "echo hello from $SHOAL_TASK_SLOT; exec sleep 999",
    ]);
    eventually(patience(), "docker service logs talker", || {
        let run = cli.run(&["service", "logs", "talker"]);
        let line = run.stdout.lines().find(|l| l.contains("| hello from 1"));
        match line {
            Some(l) if l.starts_with("talker.1.") && l.contains('@') => Ok(()),
            _ => Err(format!("{}{}", run.stdout, run.stderr)),
        }
    });

    // Following: the stream stays open and delivers the existing line.
    let mut follow = cli.spawn(&["service", "logs", "--follow", "--timestamps", "talker"]);
    let (lines, received) = std::sync::mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let first = received
        .recv_timeout(patience())
        .expect("a followed log line");
    assert!(
        first.contains("talker.1.") && first.ends_with("| hello from 1"),
        "{first}"
    );
    assert!(
        follow.try_wait().unwrap().is_none(),
        "docker service logs --follow ended by itself"
    );
    let _ = follow.kill();
    let _ = follow.wait();

    // The tasks of a node, and the CLI's human-readable inspect.
    let node_ps = cli.ok(&["node", "ps", "self", "--format", "{{.Name}} {{.Node}}"]);
    assert!(
        node_ps.lines().all(|l| l.ends_with(" manager")),
        "{node_ps}"
    );
    let pretty = cli.ok(&["service", "inspect", "--pretty", "web"]);
    assert!(
        pretty.contains("Replicated") && pretty.contains("Replicas:\t3"),
        "{pretty}"
    );

    // Join tokens are shoal's own.
    assert_eq!(
        cli.ok(&["swarm", "join-token", "-q", "worker"]).trim(),
        manager.worker_token()
    );

    // Removal, seen by shoal.
    cli.ok(&["service", "rm", "web", "talker"]);
    assert_eq!(manager.ok(&["service", "ls", "-q"]).trim(), "");
    eventually(patience(), "the task processes to end", || {
        let pids = processes_of(&program);
        if pids.is_empty() {
            Ok(())
        } else {
            Err(format!("{pids:?}"))
        }
    });

    // What shoal does not serve fails clearly, naming shoal.
    let run = cli.run(&["run", "--rm", "busybox", "true"]);
    assert_ne!(run.status, 0);
    assert!(
        run.stderr.contains("shoal does not support"),
        "{}",
        run.stderr
    );
}

pub(crate) fn spec_version(manager: &Daemon, service: &str) -> u64 {
    let v = shoal_inspect(manager, service);
    v["SpecVersion"]
        .as_u64()
        .unwrap_or_else(|| panic!("no SpecVersion in {v}"))
}

#[test]
fn docker_cli_creates_container_services() {
    if !docker_enabled("docker_cli_creates_container_services")
        || !docker_cli_present("docker_cli_creates_container_services")
    {
        return;
    }
    let guard = Containers::new();
    let dir = TestDir::with_docker();
    let (manager, _workers, cli) = api_cluster(&dir, 2);
    guard.track(&manager);

    // docker service create, waited for with the CLI's progress display.
    let created = cli.ok(&[
        "service",
        "create",
        "--name",
        "box",
        "--replicas",
        "3",
        "--env",
        "A=1",
        "--label",
        "team=a",
        "--constraint",
        "node.role==worker",
        IMAGE,
        "/busybox",
        "sh",
        "-c",
        QUIET_LOOP,
    ]);
    assert!(created.contains("converged"), "{created}");
    assert_eq!(replicas_line(&cli, "box").unwrap(), "box replicated 3/3");
    let spec = shoal_inspect(&manager, "box");
    assert!(spec.to_string().contains("node.role==worker"), "{spec}");
    assert!(env_of(&manager, "box").contains(&"A=1".to_string()));
    let ps = cli.ok(&["service", "ps", "box", "--format", "{{.Node}}"]);
    assert!(
        ps.lines().all(|n| n.starts_with("worker")),
        "constraint not applied: {ps}"
    );
    cli.ok(&["service", "rm", "box"]);
}

/// `docker swarm init|join|join-token|update|leave` and `docker node
/// update` on daemons that are not in a swarm yet.
#[test]
fn docker_cli_forms_and_changes_the_swarm() {
    if !docker_cli_present("docker_cli_forms_and_changes_the_swarm") {
        return;
    }
    let dir = TestDir::new();
    let api = |name: &str| {
        let socket = dir.dir.path().join(format!("{name}-docker.sock"));
        let daemon = dir.daemon_with_args(
            name,
            &["--docker-api", &format!("unix://{}", socket.display())],
        );
        let cli = DockerCli::new(&dir, &socket);
        (daemon, cli)
    };
    let (manager, manager_cli) = api("manager");
    let (worker, worker_cli) = api("worker1");

    let info = manager_cli.ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    assert_eq!(info.trim(), "inactive");
    // Not in a swarm: the CLI gets Docker's 503 and says so.
    let refused = manager_cli.run(&["node", "ls"]);
    assert_ne!(refused.status, 0);
    assert!(
        refused.stderr.contains("not a swarm manager"),
        "{}",
        refused.stderr
    );

    let init = manager_cli.ok(&[
        "swarm",
        "init",
        "--advertise-addr",
        "127.0.0.1",
        "--listen-addr",
        "127.0.0.1:0",
    ]);
    assert!(init.contains("Swarm initialized"), "{init}");
    let token = manager_cli.ok(&["swarm", "join-token", "-q", "worker"]);
    assert_eq!(token.trim(), manager.worker_token());
    let addr = manager.info()["RemoteManagers"][0]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no manager address in {}", manager.info()));
    let joined = worker_cli.ok(&[
        "swarm",
        "join",
        "--token",
        token.trim(),
        "--advertise-addr",
        "127.0.0.2",
        &addr,
    ]);
    assert!(
        joined.contains("This node joined a swarm as a worker"),
        "{joined}"
    );
    eventually(patience(), "both nodes Ready", || {
        let nodes = manager.nodes();
        if nodes.len() == 2 && nodes.iter().all(|n| n["Status"] == "Ready") {
            Ok(())
        } else {
            Err(format!("{nodes:?}"))
        }
    });

    // Cluster settings and node availability, seen by shoal.
    manager_cli.ok(&["swarm", "update", "--task-history-limit", "2"]);
    let swarm = manager_cli.ok(&[
        "info",
        "--format",
        "{{.Swarm.Cluster.Spec.Orchestration.TaskHistoryRetentionLimit}}",
    ]);
    assert_eq!(swarm.trim(), "2");
    manager_cli.ok(&[
        "node",
        "update",
        "--availability",
        "drain",
        "--label-add",
        "zone=eu",
        "worker1",
    ]);
    let node = manager
        .nodes()
        .into_iter()
        .find(|n| n["Hostname"] == "worker1")
        .unwrap();
    assert_eq!(node["Availability"], "Drain", "{node}");
    let labels = manager_cli.ok(&[
        "node",
        "inspect",
        "worker1",
        "--format",
        "{{.Spec.Labels.zone}}",
    ]);
    assert_eq!(labels.trim(), "eu");
    let unsupported = manager_cli.run(&["swarm", "update", "--autolock"]);
    assert_ne!(unsupported.status, 0);
    assert!(
        unsupported.stderr.contains("autolock"),
        "{}",
        unsupported.stderr
    );

    let left = worker_cli.ok(&["swarm", "leave"]);
    assert!(left.contains("Node left the swarm"), "{left}");
    assert_eq!(worker.info()["LocalNodeState"], "inactive");
}
