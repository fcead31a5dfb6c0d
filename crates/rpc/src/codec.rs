//! The encoding of every message on the wire and of the opaque payloads the
//! servers pass through it (Raft messages, forwarded commands, the Raft log
//! and snapshots): MessagePack, structs as arrays of their fields in
//! declaration order, enum variants by name.
//!
//! Positional structs make an allocation about a quarter of its JSON size
//! (field names are not repeated) and encode 3–4× faster. The price is the
//! rule the Raft log already follows: a field is only ever added at the end
//! of its struct, with `#[serde(default)]`; old bytes then decode with the
//! default (serde fills missing trailing elements), and fields are never
//! removed, renamed or reordered. Each value is still self-describing, so
//! `serde_json::Value` (a task's driver config) round-trips, and enum
//! variants go by name, so an enum may grow anywhere.
//!
//! Callers outside this crate encode payloads with [`encode`] and [`decode`]
//! so that only this crate decides what the bytes look like.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a message could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("encode message: {0}")]
    Encode(String),
    #[error("decode message: {0}")]
    Decode(String),
}

/// Encodes a value in the wire format.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut bytes = Vec::with_capacity(128);
    encode_into(value, &mut bytes)?;
    Ok(bytes)
}

/// Encodes a value in the wire format, appending to `bytes`.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, bytes: &mut Vec<u8>) -> Result<(), CodecError> {
    let mut serializer = rmp_serde::Serializer::new(bytes);
    value
        .serialize(&mut serializer)
        .map_err(|error| CodecError::Encode(error.to_string()))
}

/// Decodes a value from the wire format. Never panics on hostile input:
/// lengths are checked against the bytes present before anything is
/// allocated for them.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    rmp_serde::from_slice(bytes).map_err(|error| CodecError::Decode(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Old {
        name: String,
        count: u64,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct New {
        name: String,
        count: u64,
        #[serde(default)]
        added: Vec<String>,
    }

    #[test]
    fn a_field_added_with_a_default_reads_old_bytes() {
        let old = encode(&Old {
            name: "a".into(),
            count: 7,
        })
        .expect("encode");
        let new: New = decode(&old).expect("decode");
        assert_eq!(
            new,
            New {
                name: "a".into(),
                count: 7,
                added: Vec::new()
            }
        );
    }

    /// Enum variants go on the wire by name, not by position: the Raft
    /// command enum relies on this to stay readable as it grows.
    #[test]
    fn enum_variants_are_encoded_by_name() {
        #[derive(Serialize)]
        enum Shape {
            First,
            Second { x: u8 },
        }
        let bytes = encode(&vec![Shape::First, Shape::Second { x: 1 }]).expect("encode");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("First") && text.contains("Second"), "{bytes:?}");
    }

    #[test]
    fn json_values_round_trip() {
        let value = serde_json::json!({"command": "sleep", "args": ["1", 2, null, {"x": true}]});
        let back: serde_json::Value = decode(&encode(&value).expect("encode")).expect("decode");
        assert_eq!(back, value);
    }

    #[test]
    fn hostile_lengths_are_errors_not_allocations() {
        // A map header claiming 2^32-1 entries, an array header likewise, a
        // string header claiming 4 GiB: each must fail without allocating.
        for bytes in [
            &[0xdf, 0xff, 0xff, 0xff, 0xff][..],
            &[0xdd, 0xff, 0xff, 0xff, 0xff][..],
            &[0xdb, 0xff, 0xff, 0xff, 0xff, b'a'][..],
        ] {
            assert!(decode::<Vec<String>>(bytes).is_err());
            assert!(decode::<serde_json::Value>(bytes).is_err());
        }
    }
}
