//! Every write to the cluster's state: one [`Proposer`] per manager, shared
//! by the control API, the dispatcher and the leader loops.
//!
//! A proposal fails at once, saying how many managers answer, when this
//! manager leads without a majority (rather than after the commit timeout),
//! and concurrent proposals share log entries (see [`batch_proposals`]).

use std::sync::Arc;

use crate::peers::PeerHealth;
use crate::raft::types::Raft;
use crate::store::Command;
use crate::ManagerError;

type Proposal = (
    Command,
    tokio::sync::oneshot::Sender<Result<(), ManagerError>>,
);

/// Most proposals in one log entry.
pub(crate) const MAX_BATCH: usize = 1024;
/// Batches committing at once: while they wait, the next batch fills up.
const BATCHES_IN_FLIGHT: usize = 2;

/// Turns concurrent proposals into few log entries: each entry carries every
/// proposal that queued while the previous ones were committing, so the
/// per-entry costs (log write, replication, fsync) are shared. Each proposal
/// still gets its own result.
async fn batch_proposals(raft: Raft, mut queue: tokio::sync::mpsc::UnboundedReceiver<Proposal>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(BATCHES_IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if batch.len() == 1 {
                let (command, done) = batch.pop().expect("one proposal");
                let _ = done.send(crate::raft::propose(&raft, command).await);
                return;
            }
            let (commands, waiters): (Vec<Command>, Vec<_>) = batch.into_iter().unzip();
            match crate::raft::propose_batch(&raft, commands).await {
                Ok(results) => {
                    for (result, done) in results.into_iter().zip(waiters) {
                        let _ = done.send(result.map_err(ManagerError::from));
                    }
                }
                Err(e) => {
                    for done in waiters {
                        let _ = done.send(Err(e.duplicate()));
                    }
                }
            }
        });
    }
}

/// Voters, how many of them answer (this manager included), and the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quorum {
    pub voters: Vec<u64>,
    pub reachable: usize,
    pub leader: Option<u64>,
}

impl Quorum {
    pub fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    pub fn has_majority(&self) -> bool {
        self.reachable >= self.majority()
    }

    /// The refusal a leader without a majority gives.
    pub fn no_quorum(&self) -> ManagerError {
        ManagerError::NoQuorum {
            reachable: self.reachable,
            total: self.voters.len(),
            majority: self.majority(),
        }
    }
}

/// A handle that commits commands through Raft; cheap to clone.
#[derive(Clone)]
pub struct Proposer {
    raft: Raft,
    raft_id: u64,
    health: Arc<PeerHealth>,
    queue: tokio::sync::mpsc::UnboundedSender<Proposal>,
}

impl Proposer {
    /// The proposer and the batching task it needs running.
    pub fn new(
        raft: Raft,
        raft_id: u64,
        health: Arc<PeerHealth>,
    ) -> (Self, impl std::future::Future<Output = ()>) {
        let (queue, proposals) = tokio::sync::mpsc::unbounded_channel();
        let batcher = batch_proposals(raft.clone(), proposals);
        (
            Proposer {
                raft,
                raft_id,
                health,
                queue,
            },
            batcher,
        )
    }

    /// Voters, how many of them answer (this manager included), and the leader.
    pub fn quorum(&self) -> Quorum {
        let metrics = self.raft.metrics().borrow().clone();
        let voters: Vec<u64> = metrics.membership_config.membership().voter_ids().collect();
        let reachable = voters
            .iter()
            .filter(|id| **id == self.raft_id || self.health.is_reachable(**id))
            .count();
        Quorum {
            voters,
            reachable,
            leader: metrics.current_leader,
        }
    }

    /// Commits `command` through Raft and returns once it applied here.
    /// Fails at once, saying how many managers answer, when this leader has
    /// lost its majority.
    pub async fn propose(&self, command: Command) -> Result<(), ManagerError> {
        let quorum = self.quorum();
        if quorum.leader == Some(self.raft_id) && !quorum.has_majority() {
            return Err(quorum.no_quorum());
        }
        let shutting_down = || ManagerError::Raft {
            operation: "proposing",
            message: "the manager is shutting down".into(),
        };
        let (done, result) = tokio::sync::oneshot::channel();
        if self.queue.send((command, done)).is_err() {
            return Err(shutting_down());
        }
        result.await.unwrap_or_else(|_| Err(shutting_down()))
    }
}
