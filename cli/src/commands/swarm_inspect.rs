//! `shoal swarm inspect`: the cluster's settings and the machine hooks'
//! state as JSON, in Docker's casing. Join tokens, keys and the unlock key
//! are never shown (the control API redacts keys; tokens are left out here).

use serde_json::{json, Value};
use shoal_proto::v1::{Cluster, ProvisionerCall};

use crate::output;

fn ms_text(ms: u64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(ms)).to_string()
}

fn call(call: &ProvisionerCall) -> Value {
    json!({
        "ID": call.id,
        "Kind": call.kind,
        "Started": output::rfc3339(call.started_ms),
        "Deadline": output::rfc3339(call.deadline_ms),
        "NodeID": call.node_id,
        "Tasks": call.tasks,
    })
}

pub fn json(cluster: &Cluster) -> Value {
    let spec = cluster.spec.clone().unwrap_or_default();
    let hooks = shoal_manager::provisioning::Settings::from_spec(spec.node_provisioning.as_ref());
    let status = cluster.provisioning_status.clone().unwrap_or_default();
    let meta = cluster.meta.unwrap_or_default();
    json!({
        "ID": cluster.id,
        "CreatedAt": output::rfc3339(meta.created_at_ms),
        "UpdatedAt": output::rfc3339(meta.updated_at_ms),
        "Spec": {
            "Name": spec.name,
            "Dispatcher": {
                "HeartbeatPeriod": ms_text(spec.dispatcher.unwrap_or_default().heartbeat_period_ms),
            },
            "Orchestration": {
                "TaskHistoryRetentionLimit": spec.orchestration.unwrap_or_default().task_history_limit,
            },
            "CAConfig": {"NodeCertExpiry": ms_text(spec.node_cert_expiry_secs * 1000)},
            "EncryptionConfig": {
                "AutoLockManagers": spec.encryption.unwrap_or_default().auto_lock_managers,
            },
            "NodeProvisioning": {
                "Provisioner": hooks.provisioner,
                "PendingThreshold": ms_text(hooks.pending_threshold_ms as u64),
                "Timeout": ms_text(hooks.timeout_ms as u64),
                "Cooldown": ms_text(hooks.cooldown_ms as u64),
                "Decommissioner": hooks.decommissioner,
                "IdleWindow": ms_text(hooks.idle_window_ms as u64),
                "Floor": hooks.min_nodes,
            },
        },
        "ProvisioningStatus": {
            "ProvisionInFlight": status.provision_in_flight.as_ref().map(call),
            "DecommissionInFlight": status.decommission_in_flight.as_ref().map(call),
            "Events": status.events.iter().map(|e| json!({
                "Time": output::rfc3339(e.at_ms),
                "Kind": e.kind,
                "Message": e.message,
                "ExitCode": e.exit_code,
                "Stderr": e.stderr,
                "NodeID": e.node_id,
            })).collect::<Vec<_>>(),
        },
    })
}
