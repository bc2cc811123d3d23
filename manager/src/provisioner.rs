//! The leader's provisioning loop: every second it asks
//! [`crate::provisioning`] whether to call the operator's provisioner or
//! decommissioner, records the call in Raft, runs it ([`hook`]) and records
//! the result as an event (`swarm inspect` shows `ProvisioningStatus`).
//!
//! Only the manager that recorded a call runs it, and only after the record
//! committed; a leader that loses office mid-call lets the call finish and
//! still tries to record its end (a successor otherwise records it lost at
//! its deadline). What the hooks are told:
//!
//! - provisioner: `{"kind":"provision","call_id","shortfall":{…},
//!   "join":{"token","managers"}}` — the worker join token, so the script
//!   can join the machine it makes (stdin only: never logged nor stored).
//! - decommissioner: `{"kind":"decommission","call_id","node":{"id",
//!   "hostname","addr","labels"}}`.
//!
//! Both also get `SHOAL_HOOK=provision|decommission` and `SHOAL_CALL_ID`.

pub mod hook;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use shoal_proto::v1::{NodeRole, ProvisionerCall, ProvisioningEvent};

use crate::proposer::Proposer;
use crate::provisioning::{self, Action, IdleNodes, Settings, Shortfall, DECOMMISSION};
use crate::raft::types::Raft;
use crate::store::{ClusterState, Command, SharedStore};

const PERIOD: Duration = Duration::from_secs(1);

/// Runs for the manager's lifetime; acts only while this manager leads.
pub async fn run(raft: Raft, proposer: Proposer, store: Arc<SharedStore>, raft_id: u64) {
    let mut idle = IdleNodes::default();
    let mut ticker = tokio::time::interval(PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if !crate::raft::is_leader(&raft, raft_id) {
            idle.clear();
            continue;
        }
        let now = crate::now_ms();
        let (settings, provision, decommission, shortfall) = store.read(|state| {
            idle.observe(state, now);
            let settings = Settings::of(state);
            let status = state
                .cluster
                .as_ref()
                .and_then(|c| c.provisioning_status.clone())
                .unwrap_or_default();
            let shortfall = provisioning::shortfall(state, &settings, now);
            let mut id = crate::new_id;
            let provision = provisioning::decide_provision(
                &settings,
                &status,
                shortfall.as_ref(),
                now,
                &mut id,
            );
            let decommission =
                provisioning::decide_decommission(&settings, &status, state, &idle, now, &mut id);
            (settings, provision, decommission, shortfall)
        });
        for action in [provision, decommission].into_iter().flatten() {
            act(
                &proposer,
                &store,
                &settings,
                action,
                shortfall.as_ref(),
                now,
            )
            .await;
        }
    }
}

async fn act(
    proposer: &Proposer,
    store: &Arc<SharedStore>,
    settings: &Settings,
    action: Action,
    shortfall: Option<&Shortfall>,
    now: i64,
) {
    match action {
        Action::Expire(call) => {
            tracing::warn!(kind = %call.kind, call = %call.id, "provisioning: a call of an earlier leader never reported; taken as ended");
            let command = end_command(&call, provisioning::lost_event(&call, now), false);
            if let Err(e) = proposer.propose(command).await {
                tracing::warn!(error = %e, "provisioning: could not record the lost call");
            }
        }
        Action::Start(call) => {
            let Some((command, input, what)) =
                store.read(|state| prepare(state, settings, &call, shortfall))
            else {
                return;
            };
            if let Err(e) = proposer
                .propose(Command::StartProvisionerCall {
                    call: call.clone(),
                    at_ms: now,
                })
                .await
            {
                tracing::warn!(kind = %call.kind, error = %e, "provisioning: could not record the call; not run");
                return;
            }
            tracing::info!(kind = %call.kind, call = %call.id, "provisioning: running the {}er for {what}", call.kind);
            let proposer = proposer.clone();
            let timeout = Duration::from_millis(settings.timeout_ms.max(0) as u64);
            tokio::spawn(async move {
                let env = [
                    ("SHOAL_HOOK", call.kind.as_str()),
                    ("SHOAL_CALL_ID", call.id.as_str()),
                ];
                let outcome = hook::run(&command, &input, &env, timeout).await;
                let message = format!("{}er {} ({what})", call.kind, outcome.describe(timeout));
                if outcome.succeeded() {
                    tracing::info!(call = %call.id, "provisioning: {message}");
                } else {
                    tracing::warn!(call = %call.id, stderr = %outcome.stderr, "provisioning: {message}");
                }
                let event = ProvisioningEvent {
                    at_ms: crate::now_ms(),
                    kind: call.kind.clone(),
                    message,
                    exit_code: outcome.exit_code.unwrap_or(-1),
                    stderr: outcome.stderr.clone(),
                    node_id: call.node_id.clone(),
                };
                // A failed decommission gives the node back.
                let command = end_command(&call, event, !outcome.succeeded());
                for _ in 0..5 {
                    match proposer.propose(command.clone()).await {
                        Ok(()) => return,
                        Err(e) => {
                            tracing::warn!(error = %e, "provisioning: could not record the result; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            });
        }
    }
}

fn end_command(call: &ProvisionerCall, event: ProvisioningEvent, reactivate: bool) -> Command {
    Command::EndProvisionerCall {
        call_id: call.id.clone(),
        kind: call.kind.clone(),
        event,
        reactivate,
    }
}

/// The command line, its stdin and a few words for events, or `None` when
/// the hook or its node is gone.
fn prepare(
    state: &ClusterState,
    settings: &Settings,
    call: &ProvisionerCall,
    shortfall: Option<&Shortfall>,
) -> Option<(String, Vec<u8>, String)> {
    if call.kind == DECOMMISSION {
        let node = state.nodes.get(&call.node_id)?;
        let description = node.description.clone().unwrap_or_default();
        let addr = node
            .status
            .as_ref()
            .map(|s| s.addr.clone())
            .unwrap_or_default();
        let input = json!({
            "kind": DECOMMISSION,
            "call_id": call.id,
            "node": {
                "id": node.id,
                "hostname": description.hostname,
                "addr": addr,
                "labels": node.spec.as_ref().map(|s| s.labels.clone()).unwrap_or_default(),
            },
        });
        let what = format!("node {} idle", description.hostname);
        let mut bytes = serde_json::to_vec(&input).ok()?;
        bytes.push(b'\n');
        return Some((settings.decommissioner.clone()?, bytes, what));
    }
    let shortfall = shortfall?;
    let cluster = state.cluster.as_ref()?;
    let managers: Vec<String> = state
        .nodes
        .values()
        .filter(|n| n.role() == NodeRole::Manager)
        .filter_map(|n| n.manager_status.as_ref().map(|m| m.addr.clone()))
        .filter(|a| !a.is_empty())
        .collect();
    let input = json!({
        "kind": provisioning::PROVISION,
        "call_id": call.id,
        "shortfall": shortfall,
        "join": {
            "token": cluster.join_tokens.as_ref().map(|t| t.worker.clone()).unwrap_or_default(),
            "managers": managers,
        },
    });
    let mut bytes = serde_json::to_vec(&input).ok()?;
    bytes.push(b'\n');
    Some((settings.provisioner.clone()?, bytes, shortfall.summary()))
}
