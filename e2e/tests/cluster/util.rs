//! The harness is the `shoal_e2e` library's (`e2e/src/util.rs`), shared with
//! the benchmarks; re-exported so the suites keep writing `util::…`.

pub use shoal_e2e::util::*;
