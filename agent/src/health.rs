//! Health checks with Docker's semantics: what a spec's `HealthCheck` means,
//! the state machine that turns probe results into a task's health, and the
//! prober the process executor runs beside a task.
//!
//! - [`HealthConfig`]: the spec's check with Docker's defaults filled in
//!   (interval 30 s, timeout 30 s, 3 retries, no start period).
//! - [`Monitor`]: pure — fed each probe's outcome and when it started
//!   (relative to the task's start), it says whether the task is starting,
//!   healthy or unhealthy. A failure inside the start period does not count
//!   while the task has never been healthy; a pass always makes it healthy;
//!   `retries` consecutive failures make it unhealthy.
//! - [`run_prober`], [`probe`]: the async loop that probes every interval,
//!   kills a probe at its timeout, and publishes the health on a watch channel.
//!
//! Containers' checks are run by the engine, which applies the same rules; the
//! Docker executor only watches their status. What an unhealthy task becomes
//! (stopped, FAILED) is the worker's decision, not this module's.

use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use shoal_proto::health::{parse_test, HealthTest, InvalidTest};
use shoal_proto::v1::HealthCheck;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;

/// Docker's defaults for a zero interval, timeout and retries.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_RETRIES: u32 = 3;
/// Output kept of each probe (as much as Docker keeps).
const OUTPUT_LIMIT: usize = 4096;
/// Characters of the last probe's output that reach a task's status message.
const REASON_LIMIT: usize = 200;

/// A task's health as its check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// The check has not passed yet.
    Starting,
    Healthy,
    /// Too many consecutive failures; the text says how many and how the
    /// last probe failed ("health check failed 3 times in a row: exit code 1").
    Unhealthy(String),
}

/// A spec's health check, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// The probe's command line: `CMD`'s argv as given, `CMD-SHELL`'s line
    /// behind `/bin/sh -c`.
    pub argv: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum HealthCheckError {
    #[error(transparent)]
    Invalid(#[from] InvalidTest),
}

impl HealthConfig {
    /// The check a spec asks for: `None` without one (no message, an empty
    /// test, or `["NONE"]`), an error for a test Docker would refuse.
    pub fn from_spec(check: Option<&HealthCheck>) -> Result<Option<Self>, HealthCheckError> {
        let Some(check) = check else {
            return Ok(None);
        };
        // One reading of the test for manager and agent (`shoal_proto::health`).
        let argv = match parse_test(&check.test)? {
            HealthTest::Inherit | HealthTest::Disabled => return Ok(None),
            HealthTest::Exec(argv) => argv.to_vec(),
            HealthTest::Shell(line) => vec!["/bin/sh".into(), "-c".into(), line.to_string()],
        };
        let or = |ms: u64, default| {
            if ms == 0 {
                default
            } else {
                Duration::from_millis(ms)
            }
        };
        Ok(Some(HealthConfig {
            argv,
            interval: or(check.interval_ms, DEFAULT_INTERVAL),
            timeout: or(check.timeout_ms, DEFAULT_TIMEOUT),
            retries: match check.retries {
                0 => DEFAULT_RETRIES,
                n => u32::try_from(n).unwrap_or(u32::MAX),
            },
            start_period: Duration::from_millis(check.start_period_ms),
        }))
    }
}

/// How one probe went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exit code 0.
    Passed,
    /// Any other exit code (128 + N when killed by signal N), with what it printed.
    Failed { exit_code: i32, output: String },
    /// Still running at the timeout, and killed.
    TimedOut(Duration),
    /// It could not run at all (no such program, …).
    Error(String),
}

impl Outcome {
    /// One line for a status message, at most [`REASON_LIMIT`] characters of output.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Passed => "passed".to_string(),
            Outcome::Failed { exit_code, output } => match one_line(output) {
                line if line.is_empty() => format!("exit code {exit_code}"),
                line => format!("exit code {exit_code}: {line}"),
            },
            Outcome::TimedOut(after) => {
                format!("timed out after {}", humantime::format_duration(*after))
            }
            Outcome::Error(message) => one_line(message),
        }
    }
}

/// `text` on one line (whitespace runs become one space), cut at
/// [`REASON_LIMIT`] characters.
fn one_line(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let line = words.join(" ");
    match line.char_indices().nth(REASON_LIMIT) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// Why a task is unhealthy: how many probes failed in a row, and the last.
pub fn unhealthy_reason(failing_streak: u64, last: &str) -> String {
    match failing_streak {
        1 => format!("health check failed: {last}"),
        n => format!("health check failed {n} times in a row: {last}"),
    }
}

/// The health state machine, Docker's (moby `daemon/health.go`). Pure: the
/// caller says when each probe started, relative to the task's start.
#[derive(Debug, Clone)]
pub struct Monitor {
    retries: u32,
    start_period: Duration,
    health: Health,
    failing_streak: u32,
}

impl Monitor {
    pub fn new(config: &HealthConfig) -> Self {
        Monitor {
            retries: config.retries.max(1),
            start_period: config.start_period,
            health: Health::Starting,
            failing_streak: 0,
        }
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Takes the outcome of a probe that started `since_start` after the task.
    pub fn record(&mut self, since_start: Duration, outcome: &Outcome) -> &Health {
        if *outcome == Outcome::Passed {
            self.failing_streak = 0;
            self.health = Health::Healthy;
            return &self.health;
        }
        // A task that has never been healthy may fail freely while it starts.
        let starting = self.health == Health::Starting && since_start < self.start_period;
        if !starting {
            self.failing_streak = self.failing_streak.saturating_add(1);
            if self.failing_streak >= self.retries {
                self.health = Health::Unhealthy(unhealthy_reason(
                    u64::from(self.failing_streak),
                    &outcome.describe(),
                ));
            }
        }
        &self.health
    }
}

/// Probes every `config.interval` (the first one interval after `started`, as
/// Docker), each cut off at `config.timeout`, and publishes every change of
/// health on `health`. Runs until every receiver is gone; dropping it cancels
/// the probe in flight (which [`probe`] kills).
pub async fn run_prober<F, Fut>(
    config: HealthConfig,
    started: tokio::time::Instant,
    health: watch::Sender<Health>,
    mut run_probe: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    let mut monitor = Monitor::new(&config);
    loop {
        tokio::select! {
            _ = health.closed() => return,
            _ = tokio::time::sleep(config.interval) => {}
        }
        let since_start = started.elapsed();
        let outcome = tokio::time::timeout(config.timeout, run_probe())
            .await
            .unwrap_or(Outcome::TimedOut(config.timeout));
        if outcome != Outcome::Passed {
            tracing::debug!(outcome = %outcome.describe(), "a health check probe failed");
        }
        let now = monitor.record(since_start, &outcome).clone();
        health.send_if_modified(|current| {
            let changed = *current != now;
            *current = now;
            changed
        });
    }
}

/// Runs one probe: `command` (with its environment and working directory set)
/// in its own process group, its stdout and stderr captured. Dropping the
/// future before the probe ended (its timeout) kills the whole group.
pub async fn probe(mut command: tokio::process::Command) -> Outcome {
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Outcome::Error(format!("cannot run the health check: {e}")),
    };
    let mut group = ProbeGroup(child.id().map(|pid| Pid::from_raw(pid as i32)));
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let (out, err) = tokio::join!(read_capped(stdout), read_capped(stderr));
    let status = child.wait().await;
    // Reaped: its group ID may now be reused, so it must not be signalled.
    group.0 = None;
    let status = match status {
        Ok(status) => status,
        Err(e) => return Outcome::Error(format!("waiting for the health check failed: {e}")),
    };
    use std::os::unix::process::ExitStatusExt;
    let exit_code = status
        .code()
        .or(status.signal().map(|s| 128 + s))
        .unwrap_or(-1);
    if exit_code == 0 {
        return Outcome::Passed;
    }
    let mut output = String::from_utf8_lossy(&out).into_owned();
    output.push_str(&String::from_utf8_lossy(&err));
    Outcome::Failed { exit_code, output }
}

/// A probe's process group, killed on drop while its leader is unreaped.
struct ProbeGroup(Option<Pid>);

impl Drop for ProbeGroup {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // ESRCH (nothing left) is fine.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

/// Everything `from` yields until EOF, keeping the first [`OUTPUT_LIMIT`]
/// bytes: a chatty probe must not block on a full pipe.
async fn read_capped(from: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let Some(mut from) = from else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

#[cfg(test)]
mod tests;
