//! The agent's side of the log broker: the subscription stream it opens for
//! each session, and which of [`crate::logs`] and [`crate::exec`] answers
//! each subscription.
//!
//! The manager cannot call the agent (agents only dial out), so `service
//! logs` and `service exec` arrive as subscriptions on a stream the agent
//! opened; each is answered by a client-streaming publish call tagged with the
//! subscription's ID.

use std::sync::Arc;

use shoal_proto::v1::log_broker_client::LogBrokerClient;
use shoal_proto::v1::{Subscription, SubscriptionsRequest};
use tonic::transport::Channel;

use crate::executor::runtimes::NodeRuntimes;

/// The session's subscription stream; pending forever when the manager has
/// none (an older manager) or it ended, so that the session loop can always
/// wait on it.
pub struct Subscriptions {
    stream: Option<tonic::Streaming<Subscription>>,
}

impl Subscriptions {
    pub async fn open(channel: Channel, session_id: &str) -> Self {
        let request = SubscriptionsRequest {
            session_id: session_id.to_string(),
        };
        match LogBrokerClient::new(channel).subscriptions(request).await {
            Ok(response) => Subscriptions {
                stream: Some(response.into_inner()),
            },
            Err(status) => {
                tracing::warn!(
                    "the manager takes no log or exec subscriptions: {}",
                    status.message()
                );
                Subscriptions { stream: None }
            }
        }
    }

    pub async fn next(&mut self) -> Subscription {
        loop {
            match self.stream.as_mut() {
                Some(stream) => match stream.message().await {
                    Ok(Some(subscription)) => return subscription,
                    Ok(None) | Err(_) => self.stream = None,
                },
                None => std::future::pending::<()>().await,
            }
        }
    }
}

/// Answers one subscription in the background.
pub fn spawn(channel: Channel, subscription: Subscription, runtimes: Arc<NodeRuntimes>) {
    tokio::spawn(async move {
        if subscription.exec_command.is_empty() {
            crate::logs::publish_logs(channel, subscription, runtimes).await
        } else {
            crate::exec::publish_exec(channel, subscription, runtimes).await
        }
    });
}
