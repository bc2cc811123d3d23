//! Property tests: whatever bytes arrive — random, or a fixture with random
//! edits and deleted lines — the loader returns a stack or an error, never
//! panics, and a stack it returns renders and reloads.

// A test crate: its helpers unwrap like its tests (the workspace denies
// unwrap_used in everything else).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use proptest::prelude::*;
use shoal_compose::{load_str, render, startup_order};

const FIXTURES: [&str; 3] = [
    include_str!("fixtures/django-web-db.yml"),
    include_str!("fixtures/python-web-postgres.yml"),
    include_str!("fixtures/web-app-db-networks.yml"),
];

/// A richer valid file, so that mutations reach deploy, healthcheck,
/// anchors, merge keys and interpolation too.
const RICH: &str = r#"
x-common: &common
  labels: [a=b]
  deploy:
    replicas: ${REPLICAS:-2}
    resources: {limits: {cpus: "0.5", memory: 512M}}
services:
  web:
    <<: *common
    image: nginx:${TAG-latest}
    ports: ["8080:80", "127.0.0.1:9000-9001:9000-9001/udp", {target: 443, published: 8443, mode: host}]
    healthcheck: {test: curl -f http://localhost, interval: 1m30s, retries: 3}
    depends_on: {db: {condition: service_healthy}}
    networks: {front: {aliases: [www]}}
    secrets: [{source: s, mode: 0440}]
  db:
    x-shoal-runtime: process
    command: ["sleep", "$$HOME"]
    stop_grace_period: 10s
networks: {front: {}}
secrets: {s: {external: true}}
"#;

fn check(text: &str) {
    let env = HashMap::from([("TAG".to_owned(), "1".to_owned())]);
    if let Ok(stack) = load_str("fuzz.yml", text, &env) {
        let _ = startup_order(&stack);
        let rendered = render(&stack);
        let again = load_str("rendered.yml", &rendered, &env);
        assert!(
            again.is_ok(),
            "rendered output does not load: {again:?}\n--- input\n{text}\n--- rendered\n{rendered}"
        );
    }
}

#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    DeleteLine(usize),
    DuplicateLine(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    // Bytes that matter to YAML and to the loader are drawn often.
    let byte = prop_oneof![
        any::<u8>(),
        prop::sample::select(b":-[]{}&*<>|'\"#$ \n\t!%@,?0".to_vec()),
    ];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(i, b)| Edit::Replace(i, b)),
        (any::<usize>(), byte).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::DeleteLine),
        any::<usize>().prop_map(Edit::DuplicateLine),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for e in edits {
        let len = bytes.len().max(1);
        match *e {
            Edit::Replace(i, b) if !bytes.is_empty() => bytes[i % len] = b,
            Edit::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
            Edit::Delete(i) if !bytes.is_empty() => {
                bytes.remove(i % len);
            }
            Edit::DeleteLine(i) | Edit::DuplicateLine(i) => {
                let mut lines: Vec<Vec<u8>> =
                    bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
                let at = i % lines.len();
                if matches!(e, Edit::DeleteLine(_)) {
                    lines.remove(at);
                } else {
                    let line = lines[at].clone();
                    lines.insert(at, line);
                }
                bytes = lines.join(&b'\n');
            }
            _ => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn yaml_ish_text_never_panics(text in "[a-z:\\-\\[\\]{}&*<$ \n\"']{0,200}") {
        check(&text);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in 0..FIXTURES.len() + 1,
        edits in prop::collection::vec(edit(), 1..8),
    ) {
        let base = FIXTURES.get(which).copied().unwrap_or(RICH);
        check(&apply(base, &edits));
    }
}

#[test]
fn rich_file_loads() {
    let env = HashMap::from([("TAG".to_owned(), "1".to_owned())]);
    let stack = load_str("rich.yml", RICH, &env).unwrap();
    assert_eq!(stack.services["web"].replicas, Some(2));
    assert_eq!(stack.services["web"].image.as_deref(), Some("nginx:1"));
    assert_eq!(stack.services["web"].ports.len(), 4);
    assert_eq!(stack.services["db"].command, ["sleep", "$HOME"]);
}
