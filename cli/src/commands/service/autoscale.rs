//! `--autoscale-*` on `service create` and `service update`, and what the
//! other commands make of an autoscaled service: `service scale` is refused
//! (the autoscaler owns the count) with the way out, `service ls` shows the
//! range. The manager validates the policy again with the same flag names
//! (`manager::autoscale::policy`); here only the syntax is checked.

use shoal_proto::v1::{AutoscalePolicy, ServiceSpec};

use crate::args::AutoscaleFlags;

/// A percentage as operators write it: `60%` or `60`, above 0.
pub fn parse_percent(flag: &str, text: &str) -> anyhow::Result<f64> {
    let number = text.trim().strip_suffix('%').unwrap_or(text.trim());
    match number.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => anyhow::bail!("invalid {flag} {text:?}: expected a percentage above 0, e.g. 60%"),
    }
}

fn parse_count(flag: &str, text: &str) -> anyhow::Result<u64> {
    text.trim()
        .parse::<u64>()
        .map_err(|_| anyhow::anyhow!("invalid {flag} {text:?}: expected a whole number, 0 or more"))
}

fn parse_rate(flag: &str, text: &str) -> anyhow::Result<f64> {
    let number = text.trim().strip_suffix("/s").unwrap_or(text.trim());
    match number.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => anyhow::bail!(
            "invalid {flag} {text:?}: expected requests per second per task above 0, e.g. 200"
        ),
    }
}

/// Says on stderr that an `--autoscale-rps` target cannot act yet (the
/// service is still created or updated: the target is kept for when the
/// ingress mesh measures requests).
pub fn warn(flags: &AutoscaleFlags) {
    if let Some(rps) = &flags.autoscale_rps {
        eprintln!(
            "Warning: --autoscale-rps {rps} is kept, but there is {}: the service does not scale on requests yet (cpu and memory targets still apply)",
            shoal_manager::autoscale::RPS_UNMEASURED
        );
    }
}

/// Whether any `--autoscale-*` flag was given.
pub fn given(flags: &AutoscaleFlags) -> bool {
    flags.autoscale_off
        || flags.autoscale_min.is_some()
        || flags.autoscale_max.is_some()
        || flags.autoscale_cpu.is_some()
        || flags.autoscale_memory.is_some()
        || flags.autoscale_rps.is_some()
        || flags.autoscale_scale_down_window.is_some()
}

/// Applies the flags to `spec` (a new service's, or the current one for an
/// update). Everything is parsed first: an error leaves `spec` as it was.
/// When autoscaled, the replica count is brought within the range unless
/// `explicit_replicas` (then the manager refuses a count outside it).
pub fn apply(
    spec: &mut ServiceSpec,
    flags: &AutoscaleFlags,
    explicit_replicas: bool,
) -> anyhow::Result<()> {
    if flags.autoscale_off {
        spec.autoscale = None;
        return Ok(());
    }
    let min = flags
        .autoscale_min
        .as_deref()
        .map(|v| parse_count("--autoscale-min", v))
        .transpose()?;
    let max = flags
        .autoscale_max
        .as_deref()
        .map(|v| parse_count("--autoscale-max", v))
        .transpose()?;
    let cpu = flags
        .autoscale_cpu
        .as_deref()
        .map(|v| parse_percent("--autoscale-cpu", v))
        .transpose()?;
    let memory = flags
        .autoscale_memory
        .as_deref()
        .map(|v| parse_percent("--autoscale-memory", v))
        .transpose()?;
    let rps = flags
        .autoscale_rps
        .as_deref()
        .map(|v| parse_rate("--autoscale-rps", v))
        .transpose()?;
    let window = flags
        .autoscale_scale_down_window
        .as_deref()
        .map(|v| {
            shoal_proto::syntax::parse_duration_ms(v)
                .map_err(|e| anyhow::anyhow!("invalid --autoscale-scale-down-window {v:?}: {e}"))
        })
        .transpose()?;
    if !given(flags) {
        return Ok(());
    }
    let mut policy = match spec.autoscale {
        Some(policy) => policy,
        None => {
            let (Some(_), Some(_)) = (min, max) else {
                anyhow::bail!(
                    "autoscaling needs a range: give both --autoscale-min N and --autoscale-max M \
                     (and a target such as --autoscale-cpu 60%)"
                );
            };
            AutoscalePolicy::default()
        }
    };
    if let Some(min) = min {
        policy.min = min;
    }
    if let Some(max) = max {
        policy.max = max;
    }
    if let Some(cpu) = cpu {
        policy.cpu_percent = cpu;
    }
    if let Some(memory) = memory {
        policy.memory_percent = memory;
    }
    if let Some(rps) = rps {
        policy.rps = rps;
    }
    if let Some(ms) = window {
        policy.scale_down_window_ms = Some(ms);
    }
    if policy.min > policy.max {
        anyhow::bail!(
            "invalid autoscale range {}..{}: --autoscale-min must not exceed --autoscale-max",
            policy.min,
            policy.max
        );
    }
    if !explicit_replicas {
        spec.replicas = spec.replicas.max(policy.min).min(policy.max);
    }
    spec.autoscale = Some(policy);
    Ok(())
}

/// Why `service scale` (or `update --replicas` alone) must not set the
/// count of this service, if it must not.
pub fn refuse_manual_scale(spec: &ServiceSpec, name: &str) -> Option<String> {
    let policy = spec.autoscale.as_ref()?;
    Some(format!(
        "{name} is autoscaled between {} and {} replicas, so its count is the autoscaler's: \
         stop autoscaling with \"shoal service update --autoscale-off {name}\" \
         (then scale it), or change the range with --autoscale-min/--autoscale-max",
        policy.min, policy.max
    ))
}

/// `service ls`'s REPLICAS suffix: ` (2..10)` for an autoscaled service.
pub fn range_suffix(spec: &ServiceSpec) -> String {
    spec.autoscale
        .as_ref()
        .map(|p| format!(" ({}..{})", p.min, p.max))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(min: Option<&str>, max: Option<&str>, cpu: Option<&str>) -> AutoscaleFlags {
        AutoscaleFlags {
            autoscale_min: min.map(str::to_string),
            autoscale_max: max.map(str::to_string),
            autoscale_cpu: cpu.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn percentages_are_written_with_or_without_the_sign() {
        assert_eq!(parse_percent("--autoscale-cpu", "60%").unwrap(), 60.0);
        assert_eq!(parse_percent("--autoscale-cpu", " 150 ").unwrap(), 150.0);
        for bad in ["", "%", "abc", "-5%", "0%", "60%%", "inf"] {
            let err = parse_percent("--autoscale-cpu", bad)
                .unwrap_err()
                .to_string();
            assert!(err.contains("invalid --autoscale-cpu"), "{err}");
            assert!(err.contains("e.g. 60%"), "{err}");
        }
    }

    #[test]
    fn a_policy_needs_a_range_and_brings_replicas_into_it() {
        let mut spec = ServiceSpec {
            replicas: 1,
            ..Default::default()
        };
        let err = apply(&mut spec, &flags(Some("2"), None, Some("60%")), false).unwrap_err();
        assert!(
            err.to_string().contains("give both --autoscale-min"),
            "{err}"
        );
        let err = apply(&mut spec, &flags(Some("5"), Some("2"), Some("60%")), false).unwrap_err();
        assert!(err.to_string().contains("must not exceed"), "{err}");
        let err = apply(&mut spec, &flags(Some("x"), Some("2"), None), false).unwrap_err();
        assert!(
            err.to_string().contains("invalid --autoscale-min \"x\""),
            "{err}"
        );
        assert_eq!(
            spec,
            ServiceSpec {
                replicas: 1,
                ..Default::default()
            },
            "unchanged"
        );

        apply(&mut spec, &flags(Some("2"), Some("10"), Some("60%")), false).unwrap();
        assert_eq!(spec.replicas, 2);
        assert_eq!(range_suffix(&spec), " (2..10)");
        // An update may change one bound; the count follows into the range.
        spec.replicas = 9;
        apply(&mut spec, &flags(None, Some("4"), None), false).unwrap();
        assert_eq!(
            (spec.replicas, spec.autoscale.as_ref().unwrap().max),
            (4, 4)
        );
        assert!(refuse_manual_scale(&spec, "web")
            .unwrap()
            .contains("--autoscale-off web"));
        let off = AutoscaleFlags {
            autoscale_off: true,
            ..Default::default()
        };
        apply(&mut spec, &off, false).unwrap();
        assert_eq!((spec.autoscale.is_none(), spec.replicas), (true, 4));
        assert!(refuse_manual_scale(&spec, "web").is_none());
    }
}
