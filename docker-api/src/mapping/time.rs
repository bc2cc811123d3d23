//! Docker's clock formats: RFC 3339 timestamps with nanoseconds and
//! durations in nanoseconds; shoal keeps Unix milliseconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A Unix-milliseconds time as Docker writes it. Zero (unknown) is Go's
/// zero time, which the CLI parses and shows as "unknown".
pub fn timestamp(ms: i64) -> String {
    if ms <= 0 {
        return "0001-01-01T00:00:00Z".to_string();
    }
    let at = UNIX_EPOCH + Duration::from_millis(ms as u64);
    // Go's RFC3339Nano drops trailing zeros of the fraction; writing it the
    // same way makes what the CLI re-encodes (`{{json .}}`) equal ours.
    let text = humantime::format_rfc3339_nanos(at).to_string();
    match text.strip_suffix('Z').and_then(|t| t.split_once('.')) {
        Some((seconds, fraction)) => {
            let fraction = fraction.trim_end_matches('0');
            if fraction.is_empty() {
                format!("{seconds}Z")
            } else {
                format!("{seconds}.{fraction}Z")
            }
        }
        None => text,
    }
}

/// Nanoseconds since the epoch, for `since` in log requests.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

pub fn ms_to_ns(ms: u64) -> i64 {
    (ms as i64).saturating_mul(1_000_000)
}

/// A Docker duration (ns) in shoal's milliseconds; negative is refused.
pub fn ns_to_ms(ns: i64, field: &str) -> Result<u64, String> {
    if ns < 0 {
        return Err(format!("{field} must not be negative (got {ns}ns)"));
    }
    Ok((ns / 1_000_000) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(timestamp(0), "0001-01-01T00:00:00Z");
        assert_eq!(timestamp(1_000), "1970-01-01T00:00:01Z");
        assert_eq!(timestamp(1_120), "1970-01-01T00:00:01.12Z");
    }

    #[test]
    fn durations_convert_both_ways() {
        assert_eq!(ms_to_ns(1_500), 1_500_000_000);
        assert_eq!(ns_to_ms(1_500_000_000, "x").unwrap(), 1_500);
        assert!(ns_to_ms(-1, "Delay").unwrap_err().contains("Delay"));
    }
}
