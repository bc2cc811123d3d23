//! Printing: aligned tables, JSON lines, times.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Prints rows as a table with Docker's spacing (columns padded, 3 spaces apart).
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    print!("{}", render_table(headers, rows));
}

pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{:width$}   ", cell, width = widths[i]));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// RFC 3339 time from Unix milliseconds.
/// Why a node's certificate (as recorded in its `NodeCertificate`) needs an
/// operator's attention now, if it does.
pub fn certificate_warning(
    certificate: Option<&shoal_proto::v1::NodeCertificate>,
) -> Option<String> {
    let certificate = certificate.filter(|c| c.not_after_ms > 0)?;
    let at = |ms: i64| UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    let validity = shoal_security::renewal::Validity {
        not_before: at(certificate.not_before_ms),
        not_after: at(certificate.not_after_ms),
    };
    shoal_security::renewal::expiry_warning(&validity, std::time::SystemTime::now())
}

pub fn rfc3339(ms: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

/// "5 seconds ago", as Docker words ages.
pub fn ago(ms: i64, now: SystemTime) -> String {
    let then = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    let secs = now.duration_since(then).unwrap_or_default().as_secs();
    let (n, unit) = match secs {
        0 => return "Less than a second ago".into(),
        1..=59 => (secs, "second"),
        60..=3599 => (secs / 60, "minute"),
        3600..=86399 => (secs / 3600, "hour"),
        _ => (secs / 86400, "day"),
    };
    if n == 1 {
        format!("1 {unit} ago")
    } else {
        format!("{n} {unit}s ago")
    }
}

/// How long ago, in Docker's words (go-units' `HumanDuration`): "Less than
/// a second", "About a minute", "3 hours"; the CLI lower-cases it in task
/// states ("Running about a minute ago").
pub fn docker_duration(ms: i64, now: SystemTime) -> String {
    let then = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    let elapsed = now.duration_since(then).unwrap_or_default();
    let seconds = elapsed.as_secs();
    let minutes = seconds / 60;
    // Go rounds hours to the nearest one here.
    let hours = (elapsed.as_secs_f64() / 3600.0 + 0.5) as u64;
    match () {
        _ if seconds < 1 => "Less than a second".into(),
        _ if seconds == 1 => "1 second".into(),
        _ if seconds < 60 => format!("{seconds} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", seconds / 3600 / 24 / 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_columns() {
        let out = render_table(&["ID", "NAME"], &[vec!["abc".into(), "x".into()]]);
        assert_eq!(out, "ID    NAME\nabc   x\n");
    }

    #[test]
    fn ages_read_like_docker() {
        let now = UNIX_EPOCH + Duration::from_secs(10_000);
        assert_eq!(ago(9_995_000, now), "5 seconds ago");
        assert_eq!(ago(9_940_000, now), "1 minute ago");
        assert_eq!(ago(10_000_000, now), "Less than a second ago");
    }

    #[test]
    fn durations_read_like_dockers() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let before = |secs: i64| docker_duration((1_000_000 - secs) * 1000, now);
        assert_eq!(before(0), "Less than a second");
        assert_eq!(before(1), "1 second");
        assert_eq!(before(59), "59 seconds");
        assert_eq!(before(90), "About a minute");
        assert_eq!(before(59 * 60), "59 minutes");
        assert_eq!(before(3600), "About an hour");
        assert_eq!(before(5 * 3600), "5 hours");
        assert_eq!(before(3 * 86400), "3 days");
    }
}
