//! Multi-node tests: real `shoal daemon` processes on loopback addresses,
//! driven through the CLI (and, for the mutual-TLS checks, raw gRPC).

// A test crate: its helpers unwrap like its tests (the workspace denies
// unwrap_used in everything else).
#![allow(clippy::unwrap_used)]

mod autoscale;
mod bad_input;
mod certs;
mod cli_flags;
mod docker;
mod docker_cli;
mod encryption;
mod faults;
mod formation;
mod ha;
mod ingress;
mod mtls;
mod netns;
mod networks;
mod overlay;
mod partitions;
mod placement;
mod ports;
mod provisioning;
mod scale;
mod secrets;
mod security;
mod service_input;
mod services;
mod sim;
mod stack;
mod updates;
mod util;
mod volumes;
