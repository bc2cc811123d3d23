//! `shoal node ls | inspect | rm`.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use shoal_proto::names;
use shoal_proto::v1::local_node_client::LocalNodeClient;
use shoal_proto::v1::{
    GetNodeRequest, InfoRequest, ListNodesRequest, Node, NodeAvailability, NodeRole,
    RemoveNodeRequest, UpdateNodeRequest,
};

use crate::args::{AvailabilityArg, Format, NodeCommand};
use crate::client;
use crate::output;
use crate::template;
use shoal_docker_api::mapping::objects::node_to_docker;

pub async fn run(host: Option<&str>, command: NodeCommand) -> anyhow::Result<()> {
    let channel = client::connect(host).await?;
    let mut control = client::control(channel.clone());
    match command {
        NodeCommand::Ls { quiet, format } => {
            let mut nodes = control
                .list_nodes(ListNodesRequest {})
                .await?
                .into_inner()
                .nodes;
            nodes.sort_by(|a, b| hostname(a).cmp(hostname(b)).then(a.id.cmp(&b.id)));
            let self_id = LocalNodeClient::new(channel)
                .info(InfoRequest {})
                .await?
                .into_inner()
                .node_id;
            if let Format::Template { text, table } = &format {
                let rows: Vec<Value> = nodes.iter().map(|n| ls_context(n, &self_id)).collect();
                print!(
                    "{}",
                    template::render_list(text, *table, &rows, NODE_HEADERS)?
                );
            } else if quiet {
                for node in &nodes {
                    println!("{}", node.id);
                }
            } else if format == Format::Json {
                for node in &nodes {
                    println!("{}", ls_json(node, &self_id));
                }
            } else {
                let rows: Vec<Vec<String>> = nodes
                    .iter()
                    .map(|n| {
                        let row = ls_json(n, &self_id);
                        let id = if n.id == self_id {
                            format!("{} *", n.id)
                        } else {
                            n.id.clone()
                        };
                        vec![
                            id,
                            text(&row["Hostname"]),
                            text(&row["Status"]),
                            text(&row["Availability"]),
                            text(&row["ManagerStatus"]),
                            text(&row["EngineVersion"]),
                        ]
                    })
                    .collect();
                output::table(
                    &[
                        "ID",
                        "HOSTNAME",
                        "STATUS",
                        "AVAILABILITY",
                        "MANAGER STATUS",
                        "ENGINE VERSION",
                    ],
                    &rows,
                );
                for node in &nodes {
                    if let Some(warning) = output::certificate_warning(node.certificate.as_ref()) {
                        eprintln!("WARNING: node {} ({}): {warning}", hostname(node), node.id);
                    }
                }
            }
        }
        NodeCommand::Inspect {
            pretty,
            format,
            nodes,
        } => {
            let self_id = LocalNodeClient::new(channel)
                .info(InfoRequest {})
                .await?
                .into_inner()
                .node_id;
            let mut found = Vec::new();
            for reference in nodes {
                let reference = if reference == "self" {
                    self_id.clone()
                } else {
                    reference
                };
                found.push(
                    control
                        .get_node(GetNodeRequest { node: reference })
                        .await?
                        .into_inner(),
                );
            }
            if pretty {
                for node in &found {
                    print_pretty(node);
                }
            } else if let Format::Template { text, .. } = &format {
                // Docker's shape from the Docker API's own mapping, so a
                // template reads exactly what `docker node inspect` reads.
                let docker: Vec<Value> = found
                    .iter()
                    .map(|n| serde_json::to_value(node_to_docker(n)))
                    .collect::<Result<_, _>>()?;
                print!("{}", template::render_each(text, &docker)?);
            } else {
                let array: Vec<Value> = found.iter().map(inspect_json).collect();
                println!("{}", serde_json::to_string_pretty(&array)?);
            }
        }
        NodeCommand::Promote { nodes } => {
            for node in nodes {
                control
                    .update_node(UpdateNodeRequest {
                        node: node.clone(),
                        role: Some(NodeRole::Manager as i32),
                        ..Default::default()
                    })
                    .await?;
                println!("Node {node} promoted to a manager in the swarm.");
            }
        }
        NodeCommand::Demote { force, nodes } => {
            for node in nodes {
                control
                    .update_node(UpdateNodeRequest {
                        node: node.clone(),
                        role: Some(NodeRole::Worker as i32),
                        force,
                        ..Default::default()
                    })
                    .await?;
                println!("Manager {node} demoted in the swarm.");
            }
        }
        NodeCommand::Update {
            availability,
            label_add,
            label_rm,
            node,
        } => {
            let availability = availability.map(|a| match a {
                AvailabilityArg::Active => NodeAvailability::Active,
                AvailabilityArg::Pause => NodeAvailability::Pause,
                AvailabilityArg::Drain => NodeAvailability::Drain,
            } as i32);
            control
                .update_node(UpdateNodeRequest {
                    node: node.clone(),
                    role: None,
                    availability,
                    label_add,
                    label_rm,
                    force: false,
                })
                .await?;
            println!("{node}");
        }
        NodeCommand::Rm { force, nodes } => {
            // Each node is removed on its own; the first failure stops and is reported.
            for reference in nodes {
                control
                    .remove_node(RemoveNodeRequest {
                        node: reference.clone(),
                        force,
                    })
                    .await?;
                println!("{reference}");
            }
        }
    }
    Ok(())
}

fn hostname(node: &Node) -> &str {
    node.description
        .as_ref()
        .map(|d| d.hostname.as_str())
        .unwrap_or("")
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

fn manager_status(node: &Node) -> String {
    match node.manager_status.as_ref() {
        None => String::new(),
        Some(m) if m.leader => "Leader".into(),
        Some(m) => {
            let r = names::reachability(m.reachability());
            let mut c = r.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        }
    }
}

/// Docker's column titles of `node ls`, for `table` templates.
pub const NODE_HEADERS: &[(&str, &str)] = &[
    ("ID", "ID"),
    ("Self", ""),
    ("Hostname", "HOSTNAME"),
    ("Status", "STATUS"),
    ("Availability", "AVAILABILITY"),
    ("ManagerStatus", "MANAGER STATUS"),
    ("TLSStatus", "TLS STATUS"),
    ("EngineVersion", "ENGINE VERSION"),
];

/// What a `node ls` template sees: Docker's node context. `TLSStatus` is
/// "Unknown", as the docker CLI says when a node reports no TLS info (shoal
/// reports none through the Docker API either; certificate trouble is
/// `node ls`'s own warning line).
pub fn ls_context(node: &Node, self_id: &str) -> Value {
    let mut row = ls_json(node, self_id);
    if let Some(object) = row.as_object_mut() {
        object.remove("CertificateWarning");
        object.insert("TLSStatus".into(), Value::from("Unknown"));
    }
    row
}

/// One `node ls --format json` line, with Docker's keys.
pub fn ls_json(node: &Node, self_id: &str) -> Value {
    let status = node.status.clone().unwrap_or_default();
    let spec = node.spec.clone().unwrap_or_default();
    json!({
        "ID": node.id,
        "Hostname": hostname(node),
        "Status": names::node_state(status.state()),
        "Availability": names::availability(spec.availability()),
        "ManagerStatus": manager_status(node),
        "EngineVersion": node.description.as_ref().map(|d| d.engine_version.clone()).unwrap_or_default(),
        "Self": node.id == self_id,
        "CertificateWarning": output::certificate_warning(node.certificate.as_ref()),
    })
}

/// One element of `node inspect`, shaped like Docker's.
pub fn inspect_json(node: &Node) -> Value {
    let meta = node.meta.unwrap_or_default();
    let spec = node.spec.clone().unwrap_or_default();
    let description = node.description.clone().unwrap_or_default();
    let platform = description.platform.clone().unwrap_or_default();
    let resources = description.resources.unwrap_or_default();
    let status = node.status.clone().unwrap_or_default();
    let labels: BTreeMap<_, _> = spec.labels.clone().into_iter().collect();
    let mut value = json!({
        "ID": node.id,
        "Version": {"Index": meta.version},
        "CreatedAt": output::rfc3339(meta.created_at_ms),
        "UpdatedAt": output::rfc3339(meta.updated_at_ms),
        "Spec": {
            "Labels": labels,
            "Role": names::role(spec.desired_role()),
            "Availability": names::availability(spec.availability()).to_lowercase(),
        },
        "Description": {
            "Hostname": description.hostname,
            "Platform": {"Architecture": platform.architecture, "OS": platform.os},
            "Resources": {"NanoCPUs": resources.nano_cpus, "MemoryBytes": resources.memory_bytes},
            "Runtimes": description.runtimes,
            "Engine": {"EngineVersion": description.engine_version},
        },
        "Status": {
            "State": names::node_state(status.state()).to_lowercase(),
            "Message": status.message,
            "Addr": status.addr,
            "SessionStartedAt": (status.session_started_at_ms > 0)
                .then(|| output::rfc3339(status.session_started_at_ms)),
        },
    });
    // shoal's addition: how the node serves published ports.
    if let Some(ingress) = description.ingress.as_ref() {
        value["Description"]["PublishedPorts"] = json!({
            "Mode": ingress.mode,
            "Reason": ingress.reason,
        });
    }
    if let Some(m) = node.manager_status.as_ref() {
        value["ManagerStatus"] = json!({
            "Leader": m.leader,
            "Reachability": names::reachability(m.reachability()),
            "Addr": m.addr,
        });
    }
    value
}

fn print_pretty(node: &Node) {
    let v = inspect_json(node);
    println!("ID:\t\t\t{}", text(&v["ID"]));
    println!("Hostname:\t\t{}", text(&v["Description"]["Hostname"]));
    println!("Joined at:\t\t{}", text(&v["CreatedAt"]));
    println!("Status:");
    println!(
        " State:\t\t\t{}",
        names::node_state(node.status.clone().unwrap_or_default().state())
    );
    println!(" Availability:\t\t{}", text(&v["Spec"]["Availability"]));
    println!(" Address:\t\t{}", text(&v["Status"]["Addr"]));
    if let Some(mode) = v["Description"]["PublishedPorts"]["Mode"].as_str() {
        println!(" Published ports:\t{mode}");
    }
    if node.role() == NodeRole::Manager {
        println!("Manager Status:");
        println!(" Address:\t\t{}", text(&v["ManagerStatus"]["Addr"]));
        println!(
            " Raft Status:\t\t{}",
            text(&v["ManagerStatus"]["Reachability"])
        );
        println!(
            " Leader:\t\t{}",
            if v["ManagerStatus"]["Leader"] == true {
                "Yes"
            } else {
                "No"
            }
        );
    }
    println!("Platform:");
    println!(
        " Operating System:\t{}",
        text(&v["Description"]["Platform"]["OS"])
    );
    println!(
        " Architecture:\t\t{}",
        text(&v["Description"]["Platform"]["Architecture"])
    );
    println!("Resources:");
    println!(
        " CPUs:\t\t\t{}",
        v["Description"]["Resources"]["NanoCPUs"]
            .as_i64()
            .unwrap_or(0)
            / 1_000_000_000
    );
    println!(
        " Memory:\t\t{} MiB",
        v["Description"]["Resources"]["MemoryBytes"]
            .as_i64()
            .unwrap_or(0)
            / (1 << 20)
    );
}
