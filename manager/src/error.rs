//! The manager's errors and their one mapping to gRPC statuses.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// Its status carries the leader's address in [`shoal_proto::LEADER_HINT`]
    /// metadata, so that agents and joining managers go straight there.
    #[error("{}", match leader {
        Some(addr) => format!("this manager is not the leader; the leader is at {addr}"),
        None => "this manager is not the leader and none is elected yet; retry".to_string(),
    })]
    NotLeader { leader: Option<String> },
    #[error("no quorum: the write was not committed within {seconds} s; a majority of managers must be reachable")]
    CommitTimeout { seconds: u64 },
    #[error("no quorum: {reachable} of {total} managers reachable; writes resume when a majority ({majority}) is back, or rebuild from a survivor with `shoal swarm init --force-new-cluster`")]
    NoQuorum {
        reachable: usize,
        total: usize,
        majority: usize,
    },
    #[error("no leader was elected within {seconds} s although {reachable} of {total} managers are reachable (a majority): an election is in progress; retry")]
    NoLeaderYet {
        seconds: u64,
        reachable: usize,
        total: usize,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("this manager has no cluster yet: the swarm is still being initialized")]
    NotInitialized,
    #[error("raft failed while {operation}: {message}")]
    Raft {
        operation: &'static str,
        message: String,
    },
    #[error("cannot open the manager's store at {path}: {message}")]
    Storage { path: String, message: String },
    #[error(transparent)]
    Security(#[from] shoal_security::SecurityError),
    #[error("the manager's listener failed: {0}")]
    Listener(String),
    /// The Raft store's keys: locked, a wrong unlock key, a changed value.
    #[error(transparent)]
    Encryption(#[from] crate::raft::encryption::EncryptionError),
}

impl ManagerError {
    /// The same failure for another waiter of a batched write.
    pub fn duplicate(&self) -> ManagerError {
        match self {
            ManagerError::NotLeader { leader } => ManagerError::NotLeader {
                leader: leader.clone(),
            },
            ManagerError::CommitTimeout { seconds } => {
                ManagerError::CommitTimeout { seconds: *seconds }
            }
            ManagerError::NoQuorum {
                reachable,
                total,
                majority,
            } => ManagerError::NoQuorum {
                reachable: *reachable,
                total: *total,
                majority: *majority,
            },
            ManagerError::NoLeaderYet {
                seconds,
                reachable,
                total,
            } => ManagerError::NoLeaderYet {
                seconds: *seconds,
                reachable: *reachable,
                total: *total,
            },
            ManagerError::Store(e) => ManagerError::Store(e.clone()),
            ManagerError::NotInitialized => ManagerError::NotInitialized,
            other => ManagerError::Raft {
                operation: "committing a batched write",
                message: other.to_string(),
            },
        }
    }
}

use crate::raft::encryption::EncryptionError;

impl From<ManagerError> for tonic::Status {
    fn from(error: ManagerError) -> Self {
        let message = error.to_string();
        match error {
            ManagerError::NotLeader { leader } => {
                let mut status = tonic::Status::unavailable(message);
                if let Some(value) = leader.and_then(|addr| addr.parse().ok()) {
                    status
                        .metadata_mut()
                        .insert(shoal_proto::LEADER_HINT, value);
                }
                status
            }
            ManagerError::NoQuorum { .. }
            | ManagerError::NoLeaderYet { .. }
            | ManagerError::CommitTimeout { .. } => tonic::Status::unavailable(message),
            ManagerError::Store(StoreError::NotFound { .. }) => tonic::Status::not_found(message),
            ManagerError::Store(StoreError::AlreadyExists { .. }) => {
                tonic::Status::already_exists(message)
            }
            ManagerError::Store(StoreError::Conflict(_)) => {
                tonic::Status::failed_precondition(message)
            }
            ManagerError::NotInitialized => tonic::Status::unavailable(message),
            ManagerError::Encryption(EncryptionError::Locked) => {
                tonic::Status::failed_precondition(message)
            }
            ManagerError::Encryption(
                EncryptionError::InvalidUnlockKey | EncryptionError::MalformedUnlockKey(_),
            ) => tonic::Status::invalid_argument(message),
            ManagerError::Encryption(_) => tonic::Status::internal(message),
            ManagerError::Raft { .. }
            | ManagerError::Storage { .. }
            | ManagerError::Security(_)
            | ManagerError::Listener(_) => tonic::Status::internal(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_leader_keeps_the_leader_hint() {
        let status = tonic::Status::from(ManagerError::NotLeader {
            leader: Some("127.0.0.1:2377".into()),
        });
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(
            status.metadata().get(shoal_proto::LEADER_HINT).unwrap(),
            "127.0.0.1:2377"
        );
        assert!(status.message().contains("the leader is at 127.0.0.1:2377"));
        let none = tonic::Status::from(ManagerError::NotLeader { leader: None });
        assert!(none.metadata().get(shoal_proto::LEADER_HINT).is_none());
        assert!(none.message().contains("none is elected yet"));
    }
}
