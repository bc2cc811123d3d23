use proptest::prelude::*;

use super::*;
use crate::nodes::{NodeView, Platform};

fn c(s: &str) -> Constraint {
    Constraint::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn node() -> NodeView {
    NodeView {
        hostname: "Web-1".into(),
        role: Role::Manager,
        labels: [("zone".to_string(), "eu".to_string())].into(),
        platform: Platform {
            os: "linux".into(),
            arch: "x86_64".into(),
        },
        ..NodeView::new("Node7")
    }
}

#[test]
fn parses_every_key_and_operator() {
    for (input, key) in [
        ("node.id==x", ConstraintKey::NodeId),
        ("node.hostname==x", ConstraintKey::Hostname),
        ("node.role==worker", ConstraintKey::Role),
        ("node.labels.zone==x", ConstraintKey::Label("zone".into())),
        ("node.platform.os==x", ConstraintKey::PlatformOs),
        ("node.platform.arch==x", ConstraintKey::PlatformArch),
    ] {
        assert_eq!(c(input).key, key, "{input}");
        assert_eq!(c(input).op, Operator::Eq);
        let ne = input.replace("==", "!=");
        assert_eq!(c(&ne).key, key);
        assert_eq!(c(&ne).op, Operator::NotEq);
        assert_eq!(c(input).to_string(), input);
        assert_eq!(c(&ne).to_string(), ne);
    }
}

#[test]
fn keys_are_case_insensitive_but_label_names_are_not_and_whitespace_is_trimmed() {
    let parsed = c("  Node.Labels.Zone  ==  eu west ");
    assert_eq!(parsed.key, ConstraintKey::Label("Zone".into()));
    assert_eq!(parsed.value, "eu west");
    assert_eq!(parsed.to_string(), "node.labels.Zone==eu west");
    assert_eq!(c("NODE.ROLE!=Manager").key, ConstraintKey::Role);
}

#[test]
fn errors_say_what_is_wrong_and_what_is_expected() {
    let err = |s: &str| Constraint::parse(s).unwrap_err().to_string();
    assert_eq!(
        err("node.zone==eu"),
        "invalid constraint \"node.zone==eu\": unknown key node.zone; expected node.id, \
         node.hostname, node.role, node.labels.KEY, node.platform.os or node.platform.arch"
    );
    assert_eq!(
        err("node.labels.zone=eu"),
        "invalid constraint \"node.labels.zone=eu\": no operator; expected KEY==VALUE or KEY!=VALUE"
    );
    assert!(
        err("==eu").contains("missing key before =="),
        "{}",
        err("==eu")
    );
    assert!(err("node.labels.==eu").contains("invalid label name \"\""));
    assert!(err("node.labels.a b==eu").contains("invalid label name \"a b\""));
    assert!(err("node.id!=  ").contains("missing value after !="));
    assert_eq!(
        err("node.id==a<b"),
        "invalid constraint \"node.id==a<b\": value \"a<b\" contains '<'; expected letters, \
         digits, spaces and any of :-_.*()?+[]\\^$|/"
    );
    assert!(err("node.role==boss").contains("unknown role \"boss\"; expected manager or worker"));
    // "==" is looked for first, so "a!=b==c" has the key "a!=b".
    assert!(err("node.id!=b==c").contains("unknown key node.id!=b"));
}

#[test]
fn each_key_matches_with_both_operators() {
    let n = node();
    for (yes, no) in [
        ("node.id==node7", "node.id==node8"),
        ("node.hostname==web-1", "node.hostname==web-2"),
        ("node.role==MANAGER", "node.role==worker"),
        ("node.labels.zone==eu", "node.labels.zone==us"),
        ("node.platform.os==Linux", "node.platform.os==windows"),
        ("node.platform.arch==X86_64", "node.platform.arch==aarch64"),
    ] {
        assert!(c(yes).matches(&n), "{yes}");
        assert!(!c(no).matches(&n), "{no}");
        assert!(!c(&yes.replace("==", "!=")).matches(&n), "{yes} negated");
        assert!(c(&no.replace("==", "!=")).matches(&n), "{no} negated");
    }
}

#[test]
fn label_values_are_case_sensitive_and_a_missing_label_never_equals() {
    let n = node();
    assert!(!c("node.labels.zone==EU").matches(&n));
    assert!(c("node.labels.zone!=EU").matches(&n));
    assert!(!c("node.labels.Zone==eu").matches(&n), "label names too");
    assert!(!c("node.labels.rack==r1").matches(&n));
    assert!(c("node.labels.rack!=r1").matches(&n));
}

fn label_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.-]{1,12}"
}

fn value() -> impl Strategy<Value = String> {
    // Allowed characters, inner spaces, no surrounding whitespace.
    r"[A-Za-z0-9:_.*()?+\[\]\\^$|/-]([A-Za-z0-9 :_.*()?+\[\]\\^$|/-]{0,10}[A-Za-z0-9:_.*()?+\[\]\\^$|/-])?"
}

fn constraint() -> impl Strategy<Value = Constraint> {
    let key = prop_oneof![
        Just(ConstraintKey::NodeId),
        Just(ConstraintKey::Hostname),
        Just(ConstraintKey::PlatformOs),
        Just(ConstraintKey::PlatformArch),
        label_name().prop_map(ConstraintKey::Label),
    ];
    let op = prop_oneof![Just(Operator::Eq), Just(Operator::NotEq)];
    let plain =
        (key, op.clone(), value()).prop_map(|(key, op, value)| Constraint { key, op, value });
    let role = (op, prop_oneof![Just("manager"), Just("Worker")]).prop_map(|(op, v)| Constraint {
        key: ConstraintKey::Role,
        op,
        value: v.into(),
    });
    prop_oneof![4 => plain, 1 => role]
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_input(s in any::<String>()) {
        let _ = Constraint::parse(&s);
    }

    #[test]
    fn never_panics_on_near_misses(s in r"[ nodeNODE.labelsidhostnamerplatformsarch=!a-z0-9<é]{0,30}") {
        if let Ok(parsed) = Constraint::parse(&s) {
            // Whatever parses prints back to something that parses the same.
            prop_assert_eq!(Constraint::parse(&parsed.to_string()), Ok(parsed));
        }
    }

    #[test]
    fn well_formed_constraints_round_trip(c in constraint()) {
        let text = c.to_string();
        prop_assert_eq!(Constraint::parse(&text), Ok(c.clone()));
        // Padding and key case do not change the meaning.
        let key = text.split(c.op.as_str()).next().unwrap();
        let shouted = match &c.key {
            ConstraintKey::Label(name) => format!("NODE.LABELS.{name}"),
            _ => key.to_uppercase(),
        };
        let padded = format!("  {shouted} {} {}  ", c.op.as_str(), c.value);
        prop_assert_eq!(Constraint::parse(&padded), Ok(c));
    }
}
