//! Printing stacks; a stack's services and tasks print exactly as
//! `service ls` and `service ps` do (`commands::listing`).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::args::Format;
use crate::output;
use crate::template;

/// `stack ls`: NAME and the number of services, sorted by name.
pub fn print_stacks(stacks: &BTreeMap<String, usize>, format: Format) -> anyhow::Result<()> {
    let rows: Vec<Value> = stacks
        .iter()
        .map(|(name, n)| json!({"Name": name, "Services": n.to_string()}))
        .collect();
    if let Format::Template { text, table } = &format {
        let headers = [("Name", "NAME"), ("Services", "SERVICES")];
        print!("{}", template::render_list(text, *table, &rows, &headers)?);
        return Ok(());
    }
    if format == Format::Json {
        for row in &rows {
            println!("{row}");
        }
        return Ok(());
    }
    let table: Vec<Vec<String>> = stacks
        .iter()
        .map(|(name, n)| vec![name.clone(), n.to_string()])
        .collect();
    output::table(&["NAME", "SERVICES"], &table);
    Ok(())
}

pub use crate::commands::listing::{print_services, print_tasks};
