//! Whether a node may be removed or change role (pure): the checks of
//! `node rm`, `node promote` and `node demote`, apart from the Raft calls
//! that carry them out (in [`super::nodes`]).

use shoal_proto::v1::{Node, NodeRole, NodeState};

use crate::manager::Quorum;

/// Why `node rm` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemovalRefused {
    #[error(
        "node {0} is a swarm manager and a member of the Raft group: \
         demote it to a worker (`shoal node demote`) before removing it"
    )]
    RaftMember(String),
    #[error(
        "node {0} is not down and can't be removed: stop it or run `shoal swarm leave` on it first, \
         or use --force"
    )]
    NotDown(String),
}

/// Why `node promote` / `node demote` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleChangeRefused {
    #[error("node {0} is not Ready: only a running node can be promoted (its daemon joins the Raft group)")]
    NotReady(String),
    #[error(
        "node {0} is the last manager of the swarm: it cannot be demoted \
         (promote another node first)"
    )]
    LastManager(String),
    /// Removing the leader from its own group would leave the role change
    /// without a leader to record it.
    #[error(
        "node {0} is the current leader: demote it once another manager leads \
         (e.g. after restarting it), or demote the other managers"
    )]
    Leader(String),
}

impl From<RemovalRefused> for tonic::Status {
    fn from(refused: RemovalRefused) -> Self {
        tonic::Status::failed_precondition(refused.to_string())
    }
}

impl From<RoleChangeRefused> for tonic::Status {
    fn from(refused: RoleChangeRefused) -> Self {
        tonic::Status::failed_precondition(refused.to_string())
    }
}

/// `node rm`: a manager still in the Raft group (`in_raft`) never, a node
/// that is not down only with `force`.
pub fn check_removal(node: &Node, in_raft: bool, force: bool) -> Result<(), RemovalRefused> {
    if node.role() == NodeRole::Manager && in_raft {
        return Err(RemovalRefused::RaftMember(node.id.clone()));
    }
    let state = node.status.as_ref().map(|s| s.state()).unwrap_or_default();
    if state != NodeState::Down && !force {
        return Err(RemovalRefused::NotDown(node.id.clone()));
    }
    Ok(())
}

/// What a role change does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleChange {
    /// The node already is, or is becoming, what was asked.
    Nothing,
    /// Record the wish; the node's daemon, told over its session, acts on
    /// it (a promotion), or a pending promotion is called off.
    Desire(NodeRole),
    /// Demote a manager: out of the Raft group (when it is in it, `raft_id`),
    /// then recorded as a worker.
    Demote { raft_id: Option<u64> },
}

/// Decides `node promote` (`role` Manager) or `node demote` (Worker) of
/// `node`, given the Raft group as this leader sees it.
pub fn plan_role_change(
    node: &Node,
    role: NodeRole,
    quorum: &Quorum,
) -> Result<RoleChange, RoleChangeRefused> {
    let desired = node
        .spec
        .as_ref()
        .map(|s| s.desired_role())
        .unwrap_or_default();
    match role {
        NodeRole::Manager if node.role() == NodeRole::Manager || desired == NodeRole::Manager => {
            Ok(RoleChange::Nothing)
        }
        NodeRole::Manager => {
            let ready = node
                .status
                .as_ref()
                .is_some_and(|s| s.state() == NodeState::Ready);
            if !ready {
                return Err(RoleChangeRefused::NotReady(node.id.clone()));
            }
            Ok(RoleChange::Desire(NodeRole::Manager))
        }
        NodeRole::Worker if node.role() == NodeRole::Worker => {
            Ok(if desired == NodeRole::Manager {
                RoleChange::Desire(NodeRole::Worker)
            } else {
                RoleChange::Nothing
            })
        }
        NodeRole::Worker => {
            let raft_id = node.manager_status.as_ref().map(|m| m.raft_id).unwrap_or(0);
            if raft_id == 0 {
                return Ok(RoleChange::Demote { raft_id: None });
            }
            if quorum.voters.len() <= 1 {
                return Err(RoleChangeRefused::LastManager(node.id.clone()));
            }
            if quorum.leader == Some(raft_id) {
                return Err(RoleChangeRefused::Leader(node.id.clone()));
            }
            Ok(RoleChange::Demote {
                raft_id: Some(raft_id),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::v1::{ManagerStatus, NodeSpec, NodeStatus};

    fn node(role: NodeRole, desired: NodeRole, state: NodeState, raft_id: u64) -> Node {
        Node {
            id: "n1".into(),
            role: role as i32,
            spec: Some(NodeSpec {
                desired_role: desired as i32,
                ..Default::default()
            }),
            status: Some(NodeStatus {
                state: state as i32,
                ..Default::default()
            }),
            manager_status: (raft_id != 0).then(|| ManagerStatus {
                raft_id,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn quorum(voters: &[u64], leader: u64) -> Quorum {
        Quorum {
            voters: voters.to_vec(),
            reachable: voters.len(),
            leader: Some(leader),
        }
    }

    #[test]
    fn removal_needs_a_demoted_node_that_is_down_or_force() {
        let manager = node(NodeRole::Manager, NodeRole::Manager, NodeState::Down, 7);
        assert_eq!(
            check_removal(&manager, true, true),
            Err(RemovalRefused::RaftMember("n1".into()))
        );
        // A manager already out of the group (demotion under way) may go.
        assert_eq!(check_removal(&manager, false, false), Ok(()));
        let ready = node(NodeRole::Worker, NodeRole::Worker, NodeState::Ready, 0);
        assert_eq!(
            check_removal(&ready, false, false),
            Err(RemovalRefused::NotDown("n1".into()))
        );
        assert_eq!(check_removal(&ready, false, true), Ok(()));
        let down = node(NodeRole::Worker, NodeRole::Worker, NodeState::Down, 0);
        assert_eq!(check_removal(&down, false, false), Ok(()));
    }

    #[test]
    fn promotion_records_the_wish_of_a_ready_worker_once() {
        let q = quorum(&[1], 1);
        let ready = node(NodeRole::Worker, NodeRole::Worker, NodeState::Ready, 0);
        assert_eq!(
            plan_role_change(&ready, NodeRole::Manager, &q),
            Ok(RoleChange::Desire(NodeRole::Manager))
        );
        let down = node(NodeRole::Worker, NodeRole::Worker, NodeState::Down, 0);
        assert_eq!(
            plan_role_change(&down, NodeRole::Manager, &q),
            Err(RoleChangeRefused::NotReady("n1".into()))
        );
        let pending = node(NodeRole::Worker, NodeRole::Manager, NodeState::Down, 0);
        assert_eq!(
            plan_role_change(&pending, NodeRole::Manager, &q),
            Ok(RoleChange::Nothing)
        );
        // Demoting a worker whose promotion is pending calls it off.
        assert_eq!(
            plan_role_change(&pending, NodeRole::Worker, &q),
            Ok(RoleChange::Desire(NodeRole::Worker))
        );
        assert_eq!(
            plan_role_change(&ready, NodeRole::Worker, &q),
            Ok(RoleChange::Nothing)
        );
    }

    #[test]
    fn demotion_keeps_a_manager_and_a_leader_to_record_it() {
        let manager = node(NodeRole::Manager, NodeRole::Manager, NodeState::Ready, 2);
        assert_eq!(
            plan_role_change(&manager, NodeRole::Worker, &quorum(&[2], 2)),
            Err(RoleChangeRefused::LastManager("n1".into()))
        );
        assert_eq!(
            plan_role_change(&manager, NodeRole::Worker, &quorum(&[1, 2, 3], 2)),
            Err(RoleChangeRefused::Leader("n1".into()))
        );
        assert_eq!(
            plan_role_change(&manager, NodeRole::Worker, &quorum(&[1, 2, 3], 1)),
            Ok(RoleChange::Demote { raft_id: Some(2) })
        );
        // A manager without a Raft ID (never joined) is only recorded.
        let unjoined = node(NodeRole::Manager, NodeRole::Manager, NodeState::Ready, 0);
        assert_eq!(
            plan_role_change(&unjoined, NodeRole::Worker, &quorum(&[1], 1)),
            Ok(RoleChange::Demote { raft_id: None })
        );
    }
}
