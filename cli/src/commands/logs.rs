//! `shoal service logs` and `shoal service exec`: streaming calls to the
//! daemon's `Logs` service, printed as Docker prints them.
//!
//! Each log line is prefixed with its task, `web.1.lx5n7hbrtqor@node1 | `,
//! the prefix padded to the widest one printed so far (stable once every task
//! has spoken; Docker pads to the widest task of the service). stdout lines
//! go to stdout and stderr lines to stderr. `exec` copies the command's
//! output and exits with its exit code.

use std::io::Write;
use std::time::{Duration, SystemTime};

use shoal_proto::v1::logs_client::LogsClient;
use shoal_proto::v1::{ExecRequest, LogMessage, LogOptions, LogStream, ServiceLogsRequest};
use tonic::transport::Channel;

use crate::args::{ServiceExecArgs, ServiceLogsArgs};

pub async fn logs(channel: Channel, args: ServiceLogsArgs) -> anyhow::Result<()> {
    let options = LogOptions {
        follow: args.follow,
        tail: parse_tail(&args.tail)?,
        since_ns: match args.since.as_deref() {
            Some(since) => parse_since(since, SystemTime::now())?,
            None => 0,
        },
    };
    let mut stream = LogsClient::new(channel)
        .service_logs(ServiceLogsRequest {
            target: args.target.clone(),
            options: Some(options),
        })
        .await?
        .into_inner();
    let mut width = 0;
    let mut errors = 0;
    while let Some(message) = stream.message().await? {
        if !message.error.is_empty() {
            errors += 1;
            let prefix = prefix(&message, args.no_trunc);
            if message.task_id.is_empty() {
                eprintln!("error: {}", message.error);
            } else {
                eprintln!("error: {prefix}: {}", message.error);
            }
            continue;
        }
        let line = format_line(&message, args.no_trunc, args.timestamps, &mut width);
        // A closed pipe (`| head`) ends the command quietly.
        let written = if message.stream() == LogStream::Stderr {
            std::io::stderr().write_all(&line)
        } else {
            std::io::stdout().write_all(&line)
        };
        if written.is_err() {
            return Ok(());
        }
    }
    let _ = std::io::stdout().flush();
    if errors > 0 {
        anyhow::bail!("some logs could not be read (see the errors above)");
    }
    Ok(())
}

pub async fn exec(channel: Channel, args: ServiceExecArgs) -> anyhow::Result<()> {
    let mut stream = LogsClient::new(channel)
        .exec(ExecRequest {
            task: args.task,
            command: args.command,
        })
        .await?
        .into_inner();
    while let Some(output) = stream.message().await? {
        if !output.error.is_empty() {
            anyhow::bail!("{}", output.error);
        }
        if !output.data.is_empty() {
            if output.stream() == LogStream::Stderr {
                let mut err = std::io::stderr();
                let _ = err.write_all(&output.data);
                let _ = err.flush();
            } else {
                let mut out = std::io::stdout();
                let _ = out.write_all(&output.data);
                let _ = out.flush();
            }
        }
        if output.exited {
            // The command's exit code is ours, as with `docker exec`.
            std::process::exit(output.exit_code);
        }
    }
    anyhow::bail!("the command's output ended without its exit code")
}

/// `web.1.lx5n7hbrtqor@node1` (task IDs cut to 12 characters unless
/// `no_trunc`, as Docker's).
fn prefix(message: &LogMessage, no_trunc: bool) -> String {
    let id = if no_trunc {
        &message.task_id[..]
    } else {
        &message.task_id[..message.task_id.len().min(12)]
    };
    format!("{}.{}@{}", message.task_name, id, message.node)
}

/// One printed line, newline included; widens `width` to this prefix.
fn format_line(
    message: &LogMessage,
    no_trunc: bool,
    timestamps: bool,
    width: &mut usize,
) -> Vec<u8> {
    let prefix = prefix(message, no_trunc);
    *width = (*width).max(prefix.len());
    let mut line = Vec::with_capacity(message.data.len() + prefix.len() + 40);
    if timestamps {
        let time =
            SystemTime::UNIX_EPOCH + Duration::from_nanos(message.timestamp_ns.max(0) as u64);
        line.extend_from_slice(humantime::format_rfc3339_nanos(time).to_string().as_bytes());
        line.push(b' ');
    }
    line.extend_from_slice(format!("{prefix:<w$}    | ", w = *width).as_bytes());
    line.extend_from_slice(&message.data);
    line.push(b'\n');
    line
}

/// `--tail`: a number of lines, or "all".
fn parse_tail(text: &str) -> anyhow::Result<Option<i64>> {
    if text == "all" {
        return Ok(None);
    }
    match text.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(Some(n)),
        _ => {
            anyhow::bail!("invalid --tail {text:?}: give a number of lines (0 or more) or \"all\"")
        }
    }
}

/// `--since`: a duration before `now` (`10m`, `1h30m`), an RFC 3339 time,
/// or Unix seconds; in nanoseconds since the epoch.
fn parse_since(text: &str, now: SystemTime) -> anyhow::Result<i64> {
    let nanos = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0)
    };
    // As Docker's `GetTimestamp`: a bare "0" is Unix time 0, not "now".
    let duration = (text != "0").then(|| shoal_proto::syntax::parse_duration(text));
    if let Some(Ok(duration)) = duration {
        return Ok(nanos(
            now.checked_sub(duration).unwrap_or(SystemTime::UNIX_EPOCH),
        ));
    }
    if let Ok(time) = humantime::parse_rfc3339_weak(text) {
        return Ok(nanos(time));
    }
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds >= 0.0 {
            return Ok((seconds * 1e9) as i64);
        }
    }
    anyhow::bail!(
        "invalid --since {text:?}: give a duration (10m, 1h30m), an RFC 3339 time \
         (2024-05-01T12:00:00Z) or Unix seconds"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_times_and_unix_seconds() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        assert_eq!(parse_since("10m", now).unwrap(), 9_400 * 1_000_000_000);
        assert_eq!(
            parse_since("1970-01-01T00:00:10Z", now).unwrap(),
            10 * 1_000_000_000
        );
        assert_eq!(parse_since("12.5", now).unwrap(), 12_500_000_000);
        assert_eq!(parse_since("1m30s", now).unwrap(), 9_910 * 1_000_000_000);
        assert_eq!(parse_since("0", now).unwrap(), 0);
        assert!(parse_since("yesterday", now).is_err());
    }

    #[test]
    fn tail_is_a_count_or_all() {
        assert_eq!(parse_tail("all").unwrap(), None);
        assert_eq!(parse_tail("0").unwrap(), Some(0));
        assert!(parse_tail("-1").is_err());
        assert!(parse_tail("ten").is_err());
    }

    #[test]
    fn lines_carry_a_padded_task_prefix() {
        let message = LogMessage {
            task_id: "lx5n7hbrtqorabcdefghijklm".into(),
            task_name: "web.1".into(),
            node: "node1".into(),
            data: b"hello".to_vec(),
            timestamp_ns: 1_000_000_001,
            ..Default::default()
        };
        let mut width = 30;
        let line = format_line(&message, false, false, &mut width);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "web.1.lx5n7hbrtqor@node1          | hello\n"
        );
        let mut width = 0;
        let line = format_line(&message, true, true, &mut width);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "1970-01-01T00:00:01.000000001Z web.1.lx5n7hbrtqorabcdefghijklm@node1    | hello\n"
        );
    }
}
