//! `/v1/agent/monitor` (the agent's own log lines, streamed at a chosen
//! level) and `/v1/agent/host` (facts about the agent's host, as `nomad
//! operator debug` collects them).
//!
//! Log lines reach the monitor through a [`LogBroadcast`]: the binary's
//! tracing layer publishes each formatted line whose level some monitor
//! wants (`wants` is one atomic load, so with no monitor open nothing is
//! formatted), and every monitor holds a bounded `broadcast` receiver. A
//! monitor that falls behind loses the lines it missed and is told so in
//! the stream; the agent's logging never waits for it.

use crate::AppState;
use crate::error::ApiError;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::broadcast;

/// Lines a monitor may fall behind before it misses some.
const MONITOR_LAG: usize = 1024;
/// Bytes of a host file (`/etc/hosts`, `/etc/resolv.conf`) reported.
const MAX_HOST_FILE: u64 = 64 * 1024;

/// Log levels, most severe first (`Error` = 0 … `Trace` = 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
    Trace = 4,
}

impl LogLevel {
    /// Nomad's level names, any case.
    pub fn parse(text: &str) -> Option<LogLevel> {
        match text.to_ascii_lowercase().as_str() {
            "error" | "err" => Some(LogLevel::Error),
            "warn" | "warning" => Some(LogLevel::Warn),
            "info" => Some(LogLevel::Info),
            "debug" => Some(LogLevel::Debug),
            "trace" => Some(LogLevel::Trace),
            _ => None,
        }
    }
}

/// A log line's time as Nomad's agent prints it
/// (`2006-01-02T15:04:05.000Z`).
pub fn log_timestamp(since_epoch: std::time::Duration) -> String {
    let (year, month, day, hour, minute, second) = crate::metrics::civil_time(since_epoch.as_secs());
    format!(
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{:03}Z",
        since_epoch.subsec_millis()
    )
}

/// Fans the agent's log lines out to monitors. Cheap to clone.
#[derive(Clone)]
pub struct LogBroadcast {
    lines: broadcast::Sender<Arc<(LogLevel, String)>>,
    /// Open monitors per level.
    watching: Arc<[AtomicUsize; 5]>,
}

impl std::fmt::Debug for LogBroadcast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogBroadcast").finish()
    }
}

impl Default for LogBroadcast {
    fn default() -> LogBroadcast {
        LogBroadcast {
            lines: broadcast::channel(MONITOR_LAG).0,
            watching: Arc::new(Default::default()),
        }
    }
}

/// An open monitor's registration; dropping it stops the lines.
struct Watch {
    broadcast: LogBroadcast,
    level: LogLevel,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.broadcast.watching[self.level as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

impl LogBroadcast {
    /// Whether some monitor wants lines at `level`.
    pub fn wants(&self, level: LogLevel) -> bool {
        self.watching[level as usize..]
            .iter()
            .any(|count| count.load(Ordering::Relaxed) > 0)
    }

    /// Sends one formatted line (without its newline) to the monitors.
    pub fn publish(&self, level: LogLevel, line: String) {
        // An error only means no monitor is open.
        let _ = self.lines.send(Arc::new((level, line)));
    }

    fn watch(&self, level: LogLevel) -> (Watch, broadcast::Receiver<Arc<(LogLevel, String)>>) {
        self.watching[level as usize].fetch_add(1, Ordering::Relaxed);
        let watch = Watch {
            broadcast: self.clone(),
            level,
        };
        (watch, self.lines.subscribe())
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct MonitorQuery {
    log_level: Option<String>,
    plain: Option<String>,
    log_json: Option<String>,
    node_id: Option<String>,
    server_id: Option<String>,
}

/// Refuses `node_id`/`server_id` naming another agent (Drover does not
/// forward these yet).
fn only_this_agent(state: &AppState, node_id: Option<&str>, server_id: Option<&str>) -> Result<(), ApiError> {
    if let Some(node_id) = node_id.filter(|id| !id.is_empty())
        && state.agent.client_node_id.as_deref() != Some(node_id)
    {
        return Err(ApiError::BadRequest(format!(
            "node_id {node_id:?} is not this agent's client; Drover answers only for the agent asked"
        )));
    }
    if let Some(server_id) = server_id.filter(|id| !id.is_empty() && *id != "leader") {
        let names = [
            state.agent.node_name.clone(),
            format!("{}.{}", state.agent.node_name, state.agent.region),
        ];
        if !names.iter().any(|name| name == server_id) {
            return Err(ApiError::BadRequest(format!(
                "server_id {server_id:?} is not this agent; Drover answers only for the agent asked"
            )));
        }
    }
    Ok(())
}

fn flag(name: &str, value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None | Some("") => Ok(false),
        Some(text) => text
            .parse()
            .map_err(|_| ApiError::BadRequest(format!("invalid {name} {text:?}: true or false"))),
    }
}

/// `GET /v1/agent/monitor?log_level=…&plain=true`: with `plain`, the
/// lines as text; otherwise Nomad's frames (`{"Data": base64}`).
pub async fn monitor(State(state): State<AppState>, Query(query): Query<MonitorQuery>) -> Result<Response, ApiError> {
    only_this_agent(&state, query.node_id.as_deref(), query.server_id.as_deref())?;
    let level = match query.log_level.as_deref() {
        None | Some("") => LogLevel::Info,
        Some(text) => LogLevel::parse(text).ok_or_else(|| {
            ApiError::BadRequest(format!("invalid log_level {text:?} (trace, debug, info, warn, error)"))
        })?,
    };
    let plain = flag("plain", query.plain.as_deref())?;
    if flag("log_json", query.log_json.as_deref())? {
        return Err(ApiError::BadRequest(
            "log_json is not supported by Drover's monitor; lines are text".to_string(),
        ));
    }
    let (watch, receiver) = state.agent.logs.watch(level);
    // Seen by this monitor first (at every level but error), and by any other.
    tracing::warn!(log_level = ?level, plain, "agent monitor attached");
    let lines = futures::stream::unfold((watch, receiver), move |(watch, mut receiver)| async move {
        loop {
            let text = match receiver.recv().await {
                Ok(line) if line.0 <= level => format!("{}\n", line.1),
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    format!("[WARN]  monitor: this monitor fell behind and missed {missed} log lines\n")
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            let chunk = if plain {
                Bytes::from(text)
            } else {
                let frame = json!({ "Data": crate::logs::base64_encode(text.as_bytes()) });
                Bytes::from(format!("{frame}\n"))
            };
            return Some((Ok::<Bytes, std::io::Error>(chunk), (watch, receiver)));
        }
    });
    let content_type = if plain { "text/plain" } else { "application/json" };
    Ok((
        [(axum::http::header::CONTENT_TYPE, content_type)],
        Body::from_stream(lines.boxed()),
    )
        .into_response())
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct HostQuery {
    node_id: Option<String>,
    server_id: Option<String>,
}

fn read_small(path: &str) -> Option<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).ok()?;
    let mut text = String::new();
    file.take(MAX_HOST_FILE).read_to_string(&mut text).ok()?;
    Some(text)
}

fn proc_value(path: &str) -> String {
    read_small(path).map(|text| text.trim().to_string()).unwrap_or_default()
}

/// Environment variables whose values are never shown.
fn sensitive(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL", "AUTH"]
        .iter()
        .any(|word| upper.contains(word))
}

/// The host facts, as `/v1/agent/host`'s `HostData`.
pub(crate) fn host_data() -> Value {
    let interfaces: Vec<Value> = std::fs::read_dir("/sys/class/net")
        .map(|entries| {
            let mut names: Vec<String> = entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
                .into_iter()
                .map(|name| {
                    let address = proc_value(&format!("/sys/class/net/{name}/address"));
                    json!({ "Name": name, "HardwareAddr": address })
                })
                .collect()
        })
        .unwrap_or_default();
    let environment: serde_json::Map<String, Value> = std::env::vars()
        .map(|(name, value)| {
            let shown = if sensitive(&name) {
                "<redacted>".to_string()
            } else {
                value
            };
            (name, Value::String(shown))
        })
        .collect();
    json!({
        "OS": {
            "Type": proc_value("/proc/sys/kernel/ostype"),
            "Release": proc_value("/proc/sys/kernel/osrelease"),
            "Version": proc_value("/proc/sys/kernel/version"),
            "Hostname": proc_value("/proc/sys/kernel/hostname"),
            "Arch": std::env::consts::ARCH,
        },
        "Network": interfaces,
        "ResolvConf": read_small("/etc/resolv.conf").unwrap_or_default(),
        "Hosts": read_small("/etc/hosts").unwrap_or_default(),
        "Environment": environment,
        "Uptime": proc_value("/proc/uptime").split_whitespace().next().unwrap_or("").to_string(),
    })
}

/// `GET /v1/agent/host`.
pub async fn host(State(state): State<AppState>, Query(query): Query<HostQuery>) -> Result<Response, ApiError> {
    only_this_agent(&state, query.node_id.as_deref(), query.server_id.as_deref())?;
    let data = tokio::task::spawn_blocking(host_data)
        .await
        .map_err(|error| ApiError::Internal(format!("read host data: {error}")))?;
    let agent_id = state
        .agent
        .client_node_id
        .clone()
        .unwrap_or_else(|| state.agent.node_name.clone());
    Ok(axum::Json(json!({ "AgentID": agent_id, "HostData": data })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn monitors_register_their_level_and_unregister_on_drop() {
        let logs = LogBroadcast::default();
        assert!(!logs.wants(LogLevel::Error));
        let (watch, mut receiver) = logs.watch(LogLevel::Info);
        assert!(logs.wants(LogLevel::Warn) && logs.wants(LogLevel::Info));
        assert!(!logs.wants(LogLevel::Debug));
        logs.publish(LogLevel::Info, "hello".to_string());
        assert_eq!(receiver.recv().await.expect("line").1, "hello");
        drop(watch);
        assert!(!logs.wants(LogLevel::Error));
        assert_eq!(LogLevel::parse("WARN"), Some(LogLevel::Warn));
        assert_eq!(LogLevel::parse("loud"), None);
        assert_eq!(
            log_timestamp(std::time::Duration::from_millis(1_709_251_199_007)),
            "2024-02-29T23:59:59.007Z"
        );
    }

    #[test]
    fn host_data_redacts_secrets() {
        assert!(sensitive("NOMAD_TOKEN") && sensitive("aws_secret_access_key"));
        assert!(!sensitive("PATH"));
        let data = host_data();
        assert!(data["OS"]["Type"].is_string());
    }
}
