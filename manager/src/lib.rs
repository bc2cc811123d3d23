//! The shoal manager: keeps the cluster's desired state in Raft and serves the
//! APIs that change and watch it.
//!
//! A [`Manager`] owns one Raft member (openraft over sled) and the services on
//! the manager's mutual-TLS listener: Raft RPCs, the CA, the dispatcher
//! (agent sessions) and the control API. It decides *what* the cluster
//! should be; agents run it, and the scheduler crate decides *where*.
//!
//! # Layout
//! - [`store`]: objects, commands, deterministic apply, watch stream.
//! - [`raft`]: openraft storage, network and RPC service.
//! - [`listener`]: the TCP front door: bounded handshakes, calls without a
//!   certificate refused before their body is read.
//! - [`auth`]: which certificate roles may call which API.
//! - [`bootstrap`]: a new cluster's first objects, with the manager's defaults (pure).
//! - [`ca_service`]: root CA distribution and certificate issuance against join tokens.
//! - [`dispatcher`]: agent sessions, heartbeats, node Ready/Down.
//! - [`control`]: the control API the CLI calls.
//! - [`spec`]: validation of service specs.
//! - [`orchestrator`]: the replicated orchestrator (pure reconcile).
//! - [`autoscale`]: autoscaling decisions (the HPA algorithm, pure).
//! - [`metrics`]: task load from heartbeats, in the leader's memory.
//! - [`autoscaler`]: the leader loop that autoscales services.
//! - [`provisioning`]: when to call the operator's machine hooks (pure).
//! - [`provisioner`]: the leader loop that runs them.
//! - [`scheduling`]: the store side of the scheduler crate.
//! - [`network`]: overlay networks: IPAM, allocation, the per-node view.
//! - [`leader`]: the leader-only loops that run orchestrator and scheduler.
//! - [`logs`]: service logs and exec (the log broker agents publish through).
//! - [`peers`]: which peer managers answered recently (quorum checks).
//! - [`volumes`]: nodes' volumes from heartbeats, in the leader's memory.
//! - [`worker_input`]: bounds on what a node writes into Raft about itself.
//! - [`error`]: errors and their mapping to gRPC statuses.
//! - [`proposer`]: every write: batched, refused at once without quorum.
//! - [`manager`]: wiring: open, bootstrap, serve.

#![forbid(unsafe_code)]

pub mod auth;
pub mod autoscale;
pub mod autoscaler;
pub mod bootstrap;
pub mod ca_service;
pub mod control;
pub mod dispatcher;
pub mod error;
pub mod leader;
pub mod listener;
pub mod logs;
pub mod manager;
pub mod metrics;
pub mod network;
pub mod orchestrator;
pub mod peers;
pub mod proposer;
pub mod provisioner;
pub mod provisioning;
pub mod raft;
pub mod scheduling;
pub mod spec;
pub mod store;
pub mod volumes;
pub mod worker_input;

pub use error::ManagerError;
pub use manager::{Manager, ManagerConfig, RaftTiming};

/// Milliseconds since the Unix epoch: the proposer's clock, carried in
/// commands (the workspace's one clock helper, shared with the agent).
pub use shoal_proto::clock::now_ms;

/// A random object ID in Docker's form: 25 lowercase base-36 characters.
pub fn new_id() -> String {
    shoal_security::token::random_base36(25)
}
