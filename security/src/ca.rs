//! The cluster's root CA: created by `swarm init`, kept (with its key) in the
//! replicated cluster object, and used by managers to sign node certificates.
//! Node certificates carry the node ID as CN, the role as OU and the cluster
//! ID as O.

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::identity::Role;
use crate::{SecurityError, MANAGER_SERVER_NAME};

/// Root CA validity: 20 years, as swarmkit's default.
const ROOT_CA_VALIDITY_DAYS: i64 = 20 * 365;

/// A root CA: certificate and private key, both PEM.
#[derive(Clone)]
pub struct RootCa {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for RootCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("RootCa")
            .field("digest", &self.digest())
            .finish()
    }
}

impl RootCa {
    /// Creates a new self-signed ECDSA P-256 root CA for the cluster.
    pub fn generate(cluster_id: &str) -> Result<Self, SecurityError> {
        let key = KeyPair::generate().map_err(SecurityError::cert("generating the CA key"))?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "shoal-root-ca");
        params
            .distinguished_name
            .push(DnType::OrganizationName, cluster_id);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(ROOT_CA_VALIDITY_DAYS);
        let cert = params
            .self_signed(&key)
            .map_err(SecurityError::cert("self-signing the CA"))?;
        Ok(RootCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The digest written into join tokens: SHA-256 of the DER certificate.
    pub fn digest(&self) -> String {
        digest_of_pem(&self.cert_pem).unwrap_or_default()
    }

    /// Signs a node certificate for the public key in `csr_pem`. Everything a
    /// peer will trust (node ID, role, cluster) comes from the arguments, never
    /// from the CSR, which only proves possession of the key.
    pub fn sign_node_csr(
        &self,
        csr_pem: &str,
        node_id: &str,
        role: Role,
        cluster_id: &str,
        validity: std::time::Duration,
    ) -> Result<String, SecurityError> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(
            SecurityError::cert("reading the certificate signing request"),
        )?;
        csr.params = node_params(node_id, role, cluster_id, validity)?;
        let (issuer, issuer_key) = self.issuer()?;
        let cert = csr
            .signed_by(&issuer, &issuer_key)
            .map_err(SecurityError::cert("signing a node certificate"))?;
        Ok(cert.pem())
    }

    fn issuer(&self) -> Result<(Certificate, KeyPair), SecurityError> {
        let key =
            KeyPair::from_pem(&self.key_pem).map_err(SecurityError::cert("loading the CA key"))?;
        let params = CertificateParams::from_ca_cert_pem(&self.cert_pem)
            .map_err(SecurityError::cert("loading the CA certificate"))?;
        // rcgen signs with an issuer `Certificate`; re-deriving it from the
        // stored parameters and key keeps the subject and key identifier.
        let cert = params
            .self_signed(&key)
            .map_err(SecurityError::cert("loading the CA certificate"))?;
        Ok((cert, key))
    }
}

fn node_params(
    node_id: &str,
    role: Role,
    cluster_id: &str,
    validity: std::time::Duration,
) -> Result<CertificateParams, SecurityError> {
    let role_name = role.as_ou();
    let mut names = vec![role_name.to_string(), node_id.to_string()];
    if role == Role::Manager {
        names.insert(0, MANAGER_SERVER_NAME.to_string());
        names.dedup();
    }
    let mut params = CertificateParams::default();
    params.subject_alt_names = names
        .into_iter()
        .map(|n| {
            n.try_into()
                .map(SanType::DnsName)
                .map_err(|e| SecurityError::Certificate {
                    operation: "naming a node certificate",
                    source: e,
                })
        })
        .collect::<Result<_, _>>()?;
    params.distinguished_name.push(DnType::CommonName, node_id);
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, role_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, cluster_id);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let now = OffsetDateTime::now_utc();
    // Backdated for clocks that run a little behind the CA's: an hour, as
    // swarmkit does, but never more than a tenth of the lifetime, so that
    // short lifetimes (tests) keep their renewal window (50–80 % of
    // not_before..not_after) after the moment of issue.
    let backdate = Duration::hours(1).min(Duration::seconds(validity.as_secs() as i64 / 10));
    params.not_before = now - backdate;
    params.not_after = now + Duration::seconds(validity.as_secs() as i64);
    Ok(params)
}

/// SHA-256 of the first certificate in `pem`, as the 50-character base-36
/// string that join tokens carry.
pub fn digest_of_pem(pem: &str) -> Result<String, SecurityError> {
    let der = first_cert_der(pem)?;
    Ok(base36_256(&Sha256::digest(der).into()))
}

pub(crate) fn first_cert_der(pem: &str) -> Result<Vec<u8>, SecurityError> {
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| {
        SecurityError::BadCertificate {
            what: "PEM",
            reason: e.to_string(),
        }
    })?;
    Ok(parsed.contents)
}

/// Length of a base-36 rendering of a 256-bit number, zero-padded.
pub const DIGEST_LEN: usize = 50;

/// Renders 32 bytes as a zero-padded lowercase base-36 string, as Docker's
/// join tokens do: short enough to paste, case-insensitive-safe.
fn base36_256(bytes: &[u8; 32]) -> String {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut number = bytes.to_vec();
    let mut digits = Vec::with_capacity(DIGEST_LEN);
    while number.iter().any(|&b| b != 0) {
        // Long division of the big-endian number by 36.
        let mut remainder = 0u32;
        for byte in number.iter_mut() {
            let acc = (remainder << 8) | u32::from(*byte);
            *byte = (acc / 36) as u8;
            remainder = acc % 36;
        }
        digits.push(ALPHABET[remainder as usize]);
    }
    while digits.len() < DIGEST_LEN {
        digits.push(b'0');
    }
    digits.reverse();
    String::from_utf8(digits).expect("alphabet is ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{NodeKey, PeerIdentity};

    #[test]
    fn base36_of_zero_and_max_have_fixed_length() {
        assert_eq!(base36_256(&[0; 32]), "0".repeat(DIGEST_LEN));
        let max = base36_256(&[0xff; 32]);
        assert_eq!(max.len(), DIGEST_LEN);
        assert_eq!(max, "6dp5qcb22im238nr3wvp0ic7q99w035jmy2iw7i6n43d37jtof");
    }

    #[test]
    fn signed_node_certificate_carries_identity_from_the_ca_not_the_csr() {
        let ca = RootCa::generate("cluster1").unwrap();
        let key = NodeKey::generate().unwrap();
        let csr = key.csr("whatever-the-node-asks").unwrap();
        let cert = ca
            .sign_node_csr(
                &csr,
                "node123",
                Role::Worker,
                "cluster1",
                std::time::Duration::from_secs(3600),
            )
            .unwrap();
        let peer = PeerIdentity::from_pem(&cert).unwrap();
        assert_eq!(peer.node_id, "node123");
        assert_eq!(peer.role, Role::Worker);
        assert_eq!(peer.cluster_id, "cluster1");
        assert_eq!(ca.digest().len(), DIGEST_LEN);
    }
}
