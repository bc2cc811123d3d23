//! The root CA as the store keeps it, and its rotation (`swarm ca
//! --rotate`): which root signs, which roots nodes trust, how far a
//! rotation is, and when it is over.
//!
//! A rotation starts with a new root and a cross-signed copy of it
//! (`Cluster.root_rotation`); from then on the new root signs every
//! certificate while both roots are trusted. It finishes in the same apply
//! that records the last node's certificate of the new root (or removes the
//! last node still on the old one): the new root becomes `root_ca`, and the
//! old one is trusted no more. Deterministic, so every manager finishes at
//! the same log entry.

use shoal_proto::v1::{Cluster, JoinTokens, RootCa, RootRotation};

use super::state::{bump, ClusterState, ObjectKind, StoreError, StoreEvent};

/// The root that signs certificates now: the new one during a rotation.
pub fn signing_root(cluster: &Cluster) -> RootCa {
    cluster
        .root_rotation
        .as_ref()
        .and_then(|r| r.new_root.clone())
        .or_else(|| cluster.root_ca.clone())
        .unwrap_or_default()
}

/// The cross-signed certificate to send after each leaf, during a rotation.
pub fn cross_signed(cluster: &Cluster) -> Option<String> {
    cluster
        .root_rotation
        .as_ref()
        .map(|r| r.cross_signed_pem.clone())
        .filter(|pem| !pem.is_empty())
}

/// The roots every node must trust (PEM): the current root, and the new
/// one during a rotation.
pub fn trust_bundle(cluster: &Cluster) -> String {
    let current = cluster
        .root_ca
        .as_ref()
        .map(|ca| ca.cert_pem.clone())
        .unwrap_or_default();
    match cluster
        .root_rotation
        .as_ref()
        .and_then(|r| r.new_root.as_ref())
    {
        Some(new) => shoal_security::ca::bundle(&[&current, &new.cert_pem]),
        None => current,
    }
}

/// `(nodes whose certificate is of the new root, nodes)` while a rotation
/// runs.
pub fn progress(state: &ClusterState) -> Option<(usize, usize)> {
    let cluster = state.cluster.as_ref()?;
    let new = cluster.root_rotation.as_ref()?.new_root.as_ref()?;
    let on_new = state
        .nodes
        .values()
        .filter(|n| {
            n.certificate
                .as_ref()
                .is_some_and(|c| c.root_digest == new.digest)
        })
        .count();
    Some((on_new, state.nodes.len()))
}

impl ClusterState {
    pub(super) fn start_root_rotation(
        &mut self,
        rotation: RootRotation,
        join_tokens: JoinTokens,
        at_ms: i64,
        events: &mut Vec<StoreEvent>,
    ) -> Result<(), StoreError> {
        let cluster = self.cluster.as_mut().ok_or(StoreError::NotFound {
            kind: ObjectKind::Cluster,
            id: String::new(),
        })?;
        if cluster.root_rotation.is_some() {
            return Err(StoreError::Conflict(
                "a root CA rotation is already in progress: wait for it to finish \
                 (`shoal swarm ca` shows how far it is)"
                    .into(),
            ));
        }
        if rotation.new_root.is_none() {
            return Err(StoreError::Conflict("a rotation needs a new root".into()));
        }
        cluster.root_rotation = Some(rotation);
        // Tokens name the root a joining node must find: the new one.
        cluster.join_tokens = Some(join_tokens);
        bump(&mut cluster.meta, at_ms);
        events.push(StoreEvent::ClusterUpdated(cluster.clone()));
        self.finish_root_rotation_if_done(events);
        Ok(())
    }

    /// Ends a rotation once every node's certificate is of the new root.
    /// Keeps the cluster's last meta time: the state machine reads no clock.
    pub(super) fn finish_root_rotation_if_done(&mut self, events: &mut Vec<StoreEvent>) {
        let Some((on_new, total)) = progress(self) else {
            return;
        };
        if on_new < total {
            return;
        }
        let cluster = self.cluster.as_mut().expect("progress needs a cluster");
        let rotation = cluster
            .root_rotation
            .take()
            .expect("progress needs a rotation");
        cluster.root_ca = rotation.new_root;
        let at_ms = cluster.meta.as_ref().map(|m| m.updated_at_ms).unwrap_or(0);
        bump(&mut cluster.meta, at_ms);
        events.push(StoreEvent::ClusterUpdated(cluster.clone()));
    }
}
