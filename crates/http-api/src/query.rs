//! Query parameters shared by many endpoints (`namespace`, `prefix`, and
//! the blocking-query pair `index` / `wait`), and the blocking wait itself.

use crate::AppState;
use crate::error::ApiError;
use axum::http::{HeaderMap, HeaderValue};
use serde::Deserialize;
use std::time::Duration;

/// Longest a blocking query may wait, as in Nomad.
const MAX_WAIT: Duration = Duration::from_secs(600);
/// Wait used when `index` is given without `wait`.
const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// Common query parameters.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct QueryOptions {
    pub namespace: Option<String>,
    pub prefix: Option<String>,
    pub index: Option<u64>,
    pub wait: Option<String>,
    /// Kept as text: clients send `true`, `True` (Python) or `1`.
    pub purge: Option<String>,
    /// Check-and-set index for writes that support it; text, so a bad
    /// value is our 400 rather than the extractor's.
    pub cas: Option<String>,
    /// Present (any value but `false`): any server answers from its own
    /// state, which may be behind the leader.
    pub stale: Option<String>,
    /// `versions?diffs=true`: each version's diff from the one before.
    pub diffs: Option<String>,
}

impl QueryOptions {
    /// The namespace asked for; `None` means every namespace (`*`).
    pub fn namespace(&self) -> Option<&str> {
        match self.namespace.as_deref() {
            None | Some("") => Some(types::DEFAULT_NAMESPACE),
            Some("*") => None,
            Some(namespace) => Some(namespace),
        }
    }

    /// The single namespace for object lookups.
    pub fn single_namespace(&self) -> &str {
        self.namespace().unwrap_or(types::DEFAULT_NAMESPACE)
    }

    /// Whether `purge` was asked for; an unreadable value is a 400.
    pub fn purge(&self) -> Result<bool, ApiError> {
        parse_bool("purge", self.purge.as_deref())
    }

    /// `diffs=true` on `/v1/job/:id/versions`.
    pub fn diffs(&self) -> Result<bool, ApiError> {
        parse_bool("diffs", self.diffs.as_deref())
    }

    /// The `cas` index, if given; an unreadable value is a 400.
    pub fn cas(&self) -> Result<Option<u64>, ApiError> {
        match self.cas.as_deref() {
            None | Some("") => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|_| ApiError::BadRequest(format!("invalid value {text:?} for cas: want an index"))),
        }
    }

    /// Whether the caller accepts a stale answer (`?stale`, `?stale=true`).
    pub fn stale(&self) -> bool {
        self.stale
            .as_deref()
            .is_some_and(|value| !matches!(value, "false" | "0" | "f" | "F" | "FALSE" | "False"))
    }

    /// The state to answer from: this server's own with `stale`, otherwise
    /// at least every write the leader acknowledged before the request.
    pub async fn read(&self, state: &AppState) -> Result<server::StateSnapshot, ApiError> {
        Ok(state.server.read_state(self.stale()).await?)
    }

    pub fn prefix(&self) -> &str {
        self.prefix.as_deref().unwrap_or("")
    }

    fn wait_duration(&self) -> Result<Duration, ApiError> {
        match self.wait.as_deref() {
            None | Some("") => Ok(DEFAULT_WAIT),
            Some(text) => types::duration::parse_duration(text)
                .map(|wait| wait.min(MAX_WAIT))
                .map_err(|error| ApiError::BadRequest(format!("invalid wait {text:?}: {error}"))),
        }
    }
}

/// Runs a blocking query: when `index` is set, waits until `current_index`
/// (read from a fresh state each time) passes it or the wait runs out.
pub async fn block_until<F>(state: &AppState, options: &QueryOptions, current_index: F) -> Result<(), ApiError>
where
    F: Fn(&server::StateSnapshot) -> u64,
{
    let Some(min_index) = options.index else {
        return Ok(());
    };
    let wait = options.wait_duration()?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut applied = state.server.subscribe();
    loop {
        if current_index(&state.server.state()) > min_index {
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, applied.changed()).await {
            Err(_) => return Ok(()),
            Ok(Err(_)) => return Err(ApiError::Internal("state watch closed".to_string())),
            Ok(Ok(())) => {}
        }
    }
}

/// Headers Nomad sets on every read: the index, whether this server
/// knows a leader, and how long since it heard from it (0 on the leader).
pub fn index_headers(index: u64, server: &server::Server) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("X-Nomad-Index", HeaderValue::from(index.max(1)));
    let known_leader = server.leader().is_some();
    headers.insert(
        "X-Nomad-KnownLeader",
        HeaderValue::from_static(if known_leader { "true" } else { "false" }),
    );
    let last_contact = if server.is_leader() {
        0
    } else {
        server
            .last_contact()
            .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    };
    headers.insert("X-Nomad-LastContact", HeaderValue::from(last_contact));
    headers
}

/// Reads a boolean query parameter the way Go's `strconv.ParseBool` does.
pub fn parse_bool(name: &str, value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None | Some("") => Ok(false),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(other) => Err(ApiError::BadRequest(format!(
            "invalid value {other:?} for {name}: want true or false"
        ))),
    }
}
