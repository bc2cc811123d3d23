//! `swarm init`: a new cluster with this node as its only manager, and
//! `swarm init --force-new-cluster` on a manager that lost its quorum.

use super::*;
use crate::daemon::addresses::{bind, parse_advertise_addr, parse_listen_addr};
use shoal_manager::bootstrap::{new_cluster, ClusterIds, ClusterParams};

impl Membership {
    /// `swarm init`: a new cluster with this node as its only manager.
    pub async fn init(&self, request: InitRequest) -> Result<InitResponse, MembershipError> {
        let mut active = self.active.lock().await;
        if request.force_new_cluster {
            return self.force_new_cluster(&mut active).await;
        }
        if active.is_some() {
            return Err(MembershipError::not_now(ALREADY_IN_SWARM));
        }
        if self.is_locked() {
            return Err(MembershipError::not_now(LOCKED));
        }
        let timing = RaftTiming::from_config(request.raft.as_ref());
        timing
            .validate()
            .map_err(|e| MembershipError::bad_input(format!("invalid Raft timing: {e}")))?;
        // Checked before anything is created; stored in the cluster object.
        let (pools, subnet_size) = shoal_manager::network::ipam::parse_pools(
            &request.default_addr_pool,
            request.default_addr_pool_mask_length,
        )
        .map_err(MembershipError::bad_input)?;
        if let Some(hooks) = &request.node_provisioning {
            shoal_manager::provisioning::settings::validate(hooks)
                .map_err(MembershipError::bad_input)?;
        }
        let listen = parse_listen_addr(&request.listen_addr)?;
        let advertise = parse_advertise_addr(&request.advertise_addr, listen)?;
        let listener = bind(&listen.to_string()).await?;
        let bound = listener.local_addr().map_err(|e| {
            MembershipError::local(format!("cannot read the listening address: {e}"))
        })?;
        let advertise = SocketAddr::new(
            advertise.ip(),
            if advertise.port() == 0 {
                bound.port()
            } else {
                advertise.port()
            },
        )
        .to_string();

        let cluster_id = shoal_security::token::random_base36(25);
        let node_id = new_node_id();
        let raft_id: u64 = rand_u64();
        let internal = |e: &dyn std::fmt::Display| MembershipError::local(e.to_string());
        let root = RootCa::generate(&cluster_id).map_err(|e| internal(&e))?;
        let key = NodeKey::generate().map_err(|e| internal(&e))?;
        let cert_pem = root
            .sign_node_csr(
                &key.csr(&self.config.hostname).map_err(|e| internal(&e))?,
                &node_id,
                shoal_security::Role::Manager,
                &cluster_id,
                DEFAULT_NODE_CERT_EXPIRY,
            )
            .map_err(|e| internal(&e))?;
        let credentials = NodeCredentials {
            ca_pem: root.cert_pem.clone(),
            cert_pem,
            key_pem: key.key_pem(),
        };
        let shared = SharedCredentials::new(credentials.clone());
        let digest = root.digest();
        let worker_token = JoinToken::generate(&digest).to_string();
        let unlock_key = request.autolock.then(Kek::generate);
        let params = ClusterParams {
            hostname: self.config.hostname.clone(),
            advertise_addr: advertise.clone(),
            dispatcher_heartbeat_ms: request.dispatcher_heartbeat_ms,
            raft: timing.to_config(),
            unlock_key: unlock_key.as_ref().map(Kek::to_unlock_key),
            node_provisioning: request.node_provisioning.clone(),
            default_address_pool: pools.iter().map(|p| p.to_string()).collect(),
            subnet_size: subnet_size as u32,
        };
        let ids = ClusterIds {
            cluster_id: cluster_id.clone(),
            node_id: node_id.clone(),
            raft_id,
            root_ca: shoal_proto::v1::RootCa {
                cert_pem: root.cert_pem.clone(),
                key_pem: root.key_pem.clone(),
                digest: digest.clone(),
            },
            worker_token: worker_token.clone(),
            manager_token: JoinToken::generate(&digest).to_string(),
            node_cert_pem: credentials.cert_pem.clone(),
        };
        let (cluster, node) = new_cluster(&params, shoal_manager::now_ms(), &ids);
        let record = MembershipRecord {
            node_id: node_id.clone(),
            cluster_id: cluster_id.clone(),
            role: Role::Manager,
            raft_id: Some(raft_id),
            listen_addr: Some(bound.to_string()),
            advertise_addr: advertise.clone(),
            managers: vec![advertise.clone()],
            manager_ids: vec![node_id.clone()],
            raft: Some(timing.to_config()),
        };

        // With --autolock the new store is wrapped by the unlock key from
        // its first byte: no key that opens it is ever written here.
        let manager_config = self
            .manager_config(&record, &shared, unlock_key.clone(), BTreeMap::new())
            .map_err(|e| internal(&e))?;
        let manager = Manager::open(manager_config)
            .await
            .map_err(MembershipError::from)?;
        if let Err(e) = manager.bootstrap(cluster, node).await {
            manager.shutdown().await;
            drop(manager);
            self.wipe();
            return Err(MembershipError::local(format!(
                "could not create the swarm: {e}"
            )));
        }
        let saved = self.commit(&credentials, &record);
        if let Err(e) = saved {
            manager.shutdown().await;
            drop(manager);
            self.wipe();
            return Err(MembershipError::local(format!(
                "could not record the new swarm: {e}"
            )));
        }
        let running = self.serve_manager(manager, listener);
        let agent = self.spawn_agent(&record, shared.clone()).await;
        *active = Some(Active {
            record,
            credentials: shared,
            manager: Some(running),
            agent,
        });
        tracing::info!(node = %node_id, cluster = %cluster_id, addr = %advertise, "swarm initialized");
        Ok(InitResponse {
            node_id,
            cluster_id,
            worker_token,
            manager_addr: advertise,
            unlock_key: unlock_key
                .as_ref()
                .map(Kek::to_unlock_key)
                .unwrap_or_default(),
        })
    }

    /// `swarm init --force-new-cluster`: on a manager whose Raft group lost
    /// its quorum, start a new group with this manager alone, keeping the
    /// cluster's state (services, tasks, nodes, tokens, CA).
    async fn force_new_cluster(
        &self,
        active: &mut Option<Active>,
    ) -> Result<InitResponse, MembershipError> {
        let Some(current) = active.take() else {
            return Err(MembershipError::not_now(
                "--force-new-cluster needs a node that was a manager of a swarm: this node is in none",
            ));
        };
        if current.record.role != Role::Manager || current.manager.is_none() {
            *active = Some(current);
            return Err(MembershipError::not_now(
                "--force-new-cluster must run on a manager: this node is a worker",
            ));
        }
        let Active {
            mut record,
            credentials,
            manager,
            agent,
        } = current;
        let running = manager.expect("checked above");
        let state = running.manager.store().read(Clone::clone);
        // The new store is wrapped as the swarm's autolock setting says from the start.
        let unlock_key = match state.cluster.as_ref().map(encryption::wanted_protection) {
            Some(Protection::UnlockKey(key)) => Some(key),
            _ => None,
        };
        agent
            .shutdown("the swarm is being rebuilt with --force-new-cluster")
            .await;
        *self.manager.write().expect("manager lock") = None;
        running.stop().await;
        let listen = record.listen_addr.clone().unwrap_or_default();
        let restart = async {
            let listener = bind(&listen).await?;
            let config = self
                .manager_config(&record, &credentials, unlock_key.clone(), BTreeMap::new())
                .map_err(|e| MembershipError::local(e.to_string()))?;
            let manager = Manager::force_new_cluster(config, state)
                .await
                .map_err(MembershipError::from)?;
            Ok::<_, MembershipError>((manager, listener))
        }
        .await;
        let (manager, listener) = match restart {
            Ok(ok) => ok,
            Err(e) => {
                // Bring the node back as it was, so nothing is lost.
                let resumed = self
                    .start(
                        record.clone(),
                        credentials,
                        bind(&listen).await.ok(),
                        unlock_key,
                    )
                    .await
                    .map_err(|e| MembershipError::local(e.to_string()));
                if let Ok(resumed) = resumed {
                    *active = Some(resumed);
                }
                return Err(e);
            }
        };
        record.managers = vec![record.advertise_addr.clone()];
        record
            .save(&self.config.data_dir)
            .map_err(|e| MembershipError::local(e.to_string()))?;
        let cluster = manager
            .store()
            .read(|s| s.cluster.clone())
            .unwrap_or_default();
        let running = self.serve_manager(manager, listener);
        let agent = self.spawn_agent(&record, credentials.clone()).await;
        let response = InitResponse {
            node_id: record.node_id.clone(),
            cluster_id: record.cluster_id.clone(),
            worker_token: cluster.join_tokens.unwrap_or_default().worker,
            manager_addr: record.advertise_addr.clone(),
            unlock_key: String::new(),
        };
        *active = Some(Active {
            record,
            credentials,
            manager: Some(running),
            agent,
        });
        tracing::warn!("the swarm was rebuilt around this manager (--force-new-cluster)");
        Ok(response)
    }
}
