//! The HTTP API of an agent that runs only a client. It answers what the
//! agent itself knows (`/v1/agent/self`, `/v1/agent/health`) and passes
//! every other request on, unchanged, to a server's HTTP address learned
//! from the servers' answers, trying the next server when one does not
//! answer. So `NOMAD_ADDR` may point at any agent, as with Nomad.

use crate::AgentInfo;
use crate::error::ApiError;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

/// Largest request body passed on to a server.
const MAX_PROXIED_BODY: usize = 8 << 20;

/// Where the servers are, as the client agent last heard.
pub trait ServerDirectory: Send + Sync {
    /// The servers' RPC addresses.
    fn rpc_addrs(&self) -> Vec<String>;
    /// The servers' HTTP addresses.
    fn http_addrs(&self) -> Vec<String>;
}

/// What a client agent's handlers share.
#[derive(Clone)]
pub struct ClientAppState {
    /// Where the client keeps allocation directories.
    pub alloc_root: Option<PathBuf>,
    pub agent: Arc<AgentInfo>,
    /// Where the servers are (the client's RPC connection knows).
    pub servers: Arc<dyn ServerDirectory>,
    /// The client's controls (signal, restart, stats, GC).
    pub client: Option<client::handle::ClientHandle>,
    /// ACLs are on: `agent/self` needs a token with `agent` read, which a
    /// server checks (this agent holds no ACL state).
    pub acl_enabled: bool,
}

/// Builds a client agent's router.
pub fn client_app(state: ClientAppState) -> Router {
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    Router::new()
        .route("/v1/agent/self", get(agent_self))
        .route("/v1/agent/health", get(agent_health))
        .route("/v1/client/fs/ls/{alloc}", get(fs_ls))
        .route("/v1/client/fs/stat/{alloc}", get(fs_stat))
        .route("/v1/client/fs/cat/{alloc}", get(fs_cat))
        .route("/v1/client/fs/readat/{alloc}", get(fs_readat))
        .route(
            "/v1/client/allocation/{alloc}/signal",
            axum::routing::put(control_signal).post(control_signal),
        )
        .route(
            "/v1/client/allocation/{alloc}/restart",
            axum::routing::put(control_restart).post(control_restart),
        )
        .route("/v1/client/allocation/{alloc}/stats", get(control_stats))
        .route("/v1/client/allocation/{alloc}/checks", get(control_checks))
        .route(
            "/v1/client/allocation/{alloc}/gc",
            get(control_alloc_gc).put(control_alloc_gc),
        )
        .route("/v1/client/gc", get(control_gc).put(control_gc))
        .route("/v1/client/stats", get(control_host_stats))
        .fallback(proxy)
        .with_state((state, http))
}

type Shared = (ClientAppState, reqwest::Client);

/// Asks a server whether the request's token may read agents (the
/// capability `agent/self` needs), by passing a `GET /v1/agent/servers`
/// with the same token on; `None` when it may.
async fn agent_read_denied(
    state: &ClientAppState,
    http: &reqwest::Client,
    headers: &axum::http::HeaderMap,
) -> Option<Response> {
    let mut last_error = String::new();
    for target in state.servers.http_addrs() {
        let mut check = http.get(format!("http://{target}/v1/agent/servers"));
        for name in ["x-nomad-token", "authorization"] {
            if let Some(value) = headers.get(name) {
                check = check.header(name, value);
            }
        }
        match check.send().await {
            Ok(answer) if answer.status().is_success() => return None,
            Ok(answer) => {
                let status = answer.status();
                let text = answer.text().await.unwrap_or_default();
                return Some((status, text).into_response());
            }
            Err(error) => last_error = format!("{target}: {error}"),
        }
    }
    Some(ApiError::Unavailable(format!("no server could check the token ({last_error})")).into_response())
}

async fn agent_self(State((state, http)): State<Shared>, headers: axum::http::HeaderMap) -> Response {
    if state.acl_enabled
        && let Some(denied) = agent_read_denied(&state, &http, &headers).await
    {
        return denied;
    }
    let agent = &state.agent;
    axum::Json(json!({
        "config": {
            "Region": agent.region,
            "Datacenter": agent.datacenter,
            "NodeName": agent.node_name,
            "DataDir": agent.data_dir,
            "DevMode": agent.dev_mode,
            "Version": { "Version": agent.version, "VersionPrerelease": "", "Revision": "" },
            "Addresses": { "HTTP": agent.http_addr, "RPC": "" },
            "Server": { "Enabled": false },
            "Client": { "Enabled": true, "Servers": state.servers.rpc_addrs() },
        },
        "member": null,
        "stats": {
            "client": {
                "node_id": agent.client_node_id.clone().unwrap_or_default(),
                "known_servers": state.servers.rpc_addrs().join(","),
            },
        },
    }))
    .into_response()
}

async fn agent_health(State((state, _)): State<Shared>) -> Response {
    let known = !state.servers.http_addrs().is_empty();
    let body = json!({ "client": { "ok": known, "message": if known { "ok" } else { "no servers known yet" } } });
    let status = if known {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// Serves an fs request from this client's own allocation directories.
async fn local_fs(
    state: &ClientAppState,
    op: crate::client_fs::FsOp,
    alloc_id: &str,
    query: &crate::client_fs::FsQuery,
) -> Result<Response, ApiError> {
    let Some(root) = &state.alloc_root else {
        return Err(ApiError::BadRequest("this agent runs no client".to_string()));
    };
    // A full allocation ID names a directory; nothing else may.
    if uuid_like(alloc_id) {
        let dir = client::AllocDir::new(root, alloc_id);
        crate::client_fs::serve_local(dir.root(), op, query).await
    } else {
        Err(ApiError::BadRequest(format!("{alloc_id:?} is not an allocation ID")))
    }
}

fn uuid_like(text: &str) -> bool {
    text.len() == 36 && text.bytes().all(|byte| byte.is_ascii_hexdigit() || byte == b'-')
}

type FsArgs = (
    State<Shared>,
    axum::extract::Path<String>,
    axum::extract::Query<crate::client_fs::FsQuery>,
);

async fn fs_ls(
    (State((state, _)), axum::extract::Path(alloc), axum::extract::Query(query)): FsArgs,
) -> Result<Response, ApiError> {
    local_fs(&state, crate::client_fs::FsOp::List, &alloc, &query).await
}

async fn fs_stat(
    (State((state, _)), axum::extract::Path(alloc), axum::extract::Query(query)): FsArgs,
) -> Result<Response, ApiError> {
    local_fs(&state, crate::client_fs::FsOp::Stat, &alloc, &query).await
}

async fn fs_cat(
    (State((state, _)), axum::extract::Path(alloc), axum::extract::Query(query)): FsArgs,
) -> Result<Response, ApiError> {
    local_fs(&state, crate::client_fs::FsOp::Cat, &alloc, &query).await
}

async fn fs_readat(
    (State((state, _)), axum::extract::Path(alloc), axum::extract::Query(query)): FsArgs,
) -> Result<Response, ApiError> {
    local_fs(&state, crate::client_fs::FsOp::ReadAt, &alloc, &query).await
}

fn handle_of(state: &ClientAppState) -> Result<&client::handle::ClientHandle, ApiError> {
    state
        .client
        .as_ref()
        .ok_or_else(|| ApiError::BadRequest("this agent runs no client".to_string()))
}

async fn control_signal(
    State((state, _)): State<Shared>,
    axum::extract::Path(alloc): axum::extract::Path<String>,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    crate::client_control::signal_local(handle_of(&state)?, &alloc, &body).await
}

async fn control_restart(
    State((state, _)): State<Shared>,
    axum::extract::Path(alloc): axum::extract::Path<String>,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    crate::client_control::restart_local(handle_of(&state)?, &alloc, &body).await
}

async fn control_stats(
    State((state, _)): State<Shared>,
    axum::extract::Path(alloc): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    crate::client_control::stats_local(handle_of(&state)?, &alloc).await
}

async fn control_checks(
    State((state, _)): State<Shared>,
    axum::extract::Path(alloc): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    crate::client_control::checks_local(handle_of(&state)?, &alloc)
}

async fn control_alloc_gc(
    State((state, _)): State<Shared>,
    axum::extract::Path(alloc): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    handle_of(&state)?.gc(Some(&alloc)).await?;
    Ok(axum::Json(json!({})).into_response())
}

async fn control_gc(State((state, _)): State<Shared>) -> Result<Response, ApiError> {
    handle_of(&state)?.gc(None).await?;
    Ok(axum::Json(json!({})).into_response())
}

async fn control_host_stats(State((state, _)): State<Shared>) -> Result<Response, ApiError> {
    Ok(axum::Json(handle_of(&state)?.host_stats()).into_response())
}

/// Headers that describe one hop, not the request.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "transfer-encoding" | "te" | "upgrade" | "host" | "content-length"
    )
}

async fn proxy(State((state, http)): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_PROXIED_BODY).await {
        Ok(body) => body,
        Err(_) => {
            return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n").into_response();
        }
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    let targets = state.servers.http_addrs();
    if targets.is_empty() {
        return ApiError::NoLeader(None).into_response();
    }
    let mut last_error = String::new();
    for target in targets {
        let url = format!("http://{target}{path}");
        let mut outgoing = http.request(parts.method.clone(), &url).body(body.clone());
        for (name, value) in &parts.headers {
            if !hop_by_hop(name) {
                outgoing = outgoing.header(name, value);
            }
        }
        match outgoing.send().await {
            Ok(answer) => {
                let mut response = Response::builder().status(answer.status());
                for (name, value) in answer.headers() {
                    if !hop_by_hop(name) {
                        response = response.header(name, value);
                    }
                }
                return response
                    .body(Body::from_stream(answer.bytes_stream()))
                    .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response());
            }
            Err(error) => {
                tracing::debug!(%url, %error, "server did not answer a proxied request");
                last_error = format!("{target}: {error}");
            }
        }
    }
    ApiError::Unavailable(format!("no server answered ({last_error})")).into_response()
}
