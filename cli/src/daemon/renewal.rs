//! Keeps this node's certificate fresh: renews it over the node's current
//! mutual-TLS identity at a random 50–80 % of its lifetime
//! (`shoal_security::renewal` decides when), and at once when the node holds
//! a certificate of a role it no longer has (a demoted manager gets a
//! worker certificate; the manager one is overwritten).
//!
//! The new credentials are saved (all three files as one set) and swapped
//! into the node's `SharedCredentials`: the listener and every client pick
//! them up for their next connection, open connections stay. Nothing
//! restarts. Level-triggered: each pass looks at the certificate the node
//! holds now, so a promotion's new certificate or a restart mid-way needs no
//! special case.
//!
//! It also follows a root CA rotation as the session announces it
//! (`shoal_security::renewal::trust_action`): a certificate of another root
//! than the signing one is renewed at once (the answer brings the bundle
//! of both roots), and once the rotation is over the bundle without the old
//! root replaces the node's trust — no restart either way.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use shoal_proto::v1::ca_client::CaClient;
use shoal_proto::v1::RenewNodeCertificateRequest;
use shoal_security::files::NodeCredentials;
use shoal_security::renewal::{self, Renewal, TrustAction, Validity};
use shoal_security::{tls, NodeKey, PeerIdentity};

use super::membership::{Membership, RenewalView};
use super::state::Role;

/// How often the loop looks again while nothing is due: the upper bound on
/// how late a renewal (or a demoted node's new certificate) happens.
const PASS: Duration = Duration::from_secs(1);
/// A renewal call gives up after this long and is retried later.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs for the daemon's lifetime.
pub async fn run(node: Arc<Membership>, hostname: String, data_dir: std::path::PathBuf) {
    // The random fraction is drawn once per certificate (keyed by its PEM),
    // so the renewal moment of one certificate does not move between passes.
    let mut fraction: Option<(String, f64)> = None;
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::time::sleep(PASS).await;
        if retry_at.is_some_and(|at| tokio::time::Instant::now() < at) {
            continue;
        }
        let Some(view) = node.renewal_view().await else {
            continue;
        };
        let current = view.credentials.current();
        let Ok(validity) = Validity::of_pem(&current.cert_pem) else {
            tracing::error!("this node's certificate cannot be read; it cannot be renewed");
            continue;
        };
        let trust = view
            .announced_trust
            .as_ref()
            .map(|t| renewal::trust_action(&current.cert_pem, &current.ca_pem, t))
            .unwrap_or(TrustAction::Nothing);
        if let TrustAction::Trust(bundle) = &trust {
            let trusting = NodeCredentials {
                ca_pem: bundle.clone(),
                ..(*current).clone()
            };
            match view
                .credentials
                .install_if_current(&current.cert_pem, trusting, &data_dir)
            {
                Ok(true) => tracing::info!(
                    roots = shoal_security::ca::split_pem(bundle).len(),
                    "now trusting the root CAs the swarm announced"
                ),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "could not save the announced root CAs"),
            }
            continue;
        }
        let rotating = trust == TrustAction::Renew;
        let wrong_role = wrong_role(&current.cert_pem, view.role);
        let this_fraction = match &fraction {
            Some((pem, f)) if *pem == current.cert_pem => *f,
            _ => {
                let f = renewal::renewal_fraction(rand::random::<f64>());
                fraction = Some((current.cert_pem.clone(), f));
                f
            }
        };
        let decision = renewal::decide(
            &validity,
            this_fraction,
            view.configured_lifetime,
            SystemTime::now(),
        );
        if !wrong_role && !rotating && decision != Renewal::Now {
            continue;
        }
        match renew(&view, &current, &hostname, &data_dir).await {
            Ok(true) => {
                retry_at = None;
                tracing::info!(
                    reason = if wrong_role {
                        "role changed"
                    } else if rotating {
                        "root CA rotation"
                    } else {
                        "renewal window"
                    },
                    "renewed this node's certificate"
                );
            }
            Ok(false) => {
                retry_at = None;
                tracing::debug!("the certificate changed during renewal; looking again");
            }
            Err(e) => {
                let delay = renewal::retry_delay(&validity);
                retry_at = Some(tokio::time::Instant::now() + delay);
                tracing::warn!(error = %e, retry_in = ?delay, "could not renew this node's certificate");
            }
        }
    }
}

/// Whether the certificate is for another role than the node has: a
/// manager certificate on a node that now runs as a worker (demoted).
fn wrong_role(cert_pem: &str, role: Role) -> bool {
    matches!(
        (PeerIdentity::from_pem(cert_pem).map(|p| p.role), role),
        (Ok(shoal_security::Role::Manager), Role::Worker)
    )
}

/// One renewal: a new key, a CSR, a call to the managers in turn, then the
/// new set saved and swapped in unless the certificate changed meanwhile.
async fn renew(
    view: &RenewalView,
    current: &NodeCredentials,
    hostname: &str,
    data_dir: &std::path::Path,
) -> anyhow::Result<bool> {
    let key = NodeKey::generate()?;
    let csr = key.csr(hostname)?;
    let mut failures = Vec::new();
    for addr in &view.managers {
        let call = async {
            let channel = tls::connect_to_manager(
                addr,
                CONNECT_TIMEOUT,
                &view.credentials,
                &view.known_managers,
            )
            .await?;
            let response = CaClient::new(channel)
                .renew_node_certificate(RenewNodeCertificateRequest {
                    csr_pem: csr.clone(),
                    forwarded_for: String::new(),
                })
                .await?;
            anyhow::Ok(response.into_inner())
        };
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(response)) => {
                // The answer came from a manager this node verified: its
                // bundle (both roots during a rotation) is the trust to keep.
                let ca_pem = if response.trust_bundle_pem.is_empty() {
                    current.ca_pem.clone()
                } else {
                    response.trust_bundle_pem
                };
                let renewed = NodeCredentials {
                    ca_pem,
                    cert_pem: response.cert_pem,
                    key_pem: key.key_pem(),
                };
                return Ok(view.credentials.install_if_current(
                    &current.cert_pem,
                    renewed,
                    data_dir,
                )?);
            }
            Ok(Err(e)) => failures.push(format!("{addr}: {e:#}")),
            Err(_) => failures.push(format!("{addr}: no answer within {CALL_TIMEOUT:?}")),
        }
    }
    anyhow::bail!("no manager renewed it ({})", failures.join("; "))
}
