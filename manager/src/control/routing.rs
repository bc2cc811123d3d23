//! Where a control call is served: here, or forwarded to the leader.
//!
//! [`ControlService::serve`] is the one path every call takes: authorize,
//! [`route`](ControlService::route) (this manager leads, or a local read was
//! asked for), else [`forward`](ControlService::forward) to the leader with
//! retries across a leader change. A forwarded call is marked
//! ([`FORWARDED`]) so that two managers that disagree about the leader never
//! bounce it forever.

use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use shoal_proto::v1::control_client::ControlClient;
use shoal_proto::v1::{
    CreateNetworkRequest, CreateServiceRequest, GetNetworkRequest, GetServiceRequest, Network,
    Service, UpdateServiceRequest,
};

use super::ControlService;

/// Where a call may be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Served {
    /// A write: on the leader, through the log.
    Write,
    /// A read: linearizable on the leader, or this manager's applied state
    /// when `local` (`--local`) asks for it.
    Read { local: bool },
    /// State kept only in the leader's memory: the leader serves it as it
    /// stands (no read barrier), any other manager forwards it.
    LeaderMemory,
}

/// A read served on the leader.
pub(super) const READ: Served = Served::Read { local: false };

/// One forwarded control call, sent to a leader's client.
pub(super) type Call<Req, Resp> =
    fn(ControlClient<Channel>, Request<Req>) -> BoxFuture<'static, Result<Response<Resp>, Status>>;
/// Looks up, on the new leader, whether a call that may have committed did.
pub(super) type Lookup<Req, Resp> =
    fn(ControlClient<Channel>, Req) -> BoxFuture<'static, Option<Resp>>;

/// How long a forwarded call keeps looking for a leader that answers.
const FORWARD_PATIENCE: Duration = crate::manager::LEADER_PATIENCE;
/// How long a retry waits for a leader other than the one that just failed.
const ELECTION_WAIT: Duration = Duration::from_secs(1);

/// Whether a forwarded call's failure is the connection's or a leader
/// change's (worth sending again), rather than the leader's own answer.
/// "no quorum" from the leader itself is final: it already waited.
fn retryable(status: &Status) -> bool {
    match status.code() {
        tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::DeadlineExceeded => true,
        tonic::Code::Unavailable => !status.message().starts_with("no quorum"),
        _ => false,
    }
}

/// The create's lookup: a service of that name with exactly that spec is
/// the one the lost attempt created.
pub(super) fn created_service(
    mut leader: ControlClient<Channel>,
    request: CreateServiceRequest,
) -> BoxFuture<'static, Option<Service>> {
    Box::pin(async move {
        let spec = request.spec?;
        let lookup = GetServiceRequest {
            service: spec.name.clone(),
        };
        let info = leader
            .get_service(forwarded(Request::new(lookup)))
            .await
            .ok()?
            .into_inner();
        info.service.filter(|s| s.spec.as_ref() == Some(&spec))
    })
}

/// The update's lookup: an update that carries the spec version it expects
/// and committed before its reply was lost shows as exactly its spec, one
/// version on. Sending it again would fail as a version conflict — with the
/// caller's own write.
pub(super) fn updated_service(
    mut leader: ControlClient<Channel>,
    request: UpdateServiceRequest,
) -> BoxFuture<'static, Option<Service>> {
    Box::pin(async move {
        let lookup = GetServiceRequest {
            service: request.service.clone(),
        };
        let info = leader
            .get_service(forwarded(Request::new(lookup)))
            .await
            .ok()?
            .into_inner();
        info.service
            .filter(|stored| is_committed_update(&request, stored))
    })
}

/// Whether `stored` is what `request` makes of the version it expects: the
/// spec it sends at the next version. Only for updates that name a version
/// (an unconditional one is harmless to repeat) and change the spec (one
/// that does not keeps the version, so its repeat does not conflict); a
/// rollback's result is not known from the request.
pub fn is_committed_update(request: &UpdateServiceRequest, stored: &Service) -> bool {
    !request.rollback
        && request.expected_spec_version != 0
        && request.spec.is_some()
        && stored.spec_version == request.expected_spec_version + 1
        && stored.spec == request.spec
}

/// The network create's lookup: a network of that name with exactly that
/// spec (the driver filled in) is the one the lost attempt created.
pub(super) fn created_network(
    mut leader: ControlClient<Channel>,
    request: CreateNetworkRequest,
) -> BoxFuture<'static, Option<Network>> {
    Box::pin(async move {
        let mut spec = request.spec?;
        if spec.driver.is_empty() {
            spec.driver = crate::network::spec::OVERLAY.into();
        }
        let lookup = GetNetworkRequest {
            network: spec.name.clone(),
        };
        let info = leader
            .get_network(forwarded(Request::new(lookup)))
            .await
            .ok()?
            .into_inner();
        info.network.filter(|n| n.spec.as_ref() == Some(&spec))
    })
}

/// Metadata marking a call one manager forwarded to another, so that two
/// managers that disagree about the leader never bounce a call forever.
pub const FORWARDED: &str = "x-shoal-forwarded";
pub use shoal_proto::LEADER_HINT;

/// The request, marked as forwarded, for the leader.
fn forwarded<T>(request: Request<T>) -> Request<T> {
    let mut out = Request::new(request.into_inner());
    out.metadata_mut()
        .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
    out
}

impl ControlService {
    /// The one path of every control call: authorize, then serve it here
    /// (`here`) or forward it to the leader (`call`, with `lookup` to find
    /// out whether a write whose reply was lost committed).
    pub(super) async fn serve<Req, Resp, Here, Fut>(
        &self,
        request: Request<Req>,
        served: Served,
        call: Call<Req, Resp>,
        lookup: Option<Lookup<Req, Resp>>,
        here: Here,
    ) -> Result<Response<Resp>, Status>
    where
        Req: Clone + Send + 'static,
        Resp: Send + 'static,
        Here: FnOnce(Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        self.authorize(&request)?;
        if self.route(&request, served).await? {
            return self.forward(request.into_inner(), call, lookup).await;
        }
        here(request).await
    }

    /// Whether a call goes to the leader (`true`) or is served here (this
    /// manager leads, or a local read was asked for). Reads served by the
    /// leader are linearizable: it confirms its leadership first.
    async fn route<T>(&self, request: &Request<T>, served: Served) -> Result<bool, Status> {
        let read = match served {
            Served::Read { local: true } => return Ok(false),
            Served::Read { local: false } => true,
            Served::Write | Served::LeaderMemory => false,
        };
        if self.manager.is_leader() && !read {
            // A write is linearizable by going through the log.
            return Ok(false);
        }
        if self.manager.is_leader() {
            // A missed heartbeat round (a busy peer) is no reason to fail a
            // read: try a few rounds before saying the quorum is gone.
            let mut attempt = 0;
            loop {
                match self.manager.raft().ensure_linearizable().await {
                    Ok(_) => break,
                    Err(_) if attempt < 5 => {
                        attempt += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    Err(e) => {
                        return Err(self.forward_error(Status::unavailable(format!(
                            "cannot confirm leadership: {e}"
                        ))))
                    }
                }
            }

            return Ok(false);
        }
        if request.metadata().get(FORWARDED).is_some() {
            return Err(Status::unavailable(
                "this manager is not the leader either (a leader change is in progress): retry",
            ));
        }
        Ok(true)
    }

    /// Forwards a call to the leader. When the leader's connection breaks,
    /// or the leader is lost while the call is in flight (its heartbeats
    /// stopped and an election began — a silent partition never breaks the
    /// connection), the call is sent again to the new leader as soon as one
    /// is known, within [`FORWARD_PATIENCE`]. A call that may have committed
    /// is not repeated blindly: `lookup` (creates, versioned updates) first
    /// asks the new leader whether its effect is already there. Other writes
    /// are safe to repeat (they set fields).
    async fn forward<Req, Resp>(
        &self,
        message: Req,
        call: Call<Req, Resp>,
        lookup: Option<Lookup<Req, Resp>>,
    ) -> Result<Response<Resp>, Status>
    where
        Req: Clone + Send + 'static,
        Resp: Send + 'static,
    {
        let deadline = Instant::now() + FORWARD_PATIENCE;
        let mut failed: Option<u64> = None;
        let mut last: Option<Status> = None;
        loop {
            // A new leader first; the same one again only after an election's
            // worth of waiting (its connection may just have been reset).
            let other = deadline.min(Instant::now() + ELECTION_WAIT);
            let leader = match self.manager.leader_other_than(failed, other).await {
                Some(leader) => Some(leader),
                None => self.manager.leader_other_than(None, deadline).await,
            };
            let Some((leader, addr)) = leader else {
                return Err(match last {
                    Some(status) => self.forward_error(status),
                    None => self.manager.no_leader_error(FORWARD_PATIENCE).into(),
                });
            };
            let client = self.manager.control_at(&addr)?;
            if let (Some(lookup), true) = (lookup, failed.is_some()) {
                if let Some(found) = lookup(client.clone(), message.clone()).await {
                    return Ok(Response::new(found));
                }
            }
            let outcome = tokio::select! {
                outcome = call(client, forwarded(Request::new(message.clone()))) => Some(outcome),
                _ = self.manager.leader_lost(leader) => None,
            };
            let status = match outcome {
                Some(Ok(response)) => return Ok(response),
                Some(Err(status)) if !retryable(&status) => return Err(self.forward_error(status)),
                Some(Err(status)) => status,
                None => Status::unavailable(format!(
                    "the leader at {addr} was lost while the call was in flight"
                )),
            };
            tracing::info!(leader = %addr, error = %status.message(), "forwarded call failed; retrying against the next leader");
            failed = Some(leader);
            last = Some(status);
            if Instant::now() >= deadline {
                return Err(self.forward_error(last.expect("a failure")));
            }
        }
    }

    /// A forwarded call that failed in transport: say what an operator can act on.
    fn forward_error(&self, status: Status) -> Status {
        let transport = matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown
        ) && !status.message().starts_with("no quorum");
        if !transport {
            return status;
        }
        let quorum = self.manager.quorum();
        if !quorum.has_majority() {
            return crate::ManagerError::NoQuorum {
                reachable: quorum.reachable,
                total: quorum.voters.len(),
                majority: quorum.majority(),
            }
            .into();
        }
        Status::unavailable(format!(
            "the leader could not be reached ({}): a leader change is probably in progress; retry",
            status.message()
        ))
    }
}

#[cfg(test)]
mod tests {
    use shoal_proto::v1::{Service, ServiceSpec, UpdateServiceRequest};

    use super::is_committed_update;

    fn spec(replicas: u64) -> ServiceSpec {
        ServiceSpec {
            name: "web".into(),
            replicas,
            ..Default::default()
        }
    }

    fn update(expected: u64, replicas: u64) -> UpdateServiceRequest {
        UpdateServiceRequest {
            service: "web".into(),
            spec: Some(spec(replicas)),
            expected_spec_version: expected,
            rollback: false,
        }
    }

    fn stored(version: u64, replicas: u64) -> Service {
        Service {
            spec: Some(spec(replicas)),
            spec_version: version,
            ..Default::default()
        }
    }

    #[test]
    fn an_update_that_committed_is_recognised_by_its_spec_one_version_on() {
        assert!(is_committed_update(&update(4, 3), &stored(5, 3)));
    }

    #[test]
    fn anything_else_is_not_taken_for_the_callers_write() {
        // Not committed yet: still at the expected version.
        assert!(!is_committed_update(&update(4, 3), &stored(4, 1)));
        // Another writer's spec at the next version.
        assert!(!is_committed_update(&update(4, 3), &stored(5, 2)));
        // The same spec, but further on: another write came in between.
        assert!(!is_committed_update(&update(4, 3), &stored(6, 3)));
        // Unconditional updates and rollbacks are not looked up.
        assert!(!is_committed_update(&update(0, 3), &stored(1, 3)));
        let mut rollback = update(4, 3);
        rollback.rollback = true;
        assert!(!is_committed_update(&rollback, &stored(5, 3)));
    }
}
