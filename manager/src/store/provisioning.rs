//! Applying the provisioning hooks' commands: their settings, and the call
//! in flight recorded before it runs (see `crate::provisioning`).

use shoal_proto::v1::{
    NodeAvailability, NodeProvisioning, ProvisionerCall, ProvisioningEvent, ProvisioningStatus,
};

use super::state::{bump, Change, ClusterState, CommandResult, ObjectKind, StoreError, StoreEvent};
use crate::provisioning::{DECOMMISSION, EVENTS_KEPT, PROVISION};

impl ClusterState {
    fn cluster_mut(&mut self) -> Result<&mut shoal_proto::v1::Cluster, StoreError> {
        self.cluster.as_mut().ok_or(StoreError::NotFound {
            kind: ObjectKind::Cluster,
            id: String::new(),
        })
    }

    pub(super) fn set_node_provisioning(
        &mut self,
        spec: NodeProvisioning,
        at_ms: i64,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        let cluster = self.cluster_mut()?;
        cluster
            .spec
            .get_or_insert_with(Default::default)
            .node_provisioning = Some(spec);
        bump(&mut cluster.meta, at_ms);
        events.push(StoreEvent::ClusterUpdated(cluster.clone()));
        Ok(())
    }

    pub(super) fn start_provisioner_call(
        &mut self,
        call: ProvisionerCall,
        at_ms: i64,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        let decommission = match call.kind.as_str() {
            PROVISION => false,
            DECOMMISSION => true,
            other => return Err(StoreError::Conflict(format!("unknown hook kind {other:?}"))),
        };
        if decommission {
            // The node must still exist; draining it moves nothing (it is
            // idle) but keeps new tasks off the machine about to go.
            let node = self.node_mut(&call.node_id)?;
            node.spec.get_or_insert_with(Default::default).availability =
                NodeAvailability::Drain as i32;
            bump(&mut node.meta, at_ms);
            let node = node.clone();
            events.push(StoreEvent::Node(Change::Updated, node));
        }
        let cluster = self.cluster_mut()?;
        let status = cluster
            .provisioning_status
            .get_or_insert_with(ProvisioningStatus::default);
        let slot = if decommission {
            &mut status.decommission_in_flight
        } else {
            &mut status.provision_in_flight
        };
        if let Some(running) = slot {
            return Err(StoreError::Conflict(format!(
                "a {} call ({}) is already in flight",
                running.kind, running.id
            )));
        }
        *slot = Some(call);
        bump(&mut cluster.meta, at_ms);
        events.push(StoreEvent::ClusterUpdated(cluster.clone()));
        Ok(())
    }

    pub(super) fn end_provisioner_call(
        &mut self,
        call_id: &str,
        kind: &str,
        event: ProvisioningEvent,
        reactivate: bool,
        events: &mut Vec<StoreEvent>,
    ) -> CommandResult {
        let at_ms = event.at_ms;
        let node_id = event.node_id.clone();
        let cluster = self.cluster_mut()?;
        let status = cluster
            .provisioning_status
            .get_or_insert_with(ProvisioningStatus::default);
        let (slot, ended) = if kind == DECOMMISSION {
            (
                &mut status.decommission_in_flight,
                &mut status.decommission_ended_ms,
            )
        } else {
            (
                &mut status.provision_in_flight,
                &mut status.provision_ended_ms,
            )
        };
        if slot.as_ref().map(|c| c.id.as_str()) != Some(call_id) {
            // Already ended (the running leader and a successor both
            // reported): the first report stands.
            return Ok(());
        }
        *slot = None;
        *ended = at_ms;
        status.events.push(event);
        let excess = status.events.len().saturating_sub(EVENTS_KEPT);
        status.events.drain(..excess);
        bump(&mut cluster.meta, at_ms);
        events.push(StoreEvent::ClusterUpdated(cluster.clone()));
        if reactivate && kind == DECOMMISSION {
            if let Some(node) = self.nodes.get_mut(&node_id) {
                let spec = node.spec.get_or_insert_with(Default::default);
                if spec.availability() == NodeAvailability::Drain {
                    spec.availability = NodeAvailability::Active as i32;
                    bump(&mut node.meta, at_ms);
                    events.push(StoreEvent::Node(Change::Updated, node.clone()));
                }
            }
        }
        Ok(())
    }
}
