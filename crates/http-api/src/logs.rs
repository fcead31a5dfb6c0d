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

/// Reads up to `max` bytes of the concatenation of `files` at `position`
/// (from one file: a read never spans two). Empty at the end.
async fn read_chunk(files: &[PathBuf], mut position: u64, max: usize) -> std::io::Result<Vec<u8>> {
    for path in files {
        let len = tokio::fs::metadata(path).await.map(|meta| meta.len()).unwrap_or(0);
        if position >= len {
            position -= len;
            continue;
        }
        let mut file = tokio::fs::File::open(path).await?;
        file.seek(std::io::SeekFrom::Start(position)).await?;
        let want = usize::try_from(len - position).unwrap_or(usize::MAX).min(max);
        let mut buffer = vec![0u8; want];
        let mut filled = 0;
        while filled < want {
            let read = file.read(&mut buffer[filled..]).await?;
            if read == 0 {
                break;
            }
            filled += read;
        }
        buffer.truncate(filled);
        return Ok(buffer);
    }
    Ok(Vec::new())
}

/// Where a log stream is and where it ends. The stream is lazy: a chunk
/// is read from disk only when the client is ready for it, so memory holds
/// at most one chunk (and its frame) per request whatever the file size.
struct LogCursor {
    dir: PathBuf,
    task: String,
    log_type: String,
    files: Vec<PathBuf>,
    position: u64,
    /// Without `follow`: the total length when the request came; the
    /// stream ends there.
    end: Option<u64>,
    file_label: String,
    plain: bool,
    /// With `follow`: the allocation, to end the stream once it stopped.
    follow: Option<(server::Server, String)>,
    idle_after_stop: u32,
}

impl LogCursor {
    /// The next frame, or `None` at the end of the stream.
    async fn next_frame(&mut self) -> Option<std::io::Result<bytes::Bytes>> {
        loop {
            let max = match self.end {
                Some(end) => usize::try_from(end.saturating_sub(self.position))
                    .unwrap_or(usize::MAX)
                    .min(CHUNK),
                None => CHUNK,
            };
            if max == 0 {
                return None;
            }
            match read_chunk(&self.files, self.position, max).await {
                Ok(data) if !data.is_empty() => {
                    let offset = self.position;
                    self.position += data.len() as u64;
                    return Some(Ok(frame(&data, &self.file_label, offset, self.plain)));
                }
                Ok(_) => {}
                Err(error) => return Some(Err(error)),
            }
            let (server, alloc_id) = self.follow.as_ref()?;
            let finished = server
                .state()
                .alloc(alloc_id)
                .is_none_or(|alloc| alloc.client_status.is_terminal());
            if finished {
                // Give the last writes a moment to land, then end the stream.
                self.idle_after_stop += 1;
                if self.idle_after_stop > 2 {
                    return None;
                }
            }
            tokio::time::sleep(FOLLOW_POLL).await;
            self.files = log_files(&self.dir, &self.task, &self.log_type);
        }
    }

    fn into_stream(self) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> {
        futures::stream::unfold(self, |mut cursor| async move {
            let frame = cursor.next_frame().await?;
            Some((frame, cursor))
        })
    }
}

fn frame(data: &[u8], file: &str, offset: u64, plain: bool) -> bytes::Bytes {
    if plain {
        return bytes::Bytes::copy_from_slice(data);
    }
    let encoded = base64_encode(data);
    let frame = serde_json::json!({ "Data": encoded, "File": file, "Offset": offset });
    bytes::Bytes::from(frame.to_string())
}

pub(crate) fn base64_encode(data: &[u8]) -> String {
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
    axum::extract::Extension(caller): axum::extract::Extension<server::Caller>,
    Path(alloc_id): Path<String>,
    Query(query): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let Some(root) = state.alloc_root.clone() else {
        return Err(ApiError::BadRequest("this agent runs no client".to_string()));
    };
    let snapshot = state.server.state();
    let alloc = crate::handlers::found(snapshot.alloc_by_prefix(&alloc_id), "allocation", &alloc_id)?;
    crate::authz::require_namespace_op(&caller, &alloc.namespace, "read-logs")?;
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
    let cursor = LogCursor {
        file_label: format!("alloc/logs/{task}.{log_type}.0"),
        plain: query.plain,
        end: (!query.follow).then_some(total),
        follow: query.follow.then(|| (state.server.clone(), alloc.id.clone())),
        dir,
        task,
        log_type,
        files,
        position: start,
        idle_after_stop: 0,
    };
    Ok(Body::from_stream(cursor.into_stream()).into_response())
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

    fn cursor(dir: &FsPath, position: u64, end: Option<u64>, plain: bool) -> LogCursor {
        let files = log_files(dir, "web", "stdout");
        LogCursor {
            dir: dir.to_path_buf(),
            task: "web".into(),
            log_type: "stdout".into(),
            files,
            position,
            end,
            file_label: "alloc/logs/web.stdout.0".into(),
            plain,
            follow: None,
            idle_after_stop: 0,
        }
    }

    async fn read_all(mut cursor: LogCursor) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(frame) = cursor.next_frame().await {
            out.extend_from_slice(&frame.expect("read"));
        }
        out
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
        assert_eq!(read_all(cursor(dir.path(), 0, Some(12), true)).await, b"hello world!");
        assert_eq!(read_all(cursor(dir.path(), 8, Some(12), true)).await, b"rld!");
        assert_eq!(read_all(cursor(dir.path(), 12, Some(12), true)).await, b"");
        // Without follow the stream ends where the file ended when asked.
        assert_eq!(read_all(cursor(dir.path(), 0, Some(5), true)).await, b"hello");
    }

    /// A 256 MiB log (sparse, so the test writes nothing) is served in
    /// frames of at most one chunk, read only as they are consumed: after
    /// three frames the cursor has read three chunks, whatever the size.
    #[tokio::test]
    async fn large_logs_stream_in_bounded_frames_read_on_demand() {
        let dir = tempfile::tempdir().expect("tempdir");
        let size: u64 = 256 << 20;
        let file = std::fs::File::create(dir.path().join("web.stdout.0")).expect("create");
        file.set_len(size).expect("sparse file");
        let mut cursor = cursor(dir.path(), 0, Some(size), false);
        let mut offsets = Vec::new();
        for _ in 0..3 {
            let frame = cursor.next_frame().await.expect("a frame").expect("read");
            // A JSON frame of one chunk: base64 (4/3) plus a small envelope.
            assert!(frame.len() <= CHUNK * 4 / 3 + 256, "frame of {} bytes", frame.len());
            let value: serde_json::Value = serde_json::from_slice(&frame).expect("a JSON frame");
            offsets.push(value["Offset"].as_u64().expect("offset"));
        }
        assert_eq!(offsets, vec![0, CHUNK as u64, 2 * CHUNK as u64]);
        assert_eq!(cursor.position, 3 * CHUNK as u64, "nothing was read ahead");
        // Plain frames are raw chunks, and the last one ends at the end.
        let mut plain = self::cursor(dir.path(), size - CHUNK as u64 - 10, Some(size), true);
        let first = plain.next_frame().await.expect("a frame").expect("read");
        let second = plain.next_frame().await.expect("a frame").expect("read");
        assert_eq!((first.len(), second.len()), (CHUNK, 10));
        assert!(plain.next_frame().await.is_none());
    }
}
