//! The hooks' settings as the operator gives them (`swarm init|update
//! --node-provisioner …`): checked, and merged into the stored ones.

use shoal_proto::v1::{NodeProvisioning, UpdateClusterRequest};

/// A command line longer than this is surely not one.
const MAX_COMMAND: usize = 4096;
const DAY_MS: u64 = 24 * 3_600_000;

/// Checks the settings as a whole; the message names the flag and the fix.
pub fn validate(spec: &NodeProvisioning) -> Result<(), String> {
    for (flag, command) in [
        ("--node-provisioner", &spec.provisioner),
        ("--node-decommissioner", &spec.decommissioner),
    ] {
        if command.len() > MAX_COMMAND {
            return Err(format!(
                "invalid {flag}: {} bytes, at most {MAX_COMMAND}; put the steps in a script and give its path",
                command.len()
            ));
        }
        if command.chars().any(|c| c.is_control() && c != '\t') {
            return Err(format!(
                "invalid {flag} {command:?}: control characters; give one command line (a script's path)"
            ));
        }
    }
    for (flag, ms, min, max) in [
        (
            "--node-provisioner-threshold",
            spec.pending_threshold_ms,
            0,
            DAY_MS,
        ),
        ("--node-provisioner-timeout", spec.timeout_ms, 1_000, DAY_MS),
        ("--node-provisioner-cooldown", spec.cooldown_ms, 0, DAY_MS),
        (
            "--node-idle-window",
            spec.idle_window_ms,
            1_000,
            30 * DAY_MS,
        ),
    ] {
        // 0 is "the default".
        if ms != 0 && !(min..=max).contains(&ms) {
            return Err(format!(
                "invalid {flag} {ms}ms: expected between {}s and {}h",
                min / 1000,
                max / 3_600_000
            ));
        }
    }
    if spec.min_nodes > 100_000 {
        return Err(format!(
            "invalid --node-floor {}: expected at most 100000",
            spec.min_nodes
        ));
    }
    Ok(())
}

/// The stored settings with the request's fields applied, checked; `None`
/// when the request sets none of them.
pub fn merge(
    stored: Option<NodeProvisioning>,
    request: &UpdateClusterRequest,
) -> Result<Option<NodeProvisioning>, String> {
    let mut spec = stored.unwrap_or_default();
    let mut changed = false;
    let mut set = |field: &mut String, value: &Option<String>| {
        if let Some(v) = value {
            *field = v.trim().to_string();
            changed = true;
        }
    };
    set(&mut spec.provisioner, &request.node_provisioner);
    set(&mut spec.decommissioner, &request.node_decommissioner);
    for (field, value) in [
        (
            &mut spec.pending_threshold_ms,
            request.node_provisioner_threshold_ms,
        ),
        (&mut spec.timeout_ms, request.node_provisioner_timeout_ms),
        (&mut spec.cooldown_ms, request.node_provisioner_cooldown_ms),
        (&mut spec.idle_window_ms, request.node_idle_window_ms),
        (&mut spec.min_nodes, request.node_floor),
    ] {
        if let Some(v) = value {
            *field = v;
            changed = true;
        }
    }
    if !changed {
        return Ok(None);
    }
    validate(&spec)?;
    Ok(Some(spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_given_replace_the_stored_ones_and_bad_values_are_refused() {
        let stored = NodeProvisioning {
            provisioner: "old".into(),
            cooldown_ms: 5_000,
            ..Default::default()
        };
        let request = UpdateClusterRequest {
            node_provisioner: Some(" /usr/local/bin/add-machine ".into()),
            node_floor: Some(2),
            ..Default::default()
        };
        let merged = merge(Some(stored.clone()), &request).unwrap().unwrap();
        assert_eq!(merged.provisioner, "/usr/local/bin/add-machine");
        assert_eq!((merged.cooldown_ms, merged.min_nodes), (5_000, 2));
        assert_eq!(
            merge(Some(stored.clone()), &UpdateClusterRequest::default()),
            Ok(None)
        );
        let bad = UpdateClusterRequest {
            node_provisioner_timeout_ms: Some(10),
            ..Default::default()
        };
        assert_eq!(
            merge(Some(stored.clone()), &bad).unwrap_err(),
            "invalid --node-provisioner-timeout 10ms: expected between 1s and 24h"
        );
        let bad = UpdateClusterRequest {
            node_decommissioner: Some("a\nb".into()),
            ..Default::default()
        };
        assert!(merge(Some(stored), &bad)
            .unwrap_err()
            .starts_with("invalid --node-decommissioner"));
    }
}
