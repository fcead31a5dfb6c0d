//! Variables (encrypted items, check-and-set, locks) and the root keys'
//! metadata.
//!
//! Everything here is judged at the `now` the command carries, so lock
//! expiry is deterministic: a lock whose `expires_at` has passed is lapsed
//! for every server that applies the command, whatever its own clock says.
//! The leader writes [`VarOp::LockExpire`] for lapsed locks so that readers
//! see them gone, but acquisition never depends on that write having
//! happened. Items arrive encrypted; this module never sees plaintext.

use crate::command::{Command, CommandResult, VarOp};
use crate::store::StateSnapshot;
use imbl::OrdMap;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use types::{Index, RootKeyMeta, RootKeyState, UnixNanos, Variable, VariableLock};

/// Most variables the cluster stores (Drover's own bound: variables are
/// small configuration, not a database).
pub const MAX_VARIABLES: usize = 100_000;

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct VarTables {
    /// (namespace, path) → variable.
    vars: OrdMap<(String, String), Arc<Variable>>,
    /// Key ID → metadata.
    root_keys: OrdMap<String, Arc<RootKeyMeta>>,
}

/// The snapshot form.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct PersistedVars {
    vars: Vec<Variable>,
    root_keys: Vec<RootKeyMeta>,
}

impl VarTables {
    pub(crate) fn persisted(&self) -> PersistedVars {
        PersistedVars {
            vars: self.vars.values().map(|var| (**var).clone()).collect(),
            root_keys: self.root_keys.values().map(|key| (**key).clone()).collect(),
        }
    }

    pub(crate) fn from_persisted(persisted: PersistedVars) -> VarTables {
        VarTables {
            vars: persisted
                .vars
                .into_iter()
                .map(|var| ((var.namespace.clone(), var.path.clone()), Arc::new(var)))
                .collect(),
            root_keys: persisted
                .root_keys
                .into_iter()
                .map(|key| (key.key_id.clone(), Arc::new(key)))
                .collect(),
        }
    }
}

/// Why an operation on a variable was refused with the variable as it is
/// (Nomad answers these with 409 and the conflicting variable).
fn conflict(result: &mut CommandResult, current: Option<&Arc<Variable>>, message: String) {
    result.conflict = true;
    result.variable = current.map(|var| (**var).clone());
    result.error = Some(message);
}

impl StateSnapshot {
    /// A variable by namespace and path.
    pub fn variable(&self, namespace: &str, path: &str) -> Option<Arc<Variable>> {
        self.vars.vars.get(&(namespace.to_string(), path.to_string())).cloned()
    }

    /// Variables whose path starts with `prefix`, in `namespace` (every
    /// namespace with `None`), ordered by namespace and path.
    pub fn variables(&self, namespace: Option<&str>, prefix: &str) -> Vec<Arc<Variable>> {
        self.vars
            .vars
            .values()
            .filter(|var| namespace.is_none_or(|namespace| var.namespace == namespace) && var.path.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Every variable holding a lock record (lapsed or not).
    pub fn locked_variables(&self) -> Vec<Arc<Variable>> {
        self.vars
            .vars
            .values()
            .filter(|var| var.lock.is_some())
            .cloned()
            .collect()
    }

    /// Every root key's metadata, oldest first.
    pub fn root_keys(&self) -> Vec<Arc<RootKeyMeta>> {
        let mut keys: Vec<Arc<RootKeyMeta>> = self.vars.root_keys.values().cloned().collect();
        keys.sort_by_key(|key| key.create_index);
        keys
    }

    /// The key that encrypts new writes.
    pub fn active_root_key(&self) -> Option<Arc<RootKeyMeta>> {
        self.vars
            .root_keys
            .values()
            .find(|key| key.state == RootKeyState::Active)
            .cloned()
    }

    pub(crate) fn apply_vars(&mut self, index: Index, command: Command, result: &mut CommandResult) {
        match command {
            Command::RootKeyUpsert { mut key } => {
                let others: Vec<Arc<RootKeyMeta>> = self
                    .vars
                    .root_keys
                    .values()
                    .filter(|other| other.key_id != key.key_id && other.state == RootKeyState::Active)
                    .cloned()
                    .collect();
                for other in others {
                    let mut other = (*other).clone();
                    other.state = RootKeyState::Inactive;
                    other.modify_index = index;
                    self.vars.root_keys.insert(other.key_id.clone(), Arc::new(other));
                }
                key.create_index = self
                    .vars
                    .root_keys
                    .get(&key.key_id)
                    .map_or(index, |existing| existing.create_index);
                key.modify_index = index;
                key.state = RootKeyState::Active;
                self.vars.root_keys.insert(key.key_id.clone(), Arc::new(key));
                self.tables.root_keys = index;
            }
            Command::VarApply { op, now } => self.apply_var_op(index, op, now, result),
            _ => {}
        }
    }

    fn apply_var_op(&mut self, index: Index, op: VarOp, now: UnixNanos, result: &mut CommandResult) {
        let key = (op.namespace().to_string(), op.path().to_string());
        let current = self.vars.vars.get(&key).cloned();
        let next = match op {
            VarOp::Set {
                items, cas, lock_id, ..
            } => {
                if let Some(message) = cas_conflict(current.as_deref(), cas) {
                    return conflict(result, current.as_ref(), message);
                }
                if let Some(message) = lock_conflict(current.as_deref(), lock_id.as_deref(), now) {
                    return conflict(result, current.as_ref(), message);
                }
                if current.is_none() && self.vars.vars.len() >= MAX_VARIABLES {
                    result.error = Some(format!("the cluster already stores {MAX_VARIABLES} variables"));
                    return;
                }
                let mut var = current
                    .as_deref()
                    .cloned()
                    .unwrap_or_else(|| new_variable(&key, index, now));
                var.items = items;
                touch(&mut var, index, now);
                var
            }
            VarOp::Delete { cas, lock_id, .. } => {
                if let Some(message) = cas_conflict(current.as_deref(), cas) {
                    return conflict(result, current.as_ref(), message);
                }
                let Some(current) = current else {
                    // Deleting what is not there succeeds (Nomad's way).
                    return;
                };
                if let Some(message) = lock_conflict(Some(&current), lock_id.as_deref(), now) {
                    return conflict(result, Some(&current), message);
                }
                self.vars.vars.remove(&key);
                self.tables.variables = index;
                return;
            }
            VarOp::LockAcquire { items, lock, .. } => {
                if let Some(current) = &current {
                    if let Some(held) = current.live_lock(now) {
                        let message = format!("variable {:?} is locked (lock {})", current.path, held.id);
                        return conflict(result, Some(current), message);
                    }
                    if now < lock_free_at(current) {
                        let message = format!(
                            "variable {:?} is in its lock-delay after a lapsed lock for another {} ms",
                            current.path,
                            (lock_free_at(current) - now) / 1_000_000
                        );
                        return conflict(result, Some(current), message);
                    }
                } else if self.vars.vars.len() >= MAX_VARIABLES {
                    result.error = Some(format!("the cluster already stores {MAX_VARIABLES} variables"));
                    return;
                }
                let mut var = current
                    .as_deref()
                    .cloned()
                    .unwrap_or_else(|| new_variable(&key, index, now));
                if let Some(items) = items {
                    var.items = items;
                }
                var.lock = Some(VariableLock {
                    expires_at: now.saturating_add(lock.ttl_nanos),
                    ..lock
                });
                var.lock_free_at = 0;
                touch(&mut var, index, now);
                var
            }
            VarOp::LockRenew { lock_id, .. } => {
                let Some(current) = current else {
                    result.error = Some(format!("variable {:?} not found", key.1));
                    return;
                };
                let Some(held) = current.live_lock(now).filter(|held| held.id == lock_id) else {
                    let message = format!("lock {lock_id} on {:?} is not held (lapsed or never taken)", key.1);
                    return conflict(result, Some(&current), message);
                };
                let mut var = (*current).clone();
                var.lock = Some(VariableLock {
                    expires_at: now.saturating_add(held.ttl_nanos),
                    ..held.clone()
                });
                // A renewal changes no content: the modify index (the
                // holder's fencing token) stays.
                var
            }
            VarOp::LockRelease { lock_id, .. } => {
                let Some(current) = current else {
                    result.error = Some(format!("variable {:?} not found", key.1));
                    return;
                };
                if current.live_lock(now).is_none_or(|held| held.id != lock_id) {
                    let message = format!("lock {lock_id} on {:?} is not held (lapsed or never taken)", key.1);
                    return conflict(result, Some(&current), message);
                }
                let mut var = (*current).clone();
                // Released on purpose: no lock-delay (Nomad keeps the delay
                // for locks that are lost).
                var.lock = None;
                var.lock_free_at = 0;
                touch(&mut var, index, now);
                var
            }
            VarOp::LockExpire { lock_id, .. } => {
                let Some(current) = current else {
                    return;
                };
                match &current.lock {
                    Some(held) if held.id == lock_id && now >= held.expires_at => {}
                    // Renewed, released or replaced since the leader looked.
                    _ => return,
                }
                let mut var = (*current).clone();
                var.lock_free_at = lock_free_at(&current);
                var.lock = None;
                var
            }
        };
        result.variable = Some(next.clone());
        self.vars.vars.insert(key, Arc::new(next));
        self.tables.variables = index;
    }
}

fn new_variable(key: &(String, String), index: Index, now: UnixNanos) -> Variable {
    Variable {
        namespace: key.0.clone(),
        path: key.1.clone(),
        create_index: index,
        create_time: now,
        ..Variable::default()
    }
}

fn touch(var: &mut Variable, index: Index, now: UnixNanos) {
    var.modify_index = index;
    var.modify_time = now;
}

/// When a new lock may be taken: after a lapsed lock's expiry plus its
/// delay, or the recorded time.
fn lock_free_at(var: &Variable) -> UnixNanos {
    let lapsed = var
        .lock
        .as_ref()
        .map_or(0, |lock| lock.expires_at.saturating_add(lock.lock_delay_nanos));
    lapsed.max(var.lock_free_at)
}

fn cas_conflict(current: Option<&Variable>, cas: Option<Index>) -> Option<String> {
    let cas = cas?;
    let found = current.map_or(0, |var| var.modify_index);
    (found != cas).then(|| format!("check-and-set index {cas} does not match the variable's modify index {found}"))
}

fn lock_conflict(current: Option<&Variable>, lock_id: Option<&str>, now: UnixNanos) -> Option<String> {
    let held = current.and_then(|var| var.live_lock(now));
    match (held, lock_id) {
        (None, None) => None,
        (Some(held), Some(id)) if held.id == id => None,
        (Some(_), _) => Some("variable is locked; only its lock holder may change it".to_string()),
        (None, Some(id)) => Some(format!("lock {id} is not held on this variable")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use types::EncryptedItems;

    const SECOND: i64 = 1_000_000_000;

    fn items(tag: u8) -> EncryptedItems {
        EncryptedItems {
            key_id: "k1".to_string(),
            nonce: vec![tag; 12],
            ciphertext: vec![tag; 20],
        }
    }

    fn set(path: &str, cas: Option<Index>, now: UnixNanos) -> Command {
        Command::VarApply {
            op: VarOp::Set {
                namespace: "default".to_string(),
                path: path.to_string(),
                items: items(1),
                cas,
                lock_id: None,
            },
            now,
        }
    }

    fn acquire(id: &str, ttl: i64, delay: i64, now: UnixNanos) -> Command {
        Command::VarApply {
            op: VarOp::LockAcquire {
                namespace: "default".to_string(),
                path: "lock".to_string(),
                items: None,
                lock: VariableLock {
                    id: id.to_string(),
                    ttl_nanos: ttl,
                    lock_delay_nanos: delay,
                    expires_at: 0,
                },
            },
            now,
        }
    }

    fn lock_op(op: fn(String, String, String) -> VarOp, id: &str, now: UnixNanos) -> Command {
        Command::VarApply {
            op: op("default".to_string(), "lock".to_string(), id.to_string()),
            now,
        }
    }

    fn renew(namespace: String, path: String, lock_id: String) -> VarOp {
        VarOp::LockRenew {
            namespace,
            path,
            lock_id,
        }
    }

    fn release(namespace: String, path: String, lock_id: String) -> VarOp {
        VarOp::LockRelease {
            namespace,
            path,
            lock_id,
        }
    }

    fn expire(namespace: String, path: String, lock_id: String) -> VarOp {
        VarOp::LockExpire {
            namespace,
            path,
            lock_id,
        }
    }

    #[test]
    fn check_and_set_refuses_a_stale_index_with_the_current_variable() {
        let mut state = StateSnapshot::new();
        assert!(state.apply(5, set("a", Some(0), 1)).error.is_none());
        let conflict = state.apply(6, set("a", Some(0), 2));
        assert!(conflict.conflict);
        assert_eq!(conflict.variable.as_ref().map(|var| var.modify_index), Some(5));
        let ok = state.apply(7, set("a", Some(5), 3));
        assert!(!ok.conflict && ok.error.is_none());
        let var = state.variable("default", "a").expect("stored");
        assert_eq!(
            (var.create_index, var.modify_index, var.create_time, var.modify_time),
            (5, 7, 1, 3)
        );
        let delete = state.apply(
            8,
            Command::VarApply {
                op: VarOp::Delete {
                    namespace: "default".to_string(),
                    path: "a".to_string(),
                    cas: Some(5),
                    lock_id: None,
                },
                now: 4,
            },
        );
        assert!(delete.conflict);
        assert!(state.variable("default", "a").is_some());
    }

    #[test]
    fn a_lock_excludes_others_until_released_and_renewals_keep_the_fencing_token() {
        let mut state = StateSnapshot::new();
        let first = state.apply(10, acquire("one", 10 * SECOND, 5 * SECOND, 0));
        assert_eq!(first.variable.as_ref().map(|var| var.modify_index), Some(10));
        assert!(state.apply(11, acquire("two", 10 * SECOND, 0, SECOND)).conflict);
        // Only the holder may write.
        assert!(state.apply(12, set("lock", None, SECOND)).conflict);
        let renewed = state.apply(13, lock_op(renew, "one", 9 * SECOND));
        assert_eq!(renewed.variable.as_ref().map(|var| var.modify_index), Some(10));
        // Renewed at 9 s, so still held at 15 s.
        assert!(state.apply(14, acquire("two", 10 * SECOND, 0, 15 * SECOND)).conflict);
        assert!(state.apply(15, lock_op(release, "two", 15 * SECOND)).conflict);
        assert!(!state.apply(16, lock_op(release, "one", 15 * SECOND)).conflict);
        // Released on purpose: no lock-delay.
        let second = state.apply(17, acquire("two", 10 * SECOND, 0, 15 * SECOND));
        assert!(!second.conflict);
        assert_eq!(second.variable.as_ref().map(|var| var.modify_index), Some(17));
    }

    #[test]
    fn a_lapsed_lock_holds_off_new_holders_for_its_lock_delay() {
        let mut state = StateSnapshot::new();
        state.apply(1, acquire("one", 10 * SECOND, 5 * SECOND, 0));
        // Lapsed at 10 s: the holder can no longer renew.
        assert!(state.apply(2, lock_op(renew, "one", 10 * SECOND)).conflict);
        // In the delay (10 s to 15 s), before and after the leader's expiry.
        assert!(state.apply(3, acquire("two", 10 * SECOND, 0, 12 * SECOND)).conflict);
        assert!(!state.apply(4, lock_op(expire, "one", 12 * SECOND)).conflict);
        let var = state.variable("default", "lock").expect("kept");
        assert!(var.lock.is_none());
        assert_eq!(var.lock_free_at, 15 * SECOND);
        assert!(state.apply(5, acquire("two", 10 * SECOND, 0, 14 * SECOND)).conflict);
        let taken = state.apply(6, acquire("two", 10 * SECOND, 0, 15 * SECOND));
        assert!(!taken.conflict);
        assert_eq!(taken.variable.as_ref().map(|var| var.modify_index), Some(6));
        // An expiry for an old holder leaves the new one alone.
        state.apply(7, lock_op(expire, "one", 30 * SECOND));
        assert_eq!(
            state
                .variable("default", "lock")
                .and_then(|var| var.lock.clone())
                .map(|lock| lock.id),
            Some("two".to_string())
        );
    }

    #[test]
    fn rotating_keeps_exactly_one_active_key_and_survives_a_snapshot() {
        let mut state = StateSnapshot::new();
        for (index, id) in [(1, "a"), (2, "b")] {
            state.apply(
                index,
                Command::RootKeyUpsert {
                    key: RootKeyMeta {
                        key_id: id.to_string(),
                        algorithm: types::ROOT_KEY_ALGORITHM.to_string(),
                        create_time: 1,
                        ..RootKeyMeta::default()
                    },
                },
            );
        }
        state.apply(3, set("x", None, 1));
        let keys = state.root_keys();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].state, RootKeyState::Inactive);
        assert_eq!(
            state.active_root_key().map(|key| key.key_id.clone()),
            Some("b".to_string())
        );
        let bytes = serde_json::to_vec(&state).expect("encode");
        let back: StateSnapshot = serde_json::from_slice(&bytes).expect("decode");
        assert_eq!(back.root_keys(), state.root_keys());
        assert_eq!(back.variable("default", "x"), state.variable("default", "x"));
    }
}
