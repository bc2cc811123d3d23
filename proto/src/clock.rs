//! The workspace's one wall clock in the form the object model carries it:
//! milliseconds since the Unix epoch (`timestamp_ms`, `created_at_ms`, …).
//! Code that decides takes `now` as an argument; only the code that acts
//! reads this clock and passes it in.

/// Milliseconds since the Unix epoch by this host's clock (0 for a clock set
/// before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
