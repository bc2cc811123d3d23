//! The cluster object: `swarm inspect`, `swarm update`, `swarm join-token
//! --rotate` and `swarm ca --rotate`, served on the leader. What leaves the
//! manager is redacted (no CA keys, no unlock key).

use shoal_proto::v1::{Cluster, GetClusterRequest, RotateJoinTokenRequest, UpdateClusterRequest};
use shoal_security::JoinToken;
use tonic::{Request, Response, Status};

use super::ControlService;
use crate::store::Command;

impl ControlService {
    pub(super) async fn get_cluster_here(
        &self,
        _request: Request<GetClusterRequest>,
    ) -> Result<Response<Cluster>, Status> {
        let cluster = self
            .manager
            .store()
            .read(|s| s.cluster.clone())
            .ok_or_else(|| Status::from(crate::ManagerError::NotInitialized))?;
        Ok(Response::new(redact(cluster)))
    }

    pub(super) async fn rotate_join_token_here(
        &self,
        request: Request<RotateJoinTokenRequest>,
    ) -> Result<Response<Cluster>, Status> {
        let role = request.into_inner().role();
        // Tokens name the root that signs now (the new one during a rotation).
        let digest = self
            .manager
            .store()
            .read(|s| {
                s.cluster
                    .as_ref()
                    .map(|c| crate::store::rotation::signing_root(c).digest)
            })
            .ok_or_else(|| Status::from(crate::ManagerError::NotInitialized))?;
        self.manager
            .propose(Command::SetJoinToken {
                role,
                token: JoinToken::generate(&digest).to_string(),
                at_ms: crate::now_ms(),
            })
            .await?;
        let cluster = self
            .manager
            .store()
            .read(|s| s.cluster.clone())
            .unwrap_or_default();
        Ok(Response::new(redact(cluster)))
    }

    pub(super) async fn update_cluster_here(
        &self,
        request: Request<UpdateClusterRequest>,
    ) -> Result<Response<Cluster>, Status> {
        let request = request.into_inner();
        if let Some(ms) = request.dispatcher_heartbeat_ms {
            if !(100..=3_600_000).contains(&ms) {
                return Err(Status::invalid_argument(format!(
                    "invalid --dispatcher-heartbeat {ms}ms: expected between 100ms and 1h"
                )));
            }
        }
        if let Some(limit) = request.task_history_limit {
            if limit > 100 {
                return Err(Status::invalid_argument(format!(
                    "invalid --task-history-limit {limit}: expected at most 100"
                )));
            }
        }
        if let Some(secs) = request.node_cert_expiry_secs {
            crate::ca_service::validate_cert_expiry(secs).map_err(Status::invalid_argument)?;
        }
        let provisioning = self.manager.store().read(|s| {
            crate::provisioning::settings::merge(
                s.cluster
                    .as_ref()
                    .and_then(|c| c.spec.as_ref())
                    .and_then(|spec| spec.node_provisioning.clone()),
                &request,
            )
        });
        let provisioning = provisioning.map_err(Status::invalid_argument)?;
        if request.set_bind_prefixes {
            crate::spec::mounts::validate_bind_prefixes(&request.bind_prefixes)
                .map_err(Status::invalid_argument)?;
        }
        let autolock = self.manager.store().read(|s| {
            s.cluster.as_ref().map(|c| {
                crate::raft::encryption::autolock_change(
                    c,
                    request.autolock,
                    request.rotate_unlock_key,
                )
            })
        });
        let autolock = match autolock {
            Some(change) => change.map_err(Status::failed_precondition)?,
            None => None,
        };
        // The root rotation first, as it is the one part refused by the
        // cluster's state (a rotation in progress): a refusal then leaves
        // everything as it was.
        if request.rotate_root_ca {
            self.start_root_rotation().await?;
        }
        if request.dispatcher_heartbeat_ms.is_some() || request.task_history_limit.is_some() {
            self.manager
                .propose(Command::UpdateClusterSpec {
                    dispatcher_heartbeat_ms: request.dispatcher_heartbeat_ms,
                    task_history_limit: request.task_history_limit,
                    at_ms: crate::now_ms(),
                })
                .await?;
        }
        if let Some(spec) = provisioning {
            self.manager
                .propose(Command::SetNodeProvisioning {
                    spec,
                    at_ms: crate::now_ms(),
                })
                .await?;
        }
        if let Some((enabled, unlock_key)) = autolock {
            self.manager
                .propose(Command::SetAutolock {
                    enabled,
                    unlock_key,
                    at_ms: crate::now_ms(),
                })
                .await?;
        }
        if request.set_bind_prefixes {
            self.manager
                .propose(Command::SetMountPolicy {
                    policy: shoal_proto::v1::MountPolicy {
                        bind_prefixes: request.bind_prefixes.clone(),
                    },
                    at_ms: crate::now_ms(),
                })
                .await?;
        }
        if let Some(secs) = request.node_cert_expiry_secs {
            self.manager
                .propose(Command::SetNodeCertExpiry {
                    secs,
                    at_ms: crate::now_ms(),
                })
                .await?;
        }
        let cluster = self
            .manager
            .store()
            .read(|s| s.cluster.clone())
            .unwrap_or_default();
        Ok(Response::new(redact(cluster)))
    }

    /// `swarm ca --rotate` on the leader: a new root and its cross-signed
    /// certificate (keys are random, so they are made here and not in the
    /// state machine), and join tokens naming the new root.
    async fn start_root_rotation(&self) -> Result<(), Status> {
        let cluster = self
            .manager
            .store()
            .read(|s| s.cluster.clone())
            .ok_or_else(|| Status::from(crate::ManagerError::NotInitialized))?;
        if cluster.root_rotation.is_some() {
            let (on_new, total) = self
                .manager
                .store()
                .read(crate::store::rotation::progress)
                .unwrap_or_default();
            return Err(Status::failed_precondition(format!(
                "a root CA rotation is already in progress ({on_new} of {total} nodes on the \
                 new root): wait for it to finish; a node that is down holds it up until it \
                 comes back or is removed with `shoal node rm`"
            )));
        }
        let current = cluster.root_ca.clone().unwrap_or_default();
        let current = shoal_security::RootCa {
            cert_pem: current.cert_pem,
            key_pem: current.key_pem,
        };
        let (new_root, cross_signed_pem) = current
            .successor(&cluster.id)
            .map_err(|e| Status::internal(format!("could not create the new root CA: {e}")))?;
        let digest = new_root.digest();
        let command = Command::StartRootRotation {
            rotation: shoal_proto::v1::RootRotation {
                new_root: Some(shoal_proto::v1::RootCa {
                    cert_pem: new_root.cert_pem.clone(),
                    key_pem: new_root.key_pem.clone(),
                    digest: digest.clone(),
                }),
                cross_signed_pem,
            },
            join_tokens: shoal_proto::v1::JoinTokens {
                worker: JoinToken::generate(&digest).to_string(),
                manager: JoinToken::generate(&digest).to_string(),
            },
            at_ms: crate::now_ms(),
        };
        self.manager.propose(command).await?;
        tracing::info!(new_root = %digest, "root CA rotation started");
        Ok(())
    }
}

/// The cluster object without the CA's private keys and the unlock key
/// (only `swarm unlock-key` on a manager's local socket shows it).
fn redact(mut cluster: Cluster) -> Cluster {
    if let Some(ca) = cluster.root_ca.as_mut() {
        ca.key_pem.clear();
    }
    cluster.unlock_key.clear();
    if let Some(ca) = cluster
        .root_rotation
        .as_mut()
        .and_then(|r| r.new_root.as_mut())
    {
        ca.key_pem.clear();
    }
    cluster
}
