//! `service logs`, the agent's side: the logs of its tasks published back
//! to the leader for one subscription ([`crate::subscriptions`] receives
//! them). When the manager answers the publish call early, the caller went
//! away: the agent stops reading (see `manager::logs`).
//!
//! Where output comes from is the runtime's business:
//! - process tasks: `<data dir>/tasks/<task id>/stdout.log` and `stderr.log`,
//!   which the task writes directly (so it keeps logging while no agent
//!   runs). The files hold no times: lines already there carry the file's
//!   last modification time (when the newest of them was written at the
//!   latest), and followed lines the time the agent read them (within
//!   [`FOLLOW_POLL`]). `--tail N` counts each file's lines separately, and
//!   `--since` keeps a file's existing lines only if it was modified since.
//! - containers: the engine's logs API, with the engine's own timestamps
//!   ([`crate::executor::docker::streams`]).
//!
//! A leaf: it reads the runtimes through [`NodeRuntimes`]; nothing below it
//! uses it. Commands run by `service exec` are [`crate::exec`]'s.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use shoal_proto::v1::log_broker_client::LogBrokerClient;
use shoal_proto::v1::{LogMessage, LogOptions, LogStream, PublishLogsMessage, Subscription, Task};
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, BufReader};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::executor::runtimes::NodeRuntimes;

/// How often a followed process log is read for new lines.
pub const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// Lines per publish message at most.
const BATCH: usize = 256;

pub(crate) async fn publish_logs(
    channel: Channel,
    subscription: Subscription,
    runtimes: Arc<NodeRuntimes>,
) {
    let options = subscription.logs.unwrap_or_default();
    let single = subscription.tasks.len() == 1;
    let (lines, mut received) = mpsc::channel::<LogMessage>(BATCH);
    let producers: Vec<_> = subscription
        .tasks
        .into_iter()
        .map(|task| {
            let lines = lines.clone();
            let runtimes = runtimes.clone();
            tokio::spawn(async move { task_logs(&task, &options, &runtimes, single, &lines).await })
        })
        .collect();
    drop(lines);

    let (publish, outgoing) = mpsc::channel::<PublishLogsMessage>(4);
    // The first message names the subscription even when there is nothing to say.
    let _ = publish
        .send(PublishLogsMessage {
            subscription_id: subscription.id.clone(),
            messages: Vec::new(),
        })
        .await;
    let mut client = LogBrokerClient::new(channel);
    let mut call = tokio::spawn(async move {
        client
            .publish_logs(ReceiverStream::new(outgoing))
            .await
            .map(|_| ())
    });
    let forward = async move {
        while let Some(first) = received.recv().await {
            let mut messages = vec![first];
            while messages.len() < BATCH {
                match received.try_recv() {
                    Ok(line) => messages.push(line),
                    Err(_) => break,
                }
            }
            let message = PublishLogsMessage {
                subscription_id: String::new(),
                messages,
            };
            if publish.send(message).await.is_err() {
                break;
            }
        }
        // Dropping `publish` ends the call's stream: everything was sent.
    };
    let outcome = tokio::select! {
        // The manager answered first: the caller left (or the session broke).
        outcome = &mut call => outcome,
        _ = forward => call.await,
    };
    for producer in producers {
        producer.abort();
    }
    if let Ok(Err(status)) = outcome {
        tracing::debug!(subscription = %subscription.id, "publishing logs ended: {}", status.message());
    }
}

/// One task's logs into `out`, from whichever runtime runs it.
async fn task_logs(
    task: &Task,
    options: &LogOptions,
    runtimes: &NodeRuntimes,
    single: bool,
    out: &mpsc::Sender<LogMessage>,
) {
    let runtime = task.spec.as_ref().map(|s| s.runtime.as_str()).unwrap_or("");
    let found = match runtime {
        "docker" => match runtimes.docker.as_ref() {
            Some(docker) => docker.task_logs(&task.id, options, out).await,
            None => Err("this node has no docker runtime".to_string()),
        },
        _ => process_logs(&runtimes.tasks_dir.join(&task.id), &task.id, options, out).await,
    };
    let error = match found {
        Ok(true) => return,
        // A service's old tasks whose files are gone have nothing to say; a
        // task asked for by itself says so.
        Ok(false) if !single => return,
        Ok(false) => format!(
            "no logs for task {}: its {} is gone from this node",
            task.id,
            if runtime == "docker" {
                "container"
            } else {
                "directory"
            }
        ),
        Err(e) => e,
    };
    let _ = out
        .send(LogMessage {
            task_id: task.id.clone(),
            error,
            ..Default::default()
        })
        .await;
}

fn nanos(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or_default()
}

/// One log file of a process task being read.
struct LogFile {
    path: PathBuf,
    stream: LogStream,
    offset: u64,
    /// A line whose newline has not been written yet.
    partial: Vec<u8>,
}

/// A process task's logs from its files. `Ok(false)` when its directory is
/// gone. With `follow`, reads on until the task ended (`exit.json` written,
/// or the directory removed) and every line was sent.
pub async fn process_logs(
    dir: &Path,
    task_id: &str,
    options: &LogOptions,
    out: &mpsc::Sender<LogMessage>,
) -> Result<bool, String> {
    if !dir.is_dir() {
        return Ok(false);
    }
    let line = |stream: LogStream, timestamp_ns: i64, data: Vec<u8>| LogMessage {
        task_id: task_id.to_string(),
        stream: stream as i32,
        timestamp_ns,
        data,
        ..Default::default()
    };
    let mut files = Vec::new();
    for (name, stream) in [
        ("stdout.log", LogStream::Stdout),
        ("stderr.log", LogStream::Stderr),
    ] {
        let path = dir.join(name);
        let (existing, offset, modified) = read_existing(&path, options).await?;
        for data in existing {
            if out.send(line(stream, modified, data)).await.is_err() {
                return Ok(true);
            }
        }
        files.push(LogFile {
            path,
            stream,
            offset,
            partial: Vec::new(),
        });
    }
    if !options.follow {
        return Ok(true);
    }
    loop {
        // Checked before reading: lines written before the task ended are
        // all in the files by the time exit.json is.
        let ended = dir.join("exit.json").exists() || !dir.is_dir();
        for file in &mut files {
            let now = nanos(SystemTime::now());
            for data in read_new(file).await {
                if out.send(line(file.stream, now, data)).await.is_err() {
                    return Ok(true);
                }
            }
            if ended && !file.partial.is_empty() {
                let data = std::mem::take(&mut file.partial);
                if out.send(line(file.stream, now, data)).await.is_err() {
                    return Ok(true);
                }
            }
        }
        if ended {
            return Ok(true);
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

/// The lines already in `path` that `options` select, the offset after them
/// (a trailing partial line is left for following), and the file's
/// modification time.
async fn read_existing(
    path: &Path,
    options: &LogOptions,
) -> Result<(Vec<Vec<u8>>, u64, i64), String> {
    let file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0, 0)),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let modified = file
        .metadata()
        .await
        .ok()
        .and_then(|m| m.modified().ok())
        .map(nanos)
        .unwrap_or_default();
    let skip_existing = options.since_ns > 0 && modified < options.since_ns;
    // Only the last `tail` lines are kept while reading: memory stays bounded
    // by what is shown, whatever the file's size.
    let keep = options.tail.and_then(|n| usize::try_from(n).ok());
    let mut lines = VecDeque::new();
    let mut reader = BufReader::new(file);
    let mut offset = 0u64;
    loop {
        let mut buf = Vec::new();
        let n = reader
            .read_until(b'\n', &mut buf)
            .await
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if n == 0 || buf.last() != Some(&b'\n') {
            break;
        }
        offset += n as u64;
        if skip_existing || keep == Some(0) {
            continue;
        }
        buf.pop();
        lines.push_back(buf);
        if keep.is_some_and(|k| lines.len() > k) {
            lines.pop_front();
        }
    }
    Ok((lines.into(), offset, modified))
}

/// Complete lines written to `file` since the last read.
async fn read_new(file: &mut LogFile) -> Vec<Vec<u8>> {
    let Ok(mut f) = tokio::fs::File::open(&file.path).await else {
        return Vec::new();
    };
    let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
    if len < file.offset {
        // Truncated: start again from its beginning.
        file.offset = 0;
        file.partial.clear();
    }
    if len == file.offset || f.seek(std::io::SeekFrom::Start(file.offset)).await.is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    let mut reader = BufReader::new(f);
    let Ok(n) = tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut buf).await else {
        return Vec::new();
    };
    file.offset += n as u64;
    let mut data = std::mem::take(&mut file.partial);
    data.extend_from_slice(&buf);
    let mut lines: Vec<Vec<u8>> = data.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    // What follows the last newline is an unfinished line (or nothing).
    file.partial = lines.pop().unwrap_or_default();
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(dir: &Path, options: LogOptions) -> Vec<(i32, String)> {
        let (tx, mut rx) = mpsc::channel(64);
        let found = process_logs(dir, "t1", &options, &tx).await.unwrap();
        assert!(found);
        drop(tx);
        let mut lines = Vec::new();
        while let Some(m) = rx.recv().await {
            lines.push((m.stream, String::from_utf8(m.data).unwrap()));
        }
        lines
    }

    #[tokio::test]
    async fn process_logs_tail_each_file_and_skip_partial_lines() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stdout.log"), "a\nb\nc\npart").unwrap();
        std::fs::write(dir.path().join("stderr.log"), "e1\ne2\n").unwrap();
        let all = collect(dir.path(), LogOptions::default()).await;
        let out = LogStream::Stdout as i32;
        let err = LogStream::Stderr as i32;
        assert_eq!(
            all,
            vec![
                (out, "a".into()),
                (out, "b".into()),
                (out, "c".into()),
                (err, "e1".into()),
                (err, "e2".into())
            ]
        );
        let tail = collect(
            dir.path(),
            LogOptions {
                tail: Some(1),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(tail, vec![(out, "c".into()), (err, "e2".into())]);
        let later = nanos(SystemTime::now() + Duration::from_secs(60));
        let since = collect(
            dir.path(),
            LogOptions {
                since_ns: later,
                ..Default::default()
            },
        )
        .await;
        assert!(since.is_empty(), "{since:?}");
    }

    #[tokio::test]
    async fn following_a_process_log_ends_with_the_task() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stdout.log"), "old\n").unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let path = dir.path().to_path_buf();
        let follower = tokio::spawn(async move {
            let options = LogOptions {
                follow: true,
                ..Default::default()
            };
            process_logs(&path, "t1", &options, &tx).await
        });
        assert_eq!(rx.recv().await.unwrap().data, b"old");
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("stdout.log"))
            .unwrap();
        write!(f, "new\nunfinished").unwrap();
        assert_eq!(rx.recv().await.unwrap().data, b"new");
        std::fs::write(dir.path().join("exit.json"), "{}").unwrap();
        assert_eq!(rx.recv().await.unwrap().data, b"unfinished");
        assert!(follower.await.unwrap().unwrap());
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_missing_task_directory_is_reported_as_gone() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, _rx) = mpsc::channel(1);
        let found = process_logs(&dir.path().join("nope"), "t1", &LogOptions::default(), &tx)
            .await
            .unwrap();
        assert!(!found);
    }
}
