//! Runs one operator hook: `sh -c CMD` with a JSON document on stdin, a
//! timeout, and the end of its stderr kept. The command runs in its own
//! process group so that a timeout kills whatever it started, not only the
//! shell; what it leaves behind on purpose (a daemon it started with
//! `setsid`/`nohup` in another group) is its business.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How much of stderr is kept (the end of it: errors come last).
pub const STDERR_KEPT: usize = 2048;
/// After the command exits, how long its stderr may stay open (held by a
/// child it left running) before the read is abandoned.
const STDERR_DRAIN: Duration = Duration::from_secs(1);

/// What a call came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The exit code; `None` when killed, timed out or never started.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// Why it could not start, if it did not.
    pub spawn_error: Option<String>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// "exited 0 after 1.2 s", "killed at its 10 s timeout", …
    pub fn describe(&self, timeout: Duration) -> String {
        let after = format!("after {:.1} s", self.elapsed.as_secs_f64());
        if let Some(e) = &self.spawn_error {
            format!("could not start: {e}")
        } else if self.timed_out {
            format!("killed at its {:.0} s timeout", timeout.as_secs_f64())
        } else if let Some(code) = self.exit_code {
            format!("exited {code} {after}")
        } else {
            format!("killed by a signal {after}")
        }
    }
}

/// Runs `command` through `sh -c`, writes `input` to its stdin and waits at
/// most `timeout`. `env` is added to the daemon's environment.
pub async fn run(command: &str, input: &[u8], env: &[(&str, &str)], timeout: Duration) -> Outcome {
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Outcome {
                exit_code: None,
                timed_out: false,
                spawn_error: Some(e.to_string()),
                stderr: String::new(),
                elapsed: started.elapsed(),
            }
        }
    };
    let group = child.id();
    if let Some(mut stdin) = child.stdin.take() {
        let input = input.to_vec();
        // A command that does not read its stdin closes the pipe: fine.
        tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
        });
    }
    let mut stderr = child.stderr.take();
    let reader = tokio::spawn(async move {
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        if let Some(err) = stderr.as_mut() {
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                kept.extend_from_slice(&buf[..n]);
                let excess = kept.len().saturating_sub(STDERR_KEPT);
                kept.drain(..excess);
            }
        }
        kept
    });
    let (exit_code, timed_out) = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => (status.code(), false),
        Ok(Err(_)) => (None, false),
        Err(_) => {
            kill_group(group);
            let _ = child.wait().await;
            (None, true)
        }
    };
    let elapsed = started.elapsed();
    let stderr = match tokio::time::timeout(STDERR_DRAIN, reader).await {
        Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).trim().to_string(),
        _ => String::new(),
    };
    Outcome {
        exit_code,
        timed_out,
        spawn_error: None,
        stderr,
        elapsed,
    }
}

/// SIGKILL to the command's process group (it leads one: `process_group(0)`).
fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stdin_reaches_the_command_and_its_status_and_stderr_come_back() {
        let out = run(
            "read line; echo \"got $line $HOOK_ENV\" >&2; exit 3",
            b"{\"tasks\":1}\n",
            &[("HOOK_ENV", "yes")],
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(out.exit_code, Some(3));
        assert_eq!(out.stderr, "got {\"tasks\":1} yes");
        assert!(!out.succeeded());
    }

    #[tokio::test]
    async fn a_command_past_its_timeout_is_killed_with_its_children() {
        let out = run("sleep 30 & sleep 30", b"", &[], Duration::from_millis(300)).await;
        assert!(out.timed_out, "{out:?}");
        assert_eq!(out.exit_code, None);
        assert!(out
            .describe(Duration::from_millis(300))
            .starts_with("killed at its"));
    }

    #[tokio::test]
    async fn only_the_end_of_a_long_stderr_is_kept() {
        let out = run(
            "i=0; while [ $i -lt 500 ]; do echo line-$i >&2; i=$((i+1)); done; echo last >&2",
            b"",
            &[],
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(out.exit_code, Some(0));
        assert!(out.stderr.len() <= STDERR_KEPT);
        assert!(out.stderr.ends_with("last"), "{}", out.stderr);
    }
}
