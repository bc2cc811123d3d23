//! The Docker Engine API, swarm subset, as a second front end to shoal:
//! `shoal daemon --docker-api unix:///PATH` lets the real `docker` CLI
//! (`DOCKER_HOST=unix:///PATH docker node ls`, `service create`, `stack
//! deploy`…) drive the cluster.
//!
//! Every request is translated into calls of shoal's own control API on the
//! daemon's local socket — the same calls the `shoal` CLI makes — and every
//! answer is built from what those calls return. Nothing is stored here.
//!
//! # Layout
//! - [`api`]: what every handler shares (the backend, the config, the
//!   extractors).
//! - [`listen`]: `--docker-api` addresses (unix, loopback TCP) and binding.
//! - [`routing`]: `/v1.xx/` prefixes, the version range, the 501 for the rest.
//! - [`errors`]: Docker's `{"message": …}` bodies and status codes.
//! - [`filters`]: the `filters` query parameter and label matching.
//! - [`backend`]: the gRPC clients of the daemon's socket.
//! - [`mapping`]: Docker's types ↔ shoal's, in one place.
//! - one module per resource: [`system`] (`/_ping`, `/version`, `/info`),
//!   [`swarm`], [`nodes`], [`services`] (and `/distribution`), [`tasks`],
//!   [`logs`], [`stacks`] (`/networks`, which `stack deploy` creates),
//!   [`secrets`] (`/secrets`, `/configs`).

#![forbid(unsafe_code)]

pub mod api;
pub mod backend;
pub mod errors;
pub mod filters;
pub mod listen;
pub mod logs;
pub mod mapping;
pub mod nodes;
pub mod routing;
pub mod secrets;
pub mod services;
pub mod stacks;
pub mod swarm;
pub mod system;
pub mod tasks;

use std::sync::Arc;

use axum::Router;
use hyper_util::rt::TokioIo;

pub use api::{query_flag, Api, Config, Query, State};
pub use backend::Backend;
pub use listen::{Listen, Listener};

/// Every endpoint shoal serves; everything else answers 501.
pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .merge(system::routes())
        .merge(swarm::routes())
        .merge(nodes::routes())
        .merge(services::routes())
        .merge(tasks::routes())
        .merge(logs::routes())
        .merge(stacks::routes())
        .merge(secrets::routes())
        .fallback(routing::unsupported)
        .with_state(api)
}

/// Serves the API on `listener` until `shutdown` resolves. Connections are
/// HTTP/1.1, as the docker CLI speaks on sockets and plain TCP.
pub async fn serve(
    listener: Listener,
    backend: Backend,
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let router = router(Arc::new(Api { backend, config }));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = accept(&listener) => accepted,
        };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "docker API: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let router = router.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let router = router.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(routing::dispatch(router, request).await)
                }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "docker API connection ended");
            }
        });
    }
    if let Listener::Unix(_, path) = &listener {
        let _ = std::fs::remove_file(path);
    }
}

/// Either kind of stream, so one connection loop serves both.
enum Stream {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

async fn accept(listener: &Listener) -> std::io::Result<Stream> {
    match listener {
        Listener::Unix(l, _) => Ok(Stream::Unix(l.accept().await?.0)),
        Listener::Tcp(l) => Ok(Stream::Tcp(l.accept().await?.0)),
    }
}

impl tokio::io::AsyncRead for Stream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Stream::Tcp(s) => std::pin::Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Stream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Stream::Tcp(s) => std::pin::Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => std::pin::Pin::new(s).poll_flush(cx),
            Stream::Tcp(s) => std::pin::Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Stream::Tcp(s) => std::pin::Pin::new(s).poll_shutdown(cx),
        }
    }
}
