//! The spec fields `service create` and `service update` share
//! ([`TaskFlags`]): resources, restart policy, stop grace period, health
//! check and the update and rollback configs. Each flag given replaces its
//! field; a flag not given leaves the field as it is, so `update` changes only
//! what was asked and `create` (applied to an empty spec) gets the defaults.

use shoal_proto::syntax;
use shoal_proto::v1::{
    HealthCheck, RestartCondition, ServiceSpec, UpdateConfig, UpdateFailureAction, UpdateOrder,
};

use crate::args::TaskFlags;

/// A flag's value parsed by `parse`, with an error naming the flag.
fn parsed<T, E: std::fmt::Display>(
    flag: &str,
    value: &Option<String>,
    parse: impl Fn(&str) -> Result<T, E>,
) -> anyhow::Result<Option<T>> {
    value
        .as_deref()
        .map(|v| parse(v).map_err(|e| anyhow::anyhow!("invalid {flag} {v:?}: {e}")))
        .transpose()
}

fn duration_ms(flag: &str, value: &Option<String>) -> anyhow::Result<Option<u64>> {
    parsed(flag, value, syntax::parse_duration_ms)
}

fn cpus(flag: &str, value: &Option<String>) -> anyhow::Result<Option<i64>> {
    parsed(flag, value, syntax::parse_cpus)
}

fn memory(flag: &str, value: &Option<String>) -> anyhow::Result<Option<i64>> {
    parsed(flag, value, syntax::parse_byte_size)
}

/// Sets every field of `spec` that a flag in `flags` names. Parses every
/// flag before changing anything, so an error leaves `spec` as it was.
pub fn apply(spec: &mut ServiceSpec, flags: &TaskFlags) -> anyhow::Result<()> {
    let limit_cpu = cpus("--limit-cpu", &flags.limit_cpu)?;
    let limit_memory = memory("--limit-memory", &flags.limit_memory)?;
    let reserve_cpu = cpus("--reserve-cpu", &flags.reserve_cpu)?;
    let reserve_memory = memory("--reserve-memory", &flags.reserve_memory)?;
    let condition = flags
        .restart_condition
        .as_deref()
        .map(|c| match c {
            "any" => Ok(RestartCondition::Any),
            "on-failure" => Ok(RestartCondition::OnFailure),
            "none" => Ok(RestartCondition::None),
            other => Err(anyhow::anyhow!(
                "invalid --restart-condition {other:?}: expected none, on-failure or any"
            )),
        })
        .transpose()?;
    let restart_delay = duration_ms("--restart-delay", &flags.restart_delay)?;
    let restart_window = duration_ms("--restart-window", &flags.restart_window)?;
    let stop_grace = duration_ms("--stop-grace-period", &flags.stop_grace_period)?;
    let health_interval = duration_ms("--health-interval", &flags.health_interval)?;
    let health_timeout = duration_ms("--health-timeout", &flags.health_timeout)?;
    let health_start = duration_ms("--health-start-period", &flags.health_start_period)?;
    let update = parse_update_config("update", &UpdateFlags::update(flags))?;
    let rollback = parse_update_config("rollback", &UpdateFlags::rollback(flags))?;
    if let Some(cmd) = &flags.health_cmd {
        if cmd.trim().is_empty() {
            anyhow::bail!("invalid --health-cmd: the command is empty");
        }
    }
    // Checked here, before anything changes: a health check option without
    // a command (given now or already in the spec) is refused, and the
    // refusal must leave the spec as it was (found by the service_flags
    // fuzz target, which checks exactly that).
    let health_options = flags.health_cmd.is_some()
        || health_interval.is_some()
        || health_timeout.is_some()
        || health_start.is_some()
        || flags.health_retries.is_some();
    if !flags.no_healthcheck && health_options && flags.health_cmd.is_none() {
        let has_command = spec
            .task
            .as_ref()
            .and_then(|t| t.healthcheck.as_ref())
            .and_then(|c| c.test.first())
            .is_some_and(|first| first != "NONE");
        if !has_command {
            anyhow::bail!("a health check option needs a command: add --health-cmd \"CMD\"");
        }
    }

    // Messages are only created when one of their flags is given: an
    // `update` that names none of them must leave the task spec equal, or
    // every task would be replaced.
    let task = spec.task.get_or_insert_with(Default::default);
    if let Some(max) = flags.replicas_max_per_node {
        task.placement
            .get_or_insert_with(Default::default)
            .max_replicas_per_node = max;
    }
    if limit_cpu.is_some() || limit_memory.is_some() {
        let limits = task
            .resources
            .get_or_insert_with(Default::default)
            .limits
            .get_or_insert_with(Default::default);
        if let Some(cpu) = limit_cpu {
            limits.nano_cpus = cpu;
        }
        if let Some(memory) = limit_memory {
            limits.memory_bytes = memory;
        }
    }
    if reserve_cpu.is_some() || reserve_memory.is_some() {
        let reservations = task
            .resources
            .get_or_insert_with(Default::default)
            .reservations
            .get_or_insert_with(Default::default);
        if let Some(cpu) = reserve_cpu {
            reservations.nano_cpus = cpu;
        }
        if let Some(memory) = reserve_memory {
            reservations.memory_bytes = memory;
        }
    }
    if condition.is_some()
        || restart_delay.is_some()
        || flags.restart_max_attempts.is_some()
        || restart_window.is_some()
    {
        let policy = task.restart_policy.get_or_insert_with(Default::default);
        if let Some(condition) = condition {
            policy.set_condition(condition);
        }
        if let Some(delay) = restart_delay {
            policy.delay_ms = delay;
            policy.delay_set = true;
        }
        if let Some(max) = flags.restart_max_attempts {
            policy.max_attempts = max;
        }
        if let Some(window) = restart_window {
            policy.window_ms = window;
        }
    }
    if let Some(grace) = stop_grace {
        task.stop_grace_period_ms = grace;
    }
    if flags.no_healthcheck {
        task.healthcheck = Some(HealthCheck {
            test: vec!["NONE".into()],
            ..Default::default()
        });
    } else if health_options {
        let check = task.healthcheck.get_or_insert_with(Default::default);
        if let Some(cmd) = &flags.health_cmd {
            check.test = vec!["CMD-SHELL".into(), cmd.clone()];
        }
        if let Some(ms) = health_interval {
            check.interval_ms = ms;
        }
        if let Some(ms) = health_timeout {
            check.timeout_ms = ms;
        }
        if let Some(ms) = health_start {
            check.start_period_ms = ms;
        }
        if let Some(retries) = flags.health_retries {
            check.retries = retries;
        }
    }
    update.apply_to(&mut spec.update_config);
    rollback.apply_to(&mut spec.rollback_config);
    Ok(())
}

/// One of the two sets of `--update-*` / `--rollback-*` flags.
struct UpdateFlags<'a> {
    parallelism: Option<u64>,
    delay: &'a Option<String>,
    monitor: &'a Option<String>,
    failure_action: &'a Option<String>,
    max_failure_ratio: Option<f64>,
    order: &'a Option<String>,
}

impl<'a> UpdateFlags<'a> {
    fn update(f: &'a TaskFlags) -> Self {
        UpdateFlags {
            parallelism: f.update_parallelism,
            delay: &f.update_delay,
            monitor: &f.update_monitor,
            failure_action: &f.update_failure_action,
            max_failure_ratio: f.update_max_failure_ratio,
            order: &f.update_order,
        }
    }

    fn rollback(f: &'a TaskFlags) -> Self {
        UpdateFlags {
            parallelism: f.rollback_parallelism,
            delay: &f.rollback_delay,
            monitor: &f.rollback_monitor,
            failure_action: &f.rollback_failure_action,
            max_failure_ratio: f.rollback_max_failure_ratio,
            order: &f.rollback_order,
        }
    }
}

/// The parsed changes to an update config.
struct UpdateChanges {
    parallelism: Option<u64>,
    delay_ms: Option<u64>,
    monitor_ms: Option<u64>,
    failure_action: Option<UpdateFailureAction>,
    max_failure_ratio: Option<f64>,
    order: Option<UpdateOrder>,
}

fn parse_update_config(kind: &str, flags: &UpdateFlags) -> anyhow::Result<UpdateChanges> {
    let failure_action = flags
        .failure_action
        .as_deref()
        .map(|a| match (a, kind) {
            ("pause", _) => Ok(UpdateFailureAction::Pause),
            ("continue", _) => Ok(UpdateFailureAction::Continue),
            ("rollback", "update") => Ok(UpdateFailureAction::Rollback),
            (other, "update") => Err(anyhow::anyhow!(
                "invalid --update-failure-action {other:?}: expected pause, continue or rollback"
            )),
            (other, _) => Err(anyhow::anyhow!(
                "invalid --rollback-failure-action {other:?}: expected pause or continue"
            )),
        })
        .transpose()?;
    let order = flags
        .order
        .as_deref()
        .map(|o| match o {
            "stop-first" => Ok(UpdateOrder::StopFirst),
            "start-first" => Ok(UpdateOrder::StartFirst),
            other => Err(anyhow::anyhow!(
                "invalid --{kind}-order {other:?}: expected stop-first or start-first"
            )),
        })
        .transpose()?;
    if let Some(ratio) = flags.max_failure_ratio {
        if !(0.0..=1.0).contains(&ratio) {
            anyhow::bail!(
                "invalid --{kind}-max-failure-ratio {ratio}: expected a fraction between 0 and 1"
            );
        }
    }
    Ok(UpdateChanges {
        parallelism: flags.parallelism,
        delay_ms: duration_ms(&format!("--{kind}-delay"), flags.delay)?,
        monitor_ms: duration_ms(&format!("--{kind}-monitor"), flags.monitor)?,
        failure_action,
        max_failure_ratio: flags.max_failure_ratio,
        order,
    })
}

impl UpdateChanges {
    fn apply_to(&self, config: &mut Option<UpdateConfig>) {
        let any = self.parallelism.is_some()
            || self.delay_ms.is_some()
            || self.monitor_ms.is_some()
            || self.failure_action.is_some()
            || self.max_failure_ratio.is_some()
            || self.order.is_some();
        if !any {
            return;
        }
        // The message starts with Swarm's defaults (parallelism 1: in the
        // proto, 0 means "all at once").
        let config = config.get_or_insert_with(|| UpdateConfig {
            parallelism: 1,
            ..Default::default()
        });
        if let Some(p) = self.parallelism {
            config.parallelism = p;
        }
        if let Some(ms) = self.delay_ms {
            config.delay_ms = ms;
        }
        if let Some(ms) = self.monitor_ms {
            config.monitor_ms = ms;
        }
        if let Some(action) = self.failure_action {
            config.set_failure_action(action);
        }
        if let Some(ratio) = self.max_failure_ratio {
            config.max_failure_ratio = ratio;
        }
        if let Some(order) = self.order {
            config.set_order(order);
        }
    }
}

#[cfg(test)]
mod tests;
