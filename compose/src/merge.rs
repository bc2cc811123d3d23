//! Merging several Compose files into one document, following the Compose
//! Spec's merge rules (`docker compose -f a.yml -f b.yml`):
//!
//! - mappings merge by key, recursively; a later scalar replaces an earlier
//!   one, and so does a value of a different type;
//! - `command`, `entrypoint` and `healthcheck.test` are replaced whole;
//! - `environment`, `labels`, `deploy.labels`, `networks` and `depends_on`
//!   are first turned from list form into mapping form, then merge by key;
//! - `secrets` and `configs` merge by `source`, `volumes` by target path;
//! - every other list (`ports`, `expose`, `dns`, `constraints`, …) is the
//!   earlier list followed by the later one's entries it did not have.
//!
//! Files are merged after each was interpolated and before validation, so
//! errors still point at the file and line each value came from.

use crate::yaml::{Key, Node, Pos, Value};

/// Merges `over` (a later file) into `base`.
pub(crate) fn merge_files(base: &mut Node, mut over: Node) {
    normalize(base);
    normalize(&mut over);
    merge(base, over, &mut Vec::new());
}

fn merge(base: &mut Node, over: Node, path: &mut Vec<String>) {
    let replace_whole = matches!(
        path_str(path).as_str(),
        "services.*.command" | "services.*.entrypoint" | "services.*.healthcheck.test"
    );
    match (&mut base.value, over.value) {
        (Value::Map(base_entries), Value::Map(over_entries)) if !replace_whole => {
            for (key, value) in over_entries {
                match base_entries.iter_mut().find(|(k, _)| k.name == key.name) {
                    Some((_, existing)) => {
                        path.push(key.name.clone());
                        merge(existing, value, path);
                        path.pop();
                    }
                    None => base_entries.push((key, value)),
                }
            }
        }
        (Value::Seq(base_items), Value::Seq(over_items)) if !replace_whole => {
            let key_of: Option<fn(&Node) -> Option<String>> = match path_str(path).as_str() {
                "services.*.secrets" | "services.*.configs" => Some(source_key),
                "services.*.volumes" => Some(target_key),
                _ => None,
            };
            for item in over_items {
                let found = match key_of {
                    Some(key_of) => {
                        let key = key_of(&item);
                        base_items
                            .iter()
                            .position(|b| key.is_some() && key_of(b) == key)
                    }
                    None => base_items.iter().position(|b| b.same_value(&item)),
                };
                match found {
                    Some(i) => base_items[i] = item,
                    None => base_items.push(item),
                }
            }
        }
        (_, value) => {
            base.value = value;
            base.pos = over.pos;
        }
    }
}

/// The path with service names replaced by `*`, for matching rules.
fn path_str(path: &[String]) -> String {
    path.iter()
        .enumerate()
        .map(|(i, seg)| {
            if i == 1 && path[0] == "services" {
                "*"
            } else {
                seg.as_str()
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn source_key(node: &Node) -> Option<String> {
    match node.scalar() {
        Some(text) => Some(text.to_owned()),
        None => node.get("source")?.scalar().map(str::to_owned),
    }
}

fn target_key(node: &Node) -> Option<String> {
    match node.scalar() {
        Some(text) => {
            let parts: Vec<&str> = text.split(':').collect();
            Some(if parts.len() >= 2 { parts[1] } else { parts[0] }.to_owned())
        }
        None => node.get("target")?.scalar().map(str::to_owned),
    }
}

/// Rewrites the list forms of a file's services into mapping forms so that
/// files using different forms still merge by key.
fn normalize(root: &mut Node) {
    let Value::Map(top) = &mut root.value else {
        return;
    };
    let Some((_, services)) = top.iter_mut().find(|(k, _)| k.name == "services") else {
        return;
    };
    let Value::Map(services) = &mut services.value else {
        return;
    };
    for (_, service) in services.iter_mut() {
        let Value::Map(fields) = &mut service.value else {
            continue;
        };
        for (key, value) in fields.iter_mut() {
            match key.name.as_str() {
                "environment" => list_to_map(value, |t, _| assignment(t, None)),
                "labels" => list_to_map(value, |t, _| assignment(t, Some(""))),
                "networks" => list_to_map(value, |t, _| (t.to_owned(), Value::Null)),
                // A list-form entry means "started", spelled out so that it
                // merges with a later file's mapping-form entry.
                "depends_on" => list_to_map(value, |t, pos| {
                    let condition = Node::new(scalar("service_started", false), pos.clone());
                    let key = Key {
                        name: "condition".to_owned(),
                        pos: pos.clone(),
                    };
                    (t.to_owned(), Value::Map(vec![(key, condition)]))
                }),
                "deploy" => {
                    if let Value::Map(deploy) = &mut value.value {
                        for (k, v) in deploy.iter_mut() {
                            if k.name == "labels" {
                                list_to_map(v, |t, _| assignment(t, Some("")));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

fn scalar(text: &str, quoted: bool) -> Value {
    Value::Scalar {
        text: text.to_owned(),
        quoted,
    }
}

/// `KEY=VALUE` → (KEY, "VALUE"); a bare `KEY` → `bare` (null when `None`).
/// Values become quoted scalars: they were strings in the list.
fn assignment(text: &str, bare: Option<&str>) -> (String, Value) {
    match text.split_once('=') {
        Some((k, v)) => (k.to_owned(), scalar(v, true)),
        None => (
            text.to_owned(),
            bare.map_or(Value::Null, |b| scalar(b, true)),
        ),
    }
}

/// Replaces a list of scalars by a mapping, `split` giving each item's key
/// and value. Lists with non-scalar items are left alone for validation to
/// report.
fn list_to_map(node: &mut Node, split: impl Fn(&str, &Pos) -> (String, Value)) {
    let Value::Seq(items) = &node.value else {
        return;
    };
    if !items.iter().all(|i| i.scalar().is_some()) {
        return;
    }
    let mut entries: Vec<(Key, Node)> = Vec::new();
    for item in items {
        let (name, value) = split(item.scalar().unwrap_or_default(), &item.pos);
        entries.retain(|(k, _)| k.name != name);
        entries.push((
            Key {
                name,
                pos: item.pos.clone(),
            },
            Node::new(value, item.pos.clone()),
        ));
    }
    node.value = Value::Map(entries);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{emit, parse};

    fn merged(a: &str, b: &str) -> String {
        let mut base = parse("a.yml", a).unwrap();
        merge_files(&mut base, parse("b.yml", b).unwrap());
        emit(&base)
    }

    #[test]
    fn scalars_override_and_maps_merge() {
        let out = merged(
            "services:\n  web:\n    image: a\n    environment: [A=1, B=2]\n",
            "services:\n  web:\n    image: b\n    environment:\n      B: 3\n      C: 4\n",
        );
        assert_eq!(
            out,
            "services:\n  web:\n    environment:\n      A: \"1\"\n      B: 3\n      C: 4\n    image: b\n"
        );
    }

    #[test]
    fn commands_are_replaced_and_ports_appended_once() {
        let out = merged(
            "services:\n  web:\n    command: [a, b]\n    ports: [\"80:80\", \"443:443\"]\n",
            "services:\n  web:\n    command: [c]\n    ports: [\"443:443\", \"8080:8080\"]\n",
        );
        assert_eq!(
            out,
            "services:\n  web:\n    command:\n      - c\n    ports:\n      - \"80:80\"\n      - \"443:443\"\n      - \"8080:8080\"\n"
        );
    }

    #[test]
    fn secrets_merge_by_source_and_volumes_by_target() {
        let out = merged(
            "services:\n  s:\n    secrets: [a, b]\n    volumes: [\"d:/data\"]\n",
            "services:\n  s:\n    secrets: [{source: a, target: x}]\n    volumes: [\"e:/data:ro\"]\n",
        );
        assert_eq!(
            out,
            "services:\n  s:\n    secrets:\n      - source: a\n        target: x\n      - b\n    volumes:\n      - \"e:/data:ro\"\n"
        );
    }

    #[test]
    fn depends_on_list_and_map_forms_merge() {
        let out = merged(
            "services:\n  s:\n    depends_on: [db]\n",
            "services:\n  s:\n    depends_on:\n      cache:\n        condition: service_healthy\n",
        );
        assert_eq!(
            out,
            "services:\n  s:\n    depends_on:\n      cache:\n        condition: service_healthy\n      db:\n        condition: service_started\n"
        );
    }
}
