//! How services and tasks are listed, shared by `service ls|ps` and
//! `stack services|ps` so that both print the same columns, JSON keys and
//! task order.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::{json, Value};
use shoal_proto::names;
use shoal_proto::v1::{ServiceInfo, ServiceMode, ServiceSpec, TaskInfo};

use crate::args::Format;
use crate::output;

pub fn image_of(spec: &ServiceSpec) -> String {
    let task = spec.task.clone().unwrap_or_default();
    if task.runtime == "process" {
        task.command.join(" ")
    } else {
        task.image
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

/// `service ls` and `stack services`.
pub fn print_services(services: &[ServiceInfo], quiet: bool, format: Format) {
    if quiet {
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
                    .map(|k| v[*k].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .collect();
        output::table(&["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"], &rows);
    }
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
pub fn print_tasks(tasks: &[TaskInfo], quiet: bool, no_trunc: bool, format: Format) {
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
            rows.push((task.id.clone(), value));
        }
    }
    if quiet {
        for (id, _) in &rows {
            println!("{id}");
        }
        return;
    }
    if format == Format::Json {
        for (_, value) in &rows {
            println!("{value}");
        }
        return;
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
        .map(|(_, v)| {
            keys.iter()
                .map(|k| {
                    let text = v[*k].as_str().unwrap_or_default().to_string();
                    if *k == "Error" && !no_trunc && text.chars().count() > 60 {
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
}
