//! Promotion and demotion: the swarm says (over the agent's session) which
//! role it wants this node in, and the daemon changes what it runs to match.

use super::join::{call_leader, founding_managers};
use super::*;
use crate::daemon::addresses::{advertise_ip, bind};
use shoal_security::join::trusted_bundle;

/// How long a failed role change waits before it is tried again.
const ROLE_RETRY: Duration = Duration::from_secs(1);

/// Resolves when the agent's desired role changes; `None` once that agent
/// is gone (a newer one is announced on `agent_roles`), pending without
/// an agent.
async fn role_changed(roles: &mut Option<watch::Receiver<Option<NodeRole>>>) -> Option<()> {
    match roles {
        Some(rx) => rx.changed().await.ok(),
        None => std::future::pending().await,
    }
}

impl Membership {
    /// Follows `node promote` / `node demote`: the swarm says (over the
    /// agent's session) which role it wants this node in, and the daemon
    /// changes what it runs to match. Driven by the agent's desired-role
    /// `watch` (and by each new agent, after a join or an unlock), and
    /// level-triggered: every wake-up compares the desired role with the
    /// one the node has, and a failed change is tried again after
    /// [`ROLE_RETRY`] whether or not anything else changed.
    pub async fn follow_desired_role(self: Arc<Self>) {
        let mut agents = self.agent_roles.subscribe();
        let mut roles = agents.borrow_and_update().clone();
        loop {
            let retry = match self.match_desired_role().await {
                Ok(()) => false,
                Err(e) => {
                    tracing::warn!(error = %e, "could not change this node's role; retrying");
                    true
                }
            };
            tokio::select! {
                changed = agents.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    roles = agents.borrow_and_update().clone();
                }
                Some(()) = role_changed(&mut roles) => {}
                () = tokio::time::sleep(ROLE_RETRY), if retry => {}
            }
        }
    }

    /// One comparison of the desired role with the node's, and the change.
    async fn match_desired_role(&self) -> Result<(), MembershipError> {
        let mut active = self.active.lock().await;
        let Some(current) = active.as_mut() else {
            return Ok(());
        };
        match (current.record.role, current.agent.desired_role()) {
            (Role::Worker, Some(NodeRole::Manager)) => self.become_manager(current).await,
            (Role::Manager, Some(NodeRole::Worker)) if current.manager.is_some() => {
                self.become_worker(current).await
            }
            _ => Ok(()),
        }
    }

    /// Promotion: listen, get a manager certificate, join the Raft group.
    async fn become_manager(&self, current: &mut Active) -> Result<(), MembershipError> {
        let ip = current
            .record
            .advertise_addr
            .parse::<SocketAddr>()
            .map(|a| a.ip())
            .or_else(|_| current.record.advertise_addr.parse::<IpAddr>())
            .ok()
            .or_else(|| {
                current
                    .agent
                    .managers()
                    .first()
                    .and_then(|m| advertise_ip("", SocketAddr::from(([0, 0, 0, 0], 0)), m))
            })
            .ok_or_else(|| MembershipError::not_now("cannot tell which address to listen on"))?;
        let listener = match bind(&SocketAddr::new(ip, Manager::DEFAULT_PORT).to_string()).await {
            Ok(listener) => listener,
            Err(_) => bind(&SocketAddr::new(ip, 0).to_string()).await?,
        };
        let bound = listener
            .local_addr()
            .map_err(|e| MembershipError::local(e.to_string()))?;
        let raft_id = rand_u64();
        let key = NodeKey::generate().map_err(|e| MembershipError::local(e.to_string()))?;
        let csr = key
            .csr(&self.config.hostname)
            .map_err(|e| MembershipError::local(e.to_string()))?;
        let old_credentials = (*current.credentials.current()).clone();
        let first = current
            .agent
            .managers()
            .first()
            .cloned()
            .ok_or_else(|| MembershipError::unreachable("no manager known"))?;
        let (response, target) = call_leader(&first, &old_credentials, |channel| {
            let request = PromoteNodeRequest {
                csr_pem: csr.clone(),
                raft_id,
                advertise_addr: bound.to_string(),
            };
            async move {
                CaClient::new(channel)
                    .promote_node(request)
                    .await
                    .map(tonic::Response::into_inner)
            }
        })
        .await?;
        let credentials = NodeCredentials {
            ca_pem: trusted_bundle(&old_credentials.ca_pem, &response.trust_bundle_pem),
            cert_pem: response.cert_pem.clone(),
            key_pem: key.key_pem(),
        };
        let mut record = current.record.clone();
        record.manager_ids = response
            .manager_members
            .iter()
            .map(|m| m.node_id.clone())
            .collect();
        record.role = Role::Manager;
        record.raft_id = Some(raft_id);
        record.listen_addr = Some(bound.to_string());
        record.advertise_addr = bound.to_string();
        record.raft = response.raft;
        // The manager serves, and the agent connects with, the manager
        // certificate from here on; a failed join goes back to the old one.
        current.credentials.replace(credentials.clone());
        let joined = self
            .join_raft(
                &record,
                &current.credentials,
                listener,
                &target,
                founding_managers(&response.manager_members),
            )
            .await;
        let (running, managers) = match joined {
            Ok(joined) => joined,
            Err(e) => {
                current.credentials.replace(old_credentials);
                return Err(e);
            }
        };
        record.managers = managers;
        let saved = self.commit(&credentials, &record);
        if let Err(e) = saved {
            *self.manager.write().expect("manager lock") = None;
            running.stop().await;
            current.credentials.replace(old_credentials);
            let _ = std::fs::remove_dir_all(self.config.data_dir.join("raft"));
            return Err(MembershipError::local(format!(
                "could not record the promotion: {e}"
            )));
        }
        current.record = record;
        current.manager = Some(running);
        tracing::info!("this node was promoted: it is now a manager");
        Ok(())
    }

    /// Demotion: the leader already removed this manager from the group;
    /// stop it and go on as a worker.
    async fn become_worker(&self, current: &mut Active) -> Result<(), MembershipError> {
        if let Some(running) = current.manager.take() {
            *self.manager.write().expect("manager lock") = None;
            running.stop().await;
        }
        let _ = std::fs::remove_dir_all(self.config.data_dir.join("raft"));
        let own = current.record.advertise_addr.clone();
        current.record.role = Role::Worker;
        current.record.raft_id = None;
        current.record.listen_addr = None;
        current.record.managers = current
            .agent
            .managers()
            .into_iter()
            .filter(|m| *m != own)
            .collect();
        let own_id = current.record.node_id.clone();
        current.record.manager_ids = current
            .agent
            .known_managers()
            .ids()
            .into_iter()
            .filter(|id| *id != own_id)
            .collect();
        current
            .record
            .save(&self.config.data_dir)
            .map_err(|e| MembershipError::local(e.to_string()))?;
        tracing::info!("this node was demoted: it is now a worker");
        Ok(())
    }
}
