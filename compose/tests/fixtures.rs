//! The tutorial Compose files of `tests/fixtures/` load through the public
//! API, with the services, replicas, ports, networks and the exact
//! "Ignoring unsupported options" line each should produce.

// A test crate: its helpers unwrap like its tests (the workspace denies
// unwrap_used in everything else).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::PathBuf;

use shoal_compose::{
    load, render, unsupported_options_line, Condition, MountKind, Port, PortMode, Protocol,
    Runtime, Stack,
};

fn fixture(name: &str) -> Stack {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    load(&[path], &HashMap::new()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn names<'a>(it: impl IntoIterator<Item = &'a String>) -> Vec<&'a str> {
    it.into_iter().map(String::as_str).collect()
}

fn tcp(published: u16, target: u16) -> Port {
    Port {
        target,
        published: Some(published),
        protocol: Protocol::Tcp,
        mode: PortMode::Ingress,
        host_ip: None,
    }
}

fn networks_of(stack: &Stack, service: &str) -> Vec<String> {
    stack.services[service]
        .networks
        .iter()
        .map(|n| n.name.clone())
        .collect()
}

#[test]
fn django_web_db() {
    let stack = fixture("django-web-db.yml");
    assert_eq!(names(stack.services.keys()), ["db", "web"]);

    let db = &stack.services["db"];
    assert_eq!(db.image.as_deref(), Some("postgres"));
    assert_eq!(db.runtime, Runtime::Container);
    assert_eq!(db.replicas, None);
    assert!(db.ports.is_empty());

    let web = &stack.services["web"];
    // `build: .` is ignored, and there is no image to fall back on.
    assert_eq!(web.image, None);
    assert_eq!(web.replicas, None);
    assert_eq!(
        web.command,
        ["python3", "manage.py", "runserver", "0.0.0.0:8000"]
    );
    assert_eq!(web.ports, [tcp(8000, 8000)]);
    // The `.:/app` bind mount is kept, as a bind.
    assert_eq!(web.volumes.len(), 1);
    assert_eq!(web.volumes[0].kind, MountKind::Bind);
    assert_eq!(web.volumes[0].target, "/app");
    assert_eq!(
        web.depends_on,
        [("db".to_owned(), Condition::ServiceStarted)].into()
    );

    // Services without `networks:` join the stack's default network.
    assert_eq!(networks_of(&stack, "db"), ["default"]);
    assert_eq!(networks_of(&stack, "web"), ["default"]);
    assert_eq!(names(stack.networks.keys()), ["default"]);

    assert_eq!(
        unsupported_options_line(&stack.warnings).as_deref(),
        Some("Ignoring unsupported options: build")
    );
    let paths: Vec<&str> = stack.warnings.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(paths, ["services.web.build"]);
    assert!(stack.warnings[0]
        .to_string()
        .contains("django-web-db.yml:6: services.web.build"));
    assert_eq!(
        shoal_compose::startup_order(&stack).unwrap(),
        [vec!["db".to_owned()], vec!["web".to_owned()]]
    );
}

#[test]
fn python_web_postgres() {
    let stack = fixture("python-web-postgres.yml");
    assert_eq!(names(stack.services.keys()), ["db", "web"]);
    let web = &stack.services["web"];
    assert_eq!(web.image.as_deref(), Some("my-python-app"));
    assert_eq!(web.ports, [tcp(5000, 5000)]);
    assert_eq!(web.replicas, None);
    let db = &stack.services["db"];
    assert_eq!(db.image.as_deref(), Some("postgres:13"));
    assert_eq!(db.environment["POSTGRES_PASSWORD"], "example");
    assert!(db.ports.is_empty());
    assert_eq!(networks_of(&stack, "web"), ["default"]);
    assert_eq!(networks_of(&stack, "db"), ["default"]);
    assert!(stack.warnings.is_empty(), "{:?}", stack.warnings);
    assert_eq!(unsupported_options_line(&stack.warnings), None);
}

#[test]
fn web_app_db_networks() {
    let stack = fixture("web-app-db-networks.yml");
    assert_eq!(names(stack.services.keys()), ["app", "db", "web"]);

    let web = &stack.services["web"];
    assert_eq!(web.image.as_deref(), Some("nginx:latest"));
    assert_eq!(web.ports, [tcp(80, 80), tcp(443, 443)]);
    assert_eq!(networks_of(&stack, "web"), ["frontend", "backend"]);
    // The config-file bind mount (read-only) and the named volume.
    assert_eq!(web.volumes.len(), 2);
    assert_eq!(web.volumes[0].kind, MountKind::Bind);
    assert_eq!(web.volumes[0].target, "/etc/nginx/conf.d/default.conf");
    assert!(web.volumes[0].read_only);
    assert_eq!(web.volumes[1].source.as_deref(), Some("static-files"));
    assert_eq!(web.volumes[1].target, "/usr/share/nginx/html");

    let app = &stack.services["app"];
    assert_eq!(app.image.as_deref(), Some("node:16-alpine"));
    assert!(app.ports.is_empty());
    assert_eq!(app.expose, ["3000"]);
    assert_eq!(app.environment["NODE_ENV"], "production");
    assert_eq!(networks_of(&stack, "app"), ["backend", "db-network"]);
    assert_eq!(app.volumes.len(), 2);

    let db = &stack.services["db"];
    assert_eq!(db.environment.len(), 3);
    assert_eq!(networks_of(&stack, "db"), ["db-network"]);
    assert_eq!(db.secrets.len(), 1);
    assert_eq!(db.secrets[0].source, "db_password");

    for service in stack.services.values() {
        assert_eq!(service.replicas, None);
    }
    assert_eq!(
        names(stack.networks.keys()),
        ["backend", "db-network", "frontend"]
    );
    assert!(stack.networks["backend"].internal);
    assert!(!stack.networks["frontend"].internal);
    assert_eq!(stack.networks["frontend"].driver.as_deref(), Some("bridge"));
    assert_eq!(
        names(stack.volumes.keys()),
        ["app-data", "postgres-data", "static-files"]
    );
    assert_eq!(
        stack.secrets["db_password"].source,
        shoal_compose::FileSource::External
    );

    assert_eq!(
        unsupported_options_line(&stack.warnings).as_deref(),
        Some("Ignoring unsupported options: restart")
    );
    // One `restart` per service; the bind mount is applied, not warned about.
    assert_eq!(stack.warnings.len(), 3, "{:?}", stack.warnings);
    assert_eq!(
        shoal_compose::startup_order(&stack).unwrap(),
        [
            vec!["app".to_owned(), "db".to_owned()],
            vec!["web".to_owned()]
        ]
    );
}

#[test]
fn rendered_fixtures_load_back_to_the_same_stack() {
    for name in [
        "django-web-db.yml",
        "python-web-postgres.yml",
        "web-app-db-networks.yml",
    ] {
        let stack = fixture(name);
        let text = render(&stack);
        let again = shoal_compose::load_str(name, &text, &HashMap::new())
            .unwrap_or_else(|e| panic!("{name} rendered as\n{text}\nfails: {e}"));
        assert_eq!(again.services, stack.services, "{name}");
        assert_eq!(again.networks, stack.networks, "{name}");
        assert_eq!(
            unsupported_options_line(&again.warnings),
            unsupported_options_line(&stack.warnings)
        );
    }
}
