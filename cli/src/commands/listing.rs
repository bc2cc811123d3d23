//! How services and tasks are listed, shared by `service ls|ps` and
//! `stack services|ps` so that both print the same columns, JSON keys and
//! task order.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::{json, Value};
use shoal_proto::names;
use shoal_proto::v1::{ServiceInfo, ServiceMode, ServiceSpec, TaskInfo, TaskStatus};

use crate::args::Format;
use crate::output;
use crate::template;

pub fn image_of(spec: &ServiceSpec) -> String {
    let task = spec.task.clone().unwrap_or_default();
    if task.runtime == "process" {
        task.command.join(" ")
    } else {
        task.image
    }
}

/// The widest a process task's command is shown in a table's IMAGE column
/// (an image reference is never this long).
const TABLE_COMMAND_WIDTH: usize = 48;

/// A table cell for IMAGE: a process task's command may span lines (a
/// Compose block scalar), which would break the table's rows, so it is
/// shown on one line and, unless `no_trunc`, cut with an ellipsis. JSON and
/// templates keep the command as it is.
fn image_cell(text: &str, no_trunc: bool) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if no_trunc || one_line.chars().count() <= TABLE_COMMAND_WIDTH {
        one_line
    } else {
        one_line
            .chars()
            .take(TABLE_COMMAND_WIDTH - 1)
            .collect::<String>()
            + "…"
    }
}

pub fn ls_json(info: &ServiceInfo) -> Value {
    let service = info.service.clone().unwrap_or_default();
    let spec = service.spec.clone().unwrap_or_default();
    json!({
        "ID": short(&service.id, false),
        "Name": spec.name,
        "Mode": match spec.mode() {
            ServiceMode::Replicated => "replicated",
            ServiceMode::Global => "global",
        },
        // An autoscaled service shows its range: "3/3 (2..10)".
        "Replicas": format!(
            "{}/{}{}",
            info.running_tasks,
            info.desired_tasks,
            super::service::autoscale::range_suffix(&spec)
        ),
        "Image": image_of(&spec),
        "Ports": super::service::ports::ports_column(
            service.endpoint.as_ref().map(|e| e.ports.as_slice()).unwrap_or(&[])
        ),
    })
}

/// Docker's column titles of `service ls`, for `table` templates.
pub const SERVICE_HEADERS: &[(&str, &str)] = &[
    ("ID", "ID"),
    ("Name", "NAME"),
    ("Mode", "MODE"),
    ("Replicas", "REPLICAS"),
    ("Image", "IMAGE"),
    ("Ports", "PORTS"),
];

/// Docker's column titles of `service ps`, for `table` templates.
pub const TASK_HEADERS: &[(&str, &str)] = &[
    ("ID", "ID"),
    ("Name", "NAME"),
    ("Image", "IMAGE"),
    ("Node", "NODE"),
    ("DesiredState", "DESIRED STATE"),
    ("CurrentState", "CURRENT STATE"),
    ("Error", "ERROR"),
    ("Ports", "PORTS"),
];

/// `service ls` and `stack services`.
pub fn print_services(services: &[ServiceInfo], quiet: bool, format: Format) -> anyhow::Result<()> {
    if let Format::Template { text, table } = &format {
        let rows: Vec<Value> = services.iter().map(ls_json).collect();
        print!(
            "{}",
            template::render_list(text, *table, &rows, SERVICE_HEADERS)?
        );
    } else if quiet {
        for s in services {
            println!(
                "{}",
                s.service.as_ref().map(|s| s.id.as_str()).unwrap_or("")
            );
        }
    } else if format == Format::Json {
        for s in services {
            println!("{}", ls_json(s));
        }
    } else {
        let rows: Vec<Vec<String>> = services
            .iter()
            .map(|s| {
                let v = ls_json(s);
                ["ID", "Name", "Mode", "Replicas", "Image", "Ports"]
                    .iter()
                    .map(|k| {
                        let text = v[*k].as_str().unwrap_or_default();
                        if *k == "Image" {
                            image_cell(text, false)
                        } else {
                            text.to_string()
                        }
                    })
                    .collect()
            })
            .collect();
        output::table(&["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"], &rows);
    }
    Ok(())
}

pub fn short(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        id.to_string()
    } else {
        id.chars().take(12).collect()
    }
}

pub fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
        .unwrap_or_default()
}

/// `service ps` and `stack ps`: slot order, newest task first within a slot.
pub fn print_tasks(
    tasks: &[TaskInfo],
    quiet: bool,
    no_trunc: bool,
    format: Format,
) -> anyhow::Result<()> {
    // Slot order, newest task first within a slot; older ones are history.
    let mut by_slot: BTreeMap<(String, u64), Vec<&TaskInfo>> = BTreeMap::new();
    for info in tasks {
        let Some(task) = info.task.as_ref() else {
            continue;
        };
        by_slot
            .entry((task.service_name.clone(), task.slot))
            .or_default()
            .push(info);
    }
    let now = SystemTime::now();
    let mut rows = Vec::new();
    for ((service, slot), mut slot_tasks) in by_slot {
        slot_tasks.sort_by_key(|t| {
            std::cmp::Reverse(
                t.task
                    .as_ref()
                    .and_then(|t| t.meta)
                    .map(|m| m.created_at_ms)
                    .unwrap_or(0),
            )
        });
        for (i, info) in slot_tasks.iter().enumerate() {
            let Some(task) = info.task.as_ref() else {
                continue;
            };
            let status = task.status.clone().unwrap_or_default();
            let name = format!("{service}.{slot}");
            let value = json!({
                "ID": short(&task.id, no_trunc),
                "Name": if i == 0 { name } else { format!(" \\_ {name}") },
                "Image": image_of(&ServiceSpec { task: task.spec.clone(), ..Default::default() }),
                "Node": info.node_hostname,
                "DesiredState": capitalized(names::task_state(task.desired_state())),
                "CurrentState": format!(
                    "{} {}",
                    capitalized(names::task_state(status.state())),
                    output::ago(status.timestamp_ms, now)
                ),
                "Error": status.err,
                "Ports": "",
            });
            let context = task_context(&value, &status, now, no_trunc);
            rows.push((task.id.clone(), value, context));
        }
    }
    if let Format::Template { text, table } = &format {
        let contexts: Vec<Value> = rows.into_iter().map(|(_, _, c)| c).collect();
        print!(
            "{}",
            template::render_list(text, *table, &contexts, TASK_HEADERS)?
        );
        return Ok(());
    }
    if quiet {
        for (id, _, _) in &rows {
            println!("{id}");
        }
        return Ok(());
    }
    if format == Format::Json {
        for (_, value, _) in &rows {
            println!("{value}");
        }
        return Ok(());
    }
    let keys = [
        "ID",
        "Name",
        "Image",
        "Node",
        "DesiredState",
        "CurrentState",
        "Error",
        "Ports",
    ];
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|(_, v, _)| {
            keys.iter()
                .map(|k| {
                    let text = v[*k].as_str().unwrap_or_default().to_string();
                    if *k == "Image" {
                        image_cell(&text, no_trunc)
                    } else if *k == "Error" && !no_trunc && text.chars().count() > 60 {
                        text.chars().take(59).collect::<String>() + "…"
                    } else {
                        text
                    }
                })
                .collect()
        })
        .collect();
    output::table(
        &[
            "ID",
            "NAME",
            "IMAGE",
            "NODE",
            "DESIRED STATE",
            "CURRENT STATE",
            "ERROR",
            "PORTS",
        ],
        &table,
    );
    Ok(())
}

/// What a `service ps` template sees: the row, with the two fields Docker
/// words its own way — CURRENT STATE's age ("Running about a minute ago")
/// and ERROR quoted and, unless `--no-trunc`, cut at 30 characters.
fn task_context(row: &Value, status: &TaskStatus, now: SystemTime, no_trunc: bool) -> Value {
    let mut context = row.clone();
    context["CurrentState"] = Value::from(format!(
        "{} {} ago",
        capitalized(names::task_state(status.state())),
        output::docker_duration(status.timestamp_ms, now).to_lowercase()
    ));
    let mut error = status.err.clone();
    if !no_trunc && error.chars().count() > 30 {
        error = error.chars().take(29).collect::<String>() + "…";
    }
    if !error.is_empty() {
        error = format!("\"{error}\"");
    }
    context["Error"] = Value::from(error);
    context
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_line_command_is_one_table_cell_and_cut_unless_no_trunc() {
        let script = "bash -c while true; do\n  echo hi\n  sleep 5\ndone\n";
        assert_eq!(
            image_cell(script, true),
            "bash -c while true; do echo hi sleep 5 done"
        );
        let long = "shoal example-server --listen 0.0.0.0:80 --state-dir /data/of/the/volume";
        let cut = image_cell(long, false);
        assert_eq!(cut.chars().count(), TABLE_COMMAND_WIDTH);
        assert!(cut.ends_with('…') && long.starts_with(cut.trim_end_matches('…')));
        assert_eq!(image_cell("nginx:1.27", false), "nginx:1.27");
    }
}
