//! `node ls`, `node inspect`, `node rm`, `node update` (availability,
//! labels) and `node promote` / `node demote`, served on the leader. The
//! checks are [`super::policy`]'s; this module carries them out.

use shoal_proto::v1::{
    GetNodeRequest, ListNodesRequest, ListNodesResponse, Node, NodeAvailability, NodeRole,
    RemoveNodeRequest, RemoveNodeResponse, UpdateNodeRequest,
};
use tonic::{Request, Response, Status};

use super::policy::{self, RoleChange};
use super::ControlService;
use crate::store::{ClusterState, Command};

/// Finds a node by ID, hostname or unique ID prefix.
pub fn resolve_node<'a>(state: &'a ClusterState, reference: &str) -> Result<&'a Node, Status> {
    if reference.is_empty() {
        return Err(Status::invalid_argument(
            "a node ID or hostname is required",
        ));
    }
    if let Some(node) = state.nodes.get(reference) {
        return Ok(node);
    }
    let hostname = |n: &&Node| {
        n.description
            .as_ref()
            .is_some_and(|d| d.hostname == reference)
    };
    let prefix = |n: &&Node| n.id.starts_with(reference);
    for matcher in [&hostname as &dyn Fn(&&Node) -> bool, &prefix] {
        let found: Vec<&Node> = state.nodes.values().filter(matcher).collect();
        match found.len() {
            0 => continue,
            1 => return Ok(found[0]),
            n => {
                return Err(Status::failed_precondition(format!(
                    "node {reference} is ambiguous ({n} matches): use the full node ID"
                )))
            }
        }
    }
    Err(Status::not_found(format!("No such node: {reference}")))
}

impl ControlService {
    pub(super) async fn list_nodes_here(
        &self,
        _request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        let nodes = self
            .manager
            .store()
            .read(|s| s.nodes.values().cloned().collect::<Vec<_>>());
        let nodes = nodes
            .into_iter()
            .map(|n| self.with_manager_status(n))
            .collect();
        Ok(Response::new(ListNodesResponse { nodes }))
    }

    pub(super) async fn get_node_here(
        &self,
        request: Request<GetNodeRequest>,
    ) -> Result<Response<Node>, Status> {
        let reference = request.into_inner().node;
        let node = self
            .manager
            .store()
            .read(|s| resolve_node(s, &reference).cloned())?;
        Ok(Response::new(self.with_manager_status(node)))
    }

    pub(super) async fn remove_node_here(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeResponse>, Status> {
        let RemoveNodeRequest { node, force } = request.into_inner();
        let node = self
            .manager
            .store()
            .read(|s| resolve_node(s, &node).cloned())?;
        let in_raft = node.manager_status.as_ref().is_some_and(|m| {
            m.raft_id != 0
                && self
                    .manager
                    .raft()
                    .metrics()
                    .borrow()
                    .membership_config
                    .membership()
                    .voter_ids()
                    .any(|id| id == m.raft_id)
        });
        policy::check_removal(&node, in_raft, force)?;
        self.manager
            .propose(Command::RemoveNode {
                node_id: node.id.clone(),
            })
            .await?;
        self.manager.dispatcher().end_session(&node.id);
        Ok(Response::new(RemoveNodeResponse { node_id: node.id }))
    }

    /// `node promote` / `node demote`. Demotion removes the manager from the
    /// Raft group here (refused if it is the last one, or if the rest would
    /// lose quorum, unless forced); promotion records the wish, and the
    /// node's daemon — told over its session — gets a manager certificate
    /// and joins the group itself.
    async fn change_role(&self, node: &Node, role: NodeRole, force: bool) -> Result<(), Status> {
        match policy::plan_role_change(node, role, &self.manager.quorum())? {
            RoleChange::Nothing => {}
            RoleChange::Desire(role) => {
                self.manager
                    .propose(Command::SetDesiredRole {
                        node_id: node.id.clone(),
                        role,
                        at_ms: crate::now_ms(),
                    })
                    .await?
            }
            RoleChange::Demote { raft_id } => {
                if let Some(raft_id) = raft_id {
                    self.manager.remove_manager(raft_id, force).await?;
                }
                self.manager
                    .propose(Command::SetNodeRole {
                        node_id: node.id.clone(),
                        role: NodeRole::Worker,
                        manager_status: None,
                        at_ms: crate::now_ms(),
                    })
                    .await?
            }
        }
        Ok(())
    }

    pub(super) async fn update_node_here(
        &self,
        request: Request<UpdateNodeRequest>,
    ) -> Result<Response<Node>, Status> {
        let request = request.into_inner();
        let node = self
            .manager
            .store()
            .read(|s| resolve_node(s, &request.node).cloned())?;
        if let Some(role) = request.role {
            let role = NodeRole::try_from(role)
                .map_err(|_| Status::invalid_argument(format!("unknown role {role}")))?;
            self.change_role(&node, role, request.force).await?;
            let updated = self
                .manager
                .store()
                .read(|s| s.nodes.get(&node.id).cloned())
                .ok_or_else(|| Status::not_found(format!("No such node: {}", request.node)))?;
            return Ok(Response::new(self.with_manager_status(updated)));
        }
        let mut label_add = Vec::new();
        for entry in &request.label_add {
            let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            if k.is_empty() {
                return Err(Status::invalid_argument(format!(
                    "invalid --label-add {entry:?}: expected KEY=VALUE or KEY"
                )));
            }
            label_add.push((k.to_string(), v.to_string()));
        }
        let labels = node
            .spec
            .as_ref()
            .map(|s| s.labels.clone())
            .unwrap_or_default();
        for key in &request.label_rm {
            if !labels.contains_key(key) && !label_add.iter().any(|(k, _)| k == key) {
                return Err(Status::invalid_argument(format!(
                    "label {key} does not exist on node {}: nothing to remove",
                    node.id
                )));
            }
        }
        let availability = match request.availability {
            Some(a) => Some(
                NodeAvailability::try_from(a)
                    .map_err(|_| Status::invalid_argument(format!("unknown availability {a}")))?,
            ),
            None => None,
        };
        self.manager
            .propose(Command::UpdateNodeSpec {
                node_id: node.id.clone(),
                availability,
                label_add,
                label_rm: request.label_rm,
                at_ms: crate::now_ms(),
            })
            .await?;
        let updated = self
            .manager
            .store()
            .read(|s| s.nodes.get(&node.id).cloned())
            .ok_or_else(|| Status::not_found(format!("No such node: {}", request.node)))?;
        Ok(Response::new(self.with_manager_status(updated)))
    }
}
