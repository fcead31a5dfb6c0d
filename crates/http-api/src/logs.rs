//! `GET /v1/client/fs/logs/:alloc`: a task's stdout or stderr, read from the
//! rotated files the client writes (`alloc/logs/<task>.<type>.<n>`), from an
//! offset at the start or the end, optionally following new output until
//! the allocation stops. `plain=true` streams raw bytes; otherwise each chunk
//! is a JSON frame with base64 data, as Nomad sends it.

use crate::AppState;
use crate::error::ApiError;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::path::{Path as FsPath, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// How often a follower looks for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
const CHUNK: usize = 64 * 1024;

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct LogsQuery {
    task: String,
    #[serde(rename = "type")]
    log_type: String,
    follow: bool,
    offset: u64,
    origin: String,
    plain: bool,
}

/// The log files of one task stream, oldest first.
fn log_files(dir: &FsPath, task: &str, log_type: &str) -> Vec<PathBuf> {
    let prefix = format!("{task}.{log_type}.");
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().to_string();
            let number = name.strip_prefix(&prefix)?.parse().ok()?;
            Some((number, entry.path()))
        })
        .collect();
    files.sort();
    files.into_iter().map(|(_, path)| path).collect()
}

fn total_len(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|meta| meta.len())
        .sum()
}

/// Reads from the concatenation of `files` starting at `position`.
async fn read_from(files: &[PathBuf], mut position: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    for path in files {
        let len = tokio::fs::metadata(path).await.map(|meta| meta.len()).unwrap_or(0);
        if position >= len {
            position -= len;
            continue;
        }
        let mut file = tokio::fs::File::open(path).await?;
        file.seek(std::io::SeekFrom::Start(position)).await?;
        position = 0;
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let read = file.read(&mut buffer).await?;
            if read == 0 {
                break;
            }
            out.extend_from_slice(&buffer[..read]);
            if out.len() >= CHUNK * 4 {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

fn frame(data: &[u8], file: &str, offset: u64, plain: bool) -> bytes::Bytes {
    if plain {
        return bytes::Bytes::copy_from_slice(data);
    }
    let encoded = base64_encode(data);
    let frame = serde_json::json!({ "Data": encoded, "File": file, "Offset": offset });
    bytes::Bytes::from(frame.to_string())
}

fn base64_encode(data: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(TABLE[(n >> 18) as usize & 63] as char);
        out.push(TABLE[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            TABLE[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            TABLE[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

pub async fn logs(
    State(state): State<AppState>,
    Path(alloc_id): Path<String>,
    Query(query): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let Some(root) = state.alloc_root.clone() else {
        return Err(ApiError::BadRequest("this agent runs no client".to_string()));
    };
    let snapshot = state.server.state();
    let alloc = crate::handlers::found(snapshot.alloc_by_prefix(&alloc_id), "allocation", &alloc_id)?;
    let log_type = if query.log_type.is_empty() {
        "stdout".to_string()
    } else {
        query.log_type.clone()
    };
    if log_type != "stdout" && log_type != "stderr" {
        return Err(ApiError::BadRequest(format!(
            "log type must be stdout or stderr, not {log_type:?}"
        )));
    }
    let task = if query.task.is_empty() {
        let job = snapshot.job_version(&alloc.namespace, &alloc.job_id, alloc.job_version);
        let group = job.as_ref().and_then(|job| job.group(&alloc.task_group).cloned());
        match group.map(|group| group.tasks.iter().map(|task| task.name.clone()).collect::<Vec<_>>()) {
            Some(names) if names.len() == 1 => names[0].clone(),
            _ => return Err(ApiError::BadRequest("must name a task (task=…)".to_string())),
        }
    } else {
        query.task.clone()
    };
    if task.contains('/') || task.contains("..") {
        return Err(ApiError::BadRequest(format!("invalid task name {task:?}")));
    }
    // The client owns the allocation directory layout.
    let dir = client::AllocDir::new(&root, &alloc.id).logs_dir();
    let files = log_files(&dir, &task, &log_type);
    let total = total_len(&files);
    let start = match query.origin.as_str() {
        "" | "start" => query.offset.min(total),
        "end" => total.saturating_sub(query.offset),
        other => {
            return Err(ApiError::BadRequest(format!(
                "origin must be start or end, not {other:?}"
            )));
        }
    };
    let file_label = format!("alloc/logs/{task}.{log_type}.0");
    let plain = query.plain;
    if !query.follow {
        let data = read_from(&files, start)
            .await
            .map_err(|error| ApiError::Internal(format!("read logs in {}: {error}", dir.display())))?;
        let mut all = data;
        let mut position = start + all.len() as u64;
        loop {
            let more = read_from(&files, position)
                .await
                .map_err(|error| ApiError::Internal(format!("read logs in {}: {error}", dir.display())))?;
            if more.is_empty() {
                break;
            }
            position += more.len() as u64;
            all.extend_from_slice(&more);
        }
        let body = if all.is_empty() && !plain {
            bytes::Bytes::new()
        } else {
            frame(&all, &file_label, start, plain)
        };
        return Ok(body.into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(16);
    let alloc_id = alloc.id.clone();
    let server = state.server.clone();
    tokio::spawn(async move {
        let mut position = start;
        let mut idle_after_stop = 0;
        loop {
            let files = log_files(&dir, &task, &log_type);
            match read_from(&files, position).await {
                Ok(data) if !data.is_empty() => {
                    let offset = position;
                    position += data.len() as u64;
                    if tx.send(Ok(frame(&data, &file_label, offset, plain))).await.is_err() {
                        return;
                    }
                    continue;
                }
                Ok(_) => {}
                Err(error) => {
                    let _ = tx.send(Err(error)).await;
                    return;
                }
            }
            let finished = server
                .state()
                .alloc(&alloc_id)
                .is_none_or(|alloc| alloc.client_status.is_terminal());
            if finished {
                // Give the last writes a moment to land, then end the stream.
                idle_after_stop += 1;
                if idle_after_stop > 2 {
                    return;
                }
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    });
    let stream = tokio_stream_from(rx);
    Ok(Body::from_stream(stream).into_response())
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }

    #[tokio::test]
    async fn reads_across_rotated_files_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("web.stdout.0"), b"hello ").expect("write");
        std::fs::write(dir.path().join("web.stdout.1"), b"world").expect("write");
        std::fs::write(dir.path().join("web.stderr.0"), b"oops").expect("write");
        std::fs::write(dir.path().join("web.stdout.10"), b"!").expect("write");
        let files = log_files(dir.path(), "web", "stdout");
        assert_eq!(files.len(), 3);
        assert_eq!(total_len(&files), 12);
        assert_eq!(read_from(&files, 0).await.expect("read"), b"hello world!");
        assert_eq!(read_from(&files, 8).await.expect("read"), b"rld!");
        assert_eq!(read_from(&files, 12).await.expect("read"), b"");
    }
}
