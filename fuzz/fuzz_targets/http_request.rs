//! Fuzzes every HTTP route's request handling through the real router of a
//! dev server: the first byte picks a route from `http_api::route_list()`
//! (so new routes are fuzzed without touching this file), the second an ID
//! for its path parameters, the bytes up to the first newline are the query
//! string and the rest is the body. An answer of 500 (the server failed on
//! input it should have refused) or a panic anywhere is a crash; requests
//! that block (blocking queries) are abandoned after a moment.
#![no_main]

#[path = "agent.rs"]
mod agent;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use std::time::Duration;
use tower::ServiceExt;

/// Routes that act on the cluster's membership or the network: fuzzing
/// them would remove the only server or dial arbitrary addresses, which
/// tests nothing about request decoding.
const SKIPPED: &[&str] = &["/v1/agent/join", "/v1/agent/force-leave", "/v1/operator/raft/"];

const IDS: &[&str] = &[
    "fuzz",
    "default",
    "*",
    "00000000-0000-0000-0000-000000000000",
    "..",
    "a%2Fb",
    "%ff%00",
    "x",
];

fn routes() -> &'static [(String, String)] {
    static ROUTES: OnceLock<Vec<(String, String)>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        http_api::route_list()
            .into_iter()
            .filter(|(_, path)| !SKIPPED.iter().any(|skipped| path.starts_with(skipped)))
            .map(|(method, path)| (method, path.to_string()))
            .collect()
    })
}

/// The path with each `{param}` segment replaced by `id`.
fn fill(pattern: &str, id: &str) -> String {
    pattern
        .split('/')
        .map(|segment| if segment.starts_with('{') { id } else { segment })
        .collect::<Vec<_>>()
        .join("/")
}

fuzz_target!(|data: &[u8]| {
    let [route, id, rest @ ..] = data else { return };
    let routes = routes();
    let (method, pattern) = &routes[usize::from(*route) % routes.len()];
    let id = IDS[usize::from(*id) % IDS.len()];
    let (query, body) = match rest.iter().position(|byte| *byte == b'\n') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (&[][..], rest),
    };
    let Ok(query) = std::str::from_utf8(query) else { return };
    let path = fill(pattern, id);
    let uri = if query.is_empty() { path } else { format!("{path}?{query}") };
    let Ok(request) = Request::builder()
        .method(method.as_str())
        .uri(&uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
    else {
        return;
    };
    let agent = agent::agent();
    agent.runtime.block_on(async {
        let answer = tokio::time::timeout(Duration::from_secs(2), agent.router.clone().oneshot(request)).await;
        let Ok(Ok(response)) = answer else { return };
        if response.status() == StatusCode::INTERNAL_SERVER_ERROR {
            let text = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap_or_default();
            panic!("{method} {uri} answered 500: {}", String::from_utf8_lossy(&text));
        }
    });
});
