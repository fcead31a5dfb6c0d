//! Query parameters shared by many endpoints (`namespace`, `prefix`, the
//! blocking-query pair `index` / `wait`, `filter`, and the pagination trio
//! `per_page` / `next_token` / `reverse`), the blocking wait itself, and
//! [`list_reply`], the one place a list endpoint filters and pages.

use crate::AppState;
use crate::bexpr::Filter;
use crate::error::ApiError;
use axum::Json;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde::{Deserialize, Serialize};
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
    /// A go-bexpr expression every listed object must pass.
    pub filter: Option<String>,
    /// Page size; text, so a bad value is our 400.
    pub per_page: Option<String>,
    /// Where the page starts: the `X-Nomad-NextToken` of the page before.
    pub next_token: Option<String>,
    /// Lists in the opposite order.
    pub reverse: Option<String>,
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

    /// The parsed `filter`, if one was given; a bad one is a 400 naming the
    /// column.
    pub fn filter(&self) -> Result<Option<Filter>, ApiError> {
        Filter::parse(self.filter.as_deref().unwrap_or(""))
            .map_err(|error| ApiError::BadRequest(format!("failed to read filter expression: {error}")))
    }

    /// `per_page`: `None` (or 0) is every object in one page.
    pub fn per_page(&self) -> Result<Option<usize>, ApiError> {
        match self.per_page.as_deref() {
            None | Some("") => Ok(None),
            Some(text) => match text.parse::<i64>() {
                Ok(0) => Ok(None),
                Ok(count) if count > 0 => Ok(Some(usize::try_from(count).unwrap_or(usize::MAX))),
                _ => Err(ApiError::BadRequest(format!(
                    "invalid value {text:?} for per_page: want a positive count"
                ))),
            },
        }
    }

    pub fn reverse(&self) -> Result<bool, ApiError> {
        parse_bool("reverse", self.reverse.as_deref())
    }
}

/// How a list is ordered, which is also what its page tokens hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// By ID (jobs: namespace and ID); the token is the key itself.
    ById,
    /// By creation index, then ID; the token is `<index>.<id>`.
    ByCreateIndex,
}

/// One object of a list, with the key that orders and pages it.
pub struct Row<T> {
    pub create_index: u64,
    pub key: String,
    pub item: T,
}

impl<T> Row<T> {
    pub fn by_id(key: impl Into<String>, item: T) -> Row<T> {
        Row {
            create_index: 0,
            key: key.into(),
            item,
        }
    }

    pub fn by_index(create_index: u64, key: impl Into<String>, item: T) -> Row<T> {
        Row {
            create_index,
            key: key.into(),
            item,
        }
    }
}

fn token_of(order: Order, create_index: u64, key: &str) -> String {
    match order {
        Order::ById => key.to_string(),
        Order::ByCreateIndex => format!("{create_index}.{key}"),
    }
}

fn parse_token(order: Order, token: &str) -> Result<(u64, String), ApiError> {
    match order {
        Order::ById => Ok((0, token.to_string())),
        Order::ByCreateIndex => token
            .split_once('.')
            .and_then(|(index, key)| Some((index.parse::<u64>().ok()?, key.to_string())))
            .ok_or_else(|| ApiError::BadRequest(format!("invalid next_token {token:?}: want <index>.<id>"))),
    }
}

/// One page of a list and the token of the next page.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

/// Filters, orders and pages `rows` as the query asks: the filter runs on
/// each object's JSON (the shape the endpoint answers with; only built
/// when there is a filter), then the objects are sorted by `order`
/// (reversed with `reverse`), the page starts at `next_token` and holds at
/// most `per_page`; the next page's token is set when objects remain.
pub fn paginate<T: Serialize>(options: &QueryOptions, order: Order, rows: Vec<Row<T>>) -> Result<Page<T>, ApiError> {
    let filter = options.filter()?;
    let per_page = options.per_page()?;
    let reverse = options.reverse()?;
    let start = match options.next_token.as_deref() {
        None | Some("") => None,
        Some(token) => Some(parse_token(order, token)?),
    };
    let mut kept = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(filter) = &filter {
            let value = serde_json::to_value(&row.item)
                .map_err(|error| ApiError::Internal(format!("encoding a list entry: {error}")))?;
            if !filter.matches(&value) {
                continue;
            }
        }
        kept.push(((row.create_index, row.key), row.item));
    }
    kept.sort_by(|left, right| left.0.cmp(&right.0));
    if reverse {
        kept.reverse();
    }
    let mut page = Vec::new();
    let mut next_token = None;
    for ((create_index, key), item) in kept {
        if let Some((start_index, start_key)) = &start {
            let position = (create_index, key.as_str());
            let start = (*start_index, start_key.as_str());
            let before = if reverse { position > start } else { position < start };
            if before {
                continue;
            }
        }
        if per_page.is_some_and(|per_page| page.len() >= per_page) {
            next_token = Some(token_of(order, create_index, &key));
            break;
        }
        page.push(item);
    }
    Ok(Page {
        items: page,
        next_token,
    })
}

/// Answers a list endpoint: [`paginate`]s `rows` and replies with the page,
/// Nomad's index headers and `X-Nomad-NextToken` when there is more.
pub fn list_reply<T: Serialize>(
    state: &AppState,
    options: &QueryOptions,
    index: u64,
    order: Order,
    rows: Vec<Row<T>>,
) -> Result<Response, ApiError> {
    let page = paginate(options, order, rows)?;
    let mut headers = index_headers(index, &state.server);
    if let Some(token) = page.next_token
        && let Ok(value) = HeaderValue::from_str(&token)
    {
        headers.insert("X-Nomad-NextToken", value);
    }
    Ok((headers, Json(page.items)).into_response())
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
    // Spread the wake-ups of many watchers that asked for the same wait,
    // as Nomad does: up to a sixteenth more.
    let jitter_nanos = u64::try_from(wait.as_nanos() / 16).unwrap_or(u64::MAX);
    let wait = wait + Duration::from_nanos(rand::thread_rng().gen_range(0..=jitter_nanos));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Row<serde_json::Value>> {
        [(30, "c"), (10, "a"), (20, "b"), (20, "a2")]
            .into_iter()
            .map(|(index, id)| Row::by_index(index, id, serde_json::json!({ "ID": id, "Index": index })))
            .collect()
    }

    fn ids(page: &Page<serde_json::Value>) -> Vec<&str> {
        page.items.iter().map(|item| item["ID"].as_str().expect("ID")).collect()
    }

    fn options(query: &[(&str, &str)]) -> QueryOptions {
        let mut options = QueryOptions::default();
        for (name, value) in query {
            let value = Some(value.to_string());
            match *name {
                "per_page" => options.per_page = value,
                "next_token" => options.next_token = value,
                "reverse" => options.reverse = value,
                "filter" => options.filter = value,
                other => panic!("unknown option {other}"),
            }
        }
        options
    }

    #[test]
    fn pages_follow_their_tokens_forwards_and_backwards() {
        let first = paginate(&options(&[("per_page", "2")]), Order::ByCreateIndex, rows()).expect("page");
        assert_eq!(ids(&first), ["a", "a2"]);
        assert_eq!(first.next_token.as_deref(), Some("20.b"));
        let second = paginate(
            &options(&[("per_page", "2"), ("next_token", "20.b")]),
            Order::ByCreateIndex,
            rows(),
        )
        .expect("page");
        assert_eq!(ids(&second), ["b", "c"]);
        assert_eq!(second.next_token, None);

        let back = paginate(
            &options(&[("per_page", "3"), ("reverse", "true")]),
            Order::ByCreateIndex,
            rows(),
        )
        .expect("page");
        assert_eq!(ids(&back), ["c", "b", "a2"]);
        assert_eq!(back.next_token.as_deref(), Some("10.a"));
        let rest = paginate(
            &options(&[("per_page", "3"), ("reverse", "true"), ("next_token", "10.a")]),
            Order::ByCreateIndex,
            rows(),
        )
        .expect("page");
        assert_eq!(ids(&rest), ["a"]);

        let filtered = paginate(&options(&[("filter", "Index == 20")]), Order::ByCreateIndex, rows()).expect("page");
        assert_eq!(ids(&filtered), ["a2", "b"]);
        let by_id = paginate(&options(&[("per_page", "1")]), Order::ById, rows()).expect("page");
        assert_eq!(by_id.next_token.as_deref(), Some("a2"));
    }

    #[test]
    fn bad_paging_options_are_400s() {
        for query in [
            [("per_page", "-1")],
            [("per_page", "many")],
            [("next_token", "no-index")],
            [("reverse", "perhaps")],
            [("filter", "ID ==")],
        ] {
            let error = paginate(&options(&query), Order::ByCreateIndex, rows()).expect_err("refused");
            assert!(matches!(error, ApiError::BadRequest(_)), "{query:?}: {error}");
        }
    }
}
