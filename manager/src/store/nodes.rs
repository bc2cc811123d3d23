//! Applying cluster and node commands.

use shoal_proto::v1::{
    Cluster, ManagerStatus, Node, NodeAvailability, NodeDescription, NodeRole, NodeState,
    NodeStatus,
};

use super::state::{bump, Change, ClusterState, CommandResult, ObjectKind, StoreError, StoreEvent};

impl ClusterState {
    pub(super) fn create_cluster(
        &mut self,
        cluster: Cluster,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        if let Some(existing) = &self.cluster {
            return Err(StoreError::AlreadyExists {
                kind: ObjectKind::Cluster,
                id: existing.id.clone(),
            });
        }
        events.push(StoreEvent::ClusterUpdated(cluster.clone()));
        self.cluster = Some(cluster);
        Ok(())
    }

    pub(super) fn set_join_token(
        &mut self,
        role: NodeRole,
        token: String,
        at_ms: i64,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        let cluster = self.cluster.as_mut().ok_or(StoreError::NotFound {
            kind: ObjectKind::Cluster,
            id: String::new(),
        })?;
        let tokens = cluster.join_tokens.get_or_insert_with(Default::default);
        match role {
            NodeRole::Worker => tokens.worker = token,
            NodeRole::Manager => tokens.manager = token,
        }
        bump(&mut cluster.meta, at_ms);
        events.push(StoreEvent::ClusterUpdated(cluster.clone()));
        Ok(())
    }

    pub(super) fn create_node(
        &mut self,
        node: Node,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        if self.nodes.contains_key(&node.id) {
            return Err(StoreError::AlreadyExists {
                kind: ObjectKind::Node,
                id: node.id,
            });
        }
        events.push(StoreEvent::Node(Change::Created, node.clone()));
        self.nodes.insert(node.id.clone(), node);
        Ok(())
    }

    pub(super) fn node_session_started(
        &mut self,
        node_id: &str,
        description: NodeDescription,
        addr: String,
        at_ms: i64,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        let node = self.node_mut(node_id)?;
        node.description = Some(description);
        node.status = Some(NodeStatus {
            state: NodeState::Ready as i32,
            message: String::new(),
            addr,
            session_started_at_ms: at_ms,
        });
        bump(&mut node.meta, at_ms);
        events.push(StoreEvent::Node(Change::Updated, node.clone()));
        Ok(())
    }

    pub(super) fn node_down(
        &mut self,
        node_id: &str,
        message: String,
        at_ms: i64,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        let node = self.node_mut(node_id)?;
        let status = node.status.get_or_insert_with(Default::default);
        status.state = NodeState::Down as i32;
        status.message = message;
        bump(&mut node.meta, at_ms);
        events.push(StoreEvent::Node(Change::Updated, node.clone()));
        Ok(())
    }

    pub(super) fn remove_node(
        &mut self,
        node_id: &str,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        let node = self.nodes.remove(node_id).ok_or(StoreError::NotFound {
            kind: ObjectKind::Node,
            id: node_id.to_string(),
        })?;
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.removed_nodes.push(node_id.to_string());
            events.push(StoreEvent::ClusterUpdated(cluster.clone()));
        }
        events.push(StoreEvent::Node(Change::Removed, node));
        Ok(())
    }

    pub(super) fn update_node_spec(
        &mut self,
        node_id: &str,
        availability: Option<NodeAvailability>,
        label_add: Vec<(String, String)>,
        label_rm: Vec<String>,
        at_ms: i64,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        let node = self.node_mut(node_id)?;
        let spec = node.spec.get_or_insert_with(Default::default);
        if let Some(availability) = availability {
            spec.availability = availability as i32;
        }
        for key in label_rm {
            spec.labels.remove(&key);
        }
        for (key, value) in label_add {
            spec.labels.insert(key, value);
        }
        bump(&mut node.meta, at_ms);
        events.push(StoreEvent::Node(Change::Updated, node.clone()));
        Ok(())
    }

    pub(super) fn set_node_role(
        &mut self,
        node_id: &str,
        role: NodeRole,
        manager_status: Option<ManagerStatus>,
        at_ms: i64,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        let node = self.node_mut(node_id)?;
        node.role = role as i32;
        node.spec.get_or_insert_with(Default::default).desired_role = role as i32;
        node.manager_status = manager_status;
        bump(&mut node.meta, at_ms);
        events.push(StoreEvent::Node(Change::Updated, node.clone()));
        Ok(())
    }

    pub(super) fn node_mut(&mut self, node_id: &str) -> Result<&mut Node, StoreError> {
        self.nodes.get_mut(node_id).ok_or(StoreError::NotFound {
            kind: ObjectKind::Node,
            id: node_id.to_string(),
        })
    }
}
