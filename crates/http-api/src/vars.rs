//! Variables (`/v1/vars`, `/v1/var/:path` with `?cas=` and the lock
//! operations) and the root keyring (`/v1/operator/keyring/*`), in
//! Nomad's shapes.
//!
//! Each variable handler checks the caller's variables capability on the
//! path (`authz::require_variable`) before it reads the body, so a caller
//! without access learns nothing, not even whether the body was valid.

use crate::AppState;
use crate::authz::require_variable;
use crate::error::ApiError;
use crate::handlers::{parse_body, reply};
use crate::query::{QueryOptions, block_until, index_headers};
use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use server::{Caller, DecryptedVariable, LockRequest, VarWriteOutcome};
use std::collections::BTreeMap;
use std::time::Duration;
use types::Variable;

type Answer = Result<Response, ApiError>;

/// Nomad's defaults for a lock without `TTL` / `LockDelay`.
const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(15);
const DEFAULT_LOCK_DELAY: Duration = Duration::from_secs(15);

use api_types::{Variable as VariableJson, VariableLock as LockJson, VariableMetadata};

/// A `PUT /v1/var/:path` body. The metadata fields are what `var get`
/// printed; they are the server's to set, so they are read and dropped.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct VariableBody {
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    items: Option<BTreeMap<String, String>>,
    #[serde(default)]
    lock: Option<LockJson>,
    #[serde(default)]
    create_index: Option<u64>,
    #[serde(default)]
    modify_index: Option<u64>,
    #[serde(default)]
    create_time: Option<i64>,
    #[serde(default)]
    modify_time: Option<i64>,
}

fn nanos_text(nanos: i64) -> String {
    types::duration::format_duration(Duration::from_nanos(u64::try_from(nanos).unwrap_or(0)))
}

/// `with_lock_id`: only the lock holder's own answers carry the ID (it is
/// what lets a writer past the lock).
fn metadata(var: &Variable, with_lock_id: bool) -> VariableMetadata {
    VariableMetadata {
        namespace: var.namespace.clone(),
        path: var.path.clone(),
        create_index: var.create_index,
        modify_index: var.modify_index,
        create_time: var.create_time,
        modify_time: var.modify_time,
        lock: var.lock.as_ref().map(|lock| LockJson {
            id: if with_lock_id { lock.id.clone() } else { String::new() },
            ttl: nanos_text(lock.ttl_nanos),
            lock_delay: nanos_text(lock.lock_delay_nanos),
        }),
    }
}

fn decrypted(var: DecryptedVariable, with_lock_id: bool) -> VariableJson {
    VariableJson {
        meta: metadata(&var.meta, with_lock_id),
        items: var.items,
    }
}

fn namespace_of(options: &QueryOptions) -> Result<String, ApiError> {
    match options.namespace.as_deref() {
        Some("*") => Err(ApiError::BadRequest(
            "a variable lives in one namespace; name it with ?namespace=".to_string(),
        )),
        _ => Ok(options.single_namespace().to_string()),
    }
}

/// `GET /v1/vars[?prefix=][&namespace=]`: metadata of the variables the
/// token may list.
pub async fn list_vars(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().variables).await?;
    let snapshot = options.read(&state).await?;
    let vars: Vec<VariableMetadata> = snapshot
        .variables(options.namespace(), options.prefix())
        .iter()
        .filter(|var| caller.acl.allow_variable(&var.namespace, &var.path, "list"))
        .map(|var| metadata(var, false))
        .collect();
    reply(&state, snapshot.table_indexes().variables, &vars)
}

/// `GET /v1/var/:path`.
pub async fn get_var(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(path): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    let namespace = namespace_of(&options)?;
    require_variable(&caller, &namespace, &path, "read")?;
    block_until(&state, &options, |snapshot| {
        snapshot.variable(&namespace, &path).map_or(0, |var| var.modify_index)
    })
    .await?;
    match state.server.read_variable(&namespace, &path, options.stale()).await? {
        Some(var) => {
            let index = var.meta.modify_index;
            reply(&state, index, &decrypted(var, false))
        }
        None => Err(ApiError::NotFound("variable".to_string())),
    }
}

/// The lock operation a `PUT` names, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LockOp {
    Acquire,
    Renew,
    Release,
}

fn lock_op(raw_query: Option<&str>) -> Result<Option<LockOp>, ApiError> {
    let mut found = None;
    for pair in raw_query.unwrap_or("").split('&') {
        let key = pair.split_once('=').map_or(pair, |(key, _)| key);
        let op = match key {
            "lock-acquire" => LockOp::Acquire,
            "lock-renew" => LockOp::Renew,
            "lock-release" => LockOp::Release,
            _ => continue,
        };
        if found.replace(op).is_some() {
            return Err(ApiError::BadRequest("name one lock operation at a time".to_string()));
        }
    }
    Ok(found)
}

fn parse_lock_duration(name: &str, text: &str, default: Duration) -> Result<i64, ApiError> {
    let duration = if text.is_empty() {
        default
    } else {
        types::duration::parse_duration(text)
            .map_err(|error| ApiError::BadRequest(format!("invalid {name} {text:?}: {error}")))?
    };
    i64::try_from(duration.as_nanos()).map_err(|_| ApiError::BadRequest(format!("{name} {text:?} is too long")))
}

/// Nomad's 409: the variable as it is (its items only for a caller who
/// may read them).
fn conflict_answer(state: &AppState, caller: &Caller, current: Option<DecryptedVariable>, reason: &str) -> Answer {
    tracing::debug!(%reason, "variable write conflict");
    let index = current.as_ref().map_or(0, |var| var.meta.modify_index);
    let mut headers = index_headers(index, &state.server);
    headers.insert(
        "X-Drover-Conflict",
        axum::http::HeaderValue::from_str(reason).unwrap_or(axum::http::HeaderValue::from_static("conflict")),
    );
    let body = match current {
        Some(var) if caller.acl.allow_variable(&var.meta.namespace, &var.meta.path, "read") => {
            serde_json::to_value(decrypted(var, false))
        }
        Some(var) => serde_json::to_value(metadata(&var.meta, false)),
        None => Ok(serde_json::Value::Null),
    }
    .map_err(|error| ApiError::Internal(error.to_string()))?;
    Ok((StatusCode::CONFLICT, headers, Json(body)).into_response())
}

fn written(state: &AppState, caller: &Caller, outcome: VarWriteOutcome, with_lock_id: bool) -> Answer {
    match outcome {
        VarWriteOutcome::Written(Some(var)) => {
            let index = var.meta.modify_index;
            reply(state, index, &decrypted(var, with_lock_id))
        }
        VarWriteOutcome::Written(None) => {
            let index = state.server.state().table_indexes().variables;
            Ok((index_headers(index, &state.server), "").into_response())
        }
        VarWriteOutcome::Conflict { current, reason } => conflict_answer(state, caller, current, &reason),
    }
}

/// `PUT /v1/var/:path[?cas=N]`, and the lock operations
/// (`?lock-acquire`, `?lock-renew`, `?lock-release`).
pub async fn put_var(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(path): Path<String>,
    Query(options): Query<QueryOptions>,
    uri: axum::http::Uri,
    body: Bytes,
) -> Answer {
    let namespace = namespace_of(&options)?;
    require_variable(&caller, &namespace, &path, "write")?;
    let op = lock_op(uri.query())?;
    let body: VariableBody = if body.is_empty() && op.is_some() {
        VariableBody::default()
    } else {
        parse_body(&body)?
    };
    if let Some(body_path) = body.path.as_deref().filter(|body_path| !body_path.is_empty())
        && body_path != path
    {
        return Err(ApiError::BadRequest(format!(
            "the body's Path {body_path:?} differs from the URL's {path:?}"
        )));
    }
    if let Some(body_namespace) = body.namespace.as_deref().filter(|ns| !ns.is_empty())
        && options.namespace.as_deref().is_some_and(|ns| !ns.is_empty())
        && body_namespace != namespace
    {
        return Err(ApiError::BadRequest(format!(
            "the body's Namespace {body_namespace:?} differs from the request's {namespace:?}"
        )));
    }
    let namespace = match (options.namespace.as_deref(), body.namespace.as_deref()) {
        (None | Some(""), Some(body_namespace)) if !body_namespace.is_empty() => {
            require_variable(&caller, body_namespace, &path, "write")?;
            body_namespace.to_string()
        }
        _ => namespace,
    };
    let _ = (body.create_index, body.modify_index, body.create_time, body.modify_time);
    let cas = options.cas()?;
    let lock = body.lock.unwrap_or_default();
    let server = &state.server;
    match op {
        None => {
            let items = body
                .items
                .filter(|items| !items.is_empty())
                .ok_or_else(|| ApiError::BadRequest("a variable needs at least one item".to_string()))?;
            let lock_id = Some(lock.id).filter(|id| !id.is_empty());
            let outcome = server.put_variable(&namespace, &path, &items, cas, lock_id).await?;
            written(&state, &caller, outcome, false)
        }
        Some(LockOp::Acquire) => {
            if cas.is_some() {
                return Err(ApiError::BadRequest(
                    "cas does not apply to lock operations".to_string(),
                ));
            }
            if !lock.id.is_empty() {
                return Err(ApiError::BadRequest(
                    "lock-acquire makes the lock's ID; do not send one".to_string(),
                ));
            }
            let request = LockRequest {
                ttl_nanos: parse_lock_duration("TTL", &lock.ttl, DEFAULT_LOCK_TTL)?,
                lock_delay_nanos: parse_lock_duration("LockDelay", &lock.lock_delay, DEFAULT_LOCK_DELAY)?,
            };
            let items = body.items.filter(|items| !items.is_empty());
            let outcome = server
                .acquire_variable_lock(&namespace, &path, items.as_ref(), request)
                .await?;
            written(&state, &caller, outcome, true)
        }
        Some(op) => {
            if cas.is_some() || body.items.as_ref().is_some_and(|items| !items.is_empty()) {
                return Err(ApiError::BadRequest(
                    "lock-renew and lock-release take only the lock's ID".to_string(),
                ));
            }
            if lock.id.is_empty() {
                return Err(ApiError::BadRequest(
                    "the body needs the lock's ID (Lock.ID)".to_string(),
                ));
            }
            let outcome = if op == LockOp::Renew {
                server.renew_variable_lock(&namespace, &path, &lock.id).await?
            } else {
                server.release_variable_lock(&namespace, &path, &lock.id).await?
            };
            written(&state, &caller, outcome, op == LockOp::Renew)
        }
    }
}

/// `DELETE /v1/var/:path[?cas=N]`.
pub async fn delete_var(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(path): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    let namespace = namespace_of(&options)?;
    require_variable(&caller, &namespace, &path, "destroy")?;
    let cas = options.cas()?;
    let outcome = state.server.delete_variable(&namespace, &path, cas, None).await?;
    written(&state, &caller, outcome, false)
}

use api_types::RootKeyMeta as RootKeyJson;

fn key_json(key: &types::RootKeyMeta) -> RootKeyJson {
    RootKeyJson {
        key_id: key.key_id.clone(),
        algorithm: key.algorithm.clone(),
        create_time: key.create_time,
        create_index: key.create_index,
        modify_index: key.modify_index,
        state: key.state.as_str().to_string(),
    }
}

/// `GET /v1/operator/keyring/keys`.
pub async fn list_keys(State(state): State<AppState>, Query(options): Query<QueryOptions>) -> Answer {
    let snapshot = options.read(&state).await?;
    let keys: Vec<RootKeyJson> = snapshot.root_keys().iter().map(|key| key_json(key)).collect();
    reply(&state, snapshot.table_indexes().root_keys, &keys)
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct RotateOptions {
    algorithm: Option<String>,
    full: Option<String>,
    prepublish: Option<String>,
}

/// `PUT /v1/operator/keyring/rotate`: a new active key. Variables keep
/// the key that encrypted them until they are written again.
pub async fn rotate_key(State(state): State<AppState>, Query(options): Query<RotateOptions>) -> Answer {
    if let Some(algorithm) = options.algorithm.as_deref().filter(|algorithm| !algorithm.is_empty())
        && algorithm != types::ROOT_KEY_ALGORITHM
    {
        return Err(ApiError::BadRequest(format!(
            "algorithm {algorithm:?} is not supported; Drover's root keys are {}",
            types::ROOT_KEY_ALGORITHM
        )));
    }
    if crate::query::parse_bool("full", options.full.as_deref())? {
        return Err(ApiError::BadRequest(
            "full rotation (re-encrypting every variable) is not supported by Drover yet".to_string(),
        ));
    }
    if options.prepublish.as_deref().is_some_and(|text| !text.is_empty()) {
        return Err(ApiError::BadRequest(
            "prepublish is not supported by Drover yet".to_string(),
        ));
    }
    let key = state.server.rotate_root_key().await?;
    reply(&state, key.modify_index, &serde_json::json!({ "Key": key_json(&key) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_lock_operation_at_a_time() {
        assert_eq!(lock_op(None).expect("none"), None);
        assert_eq!(
            lock_op(Some("namespace=x&lock-acquire")).expect("acquire"),
            Some(LockOp::Acquire)
        );
        assert_eq!(lock_op(Some("lock-renew=")).expect("renew"), Some(LockOp::Renew));
        assert!(lock_op(Some("lock-acquire&lock-release")).is_err());
    }

    #[test]
    fn bodies_refuse_unknown_fields() {
        assert!(serde_json::from_str::<VariableBody>(r#"{"Items":{"a":"b"},"Bogus":1}"#).is_err());
        assert!(serde_json::from_str::<VariableBody>(r#"{"Lock":{"TTL":"5s","Other":1}}"#).is_err());
        let body: VariableBody =
            serde_json::from_str(r#"{"Path":"a","Items":{"a":"b"},"ModifyIndex":4,"Lock":{"ID":"x"}}"#).expect("ok");
        assert_eq!(body.lock.map(|lock| lock.id), Some("x".to_string()));
    }
}
