//! Only certificates from the cluster CA get past the manager's listener, and
//! only manager certificates reach the control API and Raft.

use std::time::Duration;

use shoal_proto::v1::control_client::ControlClient;
use shoal_proto::v1::dispatcher_client::DispatcherClient;
use shoal_proto::v1::raft_client::RaftClient;
use shoal_proto::v1::{HeartbeatRequest, ListNodesRequest, RaftMessage};
use shoal_security::files::NodeCredentials;
use shoal_security::{tls, NodeKey, Role, RootCa};
use tonic::transport::{Channel, ClientTlsConfig};
use tonic::Code;

use crate::util::{cluster, TestDir};

pub(crate) async fn channel(
    addr: &str,
    config: ClientTlsConfig,
) -> Result<Channel, tonic::transport::Error> {
    tls::endpoint(addr, Duration::from_secs(5))
        .unwrap()
        .tls_config(config)?
        .connect()
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn only_cluster_certificates_of_the_right_role_are_served() {
    let dir = TestDir::new();
    let (manager, workers, addr) = tokio::task::block_in_place(|| cluster(&dir, 1));
    let manager_creds = NodeCredentials::read_in_place(&manager.data_dir).unwrap();
    let worker_creds = NodeCredentials::read_in_place(&workers[0].data_dir).unwrap();

    // The manager's own certificate is served: the checks below can fail.
    let ok = channel(&addr, tls::client_config(&manager_creds))
        .await
        .unwrap();
    let nodes = ControlClient::new(ok)
        .list_nodes(ListNodesRequest {})
        .await
        .unwrap();
    assert_eq!(nodes.into_inner().nodes.len(), 2);

    // No client certificate: TLS succeeds (joining nodes need the CA API) but
    // every other API refuses.
    let anonymous = channel(&addr, tls::ca_only_client_config(&manager_creds.ca_pem))
        .await
        .unwrap();
    let status = ControlClient::new(anonymous.clone())
        .list_nodes(ListNodesRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let status = DispatcherClient::new(anonymous.clone())
        .heartbeat(HeartbeatRequest {
            session_id: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let status = RaftClient::new(anonymous)
        .vote(RaftMessage { data: vec![] })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    // A worker certificate reaches the dispatcher but not control or Raft.
    let worker = channel(&addr, tls::client_config(&worker_creds))
        .await
        .unwrap();
    let status = ControlClient::new(worker.clone())
        .list_nodes(ListNodesRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let status = RaftClient::new(worker.clone())
        .vote(RaftMessage { data: vec![] })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let status = DispatcherClient::new(worker)
        .heartbeat(HeartbeatRequest {
            session_id: "not-a-session".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    // A manager certificate from another CA, even naming this cluster, fails
    // the handshake.
    let cluster_id = manager.info()["ClusterID"].as_str().unwrap().to_string();
    let rogue_ca = RootCa::generate(&cluster_id).unwrap();
    let key = NodeKey::generate().unwrap();
    let cert = rogue_ca
        .sign_node_csr(
            &key.csr("rogue").unwrap(),
            "rogue",
            Role::Manager,
            &cluster_id,
            Duration::from_secs(3600),
        )
        .unwrap();
    let rogue = NodeCredentials {
        // Trusting the real CA for the server side, presenting the rogue cert.
        ca_pem: manager_creds.ca_pem.clone(),
        cert_pem: cert,
        key_pem: key.key_pem(),
    };
    let refused = match channel(&addr, tls::client_config(&rogue)).await {
        Err(_) => true,
        Ok(ch) => ControlClient::new(ch)
            .list_nodes(ListNodesRequest {})
            .await
            .is_err(),
    };
    assert!(refused, "a certificate from another CA must be refused");
    drop(workers);
}
