//! Validation of service specs, on the manager so that every API caller gets
//! the same answers. A rejected spec changes nothing.
//!
//! # Layout
//! - [`reference`]: image references and process programs.
//! - [`mounts`]: mounts, read-only root, user, and the bind-mount policy.

pub mod limits;
pub mod mounts;
pub mod reference;

use shoal_proto::v1::{ServiceMode, ServiceSpec};

/// Runtimes a task may ask for.
pub const RUNTIMES: &[&str] = &["process", "docker"];
pub use limits::MAX_REPLICAS;

/// A network alias: a DNS name (letters, digits, `-`, `_`, `.`), as Docker
/// accepts them.
pub fn validate_alias(alias: &str) -> Result<(), String> {
    let ok = !alias.is_empty()
        && alias.len() <= 253
        && alias.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid network alias {alias:?}: use a DNS name (letters, digits, '-', '_' and dots)"
        ))
    }
}

/// Checks a spec, saying what is wrong and what is expected.
pub fn validate_service_spec(spec: &ServiceSpec) -> Result<(), String> {
    validate_name(&spec.name)?;
    crate::network::ports::validate_proxy_protocol_label(&spec.labels)?;
    if spec.mode() == ServiceMode::Replicated && spec.replicas > MAX_REPLICAS {
        return Err(format!(
            "invalid replicas {}: at most {MAX_REPLICAS} replicas per service",
            spec.replicas
        ));
    }
    let task = spec
        .task
        .as_ref()
        .ok_or_else(|| "the service has no task spec".to_string())?;
    match task.runtime.as_str() {
        "process" => {
            let Some(program) = task.command.first().filter(|c| !c.trim().is_empty()) else {
                return Err(
                    "a process service needs a command: shoal service create --runtime process CMD [ARG…]"
                        .into(),
                );
            };
            reference::validate_program(program)?;
        }
        "docker" => {
            if task.image.trim().is_empty() {
                return Err(
                    "a container service needs an image: shoal service create IMAGE [CMD] [ARG…]"
                        .into(),
                );
            }
            reference::validate_image_reference(&task.image)?;
        }
        other => {
            return Err(format!(
                "unknown runtime {other:?}: expected one of {}",
                RUNTIMES.join(", ")
            ))
        }
    }
    for attachment in &task.networks {
        if attachment.target.trim().is_empty() {
            return Err("a network attachment needs a network name or ID (--network NAME)".into());
        }
    }
    if let Some(endpoint) = spec.endpoint.as_ref() {
        if shoal_proto::v1::ResolutionMode::try_from(endpoint.mode).is_err() {
            return Err(format!(
                "invalid endpoint mode {}: expected vip or dnsrr",
                endpoint.mode
            ));
        }
        crate::network::ports::validate_ports(&endpoint.ports)?;
        crate::network::ports::validate_host_ports(
            &endpoint.ports,
            &task.runtime,
            !task.networks.is_empty(),
        )?;
    }
    if let Some(placement) = task.placement.as_ref() {
        for constraint in &placement.constraints {
            shoal_scheduler::Constraint::parse(constraint).map_err(|e| e.to_string())?;
        }
        for preference in &placement.preferences {
            shoal_scheduler::Preference::parse(preference).map_err(|e| e.to_string())?;
        }
    }
    if let Some(resources) = task.resources.as_ref() {
        for (what, r) in [
            ("limit", resources.limits),
            ("reservation", resources.reservations),
        ] {
            if let Some(r) = r {
                if r.nano_cpus < 0 || r.memory_bytes < 0 {
                    return Err(format!(
                        "invalid {what}: CPU and memory must not be negative"
                    ));
                }
            }
        }
    }
    for config in [spec.update_config.as_ref(), spec.rollback_config.as_ref()]
        .into_iter()
        .flatten()
    {
        if !(0.0..=1.0).contains(&config.max_failure_ratio) {
            return Err(format!(
                "invalid max failure ratio {}: expected a fraction between 0 and 1",
                config.max_failure_ratio
            ));
        }
    }
    if let Some(check) = task.healthcheck.as_ref() {
        shoal_proto::health::parse_test(&check.test).map_err(|e| e.to_string())?;
    }
    crate::autoscale::policy::validate(spec)?;
    mounts::validate_task_mounts(task)?;
    for entry in &task.env {
        if entry.split('=').next().is_none_or(|key| key.is_empty()) {
            return Err(format!(
                "invalid environment variable {entry:?}: expected KEY=VALUE"
            ));
        }
    }
    Ok(())
}

/// Service names as Docker accepts them (the rule the CLI checks too).
pub use shoal_proto::syntax::validate_service_name as validate_name;

#[cfg(test)]
mod tests {
    use shoal_proto::v1::TaskSpec;

    use super::*;

    fn spec(name: &str, runtime: &str, command: &[&str], image: &str) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            replicas: 1,
            task: Some(TaskSpec {
                runtime: runtime.into(),
                image: image.into(),
                command: command.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn accepts_good_specs() {
        validate_service_spec(&spec("web", "process", &["sleep", "1"], "")).unwrap();
        validate_service_spec(&spec("web_1-a", "docker", &[], "nginx:1.27")).unwrap();
    }

    #[test]
    fn rejects_bad_specs_with_reasons() {
        let cases = [
            (spec("", "process", &["x"], ""), "invalid service name"),
            (spec("-web", "process", &["x"], ""), "invalid service name"),
            (spec("web.1", "process", &["x"], ""), "invalid service name"),
            (
                spec(&"a".repeat(64), "process", &["x"], ""),
                "invalid service name",
            ),
            (spec("web", "process", &[], ""), "needs a command"),
            (spec("web", "process", &[" "], ""), "needs a command"),
            (spec("web", "docker", &[], ""), "needs an image"),
            (spec("web", "vm", &["x"], ""), "unknown runtime"),
            (
                spec("web", "docker", &[], "--replicass"),
                "invalid image reference \"--replicass\"",
            ),
            (
                spec("web", "docker", &["sleep"], "UPPER/case"),
                "must be lowercase",
            ),
            (
                spec("web", "process", &["--autoscale-min", "1"], ""),
                "invalid program \"--autoscale-min\"",
            ),
        ];
        for (s, expected) in cases {
            let err = validate_service_spec(&s).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
        for test in [
            vec!["CMD"],
            vec!["CMD-SHELL"],
            vec!["CMD-SHELL", " "],
            vec!["curl", "-f", "http://x"],
            vec!["NONE", "x"],
        ] {
            let mut s = spec("web", "process", &["x"], "");
            s.task.as_mut().unwrap().healthcheck = Some(shoal_proto::v1::HealthCheck {
                test: test.iter().map(|t| t.to_string()).collect(),
                ..Default::default()
            });
            let err = validate_service_spec(&s).unwrap_err();
            assert!(err.contains("invalid health check test"), "{err}");
        }
        let mut many = spec("web", "process", &["x"], "");
        many.replicas = MAX_REPLICAS + 1;
        assert!(validate_service_spec(&many)
            .unwrap_err()
            .contains("at most"));
    }
}
