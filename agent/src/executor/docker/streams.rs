//! A container task's output and commands run in it: the engine's logs API
//! (with its own per-line timestamps) and `docker exec`. Used by the
//! agent's log broker client ([`crate::logs`], [`crate::exec`]); the task's
//! container is found by its task label, as everywhere in this executor.

use bollard::container::LogOutput;
use bollard::exec::StartExecResults;
use bollard::models::ExecConfig;
use bollard::query_parameters::LogsOptions;
use futures::StreamExt;
use shoal_proto::v1::{ExecOutput, LogMessage, LogOptions, LogStream};
use tokio::sync::mpsc;

use super::{engine_message, DockerExecutor};

impl DockerExecutor {
    /// The task's container, newest first when an earlier attempt left one.
    async fn task_container(&self, task_id: &str) -> Result<Option<String>, String> {
        let containers = self
            .node
            .containers(Some(task_id), None)
            .await
            .map_err(|e| format!("cannot list the containers of task {task_id}: {e}"))?;
        Ok(containers
            .into_iter()
            .max_by_key(|c| c.created.unwrap_or_default())
            .and_then(|c| c.id))
    }

    /// Sends the task's container logs to `out`, line by line, as `options`
    /// ask; with `follow`, until the container stops or `out` closes.
    /// `Ok(false)` when the task has no container (any more).
    pub async fn task_logs(
        &self,
        task_id: &str,
        options: &LogOptions,
        out: &mpsc::Sender<LogMessage>,
    ) -> Result<bool, String> {
        let Some(id) = self.task_container(task_id).await? else {
            return Ok(false);
        };
        let engine_options = LogsOptions {
            follow: options.follow,
            stdout: true,
            stderr: true,
            // Whole seconds for the engine; the exact cut is made below.
            since: i32::try_from(options.since_ns / 1_000_000_000).unwrap_or(0),
            until: 0,
            timestamps: true,
            tail: match options.tail {
                Some(n) if n >= 0 => n.to_string(),
                _ => "all".to_string(),
            },
        };
        // The engine answers a follow only as lines come: no request timeout.
        let docker = self.node.docker.clone().with_timeout(LOGS_TIMEOUT);
        let mut logs = docker.logs(&id, Some(engine_options));
        while let Some(frame) = logs.next().await {
            let frame = frame.map_err(|e| {
                format!(
                    "cannot read the logs of container {id}: {}",
                    engine_message(&e)
                )
            })?;
            let (stream, bytes) = match frame {
                LogOutput::StdOut { message } => (LogStream::Stdout, message),
                LogOutput::StdErr { message } => (LogStream::Stderr, message),
                LogOutput::Console { message } => (LogStream::Stdout, message),
                LogOutput::StdIn { .. } => continue,
            };
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let (timestamp_ns, data) = split_timestamp(line);
                if options.since_ns > 0 && timestamp_ns > 0 && timestamp_ns < options.since_ns {
                    continue;
                }
                let message = LogMessage {
                    task_id: task_id.to_string(),
                    stream: stream as i32,
                    timestamp_ns,
                    data: data.to_vec(),
                    ..Default::default()
                };
                if out.send(message).await.is_err() {
                    return Ok(true);
                }
            }
        }
        Ok(true)
    }

    /// Runs `command` in the task's running container (`docker exec`,
    /// without a TTY or stdin), sending its output to `out`; returns its exit
    /// code. Dropping the future stops reading but cannot stop the command:
    /// the engine has no API to kill an exec.
    pub async fn exec_in_task(
        &self,
        task_id: &str,
        command: Vec<String>,
        out: &mpsc::Sender<ExecOutput>,
    ) -> Result<i32, String> {
        let Some(id) = self.task_container(task_id).await? else {
            return Err(format!("task {task_id} has no container on this node"));
        };
        match self.node.state(&id).await {
            Ok(Some(state)) if state.running == Some(true) => {}
            Ok(_) => return Err(format!("the container of task {task_id} is not running")),
            Err(e) => return Err(format!("cannot inspect container {id}: {e}")),
        }
        let exec = self
            .node
            .docker
            .create_exec(
                &id,
                ExecConfig {
                    cmd: Some(command),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| engine_message(&e))?;
        let docker = self.node.docker.clone().with_timeout(LOGS_TIMEOUT);
        match docker
            .start_exec(&exec.id, None)
            .await
            .map_err(|e| engine_message(&e))?
        {
            StartExecResults::Attached { mut output, .. } => {
                while let Some(frame) = output.next().await {
                    let (stream, data) = match frame.map_err(|e| engine_message(&e))? {
                        LogOutput::StdOut { message } | LogOutput::Console { message } => {
                            (LogStream::Stdout, message)
                        }
                        LogOutput::StdErr { message } => (LogStream::Stderr, message),
                        LogOutput::StdIn { .. } => continue,
                    };
                    let chunk = ExecOutput {
                        stream: stream as i32,
                        data: data.to_vec(),
                        ..Default::default()
                    };
                    if out.send(chunk).await.is_err() {
                        return Err("the caller went away".into());
                    }
                }
            }
            StartExecResults::Detached => {}
        }
        let inspect = self
            .node
            .docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| engine_message(&e))?;
        Ok(inspect.exit_code.unwrap_or(-1) as i32)
    }
}

/// Requests that last as long as a followed log or a command: a day.
const LOGS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Splits the engine's `2024-05-01T12:00:00.123456789Z ` prefix off a line;
/// `0` when there is none.
pub fn split_timestamp(line: &[u8]) -> (i64, &[u8]) {
    let Some(space) = line.iter().position(|b| *b == b' ') else {
        return (0, line);
    };
    let parsed = std::str::from_utf8(&line[..space])
        .ok()
        .and_then(|s| humantime::parse_rfc3339(s).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    match parsed {
        Some(d) => (d.as_nanos() as i64, &line[space + 1..]),
        None => (0, line),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn engine_timestamps_are_split_off() {
        let (ns, data) = super::split_timestamp(b"2024-05-01T12:00:00.000000001Z hello world");
        assert_eq!(ns, 1_714_564_800_000_000_001);
        assert_eq!(data, b"hello world");
        assert_eq!(super::split_timestamp(b"no stamp"), (0, &b"no stamp"[..]));
        assert_eq!(super::split_timestamp(b"plain"), (0, &b"plain"[..]));
    }
}
