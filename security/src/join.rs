//! The first step of `swarm join`, which trusts nothing yet: fetch the
//! manager's root CA over an unverified connection and accept it only if
//! its digest is the one the join token names. From then on the manager is
//! authenticated by that root ([`crate::tls::ca_only_client_config`]).

use std::time::Duration;

use shoal_proto::v1::ca_client::CaClient;
use shoal_proto::v1::GetRootCaCertificateRequest;

use crate::{tls, JoinToken};

/// Why the manager's CA was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum JoinCaError {
    #[error("cannot reach a shoal manager at {remote}: {message}: check the address and that the manager is running")]
    Unreachable { remote: String, message: String },
    #[error("the manager at {remote} sent an unreadable CA: {message}")]
    Unreadable { remote: String, message: String },
    #[error(
        "the manager at {remote} does not hold the CA this token was issued for \
         (token expects CA digest {expected}…, manager has {found}…): the token belongs to another \
         swarm, was replaced by `shoal swarm ca --rotate` (get the current one with \
         `shoal swarm join-token`), or something between you and the manager is \
         impersonating it"
    )]
    WrongCa {
        remote: String,
        expected: String,
        found: String,
    },
}

/// The root CA (PEM) of the manager at `remote`, verified against `token`.
pub async fn fetch_verified_ca(
    remote: &str,
    token: &JoinToken,
    connect_timeout: Duration,
) -> Result<String, JoinCaError> {
    let unreachable = |message: String| JoinCaError::Unreachable {
        remote: remote.to_string(),
        message,
    };
    let channel = tls::unverified_channel(remote, connect_timeout)
        .await
        .map_err(|e| unreachable(tls::error_chain(&e)))?;
    let ca_pem = CaClient::new(channel)
        .get_root_ca_certificate(GetRootCaCertificateRequest {})
        .await
        .map_err(|s| unreachable(s.message().to_string()))?
        .into_inner()
        .cert_pem;
    verify_ca(remote, &ca_pem, token)?;
    Ok(ca_pem)
}

/// Whether `ca_pem` is the root `token` names (pure).
pub fn verify_ca(remote: &str, ca_pem: &str, token: &JoinToken) -> Result<(), JoinCaError> {
    let digest = crate::pem::digest_of_pem(ca_pem).map_err(|e| JoinCaError::Unreadable {
        remote: remote.to_string(),
        message: e.to_string(),
    })?;
    if digest != token.ca_digest {
        return Err(JoinCaError::WrongCa {
            remote: remote.to_string(),
            expected: token.ca_digest.chars().take(12).collect(),
            found: digest.chars().take(12).collect(),
        });
    }
    Ok(())
}

/// The roots to trust after a certificate answer: the bundle it carried if
/// it holds the root this node verified (`verified_pem`), else that root.
/// A manager of an older release sends no bundle.
pub fn trusted_bundle(verified_pem: &str, bundle_pem: &str) -> String {
    let verified = crate::ca::split_pem(verified_pem);
    let bundle = crate::ca::split_pem(bundle_pem);
    if !bundle.is_empty() && verified.iter().any(|root| bundle.contains(root)) {
        bundle_pem.to_string()
    } else {
        verified_pem.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RootCa;

    #[test]
    fn only_the_root_the_token_names_is_accepted() {
        let root = RootCa::generate("c1").unwrap();
        let other = RootCa::generate("c2").unwrap();
        let token = JoinToken::generate(&root.digest());
        assert!(verify_ca("m:2377", &root.cert_pem, &token).is_ok());
        let refused = verify_ca("m:2377", &other.cert_pem, &token).unwrap_err();
        assert!(matches!(refused, JoinCaError::WrongCa { .. }));
        assert!(refused.to_string().contains("does not hold the CA"));
        assert!(matches!(
            verify_ca("m:2377", "not a pem", &token),
            Err(JoinCaError::Unreadable { .. })
        ));
    }

    #[test]
    fn a_bundle_is_trusted_only_when_it_holds_the_verified_root() {
        let root = RootCa::generate("c1").unwrap();
        let other = RootCa::generate("c2").unwrap();
        let bundle = format!("{}{}", root.cert_pem, other.cert_pem);
        assert_eq!(trusted_bundle(&root.cert_pem, &bundle), bundle);
        assert_eq!(
            trusted_bundle(&root.cert_pem, &other.cert_pem),
            root.cert_pem
        );
        assert_eq!(trusted_bundle(&root.cert_pem, ""), root.cert_pem);
    }
}
