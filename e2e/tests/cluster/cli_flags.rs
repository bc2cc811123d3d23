//! A mistyped flag is an error, never a service: every subcommand the CLI
//! has refuses an unknown flag before its first positional (exit 125, an
//! `Error:` naming the flag) and leaves the cluster exactly as it was.
//!
//! The subcommands come from the CLI's own clap definition, so a new one is
//! covered the day it is added; so is a new object kind, because the
//! cluster's state is read through every `ls` the CLI has.

use std::io::Read;
use std::process::Child;
use std::time::{Duration, Instant};

use clap::CommandFactory;

use crate::util::{cluster, eventually, marker_program, patience, Daemon, Run, TestDir};

/// Docker's exit code for a command line the client refused.
const USAGE_EXIT: i32 = 125;

/// A flag no subcommand has.
const UNKNOWN: &str = "--no-such-flag";

/// A manager with a process service `web` and a stack `st`, both running.
struct Fixture {
    dir: TestDir,
    manager: Daemon,
    addr: String,
    compose: String,
}

fn fixture() -> Fixture {
    let dir = TestDir::new();
    let program = marker_program(&dir);
    let (manager, _, addr) = cluster(&dir, 0);
    manager.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--runtime",
        "process",
        program.to_str().unwrap(),
        "3600",
    ]);
    let compose = dir.dir.path().join("stack.yml");
    std::fs::write(
        &compose,
        crate::stack::on_host_network(&format!(
            "services:\n  app:\n    x-shoal-runtime: process\n    command: [\"{}\", \"3600\"]\n",
            program.display()
        )),
    )
    .unwrap();
    let compose = compose.to_str().unwrap().to_string();
    manager.ok(&["stack", "deploy", "-d", "-c", &compose, "st"]);
    // A network for the `network` subcommands to name (the stack's services
    // are on the host network, so it has none of its own).
    manager.ok(&["network", "create", "st_net"]);
    eventually(patience(), "web and st_app running", || {
        let running = ["web", "st_app"].map(|s| manager.running_tasks(s).len());
        if running == [1, 1] {
            Ok(())
        } else {
            Err(format!("{running:?}"))
        }
    });
    Fixture {
        dir,
        manager,
        addr,
        compose,
    }
}

/// Every leaf subcommand as its path of names (`["service", "create"]`).
fn leaves(command: &clap::Command, path: Vec<String>, out: &mut Vec<(Vec<String>, clap::Command)>) {
    for sub in command.get_subcommands() {
        let mut path = path.clone();
        path.push(sub.get_name().to_string());
        if sub.has_subcommands() {
            leaves(sub, path, out);
        } else {
            out.push((path, sub.clone()));
        }
    }
}

/// The cluster's state as the CLI shows it: every `ls` the CLI has (JSON
/// where it can), and every service's spec and tasks.
fn snapshot(manager: &Daemon, all: &[(Vec<String>, clap::Command)]) -> Vec<String> {
    let mut state = Vec::new();
    for (path, leaf) in all.iter().filter(|(path, _)| path.last().unwrap() == "ls") {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        if leaf.get_arguments().any(|a| a.get_id() == "format") {
            args.extend(["--format", "json"]);
        }
        state.push(format!("{}:\n{}", args.join(" "), manager.ok(&args)));
    }
    for service in manager.ok(&["service", "ls", "-q"]).lines() {
        state.push(manager.ok(&["service", "inspect", service]));
        let mut tasks: Vec<String> = manager
            .ok(&["service", "ps", "-q", "--no-trunc", service])
            .lines()
            .map(str::to_string)
            .collect();
        tasks.sort();
        state.push(tasks.join(","));
    }
    state
}

/// A value for `arg` that the command would act on if it ran: an existing
/// service, node, task, stack or file.
fn plausible(fx: &Fixture, path: &[String], arg: &clap::Arg) -> String {
    if let Some(value) = arg
        .get_possible_values()
        .into_iter()
        .find(|v| !v.is_hide_set())
    {
        return value.get_name().to_string();
    }
    let task = || {
        fx.manager.running_tasks("web")[0]["ID"]
            .as_str()
            .unwrap()
            .to_string()
    };
    match arg.get_id().as_str() {
        "services" | "service" | "target" => "web".into(),
        "nodes" | "node" => "manager".into(),
        "networks" | "network" => "st_net".into(),
        "task" => task(),
        "scales" => "web=2".into(),
        "manager_addr" => fx.addr.clone(),
        "name" | "names" => "st".into(),
        "compose_file" => fx.compose.clone(),
        "token" => fx.manager.worker_token(),
        "data_dir" => fx.dir.dir.path().join("never").display().to_string(),
        "socket" => fx.dir.dir.path().join("never.sock").display().to_string(),
        "command" if path.last().map(String::as_str) == Some("create") => {
            "shoal-test/busybox:1".into()
        }
        "command" => "true".into(),
        _ => "x".into(),
    }
}

/// Runs the CLI, killing it if it has not exited in time (a command that
/// ignored the flag might serve or follow forever).
fn run_bounded(manager: &Daemon, args: &[String]) -> Run {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child: Child = manager.spawn_shoal(&args);
    let deadline = Instant::now() + patience();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`shoal {}` still ran after {:?}",
                args.join(" "),
                patience()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Run {
        status: status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

#[track_caller]
fn assert_refused(run: &Run, args: &[String], flag: &str) {
    assert!(
        run.status == USAGE_EXIT && run.stderr.starts_with("Error: ") && run.stderr.contains(flag),
        "`shoal {}` should be refused by the client (exit {USAGE_EXIT}, an `Error:` naming {flag}); \
         got exit {}, stdout {:?}, stderr {:?}",
        args.join(" "),
        run.status,
        run.stdout,
        run.stderr
    );
}

/// The long flag a typo of which (`--formatt`) the test makes, if any.
fn a_long_flag(leaf: &clap::Command) -> Option<String> {
    leaf.get_arguments()
        .filter(|a| !a.is_positional() && !a.is_global_set() && !a.is_hide_set())
        .find_map(|a| a.get_long().map(str::to_string))
}

#[test]
fn every_subcommand_refuses_an_unknown_flag_before_its_first_positional() {
    let fx = fixture();
    let cli = shoal_cli::args::Cli::command();
    let mut all = Vec::new();
    leaves(&cli, Vec::new(), &mut all);
    assert!(all.len() >= 25, "only {} subcommands found", all.len());
    let before = snapshot(&fx.manager, &all);

    for (path, leaf) in &all {
        // Required flags (and paths that keep a mistaken daemon inside the
        // test's directory), then one value per positional.
        let mut flags: Vec<String> = Vec::new();
        for arg in leaf.get_arguments().filter(|a| !a.is_positional()) {
            let id = arg.get_id().as_str();
            if arg.is_required_set() || id == "data_dir" || id == "socket" {
                flags.push(format!("--{}", arg.get_long().expect("a long flag")));
                flags.push(plausible(&fx, path, arg));
            }
        }
        let positionals: Vec<String> = leaf
            .get_positionals()
            .map(|arg| plausible(&fx, path, arg))
            .collect();
        let line = |before_flags: &[&str], before_positionals: &[&str]| -> Vec<String> {
            let mut line = path.clone();
            line.extend(before_flags.iter().map(|s| s.to_string()));
            line.extend(flags.iter().cloned());
            line.extend(before_positionals.iter().map(|s| s.to_string()));
            line.extend(positionals.iter().cloned());
            line
        };

        for args in [line(&[UNKNOWN], &[]), line(&[], &[UNKNOWN])] {
            assert_refused(&run_bounded(&fx.manager, &args), &args, UNKNOWN);
        }
        if let Some(long) = a_long_flag(leaf) {
            let typo = format!("--{long}{}", long.chars().last().unwrap());
            if leaf
                .get_arguments()
                .all(|a| a.get_long() != Some(&typo[2..]))
            {
                let args = line(&[], &[&typo]);
                let run = run_bounded(&fx.manager, &args);
                assert_refused(&run, &args, &typo);
                assert!(
                    run.stderr
                        .contains(&format!("a similar argument exists: '--{long}'")),
                    "`shoal {}` should suggest --{long}: {}",
                    args.join(" "),
                    run.stderr
                );
            }
        }
        assert_eq!(
            snapshot(&fx.manager, &all),
            before,
            "`shoal {}` with an unknown flag changed the cluster",
            path.join(" ")
        );
    }
}

/// The session from issue 21, typo by typo: each is refused by the client
/// and names the flag; the same mistakes passed on after `--` are refused by
/// the managers; `service ls` never changes.
#[test]
fn the_typos_of_a_new_user_are_refused_and_change_nothing() {
    let fx = fixture();
    let manager = &fx.manager;
    let services = || manager.ok(&["service", "ls", "--format", "json"]);
    let before = services();

    let typos: &[(&[&str], &str)] = &[
        (
            &["--replicass", "3", "--name", "web2", "shoal-test/busybox:1"],
            "unexpected argument '--replicass' found",
        ),
        (
            &["--name", "web2", "-bad-image"],
            "unexpected argument '-b' found in '-bad-image'",
        ),
        (
            &[
                "--autoscale-minimum",
                "1",
                "--name",
                "web2",
                "shoal-test/busybox:1",
            ],
            "unexpected argument '--autoscale-minimum' found",
        ),
        (
            &[
                "--publsh",
                "80:80",
                "--name",
                "web2",
                "shoal-test/busybox:1",
            ],
            "unexpected argument '--publsh' found",
        ),
    ];
    for (rest, expected) in typos {
        let mut args = vec!["service", "create", "-d"];
        args.extend_from_slice(rest);
        let run = manager.shoal(&args);
        run.assert_error(expected);
        assert_eq!(run.status, USAGE_EXIT, "`shoal {}`", args.join(" "));
        assert_eq!(
            services(),
            before,
            "`shoal {}` changed the services",
            args.join(" ")
        );
    }
    let run = manager.shoal(&[
        "service",
        "create",
        "-d",
        "--replicass",
        "3",
        "--name",
        "web2",
        "shoal-test/busybox:1",
    ]);
    assert!(
        run.stderr
            .contains("a similar argument exists: '--replicas'"),
        "{}",
        run.stderr
    );

    // Past `--` the client sends them on; the managers refuse them.
    let refused: &[(&[&str], &str)] = &[
        (
            &["--", "-bad-image"],
            "invalid image reference \"-bad-image\"",
        ),
        (
            &["--", "--replicass", "3"],
            "invalid image reference \"--replicass\"",
        ),
        (&["UPPER/case"], "repository names must be lowercase"),
        (
            &["a b"],
            "invalid image reference \"a b\": it contains whitespace",
        ),
        (
            &["--runtime", "process", "--", "--autoscale-min", "1"],
            "invalid program \"--autoscale-min\"",
        ),
    ];
    for (rest, expected) in refused {
        let mut args = vec!["service", "create", "-d", "--name", "web2"];
        args.extend_from_slice(rest);
        let run = manager.shoal(&args);
        run.assert_error(expected);
        if !expected.starts_with("invalid program") {
            run.assert_error("e.g. nginx, nginx:1.25");
        }
        assert_eq!(
            services(),
            before,
            "`shoal {}` changed the services",
            args.join(" ")
        );
    }
    // `--image -bad-image` is refused by clap as a flag; `=` passes it on.
    manager
        .shoal(&["service", "update", "-d", "--image", "-bad-image", "web"])
        .assert_error("unexpected argument '-b' found in '-bad-image'");
    manager
        .shoal(&["service", "update", "-d", "--command", "--bogus 1", "web"])
        .assert_error("invalid program \"--bogus\"");
    assert_eq!(services(), before);

    // A Compose file with one bad image deploys nothing at all.
    let file = fx.dir.dir.path().join("bad.yml");
    std::fs::write(
        &file,
        "services:\n  good:\n    image: nginx:1.27\n  bad:\n    image: UPPER/case\n",
    )
    .unwrap();
    manager
        .shoal(&["stack", "deploy", "-d", "-c", file.to_str().unwrap(), "bad"])
        .assert_error("service \"bad\": invalid image reference \"UPPER/case\"");
    assert_eq!(
        services(),
        before,
        "a refused stack deploy created services"
    );

    // After the image, words are the task's command, flags included.
    manager.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web2",
        "--runtime",
        "process",
        "sleep",
        "999",
        "--bogus",
    ]);
    let inspect: serde_json::Value =
        serde_json::from_str(&manager.ok(&["service", "inspect", "web2"])).unwrap();
    assert_eq!(
        inspect[0]["Spec"]["TaskTemplate"]["ContainerSpec"]["Command"],
        serde_json::json!(["sleep", "999", "--bogus"])
    );
}
