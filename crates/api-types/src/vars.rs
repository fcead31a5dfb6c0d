//! Variables and the root keyring in Nomad's JSON shapes: `Variable`
//! (Nomad's `VariableDecrypted`), `VariableMetadata` (list entries),
//! `VariableLock` and `RootKeyMeta`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A variable without its items (what `GET /v1/vars` lists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct VariableMetadata {
    pub namespace: String,
    pub path: String,
    pub create_index: u64,
    pub modify_index: u64,
    /// Unix nanoseconds.
    pub create_time: i64,
    pub modify_time: i64,
    /// The lock, when one is held (its `ID` only in the holder's answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<VariableLock>,
}

/// A variable with its items in plaintext (Nomad's `VariableDecrypted`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Variable {
    #[serde(flatten)]
    pub meta: VariableMetadata,
    #[serde(default)]
    pub items: BTreeMap<String, String>,
}

/// A variable's lock: `ID` (made by the server), `TTL` and `LockDelay` as
/// Go durations ("15s").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct VariableLock {
    #[serde(rename = "ID", default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(rename = "TTL", default, skip_serializing_if = "String::is_empty")]
    pub ttl: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub lock_delay: String,
}

/// A root key's metadata (`GET /v1/operator/keyring/keys`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct RootKeyMeta {
    #[serde(rename = "KeyID")]
    pub key_id: String,
    pub algorithm: String,
    pub create_time: i64,
    pub create_index: u64,
    pub modify_index: u64,
    /// `active` or `inactive`.
    pub state: String,
}
