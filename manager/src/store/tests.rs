use super::*;
use shoal_proto::v1::{JoinTokens, NodeSpec, NodeState, ServiceSpec};

fn cluster() -> Cluster {
    Cluster {
        id: "c1".into(),
        join_tokens: Some(JoinTokens {
            worker: "w".into(),
            manager: "m".into(),
        }),
        ..Default::default()
    }
}

fn node(id: &str) -> Node {
    Node {
        id: id.into(),
        spec: Some(NodeSpec::default()),
        ..Default::default()
    }
}

fn apply(state: &mut ClusterState, command: Command) -> (CommandResult, Vec<StoreEvent>) {
    let mut events = Vec::new();
    let result = state.apply(command, &mut events);
    (result, events)
}

#[test]
fn second_cluster_is_refused_and_changes_nothing() {
    let mut state = ClusterState::default();
    assert!(apply(&mut state, Command::CreateCluster(cluster()))
        .0
        .is_ok());
    let before = state.clone();
    let mut other = cluster();
    other.id = "c2".into();
    let (result, events) = apply(&mut state, Command::CreateCluster(other));
    assert!(matches!(result, Err(StoreError::AlreadyExists { .. })));
    assert!(events.is_empty());
    assert_eq!(state, before);
}

#[test]
fn session_marks_ready_and_down_keeps_description() {
    let mut state = ClusterState::default();
    apply(&mut state, Command::CreateNode(node("n1")))
        .0
        .unwrap();
    let description = NodeDescription {
        hostname: "h1".into(),
        ..Default::default()
    };
    let (result, events) = apply(
        &mut state,
        Command::NodeSessionStarted {
            node_id: "n1".into(),
            description: description.clone(),
            addr: "127.0.0.2".into(),
            at_ms: 5,
        },
    );
    result.unwrap();
    assert_eq!(events.len(), 1);
    let n = &state.nodes["n1"];
    assert_eq!(n.status.as_ref().unwrap().state(), NodeState::Ready);
    assert_eq!(n.meta.as_ref().unwrap().updated_at_ms, 5);

    apply(
        &mut state,
        Command::NodeDown {
            node_id: "n1".into(),
            message: "heartbeat failure".into(),
            at_ms: 9,
        },
    )
    .0
    .unwrap();
    let n = &state.nodes["n1"];
    assert_eq!(n.status.as_ref().unwrap().state(), NodeState::Down);
    assert_eq!(n.description.as_ref().unwrap(), &description);
}

#[test]
fn a_lost_session_is_down_only_if_no_newer_session_started() {
    let mut state = ClusterState::default();
    apply(&mut state, Command::CreateNode(node("n1")))
        .0
        .unwrap();
    let started = |at_ms| Command::NodeSessionStarted {
        node_id: "n1".into(),
        description: NodeDescription::default(),
        addr: "127.0.0.2".into(),
        at_ms,
    };
    let lost = |session_started_at_ms| Command::NodeSessionLost {
        node_id: "n1".into(),
        message: "connection closed".into(),
        session_started_at_ms,
        at_ms: 30,
    };
    apply(&mut state, started(10)).0.unwrap();
    // The node reconnected (session at 20) after the dispatcher judged the
    // session of 10 lost: it stays Ready, and nothing is announced.
    apply(&mut state, started(20)).0.unwrap();
    let (result, events) = apply(&mut state, lost(10));
    result.unwrap();
    assert!(events.is_empty());
    let state_of = |s: &ClusterState| s.nodes["n1"].status.as_ref().unwrap().state();
    assert_eq!(state_of(&state), NodeState::Ready);
    // Judging the current session lost marks it Down.
    apply(&mut state, lost(20)).0.unwrap();
    assert_eq!(state_of(&state), NodeState::Down);
}

#[test]
fn removed_node_is_remembered_and_unknown_node_errors() {
    let mut state = ClusterState::default();
    apply(&mut state, Command::CreateCluster(cluster()))
        .0
        .unwrap();
    apply(&mut state, Command::CreateNode(node("n1")))
        .0
        .unwrap();
    apply(
        &mut state,
        Command::RemoveNode {
            node_id: "n1".into(),
        },
    )
    .0
    .unwrap();
    assert!(state.is_removed("n1"));
    assert!(!state.nodes.contains_key("n1"));
    let before = state.clone();
    let (result, _) = apply(
        &mut state,
        Command::NodeDown {
            node_id: "n1".into(),
            message: String::new(),
            at_ms: 1,
        },
    );
    assert_eq!(
        result,
        Err(StoreError::NotFound {
            kind: ObjectKind::Node,
            id: "n1".into()
        })
    );
    assert_eq!(state, before);
}

#[test]
fn token_rotation_replaces_only_that_role() {
    let mut state = ClusterState::default();
    apply(&mut state, Command::CreateCluster(cluster()))
        .0
        .unwrap();
    apply(
        &mut state,
        Command::SetJoinToken {
            role: NodeRole::Worker,
            token: "w2".into(),
            at_ms: 3,
        },
    )
    .0
    .unwrap();
    let tokens = state.cluster.unwrap().join_tokens.unwrap();
    assert_eq!(tokens.worker, "w2");
    assert_eq!(tokens.manager, "m");
}

fn service(id: &str, name: &str) -> Service {
    Service {
        id: id.into(),
        spec: Some(ServiceSpec {
            name: name.into(),
            replicas: 1,
            ..Default::default()
        }),
        spec_version: 1,
        ..Default::default()
    }
}

fn task(id: &str, slot: u64) -> Task {
    Task {
        id: id.into(),
        service_id: "s1".into(),
        slot,
        desired_state: TaskState::Running as i32,
        status: Some(TaskStatus {
            state: TaskState::Pending as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn status(state: TaskState) -> TaskStatus {
    TaskStatus {
        state: state as i32,
        ..Default::default()
    }
}

#[test]
fn service_names_are_unique_and_renames_refused() {
    let mut state = ClusterState::default();
    apply(&mut state, Command::CreateService(service("s1", "web")))
        .0
        .unwrap();
    let (result, events) = apply(&mut state, Command::CreateService(service("s2", "web")));
    assert!(matches!(result, Err(StoreError::Conflict(m)) if m.contains("web already exists")));
    assert!(events.is_empty());
    let mut renamed = service("s1", "api").spec.unwrap();
    renamed.replicas = 3;
    let (result, _) = apply(
        &mut state,
        Command::UpdateServiceSpec {
            service_id: "s1".into(),
            spec: renamed,
            expected_version: 0,
            at_ms: 1,
        },
    );
    assert!(result.is_err());
    assert_eq!(state.services["s1"].spec_version, 1);
}

#[test]
fn a_slot_never_gets_a_second_live_task() {
    let mut state = ClusterState::default();
    apply(&mut state, Command::CreateService(service("s1", "web")))
        .0
        .unwrap();
    apply(
        &mut state,
        Command::CreateTasks(vec![task("a", 1), task("b", 1), task("c", 2)]),
    )
    .0
    .unwrap();
    let ids: Vec<&String> = state.tasks.keys().collect();
    assert_eq!(ids, vec!["a", "c"]);
}

#[test]
fn task_states_only_move_forward_and_only_from_their_node() {
    let mut state = ClusterState::default();
    apply(&mut state, Command::CreateNode(node("n1")))
        .0
        .unwrap();
    apply(&mut state, Command::CreateService(service("s1", "web")))
        .0
        .unwrap();
    apply(&mut state, Command::CreateTasks(vec![task("a", 1)]))
        .0
        .unwrap();
    apply(
        &mut state,
        Command::AssignTasks {
            assignments: vec![("a".into(), "n1".into())],
            at_ms: 1,
        },
    )
    .0
    .unwrap();
    let report = |state: &mut ClusterState, node: &str, s: TaskState| {
        apply(
            state,
            Command::UpdateTaskStatuses {
                node_id: node.into(),
                updates: vec![("a".into(), status(s))],
            },
        )
        .0
        .unwrap();
        state.tasks["a"].status.as_ref().unwrap().state()
    };
    assert_eq!(
        report(&mut state, "n2", TaskState::Running),
        TaskState::Assigned
    );
    assert_eq!(
        report(&mut state, "n1", TaskState::Running),
        TaskState::Running
    );
    assert_eq!(
        report(&mut state, "n1", TaskState::Starting),
        TaskState::Running
    );
    assert_eq!(
        report(&mut state, "n1", TaskState::Shutdown),
        TaskState::Shutdown
    );
    // A late report after a terminal state is dropped.
    assert_eq!(
        report(&mut state, "n1", TaskState::Failed),
        TaskState::Shutdown
    );
}

#[test]
fn a_root_rotation_ends_when_the_last_node_holds_a_certificate_of_the_new_root() {
    use shoal_proto::v1::{NodeCertificate, RootCa, RootRotation};
    let mut state = ClusterState::default();
    let mut c = cluster();
    c.root_ca = Some(RootCa {
        cert_pem: "old".into(),
        key_pem: "old key".into(),
        digest: "d-old".into(),
    });
    apply(&mut state, Command::CreateCluster(c)).0.unwrap();
    for id in ["n1", "n2"] {
        apply(&mut state, Command::CreateNode(node(id))).0.unwrap();
    }
    let rotation = RootRotation {
        new_root: Some(RootCa {
            cert_pem: "new".into(),
            key_pem: "new key".into(),
            digest: "d-new".into(),
        }),
        cross_signed_pem: "cross".into(),
    };
    let tokens = JoinTokens {
        worker: "w2".into(),
        manager: "m2".into(),
    };
    let start = Command::StartRootRotation {
        rotation: rotation.clone(),
        join_tokens: tokens.clone(),
        at_ms: 5,
    };
    apply(&mut state, start.clone()).0.unwrap();
    let cluster = state.cluster.clone().unwrap();
    assert_eq!(rotation::signing_root(&cluster).digest, "d-new");
    assert_eq!(cluster.join_tokens, Some(tokens));
    assert_eq!(rotation::progress(&state), Some((0, 2)));
    // A second rotation while one runs is refused and changes nothing.
    let before = state.clone();
    assert!(matches!(
        apply(&mut state, start).0,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(state, before);

    let issued = |digest: &str| NodeCertificate {
        not_before_ms: 1,
        not_after_ms: 2,
        root_digest: digest.into(),
    };
    apply(
        &mut state,
        Command::SetNodeCertificate {
            node_id: "n1".into(),
            certificate: issued("d-new"),
        },
    )
    .0
    .unwrap();
    assert_eq!(rotation::progress(&state), Some((1, 2)));
    // A renewal from the old root (a node that renewed just before) does not count.
    apply(
        &mut state,
        Command::SetNodeCertificate {
            node_id: "n2".into(),
            certificate: issued("d-old"),
        },
    )
    .0
    .unwrap();
    assert!(state.cluster.as_ref().unwrap().root_rotation.is_some());
    let (result, events) = apply(
        &mut state,
        Command::SetNodeCertificate {
            node_id: "n2".into(),
            certificate: issued("d-new"),
        },
    );
    result.unwrap();
    let cluster = state.cluster.clone().unwrap();
    assert!(cluster.root_rotation.is_none());
    assert_eq!(cluster.root_ca.unwrap().digest, "d-new");
    assert_eq!(
        rotation::trust_bundle(state.cluster.as_ref().unwrap()),
        "new"
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, StoreEvent::ClusterUpdated(c) if c.root_rotation.is_none())));
}

fn secret(id: &str, name: &str, len: usize) -> shoal_proto::v1::Secret {
    shoal_proto::v1::Secret {
        id: id.into(),
        meta: None,
        spec: Some(shoal_proto::v1::SecretSpec {
            name: name.into(),
            data: vec![b'x'; len],
            ..Default::default()
        }),
    }
}

#[test]
fn secrets_are_unique_bounded_and_kept_while_granted() {
    let mut state = ClusterState::default();
    assert!(
        apply(&mut state, Command::CreateSecret(secret("s1", "pw", 10)))
            .0
            .is_ok()
    );
    let (clash, _) = apply(&mut state, Command::CreateSecret(secret("s2", "pw", 10)));
    assert!(clash.unwrap_err().to_string().contains("already exists"));
    let (big, _) = apply(
        &mut state,
        Command::CreateSecret(secret("s3", "big", secrets::MAX_DATA_BYTES + 1)),
    );
    assert!(big.unwrap_err().to_string().contains("500 KB"));
    assert_eq!(state.secrets.len(), 1);

    let mut granted = service("svc1", "db");
    granted.spec.as_mut().unwrap().task = Some(shoal_proto::v1::TaskSpec {
        secrets: vec![shoal_proto::v1::SecretReference {
            secret_id: "s1".into(),
            ..Default::default()
        }],
        ..Default::default()
    });
    assert!(apply(&mut state, Command::CreateService(granted.clone()))
        .0
        .is_ok());
    let (in_use, events) = apply(
        &mut state,
        Command::RemoveSecret {
            secret_id: "s1".into(),
        },
    );
    assert!(in_use
        .unwrap_err()
        .to_string()
        .contains("in use by service db"));
    assert!(events.is_empty() && state.secrets.contains_key("s1"));

    // A grant of a secret the store does not hold is refused.
    let mut dangling = granted;
    dangling.id = "svc2".into();
    dangling.spec.as_mut().unwrap().name = "other".into();
    dangling
        .spec
        .as_mut()
        .unwrap()
        .task
        .as_mut()
        .unwrap()
        .secrets[0]
        .secret_id = "gone".into();
    assert!(apply(&mut state, Command::CreateService(dangling))
        .0
        .is_err());

    assert!(apply(
        &mut state,
        Command::RemoveService {
            service_id: "svc1".into()
        }
    )
    .0
    .is_ok());
    assert!(apply(
        &mut state,
        Command::RemoveSecret {
            secret_id: "s1".into()
        }
    )
    .0
    .is_ok());
    assert!(state.secrets.is_empty());
}
