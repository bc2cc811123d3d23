//! `shoal network create | ls | inspect | rm`, with Docker's flags and
//! output shapes (`ls`: NETWORK ID, NAME, DRIVER, SCOPE; `inspect`: Docker's
//! keys, plus who holds which address across the cluster).

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};
use shoal_proto::v1::{
    CreateNetworkRequest, GetNetworkRequest, IpamConfig, ListNetworksRequest, Network, NetworkInfo,
    NetworkSpec, RemoveNetworkRequest,
};

use crate::args::{Format, NetworkCommand, NetworkCreateArgs};
use crate::client;
use crate::commands::listing::short;
use crate::output;
use crate::template;
use shoal_docker_api::mapping::objects::network_to_docker;

pub async fn run(host: Option<&str>, command: NetworkCommand) -> anyhow::Result<()> {
    let mut control = client::control(client::connect(host).await?);
    match command {
        NetworkCommand::Create(args) => {
            let spec = spec_from_args(args)?;
            let network = control
                .create_network(CreateNetworkRequest { spec: Some(spec) })
                .await?
                .into_inner();
            println!("{}", network.id);
        }
        NetworkCommand::Ls {
            quiet,
            no_trunc,
            format,
        } => {
            let mut networks = control
                .list_networks(ListNetworksRequest {})
                .await?
                .into_inner()
                .networks;
            networks.sort_by_key(name_of);
            print_networks(&networks, quiet, no_trunc, format)?;
        }
        NetworkCommand::Inspect { format, networks } => {
            let mut found = Vec::new();
            for network in networks {
                found.push(
                    control
                        .get_network(GetNetworkRequest { network })
                        .await?
                        .into_inner(),
                );
            }
            if let Format::Template { text, .. } = &format {
                // Docker's shape from the Docker API's own mapping.
                let docker: Vec<Value> = found
                    .iter()
                    .filter_map(|info| info.network.as_ref())
                    .map(|n| serde_json::to_value(network_to_docker(n)))
                    .collect::<Result<_, _>>()?;
                print!("{}", template::render_each(text, &docker)?);
                return Ok(());
            }
            let array: Vec<Value> = found.iter().map(inspect_json).collect();
            println!("{}", serde_json::to_string_pretty(&array)?);
        }
        NetworkCommand::Rm { networks } => {
            // Every name must resolve before anything is removed.
            let mut ids = Vec::new();
            for network in &networks {
                let info = control
                    .get_network(GetNetworkRequest {
                        network: network.clone(),
                    })
                    .await?
                    .into_inner();
                ids.push((info.network.unwrap_or_default().id, network.clone()));
            }
            for (id, name) in ids {
                control
                    .remove_network(RemoveNetworkRequest { network: id })
                    .await?;
                println!("{name}");
            }
        }
    }
    Ok(())
}

fn name_of(network: &Network) -> String {
    network
        .spec
        .as_ref()
        .map(|s| s.name.clone())
        .unwrap_or_default()
}

fn key_values(entries: &[String], flag: &str) -> anyhow::Result<HashMap<String, String>> {
    entries
        .iter()
        .map(|entry| match entry.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(anyhow::anyhow!(
                "invalid {flag} {entry:?}: expected KEY=VALUE"
            )),
        })
        .collect()
}

/// The spec `network create`'s flags ask for; the manager checks it.
pub fn spec_from_args(args: NetworkCreateArgs) -> anyhow::Result<NetworkSpec> {
    let ipam =
        (args.subnet.is_some() || args.gateway.is_some() || args.ip_range.is_some()).then(|| {
            IpamConfig {
                subnet: args.subnet.unwrap_or_default(),
                gateway: args.gateway.unwrap_or_default(),
                ip_range: args.ip_range.unwrap_or_default(),
            }
        });
    Ok(NetworkSpec {
        name: args.name,
        labels: key_values(&args.label, "--label")?,
        driver: args.driver,
        internal: args.internal,
        attachable: args.attachable,
        ipam,
        driver_opts: key_values(&args.opt, "--opt")?,
    })
}

fn ls_json(network: &Network, no_trunc: bool) -> Value {
    let spec = network.spec.clone().unwrap_or_default();
    let labels: BTreeMap<_, _> = spec.labels.into_iter().collect();
    json!({
        "ID": short(&network.id, no_trunc),
        "Name": spec.name,
        "Driver": spec.driver,
        "Scope": "swarm",
        "Internal": spec.internal,
        "Labels": labels,
    })
}

/// `network ls`: Docker's columns; JSON lines with `--format json`.
pub fn print_networks(
    networks: &[Network],
    quiet: bool,
    no_trunc: bool,
    format: Format,
) -> anyhow::Result<()> {
    if let Format::Template { text, table } = &format {
        let rows: Vec<Value> = networks.iter().map(|n| ls_context(n, no_trunc)).collect();
        let headers = [
            ("ID", "NETWORK ID"),
            ("Name", "NAME"),
            ("Driver", "DRIVER"),
            ("Scope", "SCOPE"),
            ("IPv6", "IPV6"),
            ("Internal", "INTERNAL"),
            ("Labels", "LABELS"),
        ];
        print!("{}", template::render_list(text, *table, &rows, &headers)?);
    } else if quiet {
        for n in networks {
            println!("{}", short(&n.id, no_trunc));
        }
    } else if format == Format::Json {
        for n in networks {
            println!("{}", ls_json(n, no_trunc));
        }
    } else {
        let rows: Vec<Vec<String>> = networks
            .iter()
            .map(|n| {
                let v = ls_json(n, no_trunc);
                ["ID", "Name", "Driver", "Scope"]
                    .iter()
                    .map(|k| v[*k].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .collect();
        output::table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &rows);
    }
    Ok(())
}

/// What a `network ls` template sees: Docker's fields, all text as in
/// Docker's network context (`IPv6` and `Internal` are "true"/"false",
/// `Labels` is `k=v,k=v`).
fn ls_context(network: &Network, no_trunc: bool) -> Value {
    let spec = network.spec.clone().unwrap_or_default();
    let labels: BTreeMap<_, _> = spec.labels.into_iter().collect();
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    json!({
        "ID": short(&network.id, no_trunc),
        "Name": spec.name,
        "Driver": spec.driver,
        "Scope": "swarm",
        "IPv6": "false",
        "Internal": spec.internal.to_string(),
        "Labels": labels.join(","),
    })
}

/// One element of `network inspect`, in Docker's shape. `Services` lists,
/// cluster-wide, each service's VIP and its tasks' addresses (Docker shows
/// this with `--verbose`); `Addresses` every taken address and its holder.
pub fn inspect_json(info: &NetworkInfo) -> Value {
    let network = info.network.clone().unwrap_or_default();
    let spec = network.spec.clone().unwrap_or_default();
    let meta = network.meta.unwrap_or_default();
    let ipam = network.ipam.clone().unwrap_or_default();
    let labels: BTreeMap<_, _> = spec.labels.clone().into_iter().collect();
    let mut options: BTreeMap<String, String> = spec.driver_opts.clone().into_iter().collect();
    options.insert(
        "com.docker.network.driver.overlay.vxlanid_list".into(),
        network.vni.to_string(),
    );
    let mut config = json!({"Subnet": ipam.subnet, "Gateway": ipam.gateway});
    if !ipam.ip_range.is_empty() {
        config["IPRange"] = json!(ipam.ip_range);
    }
    let mut services: BTreeMap<String, Value> = BTreeMap::new();
    let mut addresses = Vec::new();
    for a in &info.addresses {
        addresses.push(json!({
            "Address": a.addr,
            "Kind": a.kind,
            "Service": a.service_name,
            "Task": a.task_name,
            "TaskID": a.task_id,
            "Node": a.node_id,
        }));
        if a.service_name.is_empty() {
            continue;
        }
        let entry = services
            .entry(a.service_name.clone())
            .or_insert_with(|| json!({"VIP": "", "Tasks": []}));
        match a.kind.as_str() {
            "vip" => entry["VIP"] = json!(a.addr),
            _ => entry["Tasks"]
                .as_array_mut()
                .expect("an array")
                .push(json!({
                    "Name": a.task_name,
                    "ID": a.task_id,
                    "EndpointIP": a.addr,
                    "Node": a.node_id,
                })),
        }
    }
    json!({
        "Name": spec.name,
        "Id": network.id,
        "Created": output::rfc3339(meta.created_at_ms),
        "Scope": "swarm",
        "Driver": spec.driver,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": [config]},
        "Internal": spec.internal,
        "Attachable": spec.attachable,
        "Ingress": false,
        "Options": options,
        "Labels": labels,
        "Services": services,
        "Addresses": addresses,
    })
}
