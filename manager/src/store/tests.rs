use super::*;
use shoal_proto::v1::{JoinTokens, NodeSpec};

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
