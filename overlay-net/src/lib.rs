//! Overlay networking on one node: everything the agent needs to put a task
//! on a cluster-wide network.
//!
//! The managers own the network model (networks, subnets, addresses, VIPs)
//! and push each node the part of it that concerns the node. This crate turns
//! that pushed view into kernel state and serves name lookups from it; it
//! never decides an address itself. Its inputs are plain Rust types, not the
//! wire protocol, so that it can be tested alone on network namespaces.
//!
//! - [`model`]: the inputs ([`model::NodeView`], [`model::LocalTask`]).
//! - [`reconcile`]: the pure plan from inputs and observed state to actions.
//! - [`node`]: the executor ([`node::OverlayNode`]) that observes the kernel
//!   and applies the plan.
//! - [`kernel`]: the netlink requests; [`netns`]: network namespaces.
//! - [`firewall`]: masquerade, internal isolation, Docker's FORWARD DROP.
//! - [`vip`]: service VIPs load-balanced in each task's namespace.
//! - [`ingress`]: the routing mesh for published ports, keeping the client's address.
//! - [`host_ports`]: host-mode published ports of local tasks.
//! - [`names`]: the derived names of everything shoal creates.
//! - [`probe`]: can this node do overlay networking at all.
//! - [`dns`]: the embedded DNS resolver every task namespace asks.
#![forbid(unsafe_code)]

pub mod dns;
pub mod firewall;
pub mod host_ports;
pub mod ingress;
pub mod kernel;
pub mod model;
pub mod names;
pub mod netns;
pub mod node;
pub mod probe;
pub mod reconcile;
pub mod vip;

pub use node::{OverlayError, OverlayNode, Report};
pub use probe::{overlay_support, Reason};
