//! Service VIPs, load-balanced inside each task's own namespace.
//!
//! A connection a task opens to a service's virtual IP is DNATed, in the
//! task namespace's `output` hook, to one of the service's backends picked
//! by `numgen random mod N`. Conntrack keeps the choice for the whole
//! connection (a UDP flow included), so a backend leaving the view only
//! stops receiving *new* connections once the ruleset is regenerated.
//! Balancing in the client's namespace needs no IPVS and no hop through a
//! load-balancer namespace, and a task sees only the VIPs of networks it
//! is on.
//!
//! The ruleset is a pure function of the view and the task's networks; it
//! lives in the table `ip shoal-vip` of the task's namespace and is replaced
//! whole, in one nft transaction, on every apply.

use std::borrow::Cow;
use std::net::Ipv4Addr;

use nftables::batch::Batch;
use nftables::expr::{
    Expression, Map, NamedExpression, NgMode, Numgen, Payload, PayloadField, SetItem,
};
use nftables::schema::{Chain, NfListObject, Nftables, Rule, Table};
use nftables::stmt::{Match, NATFamily, Operator, Statement, NAT};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::model::{EndpointMode, LocalTask, NodeView};

/// The table in each task namespace.
pub const TABLE: &str = "shoal-vip";

/// One VIP and the backends it balances over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipRule {
    pub vip: Ipv4Addr,
    pub backends: Vec<Ipv4Addr>,
}

/// The VIPs a task can use: those of VIP-mode services on its networks
/// that have at least one backend. A VIP without backends gets no rule:
/// nothing answers for it, so connecting fails rather than hanging on a
/// backend that is gone.
pub fn vip_rules(view: &NodeView, task: &LocalTask) -> Vec<VipRule> {
    let mut rules: Vec<VipRule> = view
        .services
        .iter()
        .filter(|s| s.mode == EndpointMode::Vip && task.networks.contains(&s.network_id))
        .filter_map(|s| {
            let vip = s.vip?;
            let mut backends = s.backends.clone();
            backends.sort();
            backends.dedup();
            (!backends.is_empty()).then_some(VipRule { vip, backends })
        })
        .collect();
    rules.sort_by_key(|r| r.vip);
    rules
}

fn table() -> Table<'static> {
    Table {
        family: NfFamily::IP,
        name: Cow::Borrowed(TABLE),
        handle: None,
    }
}

/// The batch that replaces the task's VIP table with `rules` (only removes
/// it when there are none).
pub fn ruleset(rules: &[VipRule]) -> Nftables<'static> {
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(table()));
    batch.delete(NfListObject::Table(table()));
    if rules.is_empty() {
        return batch.to_nftables();
    }
    batch.add(NfListObject::Table(table()));
    batch.add(NfListObject::Chain(Chain {
        family: NfFamily::IP,
        table: Cow::Borrowed(TABLE),
        name: Cow::Borrowed("output"),
        _type: Some(NfChainType::NAT),
        hook: Some(NfHook::Output),
        // dstnat
        prio: Some(-100),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    }));
    for rule in rules {
        let daddr = Statement::Match(Match {
            left: Expression::Named(NamedExpression::Payload(Payload::PayloadField(
                PayloadField {
                    protocol: Cow::Borrowed("ip"),
                    field: Cow::Borrowed("daddr"),
                },
            ))),
            right: Expression::String(Cow::Owned(rule.vip.to_string())),
            op: Operator::EQ,
        });
        let pick = Expression::Named(NamedExpression::Map(Box::new(Map {
            key: Expression::Named(NamedExpression::Numgen(Numgen {
                mode: NgMode::Random,
                ng_mod: rule.backends.len() as u32,
                offset: None,
            })),
            data: Expression::Named(NamedExpression::Set(
                rule.backends
                    .iter()
                    .enumerate()
                    .map(|(i, b)| {
                        SetItem::Mapping(
                            Expression::Number(i as u32),
                            Expression::String(Cow::Owned(b.to_string())),
                        )
                    })
                    .collect(),
            )),
        })));
        let dnat = Statement::DNAT(Some(NAT {
            addr: Some(pick),
            family: Some(NATFamily::IP),
            port: None,
            flags: None,
        }));
        batch.add(NfListObject::Rule(Rule {
            family: NfFamily::IP,
            table: Cow::Borrowed(TABLE),
            chain: Cow::Borrowed("output"),
            expr: Cow::Owned(vec![daddr, dnat]),
            ..Rule::default()
        }));
    }
    batch.to_nftables()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ServiceEndpoint, TaskNetns};

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn service(
        name: &str,
        net: &str,
        mode: EndpointMode,
        vip: Option<&str>,
        backends: &[&str],
    ) -> ServiceEndpoint {
        ServiceEndpoint {
            service_id: format!("{name}-id"),
            name: name.to_string(),
            aliases: vec![],
            network_id: net.to_string(),
            mode,
            vip: vip.map(ip),
            backends: backends.iter().map(|b| ip(b)).collect(),
        }
    }

    fn task(networks: &[&str]) -> LocalTask {
        LocalTask {
            task_id: "t".into(),
            netns: TaskNetns::Named("x".into()),
            networks: networks.iter().map(|n| n.to_string()).collect(),
        }
    }

    #[test]
    fn only_vip_services_on_the_tasks_networks_with_backends_get_rules() {
        let view = NodeView {
            services: vec![
                service(
                    "web",
                    "n1",
                    EndpointMode::Vip,
                    Some("10.0.1.100"),
                    &["10.0.1.4", "10.0.1.3", "10.0.1.3"],
                ),
                service(
                    "db",
                    "n2",
                    EndpointMode::Vip,
                    Some("10.0.2.100"),
                    &["10.0.2.3"],
                ),
                service("rr", "n1", EndpointMode::Dnsrr, None, &["10.0.1.7"]),
                service("empty", "n1", EndpointMode::Vip, Some("10.0.1.101"), &[]),
            ],
            ..NodeView::default()
        };
        assert_eq!(
            vip_rules(&view, &task(&["n1"])),
            vec![VipRule {
                vip: ip("10.0.1.100"),
                backends: vec![ip("10.0.1.3"), ip("10.0.1.4")],
            }]
        );
        assert_eq!(vip_rules(&view, &task(&["n1", "n2"])).len(), 2);
        assert_eq!(vip_rules(&view, &task(&[])), vec![]);
    }

    #[test]
    fn the_ruleset_maps_a_random_number_onto_each_backend() {
        let text = serde_json::to_string(&ruleset(&[VipRule {
            vip: ip("10.0.1.100"),
            backends: vec![ip("10.0.1.3"), ip("10.0.1.4")],
        }]))
        .unwrap();
        assert!(
            text.contains(r#"{"match":{"left":{"payload":{"protocol":"ip","field":"daddr"}},"right":"10.0.1.100","op":"=="}}"#),
            "{text}"
        );
        assert!(
            text.contains(r#"{"dnat":{"addr":{"map":{"key":{"numgen":{"mode":"random","mod":2}},"data":{"set":[[0,"10.0.1.3"],[1,"10.0.1.4"]]}}},"family":"ip"}}"#),
            "{text}"
        );
        assert!(text.contains(r#""hook":"output""#) && text.contains(r#""prio":-100"#));
    }

    #[test]
    fn no_rules_only_removes_the_table() {
        let text = serde_json::to_string(&ruleset(&[])).unwrap();
        assert_eq!(text.matches(r#""delete""#).count(), 1);
        assert!(!text.contains("chain"));
    }
}
