//! The cluster's root CA: created by `swarm init`, kept (with its key) in the
//! replicated cluster object, and used by managers to sign node certificates.
//! Node certificates carry the node ID as CN, the role as OU and the cluster
//! ID as O.
//!
//! A root rotation (`swarm ca --rotate`) makes a new root with a subject of
//! its own (an OU naming its generation) and a *cross-signed* copy of it —
//! same subject, same key, issued by the current root — so that a node that
//! trusts only the current root still verifies a chain `leaf → cross-signed
//! → current root`, while one that trusts the new root stops at the new root.

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::error::SecurityError;
use crate::identity::Role;
use crate::identity::MANAGER_SERVER_NAME;

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
        let cert = root_params(cluster_id, None)
            .self_signed(&key)
            .map_err(SecurityError::cert("self-signing the CA"))?;
        Ok(RootCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A new root to replace this one, and the new root's certificate
    /// cross-signed by this one: `(new root, cross-signed PEM)`.
    ///
    /// The new root's subject carries a generation of its own, so that no
    /// two roots of a cluster share a subject: chains are built by subject,
    /// and a node tells which root issued its certificate by its issuer.
    pub fn successor(&self, cluster_id: &str) -> Result<(RootCa, String), SecurityError> {
        let generation = crate::token::random_base36(12);
        let key = KeyPair::generate().map_err(SecurityError::cert("generating the CA key"))?;
        let params = root_params(cluster_id, Some(&generation));
        let cert = params
            .clone()
            .self_signed(&key)
            .map_err(SecurityError::cert("self-signing the new CA"))?;
        let (issuer, issuer_key) = self.issuer()?;
        let cross_signed = params
            .signed_by(&key, &issuer, &issuer_key)
            .map_err(SecurityError::cert("cross-signing the new CA"))?;
        Ok((
            RootCa {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            },
            cross_signed.pem(),
        ))
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

    /// Like [`sign_node_csr`](Self::sign_node_csr), followed by
    /// `intermediate_pem` (the cross-signed root, during a rotation) so that
    /// peers trusting only the previous root can verify the chain.
    pub fn sign_node_chain(
        &self,
        csr_pem: &str,
        node_id: &str,
        role: Role,
        cluster_id: &str,
        validity: std::time::Duration,
        intermediate_pem: Option<&str>,
    ) -> Result<String, SecurityError> {
        let leaf = self.sign_node_csr(csr_pem, node_id, role, cluster_id, validity)?;
        Ok(match intermediate_pem {
            Some(intermediate) => format!("{leaf}{}", ensure_newline(intermediate)),
            None => leaf,
        })
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

/// A root CA's parameters: CN `shoal-root-ca`, O the cluster, and for the
/// roots made by a rotation an OU naming their generation.
fn root_params(cluster_id: &str, generation: Option<&str>) -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "shoal-root-ca");
    params
        .distinguished_name
        .push(DnType::OrganizationName, cluster_id);
    if let Some(generation) = generation {
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, format!("root-{generation}"));
    }
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(ROOT_CA_VALIDITY_DAYS);
    params
}

fn ensure_newline(pem: &str) -> String {
    if pem.ends_with('\n') {
        pem.to_string()
    } else {
        format!("{pem}\n")
    }
}

/// The certificates of `pem` (a bundle or a chain), each as its own PEM.
pub fn split_pem(pem: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in pem.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if line.starts_with("-----END") {
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

/// A trust bundle: the PEMs of `roots`, one after the other, each once.
pub fn bundle(roots: &[&str]) -> String {
    let mut seen = Vec::new();
    let mut out = String::new();
    for pem in roots.iter().flat_map(|r| split_pem(r)) {
        if !seen.contains(&pem) {
            out.push_str(&pem);
            seen.push(pem);
        }
    }
    out
}

/// Whether two bundles hold the same certificates (order and layout aside).
pub fn same_bundle(a: &str, b: &str) -> bool {
    let (mut a, mut b) = (split_pem(a), split_pem(b));
    a.sort();
    b.sort();
    a.dedup();
    b.dedup();
    a == b
}

/// Whether the leaf (first certificate) of `cert_pem` was issued by the
/// root `root_pem`: its issuer is the root's subject. Roots of one cluster
/// never share a subject (see [`RootCa::successor`]), and only a CA key
/// holder makes certificates, so the subject names the signing root.
pub fn issued_by(cert_pem: &str, root_pem: &str) -> bool {
    let parse = |pem: &str| -> Option<Vec<u8>> { first_cert_der(pem).ok() };
    let (Some(leaf), Some(root)) = (parse(cert_pem), parse(root_pem)) else {
        return false;
    };
    use x509_parser::prelude::{FromDer, X509Certificate};
    match (
        X509Certificate::from_der(&leaf),
        X509Certificate::from_der(&root),
    ) {
        (Ok((_, leaf)), Ok((_, root))) => leaf.issuer().as_raw() == root.subject().as_raw(),
        _ => false,
    }
}

/// The SHA-256 fingerprint of the first certificate of `pem`, as operators
/// compare it (`sha256:` and lowercase hex, as Docker's `swarm ca`).
pub fn fingerprint_of_pem(pem: &str) -> Result<String, SecurityError> {
    let der = first_cert_der(pem)?;
    let hex: String = Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!("sha256:{hex}"))
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

use crate::pem::first_cert_der;
pub use crate::pem::{digest_of_pem, DIGEST_LEN};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{NodeKey, PeerIdentity};

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

    /// Verifies `chain` (leaf first) as a client certificate against `roots`
    /// with rustls' own verifier, as a manager's listener does.
    fn verifies(chain: &str, roots: &str) -> bool {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, UnixTime};
        let mut store = rustls::RootCertStore::empty();
        for root in CertificateDer::pem_slice_iter(roots.as_bytes()) {
            store.add(root.unwrap()).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(store),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let certs: Vec<CertificateDer> = CertificateDer::pem_slice_iter(chain.as_bytes())
            .map(Result::unwrap)
            .collect();
        verifier
            .verify_client_cert(&certs[0], &certs[1..], UnixTime::now())
            .is_ok()
    }

    #[test]
    fn during_a_rotation_either_root_verifies_a_new_chain_and_afterwards_only_the_new_one() {
        let old = RootCa::generate("c").unwrap();
        let (new, cross) = old.successor("c").unwrap();
        let key = NodeKey::generate().unwrap();
        let csr = key.csr("h").unwrap();
        let hour = std::time::Duration::from_secs(3600);
        let chain = new
            .sign_node_chain(&csr, "n", Role::Manager, "c", hour, Some(&cross))
            .unwrap();
        let old_leaf = old
            .sign_node_csr(&csr, "m", Role::Worker, "c", hour)
            .unwrap();
        // A node that still trusts only the old root accepts the new chain.
        assert!(verifies(&chain, &old.cert_pem));
        // One that trusts the new root (alone, once the rotation is over) too.
        assert!(verifies(&chain, &new.cert_pem));
        // Without the cross-signed link the old root cannot verify it.
        let leaf_only = split_pem(&chain).remove(0);
        assert!(!verifies(&leaf_only, &old.cert_pem));
        // The old root's certificates are refused once it is dropped.
        assert!(verifies(
            &old_leaf,
            &bundle(&[&old.cert_pem, &new.cert_pem])
        ));
        assert!(!verifies(&old_leaf, &new.cert_pem));
        // Which root issued a certificate, read off its issuer.
        assert!(issued_by(&chain, &new.cert_pem));
        assert!(!issued_by(&chain, &old.cert_pem));
        assert!(issued_by(&old_leaf, &old.cert_pem));
        assert_ne!(new.digest(), old.digest());
        assert!(fingerprint_of_pem(&new.cert_pem)
            .unwrap()
            .starts_with("sha256:"));
    }

    #[test]
    fn bundles_compare_by_their_certificates() {
        let a = RootCa::generate("c").unwrap();
        let b = RootCa::generate("c").unwrap();
        let ab = bundle(&[&a.cert_pem, &b.cert_pem, &a.cert_pem]);
        assert_eq!(split_pem(&ab).len(), 2);
        assert!(same_bundle(&ab, &bundle(&[&b.cert_pem, &a.cert_pem])));
        assert!(!same_bundle(&ab, &a.cert_pem));
    }
}
