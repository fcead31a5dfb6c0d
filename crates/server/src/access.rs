//! The ACL system's server side: bootstrap (once, unless the operator
//! writes the bootstrap-reset file), policies, tokens and roles written
//! through Raft, and the resolution of a presented secret to an [`Acl`].
//!
//! Secrets and IDs are made here, before the log. Tokens are resolved
//! from this server's own state, as Nomad does.

use crate::{Server, ServerError, new_id, now_nanos};
use acl::Acl;
use state::Command;
use std::sync::Arc;
use std::time::Duration;
use types::{
    ANONYMOUS_POLICY, AclPolicy, AclRole, AclRoleLink, AclToken, Index, MAX_ACL_DESCRIPTION, MAX_LINKS,
    TOKEN_TYPE_CLIENT, TOKEN_TYPE_MANAGEMENT, validate_acl_name,
};

/// The file in `<data_dir>/server/` whose content, the index of the last
/// bootstrap, allows one more bootstrap (Nomad's name).
pub const BOOTSTRAP_RESET_FILE: &str = "acl-bootstrap-reset";

/// The ACL settings of the agent's `acl { }` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclConfig {
    pub enabled: bool,
    /// Shortest `ExpirationTTL` a token may be given (Nomad: 1 minute).
    pub token_min_expiration_ttl: Duration,
    /// Longest `ExpirationTTL` a token may be given (Nomad: 24 hours).
    pub token_max_expiration_ttl: Duration,
}

impl Default for AclConfig {
    fn default() -> AclConfig {
        AclConfig {
            enabled: false,
            token_min_expiration_ttl: Duration::from_secs(60),
            token_max_expiration_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// Who a request's token says the caller is.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token, or `None` for a request without one (anonymous) and for
    /// every request while ACLs are off.
    pub token: Option<Arc<AclToken>>,
    /// What the caller may do.
    pub acl: Arc<Acl>,
}

impl Caller {
    /// The caller when ACLs are disabled: everything is allowed.
    pub fn unrestricted() -> Caller {
        Caller {
            token: None,
            acl: Arc::new(Acl::management()),
        }
    }

    /// Whether the caller may read the policy `name` (management, or the
    /// policy is attached to its token directly or through a role).
    pub fn may_read_policy(&self, state: &state::StateSnapshot, name: &str) -> bool {
        if self.acl.is_management() {
            return true;
        }
        self.token
            .as_ref()
            .is_some_and(|token| policy_names(state, token).iter().any(|policy| policy == name))
    }
}

/// A token's policies, its roles' included.
pub fn policy_names(state: &state::StateSnapshot, token: &AclToken) -> Vec<String> {
    let mut names = token.policies.clone();
    for link in &token.roles {
        if let Some(role) = state.acl_role(&link.id) {
            names.extend(role.policies.iter().cloned());
        }
    }
    names.sort();
    names.dedup();
    names
}

/// The ACL of a set of policies (missing ones grant nothing).
fn compile(state: &state::StateSnapshot, names: &[String]) -> Acl {
    let policies: Vec<acl::Policy> = names
        .iter()
        .filter_map(|name| state.acl_policy(name))
        .filter_map(|policy| match acl::parse_policy(&policy.rules) {
            Ok(parsed) => Some(parsed),
            Err(errors) => {
                // Stored policies were checked on write; a failure here is
                // a bug, and the policy then grants nothing.
                tracing::error!(policy = %policy.name, ?errors, "stored ACL policy does not parse");
                None
            }
        })
        .collect();
    Acl::compile(&policies)
}

impl Server {
    /// Whether ACLs are enforced.
    pub fn acl_enabled(&self) -> bool {
        self.config().acl.enabled
    }

    /// Resolves a presented secret (`None`: no token) to the caller.
    /// With ACLs off everything is allowed. An unknown secret and an
    /// expired token are refused; no token means the `anonymous` policy.
    pub fn resolve_token(&self, secret: Option<&str>) -> Result<Caller, ServerError> {
        if !self.acl_enabled() {
            return Ok(Caller::unrestricted());
        }
        let state = self.state();
        let Some(secret) = secret.filter(|secret| !secret.is_empty()) else {
            return Ok(Caller {
                token: None,
                acl: Arc::new(compile(&state, &[ANONYMOUS_POLICY.to_string()])),
            });
        };
        let Some(token) = state.acl_token_by_secret(secret) else {
            return Err(ServerError::PermissionDenied("ACL token not found".to_string()));
        };
        if token.is_expired(now_nanos()) {
            return Err(ServerError::PermissionDenied("ACL token expired".to_string()));
        }
        let acl = if token.is_management() {
            Acl::management()
        } else {
            compile(&state, &policy_names(&state, &token))
        };
        Ok(Caller {
            token: Some(token),
            acl: Arc::new(acl),
        })
    }

    /// Bootstraps the ACL system: creates the first management token
    /// (with `secret`, or a new one). Refused once done, unless the
    /// bootstrap-reset file holds the index of the last bootstrap.
    pub async fn acl_bootstrap(&self, secret: Option<String>) -> Result<AclToken, ServerError> {
        if !self.acl_enabled() {
            return Err(ServerError::BadRequest("ACL support disabled".to_string()));
        }
        if let Some(secret) = &secret
            && uuid::Uuid::parse_str(secret).is_err()
        {
            return Err(ServerError::BadRequest("BootstrapSecret must be a UUID".to_string()));
        }
        let reset_path = self.config().data_dir.join("server").join(BOOTSTRAP_RESET_FILE);
        let reset_index = match std::fs::read_to_string(&reset_path) {
            Ok(text) => Some(text.trim().parse::<Index>().map_err(|_| {
                ServerError::BadRequest(format!(
                    "{} must hold the reset index, a whole number",
                    reset_path.display()
                ))
            })?),
            Err(_) => None,
        };
        let token = AclToken {
            accessor_id: new_id(),
            secret_id: secret.unwrap_or_else(new_id),
            name: "Bootstrap Token".to_string(),
            token_type: TOKEN_TYPE_MANAGEMENT.to_string(),
            global: true,
            create_time: now_nanos(),
            ..AclToken::default()
        };
        let accessor = token.accessor_id.clone();
        let result = self.write(Command::AclBootstrap { token, reset_index }).await?;
        if let Some(error) = result.error {
            return Err(ServerError::BadRequest(error));
        }
        self.wait_applied(result.index).await;
        self.state()
            .acl_token(&accessor)
            .map(|token| (*token).clone())
            .ok_or_else(|| ServerError::Internal("bootstrap token missing after its write".to_string()))
    }

    /// Creates or replaces an ACL policy, after checking its name and
    /// parsing its rules.
    pub async fn upsert_acl_policy(&self, policy: AclPolicy) -> Result<Index, ServerError> {
        validate_acl_name("policy", &policy.name).map_err(ServerError::BadRequest)?;
        if policy.description.chars().count() > MAX_ACL_DESCRIPTION {
            return Err(ServerError::BadRequest(format!(
                "policy description is longer than {MAX_ACL_DESCRIPTION} characters"
            )));
        }
        acl::parse_policy(&policy.rules).map_err(|errors| {
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            ServerError::BadRequest(format!("policy {:?}: {}", policy.name, text.join("; ")))
        })?;
        let result = self.write(Command::AclPolicyUpsert { policies: vec![policy] }).await?;
        Ok(result.index)
    }

    /// Deletes an ACL policy.
    pub async fn delete_acl_policy(&self, name: &str) -> Result<Index, ServerError> {
        if self.state().acl_policy(name).is_none() {
            return Err(ServerError::NotFound(format!("ACL policy {name:?}")));
        }
        let result = self
            .write(Command::AclPolicyDelete {
                names: vec![name.to_string()],
            })
            .await?;
        match result.error {
            Some(error) => Err(ServerError::BadRequest(error)),
            None => Ok(result.index),
        }
    }

    /// Creates a token (`accessor_id` empty) or updates one. Secrets,
    /// accessors and the creation time are made here; an `ExpirationTTL`
    /// sets the expiration time, within the configured bounds.
    pub async fn upsert_acl_token(&self, mut token: AclToken) -> Result<AclToken, ServerError> {
        let state = self.state();
        let existing = if token.accessor_id.is_empty() {
            None
        } else {
            Some(
                state
                    .acl_token(&token.accessor_id)
                    .ok_or_else(|| ServerError::NotFound(format!("ACL token {:?}", token.accessor_id)))?,
            )
        };
        if token.token_type.is_empty() {
            token.token_type = TOKEN_TYPE_CLIENT.to_string();
        }
        match token.token_type.as_str() {
            TOKEN_TYPE_CLIENT if token.policies.is_empty() && token.roles.is_empty() => {
                return Err(ServerError::BadRequest(
                    "client token must have at least one policy or role".to_string(),
                ));
            }
            TOKEN_TYPE_CLIENT => {}
            TOKEN_TYPE_MANAGEMENT if !token.policies.is_empty() || !token.roles.is_empty() => {
                return Err(ServerError::BadRequest(
                    "management token cannot be associated with policies or roles".to_string(),
                ));
            }
            TOKEN_TYPE_MANAGEMENT => {}
            other => {
                return Err(ServerError::BadRequest(format!(
                    "token type must be client or management, not {other:?}"
                )));
            }
        }
        if token.name.chars().count() > 256 {
            return Err(ServerError::BadRequest(
                "token name is longer than 256 characters".to_string(),
            ));
        }
        if token.policies.len() > MAX_LINKS || token.roles.len() > MAX_LINKS {
            return Err(ServerError::BadRequest(format!(
                "a token may name at most {MAX_LINKS} policies and {MAX_LINKS} roles"
            )));
        }
        for policy in &token.policies {
            if state.acl_policy(policy).is_none() {
                return Err(ServerError::BadRequest(format!("cannot find policy {policy:?}")));
            }
        }
        let mut roles = Vec::new();
        for link in &token.roles {
            let role = if !link.id.is_empty() {
                state.acl_role(&link.id)
            } else {
                state.acl_role_by_name(&link.name)
            };
            let Some(role) = role else {
                return Err(ServerError::BadRequest(format!(
                    "cannot find role {:?}",
                    if link.id.is_empty() { &link.name } else { &link.id }
                )));
            };
            roles.push(AclRoleLink {
                id: role.id.clone(),
                name: role.name.clone(),
            });
        }
        token.roles = roles;
        token.policies.sort();
        token.policies.dedup();
        match existing {
            Some(existing) => {
                // What a token is cannot change after creation.
                if existing.token_type != token.token_type {
                    return Err(ServerError::BadRequest("cannot change the token type".to_string()));
                }
                token.secret_id = existing.secret_id.clone();
                token.create_time = existing.create_time;
                token.expiration_time = existing.expiration_time;
                token.expiration_ttl = existing.expiration_ttl;
                token.global = existing.global;
            }
            None => {
                let now = now_nanos();
                token.accessor_id = new_id();
                token.secret_id = new_id();
                token.create_time = now;
                if token.expiration_ttl != 0 {
                    let config = &self.config().acl;
                    let ttl = Duration::from_nanos(
                        u64::try_from(token.expiration_ttl)
                            .map_err(|_| ServerError::BadRequest("ExpirationTTL cannot be negative".to_string()))?,
                    );
                    if ttl < config.token_min_expiration_ttl || ttl > config.token_max_expiration_ttl {
                        return Err(ServerError::BadRequest(format!(
                            "expiration time cannot be less than {:?} or more than {:?} in the future",
                            config.token_min_expiration_ttl, config.token_max_expiration_ttl
                        )));
                    }
                    token.expiration_time = Some(now.saturating_add(token.expiration_ttl));
                } else if let Some(expires) = token.expiration_time
                    && expires <= now
                {
                    return Err(ServerError::BadRequest("expiration time is in the past".to_string()));
                }
            }
        }
        let accessor = token.accessor_id.clone();
        let result = self.write(Command::AclTokenUpsert { tokens: vec![token] }).await?;
        self.wait_applied(result.index).await;
        self.state()
            .acl_token(&accessor)
            .map(|token| (*token).clone())
            .ok_or_else(|| ServerError::Internal("token missing after its write".to_string()))
    }

    /// Deletes a token by accessor ID.
    pub async fn delete_acl_token(&self, accessor_id: &str) -> Result<Index, ServerError> {
        if self.state().acl_token(accessor_id).is_none() {
            return Err(ServerError::NotFound(format!("ACL token {accessor_id:?}")));
        }
        let result = self
            .write(Command::AclTokenDelete {
                accessor_ids: vec![accessor_id.to_string()],
            })
            .await?;
        match result.error {
            Some(error) => Err(ServerError::BadRequest(error)),
            None => Ok(result.index),
        }
    }

    /// Creates a role (`id` empty) or updates one.
    pub async fn upsert_acl_role(&self, mut role: AclRole) -> Result<AclRole, ServerError> {
        validate_acl_name("role", &role.name).map_err(ServerError::BadRequest)?;
        if role.description.chars().count() > MAX_ACL_DESCRIPTION {
            return Err(ServerError::BadRequest(format!(
                "role description is longer than {MAX_ACL_DESCRIPTION} characters"
            )));
        }
        if role.policies.is_empty() || role.policies.len() > MAX_LINKS {
            return Err(ServerError::BadRequest(format!(
                "a role must name 1 to {MAX_LINKS} policies"
            )));
        }
        let state = self.state();
        for policy in &role.policies {
            if state.acl_policy(policy).is_none() {
                return Err(ServerError::BadRequest(format!("cannot find policy {policy:?}")));
            }
        }
        if role.id.is_empty() {
            role.id = new_id();
        } else if state.acl_role(&role.id).is_none() {
            return Err(ServerError::NotFound(format!("ACL role {:?}", role.id)));
        }
        role.policies.sort();
        role.policies.dedup();
        let id = role.id.clone();
        let result = self.write(Command::AclRoleUpsert { roles: vec![role] }).await?;
        if let Some(error) = result.error {
            return Err(ServerError::BadRequest(error));
        }
        self.wait_applied(result.index).await;
        self.state()
            .acl_role(&id)
            .map(|role| (*role).clone())
            .ok_or_else(|| ServerError::Internal("role missing after its write".to_string()))
    }

    /// Deletes a role by ID.
    pub async fn delete_acl_role(&self, id: &str) -> Result<Index, ServerError> {
        if self.state().acl_role(id).is_none() {
            return Err(ServerError::NotFound(format!("ACL role {id:?}")));
        }
        let result = self
            .write(Command::AclRoleDelete {
                ids: vec![id.to_string()],
            })
            .await?;
        match result.error {
            Some(error) => Err(ServerError::BadRequest(error)),
            None => Ok(result.index),
        }
    }

    /// Waits until this server has applied `index` (a follower's write
    /// returns once the leader committed it).
    async fn wait_applied(&self, index: Index) {
        let mut applied = self.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(10), applied.wait_for(|at| *at >= index)).await;
    }
}
