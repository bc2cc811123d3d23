//! shoal's cluster PKI, shared by managers (which sign) and every node (which
//! joins and then talks only mutual TLS).
//!
//! It owns the cryptography: the root CA, node keys, CSRs and certificates,
//! join tokens, and the TLS configuration of every connection between nodes.
//! It knows nothing about the store or the daemon: managers decide *whether*
//! to issue a certificate, this crate only says how.
//!
//! # Layout
//! - [`ca`]: the root CA (ECDSA P-256) and node certificate issuance.
//! - [`identity`]: a node's own key, CSR and the identity read off a peer certificate.
//! - [`token`]: join tokens `SHTKN-1-<CA digest>-<secret>`.
//! - [`tls`]: rustls/tonic configuration for servers and clients, including the
//!   one unverified connection used to fetch the root CA while joining.
//! - [`join`]: the CA fetch of `swarm join`, verified against the token.
//! - [`files`]: a node's credentials on disk.
//! - [`shared`]: the credentials a running node uses, swapped on renewal.
//! - [`renewal`]: when to renew a certificate, and when to warn about one.

#![forbid(unsafe_code)]

pub mod ca;
pub mod files;
pub mod identity;
pub mod join;
pub mod renewal;
pub mod shared;
pub mod tls;
pub mod token;

pub use ca::RootCa;
pub use identity::{NodeKey, PeerIdentity, Role};
pub use shared::SharedCredentials;
pub use token::JoinToken;

/// Errors of the PKI layer. Messages name the thing that was wrong.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("certificate operation failed while {operation}: {source}")]
    Certificate {
        operation: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("{0}")]
    InvalidToken(String),
    #[error("cannot read the certificate {what}: {reason}")]
    BadCertificate { what: &'static str, reason: String },
    #[error("TLS configuration failed: {0}")]
    Tls(String),
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl SecurityError {
    pub(crate) fn cert(operation: &'static str) -> impl FnOnce(rcgen::Error) -> Self {
        move |source| SecurityError::Certificate { operation, source }
    }
}

/// The DNS name every manager certificate carries and every client checks;
/// node certificates identify nodes by ID, not by address, so addresses can change.
pub const MANAGER_SERVER_NAME: &str = "shoal-manager";
