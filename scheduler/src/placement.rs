//! A service's placement rules as the scheduler sees them: constraints,
//! spread preferences and the per-node replica limit (Swarm's
//! `--constraint`, `--placement-pref` and `--replicas-max-per-node`).
//!
//! This module only holds and parses them; [`crate::filter`] applies the
//! constraints and the limit, the `batch` engine the preferences.

use std::fmt;
use std::str::FromStr;

use crate::constraint::Constraint;

const SPREAD: &str = "spread";
const LABEL_PREFIX: &str = "node.labels.";

/// Where a service's tasks may go and how they spread.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Placement {
    /// All must hold on a node.
    pub constraints: Vec<Constraint>,
    /// Applied in order: spread over the first label's values, then within
    /// each value over the second's, and so on.
    pub preferences: Vec<Preference>,
    /// At most this many tasks of the service per node; 0 means no limit
    /// (Swarm's `MaxReplicas`).
    pub max_replicas_per_node: u64,
}

/// A placement preference. Swarm has one strategy, `spread`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Preference {
    /// Spread tasks evenly over the values of the node label `label` (the
    /// name after `node.labels.`). Nodes without the label form their own
    /// group, which counts as one more value.
    Spread { label: String },
}

/// Why a preference string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreferenceError {
    #[error(
        "invalid placement preference {input:?}: unknown strategy; expected spread=node.labels.KEY"
    )]
    UnknownStrategy { input: String },
    #[error(
        "invalid placement preference {input:?}: cannot spread over {descriptor:?}; expected \
         node.labels.KEY with KEY made of letters, digits, '-', '_' and '.'"
    )]
    InvalidDescriptor { input: String, descriptor: String },
}

impl Preference {
    /// Parses `spread=node.labels.KEY` (strategy case-insensitive, label name
    /// case-sensitive).
    pub fn parse(input: &str) -> Result<Preference, PreferenceError> {
        let descriptor = match input.split_once('=') {
            Some((strategy, descriptor)) if strategy.trim().eq_ignore_ascii_case(SPREAD) => {
                descriptor.trim()
            }
            _ => {
                return Err(PreferenceError::UnknownStrategy {
                    input: input.into(),
                })
            }
        };
        let label = descriptor
            .strip_prefix(LABEL_PREFIX)
            .filter(|name| {
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            })
            .ok_or_else(|| PreferenceError::InvalidDescriptor {
                input: input.into(),
                descriptor: descriptor.into(),
            })?;
        Ok(Preference::Spread {
            label: label.into(),
        })
    }
}

impl fmt::Display for Preference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Preference::Spread { label } => write!(f, "{SPREAD}={LABEL_PREFIX}{label}"),
        }
    }
}

impl FromStr for Preference {
    type Err = PreferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Preference::parse(s)
    }
}
