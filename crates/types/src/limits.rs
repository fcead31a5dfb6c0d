//! Drover's limits on what a job may ask for. Nomad leaves most of these
//! unbounded; Drover bounds them so that no input can make the servers
//! reserve unbounded memory, overflow a resource sum or store an object
//! that can no longer be addressed in a URL. [`crate::Job::validate`]
//! enforces them, and README.md lists them for users.

/// Most allocations one task group may ask for (`count`). The scheduler's
/// memory grows with the placements it makes, so an unbounded count could
/// exhaust a server.
pub const MAX_GROUP_COUNT: u32 = 100_000;

/// Largest CPU ask of one task, in MHz (about a million 1 GHz cores).
pub const MAX_CPU_MHZ: i64 = 1 << 30;

/// Most reserved cores one task may ask for (core IDs are 16-bit).
pub const MAX_CORES: i64 = 1 << 16;

/// Largest memory (and `memory_max`) of one task, in MiB (1 PiB).
pub const MAX_MEMORY_MB: i64 = 1 << 30;

/// Largest ephemeral disk of one group, in MiB (1 PiB).
pub const MAX_DISK_MB: i64 = 1 << 30;

/// Largest network bandwidth ask, in Mbit/s.
pub const MAX_MBITS: i64 = 1 << 30;

/// Most instances one device request may ask for.
pub const MAX_DEVICE_COUNT: u64 = 1 << 16;

/// Most networks, ports and device requests one task or group may list.
pub const MAX_LIST_LEN: usize = 1024;
