//! ACL tables: policies by name, tokens by accessor ID with an index by
//! the SHA-256 of their secret, roles by ID, and the index the cluster's
//! ACL bootstrap was done at.
//!
//! A token is found by the hash of the presented secret, so the lookup's
//! timing depends on the hash, never on how much of the secret matched;
//! the stored secret is then compared in constant time.

use crate::command::{Command, CommandResult};
use crate::store::StateSnapshot;
use imbl::OrdMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use types::{AclPolicy, AclRole, AclToken, Index};

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct AclTables {
    policies: OrdMap<String, Arc<AclPolicy>>,
    tokens: OrdMap<String, Arc<AclToken>>,
    /// SHA-256 of the secret → accessor ID.
    tokens_by_secret_hash: OrdMap<[u8; 32], String>,
    roles: OrdMap<String, Arc<AclRole>>,
    /// The index of the last bootstrap (0: never bootstrapped).
    bootstrap_index: Index,
}

/// The snapshot form.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct PersistedAcl {
    policies: Vec<AclPolicy>,
    tokens: Vec<AclToken>,
    roles: Vec<AclRole>,
    bootstrap_index: Index,
}

fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl AclTables {
    pub(crate) fn persisted(&self) -> PersistedAcl {
        PersistedAcl {
            policies: self.policies.values().map(|policy| (**policy).clone()).collect(),
            tokens: self.tokens.values().map(|token| (**token).clone()).collect(),
            roles: self.roles.values().map(|role| (**role).clone()).collect(),
            bootstrap_index: self.bootstrap_index,
        }
    }

    pub(crate) fn from_persisted(persisted: PersistedAcl) -> AclTables {
        let mut tables = AclTables {
            bootstrap_index: persisted.bootstrap_index,
            ..AclTables::default()
        };
        for policy in persisted.policies {
            tables.policies.insert(policy.name.clone(), Arc::new(policy));
        }
        for token in persisted.tokens {
            tables.put_token(token);
        }
        for role in persisted.roles {
            tables.roles.insert(role.id.clone(), Arc::new(role));
        }
        tables
    }

    fn put_token(&mut self, token: AclToken) {
        if let Some(old) = self.tokens.get(&token.accessor_id) {
            self.tokens_by_secret_hash.remove(&secret_hash(&old.secret_id));
        }
        self.tokens_by_secret_hash
            .insert(secret_hash(&token.secret_id), token.accessor_id.clone());
        self.tokens.insert(token.accessor_id.clone(), Arc::new(token));
    }
}

impl StateSnapshot {
    /// An ACL policy by name.
    pub fn acl_policy(&self, name: &str) -> Option<Arc<AclPolicy>> {
        self.acl.policies.get(name).cloned()
    }

    /// Every ACL policy, by name.
    pub fn acl_policies(&self) -> Vec<Arc<AclPolicy>> {
        self.acl.policies.values().cloned().collect()
    }

    /// An ACL token by accessor ID.
    pub fn acl_token(&self, accessor_id: &str) -> Option<Arc<AclToken>> {
        self.acl.tokens.get(accessor_id).cloned()
    }

    /// The token whose secret is `secret`, compared in constant time.
    pub fn acl_token_by_secret(&self, secret: &str) -> Option<Arc<AclToken>> {
        let accessor = self.acl.tokens_by_secret_hash.get(&secret_hash(secret))?;
        let token = self.acl.tokens.get(accessor)?;
        types::secrets_equal(&token.secret_id, secret).then(|| Arc::clone(token))
    }

    /// Every ACL token, by accessor ID.
    pub fn acl_tokens(&self) -> Vec<Arc<AclToken>> {
        self.acl.tokens.values().cloned().collect()
    }

    /// An ACL role by ID.
    pub fn acl_role(&self, id: &str) -> Option<Arc<AclRole>> {
        self.acl.roles.get(id).cloned()
    }

    /// An ACL role by name.
    pub fn acl_role_by_name(&self, name: &str) -> Option<Arc<AclRole>> {
        self.acl.roles.values().find(|role| role.name == name).cloned()
    }

    /// Every ACL role, by ID.
    pub fn acl_roles(&self) -> Vec<Arc<AclRole>> {
        self.acl.roles.values().cloned().collect()
    }

    /// The index the ACL system was bootstrapped at (0: not yet).
    pub fn acl_bootstrap_index(&self) -> Index {
        self.acl.bootstrap_index
    }

    pub(crate) fn apply_acl(&mut self, index: Index, command: Command, result: &mut CommandResult) {
        match command {
            Command::AclBootstrap { mut token, reset_index } => {
                let done = self.acl.bootstrap_index;
                if done != 0 && reset_index != Some(done) {
                    result.error = Some(format!("ACL bootstrap already done (reset index: {done})"));
                    return;
                }
                token.create_index = index;
                token.modify_index = index;
                self.acl.put_token(token);
                self.acl.bootstrap_index = index;
                self.tables.acl_tokens = index;
            }
            Command::AclPolicyUpsert { policies } => {
                for mut policy in policies {
                    policy.create_index = self
                        .acl
                        .policies
                        .get(&policy.name)
                        .map_or(index, |existing| existing.create_index);
                    policy.modify_index = index;
                    self.acl.policies.insert(policy.name.clone(), Arc::new(policy));
                }
                self.tables.acl_policies = index;
            }
            Command::AclPolicyDelete { names } => {
                if let Some(missing) = names.iter().find(|name| !self.acl.policies.contains_key(*name)) {
                    result.error = Some(format!("ACL policy {missing:?} not found"));
                    return;
                }
                for name in &names {
                    self.acl.policies.remove(name);
                }
                self.tables.acl_policies = index;
            }
            Command::AclTokenUpsert { tokens } => {
                for mut token in tokens {
                    token.create_index = self
                        .acl
                        .tokens
                        .get(&token.accessor_id)
                        .map_or(index, |existing| existing.create_index);
                    token.modify_index = index;
                    self.acl.put_token(token);
                }
                self.tables.acl_tokens = index;
            }
            Command::AclTokenDelete { accessor_ids } => {
                if let Some(missing) = accessor_ids.iter().find(|id| !self.acl.tokens.contains_key(*id)) {
                    result.error = Some(format!("ACL token {missing:?} not found"));
                    return;
                }
                for id in &accessor_ids {
                    if let Some(token) = self.acl.tokens.remove(id) {
                        self.acl.tokens_by_secret_hash.remove(&secret_hash(&token.secret_id));
                    }
                }
                self.tables.acl_tokens = index;
            }
            Command::AclRoleUpsert { roles } => {
                for role in &roles {
                    let taken = self
                        .acl
                        .roles
                        .values()
                        .any(|other| other.name == role.name && other.id != role.id)
                        || roles.iter().any(|other| other.name == role.name && other.id != role.id);
                    if taken {
                        result.error = Some(format!("ACL role name {:?} is already in use", role.name));
                        return;
                    }
                }
                for mut role in roles {
                    role.create_index = self
                        .acl
                        .roles
                        .get(&role.id)
                        .map_or(index, |existing| existing.create_index);
                    role.modify_index = index;
                    self.acl.roles.insert(role.id.clone(), Arc::new(role));
                }
                self.tables.acl_roles = index;
            }
            Command::AclRoleDelete { ids } => {
                if let Some(missing) = ids.iter().find(|id| !self.acl.roles.contains_key(*id)) {
                    result.error = Some(format!("ACL role {missing:?} not found"));
                    return;
                }
                for id in &ids {
                    self.acl.roles.remove(id);
                }
                self.tables.acl_roles = index;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use types::TOKEN_TYPE_MANAGEMENT;

    fn token(accessor: &str, secret: &str) -> AclToken {
        AclToken {
            accessor_id: accessor.to_string(),
            secret_id: secret.to_string(),
            token_type: TOKEN_TYPE_MANAGEMENT.to_string(),
            ..AclToken::default()
        }
    }

    #[test]
    fn bootstrap_works_once_unless_reset_names_its_index() {
        let mut state = StateSnapshot::new();
        let first = state.apply(
            5,
            Command::AclBootstrap {
                token: token("a1", "s1"),
                reset_index: None,
            },
        );
        assert_eq!(first.error, None);
        assert_eq!(state.acl_bootstrap_index(), 5);
        let again = state.apply(
            6,
            Command::AclBootstrap {
                token: token("a2", "s2"),
                reset_index: None,
            },
        );
        assert_eq!(
            again.error.as_deref(),
            Some("ACL bootstrap already done (reset index: 5)")
        );
        let wrong = state.apply(
            7,
            Command::AclBootstrap {
                token: token("a2", "s2"),
                reset_index: Some(4),
            },
        );
        assert!(wrong.error.is_some());
        let reset = state.apply(
            8,
            Command::AclBootstrap {
                token: token("a3", "s3"),
                reset_index: Some(5),
            },
        );
        assert_eq!(reset.error, None);
        assert_eq!(state.acl_bootstrap_index(), 8);
        assert!(state.acl_token_by_secret("s3").is_some());
        assert!(state.acl_token_by_secret("s2").is_none());
    }

    #[test]
    fn tokens_are_found_by_secret_and_survive_a_snapshot() {
        let mut state = StateSnapshot::new();
        state.apply(
            3,
            Command::AclTokenUpsert {
                tokens: vec![token("a1", "s1")],
            },
        );
        let mut changed = token("a1", "s1-new");
        changed.name = "renamed".to_string();
        state.apply(4, Command::AclTokenUpsert { tokens: vec![changed] });
        assert!(state.acl_token_by_secret("s1").is_none());
        let found = state.acl_token_by_secret("s1-new").expect("new secret");
        assert_eq!((found.create_index, found.modify_index), (3, 4));
        state.apply(
            5,
            Command::AclPolicyUpsert {
                policies: vec![AclPolicy {
                    name: "read".to_string(),
                    rules: "node { policy = \"read\" }".to_string(),
                    ..AclPolicy::default()
                }],
            },
        );
        let bytes = serde_json::to_vec(&state).expect("encode");
        let back: StateSnapshot = serde_json::from_slice(&bytes).expect("decode");
        assert_eq!(back, state);
        assert!(back.acl_token_by_secret("s1-new").is_some());
        assert_eq!(back.acl_policy("read").map(|policy| policy.create_index), Some(5));
        let deleted = state.apply(
            6,
            Command::AclTokenDelete {
                accessor_ids: vec!["a1".to_string()],
            },
        );
        assert_eq!(deleted.error, None);
        assert!(state.acl_token_by_secret("s1-new").is_none());
        let missing = state.apply(
            7,
            Command::AclTokenDelete {
                accessor_ids: vec!["a1".to_string()],
            },
        );
        assert!(missing.error.is_some());
    }

    #[test]
    fn role_names_are_unique() {
        let mut state = StateSnapshot::new();
        let role = |id: &str, name: &str| AclRole {
            id: id.to_string(),
            name: name.to_string(),
            ..AclRole::default()
        };
        assert_eq!(
            state
                .apply(
                    2,
                    Command::AclRoleUpsert {
                        roles: vec![role("r1", "ops")]
                    }
                )
                .error,
            None
        );
        let clash = state.apply(
            3,
            Command::AclRoleUpsert {
                roles: vec![role("r2", "ops")],
            },
        );
        assert!(clash.error.is_some());
        assert_eq!(
            state.acl_role_by_name("ops").map(|role| role.id.clone()),
            Some("r1".to_string())
        );
        assert_eq!(
            state
                .apply(
                    4,
                    Command::AclRoleDelete {
                        ids: vec!["r1".to_string()]
                    }
                )
                .error,
            None
        );
        assert!(state.acl_roles().is_empty());
    }
}
