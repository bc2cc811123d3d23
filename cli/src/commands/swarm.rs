//! `shoal swarm init | join | join-token | update | ca | unlock | unlock-key | leave`.

use shoal_proto::v1::local_node_client::LocalNodeClient;
use shoal_proto::v1::{
    GetClusterRequest, GetUnlockKeyRequest, InfoRequest, InitRequest, JoinRequest, LeaveRequest,
    NodeRole, RaftConfig, RotateJoinTokenRequest, UnlockRequest, UpdateClusterRequest,
};

use crate::args::{SwarmCommand, TokenRole};
use crate::client;

pub async fn run(host: Option<&str>, command: SwarmCommand) -> anyhow::Result<()> {
    let channel = client::connect(host).await?;
    let mut local = LocalNodeClient::new(channel.clone());
    match command {
        SwarmCommand::Init {
            advertise_addr,
            listen_addr,
            force_new_cluster,
            raft_heartbeat,
            raft_election_timeout,
            snapshot_interval,
            dispatcher_heartbeat,
            autolock,
            default_addr_pool,
            default_addr_pool_mask_length,
            provisioning,
        } => {
            let provisioning = (!provisioning.is_empty()).then(|| {
                let update = provisioning_request(&provisioning);
                shoal_proto::v1::NodeProvisioning {
                    provisioner: update.node_provisioner.unwrap_or_default(),
                    pending_threshold_ms: update.node_provisioner_threshold_ms.unwrap_or(0),
                    timeout_ms: update.node_provisioner_timeout_ms.unwrap_or(0),
                    cooldown_ms: update.node_provisioner_cooldown_ms.unwrap_or(0),
                    decommissioner: update.node_decommissioner.unwrap_or_default(),
                    idle_window_ms: update.node_idle_window_ms.unwrap_or(0),
                    min_nodes: update.node_floor.unwrap_or(0),
                }
            });
            let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_millis() as u64).unwrap_or(0);
            let response = local
                .init(InitRequest {
                    listen_addr,
                    advertise_addr,
                    force_new_cluster,
                    raft: Some(RaftConfig {
                        heartbeat_interval_ms: ms(raft_heartbeat),
                        election_timeout_min_ms: ms(raft_election_timeout),
                        election_timeout_max_ms: 0,
                        snapshot_interval: snapshot_interval.unwrap_or(0),
                    }),
                    dispatcher_heartbeat_ms: ms(dispatcher_heartbeat),
                    autolock,
                    default_addr_pool,
                    default_addr_pool_mask_length: default_addr_pool_mask_length.unwrap_or(0),
                    node_provisioning: provisioning,
                })
                .await?
                .into_inner();
            println!(
                "Swarm initialized: current node ({}) is now a manager.\n",
                response.node_id
            );
            print_join_instructions(
                TokenRole::Worker,
                &response.worker_token,
                &response.manager_addr,
            );
            println!(
                "To add a manager to this swarm, run 'shoal swarm join-token manager' and follow the instructions.\n"
            );
            if !response.unlock_key.is_empty() {
                print_unlock_instructions(&response.unlock_key);
            }
        }
        SwarmCommand::Join {
            token,
            advertise_addr,
            listen_addr,
            manager_addr,
        } => {
            let response = local
                .join(JoinRequest {
                    token,
                    remote_addr: manager_addr,
                    listen_addr,
                    advertise_addr,
                })
                .await?
                .into_inner();
            let role = if response.role() == NodeRole::Manager {
                "manager"
            } else {
                "worker"
            };
            println!("This node joined a swarm as a {role}.");
        }
        SwarmCommand::JoinToken {
            quiet,
            rotate,
            role,
        } => {
            let mut control = client::control(channel);
            let proto_role = match role {
                TokenRole::Worker => NodeRole::Worker,
                TokenRole::Manager => NodeRole::Manager,
            };
            let cluster = if rotate {
                control
                    .rotate_join_token(RotateJoinTokenRequest {
                        role: proto_role as i32,
                    })
                    .await?
                    .into_inner()
            } else {
                control
                    .get_cluster(GetClusterRequest {})
                    .await?
                    .into_inner()
            };
            let tokens = cluster.join_tokens.unwrap_or_default();
            let token = match role {
                TokenRole::Worker => tokens.worker,
                TokenRole::Manager => tokens.manager,
            };
            if quiet {
                println!("{token}");
                return Ok(());
            }
            if rotate {
                println!("Successfully rotated {} join token.\n", role_name(role));
            }
            let info = local.info(InfoRequest {}).await?.into_inner();
            print_join_instructions(role, &token, &info.node_addr);
        }
        SwarmCommand::Update {
            dispatcher_heartbeat,
            task_history_limit,
            cert_expiry,
            autolock,
            provisioning,
            bind_mount_prefix,
            bind_mount_any,
        } => {
            let set_bind_prefixes = bind_mount_any || !bind_mount_prefix.is_empty();
            if dispatcher_heartbeat.is_none()
                && task_history_limit.is_none()
                && cert_expiry.is_none()
                && autolock.is_none()
                && provisioning.is_empty()
                && !set_bind_prefixes
            {
                anyhow::bail!(
                    "nothing to update: give --dispatcher-heartbeat, --task-history-limit, --cert-expiry, --autolock, --bind-mount-prefix, --bind-mount-any and/or a --node-provisioner/--node-decommissioner flag"
                );
            }
            let cluster = client::control(channel)
                .update_cluster(UpdateClusterRequest {
                    dispatcher_heartbeat_ms: dispatcher_heartbeat.map(|d| d.as_millis() as u64),
                    task_history_limit,
                    node_cert_expiry_secs: cert_expiry.map(|d| d.as_secs()),
                    autolock,
                    rotate_unlock_key: false,
                    rotate_root_ca: false,
                    bind_prefixes: bind_mount_prefix,
                    set_bind_prefixes,
                    ..provisioning_request(&provisioning)
                })
                .await?
                .into_inner();
            println!("Swarm updated.");
            if autolock == Some(true) {
                let key = unlock_key(&mut local, &cluster).await?;
                print_unlock_instructions(&key);
            }
        }
        SwarmCommand::Inspect => {
            let cluster = client::control(channel)
                .get_cluster(GetClusterRequest {})
                .await?
                .into_inner();
            println!(
                "{}",
                serde_json::to_string_pretty(&super::swarm_inspect::json(&cluster))?
            );
        }
        SwarmCommand::Unlock => {
            let key = read_unlock_key()?;
            local.unlock(UnlockRequest { unlock_key: key }).await?;
        }
        SwarmCommand::UnlockKey { quiet, rotate } => {
            let cluster = if rotate {
                client::control(channel)
                    .update_cluster(UpdateClusterRequest {
                        rotate_unlock_key: true,
                        ..Default::default()
                    })
                    .await?
                    .into_inner()
            } else {
                Default::default()
            };
            let key = unlock_key(&mut local, &cluster).await?;
            if quiet {
                println!("{key}");
                return Ok(());
            }
            if rotate {
                println!("Successfully rotated manager unlock key.\n");
            }
            print_unlock_instructions(&key);
        }
        SwarmCommand::Ca {
            rotate,
            detach,
            quiet,
        } => super::swarm_ca::run(client::control(channel), rotate, detach, quiet).await?,
        SwarmCommand::Leave { force } => {
            local.leave(LeaveRequest { force }).await?;
            println!("Node left the swarm.");
        }
    }
    Ok(())
}

/// The hook flags as the update request carries them.
fn provisioning_request(flags: &crate::args::ProvisioningFlags) -> UpdateClusterRequest {
    let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_millis() as u64);
    UpdateClusterRequest {
        node_provisioner: flags.node_provisioner.clone(),
        node_provisioner_threshold_ms: ms(flags.node_provisioner_threshold),
        node_provisioner_timeout_ms: ms(flags.node_provisioner_timeout),
        node_provisioner_cooldown_ms: ms(flags.node_provisioner_cooldown),
        node_decommissioner: flags.node_decommissioner.clone(),
        node_idle_window_ms: ms(flags.node_idle_window),
        node_floor: flags.node_floor,
        ..Default::default()
    }
}

/// The unlock key from this node's own manager, once its replica has
/// applied `after` (the cluster an update just returned).
async fn unlock_key(
    local: &mut LocalNodeClient<tonic::transport::Channel>,
    after: &shoal_proto::v1::Cluster,
) -> anyhow::Result<String> {
    let key = local
        .get_unlock_key(GetUnlockKeyRequest {
            min_cluster_version: after.meta.as_ref().map_or(0, |m| m.version),
        })
        .await?
        .into_inner()
        .unlock_key;
    if key.is_empty() {
        anyhow::bail!(
            "no unlock key is set: autolock is off (turn it on with `shoal swarm update --autolock=true`)"
        );
    }
    Ok(key)
}

/// One line from stdin; on a terminal, after a prompt (the key is echoed).
fn read_unlock_key() -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Please enter unlock key: ");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let key = line.trim().to_string();
    if key.is_empty() {
        anyhow::bail!(
            "no unlock key given: type it, or pipe it in (`shoal swarm unlock < keyfile`)"
        );
    }
    Ok(key)
}

fn print_unlock_instructions(key: &str) {
    println!(
        "To unlock a swarm manager after it restarts, run the `shoal swarm unlock`\n\
         command and provide the following key:\n\n    {key}\n\n\
         Please remember to store this key in a password manager, since without it you\n\
         will not be able to restart the manager.\n"
    );
}

fn role_name(role: TokenRole) -> &'static str {
    match role {
        TokenRole::Worker => "worker",
        TokenRole::Manager => "manager",
    }
}

fn print_join_instructions(role: TokenRole, token: &str, addr: &str) {
    println!(
        "To add a {} to this swarm, run the following command:\n\n    shoal swarm join --token {token} {addr}\n",
        role_name(role)
    );
}
