//! Service specs both ways.
//!
//! shoal → Docker writes exactly what shoal stores (no defaults filled in),
//! so that the spec the CLI reads, edits and sends back translates to the
//! same shoal spec: a `docker service scale` must not look like a change of
//! the task spec, or every task would be replaced.
//!
//! Docker → shoal refuses what shoal cannot do in a way the operator relies
//! on (groups, capabilities, job modes…) and reports what it ignores
//! (`Warnings`, which the CLI prints). Ports, networks, mounts and grants
//! are mapped in `attachments`.

use std::collections::HashMap;

use bollard::models as d;
use serde::Serialize;
use shoal_proto::v1 as s;

use super::attachments as att;
use super::time::{ms_to_ns, ns_to_ms};
use crate::errors::ApiError;

/// Docker's runtime name for containers, and shoal's for processes.
pub const RUNTIME_CONTAINER: &str = "container";
pub const RUNTIME_PROCESS: &str = "process";
/// How a process service shows its runtime: the docker CLI refuses to send
/// back a spec whose `Runtime` is not "container" while it has a
/// `ContainerSpec` ("mismatched runtime with container spec"), so the
/// runtime travels as this container label, added on the way out and
/// removed on the way in.
pub const RUNTIME_LABEL: &str = "com.shoal.runtime";

/// A Docker spec in shoal's terms, with what was ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    pub spec: s::ServiceSpec,
    pub warnings: Vec<String>,
}

fn nonempty<T: Clone>(v: &[T]) -> Option<Vec<T>> {
    (!v.is_empty()).then(|| v.to_vec())
}

pub fn service_spec_to_docker(spec: &s::ServiceSpec) -> d::ServiceSpec {
    let mode = match spec.mode() {
        s::ServiceMode::Replicated => d::ServiceSpecMode {
            replicated: Some(d::ServiceSpecModeReplicated {
                replicas: Some(spec.replicas as i64),
            }),
            ..Default::default()
        },
        s::ServiceMode::Global => d::ServiceSpecMode {
            global: Some(HashMap::new()),
            ..Default::default()
        },
    };
    d::ServiceSpec {
        name: Some(spec.name.clone()),
        labels: Some(spec.labels.clone()),
        task_template: Some(task_spec_to_docker(&spec.task.clone().unwrap_or_default())),
        mode: Some(mode),
        update_config: spec.update_config.as_ref().map(update_config_to_docker),
        rollback_config: spec.rollback_config.as_ref().map(|c| {
            let u = update_config_to_docker(c);
            d::ServiceSpecRollbackConfig {
                parallelism: u.parallelism,
                delay: u.delay,
                failure_action: Some(match c.failure_action() {
                    s::UpdateFailureAction::Continue => {
                        d::ServiceSpecRollbackConfigFailureActionEnum::CONTINUE
                    }
                    _ => d::ServiceSpecRollbackConfigFailureActionEnum::PAUSE,
                }),
                monitor: u.monitor,
                max_failure_ratio: u.max_failure_ratio,
                order: Some(match c.order() {
                    s::UpdateOrder::StartFirst => {
                        d::ServiceSpecRollbackConfigOrderEnum::START_FIRST
                    }
                    s::UpdateOrder::StopFirst => d::ServiceSpecRollbackConfigOrderEnum::STOP_FIRST,
                }),
            }
        }),
        networks: None,
        endpoint_spec: spec.endpoint.as_ref().map(att::endpoint_spec_to_docker),
    }
}

fn update_config_to_docker(c: &s::UpdateConfig) -> d::ServiceSpecUpdateConfig {
    use d::ServiceSpecUpdateConfigFailureActionEnum as A;
    d::ServiceSpecUpdateConfig {
        parallelism: Some(c.parallelism as i64),
        delay: Some(ms_to_ns(c.delay_ms)),
        failure_action: Some(match c.failure_action() {
            s::UpdateFailureAction::Pause => A::PAUSE,
            s::UpdateFailureAction::Continue => A::CONTINUE,
            s::UpdateFailureAction::Rollback => A::ROLLBACK,
        }),
        monitor: (c.monitor_ms != 0).then(|| ms_to_ns(c.monitor_ms)),
        max_failure_ratio: Some(c.max_failure_ratio),
        order: Some(match c.order() {
            s::UpdateOrder::StopFirst => d::ServiceSpecUpdateConfigOrderEnum::STOP_FIRST,
            s::UpdateOrder::StartFirst => d::ServiceSpecUpdateConfigOrderEnum::START_FIRST,
        }),
    }
}

/// A task spec as Docker shows it. Containers: shoal's `command ++ args`
/// replace the image's CMD, which is Docker's `Args` (`Command` would
/// replace the ENTRYPOINT, which shoal keeps). Processes (`Runtime:
/// "process"`, shoal's own): the program and its arguments as `Command`
/// and `Args`.
pub fn task_spec_to_docker(t: &s::TaskSpec) -> d::TaskSpec {
    let process = t.runtime == "process";
    let (command, args) = if process {
        (nonempty(&t.command), nonempty(&t.args))
    } else {
        let line: Vec<String> = t.command.iter().chain(&t.args).cloned().collect();
        (None, nonempty(&line))
    };
    let mut labels = t.labels.clone();
    if process {
        labels.insert(RUNTIME_LABEL.to_string(), RUNTIME_PROCESS.to_string());
    }
    d::TaskSpec {
        container_spec: Some(d::TaskSpecContainerSpec {
            image: (!t.image.is_empty()).then(|| t.image.clone()),
            labels: Some(labels),
            command,
            args,
            env: nonempty(&t.env),
            stop_grace_period: (t.stop_grace_period_ms != 0)
                .then(|| ms_to_ns(t.stop_grace_period_ms)),
            health_check: t.healthcheck.as_ref().map(|h| d::HealthConfig {
                test: nonempty(&h.test),
                interval: (h.interval_ms != 0).then(|| ms_to_ns(h.interval_ms)),
                timeout: (h.timeout_ms != 0).then(|| ms_to_ns(h.timeout_ms)),
                retries: (h.retries != 0).then_some(h.retries as i64),
                start_period: (h.start_period_ms != 0).then(|| ms_to_ns(h.start_period_ms)),
                start_interval: None,
            }),
            mounts: nonempty(&t.mounts).map(|m| m.iter().map(att::mount_to_docker).collect()),
            read_only: t.read_only.then_some(true),
            user: (!t.user.is_empty()).then(|| t.user.clone()),
            secrets: nonempty(&t.secrets).map(|g| g.iter().map(att::secret_to_docker).collect()),
            configs: nonempty(&t.configs).map(|g| g.iter().map(att::config_to_docker).collect()),
            ..Default::default()
        }),
        networks: att::networks_to_docker(&t.networks),
        resources: t.resources.as_ref().map(|r| d::TaskSpecResources {
            limits: r.limits.as_ref().map(|l| d::Limit {
                nano_cpus: Some(l.nano_cpus),
                memory_bytes: Some(l.memory_bytes),
                pids: None,
            }),
            reservations: r.reservations.as_ref().map(|l| d::ResourceObject {
                nano_cpus: Some(l.nano_cpus),
                memory_bytes: Some(l.memory_bytes),
                generic_resources: None,
            }),
            ..Default::default()
        }),
        restart_policy: t.restart_policy.as_ref().map(|p| {
            use d::TaskSpecRestartPolicyConditionEnum as C;
            d::TaskSpecRestartPolicy {
                condition: Some(match p.condition() {
                    s::RestartCondition::Any => C::ANY,
                    s::RestartCondition::OnFailure => C::ON_FAILURE,
                    s::RestartCondition::None => C::NONE,
                }),
                delay: (p.delay_set || p.delay_ms != 0).then(|| ms_to_ns(p.delay_ms)),
                max_attempts: Some(p.max_attempts as i64),
                window: (p.window_ms != 0).then(|| ms_to_ns(p.window_ms)),
            }
        }),
        placement: t.placement.as_ref().map(|p| d::TaskSpecPlacement {
            constraints: nonempty(&p.constraints),
            preferences: (!p.preferences.is_empty()).then(|| {
                p.preferences
                    .iter()
                    .map(|pref| d::TaskSpecPlacementPreferences {
                        spread: Some(d::TaskSpecPlacementSpread {
                            spread_descriptor: Some(
                                pref.strip_prefix("spread=").unwrap_or(pref).to_string(),
                            ),
                        }),
                    })
                    .collect()
            }),
            max_replicas: (p.max_replicas_per_node != 0).then_some(p.max_replicas_per_node as i64),
            platforms: None,
        }),
        force_update: Some(t.force_update),
        runtime: Some(RUNTIME_CONTAINER.to_string()),
        ..Default::default()
    }
}

/// Whether a field the client sent carries anything: the docker CLI sends
/// empty objects for options not given (`"DNSConfig":{}`, `"Privileges":{}`),
/// which must not count as asking for them.
fn is_set<T: Serialize>(value: &Option<T>) -> bool {
    fn carries(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Null => false,
            serde_json::Value::Bool(b) => *b,
            serde_json::Value::Number(n) => n.as_f64() != Some(0.0),
            serde_json::Value::String(s) => !s.is_empty(),
            serde_json::Value::Array(a) => a.iter().any(carries),
            serde_json::Value::Object(o) => o.values().any(carries),
        }
    }
    value
        .as_ref()
        .and_then(|v| serde_json::to_value(v).ok())
        .is_some_and(|v| carries(&v))
}

/// Collects refusals and warnings while translating.
#[derive(Default)]
pub(crate) struct Verdict {
    pub(crate) refused: Vec<String>,
    pub(crate) warnings: Vec<String>,
}

impl Verdict {
    pub(crate) fn refuse_if<T: Serialize>(&mut self, value: &Option<T>, field: &str, why: &str) {
        if is_set(value) {
            self.refused.push(format!("{field} ({why})"));
        }
    }

    pub(crate) fn ignore_if<T: Serialize>(&mut self, value: &Option<T>, field: &str) {
        if is_set(value) {
            self.warnings.push(format!(
                "shoal ignores {field}: it has no equivalent in a shoal service"
            ));
        }
    }

    fn duration(&mut self, ns: Option<i64>, field: &str) -> u64 {
        match ns.map(|ns| ns_to_ms(ns, field)) {
            Some(Ok(ms)) => ms,
            Some(Err(e)) => {
                self.refused.push(e);
                0
            }
            None => 0,
        }
    }

    fn count(&mut self, n: Option<i64>, field: &str) -> u64 {
        match n {
            Some(n) if n < 0 => {
                self.refused
                    .push(format!("{field} must not be negative (got {n})"));
                0
            }
            Some(n) => n as u64,
            None => 0,
        }
    }
}

/// A Docker service spec as a shoal spec. `base` is the service's current
/// spec on update: where Docker's shape cannot tell two shoal specs apart
/// (how a container's command line splits into command and args), the
/// current one is kept, so reading and writing back changes nothing.
pub fn service_spec_from_docker(
    docker: &d::ServiceSpec,
    base: Option<&s::ServiceSpec>,
) -> Result<Translated, ApiError> {
    let mut v = Verdict::default();
    let name = docker.name.clone().unwrap_or_default();
    if name.is_empty() {
        v.refused
            .push("a service name is required (docker service create --name NAME …)".into());
    }
    let labels = docker.labels.clone().unwrap_or_default();

    let mut spec = s::ServiceSpec {
        name,
        ..Default::default()
    };
    match &docker.mode {
        None => spec.replicas = 1,
        Some(mode) => {
            v.refuse_if(
                &mode.replicated_job,
                "Mode.ReplicatedJob",
                "shoal has replicated and global services, no jobs",
            );
            if mode.global_job.is_some() {
                v.refused.push(
                    "Mode.GlobalJob (shoal has replicated and global services, no jobs)".into(),
                );
            }
            if mode.global.is_some() {
                spec.set_mode(s::ServiceMode::Global);
            } else {
                spec.replicas = match mode.replicated.as_ref().and_then(|r| r.replicas) {
                    None => 1,
                    Some(n) => v.count(Some(n), "Mode.Replicated.Replicas"),
                };
            }
        }
    }

    let template = docker.task_template.clone().unwrap_or_default();
    v.refuse_if(
        &template.plugin_spec,
        "TaskTemplate.PluginSpec",
        "shoal runs containers and processes, not plugins",
    );
    v.refuse_if(
        &template.network_attachment_spec,
        "TaskTemplate.NetworkAttachmentSpec",
        "shoal runs containers and processes only",
    );
    v.ignore_if(&template.log_driver, "TaskTemplate.LogDriver");
    let mut c = template.container_spec.clone().unwrap_or_default();
    let mut container_labels = c.labels.take().unwrap_or_default();
    let process_label = container_labels.remove(RUNTIME_LABEL);
    let runtime = match template.runtime.as_deref() {
        _ if process_label.as_deref() == Some(RUNTIME_PROCESS) => "process",
        None | Some("") | Some(RUNTIME_CONTAINER) => "docker",
        Some(RUNTIME_PROCESS) => "process",
        Some(other) => {
            v.refused.push(format!(
                "TaskTemplate.Runtime {other:?} (shoal runs \"container\" and \"process\" tasks)"
            ));
            "docker"
        }
    };
    if let Some(other) = process_label.filter(|l| l != RUNTIME_PROCESS) {
        v.refused.push(format!(
            "ContainerSpec.Labels {RUNTIME_LABEL}={other:?} (the only runtime named there is \"process\")"
        ));
    }
    let why_security =
        "shoal cannot apply it yet, and running without it would change what the task may do";
    v.refuse_if(&c.groups, "ContainerSpec.Groups (--group)", why_security);
    v.refuse_if(&c.privileges, "ContainerSpec.Privileges", why_security);
    v.refuse_if(
        &c.capability_add,
        "ContainerSpec.CapabilityAdd (--cap-add)",
        why_security,
    );
    v.refuse_if(
        &c.capability_drop,
        "ContainerSpec.CapabilityDrop (--cap-drop)",
        why_security,
    );
    v.refuse_if(
        &c.tty,
        "ContainerSpec.TTY (--tty)",
        "shoal tasks have no terminal",
    );
    v.refuse_if(
        &c.open_stdin,
        "ContainerSpec.OpenStdin",
        "shoal tasks have no stdin",
    );
    v.ignore_if(&c.hostname, "ContainerSpec.Hostname (--hostname)");
    v.ignore_if(&c.dir, "ContainerSpec.Dir (--workdir)");
    v.ignore_if(&c.stop_signal, "ContainerSpec.StopSignal (--stop-signal)");
    v.ignore_if(&c.hosts, "ContainerSpec.Hosts (--host)");
    v.ignore_if(&c.dns_config, "ContainerSpec.DNSConfig (--dns…)");
    // "default" is the engine's default isolation, not a request.
    let isolation = c
        .isolation
        .filter(|i| *i != d::TaskSpecContainerSpecIsolationEnum::DEFAULT);
    v.ignore_if(&isolation, "ContainerSpec.Isolation");
    v.ignore_if(&c.init, "ContainerSpec.Init (--init)");
    v.ignore_if(&c.sysctls, "ContainerSpec.Sysctls (--sysctl)");
    v.ignore_if(&c.ulimits, "ContainerSpec.Ulimits (--ulimit)");
    v.ignore_if(
        &c.oom_score_adj,
        "ContainerSpec.OomScoreAdj (--oom-score-adj)",
    );

    let base_task = base.and_then(|b| b.task.as_ref());
    let mut task = s::TaskSpec {
        runtime: runtime.to_string(),
        image: c.image.clone().unwrap_or_default(),
        env: c.env.clone().unwrap_or_default(),
        labels: container_labels,
        stop_grace_period_ms: v.duration(c.stop_grace_period, "StopGracePeriod"),
        force_update: template.force_update.unwrap_or(0),
        user: c.user.clone().unwrap_or_default(),
        read_only: c.read_only.unwrap_or(false),
        mounts: c
            .mounts
            .iter()
            .flatten()
            .map(|m| att::mount_from_docker(&mut v, m))
            .collect(),
        secrets: c
            .secrets
            .iter()
            .flatten()
            .map(|g| att::secret_from_docker(&mut v, g))
            .collect(),
        configs: c
            .configs
            .iter()
            .flatten()
            .map(|g| att::config_from_docker(&mut v, g))
            .collect(),
        networks: att::networks_from_docker(
            &mut v,
            docker.networks.as_ref(),
            template.networks.as_ref(),
        ),
        ..Default::default()
    };
    let docker_command = c.command.clone().unwrap_or_default();
    let docker_args = c.args.clone().unwrap_or_default();
    if runtime == "process" {
        if docker_command.is_empty() {
            task.command = docker_args;
        } else {
            task.command = docker_command;
            task.args = docker_args;
        }
    } else {
        if !docker_command.is_empty() {
            v.refused.push(format!(
                "ContainerSpec.Command {docker_command:?} (--entrypoint, entrypoint:): shoal \
                 keeps the image's ENTRYPOINT; give the command as arguments instead \
                 (docker service create IMAGE CMD ARG…)"
            ));
        }
        match base_task {
            Some(b)
                if b.command.iter().chain(&b.args).eq(docker_args.iter())
                    && b.runtime == runtime =>
            {
                task.command = b.command.clone();
                task.args = b.args.clone();
            }
            _ => task.command = docker_args,
        }
    }
    if let Some(h) = &c.health_check {
        v.ignore_if(
            &h.start_interval,
            "HealthCheck.StartInterval (--health-start-interval)",
        );
        task.healthcheck = Some(s::HealthCheck {
            test: h.test.clone().unwrap_or_default(),
            interval_ms: v.duration(h.interval, "HealthCheck.Interval"),
            timeout_ms: v.duration(h.timeout, "HealthCheck.Timeout"),
            retries: v.count(h.retries, "HealthCheck.Retries"),
            start_period_ms: v.duration(h.start_period, "HealthCheck.StartPeriod"),
        });
    }
    if let Some(r) = &template.resources {
        v.ignore_if(&r.swap_bytes, "Resources.SwapBytes");
        v.ignore_if(&r.memory_swappiness, "Resources.MemorySwappiness");
        task.resources = Some(s::ResourceRequirements {
            limits: r.limits.as_ref().map(|l| {
                v.ignore_if(&l.pids, "Resources.Limits.Pids (--limit-pids)");
                s::Resources {
                    nano_cpus: l.nano_cpus.unwrap_or(0),
                    memory_bytes: l.memory_bytes.unwrap_or(0),
                }
            }),
            reservations: r.reservations.as_ref().map(|l| {
                v.ignore_if(
                    &l.generic_resources,
                    "Resources.Reservations.GenericResources (--generic-resource)",
                );
                s::Resources {
                    nano_cpus: l.nano_cpus.unwrap_or(0),
                    memory_bytes: l.memory_bytes.unwrap_or(0),
                }
            }),
        });
    }
    if let Some(p) = &template.restart_policy {
        use d::TaskSpecRestartPolicyConditionEnum as C;
        let delay_ms = v.duration(p.delay, "RestartPolicy.Delay");
        let base_policy = base_task.and_then(|b| b.restart_policy.as_ref());
        let mut policy = s::RestartPolicy {
            delay_ms,
            delay_set: p.delay.is_some(),
            max_attempts: v.count(p.max_attempts, "RestartPolicy.MaxAttempts"),
            window_ms: v.duration(p.window, "RestartPolicy.Window"),
            ..Default::default()
        };
        if let Some(b) = base_policy.filter(|b| b.delay_ms == delay_ms) {
            policy.delay_set = b.delay_set;
        }
        policy.set_condition(match p.condition {
            None | Some(C::EMPTY) | Some(C::ANY) => s::RestartCondition::Any,
            Some(C::ON_FAILURE) => s::RestartCondition::OnFailure,
            Some(C::NONE) => s::RestartCondition::None,
        });
        task.restart_policy = Some(policy);
    }
    if let Some(p) = &template.placement {
        v.ignore_if(&p.platforms, "Placement.Platforms");
        let mut preferences = Vec::new();
        for pref in p.preferences.iter().flatten() {
            match pref
                .spread
                .as_ref()
                .and_then(|s| s.spread_descriptor.clone())
            {
                Some(descriptor) => preferences.push(format!("spread={descriptor}")),
                None => v
                    .refused
                    .push("Placement.Preferences: shoal knows spread preferences only".into()),
            }
        }
        task.placement = Some(s::Placement {
            constraints: p.constraints.clone().unwrap_or_default(),
            preferences,
            max_replicas_per_node: v.count(p.max_replicas, "Placement.MaxReplicas"),
        });
    }

    spec.endpoint = docker
        .endpoint_spec
        .as_ref()
        .map(|e| att::endpoint_spec_from_docker(&mut v, e));
    // The autoscale policy has no Docker field: kept from the current spec
    // on update, so a `docker service scale|update` does not drop it.
    if let Some(base) = base {
        spec.autoscale = base.autoscale;
    }
    spec.labels = labels;
    spec.task = Some(task);
    spec.update_config = docker
        .update_config
        .as_ref()
        .map(|u| update_config_from_docker(&mut v, u, "UpdateConfig"));
    spec.rollback_config = docker.rollback_config.as_ref().map(|r| {
        use d::ServiceSpecRollbackConfigFailureActionEnum as RA;
        use d::ServiceSpecRollbackConfigOrderEnum as RO;
        use d::ServiceSpecUpdateConfigFailureActionEnum as A;
        use d::ServiceSpecUpdateConfigOrderEnum as O;
        let as_update = d::ServiceSpecUpdateConfig {
            parallelism: r.parallelism,
            delay: r.delay,
            failure_action: r.failure_action.map(|a| match a {
                RA::CONTINUE => A::CONTINUE,
                RA::PAUSE => A::PAUSE,
                RA::EMPTY => A::EMPTY,
            }),
            monitor: r.monitor,
            max_failure_ratio: r.max_failure_ratio,
            order: r.order.map(|o| match o {
                RO::START_FIRST => O::START_FIRST,
                RO::STOP_FIRST => O::STOP_FIRST,
                RO::EMPTY => O::EMPTY,
            }),
        };
        update_config_from_docker(&mut v, &as_update, "RollbackConfig")
    });

    if !v.refused.is_empty() {
        return Err(ApiError::bad_request(format!(
            "shoal cannot run this service spec: {}",
            v.refused.join("; ")
        )));
    }
    Ok(Translated {
        spec,
        warnings: v.warnings,
    })
}

fn update_config_from_docker(
    v: &mut Verdict,
    u: &d::ServiceSpecUpdateConfig,
    field: &str,
) -> s::UpdateConfig {
    use d::ServiceSpecUpdateConfigFailureActionEnum as A;
    let mut config = s::UpdateConfig {
        parallelism: v.count(u.parallelism, &format!("{field}.Parallelism")),
        delay_ms: v.duration(u.delay, &format!("{field}.Delay")),
        monitor_ms: v.duration(u.monitor, &format!("{field}.Monitor")),
        max_failure_ratio: u.max_failure_ratio.unwrap_or(0.0),
        ..Default::default()
    };
    config.set_failure_action(match u.failure_action {
        None | Some(A::EMPTY) | Some(A::PAUSE) => s::UpdateFailureAction::Pause,
        Some(A::CONTINUE) => s::UpdateFailureAction::Continue,
        Some(A::ROLLBACK) => s::UpdateFailureAction::Rollback,
    });
    config.set_order(match u.order {
        Some(d::ServiceSpecUpdateConfigOrderEnum::START_FIRST) => s::UpdateOrder::StartFirst,
        _ => s::UpdateOrder::StopFirst,
    });
    config
}

#[cfg(test)]
mod tests;
