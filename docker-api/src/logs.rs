//! `/services/{id}/logs` and `/tasks/{id}/logs`: shoal's merged log stream
//! in Docker's framing.
//!
//! The body is stdcopy-multiplexed (an 8-byte header per frame: stream 1 for
//! stdout, 2 for stderr, then the length big-endian). Each line carries the
//! `details` the docker CLI needs to print its `web.1.abc@node1    | `
//! prefix: `com.docker.swarm.node.id=…,com.docker.swarm.service.id=…,
//! com.docker.swarm.task.id=…` before the text, after the timestamp when
//! timestamps are asked for.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures::StreamExt;
use shoal_proto::v1 as s;

use crate::api::{query_flag, Api, Query, State};
use crate::errors::{ApiError, ApiResult};
use crate::mapping::time::now_ns;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/services/:id/logs", get(service_logs))
        .route("/tasks/:id/logs", get(task_logs))
}

/// One stdcopy frame.
pub fn frame(stream: s::LogStream, payload: &[u8]) -> Bytes {
    let kind = if stream == s::LogStream::Stderr { 2 } else { 1 };
    let mut out = Vec::with_capacity(8 + payload.len());
    out.push(kind);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    Bytes::from(out)
}

/// Where a task ran: its node and service, for the details.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskPlace {
    pub node_id: String,
    pub service_id: String,
}

/// What was asked of the line format.
#[derive(Debug, Clone, Copy, Default)]
pub struct LineFormat {
    pub timestamps: bool,
    pub details: bool,
}

fn rfc3339_ns(ns: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns.max(0) as u64);
    humantime::format_rfc3339_nanos(at).to_string()
}

/// One log line as dockerd writes it: `[TIME ][DETAILS ]TEXT\n`.
pub fn line(format: LineFormat, place: &TaskPlace, task_id: &str, ns: i64, text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if format.timestamps {
        out.extend_from_slice(rfc3339_ns(ns).as_bytes());
        out.push(b' ');
    }
    if format.details {
        out.extend_from_slice(
            format!(
                "com.docker.swarm.node.id={},com.docker.swarm.service.id={},com.docker.swarm.task.id={} ",
                place.node_id, place.service_id, task_id
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(text);
    out.push(b'\n');
    out
}

/// Docker's `since`: Unix seconds with an optional fraction ("1700000000.5").
pub fn parse_since(text: &str) -> Result<i64, ApiError> {
    if text.is_empty() || text == "0" {
        return Ok(0);
    }
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = secs.parse().map_err(|_| {
        ApiError::bad_request(format!("invalid since {text:?}: expected Unix seconds"))
    })?;
    let mut nanos = 0i64;
    if !frac.is_empty() {
        let digits: String = frac.chars().take(9).collect();
        let parsed: i64 = digits
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid since {text:?}")))?;
        nanos = parsed * 10i64.pow(9 - digits.len() as u32);
    }
    Ok(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
}

fn parse_tail(text: Option<&str>) -> Result<Option<i64>, ApiError> {
    match text {
        None | Some("") | Some("all") => Ok(None),
        Some(n) => n.parse::<i64>().map(Some).map_err(|_| {
            ApiError::bad_request(format!("invalid tail {n:?}: expected a number or \"all\""))
        }),
    }
}

async fn service_logs(state: State, Path(id): Path<String>, query: Query) -> ApiResult<Response> {
    logs(&state, id, &query).await
}

async fn task_logs(state: State, Path(id): Path<String>, query: Query) -> ApiResult<Response> {
    let task = crate::tasks::find_task(&state, &id).await?;
    let id = task.task.map(|t| t.id).unwrap_or(id);
    logs(&state, id, &query).await
}

async fn logs(state: &Api, target: String, query: &HashMap<String, String>) -> ApiResult<Response> {
    let stdout = query_flag(query, "stdout");
    let stderr = query_flag(query, "stderr");
    if !stdout && !stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let format = LineFormat {
        timestamps: query_flag(query, "timestamps"),
        details: query_flag(query, "details"),
    };
    let options = s::LogOptions {
        follow: query_flag(query, "follow"),
        tail: parse_tail(query.get("tail").map(String::as_str))?,
        since_ns: parse_since(query.get("since").map(String::as_str).unwrap_or(""))?,
    };
    if options.since_ns > now_ns() {
        return Err(ApiError::bad_request("since is in the future"));
    }
    // Node and service of every task, for the details the CLI parses.
    let places: HashMap<String, TaskPlace> = state
        .backend
        .control()
        .list_tasks(s::ListTasksRequest::default())
        .await?
        .into_inner()
        .tasks
        .into_iter()
        .filter_map(|t| t.task)
        .map(|t| {
            (
                t.id.clone(),
                TaskPlace {
                    node_id: t.node_id,
                    service_id: t.service_id,
                },
            )
        })
        .collect();
    let stream = state
        .backend
        .logs()
        .service_logs(s::ServiceLogsRequest {
            target,
            options: Some(options),
        })
        .await?
        .into_inner();
    let body = stream.filter_map(move |message| {
        let out = match message {
            Err(status) => {
                tracing::warn!(error = %status.message(), "docker API: log stream ended");
                None
            }
            Ok(m) => {
                let place = places.get(&m.task_id).cloned().unwrap_or_default();
                let (kind, text) = if !m.error.is_empty() {
                    (
                        s::LogStream::Stderr,
                        format!("shoal: {}", m.error).into_bytes(),
                    )
                } else {
                    (m.stream(), m.data.clone())
                };
                let wanted = if kind == s::LogStream::Stderr {
                    stderr
                } else {
                    stdout
                };
                (wanted && !m.task_id.is_empty()).then(|| {
                    Ok::<_, std::io::Error>(frame(
                        kind,
                        &line(format, &place, &m.task_id, m.timestamp_ns, &text),
                    ))
                })
            }
        };
        futures::future::ready(out)
    });
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/vnd.docker.multiplexed-stream",
        )],
        Body::from_stream(body),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_stdcopy() {
        let f = frame(s::LogStream::Stderr, b"hi\n");
        assert_eq!(&f[..], &[2, 0, 0, 0, 0, 0, 0, 3, b'h', b'i', b'\n']);
        assert_eq!(frame(s::LogStream::Stdout, b"")[0], 1);
    }

    #[test]
    fn lines_carry_the_details_the_cli_parses() {
        let place = TaskPlace {
            node_id: "n1".into(),
            service_id: "s1".into(),
        };
        let plain = line(
            LineFormat {
                timestamps: false,
                details: true,
            },
            &place,
            "t1",
            0,
            b"hello world",
        );
        assert_eq!(
            String::from_utf8(plain).unwrap(),
            "com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s1,com.docker.swarm.task.id=t1 hello world\n"
        );
        let timed = line(
            LineFormat {
                timestamps: true,
                details: false,
            },
            &place,
            "t1",
            1_000_000_000,
            b"x",
        );
        assert_eq!(
            String::from_utf8(timed).unwrap(),
            "1970-01-01T00:00:01.000000000Z x\n"
        );
    }

    #[test]
    fn since_is_unix_seconds_with_a_fraction() {
        assert_eq!(parse_since("").unwrap(), 0);
        assert_eq!(parse_since("12").unwrap(), 12_000_000_000);
        assert_eq!(parse_since("12.5").unwrap(), 12_500_000_000);
        assert_eq!(parse_since("12.000000001").unwrap(), 12_000_000_001);
        assert!(parse_since("soon").is_err());
    }
}
