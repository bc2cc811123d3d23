//! The operator's policy as stored (`shoal.v1.AutoscalePolicy`, set by
//! `--autoscale-*` or Compose's `x-shoal-autoscale`): what a valid one is, and
//! the [`Policy`] the decision core works with, defaults filled in.

use shoal_proto::v1::{AutoscalePolicy, AutoscaleStepLimit, ServiceMode, ServiceSpec};

use super::model::{Metric, Policy, StepLimit, Target};
use crate::spec::limits::MAX_REPLICAS;

/// The longest window or step period a policy may set (the history keeps an
/// hour, see [`super::History`]).
pub const MAX_WINDOW_MS: u64 = 3_600_000;
/// The highest CPU target: percent of one core or of the reservation, so a
/// task may aim above 100 % (several cores busy).
pub const MAX_CPU_PERCENT: f64 = 100_000.0;

/// Checks an autoscaled spec, saying what is wrong and how to fix it.
pub fn validate(spec: &ServiceSpec) -> Result<(), String> {
    let Some(policy) = spec.autoscale.as_ref() else {
        return Ok(());
    };
    if spec.mode() != ServiceMode::Replicated {
        return Err(
            "a global service cannot be autoscaled: it runs one task per node; \
             remove the --autoscale-* options or use --mode replicated"
                .into(),
        );
    }
    if policy.max == 0 {
        return Err("invalid --autoscale-max 0: a service needs at least 1 replica at most".into());
    }
    if policy.max > MAX_REPLICAS {
        return Err(format!(
            "invalid --autoscale-max {}: at most {MAX_REPLICAS} replicas per service",
            policy.max
        ));
    }
    if policy.min > policy.max {
        return Err(format!(
            "invalid autoscale range {}..{}: --autoscale-min must not exceed --autoscale-max",
            policy.min, policy.max
        ));
    }
    let targets = [
        ("--autoscale-cpu", policy.cpu_percent, MAX_CPU_PERCENT, "%"),
        ("--autoscale-memory", policy.memory_percent, 100.0, "%"),
        ("--autoscale-rps", policy.rps, 1e9, ""),
    ];
    for (flag, value, most, unit) in targets {
        if !value.is_finite() || value < 0.0 || value > most {
            return Err(format!(
                "invalid {flag} {value}{unit}: expected a value above 0 and at most {most}{unit}"
            ));
        }
    }
    if targets.iter().all(|t| t.1 == 0.0) {
        return Err(
            "an autoscaled service needs a target: add --autoscale-cpu 60%, \
             --autoscale-memory 80% or --autoscale-rps 200"
                .into(),
        );
    }
    for (what, window) in [
        ("--autoscale-scale-down-window", policy.scale_down_window_ms),
        ("scale-up window", policy.scale_up_window_ms),
    ] {
        if window.is_some_and(|ms| ms > MAX_WINDOW_MS) {
            return Err(format!("invalid {what}: at most 1h"));
        }
    }
    for (what, limit) in [
        ("scale-up", policy.scale_up_limit.as_ref()),
        ("scale-down", policy.scale_down_limit.as_ref()),
    ] {
        if let Some(limit) = limit {
            if limit.period_ms == 0 || limit.period_ms > MAX_WINDOW_MS {
                return Err(format!(
                    "invalid {what} step limit: its period must be between 1ms and 1h"
                ));
            }
        }
    }
    if !(policy.min..=policy.max).contains(&spec.replicas) {
        return Err(format!(
            "invalid replicas {}: the service is autoscaled within {}..{}; \
             give --replicas within that range or change --autoscale-min/--autoscale-max",
            spec.replicas, policy.min, policy.max
        ));
    }
    Ok(())
}

/// The decision core's policy: the HPA's defaults where the operator set nothing.
pub fn from_spec(spec: &AutoscalePolicy) -> Policy {
    let targets = [
        (Metric::Cpu, spec.cpu_percent),
        (Metric::Memory, spec.memory_percent),
        (Metric::Rps, spec.rps),
    ]
    .into_iter()
    .filter(|(_, value)| *value > 0.0)
    .map(|(metric, value)| Target { metric, value })
    .collect();
    let mut policy = Policy::new(spec.min, spec.max, targets);
    if let Some(ms) = spec.scale_down_window_ms {
        policy.scale_down_window_ms = ms as i64;
    }
    if let Some(ms) = spec.scale_up_window_ms {
        policy.scale_up_window_ms = ms as i64;
    }
    let step = |limit: &AutoscaleStepLimit| StepLimit {
        max_tasks: limit.max_tasks,
        max_percent: limit.max_percent,
        period_ms: limit.period_ms as i64,
    };
    if let Some(limit) = spec.scale_up_limit.as_ref() {
        policy.scale_up_limit = step(limit);
    }
    if let Some(limit) = spec.scale_down_limit.as_ref() {
        policy.scale_down_limit = step(limit);
    }
    policy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(min: u64, max: u64, cpu: f64, replicas: u64) -> ServiceSpec {
        ServiceSpec {
            name: "web".into(),
            replicas,
            autoscale: Some(AutoscalePolicy {
                min,
                max,
                cpu_percent: cpu,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn refuses_bad_policies_saying_what_to_change() {
        let cases = [
            (spec(3, 2, 60.0, 2), "--autoscale-min must not exceed"),
            (spec(0, 0, 60.0, 0), "invalid --autoscale-max 0"),
            (spec(1, 5, 0.0, 1), "needs a target"),
            (spec(1, 5, -5.0, 1), "invalid --autoscale-cpu -5%"),
            (spec(1, 5, f64::NAN, 1), "invalid --autoscale-cpu"),
            (spec(2, 5, 60.0, 1), "within 2..5"),
            (spec(1, MAX_REPLICAS + 1, 60.0, 1), "at most 100000"),
        ];
        for (spec, expected) in cases {
            let err = validate(&spec).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
        let mut global = spec(1, 5, 60.0, 1);
        global.set_mode(ServiceMode::Global);
        assert!(validate(&global).unwrap_err().contains("global"));
        let mut memory = spec(1, 5, 0.0, 1);
        memory.autoscale.as_mut().unwrap().memory_percent = 101.0;
        assert!(validate(&memory)
            .unwrap_err()
            .contains("invalid --autoscale-memory 101%"));
        let mut window = spec(1, 5, 60.0, 1);
        window.autoscale.as_mut().unwrap().scale_down_window_ms = Some(MAX_WINDOW_MS + 1);
        assert!(validate(&window).unwrap_err().contains("at most 1h"));
    }

    #[test]
    fn a_policy_gets_the_hpa_defaults_around_what_was_set() {
        validate(&spec(1, 5, 50.0, 1)).unwrap();
        let mut stored = spec(1, 5, 50.0, 1).autoscale.unwrap();
        let policy = from_spec(&stored);
        assert_eq!(policy.targets.len(), 1);
        assert_eq!(policy.targets[0].metric, Metric::Cpu);
        assert_eq!(policy.scale_down_window_ms, 300_000);
        assert_eq!(policy.scale_up_window_ms, 0);
        stored.scale_down_window_ms = Some(3_000);
        stored.memory_percent = 80.0;
        let policy = from_spec(&stored);
        assert_eq!(policy.scale_down_window_ms, 3_000);
        assert_eq!(policy.targets.len(), 2);
        assert_eq!(policy.scale_up_limit.max_tasks, 4);
    }
}
