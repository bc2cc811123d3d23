//! Startup order from `depends_on`: services grouped in layers, each layer
//! depending only on earlier ones, or the cycle that makes an order
//! impossible. Whether the CLI waits between layers (and for which
//! [`crate::Condition`]) is its business, not this module's.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::ComposeError;
use crate::model::Stack;

/// The services in dependency layers: layer 0 depends on nothing, layer `n`
/// only on layers before it; names within a layer are sorted.
pub fn startup_order(stack: &Stack) -> Result<Vec<Vec<String>>, ComposeError> {
    layers(stack).map_err(|cycle| ComposeError::Cycle { at: None, cycle })
}

/// Kahn's algorithm, layer by layer; on failure returns one cycle, its first
/// service repeated at the end (`a -> b -> a`: a depends on b, b on a).
pub(crate) fn layers(stack: &Stack) -> Result<Vec<Vec<String>>, Vec<String>> {
    let mut remaining: BTreeMap<&str, BTreeSet<&str>> = stack
        .services
        .iter()
        .map(|(name, s)| {
            let deps = s
                .depends_on
                .keys()
                .map(String::as_str)
                // The loader has already refused unknown names; skip any a
                // hand-built Stack might hold rather than report a cycle.
                .filter(|d| stack.services.contains_key(*d))
                .collect();
            (name.as_str(), deps)
        })
        .collect();
    let mut out = Vec::new();
    while !remaining.is_empty() {
        let ready: Vec<&str> = remaining
            .iter()
            .filter(|(_, deps)| deps.is_empty())
            .map(|(name, _)| *name)
            .collect();
        if ready.is_empty() {
            return Err(find_cycle(&remaining));
        }
        for name in &ready {
            remaining.remove(name);
        }
        for deps in remaining.values_mut() {
            for name in &ready {
                deps.remove(name);
            }
        }
        out.push(ready.into_iter().map(str::to_owned).collect());
    }
    Ok(out)
}

/// Every service left has an unmet dependency among those left, so walking
/// dependencies from any of them must come back to one already seen.
fn find_cycle(remaining: &BTreeMap<&str, BTreeSet<&str>>) -> Vec<String> {
    let Some(start) = remaining.keys().next() else {
        return Vec::new();
    };
    let mut path: Vec<&str> = vec![start];
    loop {
        let last = path[path.len() - 1];
        let Some(next) = remaining.get(last).and_then(|deps| deps.iter().next()) else {
            return path.into_iter().map(str::to_owned).collect();
        };
        if let Some(i) = path.iter().position(|p| p == next) {
            let mut cycle: Vec<String> = path[i..].iter().map(|s| (*s).to_owned()).collect();
            cycle.push((*next).to_owned());
            return cycle;
        }
        path.push(next);
    }
}
