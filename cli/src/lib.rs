//! The `shoal` binary's library: the node daemon (`shoal daemon`) and every
//! client command, which parses its flags, calls the daemon's socket and
//! prints the answer the way Docker would.
//!
//! # Layout
//! - [`args`]: the command line (clap derive; doc comments are the help text).
//! - [`client`]: reaching the daemon's socket and turning failures into `Error:` lines.
//! - [`commands`]: one module per command group (`swarm`, `node`, `info`,
//!   `service`, `stack`).
//! - [`output`]: tables, JSON lines and relative times.
//! - [`template`]: `--format` Go templates, with Docker's `table` and `json`.
//! - [`usage`]: refused command lines: their `Error:` text and exit code 125.
//! - [`daemon`]: the node daemon.

#![forbid(unsafe_code)]

pub mod args;
pub mod client;
pub mod commands;
pub mod daemon;
pub mod output;
pub mod template;
pub mod usage;

/// Runs one parsed command line.
pub async fn run(cli: args::Cli) -> anyhow::Result<()> {
    commands::dispatch(cli).await
}
