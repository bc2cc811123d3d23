//! `shoal volume ls | inspect | rm`: the nodes' volumes as their agents
//! report them to the leader (`ls`: NODE, DRIVER, RUNTIME, VOLUME NAME;
//! `inspect`: Docker's keys plus the node and the tasks using it).

use serde_json::{json, Value};
use shoal_proto::v1::{ListVolumesRequest, RemoveVolumeRequest};

use crate::args::VolumeCommand;
use crate::{client, output};

pub async fn run(host: Option<&str>, command: VolumeCommand) -> anyhow::Result<()> {
    let mut control = client::control(client::connect(host).await?);
    match command {
        VolumeCommand::Ls { node, quiet } => {
            let nodes = control
                .list_volumes(ListVolumesRequest {
                    node: node.unwrap_or_default(),
                    name: String::new(),
                })
                .await?
                .into_inner()
                .nodes;
            let mut rows = Vec::new();
            for n in &nodes {
                for v in &n.volumes {
                    rows.push(vec![
                        n.hostname.clone(),
                        v.driver.clone(),
                        v.runtime.clone(),
                        v.name.clone(),
                    ]);
                }
            }
            rows.sort();
            if quiet {
                let mut names: Vec<&String> = rows.iter().map(|r| &r[3]).collect();
                names.dedup();
                for name in names {
                    println!("{name}");
                }
            } else {
                output::table(&["NODE", "DRIVER", "RUNTIME", "VOLUME NAME"], &rows);
            }
        }
        VolumeCommand::Inspect { names } => {
            let mut found = Vec::new();
            for name in &names {
                let nodes = control
                    .list_volumes(ListVolumesRequest {
                        node: String::new(),
                        name: name.clone(),
                    })
                    .await?
                    .into_inner()
                    .nodes;
                let before = found.len();
                for n in nodes {
                    for v in n.volumes {
                        found.push(json!({
                            "Name": v.name,
                            "Driver": v.driver,
                            "Mountpoint": v.mountpoint,
                            "Labels": v.labels,
                            "Scope": "local",
                            "Runtime": v.runtime,
                            "Node": {"ID": n.node_id, "Hostname": n.hostname},
                            "Tasks": v.task_ids,
                        }));
                    }
                }
                if found.len() == before {
                    anyhow::bail!("no such volume: {name} (see `shoal volume ls`)");
                }
            }
            println!("{}", serde_json::to_string_pretty(&Value::Array(found))?);
        }
        VolumeCommand::Rm { node, names } => {
            let mut failed = Vec::new();
            for name in names {
                let removals = control
                    .remove_volume(RemoveVolumeRequest {
                        name: name.clone(),
                        node: node.clone().unwrap_or_default(),
                    })
                    .await?
                    .into_inner()
                    .removals;
                let mut ok = true;
                for r in removals {
                    if !r.error.is_empty() {
                        ok = false;
                        failed.push(format!("{} on node {}: {}", r.name, r.node_id, r.error));
                    }
                }
                if ok {
                    println!("{name}");
                }
            }
            if !failed.is_empty() {
                anyhow::bail!("could not remove {}", failed.join("; "));
            }
        }
    }
    Ok(())
}
