//! The client's allocation controls and stats, as Nomad serves them:
//! `/v1/client/allocation/:id/{signal,restart,stats,gc,checks}`, `/v1/client/gc`
//! and `/v1/client/stats`. The agent whose client holds the allocation
//! answers; any other agent passes the request on to that node.

use crate::AppState;
use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{Extension, OriginalUri, Path, State};
use axum::http::HeaderMap;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use client::handle::{ClientHandle, ControlError, TaskUsage};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

impl From<ControlError> for ApiError {
    fn from(error: ControlError) -> ApiError {
        match error {
            ControlError::NotFound(what) => ApiError::NotFound(what),
            ControlError::BadRequest(message) => ApiError::BadRequest(message),
            ControlError::Failed(message) => ApiError::BadRequest(message),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
pub struct SignalRequest {
    pub signal: String,
    pub task: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
pub struct RestartRequest {
    pub task_name: String,
    pub all_tasks: bool,
}

fn body_or_default<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|error| ApiError::BadRequest(format!("invalid JSON body: {error}")))
}

/// Nomad's `AllocResourceUsage` for the tasks' usage.
pub fn alloc_usage_json(usage: &BTreeMap<String, TaskUsage>) -> serde_json::Value {
    let resource = |rss: u64, cpu_nanos: u128| {
        json!({
            "MemoryStats": { "RSS": rss, "Measured": ["RSS"] },
            "CpuStats": { "TotalTicks": 0.0, "UserMode": 0.0, "SystemMode": 0.0,
                          "TotalTime": cpu_nanos as f64, "Measured": ["Total Time"] },
        })
    };
    let mut tasks = serde_json::Map::new();
    let mut total_rss = 0u64;
    let mut total_cpu = 0u128;
    let mut latest = 0;
    for (name, task) in usage {
        total_rss += task.stats.rss_bytes;
        total_cpu += task.stats.cpu_time.as_nanos();
        latest = latest.max(task.timestamp);
        tasks.insert(
            name.clone(),
            json!({
                "ResourceUsage": resource(task.stats.rss_bytes, task.stats.cpu_time.as_nanos()),
                "Timestamp": task.timestamp,
                "Pids": { "Count": task.stats.pids },
            }),
        );
    }
    json!({
        "ResourceUsage": resource(total_rss, total_cpu),
        "Tasks": tasks,
        "Timestamp": latest,
    })
}

/// The local client's handle when it holds `alloc_id`; otherwise the
/// node's HTTP address to pass the request on to.
enum Target {
    Local(ClientHandle, String),
    Remote(String, String),
}

fn target(state: &AppState, alloc_id: &str, caller: &server::Caller, capability: &str) -> Result<Target, ApiError> {
    let snapshot = state.server.state();
    let alloc = crate::handlers::found(snapshot.alloc_by_prefix(alloc_id), "allocation", alloc_id)?;
    crate::authz::require_namespace_op(caller, &alloc.namespace, capability)?;
    if state.agent.client_node_id.as_deref() == Some(alloc.node_id.as_str())
        && let Some(handle) = &state.client
    {
        return Ok(Target::Local(handle.clone(), alloc.id.clone()));
    }
    let node = snapshot
        .node(&alloc.node_id)
        .ok_or_else(|| ApiError::NotFound(format!("node {}", alloc.node_id)))?;
    if node.http_addr.is_empty() {
        return Err(ApiError::Unavailable(format!("node {} has no HTTP address", node.id)));
    }
    Ok(Target::Remote(node.http_addr.clone(), alloc.id.clone()))
}

/// Passes a request on to the client agent of the node that holds the
/// allocation (named by its full ID), with the caller's token.
async fn pass_on(
    method: Method,
    addr: &str,
    uri: &axum::http::Uri,
    given: &str,
    full: &str,
    body: Bytes,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let token = crate::authz::request_token(headers);
    crate::client_fs::forward_with(method, &remote_url(addr, uri, given, full), body, token.as_deref()).await
}

fn remote_url(addr: &str, uri: &axum::http::Uri, given: &str, full: &str) -> String {
    let path = uri.path().replacen(&format!("/{given}/"), &format!("/{full}/"), 1);
    format!(
        "http://{addr}{path}{}",
        uri.query().map(|query| format!("?{query}")).unwrap_or_default()
    )
}

/// Signals one task, or every task, of a local allocation.
pub async fn signal_local(handle: &ClientHandle, alloc_id: &str, body: &Bytes) -> Result<Response, ApiError> {
    let request: SignalRequest = body_or_default(body)?;
    if request.signal.is_empty() {
        return Err(ApiError::BadRequest("Signal is required".to_string()));
    }
    let task = (!request.task.is_empty()).then_some(request.task.as_str());
    handle.signal(alloc_id, task, &request.signal).await?;
    Ok(axum::Json(json!({})).into_response())
}

/// Restarts one task, or every task, of a local allocation.
pub async fn restart_local(handle: &ClientHandle, alloc_id: &str, body: &Bytes) -> Result<Response, ApiError> {
    let request: RestartRequest = body_or_default(body)?;
    let task = (!request.task_name.is_empty() && !request.all_tasks).then_some(request.task_name.as_str());
    handle.restart(alloc_id, task).await?;
    Ok(axum::Json(json!({})).into_response())
}

pub async fn stats_local(handle: &ClientHandle, alloc_id: &str) -> Result<Response, ApiError> {
    let usage = handle.alloc_stats(alloc_id).await?;
    Ok(axum::Json(alloc_usage_json(&usage)).into_response())
}

pub async fn signal(
    State(state): State<AppState>,
    Extension(caller): Extension<server::Caller>,
    headers: HeaderMap,
    Path(alloc_id): Path<String>,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Result<Response, ApiError> {
    match target(&state, &alloc_id, &caller, "alloc-lifecycle")? {
        Target::Local(handle, full) => signal_local(&handle, &full, &body).await,
        Target::Remote(addr, full) => pass_on(Method::PUT, &addr, &uri, &alloc_id, &full, body, &headers).await,
    }
}

pub async fn restart(
    State(state): State<AppState>,
    Extension(caller): Extension<server::Caller>,
    headers: HeaderMap,
    Path(alloc_id): Path<String>,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Result<Response, ApiError> {
    match target(&state, &alloc_id, &caller, "alloc-lifecycle")? {
        Target::Local(handle, full) => restart_local(&handle, &full, &body).await,
        Target::Remote(addr, full) => pass_on(Method::PUT, &addr, &uri, &alloc_id, &full, body, &headers).await,
    }
}

pub async fn stats(
    State(state): State<AppState>,
    Extension(caller): Extension<server::Caller>,
    headers: HeaderMap,
    Path(alloc_id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    match target(&state, &alloc_id, &caller, "read-job")? {
        Target::Local(handle, full) => stats_local(&handle, &full).await,
        Target::Remote(addr, full) => pass_on(Method::GET, &addr, &uri, &alloc_id, &full, Bytes::new(), &headers).await,
    }
}

/// The latest results of a local allocation's checks, by check ID.
pub fn checks_local(handle: &ClientHandle, alloc_id: &str) -> Result<Response, ApiError> {
    Ok(axum::Json(handle.alloc_checks(alloc_id)).into_response())
}

pub async fn checks(
    State(state): State<AppState>,
    Extension(caller): Extension<server::Caller>,
    headers: HeaderMap,
    Path(alloc_id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    match target(&state, &alloc_id, &caller, "read-job")? {
        Target::Local(handle, full) => checks_local(&handle, &full),
        Target::Remote(addr, full) => pass_on(Method::GET, &addr, &uri, &alloc_id, &full, Bytes::new(), &headers).await,
    }
}

pub async fn alloc_gc(
    State(state): State<AppState>,
    Extension(caller): Extension<server::Caller>,
    headers: HeaderMap,
    Path(alloc_id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    match target(&state, &alloc_id, &caller, "alloc-lifecycle")? {
        Target::Local(handle, full) => {
            handle.gc(Some(&full)).await?;
            Ok(axum::Json(json!({})).into_response())
        }
        Target::Remote(addr, full) => pass_on(Method::PUT, &addr, &uri, &alloc_id, &full, Bytes::new(), &headers).await,
    }
}

fn local_client(state: &AppState) -> Result<&ClientHandle, ApiError> {
    state
        .client
        .as_ref()
        .ok_or_else(|| ApiError::BadRequest("this agent runs no client".to_string()))
}

pub async fn client_gc(State(state): State<AppState>) -> Result<Response, ApiError> {
    local_client(&state)?.gc(None).await?;
    Ok(axum::Json(json!({})).into_response())
}

pub async fn client_stats(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(axum::Json(local_client(&state)?.host_stats()).into_response())
}
