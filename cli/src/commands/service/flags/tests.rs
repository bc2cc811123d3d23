//! `apply` refuses bad flags without touching the spec; the cases here are
//! the ones fuzzing (`fuzz/fuzz_targets/service_flags.rs`) found.

use shoal_proto::v1::{HealthCheck, ServiceSpec, TaskSpec};

use super::*;

fn running_spec(healthcheck: Option<HealthCheck>) -> ServiceSpec {
    ServiceSpec {
        name: "web".into(),
        task: Some(TaskSpec {
            runtime: "process".into(),
            command: vec!["sleep".into(), "60".into()],
            healthcheck,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn a_health_option_without_a_command_leaves_the_spec_as_it_was() {
    // Fuzz crash: `--health-retries 0` on a service without a health check
    // was refused only after an empty HealthCheck had been added.
    for existing in [
        None,
        Some(HealthCheck {
            test: vec!["NONE".into()],
            ..Default::default()
        }),
    ] {
        let before = running_spec(existing);
        let mut spec = before.clone();
        let flags = TaskFlags {
            health_retries: Some(0),
            limit_cpu: Some("1".into()),
            ..Default::default()
        };
        let err = apply(&mut spec, &flags).unwrap_err().to_string();
        assert_eq!(
            err,
            "a health check option needs a command: add --health-cmd \"CMD\""
        );
        assert_eq!(spec, before);
    }
}

#[test]
fn a_health_option_changes_an_existing_check() {
    let mut spec = running_spec(Some(HealthCheck {
        test: vec!["CMD".into(), "true".into()],
        ..Default::default()
    }));
    let flags = TaskFlags {
        health_retries: Some(5),
        ..Default::default()
    };
    apply(&mut spec, &flags).unwrap();
    let check = spec.task.unwrap().healthcheck.unwrap();
    assert_eq!(check.test, ["CMD", "true"]);
    assert_eq!(check.retries, 5);
}
