//! The embedded DNS resolver: service discovery inside every task's network
//! namespace, at Docker's address 127.0.0.11:53 (UDP and TCP).
//!
//! It answers from the view the managers push ([`crate::model::NodeView`]):
//! `SERVICE` and its aliases resolve to the service's VIP (or, in `dnsrr`
//! mode, its tasks' addresses), `tasks.SERVICE` to its tasks' addresses, only
//! on networks the asking task shares. Other names go to the node's own
//! resolvers. The parts, each a module:
//! - [`lookup`]: the name rules (pure);
//! - [`answer`]: from a decoded query to a reply or "forward" (pure);
//! - [`resolv_conf`]: the task's `/etc/resolv.conf` and the upstream list,
//!   from the host's (pure);
//! - [`forward`]: asking the upstreams, UDP with TCP retry;
//! - [`server`]: the UDP and TCP serving loops on already-bound sockets.
//!
//! Wire format by `hickory-proto`; nothing here parses DNS by hand except the
//! TC bit and ID of forwarded bytes.

pub mod answer;
pub mod forward;
pub mod lookup;
pub mod resolv_conf;
pub mod server;

pub use answer::{answer, Answer};
pub use lookup::{lookup, may_forward, Lookup, BACKEND_TTL_SECS, VIP_TTL_SECS};
pub use resolv_conf::{
    resolv_conf, upstreams_from_resolv_conf, MAX_UPSTREAMS, RESOLVER_ADDR, RESOLVER_PORT,
};
pub use server::{handle_packet, serve, BoundSockets, Handled, ServeConfig, ViewReceiver};
