//! Nomad's JSON shapes for the ACL endpoints: policies, tokens (with and
//! without their secret), roles and the bootstrap request.

use crate::time::{format_rfc3339, parse_rfc3339};
use serde::{Deserialize, Deserializer, Serialize};

/// `GET/POST /v1/acl/policy/:name`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AclPolicy {
    pub name: String,
    pub description: String,
    pub rules: String,
    pub create_index: u64,
    pub modify_index: u64,
}

/// An entry of `GET /v1/acl/policies`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AclPolicyListStub {
    pub name: String,
    pub description: String,
    pub create_index: u64,
    pub modify_index: u64,
}

/// A role named by a token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AclTokenRoleLink {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
}

/// A policy named by a role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AclRolePolicyLink {
    #[serde(rename = "Name")]
    pub name: String,
}

/// A token, as created, read and listed (the list omits `SecretID`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AclToken {
    #[serde(rename = "AccessorID")]
    pub accessor_id: String,
    #[serde(rename = "SecretID", skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<String>,
    pub name: String,
    #[serde(rename = "Type")]
    pub token_type: String,
    pub policies: Vec<String>,
    pub roles: Vec<AclTokenRoleLink>,
    pub global: bool,
    pub create_time: String,
    pub expiration_time: Option<String>,
    /// Go's duration: a string ("1h0m0s") or nanoseconds on input; a
    /// string on output.
    #[serde(rename = "ExpirationTTL", deserialize_with = "duration_nanos")]
    pub expiration_ttl: TtlNanos,
    pub create_index: u64,
    pub modify_index: u64,
}

/// Nanoseconds, written as Go's `Duration.String()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TtlNanos(pub i64);

impl Serialize for TtlNanos {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&go_duration(self.0))
    }
}

fn duration_nanos<'de, D: Deserializer<'de>>(deserializer: D) -> Result<TtlNanos, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Nanos(i64),
        Text(String),
        Null(()),
    }
    match Either::deserialize(deserializer)? {
        Either::Nanos(nanos) => Ok(TtlNanos(nanos)),
        Either::Null(()) => Ok(TtlNanos(0)),
        Either::Text(text) if text.is_empty() => Ok(TtlNanos(0)),
        Either::Text(text) => types::duration::parse_duration(&text)
            .map_err(serde::de::Error::custom)
            .and_then(|duration| {
                i64::try_from(duration.as_nanos()).map_err(|_| serde::de::Error::custom("ExpirationTTL is too long"))
            })
            .map(TtlNanos),
    }
}

/// Formats nanoseconds as Go's `time.Duration.String()` does for the
/// values a TTL takes (`0s`, `90s` → `1m30s`, `1h0m0s`).
pub fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let nanos = nanos.unsigned_abs();
    if nanos < 1_000_000_000 {
        return format!("{sign}{}ms", nanos as f64 / 1e6);
    }
    let total_secs = nanos / 1_000_000_000;
    let frac = nanos % 1_000_000_000;
    let (hours, minutes, secs) = (total_secs / 3600, (total_secs % 3600) / 60, total_secs % 60);
    let seconds = if frac == 0 {
        format!("{secs}s")
    } else {
        let text = format!("{secs}.{frac:09}");
        format!("{}s", text.trim_end_matches('0'))
    };
    if hours > 0 {
        format!("{sign}{hours}h{minutes}m{seconds}")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{seconds}")
    } else {
        format!("{sign}{seconds}")
    }
}

/// A role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AclRole {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub description: String,
    pub policies: Vec<AclRolePolicyLink>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// `POST /v1/acl/bootstrap`'s optional body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AclBootstrapRequest {
    pub bootstrap_secret: String,
}

impl From<&types::AclPolicy> for AclPolicy {
    fn from(policy: &types::AclPolicy) -> AclPolicy {
        AclPolicy {
            name: policy.name.clone(),
            description: policy.description.clone(),
            rules: policy.rules.clone(),
            create_index: policy.create_index,
            modify_index: policy.modify_index,
        }
    }
}

impl From<&types::AclPolicy> for AclPolicyListStub {
    fn from(policy: &types::AclPolicy) -> AclPolicyListStub {
        AclPolicyListStub {
            name: policy.name.clone(),
            description: policy.description.clone(),
            create_index: policy.create_index,
            modify_index: policy.modify_index,
        }
    }
}

impl AclPolicy {
    /// The domain policy (indexes are set by the state).
    pub fn to_domain(&self) -> types::AclPolicy {
        types::AclPolicy {
            name: self.name.clone(),
            description: self.description.clone(),
            rules: self.rules.clone(),
            ..types::AclPolicy::default()
        }
    }
}

impl AclToken {
    /// The API form of a token; `with_secret` decides whether `SecretID`
    /// is shown.
    pub fn from_domain(token: &types::AclToken, with_secret: bool) -> AclToken {
        AclToken {
            accessor_id: token.accessor_id.clone(),
            secret_id: with_secret.then(|| token.secret_id.clone()),
            name: token.name.clone(),
            token_type: token.token_type.clone(),
            policies: token.policies.clone(),
            roles: token
                .roles
                .iter()
                .map(|role| AclTokenRoleLink {
                    id: role.id.clone(),
                    name: role.name.clone(),
                })
                .collect(),
            global: token.global,
            create_time: format_rfc3339(token.create_time),
            expiration_time: token.expiration_time.map(format_rfc3339),
            expiration_ttl: TtlNanos(token.expiration_ttl),
            create_index: token.create_index,
            modify_index: token.modify_index,
        }
    }

    /// The domain token a create or update request asks for.
    pub fn to_domain(&self) -> Result<types::AclToken, String> {
        let expiration_time = match self.expiration_time.as_deref() {
            None | Some("") => None,
            Some(text) => Some(parse_rfc3339(text).ok_or_else(|| format!("invalid ExpirationTime {text:?}"))?),
        };
        Ok(types::AclToken {
            accessor_id: self.accessor_id.clone(),
            name: self.name.clone(),
            token_type: self.token_type.clone(),
            policies: self.policies.clone(),
            roles: self
                .roles
                .iter()
                .map(|role| types::AclRoleLink {
                    id: role.id.clone(),
                    name: role.name.clone(),
                })
                .collect(),
            global: self.global,
            expiration_time,
            expiration_ttl: self.expiration_ttl.0,
            ..types::AclToken::default()
        })
    }
}

impl From<&types::AclRole> for AclRole {
    fn from(role: &types::AclRole) -> AclRole {
        AclRole {
            id: role.id.clone(),
            name: role.name.clone(),
            description: role.description.clone(),
            policies: role
                .policies
                .iter()
                .map(|name| AclRolePolicyLink { name: name.clone() })
                .collect(),
            create_index: role.create_index,
            modify_index: role.modify_index,
        }
    }
}

impl AclRole {
    /// The domain role a create or update request asks for.
    pub fn to_domain(&self) -> types::AclRole {
        types::AclRole {
            id: self.id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            policies: self.policies.iter().map(|link| link.name.clone()).collect(),
            ..types::AclRole::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_reads_strings_and_numbers_and_writes_go_strings() {
        let token: AclToken = serde_json::from_str(r#"{"ExpirationTTL": "1h"}"#).expect("string TTL");
        assert_eq!(token.expiration_ttl, TtlNanos(3_600_000_000_000));
        let token: AclToken = serde_json::from_str(r#"{"ExpirationTTL": 5000000000}"#).expect("number TTL");
        assert_eq!(token.expiration_ttl, TtlNanos(5_000_000_000));
        let token: AclToken = serde_json::from_str(r#"{"ExpirationTTL": null}"#).expect("null TTL");
        assert_eq!(token.expiration_ttl, TtlNanos(0));
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(0), "0s");
        let json = serde_json::to_value(AclToken::default()).expect("encode");
        assert_eq!(json["ExpirationTTL"], "0s");
        assert!(json.get("SecretID").is_none());
    }
}
