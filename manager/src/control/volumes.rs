//! The control API's volume calls (`volume ls|inspect|rm`) and the mount
//! checks of `service create|update` that need the cluster: the bind-mount
//! policy of the cluster spec, and volume names already used on a node with
//! another driver (from the leader's volume inventory, [`crate::volumes`]).

use std::time::Duration;

use shoal_proto::v1::{
    ListVolumesRequest, ListVolumesResponse, MountType, NodeState, NodeVolumes,
    RemoveVolumeRequest, RemoveVolumeResponse, ServiceSpec, VolumeRemoval,
};
use tonic::{Request, Response, Status};

use super::{resolve_node, ControlService};

/// Heartbeat periods a removal waits for the nodes' answers (the request
/// goes out with one heartbeat's response, the answer comes with the next).
const REMOVAL_PERIODS: u32 = 4;
/// And at least this long, for slow engines.
const REMOVAL_MIN_WAIT: Duration = Duration::from_secs(10);

impl ControlService {
    /// Refuses mounts the cluster does not allow: binds outside the
    /// policy's prefixes, and a volume name a node already has with
    /// another driver (the service would get that other volume, or fail).
    pub(super) fn check_mounts(&self, spec: &ServiceSpec) -> Result<(), Status> {
        let Some(task) = spec.task.as_ref() else {
            return Ok(());
        };
        let policy = self.manager.store().read(|s| {
            s.cluster
                .as_ref()
                .and_then(|c| c.spec.as_ref())
                .and_then(|s| s.mounts.clone())
        });
        crate::spec::mounts::check_bind_policy(task, policy.as_ref())
            .map_err(Status::invalid_argument)?;
        if task.runtime != "docker" {
            return Ok(());
        }
        for mount in &task.mounts {
            if mount.r#type != MountType::Volume as i32 || mount.source.is_empty() {
                continue;
            }
            let driver = crate::spec::mounts::driver_of(mount);
            let clash = self
                .manager
                .dispatcher()
                .with_volumes(|inv| inv.driver_clash(&mount.source, driver));
            if let Some((node_id, other)) = clash {
                let host = self.hostname(&node_id);
                return Err(Status::failed_precondition(format!(
                    "volume {:?} already exists on node {host} with driver {other}, not {driver}: \
                     use another volume name, or remove it first (shoal volume rm {})",
                    mount.source, mount.source
                )));
            }
        }
        Ok(())
    }

    fn hostname(&self, node_id: &str) -> String {
        self.manager
            .store()
            .read(|s| {
                s.nodes
                    .get(node_id)
                    .and_then(|n| n.description.as_ref())
                    .map(|d| d.hostname.clone())
            })
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| node_id.to_string())
    }

    pub(super) async fn list_volumes_here(
        &self,
        request: Request<ListVolumesRequest>,
    ) -> Result<Response<ListVolumesResponse>, Status> {
        let ListVolumesRequest { node, name } = request.into_inner();
        let node_id = if node.is_empty() {
            None
        } else {
            Some(
                self.manager
                    .store()
                    .read(|s| resolve_node(s, &node).map(|n| n.id.clone()))?,
            )
        };
        let reports: Vec<(String, Vec<shoal_proto::v1::Volume>, i64)> =
            self.manager.dispatcher().with_volumes(|inv| {
                inv.all()
                    .filter(|(n, _, _)| node_id.as_ref().is_none_or(|id| id == *n))
                    .map(|(n, v, at)| (n.clone(), v.clone(), at))
                    .collect()
            });
        let nodes = reports
            .into_iter()
            .filter(|(id, _, _)| self.manager.store().read(|s| s.nodes.contains_key(id)))
            .map(|(node_id, volumes, at)| NodeVolumes {
                hostname: self.hostname(&node_id),
                node_id,
                volumes: volumes
                    .into_iter()
                    .filter(|v| name.is_empty() || v.name == name)
                    .collect(),
                reported_at_ms: at,
            })
            .collect();
        Ok(Response::new(ListVolumesResponse { nodes }))
    }

    pub(super) async fn remove_volume_here(
        &self,
        request: Request<RemoveVolumeRequest>,
    ) -> Result<Response<RemoveVolumeResponse>, Status> {
        let RemoveVolumeRequest { name, node } = request.into_inner();
        crate::spec::mounts::validate_volume_name(&name).map_err(Status::invalid_argument)?;
        let dispatcher = self.manager.dispatcher().clone();
        let mut targets = dispatcher.with_volumes(|inv| inv.nodes_with(&name));
        if !node.is_empty() {
            let id = self
                .manager
                .store()
                .read(|s| resolve_node(s, &node).map(|n| n.id.clone()))?;
            targets.retain(|n| n == &id);
        }
        if targets.is_empty() {
            return Err(Status::not_found(format!(
                "no such volume: {name}{} (see `shoal volume ls`)",
                if node.is_empty() {
                    String::new()
                } else {
                    format!(" on node {node}")
                }
            )));
        }
        let mut removals = Vec::new();
        let mut waiting = Vec::new();
        for node_id in targets {
            let ready = self.manager.store().read(|s| {
                s.nodes
                    .get(&node_id)
                    .and_then(|n| n.status.as_ref())
                    .is_some_and(|st| st.state() == NodeState::Ready)
            });
            if ready {
                dispatcher.with_volumes(|inv| inv.request_removal(&node_id, &name));
                waiting.push(node_id);
            } else {
                removals.push(VolumeRemoval {
                    error: format!(
                        "node {} is not ready: remove the volume once it is back",
                        self.hostname(&node_id)
                    ),
                    node_id,
                    name: name.clone(),
                });
            }
        }
        let patience = (dispatcher.heartbeat_period() * REMOVAL_PERIODS).max(REMOVAL_MIN_WAIT);
        let deadline = tokio::time::Instant::now() + patience;
        while !waiting.is_empty() {
            waiting.retain(|node_id| {
                match dispatcher.with_volumes(|inv| inv.result(node_id, &name)) {
                    Some(error) => {
                        removals.push(VolumeRemoval {
                            node_id: node_id.clone(),
                            name: name.clone(),
                            error,
                        });
                        false
                    }
                    None => true,
                }
            });
            if waiting.is_empty() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                for node_id in waiting.drain(..) {
                    removals.push(VolumeRemoval {
                        error: format!(
                            "node {} did not answer within {}s: it removes the volume when its \
                             next heartbeat gets through",
                            self.hostname(&node_id),
                            patience.as_secs()
                        ),
                        node_id,
                        name: name.clone(),
                    });
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Response::new(RemoveVolumeResponse { removals }))
    }
}
