//! Mounts and volumes on real daemons: a named volume's data outlives its
//! task and the replacement comes back to the same node; a tmpfs is empty
//! at every start; a read-only root refuses writes; `volume ls` shows each
//! node's volumes; removing the service keeps them until `volume rm`; and
//! bad mounts are refused with nothing changed. Process tasks need root
//! (their mount namespace): the privileged gate; containers the Docker gate.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::docker::{docker_enabled, Containers, IMAGE};
use crate::util::{cluster, eventually, marker_program, patience, privileged, Daemon, TestDir};

/// A name unique to this test run (volumes are node-wide and the engine is
/// shared with other tests).
fn tag(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("e2e-{what}-{}-{nanos}", std::process::id())
}

/// The daemon whose hostname `service ps` shows for the task.
fn node_of<'a>(task: &serde_json::Value, daemons: &[&'a Daemon]) -> &'a Daemon {
    let host = task["Node"].as_str().unwrap();
    daemons
        .iter()
        .find(|d| d.name == host)
        .unwrap_or_else(|| panic!("no daemon named {host}"))
}

fn one_running(manager: &Daemon, service: &str) -> Result<serde_json::Value, String> {
    let running = manager.running_tasks(service);
    match running.as_slice() {
        [task] => Ok(task.clone()),
        other => Err(format!("{} running tasks: {other:?}", other.len())),
    }
}

/// Lines of the log the tasks write into their volume.
fn volume_log(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The script both runtimes run: records in the volume whether the tmpfs
/// was empty and whether the root is writable, then idles.
fn probe_script(data: &str, scratch: &str, probe: &str, sleep: &str) -> String {
    format!(
        "if [ -z \"$(ls -A {scratch})\" ]; then echo tmpfs-empty >> {data}/log; \
         else echo tmpfs-dirty >> {data}/log; fi; \
         touch {scratch}/left-behind; \
         if touch {probe} 2>/dev/null; then echo root-writable >> {data}/log; \
         else echo root-readonly >> {data}/log; fi; \
         echo start >> {data}/log; \
         trap 'exit 0' TERM; while :; do {sleep} 1; done"
    )
}

#[test]
fn a_process_volume_outlives_its_task_and_the_replacement_returns_to_its_node() {
    if !privileged("a_process_volume_outlives_its_task") {
        return;
    }
    let dir = TestDir::new();
    let (manager, workers, _) = cluster(&dir, 2);
    let sleep = marker_program(&dir);
    let root = dir.dir.path();
    let (data, scratch, probe) = (
        root.join("mnt/data"),
        root.join("mnt/scratch"),
        root.join("probe"),
    );
    let volume = tag("pvol");
    let script = probe_script(
        &data.display().to_string(),
        &scratch.display().to_string(),
        &probe.display().to_string(),
        &sleep.display().to_string(),
    );
    manager.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "db",
        "--runtime",
        "process",
        "--restart-delay",
        "0s",
        "--read-only",
        "--mount",
        &format!("type=volume,source={volume},target={}", data.display()),
        "--mount",
        &format!("type=tmpfs,target={},tmpfs-size=1m", scratch.display()),
        "/bin/sh",
        "-c",
        &script,
    ]);
    let daemons: Vec<&Daemon> = std::iter::once(&manager).chain(workers.iter()).collect();
    let first = eventually(patience(), "the task running", || {
        one_running(&manager, "db")
    });
    let node = node_of(&first, &daemons);
    let log = node
        .data_dir
        .join("volumes")
        .join(&volume)
        .join("_data/log");
    eventually(
        patience(),
        "the task's first start recorded in its volume",
        || {
            let lines = volume_log(&log);
            if lines.iter().filter(|l| *l == "start").count() == 1 {
                Ok(())
            } else {
                Err(format!("{lines:?}"))
            }
        },
    );
    assert!(!probe.exists(), "the task wrote through its read-only root");
    assert!(
        !scratch.join("left-behind").exists(),
        "the tmpfs write reached the host's directory"
    );

    // Killed: the replacement of its slot goes back to the volume's node
    // (of three that could take it) and finds the data.
    let pid = node
        .task_pid(first["ID"].as_str().unwrap())
        .expect("task pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
    let second = eventually(patience(), "a replacement running", || {
        let task = one_running(&manager, "db")?;
        if task["ID"] != first["ID"] {
            Ok(task)
        } else {
            Err("still the first task".into())
        }
    });
    assert_eq!(
        second["Node"], first["Node"],
        "the replacement left its volume's node"
    );
    eventually(
        patience(),
        "the second start recorded in the same volume",
        || {
            let lines = volume_log(&log);
            if lines.iter().filter(|l| *l == "start").count() == 2 {
                Ok(())
            } else {
                Err(format!("{lines:?}"))
            }
        },
    );
    let lines = volume_log(&log);
    assert_eq!(
        lines.iter().filter(|l| *l == "tmpfs-empty").count(),
        2,
        "the tmpfs is empty at every start: {lines:?}"
    );
    assert!(lines.iter().all(|l| l != "root-writable"), "{lines:?}");
    assert!(lines.iter().any(|l| l == "root-readonly"), "{lines:?}");

    // `volume ls` shows it on its node; removing the service keeps it.
    let listed = eventually(patience(), "the volume listed on its node", || {
        let out = manager.ok(&["volume", "ls"]);
        let row = out
            .lines()
            .find(|l| l.contains(&volume))
            .ok_or_else(|| out.clone())?
            .to_string();
        Ok::<_, String>(row)
    });
    let columns: Vec<&str> = listed.split_whitespace().collect();
    assert_eq!(
        columns,
        [node.name.as_str(), "local", "process", volume.as_str()]
    );
    manager.ok(&["service", "rm", "db"]);
    eventually(patience(), "the task gone", || {
        if sleep_processes(&sleep) == 0 {
            Ok(())
        } else {
            Err("task still running".to_string())
        }
    });
    assert!(
        log.exists(),
        "removing the service removed its volume's data"
    );
    assert!(manager.ok(&["volume", "ls", "-q"]).contains(&volume));
    // Removed when asked.
    manager.ok(&["volume", "rm", &volume]);
    assert!(!log.exists(), "volume rm left the data");
    eventually(patience(), "the volume no longer listed", || {
        let out = manager.ok(&["volume", "ls", "-q"]);
        if out.contains(&volume) {
            Err(out)
        } else {
            Ok(())
        }
    });
}

fn sleep_processes(program: &Path) -> usize {
    crate::util::processes_of(program).len()
}

/// Removes, on drop, the engine volumes a test named.
struct EngineVolumes(Vec<String>);

impl Drop for EngineVolumes {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("docker")
                .args(["volume", "rm", "-f", name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn docker_out(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_container_volume_outlives_its_task_and_a_driver_clash_is_refused() {
    if !docker_enabled("a_container_volume_outlives_its_task_and_a_driver_clash_is_refused") {
        return;
    }
    let volume = tag("cvol");
    // Declared first: dropped last, after the containers are gone.
    let _volumes = EngineVolumes(vec![volume.clone()]);
    let guard = Containers::new();
    let dir = TestDir::with_docker();
    let (manager, workers, _) = cluster(&dir, 2);
    let nodes = guard.track(&manager);
    let script = probe_script("/data", "/scratch", "/probe", "/busybox sleep");
    manager.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "cdb",
        "--restart-delay",
        "0s",
        "--read-only",
        "--mount",
        &format!("type=volume,source={volume},target=/data,volume-label=tier=db"),
        "--mount",
        "type=tmpfs,target=/scratch",
        IMAGE,
        "/busybox",
        "sh",
        "-c",
        &script
            .replace("ls -A", "/busybox ls -A")
            .replace("touch", "/busybox touch"),
    ]);
    let first = eventually(patience(), "the container task running", || {
        one_running(&manager, "cdb")
    });
    let read_log = || {
        Command::new("docker")
            .args([
                "run",
                "--rm",
                "-v",
                &format!("{volume}:/v:ro"),
                IMAGE,
                "/busybox",
                "cat",
                "/v/log",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    eventually(patience(), "the first start in the engine volume", || {
        let log = read_log();
        if log.lines().filter(|l| *l == "start").count() == 1 {
            Ok(())
        } else {
            Err(log)
        }
    });
    // The engine volume carries the node's and the mount's labels.
    let labels = docker_out(&["volume", "inspect", "--format", "{{json .Labels}}", &volume]);
    let labels: serde_json::Value = serde_json::from_str(labels.trim()).unwrap();
    assert_eq!(labels["tier"], "db");
    assert!(
        nodes
            .iter()
            .any(|n| labels["com.shoal.volume.node"] == n.as_str()),
        "{labels}"
    );

    // A volume name the cluster knows with driver local, asked for with
    // another driver: refused, nothing created.
    eventually(patience(), "the volume reported", || {
        let out = manager.ok(&["volume", "ls"]);
        if out.contains(&volume) {
            Ok(())
        } else {
            Err(out)
        }
    });
    let before = manager.ok(&["service", "ls", "-q"]);
    manager
        .shoal(&[
            "service",
            "create",
            "-d",
            "--name",
            "clash",
            "--mount",
            &format!("type=volume,source={volume},target=/d,volume-driver=other"),
            IMAGE,
        ])
        .assert_error("already exists on node");
    assert_eq!(manager.ok(&["service", "ls", "-q"]), before);

    // The container killed: its replacement is on the same node, with the
    // data, an empty tmpfs, and a root it cannot write.
    let container = docker_out(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.shoal.task.id={}", first["ID"].as_str().unwrap()),
    ]);
    let _ = Command::new("docker")
        .args(["kill", container.trim()])
        .status();
    let second = eventually(patience(), "a replacement running", || {
        let task = one_running(&manager, "cdb")?;
        if task["ID"] != first["ID"] {
            Ok(task)
        } else {
            Err("still the first task".into())
        }
    });
    assert_eq!(second["Node"], first["Node"]);
    let log = eventually(patience(), "the second start in the same volume", || {
        let log = read_log();
        if log.lines().filter(|l| *l == "start").count() == 2 {
            Ok(log)
        } else {
            Err(log)
        }
    });
    assert_eq!(
        log.lines().filter(|l| *l == "tmpfs-empty").count(),
        2,
        "{log}"
    );
    assert_eq!(
        log.lines().filter(|l| *l == "root-readonly").count(),
        2,
        "{log}"
    );
    let _ = workers;
    // Removing the service keeps the volume, as Docker does.
    manager.ok(&["service", "rm", "cdb"]);
    eventually(patience(), "the containers gone", || {
        if guard_running(&nodes) == 0 {
            Ok(())
        } else {
            Err("containers still running".to_string())
        }
    });
    assert!(docker_out(&["volume", "ls", "-q"])
        .lines()
        .any(|l| l == volume));
    manager.ok(&["volume", "rm", &volume]);
    assert!(!docker_out(&["volume", "ls", "-q"])
        .lines()
        .any(|l| l == volume));
}

fn guard_running(nodes: &[String]) -> usize {
    nodes
        .iter()
        .map(|n| {
            docker_out(&[
                "ps",
                "-q",
                "--filter",
                &format!("label=com.shoal.node.id={n}"),
            ])
            .lines()
            .count()
        })
        .sum()
}

#[test]
fn bad_mounts_are_refused_with_nothing_changed() {
    let dir = TestDir::new();
    let manager = dir.daemon("manager");
    manager.init();
    let before = manager.ok(&["service", "ls", "-q"]);
    let create = |mount: &str| {
        manager.shoal(&[
            "service",
            "create",
            "-d",
            "--runtime",
            "process",
            "--mount",
            mount,
            "/bin/true",
        ])
    };
    create("type=nfs,source=x,target=/x").assert_error("unknown mount type \"nfs\"");
    create("type=bind,source=relative/dir,target=/x").assert_error("must be an absolute host path");
    create("type=tmpfs,source=oops,target=/x").assert_error("cannot have a source");
    create("type=volume,source=v1,target=/x,volume-driver=nfs")
        .assert_error("cannot have a driver");
    // The cluster restricts binds to a prefix: others are refused.
    let allowed = PathBuf::from(dir.dir.path()).join("allowed");
    manager.ok(&[
        "swarm",
        "update",
        "--bind-mount-prefix",
        &allowed.display().to_string(),
    ]);
    create("type=bind,source=/etc,target=/x").assert_error("not allowed by the cluster's policy");
    assert_eq!(manager.ok(&["service", "ls", "-q"]), before);
}
