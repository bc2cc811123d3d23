//! Why a membership change (`swarm init|join|leave|unlock`, a promotion or
//! a demotion) failed, as the daemon knows it; turned into a gRPC status
//! only at the local API's edge ([`From<MembershipError> for Status`]).
//! A manager's own answer travels whole ([`MembershipError::Remote`]), so
//! its code, message and metadata (a leader hint) reach the CLI unchanged.

use shoal_manager::ManagerError;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// The node is not in the state the request needs (already in a swarm,
    /// locked, the last manager…).
    #[error("{0}")]
    NotNow(String),
    /// What the operator gave is wrong (a token, an address, a setting).
    #[error("{0}")]
    BadInput(String),
    /// No manager answered.
    #[error("{0}")]
    Unreachable(String),
    /// A manager did not finish in time.
    #[error("{0}")]
    TimedOut(String),
    /// The swarm's CA is not the one the join token names.
    #[error("{0}")]
    WrongCa(String),
    /// This node's own part failed (disk, keys, a listener).
    #[error("{0}")]
    Local(String),
    #[error(transparent)]
    Manager(#[from] ManagerError),
    /// A manager refused or failed the call: its status, passed on.
    #[error("{}", .0.message())]
    Remote(#[from] Status),
}

impl MembershipError {
    pub fn not_now(message: impl Into<String>) -> Self {
        MembershipError::NotNow(message.into())
    }
    pub fn bad_input(message: impl Into<String>) -> Self {
        MembershipError::BadInput(message.into())
    }
    pub fn unreachable(message: impl Into<String>) -> Self {
        MembershipError::Unreachable(message.into())
    }
    pub fn timed_out(message: impl Into<String>) -> Self {
        MembershipError::TimedOut(message.into())
    }
    pub fn wrong_ca(message: impl Into<String>) -> Self {
        MembershipError::WrongCa(message.into())
    }
    pub fn local(message: impl Into<String>) -> Self {
        MembershipError::Local(message.into())
    }
}

impl From<MembershipError> for Status {
    fn from(e: MembershipError) -> Status {
        match e {
            MembershipError::NotNow(m) => Status::failed_precondition(m),
            MembershipError::BadInput(m) => Status::invalid_argument(m),
            MembershipError::Unreachable(m) => Status::unavailable(m),
            MembershipError::TimedOut(m) => Status::deadline_exceeded(m),
            MembershipError::WrongCa(m) => Status::permission_denied(m),
            MembershipError::Local(m) => Status::internal(m),
            MembershipError::Manager(e) => e.into(),
            MembershipError::Remote(status) => status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_keeps_its_code_and_a_managers_status_travels_whole() {
        let code = |e: MembershipError| Status::from(e).code();
        assert_eq!(
            code(MembershipError::not_now("x")),
            tonic::Code::FailedPrecondition
        );
        assert_eq!(
            code(MembershipError::bad_input("x")),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            code(MembershipError::unreachable("x")),
            tonic::Code::Unavailable
        );
        assert_eq!(
            code(MembershipError::timed_out("x")),
            tonic::Code::DeadlineExceeded
        );
        assert_eq!(
            code(MembershipError::wrong_ca("x")),
            tonic::Code::PermissionDenied
        );
        assert_eq!(code(MembershipError::local("x")), tonic::Code::Internal);
        let mut remote = Status::unavailable("not the leader");
        remote
            .metadata_mut()
            .insert("x-shoal-leader", "10.0.0.1:2377".parse().unwrap());
        let passed = Status::from(MembershipError::from(remote));
        assert_eq!(passed.code(), tonic::Code::Unavailable);
        assert_eq!(passed.message(), "not the leader");
        assert!(passed.metadata().get("x-shoal-leader").is_some());
    }
}
