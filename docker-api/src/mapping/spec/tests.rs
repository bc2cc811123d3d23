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
            networks: vec![s::NetworkAttachmentConfig {
                target: "k5dbu0ctrewq9vpbzwq6ex3mh".into(),
                aliases: vec!["db".into()],
            }],
            mounts: vec![
                s::Mount {
                    source: "data".into(),
                    target: "/data".into(),
                    volume_driver: "local".into(),
                    volume_opts: [("type".to_string(), "tmpfs".to_string())].into(),
                    volume_labels: [("keep".to_string(), "1".to_string())].into(),
                    ..Default::default()
                },
                s::Mount {
                    r#type: s::MountType::Bind as i32,
                    source: "/etc/hosts".into(),
                    target: "/h".into(),
                    readonly: true,
                    ..Default::default()
                },
                s::Mount {
                    r#type: s::MountType::Tmpfs as i32,
                    target: "/scratch".into(),
                    tmpfs_size: 1 << 20,
                    tmpfs_mode: 0o700,
                    ..Default::default()
                },
            ],
            read_only: true,
            user: "1000:1000".into(),
            secrets: vec![
                s::SecretReference {
                    secret_id: "sid".into(),
                    secret_name: "db".into(),
                    file: Some(s::FileTarget {
                        name: "db_password".into(),
                        uid: "0".into(),
                        gid: "0".into(),
                        mode: 0o400,
                    }),
                },
                s::SecretReference {
                    secret_id: "sid2".into(),
                    secret_name: "tls".into(),
                    file: None,
                },
            ],
            configs: vec![s::ConfigReference {
                config_id: "cid".into(),
                config_name: "nginx".into(),
                file: Some(s::FileTarget {
                    name: "/etc/nginx.conf".into(),
                    ..Default::default()
                }),
            }],
        }),
        update_config: Some(update),
        rollback_config: Some(rollback),
        endpoint: Some(s::EndpointSpec {
            mode: s::ResolutionMode::Dnsrr as i32,
            ports: vec![
                s::PortConfig {
                    target_port: 80,
                    published_port: 8080,
                    ..Default::default()
                },
                s::PortConfig {
                    name: "dns".into(),
                    protocol: s::PortProtocol::Udp as i32,
                    target_port: 53,
                    publish_mode: s::PublishMode::Host as i32,
                    ..Default::default()
                },
            ],
        }),
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

/// The autoscale policy, which has no Docker field, survives a `docker
/// service scale`, and the task spec (networks, mounts, grants) is unchanged.
#[test]
fn what_docker_does_not_show_is_kept_on_update() {
    let mut spec = full_spec();
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
    c.groups = Some(vec!["wheel".into()]);
    c.command = Some(vec!["/entry".into()]);
    c.mounts = Some(vec![d::Mount {
        target: Some("/img".into()),
        typ: Some(d::MountType::IMAGE),
        ..Default::default()
    }]);
    docker.endpoint_spec = Some(d::EndpointSpec {
        mode: None,
        ports: Some(vec![d::EndpointPortConfig {
            target_port: Some(80),
            published_port: Some(8080),
            protocol: Some(d::EndpointPortConfigProtocolEnum::SCTP),
            ..Default::default()
        }]),
    });
    let err = service_spec_from_docker(&docker, None).unwrap_err();
    assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
    for part in [
        "ContainerSpec.Groups",
        "ContainerSpec.Command",
        "ContainerSpec.Mounts /img",
        "80/sctp",
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

/// What `docker stack deploy` sends for a service with a network, a
/// published port, a volume, a secret and a config.
#[test]
fn a_stacks_attachments_translate() {
    let docker: d::ServiceSpec = serde_json::from_str(
        r#"{"Name":"demo_web","Labels":{"com.docker.stack.namespace":"demo"},
            "TaskTemplate":{"ContainerSpec":{"Image":"x",
                "Mounts":[{"Type":"volume","Source":"demo_data","Target":"/data",
                           "VolumeOptions":{"Labels":{"com.docker.stack.namespace":"demo"}}},
                          {"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":1024}}],
                "Secrets":[{"File":{"Name":"db","UID":"0","GID":"0","Mode":292},
                            "SecretID":"s1","SecretName":"demo_db"}],
                "Configs":[{"File":{"Name":"/app.conf","UID":"0","GID":"0","Mode":292},
                            "ConfigID":"c1","ConfigName":"demo_app"}]},
              "Networks":[{"Target":"demo_default","Aliases":["web"]}]},
            "EndpointSpec":{"Mode":"vip","Ports":[{"Protocol":"tcp","TargetPort":80,
                "PublishedPort":8080,"PublishMode":"ingress"}]}}"#,
    )
    .unwrap();
    let t = service_spec_from_docker(&docker, None).unwrap();
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    assert_eq!(t.spec.replicas, 1, "a spec without a mode is one replica");
    let task = t.spec.task.unwrap();
    assert_eq!(task.networks[0].target, "demo_default");
    assert_eq!(task.networks[0].aliases, ["web"]);
    assert_eq!(task.mounts[0].source, "demo_data");
    assert_eq!(
        task.mounts[0].volume_labels["com.docker.stack.namespace"],
        "demo"
    );
    assert_eq!(task.mounts[1].r#type(), s::MountType::Tmpfs);
    assert_eq!(task.mounts[1].tmpfs_size, 1024);
    assert_eq!(task.secrets[0].secret_id, "s1");
    assert_eq!(task.secrets[0].file.as_ref().unwrap().mode, 0o444);
    assert_eq!(task.configs[0].file.as_ref().unwrap().name, "/app.conf");
    let endpoint = t.spec.endpoint.unwrap();
    assert_eq!(endpoint.ports[0].target_port, 80);
    assert_eq!(endpoint.ports[0].published_port, 8080);
}

/// Options shoal has no equivalent for are reported, not dropped silently.
#[test]
fn mount_options_shoal_lacks_are_warned_about() {
    let docker: d::ServiceSpec = serde_json::from_str(
        r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"x",
                "Mounts":[{"Type":"volume","Source":"v","Target":"/v",
                           "VolumeOptions":{"NoCopy":true}},
                          {"Type":"bind","Source":"/s","Target":"/b",
                           "BindOptions":{"Propagation":"rshared"}}]},
              "Networks":[{"Target":"n","DriverOpts":{"a":"b"}}]}}"#,
    )
    .unwrap();
    let t = service_spec_from_docker(&docker, None).unwrap();
    let all = t.warnings.join("\n");
    for part in ["NoCopy", "Propagation", "DriverOpts"] {
        assert!(all.contains(part), "{part} in {all}");
    }
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
