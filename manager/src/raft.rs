//! Consensus: openraft 0.9 (storage-v2) over sled, with the Raft RPCs on the
//! managers' mutual-TLS listener.
//!
//! # Layout
//! - [`types`]: the openraft type configuration.
//! - [`encryption`]: the data key every stored value is sealed with, the
//!   key-encryption key that wraps it (key file or the unlock key).
//! - [`migrate`]: opens a manager's Raft directory with its keys, encrypting
//!   a store written by an older release once.
//! - [`key_follower`]: re-wraps the store key when autolock is turned on or
//!   off or its key rotated.
//! - [`log_store`]: the Raft log, vote and commit index in sled, flushed
//!   before a write is acknowledged.
//! - [`state_machine`]: applies commands to the [`crate::store::ClusterState`],
//!   publishes the changes, builds and installs snapshots (kept in sled).
//! - [`network`]: the client side of Raft RPCs to other managers.
//! - [`service`]: the server side of Raft RPCs.

pub mod encryption;
pub mod key_follower;
pub mod log_store;
pub mod migrate;
pub mod network;
pub mod service;
pub mod state_machine;
pub mod types;

#[cfg(test)]
mod tests;

use openraft::{AnyError, ErrorSubject, ErrorVerb, StorageError};

/// How long opening the database waits for a lock that this process's
/// previous handle on it still holds.
const DB_LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// The sled database of one manager, with the trees the Raft parts use.
///
/// A handle dropped in this same process (a manager stopped and started
/// again without the process exiting: `swarm leave` and a new join, or a
/// store migrated and reopened) keeps the file lock until sled's flusher
/// thread lets go of it, a moment later; opening meanwhile fails with
/// "could not acquire lock" (EWOULDBLOCK). That is waited out, for up to
/// two seconds; a lock still held after that (another process on the same
/// data directory) is reported as sled says it.
pub fn open_db(path: &std::path::Path) -> Result<sled::Db, sled::Error> {
    let deadline = std::time::Instant::now() + DB_LOCK_PATIENCE;
    loop {
        match sled::Config::new().path(path).open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

pub(crate) fn storage_error(
    subject: ErrorSubject<u64>,
    verb: ErrorVerb,
    error: impl std::error::Error + 'static,
) -> StorageError<u64> {
    StorageError::from_io_error(
        subject,
        verb,
        std::io::Error::other(AnyError::new(&error).to_string()),
    )
}

/// Whether manager `raft_id` currently leads, as `raft` sees it.
pub fn is_leader(raft: &types::Raft, raft_id: u64) -> bool {
    raft.metrics().borrow().current_leader == Some(raft_id)
}

/// The current leader's Raft ID and address, if one is known.
pub fn current_leader(raft: &types::Raft) -> Option<(u64, String)> {
    let metrics = raft.metrics().borrow().clone();
    let leader = metrics.current_leader?;
    let node = metrics.membership_config.membership().get_node(&leader)?;
    Some((leader, node.addr.clone()))
}

/// Advertise addresses of every manager in the Raft membership.
pub fn member_addrs(raft: &types::Raft) -> Vec<String> {
    let metrics = raft.metrics().borrow().clone();
    metrics
        .membership_config
        .nodes()
        .map(|(_, node)| node.addr.clone())
        .collect()
}

/// "Not the leader", carrying the leader's address (when known) in the
/// `LEADER_HINT` metadata so that callers go straight there.
pub fn not_leader(leader_addr: Option<&str>) -> tonic::Status {
    crate::ManagerError::NotLeader {
        leader: leader_addr.map(str::to_string),
    }
    .into()
}

/// How long a write may wait for commitment before it fails as "no quorum".
pub const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Commits several independent commands as one log entry; one result each.
pub async fn propose_batch(
    raft: &types::Raft,
    commands: Vec<crate::store::Command>,
) -> Result<Vec<crate::store::CommandResult>, crate::ManagerError> {
    use crate::store::{Applied, Command};
    use crate::ManagerError;
    use openraft::error::{ClientWriteError, RaftError};
    let n = commands.len();
    match tokio::time::timeout(WRITE_TIMEOUT, raft.client_write(Command::Batch(commands))).await {
        Err(_) => Err(ManagerError::CommitTimeout {
            seconds: WRITE_TIMEOUT.as_secs(),
        }),
        Ok(Ok(response)) => match response.data {
            Applied::Many(results) if results.len() == n => Ok(results),
            other => Err(ManagerError::Raft {
                operation: "applying a batch",
                message: format!("unexpected result {other:?}"),
            }),
        },
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
            Err(ManagerError::NotLeader {
                leader: forward.leader_node.map(|n| n.addr),
            })
        }
        Ok(Err(e)) => Err(ManagerError::Raft {
            operation: "committing a write",
            message: e.to_string(),
        }),
    }
}

/// Commits `command` through Raft and returns once it applied on this manager.
pub async fn propose(
    raft: &types::Raft,
    command: crate::store::Command,
) -> Result<(), crate::ManagerError> {
    use crate::ManagerError;
    use openraft::error::{ClientWriteError, RaftError};
    match tokio::time::timeout(WRITE_TIMEOUT, raft.client_write(command)).await {
        Err(_) => Err(ManagerError::CommitTimeout {
            seconds: WRITE_TIMEOUT.as_secs(),
        }),
        Ok(Ok(response)) => response.data.into_result().map_err(ManagerError::from),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
            Err(ManagerError::NotLeader {
                leader: forward.leader_node.map(|n| n.addr),
            })
        }
        Ok(Err(e)) => Err(ManagerError::Raft {
            operation: "committing a write",
            message: e.to_string(),
        }),
    }
}
