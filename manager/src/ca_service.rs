//! The CA API: hands out the root CA certificate to anyone (joining nodes
//! verify it against their token), issues node certificates to callers
//! holding a valid join token, and renews the certificates of nodes that
//! prove who they are with their current one. Nothing is written unless the
//! token is valid.

use std::sync::Arc;
use std::time::Duration;

use shoal_proto::v1::ca_server::Ca;
use shoal_proto::v1::{
    GetRootCaCertificateRequest, GetRootCaCertificateResponse, IssueNodeCertificateRequest,
    IssueNodeCertificateResponse, ManagerMember, ManagerStatus, NodeCertificate, NodeRole,
    PromoteNodeRequest, RenewNodeCertificateRequest,
};
use shoal_security::{JoinToken, Role, RootCa};
use tonic::{Request, Response, Status};

use crate::store::Command;
use crate::Manager;

/// How long a forwarded call waits for an election to end.
const LEADER_PATIENCE: Duration = Duration::from_secs(3);

/// The shortest certificate lifetime an operator may set: an hour, as Swarm
/// (shorter lifetimes mean renewals every few minutes, and a manager outage
/// of minutes would let certificates expire).
pub const MIN_NODE_CERT_EXPIRY: Duration = Duration::from_secs(3600);
/// Lowers [`MIN_NODE_CERT_EXPIRY`] (in seconds) for the manager process that
/// reads it: tests run clusters through renewals in seconds. Not for production.
pub const MIN_CERT_EXPIRY_ENV: &str = "SHOAL_MIN_CERT_EXPIRY_SECS";
/// The longest: the root CA's own lifetime (20 years).
const MAX_NODE_CERT_EXPIRY: Duration = Duration::from_secs(20 * 365 * 24 * 3600);

/// Says what is wrong with a certificate lifetime an operator asked for.
pub fn validate_cert_expiry(secs: u64) -> Result<(), String> {
    let min = std::env::var(MIN_CERT_EXPIRY_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(MIN_NODE_CERT_EXPIRY);
    let asked = Duration::from_secs(secs);
    if asked < min || asked > MAX_NODE_CERT_EXPIRY {
        return Err(format!(
            "invalid --cert-expiry {secs}s: expected between {}s and {}s (20 years)",
            min.as_secs(),
            MAX_NODE_CERT_EXPIRY.as_secs()
        ));
    }
    Ok(())
}

/// Default node certificate lifetime: 90 days.
pub const DEFAULT_NODE_CERT_EXPIRY: Duration = Duration::from_secs(90 * 24 * 3600);

pub struct CaService {
    manager: Arc<Manager>,
}

impl CaService {
    pub fn new(manager: Arc<Manager>) -> Self {
        CaService { manager }
    }
}

/// A random node ID in Docker's form: 25 lowercase base-36 characters.
pub fn new_node_id() -> String {
    crate::new_id()
}

impl CaService {
    /// The swarm's root CA certificate, as this manager's replica holds it:
    /// the root that signs now (the new one during a rotation), which is
    /// the one the join tokens name.
    fn root_ca_pem(&self) -> Result<String, Status> {
        self.manager
            .store()
            .read(|s| {
                s.cluster
                    .as_ref()
                    .map(crate::store::rotation::signing_root)
                    .map(|ca| ca.cert_pem)
                    .filter(|pem| !pem.is_empty())
            })
            .ok_or_else(|| Status::from(crate::ManagerError::NotInitialized))
    }

    /// What every certificate answer carries besides the certificate.
    fn issued(
        &self,
        cluster: &shoal_proto::v1::Cluster,
        cert_pem: String,
        node_id: String,
        role: NodeRole,
    ) -> IssueNodeCertificateResponse {
        IssueNodeCertificateResponse {
            cert_pem,
            node_id,
            role: role as i32,
            cluster_id: cluster.id.clone(),
            managers: self.manager.manager_addrs(),
            raft: cluster.spec.as_ref().and_then(|s| s.raft),
            trust_bundle_pem: crate::store::rotation::trust_bundle(cluster),
            manager_members: self.manager.store().read(manager_members),
        }
    }
}

/// The managers as the store lists them.
pub fn manager_members(state: &crate::store::ClusterState) -> Vec<ManagerMember> {
    state
        .nodes
        .values()
        .filter(|n| n.role() == NodeRole::Manager)
        .filter_map(|n| {
            let status = n.manager_status.as_ref()?;
            Some(ManagerMember {
                node_id: n.id.clone(),
                raft_id: status.raft_id,
                addr: status.addr.clone(),
            })
        })
        .collect()
}

#[tonic::async_trait]
impl Ca for CaService {
    async fn get_root_ca_certificate(
        &self,
        _request: Request<GetRootCaCertificateRequest>,
    ) -> Result<Response<GetRootCaCertificateResponse>, Status> {
        Ok(Response::new(GetRootCaCertificateResponse {
            cert_pem: self.root_ca_pem()?,
        }))
    }

    async fn issue_node_certificate(
        &self,
        request: Request<IssueNodeCertificateRequest>,
    ) -> Result<Response<IssueNodeCertificateResponse>, Status> {
        // Whoever answers, nothing is done for a malformed request or a token
        // of another swarm: those are refused here, before a follower spends
        // a connection to the leader on them.
        let presented = JoinToken::parse(&request.get_ref().token)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if !presented.is_for_ca(&self.root_ca_pem()?) {
            return Err(Status::permission_denied(
                "invalid join token: it was made for another swarm's CA, or before \
                 `shoal swarm ca --rotate` replaced this swarm's; get the current \
                 token with `shoal swarm join-token worker` on one of its managers",
            ));
        }
        crate::worker_input::check_field(
            "hostname",
            &request.get_ref().hostname,
            crate::worker_input::MAX_HOSTNAME_BYTES,
        )?;
        // Issuing writes the node: only the leader can. A follower passes the
        // call on (the joining node need not know who leads).
        if !self.manager.is_leader() {
            let (_, addr) = self
                .manager
                .leader_addr(std::time::Duration::from_secs(3))
                .await?;
            let channel = self.manager.leader_channel().await?;
            return shoal_proto::v1::ca_client::CaClient::new(channel)
                .issue_node_certificate(request.into_inner())
                .await
                .map_err(|e| unreachable_leader(&addr, e));
        }
        let request = request.into_inner();
        let cluster = self
            .manager
            .store()
            .read(|s| s.cluster.clone())
            .ok_or_else(|| Status::from(crate::ManagerError::NotInitialized))?;
        let tokens = cluster.join_tokens.clone().unwrap_or_default();
        let matches = |stored: &str| JoinToken::parse(stored).is_ok_and(|t| t.matches(&presented));
        // Both comparisons always run, so timing does not tell which role matched.
        let (worker, manager) = (matches(&tokens.worker), matches(&tokens.manager));
        let role =
            match (worker, manager) {
                (true, _) => Role::Worker,
                (_, true) => Role::Manager,
                _ => return Err(Status::permission_denied(
                    "invalid join token: it does not match this swarm's worker or manager token \
                     (it may have been rotated); get the current one with \
                     `shoal swarm join-token worker` on a manager",
                )),
            };
        if role == Role::Manager
            && (request.raft_id == 0
                || request
                    .advertise_addr
                    .parse::<std::net::SocketAddr>()
                    .is_err())
        {
            return Err(Status::invalid_argument(
                "a joining manager must send its raft ID and its advertise address as IP:PORT",
            ));
        }
        let node_id = new_node_id();
        // Sign before writing anything: a bad CSR leaves the cluster unchanged.
        let (cert_pem, root_digest) =
            sign_node_certificate(&cluster, &request.csr_pem, &node_id, role)?;
        let now = crate::now_ms();
        let node_role = NodeRole::from(role);
        let node = crate::bootstrap::new_node(
            crate::bootstrap::NewNode {
                node_id: &node_id,
                hostname: &request.hostname,
                role: node_role,
                advertise_addr: &request.advertise_addr,
                raft_id: request.raft_id,
                cert_pem: &cert_pem,
                root_digest: &root_digest,
                message: "joined; waiting for its first session",
            },
            now,
        );
        self.manager.propose(Command::CreateNode(node)).await?;
        tracing::info!(node = %node_id, role = role.as_ou(), "issued a node certificate");
        Ok(Response::new(
            self.issued(&cluster, cert_pem, node_id, node_role),
        ))
    }

    async fn promote_node(
        &self,
        request: Request<PromoteNodeRequest>,
    ) -> Result<Response<IssueNodeCertificateResponse>, Status> {
        let peer = crate::auth::require_peer(
            &request,
            self.manager.store(),
            &[Role::Worker, Role::Manager],
        )?;
        if !self.manager.is_leader() {
            return Err(self.manager.not_leader_status().await);
        }
        let request = request.into_inner();
        let (node, cluster) = self
            .manager
            .store()
            .read(|s| (s.nodes.get(&peer.node_id).cloned(), s.cluster.clone()));
        let node =
            node.ok_or_else(|| Status::not_found(format!("No such node: {}", peer.node_id)))?;
        let cluster = cluster.ok_or_else(|| Status::from(crate::ManagerError::NotInitialized))?;
        let desired = node
            .spec
            .as_ref()
            .map(|s| s.desired_role())
            .unwrap_or_default();
        if desired != NodeRole::Manager || node.role() != NodeRole::Worker {
            return Err(Status::failed_precondition(format!(
                "node {} was not promoted: run `shoal node promote {}` on a manager",
                node.id, node.id
            )));
        }
        if request.raft_id == 0
            || request
                .advertise_addr
                .parse::<std::net::SocketAddr>()
                .is_err()
        {
            return Err(Status::invalid_argument(
                "a promoted node must send its raft ID and its advertise address as IP:PORT",
            ));
        }
        let (cert_pem, root_digest) =
            sign_node_certificate(&cluster, &request.csr_pem, &node.id, Role::Manager)?;
        self.manager
            .propose(Command::SetNodeRole {
                node_id: node.id.clone(),
                role: NodeRole::Manager,
                manager_status: Some(ManagerStatus {
                    raft_id: request.raft_id,
                    addr: request.advertise_addr.clone(),
                    ..Default::default()
                }),
                at_ms: crate::now_ms(),
            })
            .await?;
        self.record_certificate(&node.id, &cert_pem, &root_digest)
            .await;
        tracing::info!(node = %node.id, "issued a manager certificate to a promoted node");
        Ok(Response::new(self.issued(
            &cluster,
            cert_pem,
            node.id,
            NodeRole::Manager,
        )))
    }
    async fn renew_node_certificate(
        &self,
        request: Request<RenewNodeCertificateRequest>,
    ) -> Result<Response<IssueNodeCertificateResponse>, Status> {
        let store = self.manager.store();
        // Who is renewing: the caller itself, or — when a manager forwards
        // a node's renewal to the leader — the node that manager
        // authenticated. Only a (current) manager may speak for another node.
        let node_id = if request.get_ref().forwarded_for.is_empty() {
            crate::auth::require_peer(&request, store, &[Role::Worker, Role::Manager])?.node_id
        } else {
            crate::auth::require_peer(&request, store, &[Role::Manager])?;
            request.get_ref().forwarded_for.clone()
        };
        // The leader has the freshest role (a demotion is decided there), so
        // a follower passes the call on.
        if !self.manager.is_leader() {
            if !request.get_ref().forwarded_for.is_empty() {
                return Err(self.manager.not_leader_status().await);
            }
            let (_, addr) = self.manager.leader_addr(LEADER_PATIENCE).await?;
            let channel = self.manager.leader_channel().await?;
            let mut forwarded = request.into_inner();
            forwarded.forwarded_for = node_id;
            return shoal_proto::v1::ca_client::CaClient::new(channel)
                .renew_node_certificate(forwarded)
                .await
                .map_err(|e| unreachable_leader(&addr, e));
        }
        let (node, cluster, removed) = store.read(|s| {
            (
                s.nodes.get(&node_id).cloned(),
                s.cluster.clone(),
                s.is_removed(&node_id),
            )
        });
        let cluster = cluster.ok_or_else(|| Status::from(crate::ManagerError::NotInitialized))?;
        let node = node.filter(|_| !removed).ok_or_else(|| {
            Status::permission_denied(format!(
                "node {node_id} is not part of this swarm (it was removed): \
                 run `shoal swarm leave` on it and join again"
            ))
        })?;
        let role = Role::from(node.role());
        let (cert_pem, root_digest) =
            sign_node_certificate(&cluster, &request.get_ref().csr_pem, &node.id, role)?;
        self.record_certificate(&node.id, &cert_pem, &root_digest)
            .await;
        tracing::info!(node = %node.id, role = role.as_ou(), "renewed a node certificate");
        let node_role = node.role();
        Ok(Response::new(
            self.issued(&cluster, cert_pem, node.id, node_role),
        ))
    }
}

impl CaService {
    /// Records the validity and root of a certificate just issued, for
    /// `node ls` and a root rotation's progress. Best effort: the node
    /// needs its certificate more than the record (a rotation then waits
    /// for its next renewal).
    async fn record_certificate(&self, node_id: &str, cert_pem: &str, root_digest: &str) {
        let Some(certificate) = certificate_record(cert_pem, root_digest) else {
            return;
        };
        let command = Command::SetNodeCertificate {
            node_id: node_id.to_string(),
            certificate,
        };
        if let Err(e) = self.manager.propose(command).await {
            tracing::warn!(node = %node_id, error = %e, "could not record a certificate's validity");
        }
    }
}

/// The validity of `cert_pem` as stored on its node (and shown by `info`).
pub fn validity_of(cert_pem: &str) -> Option<NodeCertificate> {
    let validity = shoal_security::renewal::Validity::of_pem(cert_pem).ok()?;
    let ms = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default()
    };
    Some(NodeCertificate {
        not_before_ms: ms(validity.not_before),
        not_after_ms: ms(validity.not_after),
        root_digest: String::new(),
    })
}

/// The record of a certificate issued by the root with `root_digest`.
pub fn certificate_record(cert_pem: &str, root_digest: &str) -> Option<NodeCertificate> {
    validity_of(cert_pem).map(|mut record| {
        record.root_digest = root_digest.to_string();
        record
    })
}

/// A forwarded call that failed in transport names the leader it tried.
fn unreachable_leader(addr: &str, status: Status) -> Status {
    if status.code() == tonic::Code::Unavailable && status.metadata().is_empty() {
        Status::unavailable(format!(
            "cannot reach the leader at {addr}: {}",
            status.message()
        ))
    } else {
        status
    }
}

/// Signs a node certificate with the cluster's signing root (the new one
/// during a rotation, followed by its cross-signed certificate) and
/// certificate lifetime; returns it with the signing root's digest. A bad
/// CSR is the caller's error, and nothing has been written.
fn sign_node_certificate(
    cluster: &shoal_proto::v1::Cluster,
    csr_pem: &str,
    node_id: &str,
    role: Role,
) -> Result<(String, String), Status> {
    let root = crate::store::rotation::signing_root(cluster);
    let cross_signed = crate::store::rotation::cross_signed(cluster);
    let digest = root.digest.clone();
    let ca = RootCa {
        cert_pem: root.cert_pem,
        key_pem: root.key_pem,
    };
    let expiry = cluster
        .spec
        .as_ref()
        .map(|s| s.node_cert_expiry_secs)
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_NODE_CERT_EXPIRY);
    ca.sign_node_chain(
        csr_pem,
        node_id,
        role,
        &cluster.id,
        expiry,
        cross_signed.as_deref(),
    )
    .map(|pem| (pem, digest))
    .map_err(|e| Status::invalid_argument(e.to_string()))
}

/// The host part of `HOST[:PORT]` (node addresses are shown without port).
pub fn host_of(addr: &str) -> String {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(socket) => socket.ip().to_string(),
        Err(_) => addr.to_string(),
    }
}
