use std::collections::HashMap;

use shoal_proto::v1;

use super::*;

fn load(text: &str) -> Stack {
    shoal_compose::load_str("stack.yml", text, &HashMap::new()).expect("valid stack")
}

/// Every field shoal has, set in the file, lands in the spec.
#[test]
fn a_service_carries_every_field_shoal_has() {
    let stack = load(
        r#"
services:
  web:
    image: nginx:1.27
    command: ["nginx", "-g", "daemon off;"]
    environment:
      GREETING: hello
      MODE: prod
    labels:
      tier: front
    stop_grace_period: 15s
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost/"]
      interval: 5s
      timeout: 2s
      retries: 4
      start_period: 10s
    networks: [front]
    ports: ["8080:80"]
    deploy:
      replicas: 3
      labels:
        team: web
      placement:
        constraints: ["node.labels.zone==eu"]
        preferences:
          - spread: node.labels.rack
        max_replicas_per_node: 2
      resources:
        limits: {cpus: "0.5", memory: 256M}
        reservations: {cpus: "0.25", memory: 128M}
      restart_policy:
        condition: on-failure
        delay: 0s
        max_attempts: 3
        window: 1m
      update_config:
        parallelism: 2
        delay: 10s
        failure_action: rollback
        monitor: 30s
        max_failure_ratio: 0.25
        order: start-first
      rollback_config:
        failure_action: continue
networks:
  front: {}
"#,
    );
    let (planned, ignored) = convert("shop", &stack).unwrap();
    assert!(ignored.is_empty(), "{ignored:?}");
    let spec = &planned[0].spec;
    assert_eq!(spec.name, "shop_web");
    assert_eq!(spec.mode(), v1::ServiceMode::Replicated);
    assert_eq!(spec.replicas, 3);
    assert_eq!(spec.labels[NAMESPACE_LABEL], "shop");
    assert_eq!(spec.labels["team"], "web");
    assert_eq!(spec.labels[IMAGE_LABEL], "nginx:1.27");
    assert!(!spec.labels.contains_key("com.shoal.stack.networks"));
    assert!(!spec.labels.contains_key("com.shoal.stack.ports"));
    let ports = &spec.endpoint.as_ref().unwrap().ports;
    assert_eq!(ports.len(), 1);
    assert_eq!((ports[0].published_port, ports[0].target_port), (8080, 80));
    let task = spec.task.as_ref().unwrap();
    assert_eq!(task.runtime, "docker");
    assert_eq!(task.image, "nginx:1.27");
    assert_eq!(task.command, ["nginx", "-g", "daemon off;"]);
    assert!(task.args.is_empty());
    assert_eq!(task.env, ["GREETING=hello", "MODE=prod"]);
    assert_eq!(task.labels[NAMESPACE_LABEL], "shop");
    assert_eq!(task.labels["tier"], "front");
    assert!(!task.labels.contains_key("team"));
    assert_eq!(task.stop_grace_period_ms, 15_000);
    assert_eq!(
        task.placement,
        Some(v1::Placement {
            constraints: vec!["node.labels.zone==eu".into()],
            preferences: vec!["spread=node.labels.rack".into()],
            max_replicas_per_node: 2,
        })
    );
    assert_eq!(
        task.resources,
        Some(v1::ResourceRequirements {
            limits: Some(v1::Resources {
                nano_cpus: 500_000_000,
                memory_bytes: 256 << 20
            }),
            reservations: Some(v1::Resources {
                nano_cpus: 250_000_000,
                memory_bytes: 128 << 20
            }),
        })
    );
    let restart = task.restart_policy.as_ref().unwrap();
    assert_eq!(restart.condition(), v1::RestartCondition::OnFailure);
    assert_eq!(
        (
            restart.delay_ms,
            restart.delay_set,
            restart.max_attempts,
            restart.window_ms
        ),
        (0, true, 3, 60_000)
    );
    assert_eq!(
        task.healthcheck,
        Some(v1::HealthCheck {
            test: vec![
                "CMD".into(),
                "curl".into(),
                "-f".into(),
                "http://localhost/".into()
            ],
            interval_ms: 5_000,
            timeout_ms: 2_000,
            retries: 4,
            start_period_ms: 10_000,
        })
    );
    let update = spec.update_config.as_ref().unwrap();
    assert_eq!(
        (
            update.parallelism,
            update.delay_ms,
            update.monitor_ms,
            update.max_failure_ratio
        ),
        (2, 10_000, 30_000, 0.25)
    );
    assert_eq!(update.failure_action(), v1::UpdateFailureAction::Rollback);
    assert_eq!(update.order(), v1::UpdateOrder::StartFirst);
    let rollback = spec.rollback_config.as_ref().unwrap();
    assert_eq!(rollback.parallelism, 1, "Compose's default parallelism");
    assert_eq!(rollback.failure_action(), v1::UpdateFailureAction::Continue);
}

#[test]
fn a_process_service_runs_entrypoint_then_command_with_defaults() {
    let stack = load(
        r#"
services:
  worker:
    x-shoal-runtime: process
    entrypoint: sh -c
    command: ["while true; do date; sleep 5; done"]
"#,
    );
    let (planned, ignored) = convert("s", &stack).unwrap();
    assert!(ignored.is_empty());
    let spec = &planned[0].spec;
    assert_eq!(spec.replicas, 1, "Swarm runs one replica by default");
    assert!(!spec.labels.contains_key(IMAGE_LABEL));
    let targets: Vec<&str> = spec
        .task
        .as_ref()
        .unwrap()
        .networks
        .iter()
        .map(|n| n.target.as_str())
        .collect();
    assert_eq!(
        targets,
        ["s_default"],
        "a service without networks joins STACK_default"
    );
    let task = spec.task.as_ref().unwrap();
    assert_eq!(task.runtime, "process");
    assert_eq!(task.image, "");
    assert_eq!(
        task.command,
        ["sh", "-c", "while true; do date; sleep 5; done"]
    );
    assert_eq!(task.placement, None);
    assert_eq!(task.resources, None);
    assert_eq!(task.restart_policy, None);
    assert_eq!(task.healthcheck, None);
    assert_eq!(spec.update_config, None);
}

#[test]
fn objects_are_scoped_to_the_stack_unless_named_or_external() {
    let stack = load(
        r#"
services:
  db:
    image: postgres
    volumes: ["data:/var/lib/postgresql/data", "/scratch"]
    secrets: [pw, ext]
    configs: [conf]
    networks: [back, shared]
networks:
  back: {name: backend}
  shared: {external: true}
volumes:
  data: {}
secrets:
  pw: {file: ./pw.txt}
  ext: {external: true}
configs:
  conf: {content: "x=1"}
"#,
    );
    let (planned, _) = convert("app", &stack).unwrap();
    let labels = &planned[0].spec.labels;
    let targets: Vec<&str> = planned[0]
        .spec
        .task
        .as_ref()
        .unwrap()
        .networks
        .iter()
        .map(|n| n.target.as_str())
        .collect();
    assert_eq!(targets, ["backend", "shared"]);
    let networks = stack_networks("app", &stack).unwrap();
    let names: Vec<(&str, bool)> = networks
        .iter()
        .map(|n| (n.spec.name.as_str(), n.external))
        .collect();
    assert_eq!(names, [("backend", false), ("shared", true)]);
    assert_eq!(
        labels[VOLUMES_LABEL],
        "app_data:/var/lib/postgresql/data,:/scratch"
    );
    assert_eq!(labels[SECRETS_LABEL], "app_pw,ext");
    assert_eq!(labels[CONFIGS_LABEL], "app_conf");
    // The grants name the cluster objects; default targets are the keys.
    let task = planned[0].spec.task.as_ref().unwrap();
    let secrets: Vec<(&str, &str)> = task
        .secrets
        .iter()
        .map(|r| {
            (
                r.secret_name.as_str(),
                r.file.as_ref().unwrap().name.as_str(),
            )
        })
        .collect();
    assert_eq!(secrets, [("app_pw", "pw"), ("ext", "ext")]);
    let configs: Vec<(&str, &str)> = task
        .configs
        .iter()
        .map(|r| {
            (
                r.config_name.as_str(),
                r.file.as_ref().unwrap().name.as_str(),
            )
        })
        .collect();
    assert_eq!(configs, [("app_conf", "/conf")]);
    // What `stack deploy` creates: its own objects, labelled; external ones
    // only checked.
    let files = stack_files("app", &stack);
    let made: Vec<(&str, bool, bool)> = files
        .iter()
        .map(|f| {
            (
                f.name.as_str(),
                f.secret,
                f.source == shoal_compose::FileSource::External,
            )
        })
        .collect();
    assert_eq!(
        made,
        [
            ("ext", true, true),
            ("app_pw", true, false),
            ("app_conf", false, false)
        ]
    );
    assert!(files.iter().all(|f| f.labels[NAMESPACE_LABEL] == "app"));
}

#[test]
fn options_without_a_place_in_the_spec_are_reported() {
    let stack = load(
        r#"
services:
  web:
    image: nginx
    entrypoint: /docker-entrypoint.sh
    user: "1000"
    working_dir: /srv
    stop_signal: SIGQUIT
"#,
    );
    let (spec, ignored) = convert("s", &stack).unwrap();
    assert_eq!(ignored, ["entrypoint", "stop_signal", "working_dir"]);
    // `user` now has its place: the task's user.
    assert_eq!(spec[0].spec.task.as_ref().unwrap().user, "1000");
}

#[test]
fn undeployable_stacks_fail_before_anything() {
    let build_only = load("services:\n  app:\n    build: .\n");
    assert_eq!(
        convert("s", &build_only).unwrap_err(),
        ConvertError::BuildOnly("app".into())
    );
    let job = load("services:\n  j:\n    image: x\n    deploy: {mode: replicated-job}\n");
    assert!(matches!(convert("s", &job), Err(ConvertError::Mode { .. })));
    let ok = load("services:\n  j:\n    image: x\n");
    for bad in ["", "-x", "a.b", "a b"] {
        assert_eq!(
            convert(bad, &ok).unwrap_err(),
            ConvertError::StackName(bad.into())
        );
    }
    let long = load(&format!("services:\n  {}:\n    image: x\n", "x".repeat(62)));
    assert!(matches!(
        convert("s", &long),
        Err(ConvertError::NameTooLong { .. })
    ));
}

#[test]
fn same_spec_ignores_empty_sub_messages_and_env_order() {
    let stack = load("services:\n  w:\n    image: x\n    environment: {A: '1', B: '2'}\n");
    let (planned, _) = convert("s", &stack).unwrap();
    let a = planned[0].spec.clone();
    let mut b = a.clone();
    let task = b.task.as_mut().unwrap();
    task.placement = Some(v1::Placement::default());
    task.healthcheck = Some(v1::HealthCheck::default());
    task.env.reverse();
    assert!(same_spec(&a, &b));
    b.replicas = 2;
    assert!(!same_spec(&a, &b));
}

#[test]
fn stack_networks_carry_driver_options_ipam_and_the_namespace() {
    let stack = load(
        r#"
services:
  vote:
    image: vote
    networks:
      front:
        aliases: [ballot]
    deploy:
      endpoint_mode: dnsrr
  db:
    image: postgres
    networks: [back]
networks:
  front:
    driver: overlay
    attachable: true
    driver_opts: {mtu: "1400"}
    ipam:
      config:
        - subnet: 10.30.0.0/24
          gateway: 10.30.0.254
          ip_range: 10.30.0.0/25
  back:
    internal: true
  unused: {}
"#,
    );
    let networks = stack_networks("voting", &stack).unwrap();
    assert_eq!(
        networks.len(),
        2,
        "only networks a service uses are created"
    );
    let back = &networks[0].spec;
    assert_eq!(back.name, "voting_back");
    assert!(back.internal);
    assert_eq!(back.labels[NAMESPACE_LABEL], "voting");
    assert_eq!(back.ipam, None);
    let front = &networks[1].spec;
    assert_eq!(front.name, "voting_front");
    assert!(front.attachable);
    assert_eq!(front.driver_opts["mtu"], "1400");
    let ipam = front.ipam.clone().unwrap();
    assert_eq!(
        (
            ipam.subnet.as_str(),
            ipam.gateway.as_str(),
            ipam.ip_range.as_str()
        ),
        ("10.30.0.0/24", "10.30.0.254", "10.30.0.0/25")
    );
    let (planned, ignored) = convert("voting", &stack).unwrap();
    assert!(
        ignored.is_empty(),
        "endpoint_mode is applied now: {ignored:?}"
    );
    let vote = planned.iter().find(|p| p.key == "vote").unwrap();
    assert_eq!(
        vote.spec.endpoint.as_ref().unwrap().mode(),
        v1::ResolutionMode::Dnsrr
    );
    let attachment = &vote.spec.task.as_ref().unwrap().networks[0];
    assert_eq!(attachment.target, "voting_front");
    assert_eq!(attachment.aliases, ["ballot"]);
}

#[test]
fn a_stack_network_with_another_driver_is_refused() {
    let stack = load(
        "services:\n  web:\n    image: nginx\n    networks: [n]\nnetworks:\n  n:\n    driver: bridge\n",
    );
    let err = stack_networks("s", &stack).unwrap_err().to_string();
    assert!(err.contains("driver \"bridge\" is not supported"), "{err}");
}

/// Docker's `external: true, name: host` idiom: the service runs on the
/// node's own network, so it gets no attachment and no network is created.
#[test]
fn the_host_network_means_no_overlay_and_cannot_be_combined() {
    let stack = load(
        "services:\n  web:\n    image: nginx\n    networks: [outside]\n  api:\n    image: nginx\nnetworks:\n  outside:\n    external: true\n    name: host\n",
    );
    let (planned, _) = convert("s", &stack).unwrap();
    let web = planned.iter().find(|p| p.key == "web").unwrap();
    assert!(web.spec.task.as_ref().unwrap().networks.is_empty());
    let api = planned.iter().find(|p| p.key == "api").unwrap();
    assert_eq!(
        api.spec.task.as_ref().unwrap().networks[0].target,
        "s_default"
    );
    let names: Vec<String> = stack_networks("s", &stack)
        .unwrap()
        .into_iter()
        .map(|n| n.spec.name)
        .collect();
    assert_eq!(names, ["s_default"]);

    let mixed = load(
        "services:\n  web:\n    image: nginx\n    networks: [outside, back]\nnetworks:\n  outside:\n    external: true\n    name: host\n  back: {}\n",
    );
    let err = convert("s", &mixed).unwrap_err().to_string();
    assert!(err.contains("host network cannot be combined"), "{err}");
}

#[test]
fn autoscaling_becomes_the_policy_and_replicas_start_in_range() {
    let stack = load(
        r#"
services:
  web:
    image: nginx:1.27
    deploy:
      x-shoal-autoscale: {min: 2, max: 5, cpu: 50%, scale_down_window: 1m}
  api:
    image: nginx:1.27
    deploy:
      replicas: 9
      x-shoal-autoscale: {min: 1, max: 4, rps: 200}
"#,
    );
    let (planned, _) = convert("s", &stack).unwrap();
    let spec = |name: &str| &planned.iter().find(|p| p.spec.name == name).unwrap().spec;
    let web = spec("s_web");
    assert_eq!(web.replicas, 2, "starts at min");
    let policy = web.autoscale.as_ref().unwrap();
    assert_eq!((policy.min, policy.max, policy.cpu_percent), (2, 5, 50.0));
    assert_eq!(policy.scale_down_window_ms, Some(60_000));
    let api = spec("s_api");
    assert_eq!(api.replicas, 4, "brought within the range");
    assert_eq!(api.autoscale.as_ref().unwrap().rps, 200.0);
}

#[test]
fn compose_ports_short_and_long_are_published() {
    let stack = load(
        r#"
services:
  web:
    image: nginx
    ports:
      - "80"
      - "53:53/udp"
      - target: 9000
        published: 9001
        protocol: tcp
        mode: host
"#,
    );
    let (planned, _) = convert("s", &stack).unwrap();
    let ports = &planned[0].spec.endpoint.as_ref().unwrap().ports;
    let got: Vec<(u32, u32, i32, i32)> = ports
        .iter()
        .map(|p| (p.published_port, p.target_port, p.protocol, p.publish_mode))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                0,
                80,
                v1::PortProtocol::Tcp as i32,
                v1::PublishMode::Ingress as i32
            ),
            (
                53,
                53,
                v1::PortProtocol::Udp as i32,
                v1::PublishMode::Ingress as i32
            ),
            (
                9001,
                9000,
                v1::PortProtocol::Tcp as i32,
                v1::PublishMode::Host as i32
            ),
        ]
    );
    let sctp = load("services:\n  web:\n    image: nginx\n    ports: [\"80:80/sctp\"]\n");
    let err = convert("s", &sctp).unwrap_err().to_string();
    assert!(err.contains("sctp is not supported"), "{err}");
}
