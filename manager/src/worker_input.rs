//! Bounds on what a node may write into the Raft log about itself. A worker
//! holds a valid certificate but is not trusted with the managers' memory:
//! its session description and task statuses are replicated to every
//! manager and kept in every snapshot, so they are checked here before they
//! are proposed. Descriptions a real agent never sends are refused; free
//! text a real agent may produce at length (an engine's error message) is
//! cut to a bound instead, so that a task's failure is still recorded.

use shoal_proto::v1::{NodeDescription, TaskStatus};

/// Longest hostname a node may report (DNS's limit).
pub const MAX_HOSTNAME_BYTES: usize = 253;
/// Longest short field of a description (OS, architecture, engine version, runtime).
pub const MAX_FIELD_BYTES: usize = 128;
/// Runtimes a node may report.
pub const MAX_RUNTIMES: usize = 16;
/// Status updates in one report (an agent reports at most its own tasks).
pub const MAX_UPDATES_PER_REPORT: usize = 10_000;
/// Longest task status message or error kept; the rest is cut.
pub const MAX_STATUS_TEXT_BYTES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkerInputError {
    #[error("node description refused: {field} is {len} bytes, at most {max} allowed")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("node description refused: {count} runtimes reported, at most {max} allowed")]
    TooManyRuntimes { count: usize, max: usize },
    #[error("node description refused: {field} contains control characters")]
    ControlCharacters { field: &'static str },
    #[error("status report refused: {count} updates in one report, at most {max} allowed")]
    TooManyUpdates { count: usize, max: usize },
}

impl From<WorkerInputError> for tonic::Status {
    fn from(error: WorkerInputError) -> Self {
        tonic::Status::invalid_argument(error.to_string())
    }
}

/// Checks one short text field: its length and no control characters.
pub fn check_field(field: &'static str, value: &str, max: usize) -> Result<(), WorkerInputError> {
    if value.len() > max {
        return Err(WorkerInputError::TooLong {
            field,
            len: value.len(),
            max,
        });
    }
    if value.chars().any(char::is_control) {
        return Err(WorkerInputError::ControlCharacters { field });
    }
    Ok(())
}

/// Checks a session's node description.
pub fn check_description(description: &NodeDescription) -> Result<(), WorkerInputError> {
    check_field("hostname", &description.hostname, MAX_HOSTNAME_BYTES)?;
    check_field(
        "engine version",
        &description.engine_version,
        MAX_FIELD_BYTES,
    )?;
    if let Some(platform) = &description.platform {
        check_field("platform OS", &platform.os, MAX_FIELD_BYTES)?;
        check_field(
            "platform architecture",
            &platform.architecture,
            MAX_FIELD_BYTES,
        )?;
    }
    if description.runtimes.len() > MAX_RUNTIMES {
        return Err(WorkerInputError::TooManyRuntimes {
            count: description.runtimes.len(),
            max: MAX_RUNTIMES,
        });
    }
    for runtime in &description.runtimes {
        check_field("runtime", runtime, MAX_FIELD_BYTES)?;
    }
    if let Some(mounts) = &description.mounts {
        check_field(
            "mount capability reason",
            &mounts.reason,
            MAX_STATUS_TEXT_BYTES,
        )?;
    }
    Ok(())
}

/// Checks the size of a status report and cuts each status's free text.
pub fn bound_statuses(
    mut updates: Vec<(String, TaskStatus)>,
) -> Result<Vec<(String, TaskStatus)>, WorkerInputError> {
    if updates.len() > MAX_UPDATES_PER_REPORT {
        return Err(WorkerInputError::TooManyUpdates {
            count: updates.len(),
            max: MAX_UPDATES_PER_REPORT,
        });
    }
    for (_, status) in &mut updates {
        cut(&mut status.message, MAX_STATUS_TEXT_BYTES);
        cut(&mut status.err, MAX_STATUS_TEXT_BYTES);
    }
    Ok(updates)
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
fn cut(text: &mut String, max: usize) {
    const MARK: &str = " …(cut)";
    if text.len() <= max {
        return;
    }
    let mut end = max - MARK.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(MARK);
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::v1::Platform;

    fn description() -> NodeDescription {
        NodeDescription {
            hostname: "worker-1".into(),
            platform: Some(Platform {
                os: "linux".into(),
                architecture: "x86_64".into(),
            }),
            runtimes: vec!["process".into(), "docker".into()],
            engine_version: "20.10.24".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_real_agents_description_passes() {
        assert_eq!(check_description(&description()), Ok(()));
    }

    #[test]
    fn oversized_or_odd_descriptions_are_refused_naming_the_field() {
        let mut long = description();
        long.hostname = "a".repeat(10_000);
        let error = check_description(&long).unwrap_err();
        assert!(
            error.to_string().contains("hostname is 10000 bytes"),
            "{error}"
        );

        let mut many = description();
        many.runtimes = vec!["x".into(); 1000];
        assert!(matches!(
            check_description(&many),
            Err(WorkerInputError::TooManyRuntimes { count: 1000, .. })
        ));

        let mut control = description();
        control.hostname = "evil\u{1b}[2J".into();
        assert_eq!(
            check_description(&control),
            Err(WorkerInputError::ControlCharacters { field: "hostname" })
        );
    }

    #[test]
    fn status_text_is_cut_on_a_character_boundary_and_counts_are_bounded() {
        let status = TaskStatus {
            err: "é".repeat(10_000),
            message: "started".into(),
            ..Default::default()
        };
        let bounded = bound_statuses(vec![("t".into(), status)]).unwrap();
        assert!(bounded[0].1.err.len() <= MAX_STATUS_TEXT_BYTES);
        assert!(bounded[0].1.err.ends_with("(cut)"));
        assert_eq!(bounded[0].1.message, "started");

        let too_many = vec![("t".to_string(), TaskStatus::default()); MAX_UPDATES_PER_REPORT + 1];
        assert!(matches!(
            bound_statuses(too_many),
            Err(WorkerInputError::TooManyUpdates { .. })
        ));
    }
}
