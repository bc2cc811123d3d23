//! What every handler shares: the daemon's backend and what the front end
//! says about it, axum's extractors as the handlers name them, and the
//! boolean query parameter as Go clients write it.

use std::collections::HashMap;
use std::sync::Arc;

use crate::backend::Backend;

/// What the front end says about the daemon it fronts.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's hostname (`/info` Name).
    pub hostname: String,
    /// shoal's version (`/version`).
    pub shoal_version: String,
}

/// Shared by every handler.
pub struct Api {
    pub backend: Backend,
    pub config: Config,
}

pub type State = axum::extract::State<Arc<Api>>;
pub type Query = axum::extract::Query<HashMap<String, String>>;

/// A boolean query parameter as Go clients write it (`1`, `true`).
pub fn query_flag(query: &HashMap<String, String>, name: &str) -> bool {
    matches!(
        query.get(name).map(|v| v.to_ascii_lowercase()).as_deref(),
        Some("1" | "true" | "yes")
    )
}
