//! Printing stacks; a stack's services and tasks print exactly as
//! `service ls` and `service ps` do (`commands::listing`).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::args::Format;
use crate::output;

/// `stack ls`: NAME and the number of services, sorted by name.
pub fn print_stacks(stacks: &BTreeMap<String, usize>, format: Format) {
    let rows: Vec<Value> = stacks
        .iter()
        .map(|(name, n)| json!({"Name": name, "Services": n.to_string()}))
        .collect();
    if format == Format::Json {
        for row in &rows {
            println!("{row}");
        }
        return;
    }
    let table: Vec<Vec<String>> = stacks
        .iter()
        .map(|(name, n)| vec![name.clone(), n.to_string()])
        .collect();
    output::table(&["NAME", "SERVICES"], &table);
}

pub use crate::commands::listing::{print_services, print_tasks};
