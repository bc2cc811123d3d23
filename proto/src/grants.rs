//! Where a granted secret or config file appears inside a task: one rule
//! for the managers (which validate and show the grant) and the agents
//! (which bind the file there).

/// A secret's path: its target when absolute, else under /run/secrets.
pub fn secret_path(target: &str) -> String {
    if target.starts_with('/') {
        target.to_string()
    } else {
        format!("/run/secrets/{target}")
    }
}

/// A config's path: its target, taken from / when relative.
pub fn config_path(target: &str) -> String {
    if target.starts_with('/') {
        target.to_string()
    } else {
        format!("/{target}")
    }
}
