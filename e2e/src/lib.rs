//! The end-to-end harness as a library, so the suites (`tests/cluster/`,
//! through `tests/cluster/util.rs`) and the benchmarks (`benches/`) share one
//! copy: [`util`] starts real `shoal daemon` processes and clusters of them,
//! drives them through the CLI and waits on observed state. The suites
//! themselves live in `tests/`.

#![forbid(unsafe_code)]
// A test harness: it unwraps like the tests it serves (the workspace denies
// unwrap_used in everything else).
#![allow(clippy::unwrap_used)]

pub mod util;
