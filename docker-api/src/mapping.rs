//! The one mapping between Docker's types (bollard's generated models of
//! the Engine API) and shoal's (`shoal.v1`).
//!
//! - [`spec`]: service specs, both ways — what a Docker spec asks that
//!   shoal cannot do is refused or reported in `Warnings`, never dropped.
//! - [`objects`]: nodes, services, tasks, the swarm and their states, one way
//!   (shoal → Docker), for reading.
//! - [`time`]: Docker's timestamps and nanosecond durations.

pub mod attachments;
pub mod objects;
pub mod spec;
pub mod time;
