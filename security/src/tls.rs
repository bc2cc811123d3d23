//! TLS for every connection between nodes.
//!
//! Managers serve one listener with their node certificate and ask clients
//! for a certificate from the cluster CA. Client certificates are *optional*
//! at the TLS layer only so that a node that is still joining can fetch the
//! root CA and ask for its certificate; every other service checks the peer's
//! identity itself (see `PeerIdentity`) and refuses calls without one. A
//! certificate from any other CA fails the handshake.
//!
//! A node's agent also checks *which* node a manager certificate belongs
//! to ([`KnownManagers`]): a CA-signed manager certificate proves only that
//! the node was a manager when it was issued, and a demoted manager keeps
//! its old one until it expires.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig, Uri,
};

use crate::error::SecurityError;
use crate::files::NodeCredentials;
use crate::identity::PeerIdentity;
use crate::identity::MANAGER_SERVER_NAME;
use crate::shared::SharedCredentials;

/// Server TLS for a manager's listener.
pub fn server_config(creds: &NodeCredentials) -> ServerTlsConfig {
    ServerTlsConfig::new()
        .identity(Identity::from_pem(&creds.cert_pem, &creds.key_pem))
        .client_ca_root(Certificate::from_pem(&creds.ca_pem))
        .client_auth_optional(true)
}

/// The rustls acceptor of a manager's listener, for servers that run their
/// own accept loop (`manager::listener`: handshakes bounded in time and
/// number). Same policy as [`server_config`]: the node certificate, client
/// certificates from the cluster CA optional (a joining node has none),
/// HTTP/2 only.
pub fn server_acceptor(
    creds: &NodeCredentials,
) -> Result<tokio_rustls::TlsAcceptor, SecurityError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::PrivateKeyDer;

    let bad = |what: &'static str| {
        move |e: rustls::pki_types::pem::Error| SecurityError::BadCertificate {
            what,
            reason: e.to_string(),
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(creds.ca_pem.as_bytes()) {
        roots
            .add(ca.map_err(bad("of the root CA"))?)
            .map_err(|e| SecurityError::Tls(format!("the root CA cannot be trusted: {e}")))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| SecurityError::Tls(format!("client certificate verifier: {e}")))?;
    let chain = CertificateDer::pem_slice_iter(creds.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad("of this node"))?;
    let key =
        PrivateKeyDer::from_pem_slice(creds.key_pem.as_bytes()).map_err(bad("key of this node"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SecurityError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| SecurityError::Tls(format!("this node's certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The address of the peer of a server-side request, whether the server
/// terminated TLS itself or ran its own accept loop (`server_acceptor`).
pub fn peer_addr<T>(request: &tonic::Request<T>) -> Option<std::net::SocketAddr> {
    request.remote_addr().or_else(|| {
        request
            .extensions()
            .get::<tonic::transport::server::TlsConnectInfo<tonic::transport::server::TcpConnectInfo>>()
            .and_then(|info| info.get_ref().remote_addr())
    })
}

/// Client TLS for a node that holds its certificate: mutual TLS, the server
/// must present a manager certificate from the cluster CA.
pub fn client_config(creds: &NodeCredentials) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&creds.ca_pem))
        .identity(Identity::from_pem(&creds.cert_pem, &creds.key_pem))
        .domain_name(MANAGER_SERVER_NAME)
}

/// A lazily connected mutual-TLS channel to the manager at `addr` that reads
/// `credentials` each time it (re)connects: after a renewal, the next
/// connection presents the new certificate, while open ones keep going.
/// (tonic's own TLS settings are fixed when the endpoint is built, which is
/// why the handshake is done here.)
pub fn channel(
    addr: &str,
    connect_timeout: Duration,
    credentials: &SharedCredentials,
) -> Result<Channel, SecurityError> {
    let (endpoint, connector) = mtls_endpoint(addr, connect_timeout, credentials, None)?;
    Ok(endpoint.connect_with_connector_lazy(connector))
}

/// The node IDs a node accepts manager certificates from: the managers of
/// the store's manager list, as the last session reported them (and the
/// join response before the first session). Empty means not known yet
/// (a node of an older release that has had no session since): then the
/// CA's signature alone vouches, as before.
#[derive(Clone, Default)]
pub struct KnownManagers(Arc<RwLock<BTreeSet<String>>>);

impl std::fmt::Debug for KnownManagers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("KnownManagers").field(&self.ids()).finish()
    }
}

impl KnownManagers {
    pub fn new(ids: impl IntoIterator<Item = String>) -> Self {
        let known = KnownManagers::default();
        known.set(ids);
        known
    }

    /// Replaces the list (an empty one is ignored: it says nothing).
    pub fn set(&self, ids: impl IntoIterator<Item = String>) {
        let ids: BTreeSet<String> = ids.into_iter().filter(|id| !id.is_empty()).collect();
        if !ids.is_empty() {
            *self.0.write().expect("known managers lock") = ids;
        }
    }

    pub fn ids(&self) -> Vec<String> {
        self.0
            .read()
            .expect("known managers lock")
            .iter()
            .cloned()
            .collect()
    }

    /// Why the server certificate of `peer` is not accepted as a manager's.
    pub fn refusal(&self, peer: &PeerIdentity) -> Option<String> {
        manager_refusal(&self.0.read().expect("known managers lock"), peer)
    }
}

/// Why a server presenting `peer`'s certificate is not accepted as a
/// manager by a node that knows the managers `known` (pure). A worker
/// certificate never serves; a manager certificate of a node outside the
/// manager list is a demoted (or removed) manager's old one.
pub fn manager_refusal(known: &BTreeSet<String>, peer: &PeerIdentity) -> Option<String> {
    if peer.role != crate::Role::Manager {
        return Some(format!(
            "node {} presented a {} certificate where a manager was expected",
            peer.node_id,
            peer.role.as_ou()
        ));
    }
    if !known.is_empty() && !known.contains(&peer.node_id) {
        return Some(format!(
            "node {} holds a manager certificate but is not a manager of this swarm \
             (demoted or removed): refusing it as a manager",
            peer.node_id
        ));
    }
    None
}

/// Like [`connect`], and the server must also be one of `known`'s managers
/// (checked during the handshake, before anything is sent): what a node's
/// agent and renewal use to reach a manager.
pub async fn connect_to_manager(
    addr: &str,
    connect_timeout: Duration,
    credentials: &SharedCredentials,
    known: &KnownManagers,
) -> Result<Channel, SecurityError> {
    let (endpoint, connector) =
        mtls_endpoint(addr, connect_timeout, credentials, Some(known.clone()))?;
    endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| SecurityError::Connect {
            addr: addr.to_string(),
            reason: error_chain(&e),
        })
}

/// Like [`channel`], connected before it returns (so that an unreachable
/// manager is reported here, not at the first call).
pub async fn connect(
    addr: &str,
    connect_timeout: Duration,
    credentials: &SharedCredentials,
) -> Result<Channel, SecurityError> {
    let (endpoint, connector) = mtls_endpoint(addr, connect_timeout, credentials, None)?;
    endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| SecurityError::Connect {
            addr: addr.to_string(),
            reason: error_chain(&e),
        })
}

/// An error and its chain of sources on one line, `outer: inner: …`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

type Connector = tower::util::ServiceFn<
    Box<
        dyn Fn(
                Uri,
            ) -> std::pin::Pin<
                Box<
                    dyn std::future::Future<
                            Output = std::io::Result<
                                TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
                            >,
                        > + Send,
                >,
            > + Send
            + Sync,
    >,
>;

fn mtls_endpoint(
    addr: &str,
    connect_timeout: Duration,
    credentials: &SharedCredentials,
    known: Option<KnownManagers>,
) -> Result<(Endpoint, Connector), SecurityError> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| SecurityError::Tls(format!("invalid address {addr:?}: {e}")))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5));
    let credentials = credentials.clone();
    let target = addr.to_string();
    let connector: Connector = tower::service_fn(Box::new(move |_: Uri| {
        let credentials = credentials.current();
        let target = target.clone();
        let known = known.clone();
        Box::pin(async move {
            let config = rustls_client_config(&credentials, known)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let tcp = tokio::net::TcpStream::connect(&target).await?;
            tcp.set_nodelay(true)?;
            let name =
                ServerName::try_from(MANAGER_SERVER_NAME).expect("static server name is valid");
            let tls = connector.connect(name, tcp).await?;
            Ok(TokioIo::new(tls))
        }) as std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>>
    }));
    Ok((endpoint, connector))
}

/// The rustls side of [`client_config`]: verify the server as a manager of
/// the cluster CA (and, with `known`, of the manager list), present this
/// node's certificate.
fn rustls_client_config(
    creds: &NodeCredentials,
    known: Option<KnownManagers>,
) -> Result<rustls::ClientConfig, SecurityError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::PrivateKeyDer;

    let bad = |what: &'static str| {
        move |e: rustls::pki_types::pem::Error| SecurityError::BadCertificate {
            what,
            reason: e.to_string(),
        }
    };
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(creds.ca_pem.as_bytes()) {
        roots
            .add(ca.map_err(bad("of the root CA"))?)
            .map_err(|e| SecurityError::Tls(format!("the root CA cannot be trusted: {e}")))?;
    }
    let chain = CertificateDer::pem_slice_iter(creds.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad("of this node"))?;
    let key =
        PrivateKeyDer::from_pem_slice(creds.key_pem.as_bytes()).map_err(bad("key of this node"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| SecurityError::Tls(e.to_string()))?;
    let builder = match known {
        None => builder.with_root_certificates(roots),
        Some(known) => {
            let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| SecurityError::Tls(format!("server certificate verifier: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ManagerListVerifier { inner, known }))
        }
    };
    let mut config = builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| SecurityError::Tls(format!("this node's certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The CA's verification of a manager's certificate, then the manager list's.
#[derive(Debug)]
struct ManagerListVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    known: KnownManagers,
}

impl ServerCertVerifier for ManagerListVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let refused = |reason: String| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
                Arc::new(std::io::Error::other(reason)),
            )))
        };
        let peer =
            PeerIdentity::from_der(end_entity.as_ref()).map_err(|e| refused(e.to_string()))?;
        if let Some(reason) = self.known.refusal(&peer) {
            return Err(refused(reason));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Client TLS for a joining node that trusts `ca_pem` (already checked
/// against its token) but has no certificate yet.
pub fn ca_only_client_config(ca_pem: &str) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name(MANAGER_SERVER_NAME)
}

/// An endpoint to `addr` ("host:port") with the timeouts shoal uses between
/// nodes: connecting must not hang an operator's command for long.
pub fn endpoint(addr: &str, connect_timeout: Duration) -> Result<Endpoint, SecurityError> {
    Endpoint::from_shared(format!("https://{addr}"))
        .map_err(|e| SecurityError::Tls(format!("invalid address {addr:?}: {e}")))
        .map(|e| {
            e.connect_timeout(connect_timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(5))
                .keep_alive_timeout(Duration::from_secs(5))
        })
}

/// A channel to `addr` that accepts *any* server certificate. Its only use is
/// fetching the root CA while joining, whose digest the caller then checks
/// against the join token before trusting or sending anything.
pub async fn unverified_channel(
    addr: &str,
    connect_timeout: Duration,
) -> Result<Channel, tonic::transport::Error> {
    let mut config = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(
            rustls::crypto::ring::default_provider(),
        )))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let target = addr.to_string();
    Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(connect_timeout)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let connector = connector.clone();
            let target = target.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(&target).await?;
                let name =
                    ServerName::try_from(MANAGER_SERVER_NAME).expect("static server name is valid");
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
}

/// The verified identity of the peer of a server-side request, if it
/// presented a certificate (the TLS layer has checked it against the CA).
pub fn peer_identity<T>(request: &tonic::Request<T>) -> Option<PeerIdentity> {
    let certs = request.peer_certs()?;
    let leaf: &CertificateDer<'static> = certs.first()?;
    PeerIdentity::from_der(leaf.as_ref()).ok()
}

#[derive(Debug)]
struct AcceptAnyServerCert(rustls::crypto::CryptoProvider);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    fn peer(id: &str, role: Role) -> PeerIdentity {
        PeerIdentity {
            node_id: id.into(),
            role,
            cluster_id: "c".into(),
        }
    }

    #[test]
    fn only_managers_of_the_list_are_accepted_as_managers() {
        let known: BTreeSet<String> = ["m1".to_string(), "m2".to_string()].into();
        assert_eq!(manager_refusal(&known, &peer("m1", Role::Manager)), None);
        let demoted = manager_refusal(&known, &peer("m3", Role::Manager)).unwrap();
        assert!(demoted.contains("not a manager of this swarm"), "{demoted}");
        assert!(manager_refusal(&known, &peer("m1", Role::Worker)).is_some());
        // A list not known yet: the CA's signature decides.
        assert_eq!(
            manager_refusal(&BTreeSet::new(), &peer("m3", Role::Manager)),
            None
        );
        // An empty report never erases what is known.
        let list = KnownManagers::new(["m1".to_string()]);
        list.set(Vec::new());
        assert_eq!(list.ids(), vec!["m1".to_string()]);
    }
}
