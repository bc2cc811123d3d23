//! The one way the Docker API reaches shoal: gRPC clients of the daemon's
//! own local socket (`LocalNode`, `Control`, `Logs`) — exactly what the
//! `shoal` CLI calls. The front end keeps no state of its own: every answer
//! is read from, and every change written through, the control API, so the
//! two front ends can never disagree.

use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use shoal_proto::v1::control_client::ControlClient;
use shoal_proto::v1::local_node_client::LocalNodeClient;
use shoal_proto::v1::logs_client::LogsClient;
use shoal_proto::v1::{InfoRequest, InfoResponse};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::errors::ApiResult;

#[derive(Clone)]
pub struct Backend {
    channel: Channel,
}

impl Backend {
    /// Clients of the daemon socket at `path`, connected on first use (the
    /// daemon starts the Docker API before its own socket serves).
    pub fn unix(path: PathBuf) -> Backend {
        let channel = Endpoint::from_static("http://shoal.local").connect_with_connector_lazy(
            tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            }),
        );
        Backend { channel }
    }

    /// Clients over any channel (tests: an in-process server).
    pub fn from_channel(channel: Channel) -> Backend {
        Backend { channel }
    }

    pub fn control(&self) -> ControlClient<Channel> {
        ControlClient::new(self.channel.clone())
            .max_decoding_message_size(shoal_proto::MAX_RESPONSE_BYTES)
    }

    pub fn local(&self) -> LocalNodeClient<Channel> {
        LocalNodeClient::new(self.channel.clone())
    }

    pub fn logs(&self) -> LogsClient<Channel> {
        LogsClient::new(self.channel.clone())
    }

    /// This node's membership, as `shoal info` reads it.
    pub async fn info(&self) -> ApiResult<InfoResponse> {
        Ok(self.local().info(InfoRequest {}).await?.into_inner())
    }
}
