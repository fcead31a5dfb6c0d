//! Forced evaluations: `/v1/job/:id/evaluate` (with `ForceReschedule`) and
//! `/v1/node/:id/evaluate`.

use crate::AppState;
use crate::error::ApiError;
use crate::handlers::{Answer, parse_body, reply};
use crate::query::QueryOptions;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct EvalOptions {
    #[serde(rename = "ForceReschedule")]
    force_reschedule: bool,
}

/// Nomad's `JobEvaluateRequest`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct JobEvaluateBody {
    #[serde(rename = "JobID")]
    job_id: String,
    #[serde(rename = "EvalOptions")]
    eval_options: EvalOptions,
}

pub async fn job_evaluate(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    Query(options): Query<QueryOptions>,
    body: Bytes,
) -> Answer {
    let request: JobEvaluateBody = if body.is_empty() {
        JobEvaluateBody::default()
    } else {
        parse_body(&body)?
    };
    if !request.job_id.is_empty() && request.job_id != job_id {
        return Err(ApiError::BadRequest(format!(
            "body JobID {:?} does not match {job_id:?} in the URL",
            request.job_id
        )));
    }
    let result = state
        .server
        .evaluate_job(
            options.single_namespace(),
            &job_id,
            request.eval_options.force_reschedule,
        )
        .await?;
    let body = api_types::JobRegisterResponse {
        eval_id: result.eval_ids.first().cloned().unwrap_or_default(),
        eval_create_index: result.index,
        job_modify_index: 0,
        warnings: String::new(),
        index: result.index,
        last_contact: 0,
        known_leader: true,
    };
    reply(&state, result.index, &body)
}

pub async fn node_evaluate(State(state): State<AppState>, Path(id): Path<String>) -> Answer {
    let result = state.server.evaluate_node(&id).await?;
    let body = api_types::NodeDrainUpdateResponse {
        node_modify_index: 0,
        eval_ids: result.eval_ids,
        eval_create_index: result.index,
        index: result.index,
    };
    reply(&state, result.index, &body)
}
