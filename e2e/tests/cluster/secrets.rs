//! Secrets and configs end to end: created from files, granted to a
//! container service, read by every task at its target with the granted
//! owner and mode, never returned by `inspect`, and found on no disk — not
//! on a node without a task of the service, not anywhere once the service
//! is gone. Bad inputs are refused with nothing changed.

use std::path::{Path, PathBuf};

use crate::docker::{docker_enabled, Containers, IMAGE, QUIET_LOOP};
use crate::util::{cluster, eventually, patience, privileged, Daemon, TestDir};

/// Bytes no other test or file can hold: the test's own marker.
fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{what}-{}-{nanos:x}", std::process::id())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Regular files under `dir` holding `needle` (symlinks not followed;
/// unreadable and special files skipped: sockets, pipes, /proc-like files).
pub(crate) fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            found.extend(files_holding(&path, needle));
        } else if kind.is_file() {
            let small = entry.metadata().is_ok_and(|m| m.len() < 256 << 20);
            if small && std::fs::read(&path).is_ok_and(|bytes| contains(&bytes, needle)) {
                found.push(path);
            }
        }
    }
    found
}

/// Where a node could have put a copy: its data dir, and the machine's /run.
fn copies_on(node: &Daemon, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = files_holding(&node.data_dir, needle);
    found.extend(files_holding(Path::new("/run"), needle));
    found
}

/// Detaches, on drop, any secrets tmpfs a daemon of the test left mounted
/// (one that was killed before it could unmount): the test dir can then go.
/// Declared after the `TestDir` and before the daemons, so it runs after
/// they stopped.
struct Tmpfses(PathBuf);

impl Drop for Tmpfses {
    fn drop(&mut self) {
        let Ok(nodes) = std::fs::read_dir(&self.0) else {
            return;
        };
        for node in nodes.flatten() {
            let mount = node.path().join("run/secrets");
            if mount.exists() {
                let _ = std::process::Command::new("umount")
                    .arg("-l")
                    .arg(&mount)
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }
}

fn exec(manager: &Daemon, task: &str, command: &[&str]) -> String {
    let mut args = vec!["service", "exec", task, "--", "/busybox"];
    args.extend_from_slice(command);
    let run = manager.shoal(&args);
    assert_eq!(run.status, 0, "exec {command:?} in {task}: {}", run.stderr);
    run.stdout
}

#[test]
fn granted_secrets_and_configs_reach_only_their_tasks_and_no_disk() {
    if !docker_enabled("granted_secrets_and_configs_reach_only_their_tasks_and_no_disk") {
        return;
    }
    let guard = Containers::new();
    let dir = TestDir::with_docker();
    let _tmpfses = Tmpfses(dir.dir.path().to_path_buf());
    let (manager, workers, _) = cluster(&dir, 3);
    guard.track(&manager);
    let secret = unique("db-password");
    let config = unique("listen 8080; # app config");
    // The sources live beside the daemons' dirs, not in them.
    let secret_file = dir.dir.path().join("db_password.txt");
    let config_file = dir.dir.path().join("app.conf");
    std::fs::write(&secret_file, &secret).unwrap();
    std::fs::write(&config_file, &config).unwrap();
    manager.ok(&[
        "secret",
        "create",
        "--label",
        "team=db",
        "db_password",
        secret_file.to_str().unwrap(),
    ]);
    manager.ok(&[
        "config",
        "create",
        "app_conf",
        config_file.to_str().unwrap(),
    ]);

    // Inspect and ls never show the secret's data (nor its base64); a
    // config's inspect shows it, as Docker's does.
    let inspected = manager.ok(&["secret", "inspect", "db_password"]);
    let encoded = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&secret)
    };
    assert!(
        !inspected.contains(&secret) && !inspected.contains(&encoded),
        "{inspected}"
    );
    let json: serde_json::Value = serde_json::from_str(&inspected).unwrap();
    assert_eq!(json[0]["Spec"]["Name"], "db_password");
    assert_eq!(json[0]["Spec"]["Labels"]["team"], "db");
    let listed = manager.ok(&["secret", "ls"]);
    assert!(
        listed.contains("db_password") && !listed.contains(&secret),
        "{listed}"
    );
    let config_json: serde_json::Value =
        serde_json::from_str(&manager.ok(&["config", "inspect", "app_conf"])).unwrap();
    let shown = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(config_json[0]["Spec"]["Data"].as_str().unwrap())
            .unwrap()
    };
    assert_eq!(shown, config.as_bytes());

    // Three replicas, one per worker: the manager's node runs none.
    manager.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "3",
        "--constraint",
        "node.role==worker",
        "--replicas-max-per-node",
        "1",
        "--secret",
        "source=db_password,target=db_password,uid=1000,gid=1001,mode=0400",
        "--config",
        "source=app_conf,target=/etc/app.conf,mode=0440",
        IMAGE,
        "/busybox",
        "sh",
        "-c",
        QUIET_LOOP,
    ]);
    let tasks = eventually(patience(), "3 running tasks", || {
        let tasks = manager.running_tasks("web");
        if tasks.len() == 3 {
            Ok(tasks)
        } else {
            Err(format!("{tasks:?}"))
        }
    });
    for task in &tasks {
        let id = task["ID"].as_str().unwrap();
        assert_eq!(
            exec(&manager, id, &["cat", "/run/secrets/db_password"]),
            secret
        );
        assert_eq!(
            exec(
                &manager,
                id,
                &["stat", "-c", "%a %u %g", "/run/secrets/db_password"]
            )
            .trim(),
            "400 1000 1001"
        );
        assert_eq!(exec(&manager, id, &["cat", "/etc/app.conf"]), config);
        assert_eq!(
            exec(&manager, id, &["stat", "-c", "%a %u %g", "/etc/app.conf"]).trim(),
            "440 0 0"
        );
        // Bound read-only: the task cannot change what it was granted.
        let write = manager.shoal(&[
            "service",
            "exec",
            id,
            "--",
            "/busybox",
            "sh",
            "-c",
            "echo x > /run/secrets/db_password",
        ]);
        assert_ne!(write.status, 0, "a write to the secret succeeded");
    }

    // The manager's node runs no task of the service: no copy of either
    // anywhere on it (its Raft store holds them sealed).
    let on_manager = copies_on(&manager, secret.as_bytes());
    assert!(
        on_manager.is_empty(),
        "the secret on the manager's node: {on_manager:?}"
    );
    // The search finds what is there: each worker's tmpfs holds its task's copy.
    for worker in &workers {
        let held = files_holding(&worker.data_dir.join("run/secrets"), secret.as_bytes());
        assert_eq!(held.len(), 1, "{}: {held:?}", worker.name);
    }

    // Removing a granted secret is refused, naming the service.
    manager
        .shoal(&["secret", "rm", "db_password"])
        .assert_error("in use by service web");

    // Gone with the service: no copy on any node.
    manager.ok(&["service", "rm", "web"]);
    for node in workers.iter().chain([&manager]) {
        eventually(patience(), "no copy left on the node", || {
            let found = copies_on(node, secret.as_bytes());
            let config_found = copies_on(node, config.as_bytes());
            if found.is_empty() && config_found.is_empty() {
                Ok(())
            } else {
                Err(format!("{}: {found:?} {config_found:?}", node.name))
            }
        });
    }
    manager.ok(&["secret", "rm", "db_password"]);
    manager.ok(&["config", "rm", "app_conf"]);
    assert!(!manager.ok(&["secret", "ls"]).contains("db_password"));
}

#[test]
fn bad_secret_inputs_are_refused_and_change_nothing() {
    let dir = TestDir::new();
    let (manager, _, _) = cluster(&dir, 0);
    let pw = dir.dir.path().join("pw");
    std::fs::write(&pw, "hunter2-but-longer").unwrap();

    // A missing secret: no service created.
    manager
        .shoal(&[
            "service", "create", "--name", "web", "--secret", "nope", IMAGE,
        ])
        .assert_error("secret nope not found");
    assert!(!manager.ok(&["service", "ls"]).contains("web"));

    // Over 500 KB, from a file and from stdin's size alike: nothing stored.
    let big = dir.dir.path().join("big");
    std::fs::write(&big, vec![b'x'; 500 * 1024 + 1]).unwrap();
    manager
        .shoal(&["secret", "create", "big", big.to_str().unwrap()])
        .assert_error("500 KB");
    assert!(!manager.ok(&["secret", "ls"]).contains("big"));

    // Names are unique; data is immutable.
    manager.ok(&["secret", "create", "pw", pw.to_str().unwrap()]);
    manager
        .shoal(&["secret", "create", "pw", pw.to_str().unwrap()])
        .assert_error("secret pw already exists");

    // In use: refused, naming the service, and the secret stays.
    manager.ok(&[
        "service", "create", "-d", "--name", "db", "--secret", "pw", IMAGE,
    ]);
    manager
        .shoal(&["secret", "rm", "pw"])
        .assert_error("secret pw is in use by service db");
    assert!(manager.ok(&["secret", "ls"]).contains("pw"));

    // Revoked, then removable.
    manager.ok(&["service", "update", "-d", "--secret-rm", "pw", "db"]);
    manager.ok(&["secret", "rm", "pw"]);
    manager
        .shoal(&["secret", "inspect", "pw"])
        .assert_error("secret pw not found");
}

/// The production-style stack of the Compose guides, with local images: a
/// database reading its password through `POSTGRES_PASSWORD_FILE` from a
/// stack secret, an external secret in the long syntax, and a config.
#[test]
fn a_stack_creates_its_secrets_first_and_removes_only_its_own() {
    if !docker_enabled("a_stack_creates_its_secrets_first_and_removes_only_its_own") {
        return;
    }
    let guard = Containers::new();
    let dir = TestDir::with_docker();
    let _tmpfses = Tmpfses(dir.dir.path().to_path_buf());
    let (manager, _workers, _) = cluster(&dir, 1);
    guard.track(&manager);
    let password = unique("postgres-password");
    let api_key = unique("api-key");
    let config = unique("max_connections = 20");
    let files = dir.dir.path().join("stack");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(files.join("db_password.txt"), &password).unwrap();
    std::fs::write(files.join("app.conf"), &config).unwrap();
    let external = dir.dir.path().join("api_key.txt");
    std::fs::write(&external, &api_key).unwrap();
    let compose = format!(
        r#"services:
  db:
    image: {IMAGE}
    command: ["/busybox", "sh", "-c", "{QUIET_LOOP}"]
    environment:
      POSTGRES_USER: user
      POSTGRES_PASSWORD_FILE: /run/secrets/db_password
    secrets:
      - db_password
      - source: api_key
        target: api
        uid: "70"
        mode: 0400
    configs:
      - source: app_conf
        target: /etc/app.conf
    volumes:
      - dbdata:/var/lib/db
  app:
    image: {IMAGE}
    command: ["/busybox", "sh", "-c", "{QUIET_LOOP}"]
    read_only: true
    tmpfs:
      - /tmp
volumes:
  dbdata: {{}}
secrets:
  db_password:
    file: ./db_password.txt
  api_key:
    external: true
configs:
  app_conf:
    file: ./app.conf
"#
    );
    let file = files.join("stack.yml");
    std::fs::write(&file, crate::stack::on_host_network(&compose)).unwrap();
    let file = file.to_str().unwrap();

    // The external secret must exist first: nothing is created without it.
    manager
        .shoal(&["stack", "deploy", "-d", "-c", file, "prod"])
        .assert_error("api_key");
    assert!(!manager.ok(&["secret", "ls"]).contains("prod_db_password"));
    assert!(!manager.ok(&["service", "ls"]).contains("prod_db"));

    manager.ok(&["secret", "create", "api_key", external.to_str().unwrap()]);
    let deployed = manager.ok(&["stack", "deploy", "-d", "-c", file, "prod"]);
    assert!(
        deployed.contains("Creating secret prod_db_password"),
        "{deployed}"
    );
    assert!(
        deployed.contains("Creating config prod_app_conf"),
        "{deployed}"
    );
    let task = first_running(&manager, "prod_db");
    // What the file declares is what the task sees.
    assert_eq!(
        exec(
            &manager,
            &task,
            &["sh", "-c", "cat \"$POSTGRES_PASSWORD_FILE\""]
        ),
        password
    );
    assert_eq!(exec(&manager, &task, &["cat", "/run/secrets/api"]), api_key);
    assert_eq!(
        exec(
            &manager,
            &task,
            &["stat", "-c", "%a %u", "/run/secrets/api"]
        )
        .trim(),
        "400 70"
    );
    assert_eq!(exec(&manager, &task, &["cat", "/etc/app.conf"]), config);
    // The named volume holds the database's files; the app's root is
    // read-only but its tmpfs is writable.
    exec(
        &manager,
        &task,
        &["sh", "-c", "echo rows > /var/lib/db/table"],
    );
    let app = first_running(&manager, "prod_app");
    assert_eq!(
        exec(
            &manager,
            &app,
            &[
                "sh",
                "-c",
                "touch /root-file 2>/dev/null && echo writable || echo read-only; echo t > /tmp/t && cat /tmp/t"
            ]
        ),
        "read-only\nt\n"
    );

    // A redeploy leaves the immutable objects as they are.
    let again = manager.ok(&["stack", "deploy", "-d", "-c", file, "prod"]);
    assert!(!again.contains("Creating secret"), "{again}");

    // `stack rm` removes the stack's own, never the external one.
    manager.ok(&["stack", "rm", "prod"]);
    let secrets = manager.ok(&["secret", "ls"]);
    assert!(
        !secrets.contains("prod_db_password") && secrets.contains("api_key"),
        "{secrets}"
    );
    assert!(!manager.ok(&["config", "ls"]).contains("prod_app_conf"));
    // and keeps the named volume with its data, as Docker does.
    let volumes = docker_volumes();
    let volume = volumes
        .iter()
        .find(|v| v.ends_with("prod_dbdata"))
        .unwrap_or_else(|| panic!("prod_dbdata kept: {volumes:?}"))
        .clone();
    eventually(patience(), "the stack's containers gone", || {
        let run = std::process::Command::new("docker")
            .args(["volume", "rm", &volume])
            .output()
            .unwrap();
        if run.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&run.stderr).into_owned())
        }
    });
}

/// The ID of a running task of `service`, once there is one.
fn first_running(manager: &Daemon, service: &str) -> String {
    eventually(patience(), &format!("a {service} task running"), || {
        let tasks = manager.running_tasks(service);
        tasks
            .first()
            .map(|t| t["ID"].as_str().unwrap().to_string())
            .ok_or(format!("{tasks:?}"))
    })
}

fn docker_volumes() -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["volume", "ls", "-q"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

/// A process task gets its secret and config too: bound read-only from the
/// agent's tmpfs into the task's own mount namespace, at the targets, with
/// the granted mode. The host's tree holds only the empty mount point, and
/// the task's files are gone with the service.
#[test]
fn a_process_task_reads_its_secret_and_config_in_its_own_namespace() {
    if !privileged("secrets::a_process_task_reads_its_secret_and_config_in_its_own_namespace") {
        return;
    }
    let dir = TestDir::new();
    let (manager, _workers, _) = cluster(&dir, 0);
    let secret_value = unique("process-secret");
    let config_value = unique("process-config");
    let name = unique("psec");
    let config_target = dir.dir.path().join("app.conf");
    std::fs::write(dir.dir.path().join("s.txt"), &secret_value).unwrap();
    std::fs::write(dir.dir.path().join("c.txt"), &config_value).unwrap();
    let file = |n: &str| dir.dir.path().join(n).display().to_string();
    manager.ok(&["secret", "create", &name, &file("s.txt")]);
    manager.ok(&["config", "create", &name, &file("c.txt")]);
    let out = dir.dir.path().join("seen.txt");
    let script = format!(
        "stat -c '%a' /run/secrets/{name} > {out}.tmp; cat /run/secrets/{name} {target} >> {out}.tmp; mv {out}.tmp {out}; exec sleep 3600",
        out = out.display(),
        target = config_target.display(),
    );
    manager.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "proc",
        "--runtime",
        "process",
        "--secret",
        &format!("source={name},mode=0400"),
        "--config",
        &format!("source={name},target={}", config_target.display()),
        "sh",
        "-c",
        &script,
    ]);
    let seen = eventually(patience(), "the task wrote what it read", || {
        std::fs::read_to_string(&out).map_err(|e| e.to_string())
    });
    assert_eq!(seen, format!("400\n{secret_value}{config_value}"));
    // Outside the task's namespace the targets are empty mount points.
    assert_eq!(std::fs::read(&config_target).unwrap(), b"");
    let host_secret = PathBuf::from(format!("/run/secrets/{name}"));
    assert_eq!(std::fs::read(&host_secret).unwrap_or_default(), b"");
    manager.ok(&["service", "rm", "proc"]);
    eventually(patience(), "the task's files gone", || {
        let left = files_holding(&manager.data_dir, secret_value.as_bytes());
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });
    let _ = std::fs::remove_file(&host_secret);
}
