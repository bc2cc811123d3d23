//! Variable interpolation: `$VAR`, `${VAR}`, `${VAR:-default}`,
//! `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`,
//! `${VAR+alt}` and `$$` for a literal `$`, applied to every scalar value
//! (never to keys) of a parsed file, as Compose does before merging files.
//!
//! Where the variables come from (the caller's environment, then `.env`) is
//! decided by [`crate::load`]; this module only substitutes.

use std::collections::HashMap;

use crate::error::ComposeError;
use crate::limits::{mib, MAX_EXPANDED_BYTES, MAX_INTERPOLATION_DEPTH};
use crate::yaml::{Node, Value};

/// Why one string could not be interpolated; the caller adds file, line and
/// key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InterpolationError(pub String);

/// Substitutes variables in `text`; an unset variable without a default
/// becomes the empty string, as in Compose.
#[cfg(test)]
pub(crate) fn interpolate(
    text: &str,
    vars: &HashMap<String, String>,
) -> Result<String, InterpolationError> {
    expand(text, vars, 0, MAX_EXPANDED_BYTES)
}

/// Interpolates `text` at nesting `depth` (0 for a whole scalar), giving
/// up once the result passes `max_len` bytes: `${A}${A}…` with a large `A`
/// must fail before it is built, not after.
fn expand(
    text: &str,
    vars: &HashMap<String, String>,
    depth: usize,
    max_len: usize,
) -> Result<String, InterpolationError> {
    if depth > MAX_INTERPOLATION_DEPTH {
        return Err(InterpolationError(format!(
            "`${{…}}` defaults nested more than {MAX_INTERPOLATION_DEPTH} levels deep, the most shoal substitutes"
        )));
    }
    if !text.contains('$') {
        return bounded(text.to_owned(), max_len);
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '$' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('$') => {
                out.push('$');
                i += 2;
            }
            Some('{') => {
                let close = matching_brace(&chars, i + 1).ok_or_else(|| {
                    InterpolationError(format!(
                        "invalid interpolation format in {text:?}: `${{` without a closing `}}`; write `$$` for a literal `$`"
                    ))
                })?;
                let inner: String = chars[i + 2..close].iter().collect();
                let room = max_len.saturating_sub(out.len());
                out.push_str(&braced(&inner, text, vars, depth, room)?);
                i = close + 1;
            }
            Some(c) if is_name_start(*c) => {
                let mut end = i + 1;
                while end < chars.len() && is_name_char(chars[end]) {
                    end += 1;
                }
                let name: String = chars[i + 1..end].iter().collect();
                out.push_str(vars.get(&name).map(String::as_str).unwrap_or(""));
                i = end;
            }
            _ => {
                return Err(InterpolationError(format!(
                    "invalid interpolation format in {text:?}: a `$` must start a variable (`$VAR`, `${{VAR}}`); write `$$` for a literal `$`"
                )))
            }
        }
        if out.len() > max_len {
            return bounded(out, max_len);
        }
    }
    bounded(out, max_len)
}

fn bounded(out: String, max_len: usize) -> Result<String, InterpolationError> {
    if out.len() > max_len {
        return Err(InterpolationError(format!(
            "variables expand the file to more than {} of text, the most shoal loads",
            mib(MAX_EXPANDED_BYTES)
        )));
    }
    Ok(out)
}

/// Index of the `}` closing the `{` at `open`, counting nested `${…}`.
fn matching_brace(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (j, c) in chars.iter().enumerate().skip(open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The inside of `${…}`.
fn braced(
    inner: &str,
    whole: &str,
    vars: &HashMap<String, String>,
    depth: usize,
    max_len: usize,
) -> Result<String, InterpolationError> {
    let name_len = inner
        .char_indices()
        .find(|&(idx, c)| {
            if idx == 0 {
                !is_name_start(c)
            } else {
                !is_name_char(c)
            }
        })
        .map_or(inner.len(), |(idx, _)| idx);
    let name = &inner[..name_len];
    let rest = &inner[name_len..];
    if name.is_empty() {
        return Err(InterpolationError(format!(
            "invalid interpolation format in {whole:?}: `${{{inner}}}` does not start with a variable name"
        )));
    }
    let value = vars.get(name);
    let set_nonempty = value.is_some_and(|v| !v.is_empty());
    // `rest` is the operator and its word; the word may itself hold variables.
    let (op, word) = [":-", ":?", ":+", "-", "?", "+"]
        .iter()
        .find_map(|op| rest.strip_prefix(op).map(|w| (*op, w)))
        .unwrap_or(("", rest));
    if op.is_empty() && !rest.is_empty() {
        return Err(InterpolationError(format!(
            "invalid interpolation format in {whole:?}: unexpected `{rest}` after `{name}`; expected `}}`, `:-`, `-`, `:?`, `?`, `:+` or `+`"
        )));
    }
    let resolved = match op {
        "" => value.cloned().unwrap_or_default(),
        ":-" if set_nonempty => value.cloned().unwrap_or_default(),
        ":-" => expand(word, vars, depth + 1, max_len)?,
        "-" => match value {
            Some(v) => v.clone(),
            None => expand(word, vars, depth + 1, max_len)?,
        },
        ":?" | "?" => {
            let ok = if op == ":?" {
                set_nonempty
            } else {
                value.is_some()
            };
            if !ok {
                let why = expand(word, vars, depth + 1, max_len)?;
                let state = if value.is_some() { "empty" } else { "unset" };
                return Err(InterpolationError(if why.is_empty() {
                    format!("required variable {name} is {state}")
                } else {
                    format!("required variable {name} is {state}: {why}")
                }));
            }
            value.cloned().unwrap_or_default()
        }
        ":+" if set_nonempty => expand(word, vars, depth + 1, max_len)?,
        "+" if value.is_some() => expand(word, vars, depth + 1, max_len)?,
        _ => String::new(),
    };
    Ok(resolved)
}

/// Interpolates every scalar value of a parsed file in place. `path` is the
/// key path of `node`, for error messages.
pub(crate) fn interpolate_node(
    node: &mut Node,
    path: &str,
    vars: &HashMap<String, String>,
) -> Result<(), ComposeError> {
    interpolate_within(node, path, vars, &mut 0)
}

/// [`interpolate_node`], with `used` the bytes of text produced so far in
/// the file, which must stay within [`MAX_EXPANDED_BYTES`].
fn interpolate_within(
    node: &mut Node,
    path: &str,
    vars: &HashMap<String, String>,
    used: &mut usize,
) -> Result<(), ComposeError> {
    match &mut node.value {
        Value::Scalar { text, .. } => {
            let room = MAX_EXPANDED_BYTES.saturating_sub(*used);
            *text = expand(text, vars, 0, room).map_err(|InterpolationError(message)| {
                ComposeError::Interpolation {
                    at: node.pos.location(),
                    path: path.to_owned(),
                    message,
                }
            })?;
            *used += text.len();
        }
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_within(item, &format!("{path}[{i}]"), vars, used)?;
            }
        }
        Value::Map(entries) => {
            for (key, value) in entries.iter_mut() {
                let child = if path.is_empty() {
                    key.name.clone()
                } else {
                    format!("{path}.{}", key.name)
                };
                interpolate_within(value, &child, vars, used)?;
            }
        }
        Value::Null => {}
    }
    Ok(())
}

/// The inverse for output: doubles every `$` in scalar values so that a
/// rendered document interpolates back to the same values.
pub(crate) fn escape_node(node: &mut Node) {
    match &mut node.value {
        Value::Scalar { text, .. } => {
            if text.contains('$') {
                *text = text.replace('$', "$$");
            }
        }
        Value::Seq(items) => items.iter_mut().for_each(escape_node),
        Value::Map(entries) => entries.iter_mut().for_each(|(_, v)| escape_node(v)),
        Value::Null => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> HashMap<String, String> {
        [("SET", "value"), ("EMPTY", ""), ("TAG", "1.25")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn run(text: &str) -> Result<String, String> {
        interpolate(text, &vars()).map_err(|e| e.0)
    }

    #[test]
    fn plain_forms() {
        assert_eq!(run("nginx:${TAG}").unwrap(), "nginx:1.25");
        assert_eq!(run("$SET/x").unwrap(), "value/x");
        assert_eq!(run("a${UNSET}b$UNSET.c").unwrap(), "ab.c");
        assert_eq!(run("no dollars").unwrap(), "no dollars");
    }

    #[test]
    fn default_forms_distinguish_unset_from_empty() {
        assert_eq!(run("${SET:-d}").unwrap(), "value");
        assert_eq!(run("${EMPTY:-d}").unwrap(), "d");
        assert_eq!(run("${UNSET:-d}").unwrap(), "d");
        assert_eq!(run("${SET-d}").unwrap(), "value");
        assert_eq!(run("${EMPTY-d}").unwrap(), "");
        assert_eq!(run("${UNSET-d}").unwrap(), "d");
        assert_eq!(run("${UNSET:-${TAG}}").unwrap(), "1.25");
        assert_eq!(run("${UNSET:-}").unwrap(), "");
    }

    #[test]
    fn alternative_forms() {
        assert_eq!(run("${SET:+alt}").unwrap(), "alt");
        assert_eq!(run("${EMPTY:+alt}").unwrap(), "");
        assert_eq!(run("${EMPTY+alt}").unwrap(), "alt");
        assert_eq!(run("${UNSET+alt}").unwrap(), "");
    }

    #[test]
    fn required_forms() {
        assert_eq!(run("${SET:?must be set}").unwrap(), "value");
        assert_eq!(
            run("${EMPTY:?must be set}").unwrap_err(),
            "required variable EMPTY is empty: must be set"
        );
        assert_eq!(
            run("${UNSET:?must be set}").unwrap_err(),
            "required variable UNSET is unset: must be set"
        );
        assert_eq!(run("${EMPTY?must be set}").unwrap(), "");
        assert_eq!(
            run("${UNSET?}").unwrap_err(),
            "required variable UNSET is unset"
        );
    }

    #[test]
    fn dollar_dollar_is_a_literal_dollar() {
        assert_eq!(run("echo $$HOME $${SET}").unwrap(), "echo $HOME ${SET}");
    }

    #[test]
    fn malformed_expressions_are_errors() {
        assert!(run("${SET").unwrap_err().contains("without a closing"));
        assert!(run("cost: 5$").unwrap_err().contains("write `$$`"));
        assert!(run("${}")
            .unwrap_err()
            .contains("does not start with a variable"));
        assert!(run("${SET*x}").unwrap_err().contains("unexpected `*x`"));
    }

    #[test]
    fn nested_defaults_are_bounded() {
        let nest = |levels: usize| format!("{}x{}", "${UNSET:-".repeat(levels), "}".repeat(levels));
        assert_eq!(run(&nest(16)).unwrap(), "x");
        assert_eq!(
            run(&nest(17)).unwrap_err(),
            "`${…}` defaults nested more than 16 levels deep, the most shoal substitutes"
        );
        // Deep enough to overflow the stack if each level recursed unchecked.
        assert!(run(&nest(200_000))
            .unwrap_err()
            .contains("more than 16 levels"));
    }

    #[test]
    fn expansion_is_bounded_in_bytes() {
        let mut vars = vars();
        vars.insert("BIG".into(), "x".repeat(1 << 20));
        // 17 MiB from 68 bytes.
        let err = interpolate(&"${BIG}".repeat(17), &vars).unwrap_err().0;
        assert_eq!(
            err,
            "variables expand the file to more than 16 MiB of text, the most shoal loads"
        );
        let err = interpolate(&"$BIG".repeat(17), &vars).unwrap_err().0;
        assert!(err.contains("more than 16 MiB"), "{err}");
        assert_eq!(
            interpolate(&"$BIG".repeat(16), &vars).unwrap().len(),
            16 << 20
        );
    }

    #[test]
    fn multibyte_text_survives() {
        assert_eq!(run("é${SET}ü").unwrap(), "évalueü");
        assert_eq!(run("${UNSET:-naïve}").unwrap(), "naïve");
    }
}
