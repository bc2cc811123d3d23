//! Overlay networking on one node: everything the agent needs to put a task
//! on a cluster-wide network.
//!
//! The managers own the network model (networks, subnets, addresses, VIPs)
//! and push each node the part of it that concerns the node. This crate turns
//! that pushed view into kernel state and serves name lookups from it; it
//! never decides an address itself. Its inputs are plain Rust types, not the
//! wire protocol, so that it can be tested alone on network namespaces.
#![forbid(unsafe_code)]

pub mod dns;
pub mod model;
