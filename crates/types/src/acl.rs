//! ACL objects as Nomad has them: policies (rules in Nomad's HCL policy
//! language, kept as text and compiled by the `acl` crate), tokens and
//! roles. They go into the Raft log, so fields are added with
//! `#[serde(default)]` and never renamed.

use crate::{Index, UnixNanos};
use serde::{Deserialize, Serialize};

/// A token that can do everything.
pub const TOKEN_TYPE_MANAGEMENT: &str = "management";
/// A token limited to its policies and roles.
pub const TOKEN_TYPE_CLIENT: &str = "client";
/// The policy that applies to requests that carry no token.
pub const ANONYMOUS_POLICY: &str = "anonymous";

/// Longest policy or role name (Nomad: 128).
pub const MAX_ACL_NAME: usize = 128;
/// Longest policy text accepted, in bytes.
pub const MAX_POLICY_RULES_BYTES: usize = 64 * 1024;
/// Most policies and roles one token (or role) may name.
pub const MAX_LINKS: usize = 64;
/// Longest description.
pub const MAX_ACL_DESCRIPTION: usize = 256;

/// A named set of rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AclPolicy {
    pub name: String,
    pub description: String,
    /// The rules, in Nomad's HCL policy language.
    pub rules: String,
    pub create_index: Index,
    pub modify_index: Index,
}

/// A role named by a token, by ID or by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AclRoleLink {
    pub id: String,
    pub name: String,
}

/// A bearer credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AclToken {
    /// The public handle of the token.
    pub accessor_id: String,
    /// The secret presented in `X-Nomad-Token`.
    pub secret_id: String,
    pub name: String,
    /// `client` or `management`.
    pub token_type: String,
    pub policies: Vec<String>,
    pub roles: Vec<AclRoleLink>,
    /// Replicated to every region (Drover has one region; kept as given).
    pub global: bool,
    pub create_time: UnixNanos,
    /// When the token stops working; `None`: never.
    pub expiration_time: Option<UnixNanos>,
    /// The TTL the token was created with, in nanoseconds (0: none).
    pub expiration_ttl: i64,
    pub create_index: Index,
    pub modify_index: Index,
}

impl AclToken {
    /// Whether this is a management token.
    pub fn is_management(&self) -> bool {
        self.token_type == TOKEN_TYPE_MANAGEMENT
    }

    /// Whether the token has expired at `now`.
    pub fn is_expired(&self, now: UnixNanos) -> bool {
        self.expiration_time.is_some_and(|expires| expires <= now)
    }
}

/// A named set of policies that tokens can share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AclRole {
    pub id: String,
    pub name: String,
    pub description: String,
    pub policies: Vec<String>,
    pub create_index: Index,
    pub modify_index: Index,
}

/// Checks a policy or role name: 1 to 128 letters, digits, `-` and `_`
/// (Nomad's rule).
pub fn validate_acl_name(kind: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_ACL_NAME {
        return Err(format!("{kind} name must be 1 to {MAX_ACL_NAME} characters"));
    }
    if !name
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
    {
        return Err(format!(
            "{kind} name {name:?} may contain only letters, digits, '-' and '_'"
        ));
    }
    Ok(())
}

/// Compares two secrets in time that depends only on their lengths, so a
/// caller cannot learn a secret byte by byte from response times.
pub fn secrets_equal(left: &str, right: &str) -> bool {
    let (left, right) = (left.as_bytes(), right.as_bytes());
    if left.len() != right.len() {
        return false;
    }
    let difference = left
        .iter()
        .zip(right)
        .fold(0u8, |acc, (a, b)| acc | std::hint::black_box(a ^ b));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_value() {
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abd"));
        assert!(!secrets_equal("abc", "abcd"));
        assert!(secrets_equal("", ""));
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_acl_name("policy", "read-only_1").is_ok());
        assert!(validate_acl_name("policy", "").is_err());
        assert!(validate_acl_name("policy", "a b").is_err());
        assert!(validate_acl_name("policy", &"x".repeat(129)).is_err());
    }

    #[test]
    fn expiry_is_inclusive() {
        let token = AclToken {
            expiration_time: Some(10),
            ..AclToken::default()
        };
        assert!(!token.is_expired(9));
        assert!(token.is_expired(10));
        assert!(!AclToken::default().is_expired(i64::MAX));
    }
}
