//! When a node renews its certificate, and when a certificate deserves a
//! warning. Pure functions of the certificate's validity, a random fraction
//! and `now`; the daemon's renewal loop carries them out.
//!
//! The rule is Swarm's: renew at a random point between 50 % and 80 % of the
//! certificate's lifetime. Halfway leaves as much time again to retry if the
//! managers cannot be reached; the random spread keeps a cluster whose nodes
//! joined together from renewing all at once.

use std::time::{Duration, SystemTime};

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::SecurityError;

/// The renewal window, as fractions of the lifetime.
pub const RENEW_FROM: f64 = 0.5;
pub const RENEW_UNTIL: f64 = 0.8;
/// Less than this fraction of its lifetime left: `node ls` and `info` warn.
pub const WARN_BELOW: f64 = 0.1;

/// A certificate's validity period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    pub fn of_pem(pem: &str) -> Result<Self, SecurityError> {
        let der = crate::pem::first_cert_der(pem)?;
        let (_, cert) =
            X509Certificate::from_der(&der).map_err(|e| SecurityError::BadCertificate {
                what: "of this node",
                reason: e.to_string(),
            })?;
        let at = |t: x509_parser::time::ASN1Time| {
            let secs = t.timestamp();
            if secs >= 0 {
                SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
            } else {
                SystemTime::UNIX_EPOCH
            }
        };
        Ok(Validity {
            not_before: at(cert.validity().not_before),
            not_after: at(cert.validity().not_after),
        })
    }

    pub fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or_default()
    }

    /// Time left at `now` (zero once expired).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.not_after.duration_since(now).unwrap_or_default()
    }

    /// The moment `fraction` of the lifetime has passed.
    fn at_fraction(&self, fraction: f64) -> SystemTime {
        self.not_before + self.lifetime().mul_f64(fraction.clamp(0.0, 1.0))
    }
}

/// A renewal fraction in the window, from a uniform random `unit` in [0, 1).
pub fn renewal_fraction(unit: f64) -> f64 {
    RENEW_FROM + (RENEW_UNTIL - RENEW_FROM) * unit.clamp(0.0, 1.0)
}

/// What the renewal loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Nothing to do for this long.
    Wait(Duration),
    /// Renew now.
    Now,
}

/// Whether to renew a certificate of `validity` at `now`, given this
/// certificate's random `fraction` (from [`renewal_fraction`]). When the
/// cluster's lifetime is known (`configured`, on managers) and is well
/// shorter than what this certificate has left, it is renewed at once: an
/// operator who shortened the lifetime (`swarm update --cert-expiry`) wants
/// long-lived certificates gone, not kept for half of their old lifetime.
pub fn decide(
    validity: &Validity,
    fraction: f64,
    configured: Option<Duration>,
    now: SystemTime,
) -> Renewal {
    if let Some(configured) = configured.filter(|c| !c.is_zero()) {
        if validity.remaining(now) > configured + configured / 10 {
            return Renewal::Now;
        }
    }
    match validity.at_fraction(fraction).duration_since(now) {
        Ok(wait) if !wait.is_zero() => Renewal::Wait(wait),
        _ => Renewal::Now,
    }
}

/// How long to wait after a failed renewal: a twentieth of the lifetime,
/// between 1 s and 1 min — often enough that a cluster with short
/// certificates (tests) retries many times before expiry, rarely enough
/// that a long outage does not become a flood.
pub fn retry_delay(validity: &Validity) -> Duration {
    (validity.lifetime() / 20).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Why a certificate deserves an operator's attention at `now`, if it does:
/// expired, or less than [`WARN_BELOW`] of its lifetime left (it is then past
/// its renewal window, so renewing has been failing).
pub fn expiry_warning(validity: &Validity, now: SystemTime) -> Option<String> {
    let remaining = validity.remaining(now);
    if remaining.is_zero() {
        return Some(
            "its certificate has expired: the node cannot connect; \
             remove it and join it again"
                .into(),
        );
    }
    if remaining.as_secs_f64() < validity.lifetime().as_secs_f64() * WARN_BELOW {
        return Some(format!(
            "its certificate expires in {}s and has not been renewed: \
             check that it can reach a manager",
            remaining.as_secs()
        ));
    }
    None
}

/// The root CAs the swarm says to trust, and the one that signs now
/// (both PEM), as a manager announces them over the node's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncedTrust {
    pub bundle_pem: String,
    pub signing_root_pem: String,
}

/// What a node does about an announced trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustAction {
    /// Its certificate and trust are the announced ones.
    Nothing,
    /// Its certificate is of another root (a rotation started): renew now;
    /// the new certificate comes with the bundle to trust.
    Renew,
    /// Its certificate is of the signing root but it trusts other roots
    /// (a rotation finished: the old root goes): install the bundle.
    Trust(String),
}

/// Decides, for a node holding `cert_pem` and trusting `ca_pem`, what to do
/// about `announced` (pure). A bundle that does not hold the signing root
/// is ignored: it could not verify anything the swarm issues.
pub fn trust_action(cert_pem: &str, ca_pem: &str, announced: &AnnouncedTrust) -> TrustAction {
    let signing = &announced.signing_root_pem;
    if signing.is_empty()
        || !crate::ca::split_pem(&announced.bundle_pem).contains(
            crate::ca::split_pem(signing)
                .first()
                .unwrap_or(&String::new()),
        )
    {
        return TrustAction::Nothing;
    }
    if !crate::ca::issued_by(cert_pem, signing) {
        return TrustAction::Renew;
    }
    if !crate::ca::same_bundle(ca_pem, &announced.bundle_pem) {
        return TrustAction::Trust(announced.bundle_pem.clone());
    }
    TrustAction::Nothing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_renews_then_drops_the_old_root() {
        let old = crate::RootCa::generate("c").unwrap();
        let (new, cross) = old.successor("c").unwrap();
        let key = crate::NodeKey::generate().unwrap();
        let csr = key.csr("h").unwrap();
        let hour = Duration::from_secs(3600);
        let old_cert = old
            .sign_node_csr(&csr, "n", crate::Role::Worker, "c", hour)
            .unwrap();
        let both = crate::ca::bundle(&[&old.cert_pem, &new.cert_pem]);
        let rotating = AnnouncedTrust {
            bundle_pem: both.clone(),
            signing_root_pem: new.cert_pem.clone(),
        };
        assert_eq!(
            trust_action(&old_cert, &old.cert_pem, &rotating),
            TrustAction::Renew
        );
        let new_cert = new
            .sign_node_chain(&csr, "n", crate::Role::Worker, "c", hour, Some(&cross))
            .unwrap();
        assert_eq!(
            trust_action(&new_cert, &both, &rotating),
            TrustAction::Nothing
        );
        let finished = AnnouncedTrust {
            bundle_pem: new.cert_pem.clone(),
            signing_root_pem: new.cert_pem.clone(),
        };
        assert_eq!(
            trust_action(&new_cert, &both, &finished),
            TrustAction::Trust(new.cert_pem.clone())
        );
        assert_eq!(
            trust_action(&new_cert, &new.cert_pem, &finished),
            TrustAction::Nothing
        );
        // Nothing announced, or a bundle without the signing root: nothing.
        let none = AnnouncedTrust {
            bundle_pem: String::new(),
            signing_root_pem: String::new(),
        };
        assert_eq!(
            trust_action(&old_cert, &old.cert_pem, &none),
            TrustAction::Nothing
        );
        let broken = AnnouncedTrust {
            bundle_pem: old.cert_pem.clone(),
            signing_root_pem: new.cert_pem.clone(),
        };
        assert_eq!(
            trust_action(&old_cert, &old.cert_pem, &broken),
            TrustAction::Nothing
        );
    }

    const T0: u64 = 1_000_000;

    fn validity(from: u64, to: u64) -> Validity {
        Validity {
            not_before: SystemTime::UNIX_EPOCH + Duration::from_secs(from),
            not_after: SystemTime::UNIX_EPOCH + Duration::from_secs(to),
        }
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn fractions_cover_fifty_to_eighty_percent() {
        assert_eq!(renewal_fraction(0.0), 0.5);
        assert!((renewal_fraction(0.999_999) - 0.8).abs() < 1e-5);
        assert_eq!(renewal_fraction(7.0), 0.8);
    }

    #[test]
    fn renews_at_its_fraction_of_the_lifetime_and_not_before() {
        let v = validity(T0, T0 + 100);
        assert_eq!(
            decide(&v, 0.5, None, at(T0)),
            Renewal::Wait(Duration::from_secs(50))
        );
        assert_eq!(
            decide(&v, 0.8, None, at(T0 + 70)),
            Renewal::Wait(Duration::from_secs(10))
        );
        assert_eq!(decide(&v, 0.8, None, at(T0 + 80)), Renewal::Now);
        assert_eq!(decide(&v, 0.5, None, at(T0 + 200)), Renewal::Now);
    }

    #[test]
    fn a_shortened_cluster_lifetime_renews_long_certificates_at_once() {
        let v = validity(T0, T0 + 90 * 86_400);
        let short = Some(Duration::from_secs(60));
        assert_eq!(decide(&v, 0.5, short, at(T0 + 10)), Renewal::Now);
        // A certificate issued with the configured lifetime waits as usual.
        let v = validity(T0, T0 + 60);
        assert_eq!(
            decide(&v, 0.5, short, at(T0)),
            Renewal::Wait(Duration::from_secs(30))
        );
        // A longer configured lifetime does not force anything.
        assert_eq!(
            decide(&v, 0.5, Some(Duration::from_secs(86_400)), at(T0)),
            Renewal::Wait(Duration::from_secs(30))
        );
    }

    #[test]
    fn retries_scale_with_the_lifetime_within_bounds() {
        assert_eq!(retry_delay(&validity(T0, T0 + 20)), Duration::from_secs(1));
        assert_eq!(
            retry_delay(&validity(T0, T0 + 600)),
            Duration::from_secs(30)
        );
        assert_eq!(
            retry_delay(&validity(T0, T0 + 90 * 86_400)),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn warns_only_when_little_lifetime_is_left() {
        let v = validity(T0, T0 + 100);
        assert_eq!(expiry_warning(&v, at(T0 + 50)), None);
        assert_eq!(expiry_warning(&v, at(T0 + 90)), None);
        assert!(expiry_warning(&v, at(T0 + 95))
            .unwrap()
            .contains("expires in 5s"));
        assert!(expiry_warning(&v, at(T0 + 100))
            .unwrap()
            .contains("expired"));
    }

    #[test]
    fn reads_the_validity_of_an_issued_certificate() {
        let ca = crate::RootCa::generate("c").unwrap();
        let key = crate::NodeKey::generate().unwrap();
        let pem = ca
            .sign_node_csr(
                &key.csr("h").unwrap(),
                "n",
                crate::Role::Worker,
                "c",
                Duration::from_secs(20),
            )
            .unwrap();
        let v = Validity::of_pem(&pem).unwrap();
        // 20 s, backdated by a tenth of it for clock skew.
        assert_eq!(v.lifetime(), Duration::from_secs(22));
    }
}
