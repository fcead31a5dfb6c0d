//! Variables on the server: validation, encryption before the log,
//! decryption on read, locks, and the leader's expiry of lapsed locks.
//!
//! Every variable command carries a `now`; the leader stamps it with its
//! own clock when it commits the command (`Server::write_local`), so lock
//! TTLs and delays are measured on one clock, the leader's, whichever
//! server took the request.

use crate::{Server, ServerError, new_id, now_nanos};
use state::{Command, CommandResult, VarOp};
use std::collections::BTreeMap;
use types::{Index, UnixNanos, Variable, VariableLock};

/// A variable with its items in plaintext (never stored so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecryptedVariable {
    pub meta: Variable,
    pub items: BTreeMap<String, String>,
}

/// What a variable write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarWriteOutcome {
    /// Done; the variable as written (none after a delete).
    Written(Option<DecryptedVariable>),
    /// Refused by its check-and-set index or a lock: the variable as it is
    /// (Nomad's 409), and why.
    Conflict {
        current: Option<DecryptedVariable>,
        reason: String,
    },
}

/// A lock request's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockRequest {
    pub ttl_nanos: i64,
    pub lock_delay_nanos: i64,
}

impl Server {
    fn check_variable_target(&self, namespace: &str, path: &str) -> Result<(), ServerError> {
        types::validate_variable_path(path).map_err(ServerError::BadRequest)?;
        if self.state().namespace(namespace).is_none() {
            return Err(ServerError::BadRequest(format!(
                "namespace {namespace:?} does not exist"
            )));
        }
        Ok(())
    }

    /// Decrypts a stored variable.
    pub async fn decrypt_variable(&self, var: &Variable) -> Result<DecryptedVariable, ServerError> {
        let items = self.open_items(&var.namespace, &var.path, &var.items).await?;
        Ok(DecryptedVariable {
            meta: var.clone(),
            items,
        })
    }

    /// Reads and decrypts one variable (`stale`: from this server's state).
    pub async fn read_variable(
        &self,
        namespace: &str,
        path: &str,
        stale: bool,
    ) -> Result<Option<DecryptedVariable>, ServerError> {
        let state = self.read_state(stale).await?;
        match state.variable(namespace, path) {
            Some(var) => Ok(Some(self.decrypt_variable(&var).await?)),
            None => Ok(None),
        }
    }

    async fn var_outcome(&self, result: CommandResult) -> Result<VarWriteOutcome, ServerError> {
        if result.conflict {
            let current = match &result.variable {
                Some(var) => Some(self.decrypt_variable(var).await?),
                None => None,
            };
            return Ok(VarWriteOutcome::Conflict {
                current,
                reason: result.error.unwrap_or_default(),
            });
        }
        if let Some(error) = result.error {
            return Err(if error.ends_with("not found") {
                ServerError::NotFound(error.trim_end_matches(" not found").to_string())
            } else {
                ServerError::BadRequest(error)
            });
        }
        match &result.variable {
            Some(var) => Ok(VarWriteOutcome::Written(Some(self.decrypt_variable(var).await?))),
            None => Ok(VarWriteOutcome::Written(None)),
        }
    }

    async fn var_write(&self, op: VarOp) -> Result<VarWriteOutcome, ServerError> {
        let result = self.write(Command::VarApply { op, now: now_nanos() }).await?;
        self.var_outcome(result).await
    }

    /// Creates or replaces a variable's items (`cas`: Nomad's
    /// check-and-set; `lock_id`: needed while the variable is locked).
    pub async fn put_variable(
        &self,
        namespace: &str,
        path: &str,
        items: &BTreeMap<String, String>,
        cas: Option<Index>,
        lock_id: Option<String>,
    ) -> Result<VarWriteOutcome, ServerError> {
        self.check_variable_target(namespace, path)?;
        let items = self.seal_items(namespace, path, items).await?;
        self.var_write(VarOp::Set {
            namespace: namespace.to_string(),
            path: path.to_string(),
            items,
            cas,
            lock_id,
        })
        .await
    }

    /// Deletes a variable (absent: nothing to do).
    pub async fn delete_variable(
        &self,
        namespace: &str,
        path: &str,
        cas: Option<Index>,
        lock_id: Option<String>,
    ) -> Result<VarWriteOutcome, ServerError> {
        types::validate_variable_path(path).map_err(ServerError::BadRequest)?;
        self.var_write(VarOp::Delete {
            namespace: namespace.to_string(),
            path: path.to_string(),
            cas,
            lock_id,
        })
        .await
    }

    /// Takes the lock on a variable (creating it; replacing its items when
    /// given). The lock ID is made here.
    pub async fn acquire_variable_lock(
        &self,
        namespace: &str,
        path: &str,
        items: Option<&BTreeMap<String, String>>,
        lock: LockRequest,
    ) -> Result<VarWriteOutcome, ServerError> {
        self.check_variable_target(namespace, path)?;
        types::validate_lock_durations(lock.ttl_nanos, lock.lock_delay_nanos).map_err(ServerError::BadRequest)?;
        let items = match items {
            Some(items) => Some(self.seal_items(namespace, path, items).await?),
            None => None,
        };
        self.var_write(VarOp::LockAcquire {
            namespace: namespace.to_string(),
            path: path.to_string(),
            items,
            lock: VariableLock {
                id: new_id(),
                ttl_nanos: lock.ttl_nanos,
                lock_delay_nanos: lock.lock_delay_nanos,
                expires_at: 0,
            },
        })
        .await
    }

    /// Renews a held lock by its TTL.
    pub async fn renew_variable_lock(
        &self,
        namespace: &str,
        path: &str,
        lock_id: &str,
    ) -> Result<VarWriteOutcome, ServerError> {
        types::validate_variable_path(path).map_err(ServerError::BadRequest)?;
        self.var_write(VarOp::LockRenew {
            namespace: namespace.to_string(),
            path: path.to_string(),
            lock_id: lock_id.to_string(),
        })
        .await
    }

    /// Gives a held lock up.
    pub async fn release_variable_lock(
        &self,
        namespace: &str,
        path: &str,
        lock_id: &str,
    ) -> Result<VarWriteOutcome, ServerError> {
        types::validate_variable_path(path).map_err(ServerError::BadRequest)?;
        self.var_write(VarOp::LockRelease {
            namespace: namespace.to_string(),
            path: path.to_string(),
            lock_id: lock_id.to_string(),
        })
        .await
    }
}

/// The locks in `state` that have lapsed at `now`: (namespace, path, ID).
pub(crate) fn lapsed_locks(state: &state::StateSnapshot, now: UnixNanos) -> Vec<(String, String, String)> {
    state
        .locked_variables()
        .iter()
        .filter_map(|var| {
            let lock = var.lock.as_ref()?;
            (now >= lock.expires_at).then(|| (var.namespace.clone(), var.path.clone(), lock.id.clone()))
        })
        .collect()
}

/// The leader's duty: record lapsed locks as expired (their lock-delay
/// starts at their expiry, whenever this runs).
pub(crate) async fn expire_locks(server: &Server) {
    for (namespace, path, lock_id) in lapsed_locks(&server.state(), now_nanos()) {
        let op = VarOp::LockExpire {
            namespace,
            path: path.clone(),
            lock_id,
        };
        if let Err(error) = server.write_local(Command::VarApply { op, now: now_nanos() }).await {
            tracing::warn!(%path, %error, "could not expire a lapsed variable lock");
        } else {
            tracing::info!(%path, "variable lock lapsed");
        }
    }
}
