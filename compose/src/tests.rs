//! Loader tests through the public entry points: each invalid case and the
//! exact message it gives, and each feature (interpolation, anchors and
//! merge keys, `x-` fields, multi-file merge, process services, units,
//! startup order, warnings, rendering).

use std::collections::HashMap;
use std::fs;
use std::time::Duration;

use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn ok(text: &str) -> Stack {
    load_str("stack.yml", text, &HashMap::new()).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> String {
    match load_str("stack.yml", text, &HashMap::new()) {
        Ok(stack) => panic!("expected an error, loaded {stack:?}"),
        Err(e) => e.to_string(),
    }
}

// ---- invalid input --------------------------------------------------------

#[test]
fn malformed_yaml_names_file_and_line() {
    let e = err("services:\n  web:\n    image: nginx\n    ports: [\"80:80\"\n  db:\n");
    assert!(e.starts_with("stack.yml:5: malformed YAML: "), "{e}");
    let e = err("services:\n  web:\n    image: nginx\n   command: x\n");
    assert!(e.starts_with("stack.yml:4: malformed YAML: "), "{e}");
    let e = err("services: {web: {image: a}}\nservices: {}\n");
    assert_eq!(
        e,
        "stack.yml:2: malformed YAML: duplicate key `services` in a mapping"
    );
}

#[test]
fn non_mapping_documents_are_refused() {
    assert_eq!(
        err(""),
        "stack.yml:1: (top level): expected a mapping with a `services:` key, got an empty file"
    );
    assert_eq!(
        err("- a\n- b\n"),
        "stack.yml:1: (top level): expected a mapping with a `services:` key, got a list"
    );
}

#[test]
fn unknown_keys_are_errors_with_a_suggestion() {
    assert_eq!(
        err("services:\n  web:\n    imagee: nginx\n"),
        "stack.yml:3: services.web.imagee: unknown key `imagee`; did you mean `image`?"
    );
    assert_eq!(
        err("services:\n  web:\n    image: nginx\n    deploy:\n      replica: 2\n"),
        "stack.yml:5: services.web.deploy.replica: unknown key `replica`; did you mean `replicas`?"
    );
    let e = err("servicez: {}\n");
    assert!(
        e.starts_with("stack.yml:1: servicez: unknown key `servicez`; did you mean `services`?"),
        "{e}"
    );
    let e = err("services:\n  web:\n    image: nginx\n    healthcheck:\n      zzz: 1\n");
    assert_eq!(
        e,
        "stack.yml:5: services.web.healthcheck.zzz: unknown key `zzz`; expected one of: test, interval, timeout, retries, start_period, start_interval, disable"
    );
}

#[test]
fn wrong_types_say_what_was_expected() {
    let cases = [
        (
            "services:\n  web:\n    image: nginx\n    deploy:\n      replicas: many\n",
            "stack.yml:5: services.web.deploy.replicas: expected a non-negative integer, got \"many\"",
        ),
        (
            "services:\n  web:\n    image: nginx\n    ports: \"80:80\"\n",
            "stack.yml:4: services.web.ports: expected a list of ports, got \"80:80\"",
        ),
        (
            "services:\n  web:\n    image: [nginx]\n",
            "stack.yml:3: services.web.image: expected a string, got a list",
        ),
        (
            "services:\n  web:\n    image: nginx\n    environment: 5\n",
            "stack.yml:4: services.web.environment: expected a mapping or a list of KEY=VALUE strings, got \"5\"",
        ),
        (
            "services:\n  web:\n    image: nginx\n    environment:\n      A: [1]\n",
            "stack.yml:5: services.web.environment.A: expected a string, number or boolean, got a list",
        ),
        (
            "services:\n  web:\n    image: nginx\n    stop_grace_period: soon\n",
            "stack.yml:4: services.web.stop_grace_period: expected a duration like 1m30s, 10s or 500ms, got \"soon\"",
        ),
        (
            "services:\n  web:\n    image: nginx\n    deploy:\n      resources:\n        limits:\n          memory: lots\n",
            "stack.yml:7: services.web.deploy.resources.limits.memory: expected a byte size like 512M, 1g or 1073741824, got \"lots\"",
        ),
        (
            "services:\n  web:\n    image: nginx\n    deploy:\n      mode: everywhere\n",
            "stack.yml:5: services.web.deploy.mode: expected one of replicated, global, replicated-job, global-job, got \"everywhere\"",
        ),
        (
            "services:\n  web:\n    image: nginx\n    deploy:\n      mode: global\n      replicas: 2\n",
            "stack.yml:6: services.web.deploy.replicas: expected no `replicas` with mode global: a global service runs one task per node",
        ),
        (
            "services:\n  web: nginx\n",
            "stack.yml:2: services.web: expected a mapping, got \"nginx\"",
        ),
        (
            "services:\n  web:\n    command: [a]\n",
            "stack.yml:2: services.web: expected `image` (or `x-shoal-runtime: process` with a `command` for a process service)",
        ),
        (
            "services:\n  web:\n    image: nginx\n    deploy:\n      update_config:\n        max_failure_ratio: 2\n",
            "stack.yml:6: services.web.deploy.update_config.max_failure_ratio: expected a number between 0 and 1, got \"2\"",
        ),
        (
            "services:\n  \"-web\":\n    image: nginx\n",
            "stack.yml:2: services.-web: invalid service name \"-web\": expected letters, digits, `_`, `.` or `-`, starting with a letter or digit",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(err(text), want, "for\n{text}");
    }
}

#[test]
fn out_of_range_ports_name_the_list_item() {
    let text = "services:\n  web:\n    image: nginx\n    ports:\n      - \"80:80\"\n      - \"70000:80\"\n";
    assert_eq!(
        err(text),
        "stack.yml:6: services.web.ports[1]: expected a port number between 1 and 65535, got 70000"
    );
    let text = "services:\n  web:\n    image: nginx\n    ports:\n      - target: 0\n";
    assert_eq!(
        err(text),
        "stack.yml:5: services.web.ports[0].target: expected a port number between 1 and 65535, got 0"
    );
    let text = "services:\n  web:\n    image: nginx\n    ports: [\"8000-8002:80-81\"]\n";
    assert_eq!(
        err(text),
        "stack.yml:4: services.web.ports[0]: expected host and container port ranges of the same length in \"8000-8002:80-81\""
    );
    let text = "services:\n  web:\n    image: nginx\n    ports: [\"80/quic\"]\n";
    assert_eq!(
        err(text),
        "stack.yml:4: services.web.ports[0]: expected protocol tcp, udp or sctp, got \"quic\""
    );
    let text = "services:\n  web:\n    image: nginx\n    expose: [\"99999\"]\n";
    assert_eq!(
        err(text),
        "stack.yml:4: services.web.expose[0]: expected a port number between 1 and 65535, got 99999"
    );
}

#[test]
fn undefined_references_are_errors() {
    let e = err("services:\n  web:\n    image: nginx\n    networks:\n      - front\n      - back\nnetworks:\n  front: {}\n");
    assert_eq!(
        e,
        "stack.yml:6: services.web.networks[1]: undefined network `back`: expected a network declared under the top-level `networks:`"
    );
    let e = err(
        "services:\n  web:\n    image: nginx\n    networks:\n      back:\n        aliases: [w]\n",
    );
    assert_eq!(
        e,
        "stack.yml:5: services.web.networks.back: undefined network `back`: expected a network declared under the top-level `networks:`"
    );
    let e = err("services:\n  web:\n    image: nginx\n    secrets:\n      - source: pw\n");
    assert_eq!(
        e,
        "stack.yml:5: services.web.secrets[0]: undefined secret `pw`: expected a secret declared under the top-level `secrets:`"
    );
    let e = err("services:\n  web:\n    image: nginx\n    configs: [conf]\n");
    assert_eq!(
        e,
        "stack.yml:4: services.web.configs[0]: undefined config `conf`: expected a config declared under the top-level `configs:`"
    );
    let e = err("services:\n  web:\n    image: nginx\n    volumes: [\"data:/data\"]\n");
    assert_eq!(
        e,
        "stack.yml:4: services.web.volumes[0]: undefined volume `data`: expected a volume declared under the top-level `volumes:`"
    );
}

#[test]
fn depends_on_unknown_service_is_an_error() {
    let e = err("services:\n  web:\n    image: nginx\n    depends_on:\n      - dbb\n  db:\n    image: postgres\n");
    assert_eq!(
        e,
        "stack.yml:5: services.web.depends_on[0]: depends on unknown service `dbb`; expected one of: db, web"
    );
    let e = err("services:\n  web:\n    image: nginx\n    depends_on:\n      dbb: {condition: service_healthy}\n");
    assert_eq!(
        e,
        "stack.yml:5: services.web.depends_on.dbb: depends on unknown service `dbb`; expected one of: web"
    );
    // `required: false` tolerates the absence.
    let stack =
        ok("services:\n  web:\n    image: nginx\n    depends_on:\n      dbb: {required: false}\n");
    assert!(stack.services["web"].depends_on.is_empty());
}

#[test]
fn depends_on_cycles_are_errors_naming_the_cycle() {
    let text = "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [c]\n  c:\n    image: x\n    depends_on: [a]\n  d:\n    image: x\n    depends_on: [a]\n";
    assert_eq!(
        err(text),
        "stack.yml:4: services.a.depends_on: dependency cycle a -> b -> c -> a; break it by removing one of these depends_on entries"
    );
    let e = err("services:\n  a:\n    image: x\n    depends_on: [a]\n");
    assert!(e.contains("dependency cycle a -> a"), "{e}");
}

#[test]
fn required_variable_errors_name_variable_and_key() {
    let text = "services:\n  db:\n    image: postgres\n    environment:\n      PW: ${DB_PASSWORD:?set DB_PASSWORD to the database password}\n";
    assert_eq!(
        err(text),
        "stack.yml:5: services.db.environment.PW: required variable DB_PASSWORD is unset: set DB_PASSWORD to the database password"
    );
    let e = load_str("stack.yml", text, &env(&[("DB_PASSWORD", "")])).unwrap_err();
    assert!(
        e.to_string()
            .contains("required variable DB_PASSWORD is empty"),
        "{e}"
    );
    let text = "services:\n  web:\n    image: nginx\n    command: [\"echo\", \"cost 5$\"]\n";
    assert_eq!(
        err(text),
        "stack.yml:4: services.web.command[1]: invalid interpolation format in \"cost 5$\": a `$` must start a variable (`$VAR`, `${VAR}`); write `$$` for a literal `$`"
    );
}

// ---- features -------------------------------------------------------------

#[test]
fn interpolation_forms_in_a_file() {
    let text = r#"
services:
  web:
    image: "nginx:${TAG}"
    command: ["$GREETING", "${UNSET:-dflt}", "${EMPTY:-dflt}", "${EMPTY-dflt}", "${UNSET-dflt}", "${GREETING:?x}", "${EMPTY?x}", "$${LITERAL}", "a$$b"]
    deploy:
      replicas: ${REPLICAS:-1}
"#;
    let vars = env(&[
        ("TAG", "1.25"),
        ("GREETING", "hi"),
        ("EMPTY", ""),
        ("REPLICAS", "3"),
    ]);
    let stack = load_str("stack.yml", text, &vars).unwrap();
    let web = &stack.services["web"];
    assert_eq!(web.image.as_deref(), Some("nginx:1.25"));
    assert_eq!(
        web.command,
        [
            "hi",
            "dflt",
            "dflt",
            "",
            "dflt",
            "hi",
            "",
            "${LITERAL}",
            "a$b"
        ]
    );
    assert_eq!(web.replicas, Some(3));
}

#[test]
fn keys_are_not_interpolated() {
    let stack = ok("services:\n  web:\n    image: a\n    labels:\n      $$KEY: v\n");
    assert_eq!(stack.services["web"].labels["$$KEY"], "v");
}

#[test]
fn dotenv_beside_the_first_file_and_environment_precedence() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join(".env"),
        "TAG=from-dotenv\nREPLICAS=4\n# comment\nexport MODE=global\n",
    )
    .unwrap();
    let file = dir.path().join("stack.yml");
    fs::write(
        &file,
        "services:\n  web:\n    image: nginx:${TAG}\n    deploy:\n      replicas: $REPLICAS\n    environment: [MODE]\n",
    )
    .unwrap();
    let stack = load(std::slice::from_ref(&file), &env(&[("TAG", "from-env")])).unwrap();
    let web = &stack.services["web"];
    assert_eq!(
        web.image.as_deref(),
        Some("nginx:from-env"),
        "the environment wins"
    );
    assert_eq!(
        web.replicas,
        Some(4),
        ".env fills what the environment lacks"
    );
    assert_eq!(
        web.environment["MODE"], "global",
        "a bare KEY takes .env values too"
    );

    fs::write(dir.path().join(".env"), "not a line\n").unwrap();
    let e = load(&[file], &HashMap::new()).unwrap_err().to_string();
    assert!(e.ends_with(".env:1: expected KEY=VALUE with a name of letters, digits, `_`, `.` or `-`, got \"not a line\""), "{e}");
}

#[test]
fn env_files_are_read_and_environment_overrides_them() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("web.env"), "A=from-file\nB=from-file\n").unwrap();
    let file = dir.path().join("stack.yml");
    fs::write(
        &file,
        "services:\n  web:\n    image: a\n    env_file: [web.env, {path: missing.env, required: false}]\n    environment:\n      B: from-yaml\n",
    )
    .unwrap();
    let stack = load(std::slice::from_ref(&file), &HashMap::new()).unwrap();
    let environment = &stack.services["web"].environment;
    assert_eq!(environment["A"], "from-file");
    assert_eq!(environment["B"], "from-yaml");

    fs::write(
        &file,
        "services:\n  web:\n    image: a\n    env_file: nope.env\n",
    )
    .unwrap();
    let e = load(&[file], &HashMap::new()).unwrap_err().to_string();
    assert!(
        e.contains("stack.yml:4: services.web.env_file: cannot read env file"),
        "{e}"
    );
}

#[test]
fn missing_file_is_a_read_error() {
    let e = load(&["/nonexistent/stack.yml".into()], &HashMap::new()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("cannot read /nonexistent/stack.yml: "),
        "{e}"
    );
    assert!(matches!(
        load(&[], &HashMap::new()),
        Err(ComposeError::NoFiles)
    ));
}

// ---- bounds on hostile input (see `limits`) --------------------------------

#[test]
fn files_past_the_size_bound_are_refused_before_parsing() {
    let big = format!(
        "x-pad: \"{}\"\nservices: {{}}\n",
        "x".repeat(limits::MAX_FILE_BYTES)
    );
    assert_eq!(
        load_str("stack.yml", &big, &HashMap::new())
            .unwrap_err()
            .to_string(),
        "stack.yml: the file is larger than 4 MiB, the most shoal reads"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stack.yml");
    fs::write(&file, &big).unwrap();
    let e = load(std::slice::from_ref(&file), &HashMap::new())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "cannot read {}: the file is larger than 4 MiB, the most shoal reads",
            file.display()
        )
    );
}

#[test]
fn an_endless_env_file_is_refused_even_when_optional() {
    // Read through a bounded reader: /dev/zero must not fill memory, and
    // `required: false` forgives only a missing file.
    for env_file in ["/dev/zero", "{path: /dev/zero, required: false}"] {
        let e = err(&format!(
            "services:\n  web:\n    image: a\n    env_file: [{env_file}]\n"
        ));
        assert_eq!(
            e,
            "stack.yml:4: services.web.env_file[0]: cannot read env file /dev/zero: \
             the file is larger than 4 MiB, the most shoal reads"
        );
    }
}

#[test]
fn variables_expanding_past_the_bound_are_refused() {
    let vars = env(&[("BIG", &"x".repeat(1 << 20))]);
    // Scalars of 2 MiB each: every one fine alone, but with `image: a` the
    // eighth takes the file past 16 MiB.
    let text = format!(
        "services:\n  web:\n    image: a\n    labels:\n{}",
        (0..9)
            .map(|i| format!("      l{i}: ${{BIG}}$BIG\n"))
            .collect::<String>()
    );
    let e = load_str("stack.yml", &text, &vars).unwrap_err().to_string();
    assert_eq!(
        e,
        "stack.yml:12: services.web.labels.l7: variables expand the file to more than 16 MiB of text, \
         the most shoal loads"
    );
}

#[test]
fn nested_interpolation_past_the_bound_names_the_key() {
    let deep = format!("{}x{}", "${U:-".repeat(17), "}".repeat(17));
    let e = err(&format!("services:\n  web:\n    image: \"{deep}\"\n"));
    assert_eq!(
        e,
        "stack.yml:3: services.web.image: `${…}` defaults nested more than 16 levels deep, \
         the most shoal substitutes"
    );
}

#[test]
fn billion_laughs_in_a_compose_file_is_refused() {
    let mut text = String::from("x-a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        text.push_str(&format!("x-a{i}: &a{i} [{refs}]\n"));
    }
    text.push_str("services:\n  web:\n    image: a\n    command: *a9\n");
    let e = err(&text);
    assert!(
        e.starts_with("stack.yml:6: the document expands to more than 1000000 values"),
        "{e}"
    );
}

#[test]
fn anchors_and_merge_keys() {
    let text = r#"
x-defaults: &defaults
  image: app:1
  environment: &env
    LEVEL: info
    REGION: eu
  deploy:
    replicas: 2
x-limits: &limits
  deploy:
    replicas: 5
services:
  api:
    <<: [*defaults, *limits]
    command: serve
  worker:
    <<: *defaults
    environment:
      <<: *env
      LEVEL: debug
"#;
    let stack = ok(text);
    let api = &stack.services["api"];
    assert_eq!(api.image.as_deref(), Some("app:1"));
    assert_eq!(api.replicas, Some(2), "the first merged mapping wins");
    assert_eq!(api.command, ["serve"]);
    let worker = &stack.services["worker"];
    assert_eq!(worker.environment["LEVEL"], "debug", "explicit keys win");
    assert_eq!(worker.environment["REGION"], "eu");
    assert!(stack.warnings.is_empty());
}

#[test]
fn extension_fields_are_ignored_everywhere() {
    let text = r#"
x-top: {anything: [1, 2]}
services:
  x-not-a-service: {whatever: true}
  web:
    image: nginx
    x-svc: 1
    deploy:
      x-deploy: 2
      resources:
        x-res: 3
        limits: {x-lim: 4, cpus: "1"}
    healthcheck: {x-h: 5, test: ["CMD", "true"]}
    ports: [{target: 80, x-port: 6}]
networks:
  front: {x-net: 7}
  x-not-a-network: {}
"#;
    let stack = ok(text);
    assert_eq!(names(&stack.services), ["web"]);
    assert_eq!(names(&stack.networks), ["default", "front"]);
    assert!(stack.warnings.is_empty());
}

fn names<V>(map: &std::collections::BTreeMap<String, V>) -> Vec<&str> {
    map.keys().map(String::as_str).collect()
}

#[test]
fn multi_file_merge_follows_compose_rules() {
    let base = r#"
services:
  web:
    image: web:1
    command: ["serve", "--port", "80"]
    environment: [A=1, B=2]
    labels: {team: a}
    ports: ["80:80"]
    expose: ["9000"]
    dns: [1.1.1.1]
    networks: [front]
    deploy:
      replicas: 2
      placement: {constraints: ["node.role==worker"]}
      resources: {limits: {memory: 256M}}
  db:
    image: postgres
networks: {front: {}}
"#;
    let over = r#"
services:
  web:
    image: web:2
    command: serve --port 8080
    environment: {B: "3", C: "4"}
    labels: [owner=b]
    ports: ["80:80", "443:443"]
    expose: ["9001"]
    dns: 8.8.8.8
    networks: {back: {aliases: [api]}}
    deploy:
      replicas: 3
      placement: {constraints: ["node.labels.ssd==true"]}
      resources: {limits: {cpus: "0.5"}}
    depends_on: [db]
networks: {back: {}}
"#;
    let sources = [
        ("base.yml".to_owned(), base.to_owned()),
        ("override.yml".to_owned(), over.to_owned()),
    ];
    let stack = load_sources(&sources, &HashMap::new(), Path::new("")).unwrap();
    let web = &stack.services["web"];
    assert_eq!(web.image.as_deref(), Some("web:2"));
    assert_eq!(
        web.command,
        ["serve", "--port", "8080"],
        "command is replaced"
    );
    assert_eq!(
        web.environment,
        [("A", "1"), ("B", "3"), ("C", "4")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into()
    );
    assert_eq!(web.labels.len(), 2);
    let published: Vec<Option<u16>> = web.ports.iter().map(|p| p.published).collect();
    assert_eq!(published, [Some(80), Some(443)], "ports are appended once");
    assert_eq!(web.expose, ["9000", "9001"]);
    // A scalar against a list is a change of type: the later value wins.
    assert_eq!(web.dns, ["8.8.8.8"]);
    let nets: Vec<&str> = web.networks.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(nets, ["front", "back"]);
    assert_eq!(web.networks[1].aliases, ["api"]);
    assert_eq!(web.replicas, Some(3));
    assert_eq!(
        web.constraints,
        ["node.role==worker", "node.labels.ssd==true"]
    );
    assert_eq!(web.limits.memory_bytes, 256 << 20);
    assert_eq!(web.limits.nano_cpus, 500_000_000);
    assert_eq!(web.depends_on.len(), 1);

    // An error in a later file names that file.
    let bad = [
        ("base.yml".to_owned(), base.to_owned()),
        (
            "bad.yml".to_owned(),
            "services:\n  web:\n    ports: [\"0:80\"]\n".to_owned(),
        ),
    ];
    let e = load_sources(&bad, &HashMap::new(), Path::new("")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "bad.yml:3: services.web.ports[1]: expected a port number between 1 and 65535, got 0"
    );
}

#[test]
fn multi_file_load_reads_dotenv_beside_the_first_file_only() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap();
    fs::write(dir.path().join(".env"), "TAG=one\n").unwrap();
    fs::write(sub.join(".env"), "TAG=two\n").unwrap();
    let a = dir.path().join("a.yml");
    let b = sub.join("b.yml");
    fs::write(&a, "services:\n  web:\n    image: a:${TAG}\n").unwrap();
    fs::write(&b, "services:\n  web:\n    labels: {tag: $TAG}\n").unwrap();
    let stack = load(&[a, b], &HashMap::new()).unwrap();
    assert_eq!(stack.services["web"].image.as_deref(), Some("a:one"));
    assert_eq!(stack.services["web"].labels["tag"], "one");
}

#[test]
fn process_services() {
    let text = r#"
services:
  worker:
    x-shoal-runtime: process
    entrypoint: /usr/bin/python3 -u
    command: ["worker.py", "--queue", "jobs"]
    deploy: {replicas: 2}
"#;
    let stack = ok(text);
    let worker = &stack.services["worker"];
    assert_eq!(worker.runtime, Runtime::Process);
    assert_eq!(worker.image, None);
    assert_eq!(
        worker.command_line(),
        ["/usr/bin/python3", "-u", "worker.py", "--queue", "jobs"]
    );
    assert_eq!(worker.replicas, Some(2));

    assert_eq!(
        err("services:\n  w:\n    x-shoal-runtime: process\n"),
        "stack.yml:2: services.w: expected `command` or `entrypoint`: a process service (`x-shoal-runtime: process`) needs a command line"
    );
    assert_eq!(
        err("services:\n  w:\n    x-shoal-runtime: process\n    image: a\n    command: [x]\n"),
        "stack.yml:4: services.w.image: a process service (`x-shoal-runtime: process`) runs its `entrypoint` and `command`, not an image: remove `image` or `x-shoal-runtime`"
    );
    assert_eq!(
        err("services:\n  w:\n    x-shoal-runtime: vm\n    command: [x]\n"),
        "stack.yml:3: services.w.x-shoal-runtime: expected one of container, process, got \"vm\""
    );
}

#[test]
fn deploy_section_is_fully_typed() {
    let text = r#"
services:
  web:
    image: nginx
    stop_grace_period: 1m30s
    healthcheck:
      test: curl -f http://localhost/
      interval: 10s
      timeout: 500ms
      retries: 3
      start_period: 1m
    deploy:
      mode: replicated
      replicas: 6
      endpoint_mode: dnsrr
      labels: [com.example.tier=front]
      placement:
        constraints: [node.role==worker]
        preferences: [{spread: node.labels.zone}]
        max_replicas_per_node: 2
      resources:
        limits: {cpus: "0.5", memory: 512M}
        reservations: {cpus: 0.25, memory: 1073741824}
      update_config: {parallelism: 2, delay: 10s, failure_action: rollback, monitor: 1m, max_failure_ratio: 0.3, order: start-first}
      rollback_config: {parallelism: 0, order: stop-first, failure_action: pause}
      restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3, window: 2m}
"#;
    let stack = ok(text);
    let web = &stack.services["web"];
    assert_eq!(web.stop_grace_period, Some(Duration::from_secs(90)));
    let h = web.healthcheck.as_ref().unwrap();
    assert_eq!(h.test, ["CMD-SHELL", "curl -f http://localhost/"]);
    assert_eq!(h.interval, Some(Duration::from_secs(10)));
    assert_eq!(h.timeout, Some(Duration::from_millis(500)));
    assert_eq!(h.retries, Some(3));
    assert_eq!(h.start_period, Some(Duration::from_secs(60)));
    assert!(!h.disable);
    assert_eq!(web.mode, ServiceMode::Replicated);
    assert_eq!(web.replicas, Some(6));
    assert_eq!(web.endpoint_mode, Some(EndpointMode::Dnsrr));
    assert_eq!(web.deploy_labels["com.example.tier"], "front");
    assert_eq!(web.constraints, ["node.role==worker"]);
    assert_eq!(web.preferences, ["node.labels.zone"]);
    assert_eq!(web.max_replicas_per_node, Some(2));
    assert_eq!(
        web.limits,
        Resources {
            nano_cpus: 500_000_000,
            memory_bytes: 512 << 20
        }
    );
    assert_eq!(
        web.reservations,
        Resources {
            nano_cpus: 250_000_000,
            memory_bytes: 1 << 30
        }
    );
    assert_eq!(
        web.update_config,
        Some(UpdateConfig {
            parallelism: Some(2),
            delay: Some(Duration::from_secs(10)),
            failure_action: Some(FailureAction::Rollback),
            monitor: Some(Duration::from_secs(60)),
            max_failure_ratio: Some(0.3),
            order: Some(UpdateOrder::StartFirst),
        })
    );
    let rollback = web.rollback_config.as_ref().unwrap();
    assert_eq!(rollback.parallelism, Some(0));
    assert_eq!(rollback.order, Some(UpdateOrder::StopFirst));
    assert_eq!(rollback.failure_action, Some(FailureAction::Pause));
    assert_eq!(
        web.restart_policy,
        Some(RestartPolicy {
            condition: Some(RestartCondition::OnFailure),
            delay: Some(Duration::from_secs(5)),
            max_attempts: Some(3),
            window: Some(Duration::from_secs(120)),
        })
    );

    let stack = ok("services:\n  g:\n    image: a\n    healthcheck: {disable: true}\n    deploy: {mode: global}\n");
    let g = &stack.services["g"];
    assert_eq!(g.mode, ServiceMode::Global);
    assert_eq!(g.healthcheck.as_ref().unwrap().test, ["NONE"]);
    assert!(g.healthcheck.as_ref().unwrap().disable);
}

#[test]
fn port_syntaxes() {
    let text = r#"
services:
  web:
    image: nginx
    ports:
      - 3000
      - "8080:80"
      - "127.0.0.1:5353:53/udp"
      - "9000-9001:9000-9001"
      - "7000-7001"
      - "[::1]:8443:443"
      - "0.0.0.0::6000"
      - target: 80
        published: "8081"
        protocol: udp
        mode: host
"#;
    let stack = ok(text);
    type Row<'a> = (u16, Option<u16>, Protocol, PortMode, Option<&'a str>);
    let got: Vec<Row> = stack.services["web"]
        .ports
        .iter()
        .map(|p| {
            (
                p.target,
                p.published,
                p.protocol,
                p.mode,
                p.host_ip.as_deref(),
            )
        })
        .collect();
    use PortMode::{Host, Ingress};
    use Protocol::{Tcp, Udp};
    assert_eq!(
        got,
        [
            (3000, None, Tcp, Ingress, None),
            (80, Some(8080), Tcp, Ingress, None),
            (53, Some(5353), Udp, Ingress, Some("127.0.0.1")),
            (9000, Some(9000), Tcp, Ingress, None),
            (9001, Some(9001), Tcp, Ingress, None),
            (7000, None, Tcp, Ingress, None),
            (7001, None, Tcp, Ingress, None),
            (443, Some(8443), Tcp, Ingress, Some("::1")),
            (6000, None, Tcp, Ingress, Some("0.0.0.0")),
            (80, Some(8081), Udp, Host, None),
        ]
    );
}

#[test]
fn list_and_map_forms_are_equivalent() {
    let lists = ok(r#"
services:
  web:
    image: a
    entrypoint: ["/bin/sh", "-c"]
    command: ["echo hi"]
    environment: [A=1, "B=x=y"]
    labels: [l1=v, l2]
    networks: [n]
    depends_on: [db]
    secrets: [s]
  db: {image: b}
networks: {n: {}}
secrets: {s: {file: ./s.txt}}
"#);
    let maps = ok(r#"
services:
  web:
    image: a
    entrypoint: /bin/sh -c
    command: "'echo hi'"
    environment: {A: 1, B: x=y}
    labels: {l1: v, l2: ""}
    networks: {n: }
    depends_on: {db: {condition: service_started}}
    secrets: [{source: s}]
  db: {image: b}
networks: {n: {}}
secrets: {s: {file: ./s.txt}}
"#);
    assert_eq!(lists.services, maps.services);
    assert_eq!(
        lists.secrets["s"].source,
        FileSource::File(std::path::PathBuf::from("./s.txt"))
    );
}

#[test]
fn secrets_configs_and_volumes() {
    let stack = ok(r#"
services:
  web:
    image: a
    secrets: [{source: pw, target: db_pw, uid: "100", gid: "101", mode: 0440}]
    configs: [{source: conf, target: /etc/app.conf, mode: 0o644}, inline]
    volumes: ["data:/data:ro", "/anon", {type: volume, source: data, target: /d2}, {type: tmpfs, target: /tmp}]
secrets:
  pw: {environment: DB_PASSWORD}
configs:
  conf: {file: app.conf, name: app-conf-v2}
  inline: {content: "hello"}
volumes:
  data: {driver: local, labels: [backup=yes]}
"#);
    let web = &stack.services["web"];
    assert_eq!(web.secrets[0].mode, Some(0o440));
    assert_eq!(web.secrets[0].target.as_deref(), Some("db_pw"));
    assert_eq!(web.configs[0].mode, Some(0o644));
    assert_eq!(web.configs[1].source, "inline");
    assert_eq!(
        web.volumes,
        [
            Mount {
                source: Some("data".into()),
                target: "/data".into(),
                read_only: true,
                ..Default::default()
            },
            Mount {
                source: None,
                target: "/anon".into(),
                read_only: false,
                ..Default::default()
            },
            Mount {
                source: Some("data".into()),
                target: "/d2".into(),
                read_only: false,
                ..Default::default()
            },
            Mount {
                kind: MountKind::Tmpfs,
                source: None,
                target: "/tmp".into(),
                ..Default::default()
            },
        ]
    );
    assert_eq!(
        stack.secrets["pw"].source,
        FileSource::Environment("DB_PASSWORD".into())
    );
    assert_eq!(stack.configs["conf"].name.as_deref(), Some("app-conf-v2"));
    assert_eq!(
        stack.configs["inline"].source,
        FileSource::Content("hello".into())
    );
    assert_eq!(stack.volumes["data"].labels["backup"], "yes");
    // Every mount kind is applied now: nothing ignored.
    assert_eq!(unsupported_options_line(&stack.warnings), None);

    assert_eq!(
        err("services: {}\nsecrets:\n  pw: {name: x}\n"),
        "stack.yml:3: secrets.pw: expected exactly one of `file`, `environment`, `external`, got 0"
    );
}

#[test]
fn unsupported_options_are_warnings_not_errors() {
    let text = r#"
services:
  web:
    image: nginx
    build: .
    restart: always
    privileged: true
    security_opt: [no-new-privileges]
    container_name: web
    cap_add: [NET_ADMIN]
    devices: ["/dev/fuse"]
    volumes: ["./conf:/etc/conf"]
    deploy:
      resources:
        limits: {pids: 10}
  db:
    image: postgres
    restart: always
networks:
  n: {ipam: {config: [{subnet: 10.0.0.0/24}]}}
"#;
    let stack = ok(text);
    assert_eq!(
        unsupported_options_line(&stack.warnings).as_deref(),
        // `ipam` is applied now (network subnets); its `options` are not.
        Some("Ignoring unsupported options: build, cap_add, container_name, devices, pids, privileged, restart, security_opt")
    );
    let restart: Vec<String> = stack
        .warnings
        .iter()
        .filter(|w| w.option == "restart")
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        restart,
        [
            "stack.yml:6: services.web.restart: ignored: shoal does not support `restart`",
            "stack.yml:18: services.db.restart: ignored: shoal does not support `restart`",
        ]
    );
    assert_eq!(unsupported_options_line(&[]), None);
}

#[test]
fn startup_order_layers_and_cycles() {
    let stack = ok(r#"
services:
  web: {image: a, depends_on: [api, cache]}
  api: {image: a, depends_on: {db: {condition: service_healthy}}}
  cache: {image: a}
  db: {image: a}
  worker: {image: a, depends_on: {db: {condition: service_completed_successfully}}}
"#);
    assert_eq!(
        startup_order(&stack).unwrap(),
        [vec!["cache", "db"], vec!["api", "worker"], vec!["web"]]
    );
    assert_eq!(
        stack.services["api"].depends_on["db"],
        Condition::ServiceHealthy
    );
    assert_eq!(
        stack.services["worker"].depends_on["db"],
        Condition::ServiceCompletedSuccessfully
    );

    // A stack edited after loading can still hold a cycle.
    let mut cyclic = stack.clone();
    cyclic
        .services
        .get_mut("db")
        .unwrap()
        .depends_on
        .insert("web".into(), Condition::ServiceStarted);
    let e = startup_order(&cyclic).unwrap_err();
    assert_eq!(
        e.to_string(),
        "services.api.depends_on: dependency cycle api -> db -> web -> api; break it by removing one of these depends_on entries"
    );
}

#[test]
fn render_prints_the_merged_interpolated_document() {
    let text = "x-a: &a {image: \"nginx:${TAG}\"}\nservices:\n  web:\n    <<: *a\n    command: [\"echo\", \"$$HOME\", \"${TAG}\"]\n    ports: [\"8080:80\"]\n";
    let stack = load_str("s.yml", text, &env(&[("TAG", "1.25")])).unwrap();
    let out = render(&stack);
    assert_eq!(
        out,
        "services:\n  web:\n    command:\n      - \"echo\"\n      - \"$$HOME\"\n      - \"1.25\"\n    image: \"nginx:1.25\"\n    ports:\n      - \"8080:80\"\nx-a:\n  image: \"nginx:1.25\"\n"
    );
    let again = load_str("s.yml", &out, &HashMap::new()).unwrap();
    assert_eq!(again.services, stack.services);
}

#[test]
fn autoscaling_under_deploy() {
    let text = r#"
services:
  web:
    image: nginx:1.27
    deploy:
      replicas: 3
      x-shoal-autoscale:
        min: 2
        max: 10
        cpu: 60%
        memory: 80
        scale_down_window: 30s
"#;
    let stack = ok(text);
    let a = stack.services["web"].autoscale.clone().unwrap();
    assert_eq!((a.min, a.max), (2, 10));
    assert_eq!(
        (a.cpu_percent, a.memory_percent, a.rps),
        (Some(60.0), Some(80.0), None)
    );
    assert_eq!(
        a.scale_down_window,
        Some(std::time::Duration::from_secs(30))
    );

    let with = |body: &str| {
        err(&format!(
            "services:\n  web:\n    image: a\n    deploy:\n      x-shoal-autoscale: {body}\n"
        ))
    };
    assert_eq!(
        with("{max: 3, cpu: 60%}"),
        "stack.yml:5: services.web.deploy.x-shoal-autoscale: expected `min`: autoscaling needs `min` and `max` replicas"
    );
    assert_eq!(
        with("{min: 4, max: 3, cpu: 60%}"),
        "stack.yml:5: services.web.deploy.x-shoal-autoscale: invalid range 4..3: expected 0 <= min <= max and max >= 1"
    );
    assert_eq!(
        with("{min: 1, max: 3}"),
        "stack.yml:5: services.web.deploy.x-shoal-autoscale: expected a target: `cpu: 60%`, `memory: 80%` or `rps: 200`"
    );
    assert!(with("{min: 1, max: 3, cpu: lots}")
        .contains("x-shoal-autoscale.cpu: expected a percentage above 0 such as 60%"));
    assert!(with("{min: 1, max: 3, cpus: 60%}").contains("did you mean `cpu`?"));
}
