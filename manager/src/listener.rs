//! The manager's front door on TCP: what a stranger can make it do before it
//! knows who is calling. Anyone who reaches port 2377 may try, so
//!
//! - TLS handshakes run off the accept loop, at most [`Limits::handshakes`]
//!   at once, each given [`Limits::handshake_timeout`] to finish;
//! - connections without a client certificate (nodes that are joining) are
//!   bounded by [`Limits::anonymous_connections`] (beyond that they are closed
//!   right after the handshake) and live at most [`Limits::anonymous_lifetime`]
//!   (joining takes one or two calls), so idle ones cannot hold every place;
//! - [`CertificateGate`] answers every call on such a connection, except the
//!   CA service's (the only one a node without a certificate needs), with
//!   UNAUTHENTICATED *before its body is read*, so a message claiming gigabytes
//!   costs nothing. Which role a certificate grants is checked later, per
//!   service (`auth`).
//!
//! Per-service message sizes and HTTP/2 stream limits are set where the server
//! is built (`Manager::serve`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tonic::codegen::http;
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};

/// How much a manager gives callers it does not know yet.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// TLS handshakes in progress at once; more wait in the kernel's backlog.
    pub handshakes: usize,
    /// Time a handshake may take before the connection is dropped.
    pub handshake_timeout: Duration,
    /// Open connections without a client certificate (joining nodes).
    pub anonymous_connections: usize,
    /// How long a connection without a certificate may stay open.
    pub anonymous_lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        // A pending handshake costs a socket and a few KiB: many may wait,
        // so that a few stalled clients cannot keep others out.
        Limits {
            handshakes: 1024,
            handshake_timeout: Duration::from_secs(10),
            anonymous_connections: 256,
            anonymous_lifetime: Duration::from_secs(30),
        }
    }
}

/// The gRPC path prefix of the one service open to callers without a
/// certificate: a joining node fetches the root CA and asks for its
/// certificate there (it proves itself with the join token).
pub const OPEN_SERVICE_PREFIX: &str = "/shoal.v1.Ca/";

/// Accepts connections on `listener` and yields those whose TLS handshake
/// succeeded in time, with the acceptor current at accept time (a renewed
/// certificate is sent on `acceptor` and applies to new connections).
pub fn incoming(
    listener: TcpListener,
    acceptor: watch::Receiver<TlsAcceptor>,
    limits: Limits,
) -> impl Stream<Item = std::io::Result<Guarded>> {
    let (sender, receiver) = mpsc::channel(limits.handshakes.max(1));
    tokio::spawn(accept_loop(listener, acceptor, limits, sender));
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: watch::Receiver<TlsAcceptor>,
    limits: Limits,
    sender: mpsc::Sender<std::io::Result<Guarded>>,
) {
    let handshakes = Arc::new(Semaphore::new(limits.handshakes.max(1)));
    let anonymous = Arc::new(Semaphore::new(limits.anonymous_connections));
    loop {
        // Take a handshake slot before accepting: a flood waits in the
        // backlog instead of piling up tasks here.
        let Ok(slot) = handshakes.clone().acquire_owned().await else {
            return;
        };
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = sender.closed() => return,
        };
        let _ = tcp.set_nodelay(true);
        let tls = acceptor.borrow().clone();
        let anonymous = anonymous.clone();
        let sender = sender.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(limits.handshake_timeout, tls.accept(tcp)).await;
            drop(slot);
            let stream = match handshake {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake timed out");
                    return;
                }
            };
            let anonymous = if stream.get_ref().1.peer_certificates().is_some() {
                None
            } else {
                match anonymous.try_acquire_owned() {
                    Ok(permit) => Some(Anonymous {
                        _place: permit,
                        closes: Box::pin(tokio::time::sleep(limits.anonymous_lifetime)),
                    }),
                    Err(_) => {
                        tracing::warn!(
                            "refusing a connection without a certificate: too many are open"
                        );
                        return;
                    }
                }
            };
            let _ = sender.send(Ok(Guarded { stream, anonymous })).await;
        });
    }
}

/// A TLS connection; one that came without a certificate holds its place
/// among the anonymous ones and ends when its lifetime is up.
pub struct Guarded {
    stream: TlsStream<TcpStream>,
    anonymous: Option<Anonymous>,
}

struct Anonymous {
    _place: OwnedSemaphorePermit,
    closes: Pin<Box<tokio::time::Sleep>>,
}

impl Connected for Guarded {
    type ConnectInfo = TlsConnectInfo<TcpConnectInfo>;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(anonymous) = &mut self.anonymous {
            if anonymous.closes.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "a connection without a certificate reached its lifetime",
                )));
            }
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Whether a call may go on to its service: the open service always, any
/// other only over a connection that presented a certificate (pure).
pub fn admits(path: &str, has_certificate: bool) -> bool {
    has_certificate || path.starts_with(OPEN_SERVICE_PREFIX)
}

/// The tower layer in front of every gRPC service of the listener.
#[derive(Debug, Clone, Copy, Default)]
pub struct CertificateGateLayer;

impl<S> tower::Layer<S> for CertificateGateLayer {
    type Service = CertificateGate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CertificateGate { inner }
    }
}

/// Refuses calls without a client certificate, except the CA service's,
/// before anything of their body is read.
#[derive(Debug, Clone)]
pub struct CertificateGate<S> {
    inner: S,
}

type BoxBody = tonic::body::BoxBody;

impl<S, B> tower::Service<http::Request<B>> for CertificateGate<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<BoxBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<BoxBody>;
    type Error = S::Error;
    type Future = futures::future::Either<
        futures::future::Ready<Result<Self::Response, Self::Error>>,
        S::Future,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let has_certificate = request
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|info| info.peer_certs())
            .is_some_and(|certs| !certs.is_empty());
        if admits(request.uri().path(), has_certificate) {
            return futures::future::Either::Right(self.inner.call(request));
        }
        // Dropping the request drops its body unread; the client sees a
        // normal gRPC error and the stream is reset.
        let refused = tonic::Status::unauthenticated(
            "a node certificate from this swarm's CA is required: join the swarm with a token first",
        )
        .into_http();
        futures::future::Either::Left(futures::future::ready(Ok(refused)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_ca_service_is_open_without_a_certificate() {
        assert!(admits("/shoal.v1.Ca/GetRootCa", false));
        assert!(admits("/shoal.v1.Ca/IssueNodeCertificate", false));
        for path in [
            "/shoal.v1.Raft/AppendEntries",
            "/shoal.v1.Control/ListServices",
            "/shoal.v1.Dispatcher/Session",
            "/shoal.v1.Logs/ServiceLogs",
            "/shoal.v1.LogBroker/PublishLogs",
            "/shoal.v1.Cax/Anything",
            "/",
        ] {
            assert!(!admits(path, false), "{path} must need a certificate");
            assert!(admits(path, true));
        }
    }
}
