//! Bad service input: a clear `Error:` and an unchanged cluster.

use crate::util::{cluster, eventually, marker_program, patience, Daemon, TestDir};

/// What must not change: the service list and every task.
fn snapshot(manager: &Daemon) -> (String, Vec<String>) {
    let services = manager.ok(&["service", "ls", "--format", "json"]);
    let mut tasks: Vec<String> = manager
        .ok(&["service", "ps", "-q", "web"])
        .lines()
        .map(str::to_string)
        .collect();
    tasks.sort();
    (services, tasks)
}

#[test]
fn bad_service_input_is_refused_and_changes_nothing() {
    let dir = TestDir::new();
    let program = marker_program(&dir);
    let (manager, _, _) = cluster(&dir, 0);
    manager.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "1",
        "--runtime",
        "process",
        program.to_str().unwrap(),
        "3600",
    ]);
    eventually(patience(), "web running", || {
        if manager.running_tasks("web").len() == 1 {
            Ok(())
        } else {
            Err(format!("{:?}", manager.tasks("web")))
        }
    });
    let before = snapshot(&manager);

    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "service",
                "create",
                "-d",
                "--name",
                "web",
                "--runtime",
                "process",
                "sleep",
                "1",
            ],
            "service web already exists",
        ),
        (
            &[
                "service",
                "create",
                "-d",
                "--name",
                "bad.name",
                "--runtime",
                "process",
                "sleep",
                "1",
            ],
            "invalid service name \"bad.name\"",
        ),
        (
            &[
                "service",
                "create",
                "-d",
                "--name",
                "neg",
                "--replicas",
                "-1",
                "--runtime",
                "process",
                "sleep",
                "1",
            ],
            "invalid replicas value \"-1\"",
        ),
        (
            &[
                "service",
                "create",
                "-d",
                "--name",
                "nan",
                "--replicas",
                "three",
                "--runtime",
                "process",
                "sleep",
                "1",
            ],
            "invalid replicas value \"three\"",
        ),
        (
            &[
                "service",
                "create",
                "-d",
                "--name",
                "empty",
                "--runtime",
                "process",
            ],
            "a command is required",
        ),
        (
            &["service", "create", "-d", "--name", "noimage"],
            "an image is required",
        ),
        (
            &["service", "scale", "-d", "web=-2"],
            "invalid replicas value \"-2\"",
        ),
        (
            &["service", "scale", "-d", "web"],
            "invalid scale specifier",
        ),
        (
            &["service", "scale", "-d", "web=2", "nope=1"],
            "No such service: nope",
        ),
        (&["service", "ps", "nope"], "No such service: nope"),
        (&["service", "inspect", "nope"], "No such service: nope"),
        (&["service", "rm", "web", "nope"], "No such service: nope"),
        (&["service", "bogus"], "unrecognized subcommand"),
    ];
    for (args, expected) in cases {
        manager.shoal(args).assert_error(expected);
        assert_eq!(
            snapshot(&manager),
            before,
            "`shoal {}` changed the cluster",
            args.join(" ")
        );
    }
}

#[test]
fn a_container_service_waits_for_a_node_with_docker() {
    let dir = TestDir::new();
    let (manager, _, _) = cluster(&dir, 1);
    manager.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "nginx",
        "--replicas",
        "2",
        "nginx:1.27",
    ]);
    let tasks = eventually(patience(), "pending tasks with a reason", || {
        let tasks = manager.tasks("nginx");
        let explained = tasks.len() == 2
            && tasks.iter().all(|t| {
                t["CurrentState"].as_str().unwrap().starts_with("Pending")
                    && t["Error"] == "no suitable node (runtime docker not available on 2 nodes)"
            });
        if explained {
            Ok(tasks)
        } else {
            Err(format!("{tasks:?}"))
        }
    });
    assert!(tasks.iter().all(|t| t["Node"] == ""));
    let inspect: serde_json::Value =
        serde_json::from_str(&manager.ok(&["service", "inspect", "nginx"])).unwrap();
    assert_eq!(
        inspect[0]["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"],
        "nginx:1.27"
    );
    assert_eq!(inspect[0]["Spec"]["Mode"]["Replicated"]["Replicas"], 2);
}
