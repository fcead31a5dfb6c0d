//! Handlers that launch children of periodic and parameterized jobs:
//! `/v1/job/:id/periodic/force` and `/v1/job/:id/dispatch`.

use crate::AppState;
use crate::error::ApiError;
use crate::handlers::{Answer, parse_body, reply};
use crate::query::QueryOptions;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use base64::Engine;
use std::collections::BTreeMap;

/// `POST /v1/job/:id/periodic/force`: launches a periodic job's child now.
pub async fn periodic_force(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    let result = state.server.force_periodic(options.single_namespace(), &job_id).await?;
    let body = api_types::PeriodicForceResponse {
        eval_id: result.eval_id,
        eval_create_index: result.eval_create_index,
        index: result.index,
        dispatched_job_id: result.job_id,
    };
    reply(&state, result.index, &body)
}

/// `POST /v1/job/:id/dispatch` body (Nomad's `JobDispatchRequest`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct DispatchBody {
    #[serde(rename = "JobID")]
    job_id: String,
    /// Base64, as Nomad sends it.
    #[serde(rename = "Payload")]
    payload: Option<String>,
    #[serde(rename = "Meta")]
    meta: Option<BTreeMap<String, String>>,
    #[serde(rename = "IdempotencyToken")]
    idempotency_token: String,
}

/// `POST /v1/job/:id/dispatch`: dispatches a parameterized job.
pub async fn dispatch_job(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    Query(options): Query<QueryOptions>,
    body: Bytes,
) -> Answer {
    let request: DispatchBody = if body.is_empty() {
        DispatchBody::default()
    } else {
        parse_body(&body)?
    };
    if !request.job_id.is_empty() && request.job_id != job_id {
        return Err(ApiError::BadRequest(format!(
            "body JobID {:?} does not match {job_id:?} in the URL",
            request.job_id
        )));
    }
    // Base64 of the largest payload, and a little slack for padding.
    let encoded_limit = types::limits::MAX_DISPATCH_PAYLOAD.div_ceil(3) * 4 + 4;
    let payload = match request.payload.as_deref() {
        None | Some("") => Vec::new(),
        Some(text) if text.len() > encoded_limit => {
            return Err(ApiError::BadRequest(format!(
                "payload exceeds maximum size; more than {} bytes",
                types::limits::MAX_DISPATCH_PAYLOAD
            )));
        }
        Some(text) => base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|error| ApiError::BadRequest(format!("payload must be base64: {error}")))?,
    };
    let result = state
        .server
        .dispatch_job(
            options.single_namespace(),
            &job_id,
            server::periodic::DispatchRequest {
                payload,
                meta: request.meta.unwrap_or_default(),
                idempotency_token: request.idempotency_token,
            },
        )
        .await?;
    let body = api_types::JobDispatchResponse {
        dispatched_job_id: result.job_id,
        eval_id: result.eval_id,
        eval_create_index: result.eval_create_index,
        job_create_index: result.job_create_index,
        index: result.index,
    };
    reply(&state, result.index, &body)
}
