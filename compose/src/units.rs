//! Compose's value syntaxes: durations (`1m30s`, `10s`, `500ms`), byte sizes
//! (`512M`, `1g`, `1073741824`), CPU counts (`"0.5"`) and shell-style command
//! strings. Each parser returns what it expected on failure, so the schema
//! layer can put it after the key path.

use std::time::Duration;

/// Parses a Go-style duration as Compose writes them: a sequence of
/// `<number><unit>` with units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`, and
/// fractions allowed (`1.5s`). A bare `0` is zero.
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

/// Parses a byte size: a plain integer of bytes, or a number with one of
/// `b`, `k`, `m`, `g`, `t`, `p` (binary multiples, any case, optionally
/// followed by `b` or `ib`: `512M`, `1g`, `1.5GiB`, `100kb`).
pub fn parse_memory(text: &str) -> Result<i64, String> {
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

/// Splits a command string the way a POSIX shell splits words (quotes and
/// backslashes), which is what Compose does with `command: a "b c"`. No
/// expansion happens: that is the container's or process's business.
pub fn split_command(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(unclosed(text, '\'')),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(unclosed(text, '"')),
                        },
                        Some(c) => word.push(c),
                        None => return Err(unclosed(text, '"')),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') | None => {}
                    Some(c) => word.push(c),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

fn unclosed(text: &str, quote: char) -> String {
    format!("expected a command line with balanced quotes, but a {quote} quote is never closed in {text:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1h2m3s").unwrap(), Duration::from_secs(3723));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in [
            "",
            "10",
            "s",
            "10x",
            "1m30",
            "-5s",
            "1..5s",
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
    fn memory() {
        assert_eq!(parse_memory("512M").unwrap(), 512 << 20);
        assert_eq!(parse_memory("1g").unwrap(), 1 << 30);
        assert_eq!(parse_memory("1073741824").unwrap(), 1 << 30);
        assert_eq!(parse_memory("100kb").unwrap(), 100 << 10);
        assert_eq!(parse_memory("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_memory("64 MB").unwrap(), 64 << 20);
        assert_eq!(parse_memory("20b").unwrap(), 20);
        for bad in ["", "M", "12x", "-1g", "1gg"] {
            assert!(
                parse_memory(bad)
                    .unwrap_err()
                    .starts_with("expected a byte size"),
                "{bad}"
            );
        }
        assert!(parse_memory("9999999p").unwrap_err().contains("too large"));
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
        assert!(split_command("echo 'oops")
            .unwrap_err()
            .contains("' quote is never closed"));
    }
}
