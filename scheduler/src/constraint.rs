//! Placement constraints in Swarm's syntax: `KEY==VALUE` or `KEY!=VALUE`, with
//! KEY one of `node.id`, `node.hostname`, `node.role`, `node.labels.NAME`,
//! `node.platform.os` or `node.platform.arch`.
//!
//! This module parses and evaluates one constraint against one node; the
//! constraint filter ([`crate::filter::ConstraintFilter`]) applies a task's
//! list, and callers (CLI, Compose loader) turn user strings into
//! [`Constraint`]s with [`Constraint::parse`].
//!
//! Comparison follows the reading of Swarm: node ID, hostname, role,
//! OS and architecture compare case-insensitively; label *names* and label
//! *values* are case-sensitive. A node without the label never satisfies
//! `==` and always satisfies `!=` (Swarm compares against the empty string,
//! and an empty value cannot be written).

use std::fmt;
use std::str::FromStr;

use crate::nodes::{NodeView, Role};

const LABEL_PREFIX: &str = "node.labels.";
const EXPECTED_KEYS: &str = "node.id, node.hostname, node.role, node.labels.KEY, \
                             node.platform.os or node.platform.arch";
/// Besides ASCII letters, digits and inner whitespace: Swarm's value pattern
/// (`manager/constraint/constraint.go`), which keeps out `=`, `!`, `<`, `>`
/// and `~` so that future operators stay unambiguous.
const VALUE_PUNCTUATION: &str = ":-_.*()?+[]\\^$|/";

/// What a constraint looks at on a node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConstraintKey {
    NodeId,
    Hostname,
    Role,
    /// `node.labels.NAME`; the name is case-sensitive.
    Label(String),
    PlatformOs,
    PlatformArch,
}

impl fmt::Display for ConstraintKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConstraintKey::NodeId => f.write_str("node.id"),
            ConstraintKey::Hostname => f.write_str("node.hostname"),
            ConstraintKey::Role => f.write_str("node.role"),
            ConstraintKey::Label(name) => write!(f, "{LABEL_PREFIX}{name}"),
            ConstraintKey::PlatformOs => f.write_str("node.platform.os"),
            ConstraintKey::PlatformArch => f.write_str("node.platform.arch"),
        }
    }
}

/// `==` or `!=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operator {
    Eq,
    NotEq,
}

impl Operator {
    fn as_str(self) -> &'static str {
        match self {
            Operator::Eq => "==",
            Operator::NotEq => "!=",
        }
    }
}

/// One placement constraint, e.g. `node.labels.zone==eu`.
///
/// `Display` writes the canonical form (lower-case key, trimmed value), which
/// [`Constraint::parse`] reads back to the same constraint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Constraint {
    pub key: ConstraintKey,
    pub op: Operator,
    pub value: String,
}

/// Why a constraint string was refused. Every message quotes the input, says
/// what was wrong and what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    #[error("invalid constraint {input:?}: no operator; expected KEY==VALUE or KEY!=VALUE")]
    NoOperator { input: String },
    #[error("invalid constraint {input:?}: missing key before {op}; expected {EXPECTED_KEYS}")]
    MissingKey { input: String, op: &'static str },
    #[error("invalid constraint {input:?}: unknown key {key}; expected {EXPECTED_KEYS}")]
    UnknownKey { input: String, key: String },
    #[error(
        "invalid constraint {input:?}: invalid label name {name:?}; expected node.labels.KEY \
         with KEY made of letters, digits, '-', '_' and '.'"
    )]
    InvalidLabel { input: String, name: String },
    #[error("invalid constraint {input:?}: missing value after {op}; expected a non-empty value")]
    MissingValue { input: String, op: &'static str },
    #[error(
        "invalid constraint {input:?}: value {value:?} contains {found:?}; expected letters, \
         digits, spaces and any of {VALUE_PUNCTUATION}"
    )]
    InvalidValue {
        input: String,
        value: String,
        found: char,
    },
    #[error("invalid constraint {input:?}: unknown role {value:?}; expected manager or worker")]
    UnknownRole { input: String, value: String },
}

impl Constraint {
    /// Parses Swarm's `KEY==VALUE` / `KEY!=VALUE`. Whitespace around key and
    /// value is ignored; keys are case-insensitive except for the label name.
    pub fn parse(input: &str) -> Result<Constraint, ConstraintError> {
        // Swarm looks for `==` first, then `!=`, and splits at the first
        // occurrence: "a!=b==c" has key "a!=b", which then fails as a key.
        let (op, at) = if let Some(at) = input.find("==") {
            (Operator::Eq, at)
        } else if let Some(at) = input.find("!=") {
            (Operator::NotEq, at)
        } else {
            return Err(ConstraintError::NoOperator {
                input: input.into(),
            });
        };
        let err_input = || input.to_string();
        let raw_key = input[..at].trim();
        let value = input[at + 2..].trim();
        if raw_key.is_empty() {
            return Err(ConstraintError::MissingKey {
                input: err_input(),
                op: op.as_str(),
            });
        }
        let key = parse_key(raw_key).map_err(|e| match e {
            KeyError::Unknown => ConstraintError::UnknownKey {
                input: err_input(),
                key: raw_key.into(),
            },
            KeyError::Label(name) => ConstraintError::InvalidLabel {
                input: err_input(),
                name,
            },
        })?;
        if value.is_empty() {
            return Err(ConstraintError::MissingValue {
                input: err_input(),
                op: op.as_str(),
            });
        }
        if let Some(found) = value.chars().find(|&c| !valid_value_char(c)) {
            return Err(ConstraintError::InvalidValue {
                input: err_input(),
                value: value.into(),
                found,
            });
        }
        // Swarm accepts any role value and simply never matches a wrong one;
        // refusing it here turns a silent "never placed" into an error.
        if key == ConstraintKey::Role
            && !value.eq_ignore_ascii_case("manager")
            && !value.eq_ignore_ascii_case("worker")
        {
            return Err(ConstraintError::UnknownRole {
                input: err_input(),
                value: value.into(),
            });
        }
        Ok(Constraint {
            key,
            op,
            value: value.into(),
        })
    }

    /// Whether `node` satisfies the constraint.
    pub fn matches(&self, node: &NodeView) -> bool {
        let equal = match &self.key {
            ConstraintKey::NodeId => eq_fold(&node.id, &self.value),
            ConstraintKey::Hostname => eq_fold(&node.hostname, &self.value),
            ConstraintKey::Role => eq_fold(role_name(node.role), &self.value),
            ConstraintKey::Label(name) => node.labels.get(name).is_some_and(|v| *v == self.value),
            ConstraintKey::PlatformOs => eq_fold(&node.platform.os, &self.value),
            ConstraintKey::PlatformArch => eq_fold(&node.platform.arch, &self.value),
        };
        equal == (self.op == Operator::Eq)
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.key, self.op.as_str(), self.value)
    }
}

impl FromStr for Constraint {
    type Err = ConstraintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Constraint::parse(s)
    }
}

enum KeyError {
    Unknown,
    Label(String),
}

fn parse_key(raw: &str) -> Result<ConstraintKey, KeyError> {
    for (name, key) in [
        ("node.id", ConstraintKey::NodeId),
        ("node.hostname", ConstraintKey::Hostname),
        ("node.role", ConstraintKey::Role),
        ("node.platform.os", ConstraintKey::PlatformOs),
        ("node.platform.arch", ConstraintKey::PlatformArch),
    ] {
        if raw.eq_ignore_ascii_case(name) {
            return Ok(key);
        }
    }
    // `get` rather than slicing: the prefix length may fall inside a
    // multi-byte character of arbitrary input.
    match raw.get(..LABEL_PREFIX.len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case(LABEL_PREFIX) => {
            let name = &raw[LABEL_PREFIX.len()..];
            if !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                Ok(ConstraintKey::Label(name.into()))
            } else {
                Err(KeyError::Label(name.into()))
            }
        }
        _ => Err(KeyError::Unknown),
    }
}

fn valid_value_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c.is_ascii_whitespace() || VALUE_PUNCTUATION.contains(c)
}

pub(crate) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Worker => "worker",
        Role::Manager => "manager",
    }
}

/// Case-insensitive equality without allocating (Go's `strings.EqualFold`
/// up to Unicode's special foldings).
fn eq_fold(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

#[cfg(test)]
mod tests;
