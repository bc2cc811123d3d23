use super::*;
use crate::model::Ipv4Subnet;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn ingress(ports: Vec<PublishedPort>) -> IngressView {
    IngressView {
        network: OverlayNetwork {
            id: "ingress".into(),
            name: "ingress".into(),
            vni: 4096,
            subnet: Ipv4Subnet {
                addr: ip("10.255.0.0"),
                prefix_len: 16,
            },
            gateway: ip("10.255.0.1"),
            mtu: None,
            internal: false,
        },
        sandboxes: vec![
            ("n1".into(), ip("10.255.0.2")),
            ("n2".into(), ip("10.255.0.3")),
        ],
        ports,
    }
}

fn port(protocol: Protocol, published: u16, backends: &[&str]) -> PublishedPort {
    PublishedPort {
        service_id: "web".into(),
        protocol,
        published,
        target: 80,
        backends: backends.iter().map(|b| ip(b)).collect(),
    }
}

#[test]
fn the_host_sends_every_published_port_to_its_own_sandbox_from_outside_and_from_itself() {
    let view = ingress(vec![
        port(Protocol::Udp, 53, &[]),
        port(Protocol::Tcp, 8080, &["10.255.0.9"]),
    ]);
    let rules = host_rules(&view, "n2");
    let tcp = "fib daddr type local tcp dport 8080 dnat to 10.255.0.3";
    let udp = "fib daddr type local udp dport 53 dnat to 10.255.0.3";
    // Once in prerouting, once in output (the node's own connections).
    assert_eq!(rules.matches(tcp).count(), 2, "{rules}");
    assert_eq!(rules.matches(udp).count(), 2, "{rules}");
    assert!(
        rules.contains(&format!("ip daddr != 127.0.0.0/8 {tcp}")),
        "the node's loopback is left out: {rules}"
    );
    // Nothing published: the table goes.
    let empty = host_rules(&ingress(vec![]), "n2");
    assert!(
        empty.contains("delete table") && !empty.contains("chain"),
        "{empty}"
    );
}

#[test]
fn the_sandbox_picks_a_backend_at_random_and_refills_chains_in_place() {
    let view = ingress(vec![port(
        Protocol::Tcp,
        8080,
        &["10.255.0.9", "10.255.0.7", "10.255.0.9"],
    )]);
    let rules = sandbox_rules(
        &view,
        &[
            "prerouting".into(),
            "svc-tcp-8080".into(),
            "svc-udp-53".into(),
        ],
    );
    assert!(
        rules.contains("add rule ip shoal-ingress svc-tcp-8080 meta l4proto tcp dnat to numgen random mod 2 map { 0 : 10.255.0.7, 1 : 10.255.0.9 } : 80"),
        "{rules}"
    );
    assert!(rules.contains("flush chain ip shoal-ingress svc-tcp-8080"));
    assert!(rules.contains("add rule ip shoal-ingress prerouting tcp dport 8080 jump svc-tcp-8080"));
    // A port no longer published loses its chain; the table is never
    // deleted, so other ports' chains are not rebuilt.
    assert!(rules.contains("delete chain ip shoal-ingress svc-udp-53"));
    assert!(!rules.contains("delete table"));
    assert!(!rules.contains("delete chain ip shoal-ingress svc-tcp-8080"));
}

#[test]
fn a_backend_marks_connections_by_the_entry_sandbox_and_routes_replies_back() {
    let view = ingress(vec![]);
    let rules = return_rules(&view, "eth1");
    assert!(
        rules.contains("iifname \"eth1\" ct state new ct mark set ether saddr map { 02:42:0a:ff:00:02 : 0xaff0002, 02:42:0a:ff:00:03 : 0xaff0003 }"),
        "{rules}"
    );
    assert!(rules.contains("type route hook output"));
    assert_eq!(
        return_routes(&view),
        vec![
            (0x0aff_0002, ip("10.255.0.2")),
            (0x0aff_0003, ip("10.255.0.3"))
        ]
    );
}

#[test]
fn the_sandbox_joins_the_view_as_an_endpoint_of_the_ingress_network() {
    let view = ingress(vec![]);
    let mut node = NodeView {
        node_id: "n1".into(),
        ..NodeView::default()
    };
    let mut tasks = Vec::new();
    with_sandbox(&mut node, &mut tasks, &view, "sbox-ns");
    with_sandbox(&mut node, &mut tasks, &view, "sbox-ns");
    assert_eq!(node.networks.len(), 1);
    assert_eq!(node.endpoints.len(), 2);
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].task_id, "ingress-sbox-n1");
    assert_eq!(tasks[0].netns, TaskNetns::Named("sbox-ns".into()));
}
