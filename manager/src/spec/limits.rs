//! Bounds on what a spec may ask for, read by the checks of other modules
//! too (the autoscaling policy's maximum).

/// Upper bound on replicas: a typo must not make the orchestrator create a
/// billion tasks.
pub const MAX_REPLICAS: u64 = 100_000;
