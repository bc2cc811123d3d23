//! `--format` as the docker CLI takes it: `table` (the default table),
//! `json` (shoal's JSON lines or inspect array), or a Go template
//! (`'{{.Name}} {{.Replicas}}'`, `'{{json .}}'`, `'table {{.ID}}\t{{.Name}}'`).
//!
//! Templates are Go's text/template through the gtmpl crate. What the docker
//! CLI adds on top of text/template is added here the same way: the `table`
//! directive (a header row made by running the template over the column
//! names, and Go's tabwriter alignment: minimum width 10, padding 3), the
//! `\t` and `\n` escapes in the format text, and the functions `json`,
//! `join`, `split`, `lower`, `upper`, `title`, `truncate` and `pad`.
//!
//! Which fields a template sees is decided by the commands: list rows are
//! *strict* objects with Docker's field names (a misspelt field is an error,
//! as Docker's contexts are Go structs), inspected objects are Docker's JSON
//! shape where a missing key prints `<no value>`, as Go's maps do.

use std::collections::HashMap;
use std::fmt;

use gtmpl::{Context, Func, FuncError, Template, Value};

/// A parsed `--format`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Format {
    /// The command's own table (or, for inspect, its JSON).
    #[default]
    Table,
    /// JSON: one object per line for lists, an array for inspect.
    Json,
    /// A Go template; `table` when it started with the `table` directive.
    Template { text: String, table: bool },
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.trim() {
            "" | "table" => return Ok(Format::Table),
            "json" => return Ok(Format::Json),
            _ => {}
        }
        let (text, table) = match raw.strip_prefix("table") {
            Some(rest) if rest.starts_with([' ', '\t']) => (rest, true),
            _ => (raw, false),
        };
        // Docker trims spaces and turns the two escapes into the characters
        // shells make hard to type.
        let text = text
            .trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n");
        parse(&text)?;
        Ok(Format::Template { text, table })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Format::Table => write!(f, "table"),
            Format::Json => write!(f, "json"),
            Format::Template { text, table: true } => write!(f, "table {text}"),
            Format::Template { text, .. } => write!(f, "{text}"),
        }
    }
}

/// Functions Docker's CLI adds to text/template (`templates.basicFunctions`).
fn functions() -> Vec<(&'static str, Func)> {
    vec![
        ("json", json as Func),
        ("join", join as Func),
        ("split", split as Func),
        ("lower", lower as Func),
        ("upper", upper as Func),
        ("title", title as Func),
        ("truncate", truncate as Func),
        ("pad", pad as Func),
    ]
}

/// The header pass of a `table` template: Docker's `HeaderFunctions`, each
/// returning its first argument (the column name) unchanged.
fn header_functions() -> Vec<(&'static str, Func)> {
    functions()
        .into_iter()
        .map(|(name, _)| (name, first_argument as Func))
        .collect()
}

fn parse_with(text: &str, funcs: &[(&'static str, Func)]) -> Result<Template, String> {
    let mut template = Template::default();
    template.add_funcs(funcs);
    template
        .parse(text)
        .map_err(|e| format!("invalid --format template {text:?}: {e}"))?;
    Ok(template)
}

fn parse(text: &str) -> Result<Template, String> {
    parse_with(text, &functions())
}

/// Renders `rows` (JSON objects with Docker's field names) with a list
/// template. `headers` maps each field to its column title for `table`.
pub fn render_list(
    text: &str,
    table: bool,
    rows: &[serde_json::Value],
    headers: &[(&str, &str)],
) -> anyhow::Result<String> {
    let template = parse(text).map_err(anyhow::Error::msg)?;
    let mut out = String::new();
    if table {
        let header: HashMap<String, Value> = headers
            .iter()
            .map(|(field, title)| (field.to_string(), Value::from(title.to_string())))
            .collect();
        // As Docker: a header the template cannot make is left out.
        if let Ok(line) = parse_with(text, &header_functions())
            .ok()
            .map(|t| t.render(&Context::from(Value::Object(header))))
            .transpose()
        {
            out.push_str(&line.unwrap_or_default());
            out.push('\n');
        }
    }
    for row in rows {
        let line = template
            .render(&Context::from(to_value(row, true)))
            .map_err(|e| anyhow::anyhow!("--format template {text:?} failed: {e}"))?;
        out.push_str(&line);
        out.push('\n');
    }
    Ok(if table { tabwriter(&out) } else { out })
}

/// Renders each inspected object (Docker's JSON shape) on its own line.
pub fn render_each(text: &str, items: &[serde_json::Value]) -> anyhow::Result<String> {
    let template = parse(text).map_err(anyhow::Error::msg)?;
    let mut out = String::new();
    for item in items {
        let line = template
            .render(&Context::from(to_value(item, false)))
            .map_err(|e| anyhow::anyhow!("--format template {text:?} failed: {e}"))?;
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

/// JSON → template value. `strict` makes the top object a struct (unknown
/// fields are errors); everything below, and everything when not strict,
/// is a map.
fn to_value(json: &serde_json::Value, strict: bool) -> Value {
    match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_u64() {
                Value::from(i)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                Value::from(n.as_f64().unwrap_or_default())
            }
        }
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(|v| to_value(v, false)).collect()),
        serde_json::Value::Object(o) => {
            let map = o
                .iter()
                .map(|(k, v)| (k.clone(), to_value(v, false)))
                .collect();
            if strict {
                Value::Object(map)
            } else {
                Value::Map(map)
            }
        }
    }
}

/// Template value → JSON, for `json`. Maps come out with sorted keys, as
/// Go's encoder writes maps.
fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::NoValue | Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Number(n) => {
            if let Some(i) = n.as_u64() {
                i.into()
            } else if let Some(i) = n.as_i64() {
                i.into()
            } else {
                serde_json::Number::from_f64(n.as_f64().unwrap_or_default())
                    .map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
        }
        Value::Array(a) => a.iter().map(to_json).collect(),
        Value::Object(o) | Value::Map(o) => {
            serde_json::Value::Object(o.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn exactly<'a>(name: &str, args: &'a [Value], n: usize) -> Result<&'a [Value], FuncError> {
    if args.len() == n {
        Ok(args)
    } else {
        Err(FuncError::ExactlyXArgs(name.into(), n))
    }
}

fn number_of(value: &Value) -> Result<usize, FuncError> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .map(|n| n as usize)
            .ok_or(FuncError::UnableToConvertFromValue),
        _ => Err(FuncError::UnableToConvertFromValue),
    }
}

/// `json`: Go's encoder without HTML escaping, as Docker's.
fn json(args: &[Value]) -> Result<Value, FuncError> {
    let args = exactly("json", args, 1)?;
    Ok(Value::from(to_json(&args[0]).to_string()))
}

fn join(args: &[Value]) -> Result<Value, FuncError> {
    let args = exactly("join", args, 2)?;
    let Value::Array(items) = &args[0] else {
        return Err(FuncError::UnableToConvertFromValue);
    };
    let parts: Vec<String> = items.iter().map(text_of).collect();
    Ok(Value::from(parts.join(&text_of(&args[1]))))
}

fn split(args: &[Value]) -> Result<Value, FuncError> {
    let args = exactly("split", args, 2)?;
    let parts = text_of(&args[0])
        .split(&text_of(&args[1]))
        .map(|s| Value::from(s.to_string()))
        .collect();
    Ok(Value::Array(parts))
}

fn lower(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(
        text_of(&exactly("lower", args, 1)?[0]).to_lowercase(),
    ))
}

fn upper(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(
        text_of(&exactly("upper", args, 1)?[0]).to_uppercase(),
    ))
}

/// `title`: the first letter of every word upper-cased.
fn title(args: &[Value]) -> Result<Value, FuncError> {
    let text = text_of(&exactly("title", args, 1)?[0]);
    let mut out = String::new();
    let mut start = true;
    for c in text.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    Ok(Value::from(out))
}

/// `truncate TEXT N`: the first N characters.
fn truncate(args: &[Value]) -> Result<Value, FuncError> {
    let args = exactly("truncate", args, 2)?;
    let n = number_of(&args[1])?;
    Ok(Value::from(
        text_of(&args[0]).chars().take(n).collect::<String>(),
    ))
}

/// `pad TEXT LEFT RIGHT`: spaces around.
fn pad(args: &[Value]) -> Result<Value, FuncError> {
    let args = exactly("pad", args, 3)?;
    let (left, right) = (number_of(&args[1])?, number_of(&args[2])?);
    Ok(Value::from(format!(
        "{}{}{}",
        " ".repeat(left),
        text_of(&args[0]),
        " ".repeat(right)
    )))
}

fn first_argument(args: &[Value]) -> Result<Value, FuncError> {
    args.first()
        .cloned()
        .ok_or(FuncError::AtLeastXArgs("header".into(), 1))
}

/// Go's `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`, which Docker's tables
/// use: a tab-terminated cell is a column cell; a column is as wide as its
/// widest cell plus 3, at least 10, over each run of lines that have it;
/// the text after a line's last tab is not padded.
pub fn tabwriter(text: &str) -> String {
    const MIN_WIDTH: usize = 10;
    const PADDING: usize = 3;
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let columns = lines.iter().map(|l| l.len()).max().unwrap_or(0);
    // widths[line][column], for the tab-terminated cells of each line.
    let mut widths: Vec<Vec<usize>> = lines
        .iter()
        .map(|l| vec![0; l.len().saturating_sub(1)])
        .collect();
    for column in 0..columns {
        let mut line = 0;
        while line < lines.len() {
            if lines[line].len() <= column + 1 {
                line += 1;
                continue;
            }
            let start = line;
            let mut width = MIN_WIDTH;
            while line < lines.len() && lines[line].len() > column + 1 {
                width = width.max(lines[line][column].chars().count() + PADDING);
                line += 1;
            }
            for w in &mut widths[start..line] {
                w[column] = width;
            }
        }
    }
    let mut out = String::new();
    for (cells, widths) in lines.iter().zip(&widths) {
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if let Some(width) = widths.get(i) {
                out.push_str(&" ".repeat(width.saturating_sub(cell.chars().count())));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests;
