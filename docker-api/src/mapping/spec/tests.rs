use super::*;

/// A spec using every field shoal has.
fn full_spec() -> s::ServiceSpec {
    let mut restart = s::RestartPolicy {
        delay_ms: 0,
        delay_set: true,
        max_attempts: 3,
        window_ms: 60_000,
        ..Default::default()
    };
    restart.set_condition(s::RestartCondition::OnFailure);
    let mut update = s::UpdateConfig {
        parallelism: 2,
        delay_ms: 1_000,
        monitor_ms: 3_000,
        max_failure_ratio: 0.25,
        ..Default::default()
    };
    update.set_failure_action(s::UpdateFailureAction::Rollback);
    update.set_order(s::UpdateOrder::StartFirst);
    let mut rollback = s::UpdateConfig {
        parallelism: 1,
        ..Default::default()
    };
    rollback.set_failure_action(s::UpdateFailureAction::Continue);
    s::ServiceSpec {
        name: "web".into(),
        labels: [("team".to_string(), "a".to_string())].into(),
        replicas: 3,
        task: Some(s::TaskSpec {
            runtime: "docker".into(),
            image: "shoal-test/busybox:1".into(),
            command: vec!["sleep".into()],
            args: vec!["999".into()],
            env: vec!["B=2".into(), "A=1".into()],
            labels: [("tier".to_string(), "front".to_string())].into(),
            stop_grace_period_ms: 3_000,
            placement: Some(s::Placement {
                constraints: vec!["node.role==worker".into()],
                preferences: vec!["spread=node.labels.zone".into()],
                max_replicas_per_node: 2,
            }),
            resources: Some(s::ResourceRequirements {
                limits: Some(s::Resources {
                    nano_cpus: 500_000_000,
                    memory_bytes: 64 << 20,
                }),
                reservations: None,
            }),
            restart_policy: Some(restart),
            healthcheck: Some(s::HealthCheck {
                test: vec!["CMD-SHELL".into(), "true".into()],
                interval_ms: 2_000,
                timeout_ms: 1_000,
                retries: 2,
                start_period_ms: 0,
            }),
            force_update: 4,
            ..Default::default()
        }),
        update_config: Some(update),
        rollback_config: Some(rollback),
        ..Default::default()
    }
}

/// What the CLI reads and sends back unchanged must be the same shoal
/// spec: otherwise `docker service scale` would replace every task.
#[test]
fn a_spec_read_and_sent_back_is_unchanged() {
    let spec = full_spec();
    let docker = service_spec_to_docker(&spec);
    let back = service_spec_from_docker(&docker, Some(&spec)).unwrap();
    assert_eq!(back.spec, spec);
    assert!(back.warnings.is_empty(), "{:?}", back.warnings);
    // Through JSON too, as it travels.
    let json = serde_json::to_string(&docker).unwrap();
    let parsed: d::ServiceSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(
        service_spec_from_docker(&parsed, Some(&spec)).unwrap().spec,
        spec
    );
}

/// Networks, the endpoint mode and the autoscale policy, which the Docker
/// API does not show yet, survive a `docker service scale`.
#[test]
fn what_docker_does_not_show_is_kept_on_update() {
    let mut spec = full_spec();
    spec.task.as_mut().unwrap().networks = vec![s::NetworkAttachmentConfig {
        target: "k5dbu0ctrewq9vpbzwq6ex3mh".into(),
        aliases: vec!["db".into()],
    }];
    spec.endpoint = Some(s::EndpointSpec {
        mode: s::ResolutionMode::Dnsrr as i32,
        ..Default::default()
    });
    spec.autoscale = Some(s::AutoscalePolicy {
        min: 1,
        max: 5,
        cpu_percent: 50.0,
        ..Default::default()
    });
    let mut docker = service_spec_to_docker(&spec);
    docker.mode = Some(d::ServiceSpecMode {
        replicated: Some(d::ServiceSpecModeReplicated { replicas: Some(4) }),
        ..Default::default()
    });
    let back = service_spec_from_docker(&docker, Some(&spec)).unwrap().spec;
    assert_eq!(back.replicas, 4);
    assert_eq!(
        back.task, spec.task,
        "the task spec changed: tasks would be replaced"
    );
    assert_eq!(back.endpoint, spec.endpoint);
    assert_eq!(back.autoscale, spec.autoscale);
}

#[test]
fn a_process_service_round_trips() {
    let spec = s::ServiceSpec {
        name: "p".into(),
        replicas: 1,
        task: Some(s::TaskSpec {
            runtime: "process".into(),
            command: vec!["/bin/sleep".into()],
            args: vec!["999".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let docker = service_spec_to_docker(&spec);
    let template = docker.task_template.clone().unwrap();
    assert_eq!(
        template.runtime.as_deref(),
        Some("container"),
        "the CLI refuses others"
    );
    let container = template.container_spec.unwrap();
    assert_eq!(container.labels.unwrap()[RUNTIME_LABEL], "process");
    assert_eq!(container.command, Some(vec!["/bin/sleep".to_string()]));
    assert_eq!(
        service_spec_from_docker(&docker, Some(&spec)).unwrap().spec,
        spec
    );
}

#[test]
fn a_container_command_line_is_dockers_args() {
    let spec = full_spec();
    let docker = service_spec_to_docker(&spec);
    let c = docker.task_template.unwrap().container_spec.unwrap();
    assert_eq!(c.command, None, "the ENTRYPOINT is the image's");
    assert_eq!(c.args, Some(vec!["sleep".to_string(), "999".to_string()]));
}

/// The body `docker service create --name web --replicas 2 --env A=1
/// --label team=a --constraint node.role==worker --restart-condition none
/// --update-parallelism 2 IMAGE sleep 999` sends (docker CLI 28).
const CLI_CREATE: &str = r#"{
  "Name":"web","Labels":{"team":"a"},
  "TaskTemplate":{
    "ContainerSpec":{"Image":"shoal-test/busybox:1","Labels":{},"Args":["sleep","999"],
      "Env":["A=1"],"Privileges":{"CredentialSpec":null,"SELinuxContext":null,"NoNewPrivileges":false},
      "Init":false,"StopGracePeriod":null,"DNSConfig":{},"Isolation":"default"},
    "Resources":{"Limits":{},"Reservations":{}},
    "RestartPolicy":{"Condition":"none"},
    "Placement":{"Constraints":["node.role==worker"]},
    "ForceUpdate":0,"Runtime":"container"},
  "Mode":{"Replicated":{"Replicas":2}},
  "UpdateConfig":{"Parallelism":2,"FailureAction":"pause","Monitor":5000000000,"MaxFailureRatio":0,"Order":"stop-first"},
  "EndpointSpec":{"Mode":"vip"}
}"#;

#[test]
fn the_clis_create_body_translates() {
    let docker: d::ServiceSpec = serde_json::from_str(CLI_CREATE).unwrap();
    let t = service_spec_from_docker(&docker, None).unwrap();
    let task = t.spec.task.as_ref().unwrap();
    assert_eq!(t.spec.name, "web");
    assert_eq!(t.spec.replicas, 2);
    assert_eq!(t.spec.labels["team"], "a");
    assert_eq!(task.runtime, "docker");
    assert_eq!(task.image, "shoal-test/busybox:1");
    assert_eq!(task.command, ["sleep", "999"]);
    assert_eq!(task.env, ["A=1"]);
    assert_eq!(
        task.placement.as_ref().unwrap().constraints,
        ["node.role==worker"]
    );
    assert_eq!(
        task.restart_policy.as_ref().unwrap().condition(),
        s::RestartCondition::None
    );
    let update = t.spec.update_config.as_ref().unwrap();
    assert_eq!((update.parallelism, update.monitor_ms), (2, 5_000));
    // The CLI's empty defaults ("DNSConfig":{}, "Isolation":"default", …)
    // are not requests: nothing to warn about.
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
}

#[test]
fn what_shoal_cannot_do_is_refused_by_name() {
    let mut docker: d::ServiceSpec = serde_json::from_str(CLI_CREATE).unwrap();
    let c = docker
        .task_template
        .as_mut()
        .unwrap()
        .container_spec
        .as_mut()
        .unwrap();
    c.user = Some("nobody".into());
    c.command = Some(vec!["/entry".into()]);
    docker.endpoint_spec = Some(d::EndpointSpec {
        mode: None,
        ports: Some(vec![d::EndpointPortConfig {
            target_port: Some(80),
            published_port: Some(8080),
            ..Default::default()
        }]),
    });
    let err = service_spec_from_docker(&docker, None).unwrap_err();
    assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
    for part in [
        "ContainerSpec.User",
        "ContainerSpec.Command",
        "EndpointSpec.Ports",
    ] {
        assert!(err.message.contains(part), "{part} in {}", err.message);
    }
}

#[test]
fn jobs_are_refused() {
    let docker: d::ServiceSpec = serde_json::from_str(
        r#"{"Name":"j","TaskTemplate":{"ContainerSpec":{"Image":"x"}},
            "Mode":{"ReplicatedJob":{"MaxConcurrent":1,"TotalCompletions":1}}}"#,
    )
    .unwrap();
    let err = service_spec_from_docker(&docker, None).unwrap_err();
    assert!(err.message.contains("ReplicatedJob"), "{}", err.message);
}

#[test]
fn stack_networks_are_recorded_with_a_warning() {
    let docker: d::ServiceSpec = serde_json::from_str(
        r#"{"Name":"demo_web","Labels":{"com.docker.stack.namespace":"demo"},
            "TaskTemplate":{"ContainerSpec":{"Image":"x"},
              "Networks":[{"Target":"demo_default","Aliases":["web"]}]}}"#,
    )
    .unwrap();
    let t = service_spec_from_docker(&docker, None).unwrap();
    assert_eq!(t.spec.labels[NETWORKS_LABEL], "demo_default");
    assert_eq!(t.spec.replicas, 1, "a spec without a mode is one replica");
    assert!(t.warnings[0].contains("demo_default"), "{:?}", t.warnings);
}

#[test]
fn a_changed_command_line_replaces_the_split() {
    let spec = full_spec();
    let mut docker = service_spec_to_docker(&spec);
    docker
        .task_template
        .as_mut()
        .unwrap()
        .container_spec
        .as_mut()
        .unwrap()
        .args = Some(vec!["sleep".into(), "5".into()]);
    let t = service_spec_from_docker(&docker, Some(&spec)).unwrap();
    let task = t.spec.task.unwrap();
    assert_eq!(
        (task.command, task.args),
        (vec!["sleep".to_string(), "5".to_string()], vec![])
    );
}

#[test]
fn negative_durations_are_refused() {
    let docker: d::ServiceSpec = serde_json::from_str(
        r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"x","StopGracePeriod":-5}}}"#,
    )
    .unwrap();
    let err = service_spec_from_docker(&docker, None).unwrap_err();
    assert!(err.message.contains("StopGracePeriod"), "{}", err.message);
}

#[test]
fn what_only_tunes_a_container_is_ignored_with_a_warning() {
    let mut docker: d::ServiceSpec = serde_json::from_str(CLI_CREATE).unwrap();
    let c = docker
        .task_template
        .as_mut()
        .unwrap()
        .container_spec
        .as_mut()
        .unwrap();
    c.hostname = Some("h".into());
    c.stop_signal = Some("SIGINT".into());
    let t = service_spec_from_docker(&docker, None).unwrap();
    assert_eq!(t.warnings.len(), 2, "{:?}", t.warnings);
    assert!(
        t.warnings[0].contains("ContainerSpec.Hostname"),
        "{:?}",
        t.warnings
    );
    assert!(
        t.warnings[1].contains("ContainerSpec.StopSignal"),
        "{:?}",
        t.warnings
    );
}
