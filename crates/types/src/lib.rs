//! Drover's domain model: jobs, task groups, tasks, nodes, allocations,
//! evaluations and plans, with Nomad's statuses, defaults and validation.
//!
//! These structs go into the Raft log, so their serialized form is part of the
//! on-disk format: add fields with `#[serde(default)]`, never rename them.
//! This crate does no IO, reads no clock and makes no IDs: callers pass time
//! (as Unix nanoseconds) and IDs in.

pub mod alloc;
pub mod duration;
pub mod eval;
pub mod job;
pub mod node;
pub mod operator;
pub mod plan;
pub mod resources;
pub mod validate;

pub use alloc::*;
pub use eval::*;
pub use job::*;
pub use node::*;
pub use operator::*;
pub use plan::*;
pub use resources::*;
pub use validate::{ValidationError, ValidationErrors};

/// Nanoseconds since the Unix epoch. Every timestamp in the model uses it, as
/// Nomad does, and it is always passed in rather than read from a clock.
pub type UnixNanos = i64;

/// A Raft log index, used as `CreateIndex` / `ModifyIndex` on every object.
pub type Index = u64;

/// The namespace every object lives in unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = "default";
/// The region every object lives in unless told otherwise.
pub const DEFAULT_REGION: &str = "global";
/// The node pool jobs and nodes join unless told otherwise.
pub const DEFAULT_NODE_POOL: &str = "default";

/// Formats 128 random bits as a lowercase RFC 4122 version-4 UUID string, the
/// form Nomad uses for every ID. The caller supplies the randomness.
pub fn uuid_from_bits(bits: u128) -> String {
    // Set the version (4) and variant (10xx) bits as RFC 4122 requires.
    let bits = (bits & !(0xF000u128 << 64)) | (0x4000u128 << 64);
    let bits = (bits & !(0xC000u128 << 48)) | (0x8000u128 << 48);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The first eight characters of an ID, as Nomad's CLI shows them.
pub fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_has_version_and_variant_bits() {
        let id = uuid_from_bits(u128::MAX);
        assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let id = uuid_from_bits(0);
        assert_eq!(id, "00000000-0000-4000-8000-000000000000");
        assert_eq!(short_id(&id), "00000000");
        assert_eq!(short_id("abc"), "abc");
    }
}
