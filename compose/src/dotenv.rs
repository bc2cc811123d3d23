//! The `.env` / `env_file` format: `KEY=VALUE` lines, `#` comments, an
//! optional `export ` prefix, single-quoted values taken literally,
//! double-quoted values with `\n`-style escapes, and unquoted values trimmed
//! and cut at ` #`. Reading the files is left to the caller.

use std::collections::HashMap;

use crate::error::{ComposeError, Location};

/// Parses a dotenv text; `file` names it in errors. Later lines win over
/// earlier ones with the same key. A bare `KEY` line (no `=`) yields `None`:
/// Compose then takes the value from the environment, if set.
pub fn parse_dotenv(file: &str, text: &str) -> Result<Vec<(String, Option<String>)>, ComposeError> {
    // A later line with the same key replaces the earlier one and moves to
    // the end; a slot emptied through an index, not a scan of `out` per
    // line, so a file of many keys is read in linear time.
    let mut out: Vec<Option<(String, Option<String>)>> = Vec::new();
    let mut slots: HashMap<String, usize> = HashMap::new();
    let mut lines = text.lines().enumerate();
    while let Some((idx, raw)) = lines.next() {
        let line_no = idx + 1;
        let at = || Location {
            file: file.to_owned(),
            line: Some(line_no),
        };
        let line = raw.trim_start_matches('\u{feff}').trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim_start())),
            None => (line, None),
        };
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(ComposeError::EnvFile {
                at: at(),
                message: format!("expected KEY=VALUE with a name of letters, digits, `_`, `.` or `-`, got {raw:?}"),
            });
        }
        let value = match value {
            None => None,
            Some(v) if v.starts_with('\'') || v.starts_with('"') => {
                let quote = v.chars().next().unwrap_or('"');
                // A quoted value may run over several lines.
                let mut body = v[1..].to_owned();
                let mut scan = (0, false);
                let end = loop {
                    if let Some(end) = closing_quote(&body, quote, &mut scan) {
                        break end;
                    }
                    match lines.next() {
                        Some((_, more)) => {
                            body.push('\n');
                            body.push_str(more);
                        }
                        None => {
                            return Err(ComposeError::EnvFile {
                                at: at(),
                                message: format!(
                                    "value of {key} opens a {quote} quote that is never closed"
                                ),
                            })
                        }
                    }
                };
                let inner = &body[..end];
                Some(if quote == '"' {
                    unescape(inner)
                } else {
                    inner.to_owned()
                })
            }
            Some(v) => {
                let v = match v.find(" #") {
                    Some(cut) => &v[..cut],
                    None => v,
                };
                Some(v.trim_end().to_owned())
            }
        };
        if let Some(old) = slots.insert(key.to_owned(), out.len()) {
            out[old] = None;
        }
        out.push(Some((key.to_owned(), value)));
    }
    Ok(out.into_iter().flatten().collect())
}

/// The byte index of the quote closing `body`, scanning on from `scan`
/// (offset, inside an escape) and leaving it at the end when there is none
/// yet: a value spread over many lines is scanned once, not once per line.
fn closing_quote(body: &str, quote: char, scan: &mut (usize, bool)) -> Option<usize> {
    let (start, mut escaped) = *scan;
    for (i, c) in body[start..].char_indices() {
        if quote == '"' && c == '\\' && !escaped {
            escaped = true;
            continue;
        }
        if c == quote && !escaped {
            return Some(start + i);
        }
        escaped = false;
    }
    *scan = (body.len(), escaped);
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms() {
        let text = "# comment\n\nA=1\nexport B = two words  # trailing\nC='lit $X # not a comment'\nD=\"line\\nbreak\"\nE\nF=\nA=3\nG=\"multi\nline\"\n";
        let got = parse_dotenv(".env", text).unwrap();
        let want: Vec<(String, Option<String>)> = vec![
            ("B".into(), Some("two words".into())),
            ("C".into(), Some("lit $X # not a comment".into())),
            ("D".into(), Some("line\nbreak".into())),
            ("E".into(), None),
            ("F".into(), Some(String::new())),
            ("A".into(), Some("3".into())),
            ("G".into(), Some("multi\nline".into())),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let err = parse_dotenv("/p/.env", "A=1\nnot valid=2\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/p/.env:2: expected KEY=VALUE with a name of letters, digits, `_`, `.` or `-`, got \"not valid=2\""
        );
        let err = parse_dotenv(".env", "A=\"open\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            ".env:1: value of A opens a \" quote that is never closed"
        );
    }
}
