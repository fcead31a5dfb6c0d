//! Drover's limits on what a job may ask for. Nomad leaves most of these
//! unbounded; Drover bounds them so that no input can make the servers
//! reserve unbounded memory, overflow a resource sum or store an object
//! that can no longer be addressed in a URL. [`crate::Job::validate`]
//! enforces them, and README.md lists them for users.

/// Most allocations one task group may ask for (`count`). The scheduler's
/// memory grows with the placements it makes, so an unbounded count could
/// exhaust a server.
pub const MAX_GROUP_COUNT: u32 = 100_000;
