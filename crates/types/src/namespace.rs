//! Namespaces: named scopes for jobs (and, later, variables and
//! services). The `default` namespace always exists; every other one is
//! created by an operator before jobs may be registered in it.

use crate::{DEFAULT_NAMESPACE, Index, limits};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest namespace description, in characters (Nomad's limit).
pub const MAX_NAMESPACE_DESCRIPTION: usize = 256;

/// The description of the built-in `default` namespace, as Nomad has it.
pub const DEFAULT_NAMESPACE_DESCRIPTION: &str = "Default shared namespace";

/// A namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Namespace {
    pub name: String,
    pub description: String,
    /// The resource quota attached (Nomad Enterprise); always empty in
    /// Drover, which refuses a quota rather than ignore it.
    pub quota: String,
    pub meta: BTreeMap<String, String>,
    pub create_index: Index,
    pub modify_index: Index,
}

impl Namespace {
    /// The built-in `default` namespace, as it is until an operator
    /// changes its description or metadata.
    pub fn builtin_default() -> Namespace {
        Namespace {
            name: DEFAULT_NAMESPACE.to_string(),
            description: DEFAULT_NAMESPACE_DESCRIPTION.to_string(),
            create_index: 1,
            modify_index: 1,
            ..Namespace::default()
        }
    }

    /// Checks what an operator may write: a name of 1 to 128 letters,
    /// digits and dashes (Nomad's rule), a description of at most 256
    /// characters, and no quota (Drover has no quotas).
    pub fn validate(&self) -> Result<(), String> {
        validate_namespace_name(&self.name)?;
        if self.description.chars().count() > MAX_NAMESPACE_DESCRIPTION {
            return Err(format!(
                "namespace description is longer than {MAX_NAMESPACE_DESCRIPTION} characters"
            ));
        }
        if !self.quota.is_empty() {
            return Err(format!(
                "namespace quota {:?}: quotas are not supported by Drover (a Nomad Enterprise feature)",
                self.quota
            ));
        }
        Ok(())
    }
}

/// Whether `name` may name a namespace: 1 to 128 ASCII letters, digits
/// and dashes.
pub fn validate_namespace_name(name: &str) -> Result<(), String> {
    let shown: String = name.chars().take(limits::MAX_NAME_LEN).collect();
    if name.is_empty() {
        return Err("namespace name is empty".to_string());
    }
    if name.len() > limits::MAX_NAME_LEN {
        return Err(format!(
            "namespace name {shown:?}… is longer than {} characters",
            limits::MAX_NAME_LEN
        ));
    }
    if !name.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-') {
        return Err(format!(
            "invalid namespace name {shown:?}: only letters, digits and dashes are allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_nomads_rule() {
        for good in ["default", "prod", "team-a", "A1", &"n".repeat(128)] {
            assert_eq!(validate_namespace_name(good), Ok(()), "{good}");
        }
        for bad in ["", "a b", "a/b", "a_b", "ü", &"n".repeat(129)] {
            assert!(validate_namespace_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quotas_and_long_descriptions_are_refused() {
        let mut namespace = Namespace {
            name: "prod".into(),
            ..Namespace::default()
        };
        assert_eq!(namespace.validate(), Ok(()));
        namespace.quota = "small".into();
        assert!(namespace.validate().expect_err("no quotas").contains("quota"));
        namespace.quota.clear();
        namespace.description = "d".repeat(257);
        assert!(namespace.validate().is_err());
        assert_eq!(Namespace::builtin_default().validate(), Ok(()));
    }
}
