//! Which addresses an overlay name stands for, as seen from one task: the
//! name rules of the embedded resolver, with no DNS wire format in sight.
//!
//! The rules are Docker's (libnetwork's `Sandbox.ResolveName`):
//! - `SERVICE` and each of its aliases (the stack-less short name, network
//!   aliases) resolve to the service's VIP on the network (`Vip` mode), or to
//!   its backends' own addresses (`Dnsrr` mode, or a `Vip` service that has no
//!   VIP yet);
//! - `tasks.SERVICE` (and `tasks.ALIAS`) resolve to the backends' addresses;
//! - `NAME.NETWORK` restricts the lookup to the network called `NETWORK`;
//! - only networks the asking task is attached to are searched, in the
//!   task's attachment order, and the first network that knows the name wins;
//! - names compare case-insensitively, with or without the trailing dot.
//!
//! A name that no shared network knows is [`Lookup::NotFound`]: the caller
//! forwards it to the node's resolvers, exactly as Docker does with names of
//! networks the container is not on. Answering NXDOMAIN locally instead would
//! hide a real outside name that happens to equal a service name elsewhere.

use std::net::Ipv4Addr;

use crate::model::{EndpointMode, NodeView, ServiceEndpoint};

/// TTL of a VIP answer. A VIP lives as long as the service on that network,
/// but a service removed and created again (a `stack rm` then `deploy`) gets a
/// new one; a few seconds keeps a caching client from holding a dead VIP for
/// Docker's 600 s while sparing it a lookup per connection.
pub const VIP_TTL_SECS: u32 = 5;

/// TTL of answers made of task addresses (`tasks.NAME`, `dnsrr`): those change
/// whenever a task starts, stops or fails its health check, so they must not
/// be cached at all; a client that caches them keeps dialling dead tasks.
pub const BACKEND_TTL_SECS: u32 = 0;

/// The outcome of looking a name up in the view for one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The name is an overlay name on a network the task shares. `addrs` may
    /// be empty (a `dnsrr` service with no running task): the name exists but
    /// has no address, which is NODATA, not NXDOMAIN, and is never forwarded.
    Found {
        addrs: Vec<Ipv4Addr>,
        ttl: u32,
        /// The network (ID) the name was found on.
        network_id: String,
    },
    /// No network the task shares knows the name.
    NotFound,
}

/// Looks `name` up for a task attached to `asker_networks` (network IDs, in
/// the task's attachment order).
///
/// `rotation` rotates multi-address answers (`dnsrr`, `tasks.`): the server
/// passes a counter that grows by one per query, so successive clients get a
/// different first address (round-robin DNS) while the function stays pure.
pub fn lookup(view: &NodeView, asker_networks: &[String], name: &str, rotation: u64) -> Lookup {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Lookup::NotFound;
    }
    // Docker's order: the whole name on every shared network first, then
    // `a.b.c` in network `d`, `a.b` in network `c.d`, `a` in network `b.c.d`.
    if let Some(found) = lookup_in(view, asker_networks, name, None, rotation) {
        return found;
    }
    let mut split_at = name.len();
    while let Some(dot) = name[..split_at].rfind('.') {
        let (base, network_name) = (&name[..dot], &name[dot + 1..]);
        if !base.is_empty() && !network_name.is_empty() {
            if let Some(found) = lookup_in(view, asker_networks, base, Some(network_name), rotation)
            {
                return found;
            }
        }
        split_at = dot;
    }
    Lookup::NotFound
}

/// Looks `base` up on the shared networks, or only on the shared network
/// named `network_name` when given.
fn lookup_in(
    view: &NodeView,
    asker_networks: &[String],
    base: &str,
    network_name: Option<&str>,
    rotation: u64,
) -> Option<Lookup> {
    for network_id in asker_networks {
        if let Some(wanted) = network_name {
            let named_so = view
                .networks
                .iter()
                .any(|n| &n.id == network_id && n.name.eq_ignore_ascii_case(wanted));
            if !named_so {
                continue;
            }
        }
        let on_network = || view.services.iter().filter(|s| &s.network_id == network_id);

        if let Some(service) = on_network().find(|s| answers_to(s, base)) {
            return Some(service_answer(service, rotation));
        }
        if let Some(service_name) = strip_prefix_ignore_case(base, "tasks.") {
            if let Some(service) = on_network().find(|s| answers_to(s, service_name)) {
                return Some(Lookup::Found {
                    addrs: rotated(&service.backends, rotation),
                    ttl: BACKEND_TTL_SECS,
                    network_id: network_id.clone(),
                });
            }
        }
    }
    None
}

fn service_answer(service: &ServiceEndpoint, rotation: u64) -> Lookup {
    let (addrs, ttl) = match (service.mode, service.vip) {
        (EndpointMode::Vip, Some(vip)) => (vec![vip], VIP_TTL_SECS),
        // A VIP-mode service whose VIP is not allocated yet is still found by
        // its tasks' addresses, as Docker falls back to DNS round-robin.
        (EndpointMode::Vip, None) | (EndpointMode::Dnsrr, _) => {
            (rotated(&service.backends, rotation), BACKEND_TTL_SECS)
        }
    };
    Lookup::Found {
        addrs,
        ttl,
        network_id: service.network_id.clone(),
    }
}

fn answers_to(service: &ServiceEndpoint, name: &str) -> bool {
    service.name.eq_ignore_ascii_case(name)
        || service.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn rotated(addrs: &[Ipv4Addr], rotation: u64) -> Vec<Ipv4Addr> {
    let mut out = addrs.to_vec();
    if !out.is_empty() {
        let by = (rotation % out.len() as u64) as usize;
        out.rotate_left(by);
    }
    out
}

/// Whether a task on `asker_networks` may have its other names forwarded to
/// the node's resolvers: only if it is on at least one non-internal network.
/// A task on `internal` networks only has no way out of the overlay, and the
/// daemon forwarding its queries from the host's namespace would be one (a
/// DNS tunnel); Docker stopped forwarding for such containers too. A network
/// the view does not describe counts as internal: fail closed.
pub fn may_forward(view: &NodeView, asker_networks: &[String]) -> bool {
    asker_networks.iter().any(|id| {
        view.networks
            .iter()
            .any(|network| &network.id == id && !network.internal)
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{Ipv4Subnet, OverlayNetwork};

    pub(crate) fn network(id: &str, name: &str, internal: bool) -> OverlayNetwork {
        OverlayNetwork {
            id: id.into(),
            name: name.into(),
            vni: 4096,
            subnet: Ipv4Subnet {
                addr: Ipv4Addr::new(10, 0, 1, 0),
                prefix_len: 24,
            },
            gateway: Ipv4Addr::new(10, 0, 1, 1),
            mtu: None,
            internal,
        }
    }

    pub(crate) fn service(
        name: &str,
        aliases: &[&str],
        network_id: &str,
        mode: EndpointMode,
        vip: Option<[u8; 4]>,
        backends: &[[u8; 4]],
    ) -> ServiceEndpoint {
        ServiceEndpoint {
            service_id: format!("id-{name}"),
            name: name.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            network_id: network_id.into(),
            mode,
            vip: vip.map(Ipv4Addr::from),
            backends: backends.iter().map(|b| Ipv4Addr::from(*b)).collect(),
        }
    }

    /// The voting-app shape: `vote` and `redis` on frontend, `worker` on
    /// both, `db` on backend (dnsrr), an internal network with `secret`.
    pub(crate) fn voting_view() -> NodeView {
        NodeView {
            node_id: "node-1".into(),
            networks: vec![
                network("net-front", "voting_frontend", false),
                network("net-back", "voting_backend", false),
                network("net-int", "voting_private", true),
            ],
            services: vec![
                service(
                    "voting_vote",
                    &["vote"],
                    "net-front",
                    EndpointMode::Vip,
                    Some([10, 0, 1, 2]),
                    &[[10, 0, 1, 10], [10, 0, 1, 11]],
                ),
                service(
                    "voting_redis",
                    &["redis"],
                    "net-front",
                    EndpointMode::Vip,
                    Some([10, 0, 1, 3]),
                    &[[10, 0, 1, 20]],
                ),
                service(
                    "voting_worker",
                    &["worker"],
                    "net-front",
                    EndpointMode::Vip,
                    Some([10, 0, 1, 4]),
                    &[[10, 0, 1, 30]],
                ),
                service(
                    "voting_worker",
                    &["worker"],
                    "net-back",
                    EndpointMode::Vip,
                    Some([10, 0, 2, 4]),
                    &[[10, 0, 2, 30]],
                ),
                service(
                    "voting_db",
                    &["db"],
                    "net-back",
                    EndpointMode::Dnsrr,
                    None,
                    &[[10, 0, 2, 40], [10, 0, 2, 41], [10, 0, 2, 42]],
                ),
                service(
                    "voting_secret",
                    &["secret"],
                    "net-int",
                    EndpointMode::Vip,
                    Some([10, 0, 3, 2]),
                    &[[10, 0, 3, 10]],
                ),
            ],
            ..NodeView::default()
        }
    }

    fn nets(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn found(addrs: &[[u8; 4]], ttl: u32, network_id: &str) -> Lookup {
        Lookup::Found {
            addrs: addrs.iter().map(|a| Ipv4Addr::from(*a)).collect(),
            ttl,
            network_id: network_id.into(),
        }
    }

    #[test]
    fn service_name_stack_name_and_alias_resolve_to_the_vip() {
        let view = voting_view();
        let vote = nets(&["net-front"]);
        let vip = found(&[[10, 0, 1, 3]], VIP_TTL_SECS, "net-front");
        assert_eq!(lookup(&view, &vote, "voting_redis", 0), vip);
        assert_eq!(lookup(&view, &vote, "redis", 0), vip);
        assert_eq!(lookup(&view, &vote, "redis.", 0), vip, "trailing dot");
        assert_eq!(lookup(&view, &vote, "ReDiS", 0), vip, "case-insensitive");
        assert_eq!(lookup(&view, &vote, "VOTING_REDIS.", 0), vip);
    }

    #[test]
    fn tasks_name_resolves_to_the_backends() {
        let view = voting_view();
        let vote = nets(&["net-front"]);
        assert_eq!(
            lookup(&view, &vote, "tasks.voting_vote", 0),
            found(
                &[[10, 0, 1, 10], [10, 0, 1, 11]],
                BACKEND_TTL_SECS,
                "net-front"
            )
        );
        assert_eq!(
            lookup(&view, &vote, "TASKS.vote.", 0),
            found(
                &[[10, 0, 1, 10], [10, 0, 1, 11]],
                BACKEND_TTL_SECS,
                "net-front"
            ),
            "tasks. with an alias, any case"
        );
    }

    #[test]
    fn dnsrr_resolves_to_the_backends_rotated_per_query() {
        let view = voting_view();
        let worker = nets(&["net-back"]);
        let first = |rotation| match lookup(&view, &worker, "db", rotation) {
            Lookup::Found { addrs, ttl, .. } => {
                assert_eq!(addrs.len(), 3);
                assert_eq!(ttl, BACKEND_TTL_SECS);
                addrs[0]
            }
            other => panic!("db not found: {other:?}"),
        };
        let firsts: Vec<_> = (0..3).map(first).collect();
        assert_eq!(
            firsts,
            [
                Ipv4Addr::new(10, 0, 2, 40),
                Ipv4Addr::new(10, 0, 2, 41),
                Ipv4Addr::new(10, 0, 2, 42)
            ],
            "each query starts with the next task"
        );
        assert_eq!(first(3), Ipv4Addr::new(10, 0, 2, 40));
    }

    #[test]
    fn names_of_networks_the_task_does_not_share_are_not_found() {
        let view = voting_view();
        let vote = nets(&["net-front"]);
        assert_eq!(lookup(&view, &vote, "db", 0), Lookup::NotFound);
        assert_eq!(lookup(&view, &vote, "tasks.db", 0), Lookup::NotFound);
        assert_eq!(lookup(&view, &vote, "secret", 0), Lookup::NotFound);
        assert_eq!(
            lookup(&view, &vote, "db.voting_backend", 0),
            Lookup::NotFound,
            "naming the network does not open it"
        );
        assert_eq!(lookup(&view, &[], "redis", 0), Lookup::NotFound);
    }

    #[test]
    fn a_service_on_two_shared_networks_answers_from_the_first_attached() {
        let view = voting_view();
        assert_eq!(
            lookup(&view, &nets(&["net-back", "net-front"]), "worker", 0),
            found(&[[10, 0, 2, 4]], VIP_TTL_SECS, "net-back")
        );
        assert_eq!(
            lookup(&view, &nets(&["net-front", "net-back"]), "worker", 0),
            found(&[[10, 0, 1, 4]], VIP_TTL_SECS, "net-front")
        );
    }

    #[test]
    fn name_dot_network_picks_that_network() {
        let view = voting_view();
        let worker = nets(&["net-front", "net-back"]);
        assert_eq!(
            lookup(&view, &worker, "worker.voting_backend", 0),
            found(&[[10, 0, 2, 4]], VIP_TTL_SECS, "net-back")
        );
        assert_eq!(
            lookup(&view, &worker, "tasks.worker.VOTING_BACKEND.", 0),
            found(&[[10, 0, 2, 30]], BACKEND_TTL_SECS, "net-back")
        );
        assert_eq!(
            lookup(&view, &worker, "redis.voting_backend", 0),
            Lookup::NotFound,
            "redis is not on backend"
        );
    }

    #[test]
    fn unknown_names_are_not_found() {
        let view = voting_view();
        let vote = nets(&["net-front"]);
        for name in ["example.com", "redisx", "tasks.", "tasks.nothing", ".", ""] {
            assert_eq!(lookup(&view, &vote, name, 0), Lookup::NotFound, "{name:?}");
        }
    }

    #[test]
    fn vip_service_without_vip_and_dnsrr_without_tasks() {
        let mut view = voting_view();
        view.services.push(service(
            "pending",
            &[],
            "net-front",
            EndpointMode::Vip,
            None,
            &[[10, 0, 1, 50]],
        ));
        view.services.push(service(
            "empty",
            &[],
            "net-front",
            EndpointMode::Dnsrr,
            None,
            &[],
        ));
        let vote = nets(&["net-front"]);
        assert_eq!(
            lookup(&view, &vote, "pending", 0),
            found(&[[10, 0, 1, 50]], BACKEND_TTL_SECS, "net-front")
        );
        assert_eq!(
            lookup(&view, &vote, "empty", 0),
            found(&[], BACKEND_TTL_SECS, "net-front"),
            "known but empty: NODATA, not forwarded"
        );
    }

    #[test]
    fn forwarding_needs_a_non_internal_network() {
        let view = voting_view();
        assert!(may_forward(&view, &nets(&["net-front"])));
        assert!(may_forward(&view, &nets(&["net-int", "net-back"])));
        assert!(!may_forward(&view, &nets(&["net-int"])));
        assert!(!may_forward(&view, &nets(&["net-unknown"])), "fail closed");
        assert!(!may_forward(&view, &[]));
    }
}
