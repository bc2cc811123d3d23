//! `shoal stack`: deploying Compose files as services, redeploying only what
//! changed, pruning, removing, and refusing broken files before anything is
//! deployed.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{cluster, eventually, marker_program, patience, Daemon, TestDir};

fn write(dir: &TestDir, name: &str, text: &str) -> PathBuf {
    let path = dir.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// web (3), api (2, with a health check) and worker (1) running `program`;
/// web and worker depend on api. `web_greeting` varies web's environment.
/// `compose` with every service on Docker's predefined `host` network
/// (`external: true, name: host`). Loopback clusters run their daemons in
/// one network namespace, where no worker can own a VXLAN endpoint, so a
/// stack's default overlay network would keep every task pending; these
/// suites test what a deploy does, and the overlay suites (on one namespace
/// per node) test the stacks' networks.
pub fn on_host_network(compose: &str) -> String {
    let mut out = String::new();
    let mut in_services = false;
    for line in compose.lines() {
        out.push_str(line);
        out.push('\n');
        if !line.starts_with(' ') && !line.is_empty() {
            in_services = line.trim_end() == "services:";
            continue;
        }
        let is_service_key =
            line.starts_with("  ") && !line.starts_with("   ") && line.trim_end().ends_with(':');
        if in_services && is_service_key {
            out.push_str("    networks: [outside]\n");
        }
    }
    out.push_str("networks:\n  outside:\n    external: true\n    name: host\n");
    out
}

fn stack_file(program: &Path, web_greeting: &str, with_worker: bool) -> String {
    let program = program.display();
    let mut text = format!(
        r#"
services:
  api:
    x-shoal-runtime: process
    command: {program} 3600
    build: ./api
    environment:
      ROLE: api
    healthcheck:
      test: ["CMD", "true"]
      interval: 5s
    deploy:
      replicas: 2
  web:
    x-shoal-runtime: process
    command: ["{program}", "3600"]
    environment:
      GREETING: {web_greeting}
    labels:
      tier: front
    depends_on:
      api:
        condition: service_healthy
    deploy:
      replicas: 3
      labels:
        team: web
"#
    );
    if with_worker {
        text.push_str(&format!(
            r#"
  worker:
    x-shoal-runtime: process
    command: {program} 3600
    restart: always
    depends_on: [api]
"#
        ));
    }
    on_host_network(&text)
}

fn inspect(manager: &Daemon, service: &str) -> Value {
    let out = manager.ok(&["service", "inspect", service]);
    let array: Value = serde_json::from_str(&out).expect("inspect json");
    array[0].clone()
}

fn spec_version(manager: &Daemon, service: &str) -> u64 {
    inspect(manager, service)["SpecVersion"].as_u64().unwrap()
}

fn stack_services(manager: &Daemon, stack: &str) -> Vec<Value> {
    manager
        .ok(&["stack", "services", "--format", "json", stack])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn names(services: &[Value]) -> Vec<String> {
    services
        .iter()
        .map(|s| s["Name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_stack_deploys_updates_only_what_changed_prunes_and_is_removed() {
    let dir = TestDir::new();
    let (manager, _workers, _) = cluster(&dir, 2);
    let program = marker_program(&dir);
    let file = write(&dir, "stack.yml", &stack_file(&program, "hello", true));
    let file = file.to_str().unwrap();

    let run = manager.shoal(&["stack", "deploy", "-c", file, "app"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("Ignoring unsupported options: build, restart"),
        "{}",
        run.stderr
    );
    let lines: Vec<&str> = run.stdout.lines().collect();
    let at = |line: &str| {
        lines
            .iter()
            .position(|l| *l == line)
            .unwrap_or_else(|| panic!("{line:?} not in {lines:?}"))
    };
    // depends_on: api first, the others only once api's replicas run.
    assert!(at("Creating service app_api") < at("Creating service app_web"));
    assert!(at("Creating service app_api") < at("Creating service app_worker"));

    eventually(patience(), "every replica of the stack running", || {
        let services = stack_services(&manager, "app");
        let replicas: Vec<(String, String)> = services
            .iter()
            .map(|s| {
                (
                    s["Name"].as_str().unwrap().to_string(),
                    s["Replicas"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let expected = [
            ("app_api", "2/2"),
            ("app_web", "3/3"),
            ("app_worker", "1/1"),
        ];
        if replicas
            .iter()
            .map(|(n, r)| (n.as_str(), r.as_str()))
            .eq(expected)
        {
            Ok(())
        } else {
            Err(format!("{replicas:?}"))
        }
    });
    let ls: Value = serde_json::from_str(manager.ok(&["stack", "ls", "--format", "json"]).trim())
        .expect("one stack");
    assert_eq!(ls["Name"], "app");
    assert_eq!(ls["Services"], "3");
    let tasks: Vec<Value> = manager
        .ok(&["stack", "ps", "--format", "json", "app"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(tasks.len(), 6, "{tasks:?}");
    assert_eq!(manager.ok(&["stack", "ps", "-q", "app"]).lines().count(), 6);
    assert_eq!(
        manager
            .ok(&["stack", "services", "-q", "app"])
            .lines()
            .count(),
        3
    );

    let web = inspect(&manager, "app_web");
    let spec = &web["Spec"];
    assert_eq!(spec["Labels"]["com.docker.stack.namespace"], "app");
    assert_eq!(spec["Labels"]["team"], "web");
    assert_eq!(spec["Mode"]["Replicated"]["Replicas"], 3);
    let container = &spec["TaskTemplate"]["ContainerSpec"];
    assert_eq!(spec["TaskTemplate"]["Runtime"], "process");
    assert_eq!(container["Env"], serde_json::json!(["GREETING=hello"]));
    assert_eq!(container["Labels"]["com.docker.stack.namespace"], "app");
    assert_eq!(container["Labels"]["tier"], "front");

    // A second deploy of the same file changes nothing.
    let versions = |m: &Daemon| {
        ["app_api", "app_web", "app_worker"]
            .map(|s| spec_version(m, s))
            .to_vec()
    };
    let before = versions(&manager);
    let again = manager.ok(&["stack", "deploy", "-c", file, "app"]);
    assert!(
        !again.contains("Creating") && !again.contains("Updating"),
        "{again}"
    );
    assert_eq!(versions(&manager), before);

    // Change web only: only web's spec version moves.
    std::fs::write(file, stack_file(&program, "bonjour", true)).unwrap();
    let out = manager.ok(&["stack", "deploy", "-c", file, "app"]);
    let web_id = web["ID"].as_str().unwrap();
    assert!(
        out.contains(&format!("Updating service app_web (id: {web_id})")),
        "{out}"
    );
    assert!(
        !out.contains("app_api") && !out.contains("app_worker"),
        "{out}"
    );
    let after = versions(&manager);
    assert_eq!((after[0], after[2]), (before[0], before[2]));
    assert!(after[1] > before[1], "{before:?} -> {after:?}");
    assert_eq!(
        inspect(&manager, "app_web")["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"],
        serde_json::json!(["GREETING=bonjour"])
    );

    // Drop worker from the file: without --prune it stays, with it it goes.
    std::fs::write(file, stack_file(&program, "bonjour", false)).unwrap();
    let out = manager.ok(&["stack", "deploy", "-c", file, "app"]);
    assert!(!out.contains("Removing"), "{out}");
    assert_eq!(stack_services(&manager, "app").len(), 3);
    let out = manager.ok(&["stack", "deploy", "--prune", "-c", file, "app"]);
    assert_eq!(out.trim(), "Removing service app_worker");
    assert_eq!(
        names(&stack_services(&manager, "app")),
        ["app_api", "app_web"]
    );
    let pruned = versions_of(&manager, &["app_api", "app_web"]);
    assert_eq!(pruned, [after[0], after[1]]);

    // stack rm removes everything, and then there is nothing to remove.
    let out = manager.ok(&["stack", "rm", "app"]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "Removing service app_api",
            "Removing service app_web",
            // No `app_default`: the services are on the host network (see
            // `on_host_network`); the overlay suites remove stack networks.
        ]
    );
    assert_eq!(manager.ok(&["service", "ls", "-q"]).trim(), "");
    assert_eq!(manager.ok(&["stack", "ls"]).trim(), "NAME   SERVICES");
    manager
        .shoal(&["stack", "rm", "app"])
        .assert_error("nothing found in stack: app");
    manager
        .shoal(&["stack", "ps", "app"])
        .assert_error("nothing found in stack: app");
}

fn versions_of(manager: &Daemon, services: &[&str]) -> Vec<u64> {
    services.iter().map(|s| spec_version(manager, s)).collect()
}

#[test]
fn broken_stacks_deploy_nothing_and_say_why() {
    let dir = TestDir::new();
    let (manager, _workers, _) = cluster(&dir, 0);
    let cases = [
        (
            "undefined-network.yml",
            "services:\n  web:\n    x-shoal-runtime: process\n    command: sleep 60\n    networks: [nope]\n",
            "undefined network `nope`",
        ),
        (
            "bad-yaml.yml",
            "services:\n  web: [unclosed\n",
            "malformed YAML",
        ),
        (
            "cycle.yml",
            "services:\n  a:\n    x-shoal-runtime: process\n    command: sleep 60\n    depends_on: [b]\n  b:\n    x-shoal-runtime: process\n    command: sleep 60\n    depends_on: [a]\n",
            "dependency cycle a -> b -> a",
        ),
        (
            "build-only.yml",
            "services:\n  ok:\n    x-shoal-runtime: process\n    command: sleep 60\n  app:\n    build: .\n",
            "service \"app\" has `build:` but no `image:`",
        ),
    ];
    for (name, text, expected) in cases {
        let file = write(&dir, name, text);
        let run = manager.shoal(&["stack", "deploy", "-c", file.to_str().unwrap(), "bad"]);
        run.assert_error(expected);
        assert!(run.stdout.is_empty(), "{name}: {}", run.stdout);
        assert_eq!(manager.ok(&["service", "ls", "-q"]).trim(), "", "{name}");
    }
    let first = write(
        &dir,
        "stack.yml",
        "services:\n  a:\n    x-shoal-runtime: process\n    command: sleep 60\n",
    );
    manager
        .shoal(&[
            "stack",
            "deploy",
            "-c",
            first.to_str().unwrap(),
            "not.valid",
        ])
        .assert_error("invalid stack name");
}

#[test]
fn stack_config_prints_the_merged_files() {
    let dir = TestDir::new();
    let base = write(
        &dir,
        "base.yml",
        "services:\n  web:\n    image: nginx:${TAG:-1.25}\n    environment:\n      A: '1'\n    deploy:\n      replicas: 2\n",
    );
    let over = write(
        &dir,
        "override.yml",
        "services:\n  web:\n    environment:\n      B: '2'\n    deploy:\n      replicas: 5\n  cache:\n    image: redis\n",
    );
    // No daemon needed: config only reads files.
    let manager = dir.daemon("manager");
    let out = manager.ok(&[
        "stack",
        "config",
        "-c",
        base.to_str().unwrap(),
        "-c",
        over.to_str().unwrap(),
    ]);
    for expected in [
        "image: nginx:1.25",
        "A: \"1\"",
        "B: \"2\"",
        "replicas: 5",
        "cache:",
        "image: redis",
    ] {
        assert!(out.contains(expected), "{expected:?} not in:\n{out}");
    }
    assert!(!out.contains("replicas: 2"), "{out}");
}

/// `depends_on` with `condition: service_healthy` waits for the dependency's
/// health check, not only for its tasks to start: the test decides when
/// `api` becomes healthy by creating the file its check looks for.
#[test]
fn service_healthy_waits_for_the_dependencys_health_check() {
    let dir = TestDir::new();
    let (manager, _workers, _) = cluster(&dir, 1);
    let program = marker_program(&dir);
    let ready = dir.dir.path().join("api-ready");
    let file = write(
        &dir,
        "stack.yml",
        &on_host_network(&format!(
            r#"
services:
  api:
    x-shoal-runtime: process
    command: {program} 3600
    healthcheck:
      test: ["CMD-SHELL", "test -f {ready}"]
      interval: 300ms
    deploy:
      replicas: 2
  web:
    x-shoal-runtime: process
    command: {program} 3600
    depends_on:
      api:
        condition: service_healthy
"#,
            program = program.display(),
            ready = ready.display(),
        )),
    );
    let mut deploy = manager.spawn_shoal(&["stack", "deploy", "-c", file.to_str().unwrap(), "app"]);
    // api's tasks start but stay unhealthy (Starting): web must not exist yet.
    eventually(
        patience(),
        "api's processes started, waiting for health",
        || {
            let run = manager.shoal(&["service", "ps", "--format", "json", "app_api"]);
            if run.status != 0 {
                return Err(run.stderr);
            }
            let states: Vec<String> = run
                .stdout
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .map(|t| t["CurrentState"].as_str().unwrap().to_string())
                .collect();
            if states.len() == 2 && states.iter().all(|s| s.starts_with("Starting")) {
                Ok(())
            } else {
                Err(format!("{states:?}"))
            }
        },
    );
    // Several health probes fail meanwhile; the deploy keeps waiting.
    for _ in 0..10 {
        assert_eq!(names(&stack_services(&manager, "app")), ["app_api"]);
        assert!(
            deploy.try_wait().unwrap().is_none(),
            "the deploy stopped waiting"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::fs::write(&ready, "").unwrap();
    let status = deploy.wait().unwrap();
    assert!(status.success());
    assert_eq!(
        names(&stack_services(&manager, "app")),
        ["app_api", "app_web"]
    );
    assert_eq!(manager.running_tasks("app_api").len(), 2);
}
