//! The Compose Spec loader behind `shoal stack deploy -c FILE…` and
//! `shoal stack config`: reads one or more Compose files, substitutes
//! variables, merges the files the way Docker Compose does, validates the
//! result against what shoal can run, and returns a typed [`Stack`].
//!
//! It decides nothing about the cluster: turning a [`ServiceDef`] into a
//! shoal service spec, naming objects after the stack, and printing
//! [`Stack::warnings`] are the CLI's job.
//!
//! # Pipeline
//! For each file: read → parse YAML (anchors, aliases and `<<:` merge keys
//! resolved, every node tagged with file and line) → interpolate `${VAR}`s
//! in scalar values. Then merge the files in order, then walk the schema.
//! Variables come from the caller's environment map, overlaying a `.env`
//! file beside the first Compose file (the environment wins, as in Compose).
//!
//! # Which YAML parser, and why
//! `yaml-rust2`'s event parser, with the tree built here. `serde_yaml` is
//! deprecated; its forks `serde_yaml_ng`/`serde_norway` wrap the C-derived
//! `unsafe-libyaml` and, like any serde deserializer, give a line only for
//! the first type error, while this loader must report a line for *every*
//! semantic error (undefined network, port out of range, cycle), and warn
//! about ignored options, after several files were merged. The typed crates
//! (`compose_spec`, `docker-compose-types`) sit on those same serde parsers,
//! reject or silently drop what shoal must warn about, and would fix the
//! model to their release cadence. `yaml-rust2` is pure safe Rust, YAML 1.2,
//! actively maintained (as is its successor `saphyr`, which had not yet
//! settled its API), and hands out a position with every event; it does not
//! resolve merge keys, so the `yaml` module does (explicit keys win, then earlier
//! merged mappings). Driving its events one by one also lets the loader cap
//! nesting depth and alias expansion ([`limits`]), so hostile input fails
//! cleanly.
//!
//! # Supported, and not
//! Everything under `services` that maps to a shoal service spec (see
//! [`ServiceDef`]), top-level `networks`, `volumes`, `secrets`, `configs`,
//! `name` and `version` (ignored), and `x-` extension keys anywhere
//! (ignored). Valid Compose options shoal does not apply (`build`, `restart`,
//! `privileged`, bind-mount `volumes`, …) become [`Warning`]s, printed with
//! [`unsupported_options_line`]. Unknown keys are errors. Not supported:
//! `extends` and `include` (warned), profiles (warned, all services load),
//! the `!reset`/`!override` merge tags (the tag is ignored, the value merges
//! normally), interpolation inside `env_file` contents.
//!
//! # Layout
//! - [`error`]: [`ComposeError`] and [`Location`].
//! - [`model`]: the typed result, [`Stack`] and what it holds.
//! - `yaml`: YAML text → position-tagged tree, and tree → YAML text.
//! - [`limits`]: the bounds on file size, alias and variable expansion
//!   and nesting that keep hostile files from exhausting memory or stack.
//! - `interpolate`: `${VAR}` substitution.
//! - `dotenv`: the `.env` / `env_file` format ([`parse_dotenv`]).
//! - `merge`: merging several files' trees.
//! - `schema`: tree → [`Stack`], with validation and warnings.
//! - value syntaxes (durations, byte sizes, CPU counts, command splitting)
//!   come from [`shoal_proto::syntax`], shared with the CLI's flags.
//! - `order`: [`startup_order`] from `depends_on`.

#![forbid(unsafe_code)]

mod dotenv;
pub mod error;
mod interpolate;
pub mod limits;
mod merge;
pub mod model;
mod order;
mod schema;
mod yaml;

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

pub use dotenv::parse_dotenv;
pub use error::{ComposeError, Location};
pub use model::*;
pub use order::startup_order;
/// Docker's short port syntax, shared with `service create --publish`.
pub use schema::parse_short_port;

/// Loads a stack from Compose files, later files overriding earlier ones.
///
/// `env` is the environment to interpolate from (normally the process's);
/// it overrides a `.env` file in the first file's directory. Relative paths
/// in the files (`env_file`, secret `file`) are resolved against that
/// directory too.
pub fn load(files: &[PathBuf], env: &HashMap<String, String>) -> Result<Stack, ComposeError> {
    let first = files.first().ok_or(ComposeError::NoFiles)?;
    let base_dir = first.parent().unwrap_or(Path::new("")).to_path_buf();
    let read = |path: &Path| {
        limits::read_to_string(path).map_err(|source| ComposeError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let mut vars: HashMap<String, String> = HashMap::new();
    let dotenv_path = base_dir.join(".env");
    if dotenv_path.is_file() {
        let text = read(&dotenv_path)?;
        for (key, value) in parse_dotenv(&dotenv_path.display().to_string(), &text)? {
            // A bare `KEY` in .env has nothing to contribute.
            if let Some(value) = value {
                vars.insert(key, value);
            }
        }
    }
    vars.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut sources = Vec::with_capacity(files.len());
    for file in files {
        sources.push((file.display().to_string(), read(file)?));
    }
    load_sources(&sources, &vars, &base_dir)
}

/// Loads a stack from one in-memory Compose file named `name` (used in
/// messages; its directory resolves relative paths). No `.env` is read.
pub fn load_str(
    name: &str,
    text: &str,
    env: &HashMap<String, String>,
) -> Result<Stack, ComposeError> {
    let base_dir = Path::new(name).parent().unwrap_or(Path::new(""));
    load_sources(&[(name.to_owned(), text.to_owned())], env, base_dir)
}

/// Loads several in-memory files (name, text), merged in order, with `vars`
/// as the complete interpolation environment.
pub fn load_sources(
    sources: &[(String, String)],
    vars: &HashMap<String, String>,
    base_dir: &Path,
) -> Result<Stack, ComposeError> {
    let mut merged: Option<yaml::Node> = None;
    for (name, text) in sources {
        if text.len() > limits::MAX_FILE_BYTES {
            return Err(ComposeError::Limit {
                at: Location {
                    file: name.clone(),
                    line: None,
                },
                message: limits::too_large_message(),
            });
        }
        let mut root = yaml::parse(name, text)?;
        if !matches!(root.value, yaml::Value::Map(_)) {
            return Err(ComposeError::Invalid {
                at: root.pos.location(),
                path: "(top level)".to_owned(),
                message: format!(
                    "expected a mapping with a `services:` key, got {}",
                    if root.value == yaml::Value::Null {
                        "an empty file"
                    } else {
                        root.kind()
                    }
                ),
            });
        }
        interpolate::interpolate_node(&mut root, "", vars)?;
        match &mut merged {
            None => merged = Some(root),
            Some(base) => merge::merge_files(base, root),
        }
    }
    let root = merged.ok_or(ComposeError::NoFiles)?;
    let read_file = |path: &Path| limits::read_to_string(path);
    let ctx = schema::Context {
        vars,
        base_dir,
        read_file: &read_file,
    };
    schema::convert(root, &ctx)
}

/// The merged, interpolated stack as YAML, keys sorted: what
/// `shoal stack config` prints. A `$` in a value is written `$$`, so the
/// output is itself a Compose file that loads to the same stack.
pub fn render(stack: &Stack) -> String {
    let mut document = stack.document.clone();
    interpolate::escape_node(&mut document);
    yaml::emit(&document)
}

/// Docker's line for ignored options — `Ignoring unsupported options: build,
/// restart` — with option names sorted and de-duplicated; `None` when there
/// is nothing to report.
pub fn unsupported_options_line(warnings: &[Warning]) -> Option<String> {
    let names: BTreeSet<&str> = warnings.iter().map(|w| w.option.as_str()).collect();
    if names.is_empty() {
        return None;
    }
    Some(format!(
        "Ignoring unsupported options: {}",
        names.into_iter().collect::<Vec<_>>().join(", ")
    ))
}
