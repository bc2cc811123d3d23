//! Published ports (`--publish`, Compose `ports:`): checking a spec's ports
//! and allocating the ingress ones, cluster-wide unique per protocol.
//!
//! **The allocation is a pure function of the store**, and the store runs
//! it while applying `CreateService` / `UpdateServiceSpec`
//! ([`assign_ports`]). The leader computes the same function first, so
//! that a clash is refused before anything is proposed; the copy inside the
//! state machine is what makes it safe: two creates planned from the same
//! snapshot are serialised by the Raft log, and the second one sees the
//! first's port as held. A new leader needs no memory of its predecessor's
//! choices — they are in `Service.endpoint.ports` — and a port is freed
//! exactly when its service is removed (the next allocation does not see
//! it any more). Allocating inside the command, rather than in a later
//! leader write as VIPs are, keeps the spec and its ports one atomic
//! change: no window where a service publishes a port nobody allocated.
//!
//! Host-mode ports are not allocated (a node binds them where a task runs;
//! the scheduler keeps two such tasks off one node), but one may not take
//! a port the routing mesh already answers on everywhere.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use shoal_proto::v1::{PortConfig, PortProtocol, PublishMode, Service};

use crate::store::ClusterState;

/// Where an ingress port without a published number is taken from (Swarm's).
pub const DYNAMIC_PORTS: RangeInclusive<u32> = 30000..=32767;

/// `8080/tcp`, as errors and `service ls` write a port.
pub fn port_label(port: u32, protocol: i32) -> String {
    format!("{port}/{}", protocol_name(protocol))
}

pub fn protocol_name(protocol: i32) -> &'static str {
    match PortProtocol::try_from(protocol) {
        Ok(PortProtocol::Udp) => "udp",
        _ => "tcp",
    }
}

/// Checks the ports of a spec on their own: numbers in range, known
/// protocol and mode, no published port given twice.
pub fn validate_ports(ports: &[PortConfig]) -> Result<(), String> {
    let mut seen = Vec::new();
    for p in ports {
        if PortProtocol::try_from(p.protocol).is_err() {
            return Err(format!(
                "invalid published port protocol {}: expected tcp or udp",
                p.protocol
            ));
        }
        if PublishMode::try_from(p.publish_mode).is_err() {
            return Err(format!(
                "invalid publish mode {}: expected ingress or host",
                p.publish_mode
            ));
        }
        if p.target_port == 0 || p.target_port > 65535 {
            return Err(format!(
                "invalid target port {}: a port is a number from 1 to 65535",
                p.target_port
            ));
        }
        if p.published_port > 65535 {
            return Err(format!(
                "invalid published port {}: a port is a number from 1 to 65535 (or leave it out to get one from {}–{})",
                p.published_port,
                DYNAMIC_PORTS.start(),
                DYNAMIC_PORTS.end()
            ));
        }
        if p.published_port != 0 {
            let key = (p.published_port, p.protocol);
            if seen.contains(&key) {
                return Err(format!(
                    "published port {} is given twice: publish each port once",
                    port_label(p.published_port, p.protocol)
                ));
            }
            seen.push(key);
        }
    }
    Ok(())
}

/// The service label that asks nodes serving its ports in userspace to
/// send a PROXY protocol v1 header ahead of each TCP connection. **Decision:
/// a label, per service** (as Kubernetes' load-balancer annotations do):
/// only the service knows whether its program parses the header, and one
/// that does not would take it for a request.
pub const PROXY_PROTOCOL_LABEL: &str = "com.shoal.ingress.proxy-protocol";

/// Whether the service asks for the PROXY protocol header.
pub fn wants_proxy_protocol(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.labels.get(PROXY_PROTOCOL_LABEL))
        .is_some_and(|v| v == "true")
}

/// Checks the PROXY protocol label's value, when given.
pub fn validate_proxy_protocol_label(
    labels: &std::collections::HashMap<String, String>,
) -> Result<(), String> {
    match labels.get(PROXY_PROTOCOL_LABEL).map(String::as_str) {
        None | Some("true") | Some("false") => Ok(()),
        Some(other) => Err(format!(
            "label {PROXY_PROTOCOL_LABEL}={other:?}: expected true or false (true sends a PROXY protocol v1 header ahead of each TCP connection a node proxies in userspace)"
        )),
    }
}

/// Checks what a host-mode port needs of its task. **Decision: host mode
/// takes a published number.** Docker lets the engine pick one per task,
/// which then differs per node and is found only with `docker ps`; a fixed
/// number is what host mode is used for (one port per node, behind an
/// outside balancer). A process task on no network shares the node's
/// network and binds its target port itself, so there the two must agree.
pub fn validate_host_ports(
    ports: &[PortConfig],
    runtime: &str,
    on_networks: bool,
) -> Result<(), String> {
    for p in ports
        .iter()
        .filter(|p| p.publish_mode == PublishMode::Host as i32)
    {
        if p.published_port == 0 {
            return Err(format!(
                "host-mode port {} needs a published port number: --publish mode=host,published=PORT,target={}",
                port_label(p.target_port, p.protocol),
                p.target_port
            ));
        }
        if runtime == "process" && !on_networks && p.published_port != p.target_port {
            return Err(format!(
                "host-mode port {}:{}: a process task on no network listens on the node's own ports, so the published port must be its target port; publish {}:{} or put the service on a network (--network NAME)",
                p.published_port,
                port_label(p.target_port, p.protocol),
                p.target_port,
                port_label(p.target_port, p.protocol),
            ));
        }
    }
    Ok(())
}

/// The ingress ports every other service holds: (port, protocol) → service name.
pub fn held_ports(state: &ClusterState, except_service: &str) -> BTreeMap<(u32, i32), String> {
    let mut held = BTreeMap::new();
    for service in state.services.values().filter(|s| s.id != except_service) {
        let name = service
            .spec
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_else(|| service.id.clone());
        for p in service.endpoint.iter().flat_map(|e| &e.ports) {
            if p.publish_mode == PublishMode::Ingress as i32 && p.published_port != 0 {
                held.insert((p.published_port, p.protocol), name.clone());
            }
        }
    }
    held
}

/// The spec's ports of `service_id` with every ingress port allocated.
/// `previous` are the ports the service had (or a proposer planned): an
/// entry for the same target, protocol and mode keeps its allocated
/// number while that number is still free, so an update does not move a
/// port under its clients. Errors name the service holding a port.
pub fn assign_ports(
    state: &ClusterState,
    service_id: &str,
    spec_ports: &[PortConfig],
    previous: &[PortConfig],
) -> Result<Vec<PortConfig>, String> {
    validate_ports(spec_ports)?;
    let mut held = held_ports(state, service_id);
    let clash = |port: u32, protocol: i32, holder: &str| {
        format!(
            "published port {} is already in use by service {holder}: choose another port, or remove it from {holder} (shoal service update --publish-rm {port} {holder})",
            port_label(port, protocol)
        )
    };
    // Explicit ports first, so a dynamic choice never takes one of them.
    for p in spec_ports.iter().filter(|p| p.published_port != 0) {
        if let Some(holder) = held.get(&(p.published_port, p.protocol)) {
            return Err(clash(p.published_port, p.protocol, holder));
        }
    }
    for p in spec_ports
        .iter()
        .filter(|p| p.published_port != 0 && p.publish_mode == PublishMode::Ingress as i32)
    {
        held.insert((p.published_port, p.protocol), String::new());
    }
    let mut out = Vec::with_capacity(spec_ports.len());
    let mut kept = previous.to_vec();
    for p in spec_ports {
        let mut assigned = p.clone();
        if p.published_port == 0 && p.publish_mode == PublishMode::Ingress as i32 {
            let reuse = kept.iter().position(|q| {
                q.target_port == p.target_port
                    && q.protocol == p.protocol
                    && q.publish_mode == p.publish_mode
                    && DYNAMIC_PORTS.contains(&q.published_port)
                    && !held.contains_key(&(q.published_port, q.protocol))
            });
            let port = match reuse {
                Some(i) => kept.remove(i).published_port,
                None => DYNAMIC_PORTS
                    .clone()
                    .find(|n| !held.contains_key(&(*n, p.protocol)))
                    .ok_or_else(|| {
                        format!(
                            "no free {} port left in {}–{} to publish target port {}: remove published ports from other services, or give --publish a port number",
                            protocol_name(p.protocol),
                            DYNAMIC_PORTS.start(),
                            DYNAMIC_PORTS.end(),
                            p.target_port
                        )
                    })?,
            };
            held.insert((port, p.protocol), String::new());
            assigned.published_port = port;
        }
        out.push(assigned);
    }
    Ok(out)
}

/// The ports a spec asks for (empty without an endpoint).
pub fn spec_ports(service: &Service) -> &[PortConfig] {
    service
        .spec
        .as_ref()
        .and_then(|s| s.endpoint.as_ref())
        .map(|e| e.ports.as_slice())
        .unwrap_or(&[])
}

/// The allocated ports of a service (what the nodes answer on).
pub fn endpoint_ports(service: &Service) -> &[PortConfig] {
    service
        .endpoint
        .as_ref()
        .map(|e| e.ports.as_slice())
        .unwrap_or(&[])
}

/// The host-mode ports of a service's tasks, as a new task records them
/// (`Task.host_ports`).
pub fn host_ports(service: &Service) -> Vec<PortConfig> {
    endpoint_ports(service)
        .iter()
        .filter(|p| p.publish_mode == PublishMode::Host as i32 && p.published_port != 0)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Command;
    use shoal_proto::v1::{EndpointSpec, ServiceSpec, TaskSpec};

    fn port(published: u32, target: u32, protocol: PortProtocol, mode: PublishMode) -> PortConfig {
        PortConfig {
            protocol: protocol as i32,
            target_port: target,
            published_port: published,
            publish_mode: mode as i32,
            ..Default::default()
        }
    }

    fn tcp(published: u32, target: u32) -> PortConfig {
        port(published, target, PortProtocol::Tcp, PublishMode::Ingress)
    }

    fn service(id: &str, name: &str, ports: Vec<PortConfig>) -> Service {
        Service {
            id: id.into(),
            spec: Some(ServiceSpec {
                name: name.into(),
                task: Some(TaskSpec {
                    runtime: "process".into(),
                    command: vec!["/bin/true".into()],
                    ..Default::default()
                }),
                endpoint: Some(EndpointSpec {
                    ports,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn create(state: &mut ClusterState, s: Service) -> Result<(), String> {
        state
            .apply(Command::CreateService(s), &mut Vec::new())
            .map_err(|e| e.to_string())
    }

    fn ports_of(state: &ClusterState, id: &str) -> Vec<u32> {
        endpoint_ports(&state.services[id])
            .iter()
            .map(|p| p.published_port)
            .collect()
    }

    #[test]
    fn an_unset_published_port_gets_the_first_free_dynamic_one_and_explicit_ones_stay() {
        let mut state = ClusterState::default();
        create(
            &mut state,
            service("a", "web", vec![tcp(0, 80), tcp(8080, 81)]),
        )
        .unwrap();
        assert_eq!(ports_of(&state, "a"), vec![30000, 8080]);
        create(&mut state, service("b", "api", vec![tcp(0, 80)])).unwrap();
        assert_eq!(ports_of(&state, "b"), vec![30001]);
    }

    #[test]
    fn a_clash_is_refused_naming_the_holder_and_changes_nothing() {
        let mut state = ClusterState::default();
        create(&mut state, service("a", "web", vec![tcp(8080, 80)])).unwrap();
        let err = create(&mut state, service("b", "api", vec![tcp(8080, 80)])).unwrap_err();
        assert!(
            err.contains("8080/tcp is already in use by service web"),
            "{err}"
        );
        assert!(!state.services.contains_key("b"));
        // The same number over UDP is another port.
        let udp = port(8080, 53, PortProtocol::Udp, PublishMode::Ingress);
        create(&mut state, service("c", "dns", vec![udp])).unwrap();
        // A host-mode port may not take one the mesh answers on everywhere.
        let host = port(8080, 80, PortProtocol::Tcp, PublishMode::Host);
        assert!(create(&mut state, service("d", "h", vec![host])).is_err());
    }

    #[test]
    fn removing_a_service_frees_its_port_and_an_update_keeps_a_dynamic_one() {
        let mut state = ClusterState::default();
        create(&mut state, service("a", "web", vec![tcp(0, 80)])).unwrap();
        create(&mut state, service("b", "api", vec![tcp(0, 80)])).unwrap();
        // An update that changes something else keeps 30001 even though
        // 30000 would be "first free" after a removal.
        state
            .apply(
                Command::RemoveService {
                    service_id: "a".into(),
                },
                &mut Vec::new(),
            )
            .unwrap();
        let mut spec = state.services["b"].spec.clone().unwrap();
        spec.replicas = 3;
        state
            .apply(
                Command::UpdateServiceSpec {
                    service_id: "b".into(),
                    spec,
                    expected_version: 0,
                    at_ms: 1,
                },
                &mut Vec::new(),
            )
            .unwrap();
        assert_eq!(ports_of(&state, "b"), vec![30001]);
        create(&mut state, service("c", "new", vec![tcp(0, 80)])).unwrap();
        assert_eq!(ports_of(&state, "c"), vec![30000], "web's port was freed");
    }

    #[test]
    fn a_proposers_stale_plan_does_not_allocate_a_port_twice() {
        // Two creates planned from the same snapshot both chose 30000: the
        // log orders them and the second gets another port.
        let mut state = ClusterState::default();
        let planned = |id: &str, name: &str| {
            let mut s = service(id, name, vec![tcp(0, 80)]);
            s.endpoint = Some(shoal_proto::v1::Endpoint {
                ports: vec![tcp(30000, 80)],
                ..Default::default()
            });
            s
        };
        create(&mut state, planned("a", "one")).unwrap();
        create(&mut state, planned("b", "two")).unwrap();
        assert_eq!(ports_of(&state, "a"), vec![30000]);
        assert_eq!(ports_of(&state, "b"), vec![30001]);
    }

    #[test]
    fn bad_numbers_and_duplicates_are_refused_with_what_to_do() {
        assert!(validate_ports(&[tcp(70000, 80)])
            .unwrap_err()
            .contains("from 1 to 65535"));
        assert!(validate_ports(&[tcp(80, 0)])
            .unwrap_err()
            .contains("target port 0"));
        assert!(validate_ports(&[tcp(80, 1), tcp(80, 2)])
            .unwrap_err()
            .contains("given twice"));
        let mut bad = tcp(80, 80);
        bad.protocol = 7;
        assert!(validate_ports(&[bad]).unwrap_err().contains("tcp or udp"));
    }

    #[test]
    fn host_mode_needs_a_number_and_a_bare_process_its_own_port() {
        let host =
            |published, target| port(published, target, PortProtocol::Tcp, PublishMode::Host);
        let err = validate_host_ports(&[host(0, 80)], "docker", false).unwrap_err();
        assert!(err.contains("needs a published port number"), "{err}");
        let err = validate_host_ports(&[host(8080, 80)], "process", false).unwrap_err();
        assert!(err.contains("must be its target port"), "{err}");
        validate_host_ports(&[host(8080, 80)], "process", true).unwrap();
        validate_host_ports(&[host(8080, 80)], "docker", false).unwrap();
        validate_host_ports(&[host(80, 80)], "process", false).unwrap();
        // Ingress ports are the mesh's business.
        validate_host_ports(&[tcp(0, 80)], "process", false).unwrap();
    }

    #[test]
    fn the_proxy_protocol_label_is_true_or_false() {
        let labels = |v: &str| {
            std::collections::HashMap::from([(PROXY_PROTOCOL_LABEL.to_string(), v.to_string())])
        };
        validate_proxy_protocol_label(&labels("true")).unwrap();
        validate_proxy_protocol_label(&labels("false")).unwrap();
        validate_proxy_protocol_label(&Default::default()).unwrap();
        let err = validate_proxy_protocol_label(&labels("yes")).unwrap_err();
        assert!(err.contains("expected true or false"), "{err}");
        let mut s = service("a", "web", vec![tcp(8080, 80)]);
        assert!(!wants_proxy_protocol(&s));
        s.spec.as_mut().unwrap().labels = labels("true");
        assert!(wants_proxy_protocol(&s));
    }
}
