//! `POST /v1/node/:id/drain`: starts, changes or ends a node's drain
//! (Nomad's `NodeUpdateDrainRequest`).

use crate::AppState;
use crate::error::ApiError;
use crate::handlers::{Answer, parse_body, reply};
use axum::body::Bytes;
use axum::extract::{Path, State};

/// The request body. `DrainSpec: null` ends the drain.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct DrainBody {
    #[serde(rename = "NodeID")]
    node_id: String,
    #[serde(rename = "DrainSpec")]
    drain_spec: Option<api_types::DrainSpec>,
    #[serde(rename = "MarkEligible")]
    mark_eligible: bool,
    #[serde(rename = "Meta")]
    meta: Option<std::collections::BTreeMap<String, String>>,
}

pub async fn node_drain(State(state): State<AppState>, Path(id): Path<String>, body: Bytes) -> Answer {
    let request: DrainBody = parse_body(&body)?;
    if !request.node_id.is_empty() && !request.node_id.starts_with(&id) && !id.starts_with(&request.node_id) {
        return Err(ApiError::BadRequest(format!(
            "body NodeID {:?} does not match {id:?} in the URL",
            request.node_id
        )));
    }
    if request.meta.as_ref().is_some_and(|meta| !meta.is_empty()) {
        return Err(ApiError::BadRequest(
            "drain Meta is not supported by Drover yet".to_string(),
        ));
    }
    if request.drain_spec.is_some() && request.mark_eligible {
        return Err(ApiError::BadRequest(
            "MarkEligible only applies when ending a drain (DrainSpec null)".to_string(),
        ));
    }
    let (_, index) = state
        .server
        .drain_node(
            &id,
            server::drainer::DrainRequest {
                deadline: request.drain_spec.as_ref().map(|spec| spec.deadline),
                ignore_system_jobs: request.drain_spec.as_ref().is_some_and(|spec| spec.ignore_system_jobs),
                mark_eligible: request.mark_eligible,
            },
        )
        .await?;
    let body = api_types::NodeDrainUpdateResponse {
        node_modify_index: index,
        eval_ids: Vec::new(),
        eval_create_index: 0,
        index,
    };
    reply(&state, index, &body)
}
