//! shoal's object model and gRPC APIs, package `shoal.v1`, generated from
//! `proto/shoal/v1/*.proto`. Every other crate speaks these types; this crate
//! holds no behaviour beyond small helpers on the generated types.
//!
//! # Layout
//! - `objects.proto`: Node, Cluster, Service, Task and their parts.
//! - `control.proto`: the control API the CLI calls.
//! - `local.proto`: the node-local API (swarm init, join, leave, info).
//! - `dispatcher.proto`: agent sessions, heartbeats, assignments, task status.
//! - `ca.proto`: root CA certificate and node certificate issuance.
//! - `raft.proto`: Raft RPCs between managers.
//! - `logs.proto`: service logs and exec (CLI side, and the log broker agents serve through).
//! - [`names`]: operator-facing names of enum values.
//! - [`clock`]: the wall clock as the objects carry it (`now_ms`).
//! - [`health`]: reading a health check's test (Docker's forms).
//! - `secret_debug`: `SecretSpec`'s Debug, which leaves out the data.
//! - [`syntax`]: the one parser of each operator syntax (durations, byte
//!   sizes, CPUs, command strings, service and stack names).

#![forbid(unsafe_code)]

pub mod clock;
pub mod grants;
pub mod health;
pub mod names;
mod secret_debug;
pub mod syntax;

/// gRPC metadata on "not the leader" answers carrying the leader's address,
/// so that agents, joining managers and forwarding managers go straight there.
pub const LEADER_HINT: &str = "x-shoal-leader";

/// The most a client of shoal's own APIs reads in one answer, where tonic's
/// default is 4 MiB. Listings and session messages grow with the cluster:
/// a task is about 190 bytes on the wire, so `service ps` of a
/// 100,000-task service answers 18.6 MB, and a node's session carries every
/// endpoint of its networks — past 4 MiB at a size operators run, which is
/// how Swarm broke after grpc-go adopted the default (moby/moby#37997,
/// moby/swarmkit#2733). 512 MiB holds a listing of a million tasks. Only
/// answers from an authenticated peer are read with it (the node's own
/// daemon over its private socket, a manager over mutual TLS); servers keep
/// the default for requests, which are small and read before anything is
/// trusted.
pub const MAX_RESPONSE_BYTES: usize = 512 * 1024 * 1024;

/// Generated code for package `shoal.v1`.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("shoal.v1");
}
