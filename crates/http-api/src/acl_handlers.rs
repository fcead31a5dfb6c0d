//! `/v1/acl/*`: bootstrap, policies, tokens and roles, with Nomad's
//! shapes. Who may call each is in the ACL table; the handlers only add
//! what depends on the answer (a client token lists and reads only its own
//! policies).

use crate::AppState;
use crate::error::ApiError;
use crate::handlers::{Answer, parse_body, reply};
use crate::query::{Order, QueryOptions, Row, block_until, list_reply};
use api_types::acl::{AclBootstrapRequest, AclPolicy, AclPolicyListStub, AclRole, AclToken};
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use server::Caller;

fn enabled(state: &AppState) -> Result<(), ApiError> {
    if state.server.acl_enabled() {
        Ok(())
    } else {
        Err(ApiError::BadRequest("ACL support disabled".to_string()))
    }
}

/// `PUT/POST /v1/acl/bootstrap`.
pub async fn bootstrap(State(state): State<AppState>, body: Bytes) -> Answer {
    let request: AclBootstrapRequest = if body.iter().all(u8::is_ascii_whitespace) {
        AclBootstrapRequest::default()
    } else {
        parse_body(&body)?
    };
    let secret = (!request.bootstrap_secret.is_empty()).then_some(request.bootstrap_secret);
    let token = state.server.acl_bootstrap(secret).await?;
    reply(&state, token.modify_index, &AclToken::from_domain(&token, true))
}

/// `GET /v1/acl/policies`: every policy for a management token, a client
/// token's own otherwise.
pub async fn list_policies(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    enabled(&state)?;
    block_until(&state, &options, |snapshot| snapshot.table_indexes().acl_policies).await?;
    let snapshot = options.read(&state).await?;
    let rows: Vec<Row<AclPolicyListStub>> = snapshot
        .acl_policies()
        .iter()
        .filter(|policy| policy.name.starts_with(options.prefix()))
        .filter(|policy| caller.may_read_policy(&snapshot, &policy.name))
        .map(|policy| Row::by_id(policy.name.clone(), AclPolicyListStub::from(&**policy)))
        .collect();
    list_reply(
        &state,
        &options,
        snapshot.table_indexes().acl_policies,
        Order::ById,
        rows,
    )
}

/// `GET /v1/acl/policy/:name`.
pub async fn get_policy(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    enabled(&state)?;
    block_until(&state, &options, |snapshot| {
        snapshot.acl_policy(&name).map_or(0, |policy| policy.modify_index)
    })
    .await?;
    let snapshot = options.read(&state).await?;
    if !caller.may_read_policy(&snapshot, &name) {
        return Err(ApiError::PermissionDenied(format!("policy {name}")));
    }
    let policy = snapshot
        .acl_policy(&name)
        .ok_or_else(|| ApiError::NotFound(format!("ACL policy {name:?}")))?;
    reply(&state, policy.modify_index, &AclPolicy::from(&*policy))
}

/// `PUT/POST /v1/acl/policy/:name`.
pub async fn put_policy(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Answer {
    enabled(&state)?;
    let request: AclPolicy = parse_body(&body)?;
    if !request.name.is_empty() && request.name != name {
        return Err(ApiError::BadRequest(format!(
            "policy name {:?} in the body does not match {name:?} in the path",
            request.name
        )));
    }
    let mut policy = request.to_domain();
    policy.name = name;
    let index = state.server.upsert_acl_policy(policy).await?;
    reply(&state, index, &serde_json::Value::Null)
}

/// `DELETE /v1/acl/policy/:name`.
pub async fn delete_policy(State(state): State<AppState>, Path(name): Path<String>) -> Answer {
    enabled(&state)?;
    let index = state.server.delete_acl_policy(&name).await?;
    reply(&state, index, &serde_json::Value::Null)
}

/// `GET /v1/acl/tokens`: every token, without secrets.
pub async fn list_tokens(State(state): State<AppState>, Query(options): Query<QueryOptions>) -> Answer {
    enabled(&state)?;
    block_until(&state, &options, |snapshot| snapshot.table_indexes().acl_tokens).await?;
    let snapshot = options.read(&state).await?;
    let rows: Vec<Row<AclToken>> = snapshot
        .acl_tokens()
        .iter()
        .filter(|token| token.accessor_id.starts_with(options.prefix()))
        .map(|token| Row::by_id(token.accessor_id.clone(), AclToken::from_domain(token, false)))
        .collect();
    list_reply(&state, &options, snapshot.table_indexes().acl_tokens, Order::ById, rows)
}

/// `PUT/POST /v1/acl/token`: creates a token; the answer holds its secret.
pub async fn create_token(State(state): State<AppState>, body: Bytes) -> Answer {
    enabled(&state)?;
    let request: AclToken = parse_body(&body)?;
    if !request.accessor_id.is_empty() {
        return Err(ApiError::BadRequest(
            "AccessorID must be empty to create a token (update with /v1/acl/token/:accessor_id)".to_string(),
        ));
    }
    let token = request.to_domain().map_err(ApiError::BadRequest)?;
    let token = state.server.upsert_acl_token(token).await?;
    reply(&state, token.modify_index, &AclToken::from_domain(&token, true))
}

/// `GET /v1/acl/token/self`: the caller's own token.
pub async fn token_self(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> Answer {
    enabled(&state)?;
    let token = caller
        .token
        .ok_or_else(|| ApiError::PermissionDenied("no token".to_string()))?;
    reply(&state, token.modify_index, &AclToken::from_domain(&token, true))
}

/// `GET /v1/acl/token/:accessor_id`.
pub async fn get_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    enabled(&state)?;
    block_until(&state, &options, |snapshot| {
        snapshot.acl_token(&id).map_or(0, |token| token.modify_index)
    })
    .await?;
    let token = options
        .read(&state)
        .await?
        .acl_token(&id)
        .ok_or_else(|| ApiError::NotFound(format!("ACL token {id:?}")))?;
    reply(&state, token.modify_index, &AclToken::from_domain(&token, true))
}

/// `PUT/POST /v1/acl/token/:accessor_id`: updates a token's name,
/// policies and roles.
pub async fn update_token(State(state): State<AppState>, Path(id): Path<String>, body: Bytes) -> Answer {
    enabled(&state)?;
    let request: AclToken = parse_body(&body)?;
    if !request.accessor_id.is_empty() && request.accessor_id != id {
        return Err(ApiError::BadRequest(format!(
            "AccessorID {:?} in the body does not match {id:?} in the path",
            request.accessor_id
        )));
    }
    let mut token = request.to_domain().map_err(ApiError::BadRequest)?;
    token.accessor_id = id;
    let token = state.server.upsert_acl_token(token).await?;
    reply(&state, token.modify_index, &AclToken::from_domain(&token, true))
}

/// `DELETE /v1/acl/token/:accessor_id`.
pub async fn delete_token(State(state): State<AppState>, Path(id): Path<String>) -> Answer {
    enabled(&state)?;
    let index = state.server.delete_acl_token(&id).await?;
    reply(&state, index, &serde_json::Value::Null)
}

/// `GET /v1/acl/roles`.
pub async fn list_roles(State(state): State<AppState>, Query(options): Query<QueryOptions>) -> Answer {
    enabled(&state)?;
    block_until(&state, &options, |snapshot| snapshot.table_indexes().acl_roles).await?;
    let snapshot = options.read(&state).await?;
    let rows: Vec<Row<AclRole>> = snapshot
        .acl_roles()
        .iter()
        .filter(|role| role.name.starts_with(options.prefix()))
        .map(|role| Row::by_id(role.id.clone(), AclRole::from(&**role)))
        .collect();
    list_reply(&state, &options, snapshot.table_indexes().acl_roles, Order::ById, rows)
}

/// `PUT/POST /v1/acl/role`: creates a role.
pub async fn create_role(State(state): State<AppState>, body: Bytes) -> Answer {
    enabled(&state)?;
    let request: AclRole = parse_body(&body)?;
    if !request.id.is_empty() {
        return Err(ApiError::BadRequest(
            "ID must be empty to create a role (update with /v1/acl/role/:id)".to_string(),
        ));
    }
    let role = state.server.upsert_acl_role(request.to_domain()).await?;
    reply(&state, role.modify_index, &AclRole::from(&role))
}

/// `GET /v1/acl/role/:id`.
pub async fn get_role(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    enabled(&state)?;
    block_until(&state, &options, |snapshot| {
        snapshot.acl_role(&id).map_or(0, |role| role.modify_index)
    })
    .await?;
    let role = options
        .read(&state)
        .await?
        .acl_role(&id)
        .ok_or_else(|| ApiError::NotFound(format!("ACL role {id:?}")))?;
    reply(&state, role.modify_index, &AclRole::from(&*role))
}

/// `GET /v1/acl/role/name/:name`.
pub async fn get_role_by_name(State(state): State<AppState>, Path(name): Path<String>) -> Answer {
    enabled(&state)?;
    let role = state
        .server
        .state()
        .acl_role_by_name(&name)
        .ok_or_else(|| ApiError::NotFound(format!("ACL role {name:?}")))?;
    reply(&state, role.modify_index, &AclRole::from(&*role))
}

/// `PUT/POST /v1/acl/role/:id`: updates a role.
pub async fn update_role(State(state): State<AppState>, Path(id): Path<String>, body: Bytes) -> Answer {
    enabled(&state)?;
    let request: AclRole = parse_body(&body)?;
    if !request.id.is_empty() && request.id != id {
        return Err(ApiError::BadRequest(format!(
            "ID {:?} in the body does not match {id:?} in the path",
            request.id
        )));
    }
    let mut role = request.to_domain();
    role.id = id;
    let role = state.server.upsert_acl_role(role).await?;
    reply(&state, role.modify_index, &AclRole::from(&role))
}

/// `DELETE /v1/acl/role/:id`.
pub async fn delete_role(State(state): State<AppState>, Path(id): Path<String>) -> Answer {
    enabled(&state)?;
    let index = state.server.delete_acl_role(&id).await?;
    reply(&state, index, &serde_json::Value::Null)
}
