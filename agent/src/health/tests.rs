use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;

/// How long a test waits for something before failing.
const PATIENCE: Duration = Duration::from_secs(20);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn check(test: &[&str]) -> HealthCheck {
    HealthCheck {
        test: test.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn config(retries: u32, start_period: Duration) -> HealthConfig {
    HealthConfig {
        argv: vec!["true".into()],
        interval: secs(1),
        timeout: secs(1),
        retries,
        start_period,
    }
}

fn failed(code: i32, output: &str) -> Outcome {
    Outcome::Failed {
        exit_code: code,
        output: output.into(),
    }
}

#[test]
fn specs_map_to_docker_defaults_and_command_lines() {
    assert_eq!(HealthConfig::from_spec(None).unwrap(), None);
    assert_eq!(HealthConfig::from_spec(Some(&check(&[]))).unwrap(), None);
    assert_eq!(
        HealthConfig::from_spec(Some(&check(&["NONE"]))).unwrap(),
        None
    );
    let shell = HealthConfig::from_spec(Some(&check(&["CMD-SHELL", "test -f ready"])))
        .unwrap()
        .unwrap();
    assert_eq!(shell.argv, ["/bin/sh", "-c", "test -f ready"]);
    assert_eq!(shell.interval, DEFAULT_INTERVAL);
    assert_eq!(shell.timeout, DEFAULT_TIMEOUT);
    assert_eq!(shell.retries, DEFAULT_RETRIES);
    assert_eq!(shell.start_period, Duration::ZERO);
    let exec = HealthConfig::from_spec(Some(&HealthCheck {
        test: vec!["CMD".into(), "curl".into(), "-f".into()],
        interval_ms: 1500,
        timeout_ms: 200,
        retries: 5,
        start_period_ms: 10_000,
    }))
    .unwrap()
    .unwrap();
    assert_eq!(exec.argv, ["curl", "-f"]);
    assert_eq!(exec.interval, Duration::from_millis(1500));
    assert_eq!(exec.timeout, Duration::from_millis(200));
    assert_eq!(exec.retries, 5);
    assert_eq!(exec.start_period, secs(10));
    for bad in [&["CMD"][..], &["CMD-SHELL", " "], &["curl", "-f"]] {
        let e = HealthConfig::from_spec(Some(&check(bad))).unwrap_err();
        assert!(e.to_string().contains("invalid health check test"), "{e}");
    }
}

#[test]
fn failures_in_the_start_period_do_not_count() {
    let mut m = Monitor::new(&config(2, secs(10)));
    for t in [1, 3, 5, 7, 9] {
        assert_eq!(*m.record(secs(t), &failed(1, "")), Health::Starting);
    }
    // Outside the start period: the second failure in a row is one too many.
    assert_eq!(*m.record(secs(11), &failed(1, "")), Health::Starting);
    assert_eq!(
        *m.record(secs(13), &failed(1, "  not\nready  ")),
        Health::Unhealthy("health check failed 2 times in a row: exit code 1: not ready".into())
    );
}

#[test]
fn a_pass_in_the_start_period_makes_the_task_healthy_and_ends_the_grace() {
    let mut m = Monitor::new(&config(3, secs(60)));
    assert_eq!(*m.record(secs(1), &failed(1, "")), Health::Starting);
    assert_eq!(*m.record(secs(2), &Outcome::Passed), Health::Healthy);
    // Healthy once: failures count even inside the start period.
    assert_eq!(*m.record(secs(3), &failed(1, "")), Health::Healthy);
    assert_eq!(*m.record(secs(4), &failed(1, "")), Health::Healthy);
    assert_eq!(
        *m.record(secs(5), &failed(7, "")),
        Health::Unhealthy("health check failed 3 times in a row: exit code 7".into())
    );
}

#[test]
fn a_pass_resets_the_failing_streak_and_an_unhealthy_task_can_recover() {
    let mut m = Monitor::new(&config(3, Duration::ZERO));
    m.record(secs(1), &failed(1, ""));
    m.record(secs(2), &failed(1, ""));
    assert_eq!(*m.record(secs(3), &Outcome::Passed), Health::Healthy);
    m.record(secs(4), &failed(1, ""));
    assert_eq!(*m.record(secs(5), &failed(1, "")), Health::Healthy);
    assert!(matches!(
        m.record(secs(6), &failed(1, "")),
        Health::Unhealthy(_)
    ));
    // Still failing: the count in the reason keeps up.
    assert!(matches!(
        m.record(secs(7), &failed(1, "")),
        Health::Unhealthy(r) if r.contains("4 times")
    ));
    assert_eq!(*m.record(secs(8), &Outcome::Passed), Health::Healthy);
}

#[test]
fn timeouts_are_failures_and_reasons_stay_short() {
    let mut m = Monitor::new(&config(1, Duration::ZERO));
    assert_eq!(
        *m.record(secs(1), &Outcome::TimedOut(Duration::from_millis(1500))),
        Health::Unhealthy("health check failed: timed out after 1s 500ms".into())
    );
    let long = "x".repeat(1000);
    let Health::Unhealthy(reason) = m.record(secs(2), &failed(1, &long)).clone() else {
        panic!("still unhealthy");
    };
    assert!(reason.ends_with('…'), "{reason}");
    assert!(reason.chars().count() < 260, "{reason}");
}

/// A probe that plays `script` and then passes forever.
fn scripted(script: Vec<Outcome>) -> impl FnMut() -> std::future::Ready<Outcome> {
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    move || {
        let next = script.lock().unwrap().pop_front();
        std::future::ready(next.unwrap_or(Outcome::Passed))
    }
}

async fn next_change(rx: &mut watch::Receiver<Health>) -> Health {
    tokio::time::timeout(PATIENCE, rx.changed())
        .await
        .expect("no health change in time")
        .expect("the prober ended");
    rx.borrow_and_update().clone()
}

#[tokio::test]
async fn the_prober_publishes_changes_only() {
    let mut cfg = config(2, Duration::ZERO);
    cfg.interval = Duration::from_millis(5);
    let (tx, mut rx) = watch::channel(Health::Starting);
    let script = vec![
        failed(1, ""),
        Outcome::Passed,
        Outcome::Passed,
        failed(1, ""),
        failed(1, "down"),
    ];
    let prober = tokio::spawn(run_prober(
        cfg,
        tokio::time::Instant::now(),
        tx,
        scripted(script),
    ));
    assert_eq!(next_change(&mut rx).await, Health::Healthy);
    assert_eq!(
        next_change(&mut rx).await,
        Health::Unhealthy("health check failed 2 times in a row: exit code 1: down".into())
    );
    assert_eq!(next_change(&mut rx).await, Health::Healthy);
    // Every receiver gone: the prober stops by itself.
    drop(rx);
    tokio::time::timeout(PATIENCE, prober)
        .await
        .expect("the prober outlived its receivers")
        .unwrap();
}

#[tokio::test]
async fn a_probe_past_its_timeout_fails_and_is_killed_with_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("child.pid");
    let mut cfg = config(1, Duration::ZERO);
    cfg.interval = Duration::from_millis(5);
    cfg.timeout = Duration::from_millis(300);
    let (tx, mut rx) = watch::channel(Health::Starting);
    let script = format!("sleep 1000 & echo $! > {}; wait", pid_file.display());
    let prober = tokio::spawn(run_prober(
        cfg,
        tokio::time::Instant::now(),
        tx,
        move || {
            let mut command = tokio::process::Command::new("/bin/sh");
            command.args(["-c", &script]);
            probe(command)
        },
    ));
    assert_eq!(
        next_change(&mut rx).await,
        Health::Unhealthy("health check failed: timed out after 300ms".into())
    );
    prober.abort();
    let child: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while std::fs::read_to_string(format!("/proc/{child}/stat"))
        .is_ok_and(|stat| !stat.contains(") Z "))
    {
        assert!(
            Instant::now() < deadline,
            "the probe's child {child} outlived it"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_probe_reports_its_exit_code_and_output() {
    let mut command = tokio::process::Command::new("/bin/sh");
    command.args(["-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(probe(command).await, failed(3, "out\nerr\n"));
    let mut command = tokio::process::Command::new("/bin/sh");
    command.args(["-c", "exit 0"]);
    assert_eq!(probe(command).await, Outcome::Passed);
    let missing = probe(tokio::process::Command::new("/no/such/probe")).await;
    assert!(
        matches!(&missing, Outcome::Error(m) if m.contains("cannot run the health check")),
        "{missing:?}"
    );
}
