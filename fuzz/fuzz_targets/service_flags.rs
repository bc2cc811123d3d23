//! The `service create|update` flag parsers (`--limit-memory 1g`,
//! `--update-delay 1m30s`, `--restart-condition`, health check flags, …) as
//! applied to a running service's spec: any values either apply or are
//! refused, and a refusal leaves the spec exactly as it was (what
//! `flags::apply` promises, so a bad `service update` changes nothing).
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use shoal_cli::args::TaskFlags;
use shoal_cli::commands::service::flags;
use shoal_proto::v1::{ServiceSpec, TaskSpec};

/// The strings the parsers see: mostly short, from the fuzzer's input.
fn text(u: &mut Unstructured) -> arbitrary::Result<Option<String>> {
    <Option<String>>::arbitrary(u)
}

fn task_flags(u: &mut Unstructured) -> arbitrary::Result<TaskFlags> {
    Ok(TaskFlags {
        replicas_max_per_node: u.arbitrary()?,
        reserve_cpu: text(u)?,
        reserve_memory: text(u)?,
        limit_cpu: text(u)?,
        limit_memory: text(u)?,
        restart_condition: text(u)?,
        restart_delay: text(u)?,
        restart_max_attempts: u.arbitrary()?,
        restart_window: text(u)?,
        stop_grace_period: text(u)?,
        health_cmd: text(u)?,
        health_interval: text(u)?,
        health_timeout: text(u)?,
        health_retries: u.arbitrary()?,
        health_start_period: text(u)?,
        no_healthcheck: u.arbitrary()?,
        update_parallelism: u.arbitrary()?,
        update_delay: text(u)?,
        update_monitor: text(u)?,
        update_failure_action: text(u)?,
        update_max_failure_ratio: u.arbitrary()?,
        update_order: text(u)?,
        rollback_parallelism: u.arbitrary()?,
        rollback_delay: text(u)?,
        rollback_monitor: text(u)?,
        rollback_failure_action: text(u)?,
        rollback_max_failure_ratio: u.arbitrary()?,
        rollback_order: text(u)?,
        // Flags added later start unset rather than break this target.
        ..Default::default()
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(flags) = task_flags(&mut u) else {
        return;
    };
    // A running process service, as `service update` would fetch it.
    let before = ServiceSpec {
        name: "web".into(),
        replicas: 2,
        task: Some(TaskSpec {
            runtime: "process".into(),
            command: vec!["sleep".into(), "60".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut spec = before.clone();
    match flags::apply(&mut spec, &flags) {
        Ok(()) => {
            // Whatever the flags made, the manager's check copes with it.
            let _ = shoal_manager::spec::validate_service_spec(&spec);
        }
        Err(e) => {
            assert_eq!(spec, before, "a refused flag ({e}) changed the spec");
        }
    }
});
