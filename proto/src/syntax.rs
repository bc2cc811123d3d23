//! The one parser of each value syntax an operator writes, whichever way it
//! reaches shoal: clap flags (`swarm init --dispatcher-heartbeat 1.5s`),
//! service flags (`service create --restart-delay 1m30s --limit-memory 512M`),
//! and Compose files (`stop_grace_period: 10s`, `command: sh -c 'x'`); and the
//! name rules that the CLI checks early and the managers enforce.
//!
//! - durations: Go's `time.ParseDuration`, as Docker takes them everywhere
//!   (`1m30s`, `1.5s`, `500ms`, `250us`; a bare `0`);
//! - byte sizes: Docker's `RAMInBytes` (`512M`, `1g`, `1.5GiB`, plain bytes);
//! - CPU counts: `0.5` → nano-CPUs, the unit of the spec's fields;
//! - command strings: POSIX shell word splitting through `shlex` (quotes and
//!   backslashes; no expansion, and `#` starting a word begins a comment, as
//!   in a shell);
//! - service and stack names.
//!
//! It lives in `shoal-proto` because this is the one crate the CLI, the
//! managers and the Compose loader all depend on, and the values parsed here
//! are the units of proto's fields (milliseconds, bytes, nano-CPUs). Each
//! parser returns, on failure, what it expected, so the caller puts the flag
//! or key path in front.

use std::time::Duration;

/// Parses a Go-style duration: a sequence of `<number><unit>` with units
/// `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`, fractions allowed (`1.5s`). A bare
/// `0` is zero; negative durations are refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected = || format!("expected a duration like 1m30s, 10s or 500ms, got {text:?}");
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(expected());
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..num_len].parse().map_err(|_| expected())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(expected()),
        };
        rest = &rest[unit_len..];
        total += number * nanos_per;
    }
    // Ten thousand years is past any sensible timeout and far inside u64.
    if !total.is_finite() || total > 3.2e20 {
        return Err(expected());
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

/// [`parse_duration`] in whole milliseconds, the unit of the spec's fields.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    parse_duration(text).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Parses a byte size: a plain integer of bytes, or a number with one of
/// `b`, `k`, `m`, `g`, `t`, `p` (binary multiples, any case, optionally
/// followed by `b` or `ib`: `512M`, `1g`, `1.5GiB`, `100kb`).
pub fn parse_byte_size(text: &str) -> Result<i64, String> {
    let expected = || format!("expected a byte size like 512M, 1g or 1073741824, got {text:?}");
    let s = text.trim().to_ascii_lowercase();
    let num_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let number: f64 = s[..num_len].parse().map_err(|_| expected())?;
    let unit = s[num_len..].trim_start();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b').filter(|u| !u.is_empty()))
        .unwrap_or(unit);
    let multiplier: f64 = match unit {
        "" | "b" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0f64.powi(4),
        "p" => 1024.0f64.powi(5),
        _ => return Err(expected()),
    };
    let bytes = (number * multiplier).round();
    if !bytes.is_finite() || bytes > i64::MAX as f64 {
        return Err(format!("byte size {text:?} is too large"));
    }
    Ok(bytes as i64)
}

/// Parses a CPU count (`0.5`, `"2"`) into nano-CPUs, the unit Swarm uses.
pub fn parse_cpus(text: &str) -> Result<i64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("expected a number of CPUs like 0.5 or 2, got {text:?}"))?;
    if value > 1e9 {
        return Err(format!("{text:?} CPUs is too many"));
    }
    Ok((value * 1e9).round() as i64)
}

/// Splits a command string into words as a POSIX shell would (`shlex`):
/// `sh -c 'echo "hi"'` is three words. No expansion happens: that is the
/// container's or process's business.
pub fn split_command(text: &str) -> Result<Vec<String>, String> {
    shlex::split(text)
        .ok_or_else(|| "unbalanced quotes or a trailing backslash: close every quote".to_owned())
}

/// The longest service name: service names become DNS labels.
pub const MAX_SERVICE_NAME: usize = 63;

/// Service names as Docker accepts them: 1-63 letters, digits, '-' and '_',
/// starting and ending with a letter or digit (they become DNS names).
pub fn validate_service_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_SERVICE_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid service name {name:?}: use 1-63 letters, digits, '-' and '_', \
             starting and ending with a letter or digit"
        ))
    }
}

/// `STACK_NAME`, Docker's scoping of a stack's objects.
pub fn scoped(stack: &str, name: &str) -> String {
    format!("{stack}_{name}")
}

/// Whether `name` can name a stack: checked the way the names it produces
/// are, so it is exactly "`STACK_x` is a valid service name" (letters,
/// digits, '-' and '_', starting with a letter or digit, at most 61).
pub fn is_valid_stack_name(name: &str) -> bool {
    !name.is_empty() && validate_service_name(&scoped(name, "x")).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1h2m3s").unwrap(), Duration::from_secs(3723));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("250µs").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration_ms("2160h").unwrap(), 2160 * 3600 * 1000);
        for bad in [
            "",
            "10",
            "s",
            "10x",
            "1m30",
            "-5s",
            "1..5s",
            "5 seconds",
            "9999999999999h",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(
                err.starts_with("expected a duration like 1m30s"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_byte_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_byte_size("1073741824").unwrap(), 1 << 30);
        assert_eq!(parse_byte_size("100kb").unwrap(), 100 << 10);
        assert_eq!(parse_byte_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_byte_size("64 MB").unwrap(), 64 << 20);
        assert_eq!(parse_byte_size("20b").unwrap(), 20);
        for bad in ["", "M", "12x", "-1g", "1gg"] {
            assert!(
                parse_byte_size(bad)
                    .unwrap_err()
                    .starts_with("expected a byte size"),
                "{bad}"
            );
        }
        assert!(parse_byte_size("9999999p")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("0.5").unwrap(), 500_000_000);
        assert_eq!(parse_cpus("2").unwrap(), 2_000_000_000);
        assert_eq!(parse_cpus("0.001").unwrap(), 1_000_000);
        for bad in ["", "half", "-1", "NaN", "inf"] {
            assert!(
                parse_cpus(bad)
                    .unwrap_err()
                    .starts_with("expected a number of CPUs"),
                "{bad}"
            );
        }
    }

    #[test]
    fn command_splitting() {
        assert_eq!(
            split_command(r#"python3 manage.py runserver 0.0.0.0:8000"#).unwrap(),
            ["python3", "manage.py", "runserver", "0.0.0.0:8000"]
        );
        assert_eq!(
            split_command(r#"sh -c 'echo "hi there"' "a \"b\"" c\ d '' "#).unwrap(),
            ["sh", "-c", "echo \"hi there\"", "a \"b\"", "c d", ""]
        );
        for bad in ["echo 'oops", "echo \"oops", "echo oops\\"] {
            assert!(split_command(bad)
                .unwrap_err()
                .starts_with("unbalanced quotes"));
        }
    }

    #[test]
    fn names() {
        for good in ["web", "a", "web-1", "my_app2", &"a".repeat(63)] {
            assert!(validate_service_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-web", "web-", "web.1", "we b", &"a".repeat(64)] {
            let err = validate_service_name(bad).unwrap_err();
            assert!(err.starts_with("invalid service name"), "{bad}: {err}");
        }
        for good in ["app", "my-app_", "a1", &"s".repeat(61)] {
            assert!(is_valid_stack_name(good), "{good}");
        }
        for bad in ["", "-app", "_app", "my.app", "my app", &"s".repeat(62)] {
            assert!(!is_valid_stack_name(bad), "{bad}");
        }
    }

    /// A duration as Go's `Duration.String` writes it (`1h2m3.5s`).
    fn go_format(d: Duration) -> String {
        let secs = d.as_secs();
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        format!("{h}h{m}m{s}.{:09}s", d.subsec_nanos())
    }

    proptest! {
        #[test]
        fn durations_round_trip_as_go_writes_them(nanos in 0u64..(400 * 24 * 3600 * 1_000_000_000)) {
            let d = Duration::from_nanos(nanos);
            // An f64 keeps ~15-16 significant digits: exact to the
            // microsecond over a year, which is finer than any field.
            let parsed = parse_duration(&go_format(d)).unwrap();
            prop_assert!(parsed.abs_diff(d) < Duration::from_micros(1), "{d:?} → {parsed:?}");
        }

        #[test]
        fn whole_units_are_exact(n in 0u64..1_000_000, unit in 0usize..6) {
            let (suffix, per) = [("ns", 1u64), ("us", 1_000), ("ms", 1_000_000),
                ("s", 1_000_000_000), ("m", 60_000_000_000), ("h", 3_600_000_000_000)][unit];
            prop_assert_eq!(parse_duration(&format!("{n}{suffix}")).unwrap(),
                Duration::from_nanos(n * per));
        }

        #[test]
        fn parsers_never_panic(text in "\\PC{0,24}") {
            let _ = parse_duration(&text);
            let _ = parse_byte_size(&text);
            let _ = parse_cpus(&text);
            let _ = split_command(&text);
            let _ = validate_service_name(&text);
        }

        #[test]
        fn byte_sizes_multiply(n in 0i64..1_000_000, unit in 0usize..5, suffix in 0usize..3) {
            let (letter, shift) = [("", 0), ("k", 10), ("M", 20), ("g", 30), ("T", 40)][unit];
            let suffix = if letter.is_empty() { "" } else { ["", "b", "iB"][suffix] };
            prop_assert_eq!(parse_byte_size(&format!("{n}{letter}{suffix}")).unwrap(), n << shift);
        }

        #[test]
        fn quoted_words_split_back(words in proptest::collection::vec("[^\\x00]{0,12}", 0..6)) {
            let line = shlex::try_join(words.iter().map(String::as_str)).unwrap();
            prop_assert_eq!(split_command(&line).unwrap(), words);
        }

        #[test]
        fn a_valid_stack_scopes_valid_service_names(
            stack in "[a-zA-Z0-9][a-zA-Z0-9_-]{0,30}",
            service in "[a-zA-Z0-9]([a-zA-Z0-9_-]{0,29}[a-zA-Z0-9])?",
        ) {
            prop_assert!(is_valid_stack_name(&stack));
            prop_assert!(validate_service_name(&scoped(&stack, &service)).is_ok());
        }
    }
}
