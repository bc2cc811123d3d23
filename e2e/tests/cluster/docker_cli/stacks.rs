//! `docker stack deploy` with networks, published ports, secrets, configs
//! and volumes, and `docker secret|config …`, on namespace hosts: a stack
//! always joins `STACK_default`, and overlay networks are plumbed for real,
//! which daemons sharing one namespace cannot do (one VTEP each).
//!
//! The services are process tasks (`com.shoal.runtime: process`), so the
//! hosts need no Docker engine; the checks go through the docker CLI and
//! through shoal's own CLI.

use std::path::Path;

use serde_json::Value;

use super::{docker_cli_present, shoal_inspect, spec_version, DockerCli};
use crate::netns::NetCluster;
use crate::util::{eventually, marker_program, patience, privileged};

const STACK_FILE: &str = r#"
services:
  web:
    image: shoal-process
    command: ["PROGRAM", "999"]
    labels:
      com.shoal.runtime: process
      tier: front
    environment:
      GREETING: hello
    ports:
      - "8080:80"
    networks: [front, default]
    secrets: [db]
    configs:
      - source: app
        target: /etc/app.conf
    volumes:
      - data:/data
      - type: tmpfs
        target: /scratch
    deploy:
      replicas: 2
      labels:
        team: a
      placement:
        constraints: ["node.role==worker"]
      update_config:
        parallelism: 2
        order: start-first
  api:
    image: shoal-process
    command: ["PROGRAM", "998"]
    labels:
      com.shoal.runtime: process
    deploy:
      replicas: REPLICAS
networks:
  front:
    driver: overlay
    attachable: true
    labels:
      purpose: test
    ipam:
      config:
        - subnet: 10.231.7.0/24
secrets:
  db:
    file: ./db.txt
configs:
  app:
    file: ./app.conf
volumes:
  data: {}
"#;

fn write_stack(dir: &Path, program: &Path, api_replicas: u32) -> String {
    std::fs::write(dir.join("db.txt"), "s3cr3t-pw").unwrap();
    std::fs::write(dir.join("app.conf"), "mode=demo\n").unwrap();
    let path = dir.join("stack.yml");
    let text = STACK_FILE
        .replace("PROGRAM", program.to_str().unwrap())
        .replace("REPLICAS", &api_replicas.to_string());
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn lines_sorted(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn docker_cli_deploys_stacks_with_networks_ports_secrets_configs_and_volumes() {
    let test = "docker_cli::stacks::docker_cli_deploys_stacks_with_networks_ports_secrets_configs_and_volumes";
    if !privileged(test) || !docker_cli_present(test) {
        return;
    }
    let mut cluster = NetCluster::sized(1, 2);
    let socket = cluster.dir.dir.path().join("docker.sock");
    let api = format!("unix://{}", socket.display());
    cluster.managers[0].restart_with_args(&["--docker-api", &api]);
    let manager = &cluster.managers[0];
    let cli = DockerCli::new(&cluster.dir, &socket);
    let program = marker_program(&cluster.dir);

    // docker secret|config, by themselves.
    let secret_file = cluster.dir.dir.path().join("pw.txt");
    std::fs::write(&secret_file, "top-secret-value").unwrap();
    let secret_id = cli.ok(&[
        "secret",
        "create",
        "--label",
        "env=test",
        "pw",
        secret_file.to_str().unwrap(),
    ]);
    assert_eq!(
        cli.ok(&[
            "secret",
            "ls",
            "--filter",
            "label=env=test",
            "--format",
            "{{.Name}}"
        ])
        .trim(),
        "pw"
    );
    let inspected = cli.ok(&["secret", "inspect", "pw"]);
    let inspected: Value = serde_json::from_str(&inspected).unwrap();
    assert_eq!(inspected[0]["ID"].as_str().unwrap(), secret_id.trim());
    assert!(inspected[0]["Spec"].get("Data").is_none(), "{inspected}");
    assert!(
        !inspected.to_string().contains("dG9wLXNlY3JldC"),
        "secret data shown: {inspected}"
    );
    let config_file = cluster.dir.dir.path().join("c.txt");
    std::fs::write(&config_file, "hello config").unwrap();
    cli.ok(&["config", "create", "cfg", config_file.to_str().unwrap()]);
    let pretty = cli.ok(&["config", "inspect", "--pretty", "cfg"]);
    assert!(pretty.contains("hello config"), "{pretty}");
    cli.ok(&["secret", "rm", "pw"]);
    cli.ok(&["config", "rm", "cfg"]);
    let gone = cli.run(&["secret", "inspect", "pw"]);
    assert_ne!(gone.status, 0, "{}", gone.stdout);
    assert!(manager.ok(&["secret", "ls", "-q"]).trim().is_empty());

    // A stack with every kind of attachment.
    let file = write_stack(cluster.dir.dir.path(), &program, 1);
    let deployed = cli.ok(&[
        "stack",
        "deploy",
        "--resolve-image",
        "never",
        "-c",
        &file,
        "demo",
    ]);
    for expected in [
        "Creating network demo_front",
        "Creating network demo_default",
        "Creating secret demo_db",
        "Creating config demo_app",
        "Creating service demo_web",
        "Creating service demo_api",
    ] {
        assert!(deployed.contains(expected), "{expected:?} in {deployed}");
    }
    let networks = cli.ok(&[
        "network",
        "ls",
        "--filter",
        "label=com.docker.stack.namespace=demo",
        "--format",
        "{{.Name}} {{.Driver}}",
    ]);
    assert_eq!(
        lines_sorted(&networks),
        ["demo_default overlay", "demo_front overlay"]
    );
    let front: Value =
        serde_json::from_str(&cli.ok(&["network", "inspect", "demo_front"])).unwrap();
    assert_eq!(front[0]["Attachable"], true, "{front}");
    assert_eq!(front[0]["Labels"]["purpose"], "test", "{front}");
    assert!(front.to_string().contains("10.231.7.0/24"), "{front}");
    assert_eq!(
        cli.ok(&["secret", "ls", "--format", "{{.Name}}"]).trim(),
        "demo_db"
    );

    // What shoal stored, as shoal's CLI shows it.
    let web = shoal_inspect(manager, "demo_web");
    let task = &web["Spec"]["TaskTemplate"];
    let text = web.to_string();
    for expected in [
        "com.docker.stack.namespace",
        "team",
        "GREETING=hello",
        "node.role==worker",
        "demo_data",
        "/scratch",
        "/etc/app.conf",
        "demo_db",
    ] {
        assert!(text.contains(expected), "demo_web lacks {expected}: {web}");
    }
    assert_eq!(task["Networks"].as_array().map(Vec::len), Some(2), "{task}");

    eventually(patience(), "the stack's replicas", || {
        let out = cli.ok(&[
            "stack",
            "services",
            "demo",
            "--format",
            "{{.Name}} {{.Replicas}}",
        ]);
        if lines_sorted(&out) == ["demo_api 1/1", "demo_web 2/2"] {
            Ok(())
        } else {
            Err(out.clone())
        }
    });
    let tasks = cli.ok(&["stack", "ps", "demo", "--format", "{{.Name}}"]);
    assert_eq!(tasks.lines().count(), 3, "{tasks}");

    // docker service inspect: the published port and the VIPs, as Docker.
    let shown: Value = serde_json::from_str(&cli.ok(&["service", "inspect", "demo_web"])).unwrap();
    let endpoint = &shown[0]["Endpoint"];
    assert_eq!(endpoint["Ports"][0]["TargetPort"], 80, "{endpoint}");
    assert_eq!(endpoint["Ports"][0]["PublishedPort"], 8080, "{endpoint}");
    assert_eq!(
        endpoint["Spec"]["Ports"][0]["PublishedPort"], 8080,
        "{endpoint}"
    );
    let vips = endpoint["VirtualIPs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(vips.len(), 2, "a VIP per network: {endpoint}");
    assert!(
        vips.iter()
            .any(|v| v["Addr"].as_str().unwrap_or("").starts_with("10.231.7.")),
        "{endpoint}"
    );
    let pretty = cli.ok(&["service", "inspect", "--pretty", "demo_web"]);
    assert!(pretty.contains("PublishedPort = 8080"), "{pretty}");

    // A second deploy with one change updates only that service.
    let web_version = spec_version(manager, "demo_web");
    let api_version = spec_version(manager, "demo_api");
    write_stack(cluster.dir.dir.path(), &program, 2);
    cli.ok(&[
        "stack",
        "deploy",
        "--resolve-image",
        "never",
        "-c",
        &file,
        "demo",
    ]);
    assert_eq!(
        spec_version(manager, "demo_web"),
        web_version,
        "an unchanged service was updated"
    );
    assert!(spec_version(manager, "demo_api") > api_version);

    let removed = cli.ok(&["stack", "rm", "demo"]);
    for expected in [
        "Removing service demo_web",
        "Removing network demo_front",
        "Removing secret demo_db",
        "Removing config demo_app",
    ] {
        assert!(removed.contains(expected), "{expected:?} in {removed}");
    }
    assert_eq!(manager.ok(&["service", "ls", "-q"]).trim(), "");
    eventually(patience(), "the stack's networks gone", || {
        let left = cli.ok(&[
            "network",
            "ls",
            "--filter",
            "label=com.docker.stack.namespace=demo",
            "-q",
        ]);
        if left.trim().is_empty() {
            Ok(())
        } else {
            // The CLI removes networks once; a refusal while tasks still
            // leave them is retried here as an operator would.
            let _ = cli.run(&["stack", "rm", "demo"]);
            Err(left)
        }
    });
    assert!(cli.ok(&["secret", "ls", "-q"]).trim().is_empty());
    assert!(cli.ok(&["config", "ls", "-q"]).trim().is_empty());
}
