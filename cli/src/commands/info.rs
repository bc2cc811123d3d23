//! `shoal info`: this node's swarm membership, like the Swarm section of
//! `docker info`.

use serde_json::json;
use shoal_proto::names;
use shoal_proto::v1::local_node_client::LocalNodeClient;
use shoal_proto::v1::InfoRequest;

use crate::args::{Format, InfoArgs};
use crate::{client, output};

pub async fn run(host: Option<&str>, args: InfoArgs) -> anyhow::Result<()> {
    let channel = client::connect(host).await?;
    let info = LocalNodeClient::new(channel)
        .info(InfoRequest {})
        .await?
        .into_inner();
    let active = info.local_node_state == "active";
    if args.format == Format::Json {
        let value = json!({
            "LocalNodeState": info.local_node_state,
            "NodeID": info.node_id,
            "ClusterID": info.cluster_id,
            "ControlAvailable": active && info.role() == shoal_proto::v1::NodeRole::Manager,
            "Role": if active { names::role(info.role()) } else { "" },
            "NodeAddr": info.node_addr,
            "RemoteManagers": info.managers,
            "SessionUp": info.session_up,
            "CertificateExpiry": info.certificate.as_ref().map(|c| output::rfc3339(c.not_after_ms)),
            "CertificateWarning": output::certificate_warning(info.certificate.as_ref()),
            "RaftKeyProtection": info.raft_key_protection,
        });
        println!("{value}");
        return Ok(());
    }
    println!("Swarm: {}", info.local_node_state);
    if info.local_node_state == "locked" {
        println!(" NodeID: {}", info.node_id);
        println!(" This manager waits for `shoal swarm unlock` (autolock).");
    }
    if active {
        println!(" NodeID: {}", info.node_id);
        println!(" ClusterID: {}", info.cluster_id);
        println!(" Role: {}", names::role(info.role()));
        println!(" Node Address: {}", info.node_addr);
        println!(" Manager Addresses: {}", info.managers.join(", "));
        println!(
            " Session: {}",
            if info.session_up { "up" } else { "connecting" }
        );
        if !info.raft_key_protection.is_empty() {
            println!(
                " Raft Store: encrypted, key wrapped by the {}",
                info.raft_key_protection
            );
        }
        if let Some(certificate) = &info.certificate {
            println!(
                " Certificate Expiry: {}",
                output::rfc3339(certificate.not_after_ms)
            );
        }
        if let Some(warning) = output::certificate_warning(info.certificate.as_ref()) {
            eprintln!("WARNING: this node: {warning}");
        }
    }
    Ok(())
}
