//! shoal's `--format` against Docker's on the same cluster: every template
//! is run by `shoal` and by the real `docker` CLI (through the daemon's
//! Docker API), and the outputs must be equal. Then `docker service update
//! --image` and `docker service rollback` on a container service, checked
//! through shoal's CLI.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

use super::{api_cluster, docker_cli_present, shoal_inspect, DockerCli};
use crate::docker::{docker_enabled, Containers, IMAGE, QUIET_LOOP};
use crate::util::{eventually, patience, Daemon, TestDir};

/// shoal and docker run the same command line; both must succeed (or both
/// fail) and print the same. Polled: task ages ("Running 5 seconds ago")
/// may tick between the two runs.
#[track_caller]
fn same_output(manager: &Daemon, cli: &DockerCli, args: &[&str]) -> String {
    eventually(patience(), &format!("the same output of {args:?}"), || {
        let shoal = manager.shoal(args);
        let docker = cli.run(args);
        if shoal.status != 0 || docker.status != 0 {
            return Err(format!(
                "shoal: {} {}{}\ndocker: {} {}{}",
                shoal.status,
                shoal.stdout,
                shoal.stderr,
                docker.status,
                docker.stdout,
                docker.stderr
            ));
        }
        if shoal.stdout == docker.stdout {
            Ok(shoal.stdout)
        } else {
            Err(format!(
                "shoal printed:\n{}\ndocker printed:\n{}",
                shoal.stdout, docker.stdout
            ))
        }
    })
}

/// Every non-empty leaf of a JSON value by its path. Go's encoder writes
/// zero values that bollard's models leave out (and the reverse), so two
/// encodings of the same object agree on exactly these.
fn leaves(value: &Value, path: String, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(o) => {
            for (k, v) in o {
                leaves(v, format!("{path}.{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                leaves(v, format!("{path}[{i}]"), out);
            }
        }
        Value::Null => {}
        Value::Bool(false) => {}
        Value::String(s) if s.is_empty() || s == "0001-01-01T00:00:00Z" => {}
        Value::Number(n) if n.as_f64() == Some(0.0) => {}
        other => {
            out.insert(path, other.clone());
        }
    }
}

/// `{{json .}}` of an inspect: the same object, field by field.
#[track_caller]
fn same_json(manager: &Daemon, cli: &DockerCli, args: &[&str]) {
    let parse = |text: &str| {
        let value: Value =
            serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        let mut out = BTreeMap::new();
        leaves(&value, String::new(), &mut out);
        out
    };
    let shoal = parse(&manager.ok(args));
    let docker = parse(&cli.ok(args));
    assert!(shoal.len() > 10, "{shoal:?}");
    assert_eq!(shoal, docker, "{args:?}");
}

/// A locally tagged copy of the test image, removed on drop.
struct Tag(String);

impl Tag {
    fn new(dir: &TestDir) -> Tag {
        let unique: String = dir
            .dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_lowercase();
        let tag = format!("shoal-test/busybox:v2-{unique}");
        let ok = Command::new("docker")
            .args(["tag", IMAGE, &tag])
            .env_remove("DOCKER_HOST")
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "docker tag {IMAGE} {tag} failed");
        Tag(tag)
    }
}

impl Drop for Tag {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rmi", &self.0])
            .env_remove("DOCKER_HOST")
            .output();
    }
}

/// The images of `web`'s tasks that should run, as shoal lists them.
fn running_images(manager: &Daemon) -> Vec<String> {
    let out = manager.ok(&[
        "service",
        "ps",
        "web",
        "--format",
        "{{if eq .DesiredState \"Running\"}}{{.Image}} {{.CurrentState}}{{end}}",
    ]);
    let mut images: Vec<String> = out
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    images.sort();
    images
}

#[test]
fn shoal_format_prints_what_dockers_does_and_images_roll() {
    let test = "shoal_format_prints_what_dockers_does_and_images_roll";
    if !docker_enabled(test) || !docker_cli_present(test) {
        return;
    }
    let guard = Containers::new();
    let dir = TestDir::with_docker();
    let (manager, _workers, cli) = api_cluster(&dir, 2);
    guard.track(&manager);
    let created = cli.ok(&[
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        "3",
        "--label",
        "tier=front",
        IMAGE,
        "/busybox",
        "sh",
        "-c",
        QUIET_LOOP,
    ]);
    assert!(created.contains("converged"), "{created}");

    // Lists: plain fields, json, and tables with Docker's header and widths.
    let nodes = same_output(&manager, &cli, &["node", "ls", "--format", "{{.Hostname}}"]);
    assert_eq!(nodes, "manager\nworker1\nworker2\n");
    let json = same_output(&manager, &cli, &["node", "ls", "--format", "{{json .}}"]);
    assert!(json.contains("\"ManagerStatus\":\"Leader\""), "{json}");
    let table = same_output(
        &manager,
        &cli,
        &[
            "node",
            "ls",
            "--format",
            "table {{.ID}}\\t{{.Hostname}}\\t{{.Status}}\\t{{.ManagerStatus}}\\t{{.EngineVersion}}",
        ],
    );
    assert!(table.starts_with("ID "), "{table}");
    // Docker's node context has no Name: both refuse the template.
    let (shoal, docker) = (
        manager.shoal(&["node", "ls", "--format", "{{.Name}}"]),
        cli.run(&["node", "ls", "--format", "{{.Name}}"]),
    );
    assert!(
        shoal.status != 0 && docker.status != 0,
        "{} {}",
        shoal.stdout,
        docker.stdout
    );
    assert!(shoal.stderr.starts_with("Error: "), "{}", shoal.stderr);

    assert_eq!(
        same_output(&manager, &cli, &["service", "ls", "--format", "{{.Name}}"]),
        "web\n"
    );
    let json = same_output(&manager, &cli, &["service", "ls", "--format", "{{json .}}"]);
    assert!(json.contains("\"Replicas\":\"3/3\""), "{json}");
    same_output(
        &manager,
        &cli,
        &[
            "service",
            "ls",
            "--format",
            "table {{.ID}}\\t{{.Name}}\\t{{.Mode}}\\t{{.Replicas}}\\t{{.Image}}\\t{{.Ports}}",
        ],
    );
    let ps = same_output(
        &manager,
        &cli,
        &[
            "service",
            "ps",
            "web",
            "--format",
            "{{.Name}} {{.DesiredState}}",
        ],
    );
    assert_eq!(ps, "web.1 Running\nweb.2 Running\nweb.3 Running\n");
    same_output(
        &manager,
        &cli,
        &["service", "ps", "web", "--format", "{{json .}}"],
    );
    same_output(
        &manager,
        &cli,
        &[
            "service",
            "ps",
            "web",
            "--format",
            "table {{.ID}}\\t{{.Name}}\\t{{.Image}}\\t{{.Node}}\\t{{.CurrentState}}\\t{{.Error}}",
        ],
    );

    // Inspect: Docker's shape, the same values.
    let name = same_output(
        &manager,
        &cli,
        &["service", "inspect", "web", "--format", "{{.Spec.Name}}"],
    );
    assert_eq!(name, "web\n");
    same_output(
        &manager,
        &cli,
        &[
            "service",
            "inspect",
            "web",
            "--format",
            "{{.ID}} {{.Version.Index}} {{.Spec.TaskTemplate.ContainerSpec.Image}} {{json .Spec.Labels}} {{.Spec.Mode.Replicated.Replicas}}",
        ],
    );
    same_json(
        &manager,
        &cli,
        &["service", "inspect", "web", "--format", "{{json .}}"],
    );
    same_output(
        &manager,
        &cli,
        &[
            "node",
            "inspect",
            "self",
            "--format",
            "{{.ID}} {{.Description.Hostname}} {{.Spec.Role}} {{.Status.State}} {{.ManagerStatus.Leader}}",
        ],
    );
    same_json(
        &manager,
        &cli,
        &["node", "inspect", "self", "--format", "{{json .}}"],
    );

    // Networks: created through the Docker API, shown alike, removed.
    let made = cli.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.231.7.0/24",
        "fmtnet",
    ]);
    let shown = manager.ok(&["network", "inspect", "fmtnet", "--format", "{{.Id}}"]);
    assert_eq!(made.trim(), shown.trim());
    let listed = same_output(
        &manager,
        &cli,
        &[
            "network",
            "ls",
            "--format",
            "{{.ID}} {{.Name}} {{.Driver}} {{.Scope}} {{.Internal}}",
        ],
    );
    assert!(listed.contains(" fmtnet overlay swarm false"), "{listed}");
    let subnet = same_output(
        &manager,
        &cli,
        &[
            "network",
            "inspect",
            "fmtnet",
            "--format",
            "{{.Name}} {{range .IPAM.Config}}{{.Subnet}}{{end}} {{.Scope}}",
        ],
    );
    assert_eq!(subnet, "fmtnet 10.231.7.0/24 swarm\n");
    let refused = cli.run(&["network", "create", "-d", "bridge", "other"]);
    assert!(
        refused.status != 0 && refused.stderr.contains("overlay"),
        "{}",
        refused.stderr
    );
    cli.ok(&["network", "rm", "fmtnet"]);
    assert!(!manager.ok(&["network", "ls"]).contains("fmtnet"));
    let gone = cli.run(&["network", "inspect", "fmtnet"]);
    assert!(gone.status != 0, "{}", gone.stdout);

    // A rolling update to another image, waited for by the CLI, seen by shoal.
    let tag = Tag::new(&dir);
    let updated = cli.ok(&["service", "update", "--image", &tag.0, "web"]);
    assert!(updated.contains("converged"), "{updated}");
    let image = |manager: &Daemon| {
        shoal_inspect(manager, "web")["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(image(&manager).starts_with(&tag.0), "{}", image(&manager));
    eventually(patience(), "every task on the new image", || {
        let images = running_images(&manager);
        if images.len() == 3
            && images
                .iter()
                .all(|i| i.starts_with(&tag.0) && i.contains(" Running "))
        {
            Ok(())
        } else {
            Err(format!("{images:?}"))
        }
    });

    // And back.
    let rolled = cli.ok(&["service", "rollback", "web"]);
    assert!(rolled.contains("rollback"), "{rolled}");
    assert!(image(&manager).starts_with(IMAGE), "{}", image(&manager));
    eventually(patience(), "every task back on the first image", || {
        let images = running_images(&manager);
        if images.len() == 3
            && images
                .iter()
                .all(|i| i.starts_with(IMAGE) && i.contains(" Running "))
        {
            Ok(())
        } else {
            Err(format!("{images:?}"))
        }
    });
    cli.ok(&["service", "rm", "web"]);
    assert_eq!(manager.ok(&["service", "ls", "-q"]).trim(), "");
}
