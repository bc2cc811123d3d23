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
    // entries arrive. The CA's signature alone does not vouch for a peer
    // meanwhile (a demoted manager keeps a manager certificate): only the
    // managers its join response listed are admitted — fail-closed.
    let Some(cluster_id) = cluster_id else {
        let founding = store.founding_manager(&peer.node_id);
        let admitted = roles.contains(&peer.role);
        return admit_before_state(peer, admitted, founding).map_err(Status::permission_denied);
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

/// Admission of `peer` by a manager whose store has no state yet, given
/// whether the peer's role is one the API admits and its Raft ID if it is
/// one of the managers named at join (pure).
fn admit_before_state(
    peer: PeerIdentity,
    role_admitted: bool,
    founding: Option<u64>,
) -> Result<PeerIdentity, String> {
    if !role_admitted {
        return Err(format!(
            "node {} has a {} certificate; this API needs another role",
            peer.node_id,
            peer.role.as_ou()
        ));
    }
    if peer.role != Role::Manager || founding.is_none() {
        return Err(format!(
            "this manager has no swarm state yet and admits only the managers it was told of \
             when it joined; node {} is not one of them",
            peer.node_id
        ));
    }
    Ok(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: &str, role: Role) -> PeerIdentity {
        PeerIdentity {
            node_id: id.into(),
            role,
            cluster_id: "c".into(),
        }
    }

    #[test]
    fn before_it_has_state_a_manager_admits_only_the_managers_named_at_join() {
        assert!(admit_before_state(peer("m1", Role::Manager), true, Some(7)).is_ok());
        let demoted = admit_before_state(peer("m3", Role::Manager), true, None).unwrap_err();
        assert!(demoted.contains("not one of them"), "{demoted}");
        assert!(admit_before_state(peer("w1", Role::Worker), true, None).is_err());
        assert!(admit_before_state(peer("w1", Role::Worker), false, None).is_err());
    }
}
