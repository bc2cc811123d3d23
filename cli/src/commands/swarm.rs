//! `shoal swarm init | join | join-token | leave`.

use shoal_proto::v1::control_client::ControlClient;
use shoal_proto::v1::local_node_client::LocalNodeClient;
use shoal_proto::v1::{
    GetClusterRequest, InfoRequest, InitRequest, JoinRequest, LeaveRequest, NodeRole, RaftConfig,
    RotateJoinTokenRequest, UpdateClusterRequest,
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
            default_addr_pool,
            default_addr_pool_mask_length,
        } => {
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
                    default_addr_pool,
                    default_addr_pool_mask_length: default_addr_pool_mask_length.unwrap_or(0),
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
            let mut control = ControlClient::new(channel);
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
        } => {
            if dispatcher_heartbeat.is_none()
                && task_history_limit.is_none()
                && cert_expiry.is_none()
            {
                anyhow::bail!(
                    "nothing to update: give --dispatcher-heartbeat, --task-history-limit and/or --cert-expiry"
                );
            }
            ControlClient::new(channel)
                .update_cluster(UpdateClusterRequest {
                    dispatcher_heartbeat_ms: dispatcher_heartbeat.map(|d| d.as_millis() as u64),
                    task_history_limit,
                    node_cert_expiry_secs: cert_expiry.map(|d| d.as_secs()),
                })
                .await?;
            println!("Swarm updated.");
        }
        SwarmCommand::Leave { force } => {
            local.leave(LeaveRequest { force }).await?;
            println!("Node left the swarm.");
        }
    }
    Ok(())
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
