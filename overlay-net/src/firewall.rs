//! The node's netfilter rules for overlay networks, generated from the local
//! networks as pure functions and applied through the `nft` binary's JSON
//! interface (the `nftables` crate).
//!
//! Two places, because netfilter accepts a packet only if *every* base chain
//! on its hook accepts it:
//!
//! - shoal's own table, `inet shoal`, replaced whole and atomically on every
//!   apply: masquerade for traffic of a non-internal network leaving the
//!   overlay, and a drop for anything an internal network's bridge would
//!   route elsewhere (the bridge has no address, so this is the second
//!   guard, not the first).
//! - accept rules at the top of the iptables `FORWARD` chain, written with
//!   the `iptables` binary. Docker sets that chain's policy to DROP, and
//!   with `br_netfilter` even bridged frames (task → VXLAN) traverse it, so
//!   no rule in a table of shoal's own could let them through. The rules
//!   only match shoal's bridges (`shbr-<vni>`), carry the comment
//!   [`RULE_COMMENT`], and are found and removed by it. They go through
//!   `iptables` rather than nft because nft-written rules make iptables-nft
//!   call the chain incompatible, which would break Docker's own rule
//!   management; `iptables` works with either backend.

use std::borrow::Cow;

use nftables::batch::Batch;
use nftables::expr::{Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix};
use nftables::schema::{Chain, NfListObject, Nftables, Rule, Table};
use nftables::stmt::{Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::model::OverlayNetwork;
use crate::names;

/// shoal's own table.
pub const TABLE: &str = "shoal";
/// The comment marking shoal's rules in chains it does not own.
pub const RULE_COMMENT: &str = "shoal overlay";

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn matches(
    left: Expression<'static>,
    op: Operator,
    right: Expression<'static>,
) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

fn iifname(name: &str, op: Operator) -> Statement<'static> {
    matches(
        meta(MetaKey::Iifname),
        op,
        Expression::String(Cow::Owned(name.to_string())),
    )
}

fn oifname(name: &str, op: Operator) -> Statement<'static> {
    matches(
        meta(MetaKey::Oifname),
        op,
        Expression::String(Cow::Owned(name.to_string())),
    )
}

fn saddr_in(network: &OverlayNetwork) -> Statement<'static> {
    matches(
        Expression::Named(NamedExpression::Payload(Payload::PayloadField(
            PayloadField {
                protocol: Cow::Borrowed("ip"),
                field: Cow::Borrowed("saddr"),
            },
        ))),
        Operator::EQ,
        Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(Expression::String(Cow::Owned(
                network.subnet.addr.to_string(),
            ))),
            len: u32::from(network.subnet.prefix_len),
        })),
    )
}

fn rule(
    family: NfFamily,
    table: &str,
    chain: &str,
    expr: Vec<Statement<'static>>,
    comment: Option<&str>,
) -> Rule<'static> {
    Rule {
        family,
        table: Cow::Owned(table.to_string()),
        chain: Cow::Owned(chain.to_string()),
        expr: Cow::Owned(expr),
        comment: comment.map(|c| Cow::Owned(c.to_string())),
        ..Rule::default()
    }
}

fn base_chain(name: &str, kind: NfChainType, hook: NfHook, prio: i32) -> Chain<'static> {
    Chain {
        family: NfFamily::INet,
        table: Cow::Borrowed(TABLE),
        name: Cow::Owned(name.to_string()),
        _type: Some(kind),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    }
}

fn table() -> Table<'static> {
    Table {
        family: NfFamily::INet,
        name: Cow::Borrowed(TABLE),
        handle: None,
    }
}

/// The batch that replaces shoal's table with the rules for `networks` (the
/// networks with devices on this node). With no networks it only removes
/// the table. Add-then-delete makes the delete succeed whether or not the
/// table existed; the whole batch is one nft transaction.
pub fn table_ruleset(networks: &[&OverlayNetwork]) -> Nftables<'static> {
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(table()));
    batch.delete(NfListObject::Table(table()));
    if networks.is_empty() {
        return batch.to_nftables();
    }
    batch.add(NfListObject::Table(table()));
    // srcnat (100) and filter (0) priorities.
    batch.add(NfListObject::Chain(base_chain(
        "postrouting",
        NfChainType::NAT,
        NfHook::Postrouting,
        100,
    )));
    batch.add(NfListObject::Chain(base_chain(
        "forward",
        NfChainType::Filter,
        NfHook::Forward,
        0,
    )));
    for network in networks {
        let bridge = names::bridge_name(network.vni);
        if network.internal {
            batch.add(NfListObject::Rule(rule(
                NfFamily::INet,
                TABLE,
                "forward",
                vec![
                    iifname(&bridge, Operator::EQ),
                    oifname(&bridge, Operator::NEQ),
                    Statement::Drop(None),
                ],
                None,
            )));
            batch.add(NfListObject::Rule(rule(
                NfFamily::INet,
                TABLE,
                "forward",
                vec![
                    iifname(&bridge, Operator::NEQ),
                    oifname(&bridge, Operator::EQ),
                    Statement::Drop(None),
                ],
                None,
            )));
        } else {
            batch.add(NfListObject::Rule(rule(
                NfFamily::INet,
                TABLE,
                "postrouting",
                vec![
                    saddr_in(network),
                    oifname(&bridge, Operator::NEQ),
                    Statement::Masquerade(None),
                ],
                None,
            )));
        }
    }
    // Networks are isolated from each other, as Docker's are: a task reaches
    // the tasks of the networks it is on, never another network's through
    // the node. Without these drops the node would route between two
    // non-internal networks' bridges (both have addresses, and FORWARD
    // accepts what comes in from a shoal bridge). Internal networks are
    // already cut off both ways above.
    for from in networks.iter().filter(|n| !n.internal) {
        for to in networks.iter().filter(|n| !n.internal && n.vni != from.vni) {
            batch.add(NfListObject::Rule(rule(
                NfFamily::INet,
                TABLE,
                "forward",
                vec![
                    iifname(&names::bridge_name(from.vni), Operator::EQ),
                    oifname(&names::bridge_name(to.vni), Operator::EQ),
                    Statement::Drop(None),
                ],
                None,
            )));
        }
    }
    batch.to_nftables()
}

/// The accept rules for the iptables FORWARD chain, as `iptables` arguments
/// after the chain name, in the canonical order `iptables -S` prints them:
/// a network's bridged traffic, and for a non-internal network its traffic
/// out, the replies, and the connections the routing mesh DNATs into it.
pub fn forward_accepts(networks: &[&OverlayNetwork]) -> Vec<Vec<String>> {
    let comment = ["-m", "comment", "--comment", RULE_COMMENT, "-j", "ACCEPT"];
    let rule = |head: &[&str]| -> Vec<String> {
        head.iter()
            .chain(comment.iter())
            .map(|a| a.to_string())
            .collect()
    };
    let mut rules = Vec::new();
    for network in networks {
        let bridge = names::bridge_name(network.vni);
        if network.internal {
            rules.push(rule(&["-i", &bridge, "-o", &bridge]));
        } else {
            rules.push(rule(&["-i", &bridge]));
            rules.push(rule(&[
                "-o",
                &bridge,
                "-m",
                "conntrack",
                "--ctstate",
                "RELATED,ESTABLISHED",
            ]));
            // New connections DNATed from the node's address into the
            // network: to the ingress sandbox (the routing mesh) or to a
            // task's host-mode port (`crate::host_ports`).
            rules.push(rule(&[
                "-o",
                &bridge,
                "-m",
                "conntrack",
                "--ctstate",
                "DNAT",
            ]));
        }
    }
    rules
}

/// shoal's rules in an `iptables -S FORWARD` listing, as arguments after
/// the chain name.
pub fn shoal_rules_in(listing: &str) -> Vec<Vec<String>> {
    listing
        .lines()
        .filter_map(|line| line.strip_prefix("-A FORWARD "))
        .filter_map(shlex::split)
        .filter(|args| {
            args.windows(2)
                .any(|w| w[0] == "--comment" && w[1] == RULE_COMMENT)
        })
        .collect()
}

/// What to delete and what to insert so FORWARD holds exactly `wanted`.
pub fn forward_changes(
    present: &[Vec<String>],
    wanted: &[Vec<String>],
) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let delete = present
        .iter()
        .filter(|r| !wanted.contains(r))
        .cloned()
        .collect();
    let insert = wanted
        .iter()
        .filter(|r| !present.contains(r))
        .cloned()
        .collect();
    (delete, insert)
}

fn iptables(args: &[&str]) -> Result<String, FirewallError> {
    let output = std::process::Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .map_err(|e| FirewallError(format!("running iptables: {e}")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(FirewallError(format!(
            "`iptables {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// Makes the iptables FORWARD chain hold exactly shoal's rules for
/// `networks`. The `iptables` binary, not nft: rules written by nft into
/// iptables' own chain make it "incompatible" for iptables-nft — and so for
/// Docker, which manages that chain with iptables. No iptables on the node
/// means no FORWARD policy to get past.
fn apply_forward(networks: &[&OverlayNetwork]) -> Result<(), FirewallError> {
    let listing = match iptables(&["-S", "FORWARD"]) {
        Ok(listing) => listing,
        Err(e) if e.0.starts_with("running iptables") => return Ok(()),
        Err(e) => return Err(e),
    };
    let (delete, insert) = forward_changes(&shoal_rules_in(&listing), &forward_accepts(networks));
    for rule in delete {
        let mut args = vec!["-D", "FORWARD"];
        args.extend(rule.iter().map(String::as_str));
        iptables(&args)?;
    }
    for rule in insert {
        let mut args = vec!["-I", "FORWARD", "1"];
        args.extend(rule.iter().map(String::as_str));
        iptables(&args)?;
    }
    Ok(())
}

pub(crate) fn nft_error(e: nftables::helper::NftablesError) -> FirewallError {
    match e {
        nftables::helper::NftablesError::NftFailed { hint, stderr, .. } => {
            FirewallError(format!("nft failed while {hint}: {}", stderr.trim()))
        }
        other => FirewallError(other.to_string()),
    }
}

/// Why the firewall could not be set.
#[derive(Debug, thiserror::Error)]
#[error("nftables: {0}")]
pub struct FirewallError(pub String);

/// Sets the node's rules for `networks` in the calling thread's network
/// namespace (the `nft` child inherits it). Blocking: run it off the async
/// runtime's threads. Forwarding is switched on when a non-internal network
/// needs it, as Docker does.
pub fn apply(networks: &[&OverlayNetwork]) -> Result<(), FirewallError> {
    if networks.iter().any(|n| !n.internal) {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .map_err(|e| FirewallError(format!("switching IPv4 forwarding on: {e}")))?;
    }
    nftables::helper::apply_ruleset(&table_ruleset(networks)).map_err(nft_error)?;
    apply_forward(networks)?;
    Ok(())
}

/// Removes every rule of shoal's (a node leaving, the last network gone).
pub fn remove() -> Result<(), FirewallError> {
    apply(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Ipv4Subnet;
    use std::net::Ipv4Addr;

    fn network(vni: u32, internal: bool) -> OverlayNetwork {
        OverlayNetwork {
            id: format!("n{vni}"),
            name: format!("net{vni}"),
            vni,
            subnet: Ipv4Subnet {
                addr: Ipv4Addr::new(10, 0, 1, 0),
                prefix_len: 24,
            },
            gateway: Ipv4Addr::new(10, 0, 1, 1),
            mtu: None,
            internal,
        }
    }

    fn json(n: &Nftables) -> String {
        serde_json::to_string(n).unwrap()
    }

    #[test]
    fn a_non_internal_network_is_masqueraded_when_leaving_its_bridge() {
        let public = network(7, false);
        let text = json(&table_ruleset(&[&public]));
        assert!(text.contains(r#""masquerade":null"#), "{text}");
        assert!(
            text.contains(r#"{"match":{"left":{"payload":{"protocol":"ip","field":"saddr"}},"right":{"prefix":{"addr":"10.0.1.0","len":24}},"op":"=="}}"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"{"match":{"left":{"meta":{"key":"oifname"}},"right":"shbr-7","op":"!="}}"#
            ),
            "{text}"
        );
        assert!(!text.contains("drop"), "{text}");
    }

    #[test]
    fn an_internal_network_is_never_masqueraded_and_its_forwarding_is_dropped() {
        let internal = network(8, true);
        let text = json(&table_ruleset(&[&internal]));
        assert!(!text.contains("masquerade"), "{text}");
        assert_eq!(text.matches(r#""drop":null"#).count(), 2, "{text}");
    }

    #[test]
    fn the_node_never_routes_between_two_networks() {
        let front = network(7, false);
        let back = network(9, false);
        let internal = network(8, true);
        let text = json(&table_ruleset(&[&front, &back, &internal]));
        for (from, to) in [("shbr-7", "shbr-9"), ("shbr-9", "shbr-7")] {
            let drop = format!(
                r#"[{{"match":{{"left":{{"meta":{{"key":"iifname"}}}},"right":"{from}","op":"=="}}}},{{"match":{{"left":{{"meta":{{"key":"oifname"}}}},"right":"{to}","op":"=="}}}},{{"drop":null}}]"#
            );
            assert!(text.contains(&drop), "{from} → {to} not dropped: {text}");
        }
        // The internal network's two drops, and one per ordered pair of the
        // others: nothing between a network and itself.
        assert_eq!(text.matches(r#""drop":null"#).count(), 4, "{text}");
    }

    #[test]
    fn no_networks_only_removes_the_table() {
        let text = json(&table_ruleset(&[]));
        assert_eq!(
            text,
            r#"{"nftables":[{"add":{"table":{"family":"inet","name":"shoal"}}},{"delete":{"table":{"family":"inet","name":"shoal"}}}]}"#
        );
    }

    #[test]
    fn forward_accepts_match_only_shoal_bridges_and_read_back_from_a_listing() {
        let public = network(7, false);
        let internal = network(8, true);
        let rules = forward_accepts(&[&public, &internal]);
        assert_eq!(
            rules.iter().map(|r| r.join(" ")).collect::<Vec<_>>(),
            vec![
                "-i shbr-7 -m comment --comment shoal overlay -j ACCEPT",
                "-o shbr-7 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment shoal overlay -j ACCEPT",
                "-o shbr-7 -m conntrack --ctstate DNAT -m comment --comment shoal overlay -j ACCEPT",
                "-i shbr-8 -o shbr-8 -m comment --comment shoal overlay -j ACCEPT",
            ]
        );
        // As `iptables -S` prints them, among Docker's rules.
        let listing = "-P FORWARD DROP\n\
            -A FORWARD -i shbr-8 -o shbr-8 -m comment --comment \"shoal overlay\" -j ACCEPT\n\
            -A FORWARD -i shbr-9 -m comment --comment \"shoal overlay\" -j ACCEPT\n\
            -A FORWARD -j DOCKER-USER\n\
            -A FORWARD -i docker0 -m comment --comment \"not shoal\" -j ACCEPT\n";
        let present = shoal_rules_in(listing);
        assert_eq!(present.len(), 2);
        let (delete, insert) = forward_changes(&present, &rules);
        assert_eq!(
            delete.iter().map(|r| r[1].as_str()).collect::<Vec<_>>(),
            vec!["shbr-9"]
        );
        assert_eq!(insert.len(), 3);
        assert!(insert.iter().all(|r| r[1] == "shbr-7"));
        // Nothing to do when the chain already matches.
        let (delete, insert) = forward_changes(&rules, &rules);
        assert!(delete.is_empty() && insert.is_empty());
    }
}
