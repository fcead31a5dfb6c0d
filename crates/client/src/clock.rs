//! The clock seam. Every timer and every restart or back-off decision uses
//! `tokio::time` (so tests run under paused time); wall-clock time appears
//! only as timestamps on events and updates, read here.

/// Nanoseconds since the Unix epoch, for event and update timestamps.
pub fn unix_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
}
