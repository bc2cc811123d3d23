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
//! - [`pem`]: a certificate's DER and its digest, as tokens carry it.
//! - [`error`]: the one error type, `SecurityError`.
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
pub mod error;
pub mod files;
pub mod identity;
pub mod join;
pub mod pem;
pub mod renewal;
pub mod shared;
pub mod tls;
pub mod token;

pub use ca::RootCa;
pub use error::SecurityError;
pub use identity::{NodeKey, PeerIdentity, Role, MANAGER_SERVER_NAME};
pub use shared::SharedCredentials;
pub use token::JoinToken;
