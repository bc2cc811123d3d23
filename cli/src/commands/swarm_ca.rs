//! `shoal swarm ca [--rotate [--detach]] [--quiet]`: the root CA's
//! fingerprint, a rotation's progress, and the rotation itself — as
//! Docker's `docker swarm ca`.

use std::time::Duration;

use shoal_proto::v1::control_client::ControlClient;
use shoal_proto::v1::{Cluster, GetClusterRequest, ListNodesRequest, UpdateClusterRequest};
use tonic::transport::Channel;

/// How often a waiting `--rotate` looks at the progress.
const POLL: Duration = Duration::from_millis(500);

/// Where a rotation stands, as shown to the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The new root's fingerprint and digest.
    pub desired_fingerprint: String,
    pub desired_digest: String,
    pub on_new_root: usize,
    pub nodes: usize,
}

/// The rotation in progress in `cluster`, counting the `nodes` whose
/// certificate is of the new root (pure).
pub fn progress(cluster: &Cluster, nodes: &[shoal_proto::v1::Node]) -> Option<Progress> {
    let new = cluster.root_rotation.as_ref()?.new_root.as_ref()?;
    let on_new_root = nodes
        .iter()
        .filter(|n| {
            n.certificate
                .as_ref()
                .is_some_and(|c| c.root_digest == new.digest)
        })
        .count();
    Some(Progress {
        desired_fingerprint: fingerprint(&new.cert_pem),
        desired_digest: new.digest.clone(),
        on_new_root,
        nodes: nodes.len(),
    })
}

fn fingerprint(pem: &str) -> String {
    shoal_security::ca::fingerprint_of_pem(pem).unwrap_or_else(|_| "(unreadable)".into())
}

fn render(progress: &Progress) -> String {
    format!(
        "desired root digest: {}\n  rotated TLS certificates:  {}/{} nodes",
        progress.desired_fingerprint, progress.on_new_root, progress.nodes
    )
}

async fn state(
    control: &mut ControlClient<Channel>,
) -> anyhow::Result<(Cluster, Vec<shoal_proto::v1::Node>)> {
    let cluster = control
        .get_cluster(GetClusterRequest {})
        .await?
        .into_inner();
    let nodes = control
        .list_nodes(ListNodesRequest {})
        .await?
        .into_inner()
        .nodes;
    Ok((cluster, nodes))
}

fn print_root(cluster: &Cluster) {
    let root = cluster.root_ca.clone().unwrap_or_default();
    println!("root CA fingerprint: {}", fingerprint(&root.cert_pem));
    print!("{}", root.cert_pem);
}

pub async fn run(
    mut control: ControlClient<Channel>,
    rotate: bool,
    detach: bool,
    quiet: bool,
) -> anyhow::Result<()> {
    if !rotate {
        let (cluster, nodes) = state(&mut control).await?;
        if let Some(progress) = progress(&cluster, &nodes) {
            println!("root CA rotation in progress");
            println!("{}", render(&progress));
        }
        print_root(&cluster);
        return Ok(());
    }
    control
        .update_cluster(UpdateClusterRequest {
            rotate_root_ca: true,
            ..Default::default()
        })
        .await?;
    let (cluster, nodes) = state(&mut control).await?;
    let Some(started) = progress(&cluster, &nodes) else {
        // Finished already (a swarm of nodes that renewed at once).
        print_root(&cluster);
        return Ok(());
    };
    if detach {
        if !quiet {
            println!("{}", render(&started));
        }
        println!(
            "root CA rotation started; `shoal swarm ca` shows its progress. \
             The join tokens have changed."
        );
        return Ok(());
    }
    let mut shown: Option<Progress> = None;
    loop {
        let (cluster, nodes) = state(&mut control).await?;
        let done = cluster
            .root_ca
            .as_ref()
            .is_some_and(|ca| ca.digest == started.desired_digest)
            && cluster.root_rotation.is_none();
        if done {
            if !quiet {
                let finished = Progress {
                    on_new_root: nodes.len(),
                    nodes: nodes.len(),
                    ..started.clone()
                };
                if shown.as_ref() != Some(&finished) {
                    println!("{}", render(&finished));
                }
            }
            println!(
                "root CA rotation complete: every node holds a certificate of the new root, \
                 and the old root is no longer trusted. The join tokens have changed."
            );
            print_root(&cluster);
            return Ok(());
        }
        match progress(&cluster, &nodes) {
            Some(now) if now.desired_digest == started.desired_digest => {
                if !quiet && shown.as_ref() != Some(&now) {
                    println!("{}", render(&now));
                    shown = Some(now);
                }
            }
            _ => anyhow::bail!(
                "the root CA rotation to {} did not complete: the swarm now has root {} \
                 (another rotation replaced it?): see `shoal swarm ca`",
                started.desired_fingerprint,
                cluster
                    .root_ca
                    .as_ref()
                    .map(|ca| fingerprint(&ca.cert_pem))
                    .unwrap_or_default()
            ),
        }
        tokio::time::sleep(POLL).await;
    }
}
