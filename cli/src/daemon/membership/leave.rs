//! `swarm leave`: a manager leaves the Raft group first (refused for the
//! last one, or without `--force`), then everything of the swarm is wiped.

use super::*;

impl Membership {
    /// `swarm leave`.
    pub async fn leave(&self, force: bool) -> Result<(), MembershipError> {
        let mut active = self.active.lock().await;
        if active.is_none() && self.is_locked() {
            if !force {
                return Err(MembershipError::not_now(format!(
                    "{LOCKED} Leaving without unlocking needs --force: this manager's copy of the \
                     swarm's state is deleted, and the other managers keep listing it until `node rm`."
                )));
            }
            *self.locked.lock().expect("locked lock") = None;
            self.wipe();
            tracing::info!("a locked manager left the swarm (--force)");
            return Ok(());
        }
        let Some(current) = active.as_ref() else {
            return Err(MembershipError::not_now(NOT_IN_SWARM));
        };
        if current.record.role == Role::Manager {
            let manager = current.manager.as_ref().map(|m| m.manager.clone());
            let voters = manager
                .as_ref()
                .map(|m| m.quorum().voters.len())
                .unwrap_or(1);
            if voters <= 1 && !force {
                return Err(MembershipError::not_now(
                    "You are attempting to leave the swarm on a node that is participating as a manager. \
                     Removing the last manager erases all current state of the swarm. \
                     Use `--force` to ignore this message.",
                ));
            }
            if voters > 1 {
                if !force {
                    return Err(MembershipError::not_now(format!(
                        "You are attempting to leave the swarm on a node that is participating as a manager \
                         ({voters} managers). Demote it first with `shoal node demote`, or use `--force` \
                         to remove it from the Raft group as it leaves."
                    )));
                }
                if let Some(manager) = manager {
                    let raft_id = current.record.raft_id.unwrap_or_default();
                    let mut leader = manager.leader_raft().await.map_err(MembershipError::from)?;
                    leader
                        .leave_cluster(LeaveClusterRequest {
                            raft_id,
                            force: true,
                        })
                        .await?;
                }
            }
        }
        let current = active.take().expect("checked above");
        current.agent.shutdown("the node left the swarm").await;
        current.agent.cleanup_overlay().await;
        if let Some(manager) = current.manager {
            *self.manager.write().expect("manager lock") = None;
            manager.stop().await;
        }
        self.wipe();
        tracing::info!(node = %current.record.node_id, "left the swarm");
        Ok(())
    }
}
