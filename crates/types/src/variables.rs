//! Variables and the root keyring as the servers store them.
//!
//! A variable's items never appear here in plaintext: the server encrypts
//! them (AES-256-GCM with the active root key) before the write enters the
//! Raft log, so the log, the snapshots and the state hold only
//! [`EncryptedItems`]. The root keys' metadata is here too; their material
//! lives in each server's keystore, never in Raft. Validation of paths and
//! the limits on items are Nomad's rules, checked on the server before
//! encryption.

use crate::{Index, UnixNanos};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest variable path, in bytes (Nomad's limit).
pub const MAX_VARIABLE_PATH: usize = 128;
/// Most bytes a variable's items may take, encoded as JSON (Nomad: 64 KiB).
pub const MAX_VARIABLE_ITEMS_BYTES: usize = 64 * 1024;
/// Most items one variable may hold (Drover's own bound).
pub const MAX_VARIABLE_ITEMS: usize = 1_000;
/// Longest lock TTL and lock-delay (Nomad bounds neither; a day is ample).
pub const MAX_LOCK_DURATION_NANOS: i64 = 24 * 3600 * 1_000_000_000;
/// Shortest lock TTL (Nomad's lower bound for renewable TTLs).
pub const MIN_LOCK_TTL_NANOS: i64 = 10_000_000;

/// A variable's items, encrypted with one root key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EncryptedItems {
    /// The root key that encrypted them.
    pub key_id: String,
    /// AES-GCM's 96-bit nonce, random per encryption.
    #[serde(with = "serde_bytes_compat")]
    pub nonce: Vec<u8>,
    /// The items as JSON, sealed (ciphertext and tag).
    #[serde(with = "serde_bytes_compat")]
    pub ciphertext: Vec<u8>,
}

/// A lock held on a variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VariableLock {
    /// The holder's lock ID (made by the server on acquisition).
    pub id: String,
    pub ttl_nanos: i64,
    pub lock_delay_nanos: i64,
    /// When the lock lapses unless renewed (the acquiring or renewing
    /// command's `now` plus the TTL).
    pub expires_at: UnixNanos,
}

/// A variable as stored: metadata, the encrypted items and its lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Variable {
    pub namespace: String,
    pub path: String,
    pub items: EncryptedItems,
    pub create_index: Index,
    pub modify_index: Index,
    pub create_time: UnixNanos,
    pub modify_time: UnixNanos,
    #[serde(default)]
    pub lock: Option<VariableLock>,
    /// No new lock before this time: set when a lock lapses without being
    /// released (its lock-delay), 0 otherwise.
    #[serde(default)]
    pub lock_free_at: UnixNanos,
}

impl Variable {
    /// The lock, if one is held at `now` (a lapsed one is not).
    pub fn live_lock(&self, now: UnixNanos) -> Option<&VariableLock> {
        self.lock.as_ref().filter(|lock| now < lock.expires_at)
    }
}

/// A root key's state, as Nomad names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RootKeyState {
    /// Encrypts new writes; exactly one key is active once any exists.
    #[default]
    Active,
    /// Decrypts what it encrypted earlier; encrypts nothing new.
    Inactive,
}

impl RootKeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            RootKeyState::Active => "active",
            RootKeyState::Inactive => "inactive",
        }
    }
}

/// A root key's metadata (its material is in the servers' keystores).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RootKeyMeta {
    pub key_id: String,
    /// Always `aes256-gcm`.
    pub algorithm: String,
    pub create_time: UnixNanos,
    pub create_index: Index,
    pub modify_index: Index,
    pub state: RootKeyState,
}

/// The only algorithm root keys use.
pub const ROOT_KEY_ALGORITHM: &str = "aes256-gcm";

/// Checks a variable path against Nomad's rules: 1 to 128 bytes of
/// `A-Z a-z 0-9 - _ ~ /`, no empty segment, and under `nomad/` only
/// `nomad/jobs` and below.
pub fn validate_variable_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("variable path is empty".to_string());
    }
    if path.len() > MAX_VARIABLE_PATH {
        return Err(format!(
            "variable path is {} bytes long; the limit is {MAX_VARIABLE_PATH}",
            path.len()
        ));
    }
    if let Some(bad) = path
        .chars()
        .find(|ch| !(ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '~' | '/')))
    {
        return Err(format!(
            "variable path {path:?} contains {bad:?}: only letters, digits, '-', '_', '~' and '/' are allowed"
        ));
    }
    if path.split('/').any(str::is_empty) {
        return Err(format!(
            "variable path {path:?} has an empty segment (a leading, trailing or double '/')"
        ));
    }
    if (path == "nomad" || path.starts_with("nomad/")) && path != "nomad/jobs" && !path.starts_with("nomad/jobs/") {
        return Err(format!(
            "variable path {path:?} is reserved: under \"nomad/\" only \"nomad/jobs\" and its children may be written"
        ));
    }
    Ok(())
}

/// Checks a variable's plaintext items against the limits: at most
/// [`MAX_VARIABLE_ITEMS`] non-empty keys, at most
/// [`MAX_VARIABLE_ITEMS_BYTES`] encoded. Returns the encoded form.
pub fn encode_variable_items(items: &BTreeMap<String, String>) -> Result<Vec<u8>, String> {
    if items.len() > MAX_VARIABLE_ITEMS {
        return Err(format!(
            "variable has {} items; the limit is {MAX_VARIABLE_ITEMS}",
            items.len()
        ));
    }
    if items.keys().any(String::is_empty) {
        return Err("variable item keys must not be empty".to_string());
    }
    let encoded = serde_json::to_vec(items).map_err(|error| format!("encode variable items: {error}"))?;
    if encoded.len() > MAX_VARIABLE_ITEMS_BYTES {
        return Err(format!(
            "variable items are {} bytes encoded; the limit is {MAX_VARIABLE_ITEMS_BYTES}",
            encoded.len()
        ));
    }
    Ok(encoded)
}

/// Checks a lock's TTL and lock-delay.
pub fn validate_lock_durations(ttl_nanos: i64, lock_delay_nanos: i64) -> Result<(), String> {
    if !(MIN_LOCK_TTL_NANOS..=MAX_LOCK_DURATION_NANOS).contains(&ttl_nanos) {
        return Err("lock TTL must be between 10ms and 24h".to_string());
    }
    if !(0..=MAX_LOCK_DURATION_NANOS).contains(&lock_delay_nanos) {
        return Err("lock delay must be between 0 and 24h".to_string());
    }
    Ok(())
}

/// Byte strings as MessagePack binaries (compact) rather than arrays of
/// integers, without a dependency: serde's `bytes` hooks.
mod serde_bytes_compat {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Vec<u8>;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
                Ok(bytes.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(bytes)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(byte) = seq.next_element::<u8>()? {
                    out.push(byte);
                }
                Ok(out)
            }
        }
        deserializer.deserialize_byte_buf(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_nomads_rules() {
        for good in ["a", "app/config", "nomad/jobs", "nomad/jobs/web/group", "A-b_c~d/9"] {
            assert_eq!(validate_variable_path(good), Ok(()), "{good}");
        }
        let long = "a".repeat(MAX_VARIABLE_PATH + 1);
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "a b",
            "a.b",
            "nomad",
            "nomad/x",
            long.as_str(),
            "é",
        ] {
            assert!(validate_variable_path(bad).is_err(), "{bad}");
        }
        assert!(validate_variable_path(&"a".repeat(MAX_VARIABLE_PATH)).is_ok());
    }

    #[test]
    fn items_are_bounded() {
        let mut items = BTreeMap::new();
        items.insert("k".to_string(), "v".to_string());
        assert!(encode_variable_items(&items).is_ok());
        items.insert("big".to_string(), "x".repeat(MAX_VARIABLE_ITEMS_BYTES));
        assert!(
            encode_variable_items(&items)
                .expect_err("too big")
                .contains("the limit is 65536")
        );
        let many: BTreeMap<String, String> = (0..=MAX_VARIABLE_ITEMS)
            .map(|idx| (idx.to_string(), String::new()))
            .collect();
        assert!(encode_variable_items(&many).expect_err("too many").contains("items"));
        let empty_key: BTreeMap<String, String> = [(String::new(), "v".to_string())].into();
        assert!(encode_variable_items(&empty_key).is_err());
    }

    #[test]
    fn lock_durations_are_bounded() {
        assert!(validate_lock_durations(1_000_000_000, 0).is_ok());
        assert!(validate_lock_durations(0, 0).is_err());
        assert!(validate_lock_durations(1_000_000_000, -1).is_err());
        assert!(validate_lock_durations(MAX_LOCK_DURATION_NANOS + 1, 0).is_err());
    }
}
