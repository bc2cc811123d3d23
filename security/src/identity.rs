//! A node's own key pair and CSR, and the identity a peer's certificate
//! proves: node ID (CN), role (OU) and cluster ID (O).

use rcgen::{CertificateParams, DnType, KeyPair};
use shoal_proto::v1::NodeRole;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::SecurityError;

/// The DNS name every manager certificate carries and every client checks;
/// node certificates identify nodes by ID, not by address, so addresses can change.
pub const MANAGER_SERVER_NAME: &str = "shoal-manager";

/// A node's role: the workspace's one role type off the wire, as written in
/// its certificate (OU) and in the daemon's `state.json` (`"manager"`,
/// `"worker"`). The wire keeps proto's `NodeRole`; the conversions below are
/// the one place the two meet. (The scheduler keeps its own: it depends on
/// no other crate, by design.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Manager,
    Worker,
}

impl From<NodeRole> for Role {
    fn from(role: NodeRole) -> Role {
        match role {
            NodeRole::Manager => Role::Manager,
            NodeRole::Worker => Role::Worker,
        }
    }
}

impl From<Role> for NodeRole {
    fn from(role: Role) -> NodeRole {
        match role {
            Role::Manager => NodeRole::Manager,
            Role::Worker => NodeRole::Worker,
        }
    }
}

impl Role {
    pub fn as_ou(self) -> &'static str {
        match self {
            Role::Manager => "shoal-manager",
            Role::Worker => "shoal-worker",
        }
    }

    fn from_ou(ou: &str) -> Option<Role> {
        match ou {
            "shoal-manager" => Some(Role::Manager),
            "shoal-worker" => Some(Role::Worker),
            _ => None,
        }
    }
}

/// A freshly generated ECDSA P-256 node key.
pub struct NodeKey {
    key: KeyPair,
}

impl NodeKey {
    pub fn generate() -> Result<Self, SecurityError> {
        Ok(NodeKey {
            key: KeyPair::generate().map_err(SecurityError::cert("generating a node key"))?,
        })
    }

    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A CSR proving possession of this key. The subject is informative only:
    /// the CA decides the node's identity.
    pub fn csr(&self, hostname: &str) -> Result<String, SecurityError> {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, hostname);
        params
            .serialize_request(&self.key)
            .and_then(|csr| csr.pem())
            .map_err(SecurityError::cert("writing a certificate signing request"))
    }
}

/// Who is on the other end of a mutual-TLS connection, read from the leaf
/// certificate that the TLS layer already verified against the cluster CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    pub node_id: String,
    pub role: Role,
    pub cluster_id: String,
}

impl PeerIdentity {
    pub fn from_der(der: &[u8]) -> Result<Self, SecurityError> {
        let bad = |reason: String| SecurityError::BadCertificate {
            what: "of the peer",
            reason,
        };
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
        let subject = cert.subject();
        let first = |attrs: Vec<&x509_parser::x509::AttributeTypeAndValue>| {
            attrs
                .first()
                .and_then(|a| a.as_str().ok())
                .map(str::to_string)
        };
        let node_id = first(subject.iter_common_name().collect())
            .ok_or_else(|| bad("no common name".into()))?;
        let ou = first(subject.iter_organizational_unit().collect())
            .ok_or_else(|| bad("no organizational unit".into()))?;
        let role = Role::from_ou(&ou).ok_or_else(|| bad(format!("unknown role {ou:?}")))?;
        let cluster_id = first(subject.iter_organization().collect())
            .ok_or_else(|| bad("no organization".into()))?;
        Ok(PeerIdentity {
            node_id,
            role,
            cluster_id,
        })
    }

    pub fn from_pem(pem: &str) -> Result<Self, SecurityError> {
        Self::from_der(&crate::pem::first_cert_der(pem)?)
    }
}
