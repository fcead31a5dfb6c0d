//! Response encodings every endpoint honours: `?pretty` indents a JSON
//! answer, and `Accept-Encoding: gzip` compresses the answer, as Nomad's
//! HTTP server does. Only answers whose whole body is already in memory
//! (an exact size, as every JSON answer has) are touched; streams (logs,
//! file reads) pass through as they are, so following output stays live.
//! Also the region guard: a `?region=` this cluster does not serve is a
//! 400, never answered from the wrong region.

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::io::Write;

/// Answers larger than this are sent as they are (no re-encoding buffer).
const MAX_ENCODED_BYTES: u64 = 64 * 1024 * 1024;

fn wants_pretty(request: &Request) -> bool {
    request.uri().query().is_some_and(|query| {
        query.split('&').any(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            name == "pretty" && !matches!(value, "false" | "0" | "f" | "F" | "FALSE" | "False")
        })
    })
}

fn accepts_gzip(request: &Request) -> bool {
    request
        .headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|parameter| matches!(parameter.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

/// The middleware: runs the handler, then re-encodes its answer.
pub async fn encode(request: Request, next: Next) -> Response {
    let pretty = wants_pretty(&request);
    let gzip = accepts_gzip(&request);
    let response = next.run(request).await;
    if !pretty && !gzip || response.headers().contains_key(header::CONTENT_ENCODING) {
        return response;
    }
    match response.body().size_hint().exact() {
        Some(length) if length <= MAX_ENCODED_BYTES => {}
        _ => return response,
    }
    let (mut parts, body) = response.into_parts();
    let Ok(mut bytes) = axum::body::to_bytes(body, usize::MAX).await.map(Vec::from) else {
        return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n").into_response();
    };
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if pretty
        && is_json
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes)
        && let Ok(mut indented) = serde_json::to_vec_pretty(&value)
    {
        indented.push(b'\n');
        bytes = indented;
    }
    if gzip {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        if encoder.write_all(&bytes).is_ok()
            && let Ok(compressed) = encoder.finish()
        {
            bytes = compressed;
            parts
                .headers
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        parts
            .headers
            .append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}

/// Refuses a `?region=` other than this agent's: Drover serves one region
/// per cluster and does not forward between regions, so answering from
/// this one would silently ignore the parameter.
pub async fn region_guard(
    axum::extract::State(state): axum::extract::State<crate::AppState>,
    request: Request,
    next: Next,
) -> Response {
    let asked = request.uri().query().and_then(|query| {
        query.split('&').find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            (name == "region" && !value.is_empty()).then(|| value.to_string())
        })
    });
    if let Some(region) = asked
        && region != state.agent.region
    {
        return crate::ApiError::BadRequest(format!(
            "no path to region {region:?}: this cluster serves region {:?} only",
            state.agent.region
        ))
        .into_response();
    }
    next.run(request).await
}
