//! Who may call what over TCP. The TLS layer has already checked that any
//! client certificate comes from the cluster CA; here each service says which
//! roles it admits, and a removed node is refused even with a valid certificate.

use shoal_security::{tls, PeerIdentity, Role};
use tonic::{Request, Status};

use crate::store::SharedStore;

/// The caller's identity, if its certificate admits it to a service open to `roles`.
pub fn require_peer<T>(
    request: &Request<T>,
    store: &SharedStore,
    roles: &[Role],
) -> Result<PeerIdentity, Status> {
    let peer = tls::peer_identity(request).ok_or_else(|| {
        Status::unauthenticated(
            "a node certificate from this swarm's CA is required: join the swarm with a token first",
        )
    })?;
    let (cluster_id, removed, known, store_role) = store.read(|s| {
        (
            s.cluster.as_ref().map(|c| c.id.clone()),
            s.is_removed(&peer.node_id),
            s.nodes.contains_key(&peer.node_id),
            s.nodes.get(&peer.node_id).map(|n| n.role()),
        )
    });
    // A manager that just joined has an empty store until the leader's first
    // entries arrive; its peers are vouched for by the CA alone meanwhile
    // (the certificate chain was verified against this swarm's own CA).
    let Some(cluster_id) = cluster_id else {
        return if roles.contains(&peer.role) {
            Ok(peer)
        } else {
            Err(Status::permission_denied(format!(
                "node {} has a {} certificate; this API needs another role",
                peer.node_id,
                peer.role.as_ou()
            )))
        };
    };
    if cluster_id != peer.cluster_id {
        return Err(Status::permission_denied(format!(
            "certificate of node {} belongs to another swarm ({})",
            peer.node_id, peer.cluster_id
        )));
    }
    if removed || !known {
        return Err(Status::permission_denied(format!(
            "node {} is not part of this swarm (it was removed): run `shoal swarm leave` on it and join again",
            peer.node_id
        )));
    }
    // A manager certificate of a node that was demoted counts as a worker's.
    let effective = match (peer.role, store_role) {
        (Role::Manager, Some(shoal_proto::v1::NodeRole::Worker)) => Role::Worker,
        (role, _) => role,
    };
    if !roles.contains(&effective) {
        return Err(Status::permission_denied(format!(
            "node {} has a {} certificate; this API needs a {} certificate",
            peer.node_id,
            peer.role.as_ou(),
            roles
                .iter()
                .map(|r| r.as_ou())
                .collect::<Vec<_>>()
                .join(" or ")
        )));
    }
    Ok(peer)
}
