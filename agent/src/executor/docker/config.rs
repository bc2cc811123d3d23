//! What a task's container looks like, as plain functions over the task, the
//! image's configuration and the executor's options: its name, labels,
//! environment, command, limits and health check — and what the engine's
//! health status means for the task. Nothing here talks to the engine, so the
//! mapping is tested without one; [`super`] creates what these describe.
//!
//! # Command mapping
//! A container runs `ENTRYPOINT ++ CMD`, as `docker run IMAGE [CMD…]` does:
//! - the image's ENTRYPOINT is always kept (TaskSpec has no field to replace it);
//! - `TaskSpec.command`, when not empty, replaces the image's CMD;
//! - `TaskSpec.args` are appended to the CMD in force (the task's command, else
//!   the image's CMD), so `args` mean "more arguments" for both executors.
//!
//! This differs from Swarm, where `ContainerSpec.Command` replaces the
//! ENTRYPOINT: shoal's CLI reads `shoal service create IMAGE [CMD] [ARG…]` the
//! way `docker run` reads it, and the process executor runs `command ++ args`.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, ContainerState, HealthConfig, HealthStatusEnum, HealthcheckResult,
    HostConfig, ImageConfig, Mount as EngineMount, MountTmpfsOptions, MountType as EngineMountType,
    MountVolumeOptions, MountVolumeOptionsDriverConfig, PortBinding, PortMap, VolumeCreateRequest,
};
use shoal_proto::v1::{Mount, MountType, PortConfig, PortProtocol, Task};

use crate::health::{unhealthy_reason, Health, Outcome};
use crate::task_env::env;

/// Limits for a task's container. TaskSpec has no resource fields yet: the
/// worker passes the default (no limits) until it does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerOptions {
    /// CPU limit in billionths of a CPU (Docker's `NanoCpus`).
    pub nano_cpus: Option<i64>,
    /// Memory limit in bytes (Docker's `Memory`).
    pub memory_bytes: Option<i64>,
    /// Granted secrets and configs, bound read-only at their targets
    /// (filled in by `prepare`).
    pub granted: Vec<crate::secrets::GrantedFile>,
}

/// Label holding the task's ID: how a restarted agent and `remove(task_id)`
/// find a task's container.
pub const LABEL_TASK_ID: &str = "com.shoal.task.id";
pub const LABEL_SERVICE_ID: &str = "com.shoal.service.id";
pub const LABEL_SERVICE_NAME: &str = "com.shoal.service.name";
/// Label holding the node's ID: the agent only ever adopts, reports or
/// removes containers carrying its own node ID.
pub const LABEL_NODE_ID: &str = "com.shoal.node.id";
pub const LABEL_TASK_SLOT: &str = "com.shoal.task.slot";

/// The stack a task's service belongs to (set by `stack deploy`, as
/// Docker's): a volume created for the task carries it too.
pub const LABEL_STACK_NAMESPACE: &str = "com.docker.stack.namespace";
/// On volumes shoal created (the value is the node's ID): what `volume ls`
/// and `stack rm --volumes` look for among the engine's volumes.
pub const LABEL_VOLUME_NODE: &str = "com.shoal.volume.node";

/// Docker's own default stop signal, used when the image names none.
const DEFAULT_STOP_SIGNAL: &str = "SIGTERM";

/// A task's container name, `<service>.<slot>.<task id>` as Swarm's. Docker
/// accepts `[a-zA-Z0-9][a-zA-Z0-9_.-]*`: service names are validated by the
/// manager already, but anything else becomes `-` rather than a failed create.
pub fn container_name(task: &Task) -> String {
    let service = if task.service_name.is_empty() {
        "task"
    } else {
        &task.service_name
    };
    let name: String = format!("{service}.{}.{}", task.slot, task.id)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        name
    } else {
        format!("x{name}")
    }
}

/// The task's labels followed by shoal's own, which win on a clash: a task
/// must not be able to pass itself off as another node's.
pub fn labels(task: &Task, node_id: &str) -> HashMap<String, String> {
    let mut labels = task
        .spec
        .as_ref()
        .map(|s| s.labels.clone())
        .unwrap_or_default();
    labels.extend([
        (LABEL_TASK_ID.to_string(), task.id.clone()),
        (LABEL_SERVICE_ID.to_string(), task.service_id.clone()),
        (LABEL_SERVICE_NAME.to_string(), task.service_name.clone()),
        (LABEL_NODE_ID.to_string(), node_id.to_string()),
        (LABEL_TASK_SLOT.to_string(), task.slot.to_string()),
    ]);
    labels
}

/// The container's CMD (see the module docs); `None` keeps the image's.
pub fn cmd(task: &Task, image: Option<&ImageConfig>) -> Option<Vec<String>> {
    let spec = task.spec.as_ref()?;
    match (spec.command.is_empty(), spec.args.is_empty()) {
        (true, true) => None,
        (false, _) => Some(spec.command.iter().chain(&spec.args).cloned().collect()),
        (true, false) => {
            let image_cmd = image.and_then(|i| i.cmd.as_deref()).unwrap_or(&[]);
            Some(image_cmd.iter().chain(&spec.args).cloned().collect())
        }
    }
}

/// Whole seconds for Docker's stop timeout, rounded up: a grace period of
/// 500 ms must not become "kill at once".
pub fn grace_seconds(grace: std::time::Duration) -> i32 {
    i32::try_from(grace.as_millis().div_ceil(1000)).unwrap_or(i32::MAX)
}

/// Everything the engine needs to create the task's container.
pub fn create_body(
    task: &Task,
    node_id: &str,
    image: Option<&ImageConfig>,
    grace: std::time::Duration,
    options: &ContainerOptions,
) -> ContainerCreateBody {
    let spec = task.spec.clone().unwrap_or_default();
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: cmd(task, image),
        env: Some(env(task, node_id)),
        labels: Some(labels(task, node_id)),
        // The image's STOPSIGNAL (nginx's SIGQUIT) is how it asks to be
        // stopped gracefully, as under `docker stop`; SIGTERM otherwise.
        stop_signal: Some(
            image
                .and_then(|i| i.stop_signal.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_STOP_SIGNAL.to_string()),
        ),
        // So that a `docker stop` from outside gives the same grace.
        stop_timeout: Some(i64::from(grace_seconds(grace))),
        healthcheck: healthcheck(task),
        exposed_ports: exposed_ports(task),
        user: (!spec.user.is_empty()).then(|| spec.user.clone()),
        host_config: Some(HostConfig {
            // The task's own mounts, then its granted secret and config
            // files (read-only binds of the agent's tmpfs).
            mounts: Some(
                mounts(task)
                    .into_iter()
                    .chain(granted_mounts(options).unwrap_or_default())
                    .collect::<Vec<_>>(),
            )
            .filter(|m| !m.is_empty()),
            readonly_rootfs: spec.read_only.then_some(true),
            nano_cpus: options.nano_cpus,
            memory: options.memory_bytes,
            // No restart policy: restarting is the orchestrator's decision,
            // made by creating a new task.
            ..overlay_host_config(task)
        }),
        ..Default::default()
    }
}

/// Granted secrets and configs as read-only binds of their tmpfs files (as
/// Swarm's executor binds them); `None` without grants.
pub fn granted_mounts(options: &ContainerOptions) -> Option<Vec<EngineMount>> {
    if options.granted.is_empty() {
        return None;
    }
    Some(
        options
            .granted
            .iter()
            .map(|file| EngineMount {
                target: Some(file.target.clone()),
                source: Some(file.host_path.to_string_lossy().into_owned()),
                typ: Some(EngineMountType::BIND),
                read_only: Some(true),
                ..Default::default()
            })
            .collect(),
    )
}

/// A task on overlay networks starts on the engine's `none` network (only
/// `lo`), which the agent then plumbs through the container's PID, and asks
/// its embedded resolver. **Decision: the engine's DNS options, not a
/// bind-mounted file.** With `none` the engine still writes the container's
/// `/etc/resolv.conf`, from `Dns`/`DnsOptions` when given (keeping the node's
/// search domains), so `nameserver 127.0.0.11` and `ndots:0` need no file of
/// shoal's on the node and no mount beside the task's own.
///
/// A task on no network stays on the engine's default bridge, and its
/// host-mode ports are the engine's own port bindings (`docker run -p`);
/// on networks they are the overlay's DNAT (`crate::overlay`).
pub fn overlay_host_config(task: &Task) -> HostConfig {
    if task.networks.is_empty() {
        return HostConfig {
            port_bindings: Some(port_bindings(task)).filter(|b| !b.is_empty()),
            ..Default::default()
        };
    }
    HostConfig {
        network_mode: Some("none".to_string()),
        dns: Some(vec![shoal_overlay_net::dns::RESOLVER_ADDR.to_string()]),
        dns_options: Some(vec!["ndots:0".to_string()]),
        ..Default::default()
    }
}

/// `80/tcp` → host port 8080, as `docker run -p 8080:80` binds it.
pub fn port_bindings(task: &Task) -> PortMap {
    task.host_ports
        .iter()
        .map(|p| {
            let binding = PortBinding {
                host_ip: None,
                host_port: Some(p.published_port.to_string()),
            };
            (engine_port(p), Some(vec![binding]))
        })
        .collect()
}

/// The ports a task on no network exposes (its host-mode targets).
pub fn exposed_ports(task: &Task) -> Option<Vec<String>> {
    if !task.networks.is_empty() || task.host_ports.is_empty() {
        return None;
    }
    Some(task.host_ports.iter().map(engine_port).collect())
}

fn engine_port(p: &PortConfig) -> String {
    let protocol = match PortProtocol::try_from(p.protocol) {
        Ok(PortProtocol::Udp) => "udp",
        _ => "tcp",
    };
    format!("{}/{protocol}", p.target_port)
}

/// The task's mounts as the engine's: binds pass through, named volumes
/// are the engine's volumes (created beforehand by the executor, with
/// [`volume_request`]), tmpfs mounts get their size and mode.
pub fn mounts(task: &Task) -> Vec<EngineMount> {
    let Some(spec) = task.spec.as_ref() else {
        return Vec::new();
    };
    spec.mounts
        .iter()
        .map(|m| {
            let kind = MountType::try_from(m.r#type).unwrap_or(MountType::Volume);
            EngineMount {
                target: Some(m.target.clone()),
                source: (!m.source.is_empty()).then(|| m.source.clone()),
                typ: Some(match kind {
                    MountType::Volume => EngineMountType::VOLUME,
                    MountType::Bind => EngineMountType::BIND,
                    MountType::Tmpfs => EngineMountType::TMPFS,
                }),
                read_only: m.readonly.then_some(true),
                volume_options: (kind == MountType::Volume).then(|| MountVolumeOptions {
                    labels: Some(m.volume_labels.clone()).filter(|l| !l.is_empty()),
                    driver_config: (!m.volume_driver.is_empty() || !m.volume_opts.is_empty()).then(
                        || MountVolumeOptionsDriverConfig {
                            name: Some(volume_driver(m).to_string()),
                            options: Some(m.volume_opts.clone()).filter(|o| !o.is_empty()),
                        },
                    ),
                    ..Default::default()
                }),
                tmpfs_options: (kind == MountType::Tmpfs && (m.tmpfs_size > 0 || m.tmpfs_mode > 0))
                    .then(|| MountTmpfsOptions {
                        size_bytes: (m.tmpfs_size > 0).then_some(m.tmpfs_size),
                        mode: (m.tmpfs_mode > 0).then_some(i64::from(m.tmpfs_mode)),
                        ..Default::default()
                    }),
                ..Default::default()
            }
        })
        .collect()
}

/// The driver a volume mount names, "local" when none.
pub fn volume_driver(mount: &Mount) -> &str {
    if mount.volume_driver.is_empty() {
        "local"
    } else {
        &mount.volume_driver
    }
}

/// The named volume mounts of a task (anonymous ones are the engine's to
/// create and remove with the container).
pub fn named_volumes(task: &Task) -> Vec<&Mount> {
    task.spec
        .as_ref()
        .map(|s| {
            s.mounts
                .iter()
                .filter(|m| m.r#type == MountType::Volume as i32 && !m.source.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The engine volume a task's named volume mount creates on first use:
/// its driver and options, the mount's labels, the task's stack and
/// shoal's node label. The volume outlives the task (Docker's rule).
pub fn volume_request(task: &Task, mount: &Mount, node_id: &str) -> VolumeCreateRequest {
    let mut labels = mount.volume_labels.clone();
    if let Some(stack) = task
        .spec
        .as_ref()
        .and_then(|s| s.labels.get(LABEL_STACK_NAMESPACE))
    {
        labels.insert(LABEL_STACK_NAMESPACE.to_string(), stack.clone());
    }
    labels.insert(LABEL_VOLUME_NODE.to_string(), node_id.to_string());
    VolumeCreateRequest {
        name: Some(mount.source.clone()),
        driver: Some(volume_driver(mount).to_string()),
        driver_opts: Some(mount.volume_opts.clone()).filter(|o| !o.is_empty()),
        labels: Some(labels),
        ..Default::default()
    }
}

/// The spec's health check as the engine's `Healthcheck`; `None` leaves the
/// image's HEALTHCHECK in force. Durations are nanoseconds. Zero fields stay
/// unset, which the engine reads as "the image's value, else Docker's
/// default"; an empty test likewise keeps the image's command, and `["NONE"]`
/// disables the image's check.
pub fn healthcheck(task: &Task) -> Option<HealthConfig> {
    let check = task.spec.as_ref()?.healthcheck.as_ref()?;
    let nanos = |ms: u64| {
        (ms > 0).then(|| {
            i64::try_from(ms)
                .unwrap_or(i64::MAX)
                .saturating_mul(1_000_000)
        })
    };
    let config = HealthConfig {
        test: (!check.test.is_empty()).then(|| check.test.clone()),
        interval: nanos(check.interval_ms),
        timeout: nanos(check.timeout_ms),
        retries: (check.retries > 0).then(|| i64::try_from(check.retries).unwrap_or(i64::MAX)),
        start_period: nanos(check.start_period_ms),
        // Not in shoal's spec; engines older than API 1.44 do not know it.
        start_interval: None,
    };
    (config != HealthConfig::default()).then_some(config)
}

/// Whether a container's configured check (after the engine merged the
/// spec's and the image's) checks anything.
pub fn has_healthcheck(config: Option<&HealthConfig>) -> bool {
    config
        .and_then(|c| c.test.as_ref())
        .and_then(|test| test.first())
        .is_some_and(|kind| kind != "NONE")
}

/// The container's health as the task sees it, `None` when it has no health
/// check. An unhealthy one says why, from the engine's failing streak and
/// last probe.
pub fn health(state: &ContainerState) -> Option<Health> {
    let engine = state.health.as_ref()?;
    match engine.status? {
        HealthStatusEnum::STARTING => Some(Health::Starting),
        HealthStatusEnum::HEALTHY => Some(Health::Healthy),
        HealthStatusEnum::UNHEALTHY => {
            let last = engine
                .log
                .as_ref()
                .and_then(|log| log.last())
                .map(|result| outcome(result).describe())
                .unwrap_or_else(|| "no probe result recorded".to_string());
            let streak = engine.failing_streak.unwrap_or_default().max(1);
            Some(Health::Unhealthy(unhealthy_reason(
                u64::try_from(streak).unwrap_or(1),
                &last,
            )))
        }
        HealthStatusEnum::NONE | HealthStatusEnum::EMPTY => None,
    }
}

/// One of the engine's probe results as ours.
fn outcome(result: &HealthcheckResult) -> Outcome {
    let output = result.output.clone().unwrap_or_default();
    match result.exit_code.unwrap_or(-1) {
        0 => Outcome::Passed,
        // The engine's own failures ("Health check exceeded timeout (1s)")
        // come with -1 and say what happened.
        code if code < 0 => Outcome::Error(output),
        code => Outcome::Failed {
            exit_code: i32::try_from(code).unwrap_or(i32::MAX),
            output,
        },
    }
}

/// `fromImage` and `tag` for a pull. Without a tag the engine would pull
/// every tag of the repository, so a reference without one means `:latest`
/// as on the docker CLI; a digest reference is passed whole.
pub fn pull_reference(image: &str) -> (String, Option<String>) {
    if image.contains('@') {
        return (image.to_string(), None);
    }
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_start..].rfind(':') {
        Some(i) => (
            image[..name_start + i].to_string(),
            Some(image[name_start + i + 1..].to_string()),
        ),
        None => (image.to_string(), Some("latest".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bollard::models::Health as EngineHealth;
    use shoal_proto::v1::TaskSpec;

    use super::*;

    fn task(command: &[&str], args: &[&str]) -> Task {
        Task {
            id: "t1".into(),
            service_id: "s1".into(),
            service_name: "web".into(),
            slot: 2,
            spec: Some(TaskSpec {
                runtime: "docker".into(),
                image: "nginx".into(),
                command: command.iter().map(|s| s.to_string()).collect(),
                args: args.iter().map(|s| s.to_string()).collect(),
                env: vec!["A=1".into(), "SHOAL_NODE_ID=spoofed".into()],
                labels: [
                    ("team".to_string(), "blue".to_string()),
                    (LABEL_NODE_ID.to_string(), "spoofed".to_string()),
                ]
                .into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn image_cmd(cmd: &[&str]) -> ImageConfig {
        ImageConfig {
            cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    fn strings(v: &[&str]) -> Option<Vec<String>> {
        Some(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn command_replaces_the_image_cmd_and_args_are_appended() {
        let image = image_cmd(&["nginx", "-g", "daemon off;"]);
        assert_eq!(cmd(&task(&[], &[]), Some(&image)), None);
        assert_eq!(
            cmd(&task(&["sh", "-c"], &["exit 3"]), Some(&image)),
            strings(&["sh", "-c", "exit 3"])
        );
        assert_eq!(
            cmd(&task(&[], &["-V"]), Some(&image)),
            strings(&["nginx", "-g", "daemon off;", "-V"])
        );
    }

    #[test]
    fn shoal_labels_and_environment_cannot_be_overridden_by_the_task() {
        let t = task(&[], &[]);
        let labels = labels(&t, "node-a");
        assert_eq!(labels["team"], "blue");
        assert_eq!(labels[LABEL_NODE_ID], "node-a");
        assert_eq!(labels[LABEL_TASK_ID], "t1");
        assert_eq!(labels[LABEL_SERVICE_ID], "s1");
        assert_eq!(labels[LABEL_SERVICE_NAME], "web");
        assert_eq!(labels[LABEL_TASK_SLOT], "2");
        let env = env(&t, "node-a");
        assert!(env.contains(&"A=1".to_string()));
        assert!(env.contains(&"SHOAL_NODE_ID=node-a".to_string()));
        assert!(!env.iter().any(|e| e.contains("spoofed")), "{env:?}");
        assert!(env.contains(&"SHOAL_TASK_NAME=web.2.t1".to_string()));
    }

    #[test]
    fn host_mode_ports_are_engine_bindings_only_off_the_overlay() {
        let mut t = task(&[], &[]);
        t.host_ports = vec![
            shoal_proto::v1::PortConfig {
                target_port: 80,
                published_port: 8080,
                publish_mode: shoal_proto::v1::PublishMode::Host as i32,
                ..Default::default()
            },
            shoal_proto::v1::PortConfig {
                protocol: PortProtocol::Udp as i32,
                target_port: 53,
                published_port: 5353,
                publish_mode: shoal_proto::v1::PublishMode::Host as i32,
                ..Default::default()
            },
        ];
        let body = create_body(&t, "n", None, Duration::from_secs(1), &Default::default());
        let bindings = body.host_config.unwrap().port_bindings.unwrap();
        let host_port = |key: &str| bindings[key].as_ref().unwrap()[0].host_port.clone();
        assert_eq!(host_port("80/tcp").as_deref(), Some("8080"));
        assert_eq!(host_port("53/udp").as_deref(), Some("5353"));
        assert_eq!(body.exposed_ports, strings(&["80/tcp", "53/udp"]));
        // On a network the overlay publishes them, not the engine.
        t.networks = vec![shoal_proto::v1::NetworkAttachment::default()];
        let body = create_body(&t, "n", None, Duration::from_secs(1), &Default::default());
        assert_eq!(body.host_config.unwrap().port_bindings, None);
        assert_eq!(body.exposed_ports, None);
    }

    #[test]
    fn names_follow_swarm_and_stay_valid_for_docker() {
        assert_eq!(container_name(&task(&[], &[])), "web.2.t1");
        let odd = Task {
            id: "a/b".into(),
            slot: 1,
            ..Default::default()
        };
        assert_eq!(container_name(&odd), "task.1.a-b");
    }

    #[test]
    fn stop_settings_and_limits_reach_the_create_body() {
        let options = ContainerOptions {
            nano_cpus: Some(500_000_000),
            memory_bytes: Some(64 << 20),
            ..Default::default()
        };
        let plain = create_body(
            &task(&[], &[]),
            "n",
            None,
            Duration::from_millis(1500),
            &options,
        );
        assert_eq!(plain.stop_signal.as_deref(), Some("SIGTERM"));
        assert_eq!(plain.stop_timeout, Some(2));
        let host = plain.host_config.unwrap();
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.memory, Some(64 << 20));
        let quits = ImageConfig {
            stop_signal: Some("SIGQUIT".into()),
            ..Default::default()
        };
        let body = create_body(
            &task(&[], &[]),
            "n",
            Some(&quits),
            Duration::ZERO,
            &ContainerOptions::default(),
        );
        assert_eq!(body.stop_signal.as_deref(), Some("SIGQUIT"));
        assert_eq!(body.stop_timeout, Some(0));
        assert_eq!(body.host_config.unwrap().memory, None);
    }

    #[test]
    fn pulls_name_a_tag() {
        let p = |s: &str| pull_reference(s);
        assert_eq!(p("nginx"), ("nginx".into(), Some("latest".into())));
        assert_eq!(p("nginx:1.25"), ("nginx".into(), Some("1.25".into())));
        assert_eq!(
            p("localhost:5000/a/b"),
            ("localhost:5000/a/b".into(), Some("latest".into()))
        );
        assert_eq!(
            p("localhost:5000/a/b:v2"),
            ("localhost:5000/a/b".into(), Some("v2".into()))
        );
        assert_eq!(p("nginx@sha256:abc"), ("nginx@sha256:abc".into(), None));
    }

    #[test]
    fn health_maps_the_engine_states() {
        let with = |status| ContainerState {
            health: Some(EngineHealth {
                status: Some(status),
                failing_streak: Some(3),
                log: Some(vec![
                    HealthcheckResult {
                        exit_code: Some(0),
                        ..Default::default()
                    },
                    HealthcheckResult {
                        exit_code: Some(1),
                        output: Some("not\nready\n".into()),
                        ..Default::default()
                    },
                ]),
            }),
            ..Default::default()
        };
        assert_eq!(health(&ContainerState::default()), None);
        assert_eq!(health(&with(HealthStatusEnum::NONE)), None);
        assert_eq!(
            health(&with(HealthStatusEnum::STARTING)),
            Some(Health::Starting)
        );
        assert_eq!(
            health(&with(HealthStatusEnum::HEALTHY)),
            Some(Health::Healthy)
        );
        assert_eq!(
            health(&with(HealthStatusEnum::UNHEALTHY)),
            Some(Health::Unhealthy(
                "health check failed 3 times in a row: exit code 1: not ready".into()
            ))
        );
        let timed_out = HealthcheckResult {
            exit_code: Some(-1),
            output: Some("Health check exceeded timeout (1s)".into()),
            ..Default::default()
        };
        assert_eq!(
            outcome(&timed_out).describe(),
            "Health check exceeded timeout (1s)"
        );
    }

    #[test]
    fn the_spec_health_check_becomes_the_containers() {
        let mut t = task(&[], &[]);
        assert_eq!(healthcheck(&t), None);
        let spec = t.spec.as_mut().unwrap();
        spec.healthcheck = Some(shoal_proto::v1::HealthCheck {
            test: vec!["CMD-SHELL".into(), "test -f /ready".into()],
            interval_ms: 500,
            timeout_ms: 0,
            retries: 2,
            start_period_ms: 3000,
        });
        let body = create_body(&t, "n", None, Duration::ZERO, &ContainerOptions::default());
        let check = body.healthcheck.unwrap();
        assert_eq!(
            check.test,
            Some(vec!["CMD-SHELL".into(), "test -f /ready".into()])
        );
        assert_eq!(check.interval, Some(500_000_000));
        assert_eq!(check.timeout, None, "zero: the engine's default");
        assert_eq!(check.retries, Some(2));
        assert_eq!(check.start_period, Some(3_000_000_000));
        assert!(has_healthcheck(Some(&check)));

        let none = HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        };
        assert!(!has_healthcheck(Some(&none)));
        assert!(!has_healthcheck(Some(&HealthConfig::default())));
        assert!(!has_healthcheck(None));
        t.spec.as_mut().unwrap().healthcheck = Some(Default::default());
        assert_eq!(healthcheck(&t), None, "an empty check keeps the image's");
    }
}
