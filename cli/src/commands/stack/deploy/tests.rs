use std::collections::HashMap;

use shoal_proto::v1::Service;

use super::*;

const FILE: &str = r#"
services:
  db:
    x-shoal-runtime: process
    command: sleep 3600
  api:
    x-shoal-runtime: process
    command: sleep 3600
    depends_on:
      db: {condition: service_healthy}
  web:
    x-shoal-runtime: process
    command: sleep 3600
    depends_on: [api, db]
"#;

fn converted(text: &str) -> (Vec<Planned>, Vec<Vec<String>>) {
    let stack = shoal_compose::load_str("s.yml", text, &HashMap::new()).unwrap();
    let order = shoal_compose::startup_order(&stack).unwrap();
    (convert::convert("s", &stack).unwrap().0, order)
}

fn existing(spec: &ServiceSpec, id: &str, version: u64) -> Service {
    Service {
        id: id.into(),
        spec: Some(spec.clone()),
        spec_version: version,
        ..Default::default()
    }
}

#[test]
fn a_first_deploy_creates_in_layers_and_waits_for_dependencies() {
    let (planned, order) = converted(FILE);
    let plan = plan("s", &planned, &order, &[], true);
    assert!(plan.remove.is_empty());
    let names: Vec<Vec<String>> = plan
        .layers
        .iter()
        .map(|l| {
            l.actions
                .iter()
                .map(|a| match a {
                    Action::Create(spec) => spec.name.clone(),
                    other => panic!("{other:?}"),
                })
                .collect()
        })
        .collect();
    assert_eq!(names, [vec!["s_db"], vec!["s_api"], vec!["s_web"]]);
    assert!(plan.layers[0].waits.is_empty());
    assert_eq!(
        plan.layers[1].waits,
        [Wait {
            service: "s_db".into(),
            condition: Condition::ServiceHealthy,
            for_services: vec!["s_api".into()],
        }]
    );
    let waited: Vec<&str> = plan.layers[2]
        .waits
        .iter()
        .map(|w| w.service.as_str())
        .collect();
    assert_eq!(waited, ["s_api", "s_db"]);
}

#[test]
fn a_redeploy_updates_only_changed_services_and_prunes_the_rest() {
    let (planned, order) = converted(FILE);
    let spec = |name: &str| {
        planned
            .iter()
            .find(|p| p.spec.name == name)
            .unwrap()
            .spec
            .clone()
    };
    let mut changed_api = spec("s_api");
    changed_api.replicas = 5;
    let mut old = spec("s_db");
    old.name = "s_old".into();
    let current = [
        existing(&spec("s_db"), "id-db", 3),
        existing(&changed_api, "id-api", 7),
        existing(&old, "id-old", 1),
    ];
    let plan = plan("s", &planned, &order, &current, true);
    assert_eq!(plan.remove, [("s_old".to_string(), "id-old".to_string())]);
    assert_eq!(
        plan.layers[0].actions,
        [Action::Unchanged {
            name: "s_db".into()
        }]
    );
    assert_eq!(
        plan.layers[1].actions,
        [Action::Update {
            id: "id-api".into(),
            expected_version: 7,
            spec: spec("s_api"),
        }]
    );
    assert!(matches!(plan.layers[2].actions[0], Action::Create(_)));

    let without_prune = super::plan("s", &planned, &order, &current, false);
    assert!(without_prune.remove.is_empty());
}
