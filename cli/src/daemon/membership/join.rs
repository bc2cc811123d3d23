//! `swarm join`: verify the manager's CA against the token
//! ([`shoal_security::join`]), get a certificate (the token decides the
//! role), then run the agent — and, for a manager token, join the Raft
//! group first. Also how a node follows leader hints ([`call_leader`]).

use super::*;
use crate::daemon::addresses::{advertise_ip, bind, normalize_remote_addr, parse_listen_addr};
use shoal_security::join::{self, trusted_bundle, JoinCaError};
use tonic::Status;

/// A `swarm join` gives up after this long, well inside the 15 s an operator
/// is promised an answer in.
const JOIN_TIMEOUT: Duration = Duration::from_secs(12);
const JOIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Membership {
    /// `swarm join`: verify the manager's CA against the token, get a
    /// certificate (the token decides the role), then run the agent — and,
    /// for a manager token, join the Raft group first.
    pub async fn join(&self, request: JoinRequest) -> Result<JoinResponse, MembershipError> {
        let mut active = self.active.lock().await;
        if active.is_some() {
            return Err(MembershipError::not_now(ALREADY_IN_SWARM));
        }
        if self.is_locked() {
            return Err(MembershipError::not_now(LOCKED));
        }
        let token = JoinToken::parse(&request.token)
            .map_err(|e| MembershipError::bad_input(e.to_string()))?;
        let remote = normalize_remote_addr(&request.remote_addr)?;
        if !request.advertise_addr.is_empty()
            && request.advertise_addr.parse::<SocketAddr>().is_err()
            && request.advertise_addr.parse::<IpAddr>().is_err()
        {
            return Err(MembershipError::bad_input(format!(
                "invalid --advertise-addr {:?}: expected IP[:PORT], e.g. 192.168.1.10",
                request.advertise_addr
            )));
        }
        // The token alone does not say whether it makes a manager, and a
        // manager must announce the address it listens on: bind first. A
        // worker needs no listener, so a busy port only matters for managers.
        let listen = parse_listen_addr(&request.listen_addr)?;
        let bound = bind(&listen.to_string()).await;
        let (listener, advertise, bind_error) = match bound {
            Ok(listener) => {
                let port = listener
                    .local_addr()
                    .map(|a| a.port())
                    .unwrap_or(listen.port());
                let ip = advertise_ip(&request.advertise_addr, listen, &remote);
                (
                    Some(listener),
                    ip.map(|ip| SocketAddr::new(ip, port).to_string()),
                    None,
                )
            }
            Err(e) => (None, None, Some(e)),
        };
        let raft_id = rand_u64();
        let attempt = JoinAttempt {
            token: &token,
            remote: &remote,
            advertise_addr: advertise
                .clone()
                .unwrap_or_else(|| request.advertise_addr.clone()),
            // Without a listener this node cannot be a manager: sending no
            // Raft ID makes the CA refuse a manager token before writing anything.
            raft_id: if listener.is_some() { raft_id } else { 0 },
        };
        let issued = tokio::time::timeout(JOIN_TIMEOUT, self.fetch_certificate(&attempt))
            .await
            .map_err(|_| {
                MembershipError::timed_out(format!(
                    "the manager at {remote} did not answer within {} s: check the address and that \
                     a shoal manager listens there",
                    JOIN_TIMEOUT.as_secs()
                ))
            })?;
        let (credentials, response) = match (issued, bind_error) {
            (Ok(issued), _) => issued,
            (Err(MembershipError::Remote(status)), Some(bind_error))
                if status.code() == tonic::Code::InvalidArgument =>
            {
                return Err(MembershipError::not_now(format!(
                    "{bind_error} (a manager token needs a listening address)"
                )))
            }
            (Err(e), _) => return Err(e),
        };

        let managers = if response.managers.is_empty() {
            vec![remote.clone()]
        } else {
            response.managers.clone()
        };
        let role = response.role();
        let mut record = MembershipRecord {
            node_id: response.node_id.clone(),
            cluster_id: response.cluster_id.clone(),
            role: Role::Worker,
            raft_id: None,
            listen_addr: None,
            advertise_addr: request.advertise_addr.clone(),
            managers,
            manager_ids: response
                .manager_members
                .iter()
                .map(|m| m.node_id.clone())
                .collect(),
            raft: None,
        };
        let shared = SharedCredentials::new(credentials.clone());
        let mut running_manager = None;
        if role == NodeRole::Manager {
            let (Some(listener), Some(advertise)) = (listener, advertise) else {
                // Unreachable: without both the CA refuses a manager token.
                return Err(MembershipError::local(
                    "a manager certificate was issued to a node without a listener",
                ));
            };
            record.role = Role::Manager;
            record.raft_id = Some(raft_id);
            record.listen_addr = listener.local_addr().ok().map(|a| a.to_string());
            record.advertise_addr = advertise.clone();
            record.raft = response.raft;
            let founding = founding_managers(&response.manager_members);
            match self
                .join_raft(&record, &shared, listener, &remote, founding)
                .await
            {
                Ok((running, managers)) => {
                    record.managers = managers;
                    running_manager = Some(running);
                }
                Err(e) => {
                    self.wipe();
                    return Err(e);
                }
            }
        }
        let saved = self.commit(&credentials, &record);
        if let Err(e) = saved {
            if let Some(running) = running_manager {
                *self.manager.write().expect("manager lock") = None;
                running.stop().await;
            }
            self.wipe();
            return Err(MembershipError::local(format!(
                "could not record the swarm membership: {e}"
            )));
        }
        let agent = self.spawn_agent(&record, shared.clone()).await;
        *active = Some(Active {
            record,
            credentials: shared,
            manager: running_manager,
            agent,
        });
        tracing::info!(node = %response.node_id, role = ?role, "joined the swarm");
        Ok(JoinResponse {
            node_id: response.node_id,
            role: role as i32,
        })
    }

    /// Starts this node's manager on `listener` and asks the leader to add it
    /// to the Raft group; on failure the manager is stopped again.
    pub(super) async fn join_raft(
        &self,
        record: &MembershipRecord,
        credentials: &SharedCredentials,
        listener: TcpListener,
        remote: &str,
        founding: BTreeMap<String, u64>,
    ) -> Result<(RunningManager, Vec<String>), MembershipError> {
        // A joining manager's store starts under a key-file KEK; its key
        // follower re-wraps it with the unlock key once the cluster object
        // arrives, if autolock is on.
        let config = self
            .manager_config(record, credentials, None, founding)
            .map_err(|e| MembershipError::local(e.to_string()))?;
        let manager = Manager::open(config).await.map_err(MembershipError::from)?;
        let running = self.serve_manager(manager, listener);
        let joined = self
            .ask_leader_to_join(
                &credentials.current(),
                remote,
                record.raft_id.unwrap_or_default(),
                &record.advertise_addr,
            )
            .await;
        match joined {
            Ok(managers) => Ok((running, managers)),
            Err(e) => {
                *self.manager.write().expect("manager lock") = None;
                running.stop().await;
                Err(e)
            }
        }
    }

    async fn ask_leader_to_join(
        &self,
        credentials: &NodeCredentials,
        remote: &str,
        raft_id: u64,
        advertise: &str,
    ) -> Result<Vec<String>, MembershipError> {
        let (managers, _) = call_leader(remote, credentials, |channel| {
            let request = JoinClusterRequest {
                raft_id,
                addr: advertise.to_string(),
            };
            async move {
                RaftClient::new(channel)
                    .join_cluster(request)
                    .await
                    .map(|reply| reply.into_inner().managers)
            }
        })
        .await?;
        Ok(if managers.is_empty() {
            vec![advertise.to_string()]
        } else {
            managers
        })
    }

    async fn fetch_certificate(
        &self,
        attempt: &JoinAttempt<'_>,
    ) -> Result<
        (
            NodeCredentials,
            shoal_proto::v1::IssueNodeCertificateResponse,
        ),
        MembershipError,
    > {
        let (token, remote) = (attempt.token, attempt.remote);
        let unreachable = |e: &dyn std::fmt::Display| {
            MembershipError::unreachable(format!(
                "cannot reach a shoal manager at {remote}: {e}: check the address and that the manager is running"
            ))
        };
        // First contact trusts nothing: fetch the CA, then check its digest.
        let ca_pem = join::fetch_verified_ca(remote, token, JOIN_CONNECT_TIMEOUT)
            .await
            .map_err(|e| match e {
                JoinCaError::Unreachable { .. } => MembershipError::unreachable(e.to_string()),
                JoinCaError::Unreadable { .. } => MembershipError::not_now(e.to_string()),
                JoinCaError::WrongCa { .. } => MembershipError::wrong_ca(e.to_string()),
            })?;
        // From here on the manager is authenticated by the CA the token names.
        let key = NodeKey::generate().map_err(|e| MembershipError::local(e.to_string()))?;
        let csr = key
            .csr(&self.config.hostname)
            .map_err(|e| MembershipError::local(e.to_string()))?;
        let endpoint = tls::endpoint(remote, JOIN_CONNECT_TIMEOUT)
            .map_err(|e| MembershipError::bad_input(e.to_string()))?
            .tls_config(tls::ca_only_client_config(&ca_pem))
            .map_err(|e| MembershipError::local(e.to_string()))?;
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| unreachable(&shoal_security::tls::error_chain(&e)))?;
        let response = CaClient::new(channel)
            .issue_node_certificate(IssueNodeCertificateRequest {
                csr_pem: csr,
                token: token.to_string(),
                hostname: self.config.hostname.clone(),
                advertise_addr: attempt.advertise_addr.clone(),
                raft_id: attempt.raft_id,
            })
            .await?
            .into_inner();
        Ok((
            NodeCredentials {
                // The bundle came over a connection verified against the
                // root the token names; it adds the previous root during
                // a rotation.
                ca_pem: trusted_bundle(&ca_pem, &response.trust_bundle_pem),
                cert_pem: response.cert_pem.clone(),
                key_pem: key.key_pem(),
            },
            response,
        ))
    }
}

/// The managers a join response named, as a new manager admits them
/// before it has state.
pub(super) fn founding_managers(
    members: &[shoal_proto::v1::ManagerMember],
) -> BTreeMap<String, u64> {
    members
        .iter()
        .map(|m| (m.node_id.clone(), m.raft_id))
        .collect()
}

/// What a join sends to the CA.
pub(super) struct JoinAttempt<'a> {
    token: &'a JoinToken,
    remote: &'a str,
    advertise_addr: String,
    raft_id: u64,
}

/// Calls a manager, starting with the one at `first`, and while the answer
/// is "not the leader" with a hint, calls the leader it names (at most five
/// hops: leadership may move while we follow it). Returns the answer and
/// the address of the manager that gave it.
pub(super) async fn call_leader<T, F, Fut>(
    first: &str,
    credentials: &NodeCredentials,
    mut call: F,
) -> Result<(T, String), MembershipError>
where
    F: FnMut(tonic::transport::Channel) -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    let mut target = first.to_string();
    for _ in 0..5 {
        let channel = tls::endpoint(&target, JOIN_CONNECT_TIMEOUT)
            .map_err(|e| MembershipError::bad_input(e.to_string()))?
            .tls_config(tls::client_config(credentials))
            .map_err(|e| MembershipError::local(e.to_string()))?
            .connect()
            .await
            .map_err(|e| {
                MembershipError::unreachable(format!("cannot reach the manager at {target}: {e}"))
            })?;
        match call(channel).await {
            Ok(value) => return Ok((value, target)),
            Err(status) if status.code() == tonic::Code::Unavailable => {
                match status
                    .metadata()
                    .get(LEADER_HINT)
                    .and_then(|v| v.to_str().ok())
                {
                    Some(leader) => target = leader.to_string(),
                    None => return Err(status.into()),
                }
            }
            Err(status) => return Err(status.into()),
        }
    }
    Err(MembershipError::unreachable(
        "the leader kept changing while we followed it: retry",
    ))
}
