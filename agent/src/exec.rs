//! `service exec`, the agent's side: runs a command inside one of its running
//! tasks and publishes its output and exit code back to the leader (see
//! [`crate::logs`] for the subscription plumbing).
//!
//! - containers: `docker exec` ([`crate::executor::docker::streams`]);
//! - processes: the command runs as the task does — in its directory, with a
//!   clean environment of `PATH`, `HOME` (the task directory), the service's
//!   variables and the `SHOAL_*` ones ([`crate::task_env`], as the process
//!   executor starts it) — but in its own process group, killed if the
//!   caller goes away. No stdin, no TTY.
//!
//! A leaf: it uses the executors ([`NodeRuntimes`]); nothing below it uses it.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use shoal_proto::v1::log_broker_client::LogBrokerClient;
use shoal_proto::v1::{ExecOutput, LogStream, PublishExecMessage, Subscription, Task};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::executor::runtimes::NodeRuntimes;
use crate::task_env::task_command;

pub(crate) async fn publish_exec(
    channel: Channel,
    subscription: Subscription,
    runtimes: Arc<NodeRuntimes>,
) {
    let (outputs, mut received) = mpsc::channel::<ExecOutput>(64);
    let runner = {
        let task = subscription.tasks.first().cloned().unwrap_or_default();
        let command = subscription.exec_command.clone();
        tokio::spawn(async move {
            let last = match run(&task, command, &runtimes, &outputs).await {
                Ok(code) => ExecOutput {
                    exited: true,
                    exit_code: code,
                    ..Default::default()
                },
                Err(error) => ExecOutput {
                    error,
                    ..Default::default()
                },
            };
            let _ = outputs.send(last).await;
        })
    };
    let (publish, outgoing) = mpsc::channel::<PublishExecMessage>(4);
    let _ = publish
        .send(PublishExecMessage {
            subscription_id: subscription.id.clone(),
            output: None,
        })
        .await;
    let mut client = LogBrokerClient::new(channel);
    let mut call = tokio::spawn(async move {
        client
            .publish_exec(ReceiverStream::new(outgoing))
            .await
            .map(|_| ())
    });
    let forward = async move {
        while let Some(output) = received.recv().await {
            let message = PublishExecMessage {
                subscription_id: String::new(),
                output: Some(output),
            };
            if publish.send(message).await.is_err() {
                break;
            }
        }
    };
    let outcome = tokio::select! {
        outcome = &mut call => outcome,
        _ = forward => call.await,
    };
    // The caller left (or everything was sent): a command still running is
    // killed with its future (kill_on_drop) — for processes.
    runner.abort();
    if let Ok(Err(status)) = outcome {
        tracing::debug!(subscription = %subscription.id, "publishing exec output ended: {}", status.message());
    }
}

async fn run(
    task: &Task,
    command: Vec<String>,
    runtimes: &NodeRuntimes,
    out: &mpsc::Sender<ExecOutput>,
) -> Result<i32, String> {
    let runtime = task.spec.as_ref().map(|s| s.runtime.as_str()).unwrap_or("");
    if runtime == "docker" {
        let docker = runtimes
            .docker
            .as_ref()
            .ok_or("this node has no docker runtime")?;
        return docker.exec_in_task(&task.id, command, out).await;
    }
    let dir = runtimes.tasks_dir.join(&task.id);
    if !dir.is_dir() || dir.join("exit.json").exists() {
        return Err(format!("task {} is not running on this node", task.id));
    }
    exec_process(task, &runtimes.node_id, &dir, command, out).await
}

/// Runs `command` with the task's environment in its directory; returns
/// its exit code (128 + N when killed by signal N).
pub async fn exec_process(
    task: &Task,
    node_id: &str,
    dir: &Path,
    command: Vec<String>,
    out: &mpsc::Sender<ExecOutput>,
) -> Result<i32, String> {
    let (program, args) = command.split_first().ok_or("no command given")?;
    let mut cmd = task_command(task, node_id, dir, program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {program:?} in task {}: {e}", task.id))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    tokio::join!(
        pump(stdout, LogStream::Stdout, out),
        pump(stderr, LogStream::Stderr, out)
    );
    let status = child
        .wait()
        .await
        .map_err(|e| format!("waiting for {program:?} failed: {e}"))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .or(status.signal().map(|s| 128 + s))
        .unwrap_or(-1))
}

async fn pump(mut from: impl AsyncRead + Unpin, stream: LogStream, out: &mpsc::Sender<ExecOutput>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let chunk = ExecOutput {
                    stream: stream as i32,
                    data: buf[..n].to_vec(),
                    ..Default::default()
                };
                if out.send(chunk).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use shoal_proto::v1::TaskSpec;

    use super::*;

    #[tokio::test]
    async fn a_process_exec_sees_the_task_environment_and_reports_its_exit() {
        let dir = tempfile::tempdir().unwrap();
        let task = Task {
            id: "t1".into(),
            service_name: "web".into(),
            slot: 3,
            spec: Some(TaskSpec {
                runtime: "process".into(),
                env: vec!["GREETING=hi".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let (tx, mut rx) = mpsc::channel(64);
        let command = [
            "sh",
            "-c",
            "echo $GREETING $SHOAL_TASK_NAME $PWD; echo oops >&2; exit 7",
        ];
        let code = exec_process(
            &task,
            "n1",
            dir.path(),
            command.iter().map(|s| s.to_string()).collect(),
            &tx,
        )
        .await
        .unwrap();
        assert_eq!(code, 7);
        drop(tx);
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while let Some(chunk) = rx.recv().await {
            match chunk.stream() {
                LogStream::Stderr => stderr.extend(chunk.data),
                _ => stdout.extend(chunk.data),
            }
        }
        let dir_name = dir.path().canonicalize().unwrap();
        assert_eq!(
            String::from_utf8(stdout).unwrap(),
            format!("hi web.3.t1 {}\n", dir_name.display())
        );
        assert_eq!(stderr, b"oops\n");
    }
}
