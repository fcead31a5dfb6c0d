//! Drover's domain model: jobs, task groups, tasks, nodes, allocations,
//! evaluations and plans, with Nomad's statuses, defaults and validation.
//!
//! These structs go into the Raft log, so their serialized form is part of the
//! on-disk format: add fields with `#[serde(default)]`, never rename them.
//! This crate does no IO, reads no clock and makes no IDs: callers pass time
//! (as Unix nanoseconds) and IDs in.

pub mod acl;
pub mod alloc;
pub mod deployment;
pub mod duration;
pub mod eval;
pub mod job;
pub mod limits;
pub mod namespace;
pub mod node;
pub mod node_index;
pub mod operator;
pub mod plan;
pub mod resources;
pub mod runtime_support;
pub mod service;
pub mod validate;
pub mod variables;

pub use acl::*;
pub use alloc::*;
pub use deployment::*;
pub use eval::*;
pub use job::*;
pub use namespace::*;
pub use node::*;
pub use node_index::{NodeEntry, VerdictCache};
pub use operator::*;
pub use plan::*;
pub use resources::*;
pub use service::{CheckResult, ServiceRegistration};
pub use validate::{ValidationError, ValidationErrors};
pub use variables::*;

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
    uuid_text(bits)
}

/// Two lowercase hex digits per byte value.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut table = [[0u8; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = [HEX[byte >> 4], HEX[byte & 0xF]];
        byte += 1;
    }
    table
};

/// 128 bits as UUID text (8-4-4-4-12 lowercase hex), taken as they are: no
/// version or variant bits are set. Written a byte at a time into one
/// buffer (servers and the scheduler benchmark make many IDs).
pub fn uuid_text(bits: u128) -> String {
    let mut text = [b'-'; 36];
    let mut at = 0;
    for (index, byte) in bits.to_be_bytes().iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            at += 1;
        }
        let pair = HEX_PAIRS[usize::from(*byte)];
        text[at] = pair[0];
        text[at + 1] = pair[1];
        at += 2;
    }
    // Every byte is ASCII (hex digits and dashes), so this never falls back.
    String::from_utf8(text.to_vec()).unwrap_or_default()
}

/// The first eight characters of an ID, as Nomad's CLI shows them.
pub fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against `format!`, for every byte value in every position.
    #[test]
    fn uuid_text_is_the_dashed_hex_of_the_bits() {
        for byte in 0..=255u128 {
            let bits = (0..16).fold(0u128, |bits, at| bits | (byte ^ at) << (8 * at));
            let hex = format!("{bits:032x}");
            let expected = format!(
                "{}-{}-{}-{}-{}",
                &hex[0..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..32]
            );
            assert_eq!(uuid_text(bits), expected);
        }
    }

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
