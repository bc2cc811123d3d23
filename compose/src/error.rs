//! The loader's error type. Every error that comes from a file says which
//! file, the line when the parser knows it, the key path in Compose's dotted
//! form (`services.web.ports[1]`) and what was expected there; the CLI prints
//! it after `Error: ` as it is.

use std::fmt;
use std::path::PathBuf;

/// A place in a Compose (or `.env`) file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file's name as given to the loader.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.file),
            None => f.write_str(&self.file),
        }
    }
}

/// Why a stack could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComposeError {
    #[error("no Compose file given: pass at least one with -c FILE")]
    NoFiles,

    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The text is not YAML, or not a single YAML document.
    #[error("{at}: malformed YAML: {message}")]
    Syntax { at: Location, message: String },

    /// Well-formed YAML that is not a valid Compose file for shoal: unknown
    /// key, wrong type, value out of range, undefined reference.
    #[error("{at}: {path}: {message}")]
    Invalid {
        at: Location,
        path: String,
        message: String,
    },

    /// A `${VAR}` expression could not be substituted (`${VAR:?message}` on
    /// an unset variable, or a malformed `$` expression).
    #[error("{at}: {path}: {message}")]
    Interpolation {
        at: Location,
        path: String,
        message: String,
    },

    /// Input past one of the loader's bounds ([`crate::limits`]): a file too
    /// large, aliases or variables that expand too far, nesting too deep. The
    /// message names the bound.
    #[error("{at}: {message}")]
    Limit { at: Location, message: String },

    /// A malformed line in a `.env` or `env_file` file.
    #[error("{at}: {message}")]
    EnvFile { at: Location, message: String },

    /// Services that depend on each other in a ring can never start.
    #[error("{}services.{}.depends_on: dependency cycle {}; break it by removing one of these depends_on entries",
        at.as_ref().map(|a| format!("{a}: ")).unwrap_or_default(),
        cycle.first().map(String::as_str).unwrap_or_default(),
        cycle.join(" -> "))]
    Cycle {
        at: Option<Location>,
        /// The services on the ring, the first repeated at the end.
        cycle: Vec<String>,
    },
}
