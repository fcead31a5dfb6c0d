//! `/v1/client/fs/{ls,stat,cat,readat}/:alloc`: an allocation's directory,
//! as Nomad's client serves it. Paths (`path=`) are relative to the
//! allocation directory and may not leave it, lexically or through a
//! symlink a task planted. Files are streamed in chunks, so memory stays
//! bounded whatever their size, and `readat` honours `offset` and `limit`.
//!
//! The agent that runs the allocation's client reads its own disk; any
//! other agent passes the request on to that node's HTTP address, so a
//! server never reads a client's files.

use crate::AppState;
use crate::error::ApiError;
use axum::body::Body;
use axum::extract::{Extension, OriginalUri, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::path::{Path as FsPath, PathBuf};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

const CHUNK: usize = 64 * 1024;
/// Most entries `ls` lists.
const MAX_LIST: usize = 10_000;

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct FsQuery {
    path: String,
    offset: u64,
    limit: Option<u64>,
}

/// One file or directory, in Nomad's `AllocFileInfo` shape.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct AllocFileInfo {
    pub name: String,
    pub is_dir: bool,
    pub size: u64,
    pub file_mode: String,
    pub mod_time: String,
    pub content_type: String,
}

/// Which fs operation a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsOp {
    List,
    Stat,
    Cat,
    ReadAt,
}

/// Resolves `path` inside `alloc_dir`: lexically confined, then, once it
/// exists, with symlinks resolved.
fn resolve(alloc_dir: &FsPath, path: &str) -> Result<PathBuf, ApiError> {
    let name = if path.is_empty() || path == "/" { "." } else { path };
    let target = if name == "." {
        alloc_dir.to_path_buf()
    } else {
        client::sandbox::confine(alloc_dir, alloc_dir, name).map_err(ApiError::BadRequest)?
    };
    match client::sandbox::still_inside(alloc_dir, &target) {
        Ok(true) => Ok(target),
        Ok(false) => Err(ApiError::BadRequest(format!(
            "path {path:?} leaves the allocation directory"
        ))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(ApiError::NotFound(format!("file {path:?}"))),
        Err(error) => Err(ApiError::BadRequest(format!("path {path:?}: {error}"))),
    }
}

fn mode_string(metadata: &std::fs::Metadata) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = metadata.permissions().mode();
    let kind = if metadata.is_dir() {
        'd'
    } else if metadata.file_type().is_symlink() {
        'L'
    } else {
        '-'
    };
    let mut text = String::with_capacity(10);
    text.push(kind);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        text.push(if bits & 4 != 0 { 'r' } else { '-' });
        text.push(if bits & 2 != 0 { 'w' } else { '-' });
        text.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    text
}

fn rfc3339(time: std::time::SystemTime) -> String {
    let seconds = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64);
    let days = seconds.div_euclid(86_400);
    let in_day = seconds.rem_euclid(86_400);
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    )
}

fn info(name: String, metadata: &std::fs::Metadata) -> AllocFileInfo {
    AllocFileInfo {
        name,
        is_dir: metadata.is_dir(),
        size: if metadata.is_dir() { 0 } else { metadata.len() },
        file_mode: mode_string(metadata),
        mod_time: metadata.modified().map(rfc3339).unwrap_or_default(),
        content_type: if metadata.is_dir() {
            String::new()
        } else {
            "application/octet-stream".to_string()
        },
    }
}

/// Serves one fs request from the allocation directory `alloc_dir`.
pub async fn serve_local(alloc_dir: &FsPath, op: FsOp, query: &FsQuery) -> Result<Response, ApiError> {
    if !alloc_dir.is_dir() {
        return Err(ApiError::NotFound(format!(
            "allocation directory {}",
            alloc_dir.display()
        )));
    }
    let target = resolve(alloc_dir, &query.path)?;
    let metadata =
        std::fs::metadata(&target).map_err(|error| ApiError::NotFound(format!("file {:?}: {error}", query.path)))?;
    match op {
        FsOp::Stat => {
            let name = target
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_else(|| "/".to_string());
            Ok(axum::Json(info(name, &metadata)).into_response())
        }
        FsOp::List => {
            if !metadata.is_dir() {
                return Err(ApiError::BadRequest(format!("{:?} is not a directory", query.path)));
            }
            let mut entries = Vec::new();
            let listing = std::fs::read_dir(&target).map_err(|error| ApiError::BadRequest(error.to_string()))?;
            for entry in listing.flatten().take(MAX_LIST) {
                // symlink_metadata: a link is listed, never followed.
                if let Ok(metadata) = entry.path().symlink_metadata() {
                    entries.push(info(entry.file_name().to_string_lossy().into_owned(), &metadata));
                }
            }
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(axum::Json(entries).into_response())
        }
        FsOp::Cat | FsOp::ReadAt => {
            if metadata.is_dir() {
                return Err(ApiError::BadRequest(format!("{:?} is a directory", query.path)));
            }
            let (offset, limit) = match op {
                FsOp::ReadAt => (query.offset, query.limit),
                _ => (0, None),
            };
            let end = limit.map_or(metadata.len(), |limit| offset.saturating_add(limit).min(metadata.len()));
            let mut file = tokio::fs::File::open(&target)
                .await
                .map_err(|error| ApiError::BadRequest(error.to_string()))?;
            file.seek(std::io::SeekFrom::Start(offset))
                .await
                .map_err(|error| ApiError::BadRequest(error.to_string()))?;
            let stream = futures::stream::unfold((file, offset), move |(mut file, position)| async move {
                if position >= end {
                    return None;
                }
                let want = usize::try_from(end - position).unwrap_or(usize::MAX).min(CHUNK);
                let mut buffer = vec![0u8; want];
                match file.read(&mut buffer).await {
                    Ok(0) => None,
                    Ok(read) => {
                        buffer.truncate(read);
                        Some((Ok(bytes::Bytes::from(buffer)), (file, position + read as u64)))
                    }
                    Err(error) => Some((Err(error), (file, end))),
                }
            });
            Ok(Body::from_stream(stream).into_response())
        }
    }
}

/// Handles an fs request on the full agent: local when this agent's client
/// holds the allocation, otherwise forwarded to the node that does.
async fn handle(
    state: AppState,
    caller: &server::Caller,
    token: Option<String>,
    op: FsOp,
    alloc_id: String,
    uri: axum::http::Uri,
    query: FsQuery,
) -> Result<Response, ApiError> {
    let snapshot = state.server.state();
    let alloc = crate::handlers::found(snapshot.alloc_by_prefix(&alloc_id), "allocation", &alloc_id)?;
    crate::authz::require_namespace_op(caller, &alloc.namespace, "read-fs")?;
    let local = state.agent.client_node_id.as_deref() == Some(alloc.node_id.as_str());
    if local && let Some(root) = &state.alloc_root {
        let dir = client::AllocDir::new(root, &alloc.id);
        return serve_local(dir.root(), op, &query).await;
    }
    let node = snapshot
        .node(&alloc.node_id)
        .ok_or_else(|| ApiError::NotFound(format!("node {}", alloc.node_id)))?;
    if node.http_addr.is_empty() {
        return Err(ApiError::Unavailable(format!(
            "node {} has no HTTP address to forward the request to",
            node.id
        )));
    }
    // The full ID, so the client need not resolve a prefix.
    let path = uri
        .path()
        .replacen(&format!("/{alloc_id}"), &format!("/{}", alloc.id), 1);
    let url = format!(
        "http://{}{path}{}",
        node.http_addr,
        uri.query().map(|query| format!("?{query}")).unwrap_or_default()
    );
    forward_with(axum::http::Method::GET, &url, bytes::Bytes::new(), token.as_deref()).await
}

/// Passes a request on to a client agent and streams its answer back,
/// with the caller's token (the client agent checks it again).
pub async fn forward_with(
    method: axum::http::Method,
    url: &str,
    body: bytes::Bytes,
    token: Option<&str>,
) -> Result<Response, ApiError> {
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    let method = reqwest::Method::from_bytes(method.as_str().as_bytes())
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    let mut request = http.request(method, url).body(body);
    if let Some(token) = token {
        request = request.header("X-Nomad-Token", token);
    }
    let answer = request
        .send()
        .await
        .map_err(|error| ApiError::Unavailable(format!("the client agent did not answer: {error}")))?;
    let status = axum::http::StatusCode::from_u16(answer.status().as_u16())
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    Ok((status, Body::from_stream(answer.bytes_stream())).into_response())
}

pub async fn ls(
    State(state): State<AppState>,
    Extension(caller): Extension<server::Caller>,
    headers: HeaderMap,
    Path(alloc): Path<String>,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<FsQuery>,
) -> Result<Response, ApiError> {
    let token = crate::authz::request_token(&headers);
    handle(state, &caller, token, FsOp::List, alloc, uri, query).await
}

pub async fn stat(
    State(state): State<AppState>,
    Extension(caller): Extension<server::Caller>,
    headers: HeaderMap,
    Path(alloc): Path<String>,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<FsQuery>,
) -> Result<Response, ApiError> {
    let token = crate::authz::request_token(&headers);
    handle(state, &caller, token, FsOp::Stat, alloc, uri, query).await
}

pub async fn cat(
    State(state): State<AppState>,
    Extension(caller): Extension<server::Caller>,
    headers: HeaderMap,
    Path(alloc): Path<String>,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<FsQuery>,
) -> Result<Response, ApiError> {
    let token = crate::authz::request_token(&headers);
    handle(state, &caller, token, FsOp::Cat, alloc, uri, query).await
}

pub async fn readat(
    State(state): State<AppState>,
    Extension(caller): Extension<server::Caller>,
    headers: HeaderMap,
    Path(alloc): Path<String>,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<FsQuery>,
) -> Result<Response, ApiError> {
    let token = crate::authz::request_token(&headers);
    handle(state, &caller, token, FsOp::ReadAt, alloc, uri, query).await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> (axum::http::StatusCode, String) {
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    fn query(path: &str) -> FsQuery {
        FsQuery {
            path: path.to_string(),
            ..FsQuery::default()
        }
    }

    fn alloc_dir() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let alloc = dir.path().join("alloc-id");
        std::fs::create_dir_all(alloc.join("web/local")).expect("dirs");
        std::fs::write(alloc.join("web/local/app.conf"), "0123456789").expect("write");
        (dir, alloc)
    }

    #[tokio::test]
    async fn ls_stat_cat_and_readat_follow_nomads_semantics() {
        let (_dir, alloc) = alloc_dir();
        let (status, text) = body(serve_local(&alloc, FsOp::List, &query("web/local")).await.expect("ls")).await;
        assert_eq!(status, 200);
        let listed: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(listed[0]["Name"], "app.conf");
        assert_eq!(listed[0]["Size"], 10);
        assert_eq!(listed[0]["IsDir"], false);
        assert!(listed[0]["FileMode"].as_str().expect("mode").starts_with('-'));
        let (_, text) = body(serve_local(&alloc, FsOp::Stat, &query("/web")).await.expect("stat")).await;
        let stat: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(
            (stat["Name"].as_str(), stat["IsDir"].as_bool()),
            (Some("web"), Some(true))
        );
        let (_, text) = body(
            serve_local(&alloc, FsOp::Cat, &query("web/local/app.conf"))
                .await
                .expect("cat"),
        )
        .await;
        assert_eq!(text, "0123456789");
        let read = FsQuery {
            path: "web/local/app.conf".into(),
            offset: 3,
            limit: Some(4),
        };
        let (_, text) = body(serve_local(&alloc, FsOp::ReadAt, &read).await.expect("readat")).await;
        assert_eq!(text, "3456");
        let past = FsQuery {
            offset: 8,
            limit: Some(100),
            ..read
        };
        let (_, text) = body(serve_local(&alloc, FsOp::ReadAt, &past).await.expect("readat")).await;
        assert_eq!(text, "89");
    }

    #[tokio::test]
    async fn paths_cannot_leave_the_allocation_directory() {
        let (dir, alloc) = alloc_dir();
        std::fs::write(dir.path().join("secret"), "s3cret").expect("write");
        for path in ["../secret", "web/../../secret", "/../secret"] {
            let error = serve_local(&alloc, FsOp::Cat, &query(path)).await.expect_err("refused");
            assert!(matches!(error, ApiError::BadRequest(_)), "{path}: {error}");
        }
        // A symlink a task planted is not followed out.
        std::os::unix::fs::symlink(dir.path().join("secret"), alloc.join("web/local/link")).expect("symlink");
        let error = serve_local(&alloc, FsOp::Cat, &query("web/local/link"))
            .await
            .expect_err("refused");
        assert!(error.to_string().contains("leaves the allocation directory"), "{error}");
        let error = serve_local(&alloc, FsOp::Cat, &query("web/missing"))
            .await
            .expect_err("missing");
        assert!(matches!(error, ApiError::NotFound(_)), "{error}");
        assert!(serve_local(&alloc, FsOp::Cat, &query("web")).await.is_err());
    }

    /// A 256 MiB file (sparse) is streamed in chunks of at most 64 KiB.
    #[tokio::test]
    async fn large_files_stream_in_bounded_chunks() {
        use futures::StreamExt as _;
        let (_dir, alloc) = alloc_dir();
        let file = std::fs::File::create(alloc.join("big")).expect("create");
        file.set_len(256 << 20).expect("sparse");
        let response = serve_local(&alloc, FsOp::Cat, &query("big")).await.expect("cat");
        let mut stream = response.into_body().into_data_stream();
        for _ in 0..3 {
            let chunk = stream.next().await.expect("a chunk").expect("read");
            assert!(chunk.len() <= CHUNK);
        }
    }
}
