//! Handlers for deployments: `/v1/deployments`, `/v1/deployment/:id`, the
//! writes (`promote`, `fail`, `pause`, `allocation-health`, `unblock`),
//! `/v1/deployment/allocations/:id`, and a job's deployments.

use crate::AppState;
use crate::error::ApiError;
use crate::handlers::{Answer, found, parse_body, reply};
use crate::query::{Order, QueryOptions, Row, block_until, list_reply};
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use server::DeploymentUpdateResult;

fn answer(result: DeploymentUpdateResult) -> api_types::DeploymentUpdateResponse {
    api_types::DeploymentUpdateResponse {
        eval_id: result.eval_id.unwrap_or_default(),
        eval_create_index: result.eval_create_index,
        deployment_modify_index: result.deployment_modify_index,
        reverted_job_version: result.reverted_job_version,
        index: result.index,
    }
}

/// The full ID of a deployment named by ID or unique prefix, once the
/// caller is found to hold `capability` in its namespace.
async fn resolve(state: &AppState, id: &str, caller: &server::Caller, capability: &str) -> Result<String, ApiError> {
    let snapshot = state.server.read_state(false).await?;
    let deployment = found(snapshot.deployment_by_prefix(id), "deployment", id)?;
    crate::authz::require_namespace_op(caller, &deployment.namespace, capability)?;
    Ok(deployment.id.clone())
}

/// A body's `DeploymentID`, when given, must name the deployment of the path.
fn same_deployment(path_id: &str, body_id: &str) -> Result<(), ApiError> {
    if body_id.is_empty() || body_id == path_id {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "body DeploymentID {body_id:?} does not match the path's {path_id:?}"
        )))
    }
}

pub async fn list_deployments(
    State(state): State<AppState>,
    Extension(caller): Extension<server::Caller>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().deployments).await?;
    let snapshot = options.read(&state).await?;
    let rows: Vec<Row<api_types::Deployment>> = snapshot
        .deployments(options.namespace())
        .iter()
        .filter(|deployment| deployment.id.starts_with(options.prefix()))
        // With `namespace=*`, only the namespaces the token may read.
        .filter(|deployment| caller.acl.allow_namespace_op(&deployment.namespace, "read-job"))
        .map(|deployment| {
            Row::by_index(
                deployment.create_index,
                deployment.id.clone(),
                api_types::Deployment::from(&**deployment),
            )
        })
        .collect();
    list_reply(
        &state,
        &options,
        snapshot.table_indexes().deployments,
        Order::ByCreateIndex,
        rows,
    )
}

pub async fn get_deployment(
    State(state): State<AppState>,
    Extension(caller): Extension<server::Caller>,
    Path(id): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().deployments).await?;
    let snapshot = options.read(&state).await?;
    let deployment = found(snapshot.deployment_by_prefix(&id), "deployment", &id)?;
    crate::authz::require_namespace_op(&caller, &deployment.namespace, "read-job")?;
    reply(
        &state,
        deployment.modify_index,
        &api_types::Deployment::from(&*deployment),
    )
}

pub async fn deployment_allocations(
    State(state): State<AppState>,
    Extension(caller): Extension<server::Caller>,
    Path(id): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().allocs).await?;
    let snapshot = options.read(&state).await?;
    let deployment = found(snapshot.deployment_by_prefix(&id), "deployment", &id)?;
    crate::authz::require_namespace_op(&caller, &deployment.namespace, "read-job")?;
    let job_type = snapshot
        .job(&deployment.namespace, &deployment.job_id)
        .map(|job| job.job_type);
    let rows: Vec<Row<api_types::AllocListStub>> = snapshot
        .deployment_allocs(&deployment)
        .iter()
        .map(|alloc| crate::handlers::alloc_row(alloc, job_type))
        .collect();
    list_reply(
        &state,
        &options,
        snapshot.table_indexes().allocs,
        Order::ByCreateIndex,
        rows,
    )
}

pub async fn promote(
    State(state): State<AppState>,
    Extension(caller): Extension<server::Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    let id = resolve(&state, &id, &caller, "submit-job").await?;
    let request: api_types::DeploymentPromoteRequest = if body.is_empty() {
        api_types::DeploymentPromoteRequest {
            all: true,
            ..Default::default()
        }
    } else {
        parse_body(&body)?
    };
    same_deployment(&id, &request.deployment_id)?;
    let groups = request.groups.unwrap_or_default();
    if !request.all && groups.is_empty() {
        return Err(ApiError::BadRequest(
            "promote needs \"All\": true or a list of \"Groups\"".to_string(),
        ));
    }
    let groups = if request.all { Vec::new() } else { groups };
    let result = state.server.promote_deployment(&id, groups).await?;
    reply(&state, result.index, &answer(result))
}

pub async fn fail(
    State(state): State<AppState>,
    Extension(caller): Extension<server::Caller>,
    Path(id): Path<String>,
) -> Answer {
    let id = resolve(&state, &id, &caller, "submit-job").await?;
    let result = state.server.fail_deployment(&id).await?;
    reply(&state, result.index, &answer(result))
}

pub async fn pause(
    State(state): State<AppState>,
    Extension(caller): Extension<server::Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    let id = resolve(&state, &id, &caller, "submit-job").await?;
    let request: api_types::DeploymentPauseRequest = parse_body(&body)?;
    same_deployment(&id, &request.deployment_id)?;
    let result = state.server.pause_deployment(&id, request.pause).await?;
    reply(&state, result.index, &answer(result))
}

pub async fn allocation_health(
    State(state): State<AppState>,
    Extension(caller): Extension<server::Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    let id = resolve(&state, &id, &caller, "submit-job").await?;
    let request: api_types::DeploymentAllocHealthRequest = parse_body(&body)?;
    same_deployment(&id, &request.deployment_id)?;
    let result = state
        .server
        .set_deployment_alloc_health(
            &id,
            request.healthy_allocation_ids.unwrap_or_default(),
            request.unhealthy_allocation_ids.unwrap_or_default(),
        )
        .await?;
    reply(&state, result.index, &answer(result))
}

/// Unblocking applies to multiregion deployments only.
pub async fn unblock(
    State(state): State<AppState>,
    Extension(caller): Extension<server::Caller>,
    Path(id): Path<String>,
) -> Answer {
    let id = resolve(&state, &id, &caller, "submit-job").await?;
    Err(ApiError::BadRequest(format!(
        "deployment {id:?} is not multiregion; unblock applies only to multiregion deployments, which Drover does not support"
    )))
}

pub async fn job_deployments(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().deployments).await?;
    let snapshot = options.read(&state).await?;
    let namespace = options.single_namespace();
    if snapshot.job(namespace, &job_id).is_none() {
        return Err(ApiError::NotFound(format!("job {job_id:?}")));
    }
    let rows: Vec<Row<api_types::Deployment>> = snapshot
        .deployments_by_job(namespace, &job_id)
        .iter()
        .map(|deployment| {
            Row::by_index(
                deployment.create_index,
                deployment.id.clone(),
                api_types::Deployment::from(&**deployment),
            )
        })
        .collect();
    // Newest first, as Nomad lists a job's deployments.
    let newest_first = QueryOptions {
        reverse: Some((!options.reverse()?).to_string()),
        ..options
    };
    list_reply(
        &state,
        &newest_first,
        snapshot.table_indexes().deployments,
        Order::ByCreateIndex,
        rows,
    )
}

/// A job's newest deployment, or `null` when it has none (as Nomad answers).
pub async fn job_latest_deployment(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().deployments).await?;
    let snapshot = options.read(&state).await?;
    let namespace = options.single_namespace();
    if snapshot.job(namespace, &job_id).is_none() {
        return Err(ApiError::NotFound(format!("job {job_id:?}")));
    }
    let latest = snapshot
        .latest_deployment(namespace, &job_id)
        .map(|deployment| api_types::Deployment::from(&*deployment));
    reply(&state, snapshot.table_indexes().deployments, &latest)
}

// ----- scaling -------------------------------------------------------------

/// `POST /v1/job/:id/scale` body.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct ScaleBody {
    #[serde(rename = "Count")]
    count: Option<i64>,
    #[serde(rename = "Target")]
    target: std::collections::BTreeMap<String, String>,
    #[serde(rename = "Message")]
    message: String,
    #[serde(rename = "Error")]
    error: bool,
    #[serde(rename = "Meta")]
    meta: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

/// Longest scaling message kept.
const MAX_SCALE_MESSAGE: usize = 4096;

pub async fn scale_job(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    Query(options): Query<QueryOptions>,
    body: Bytes,
) -> Answer {
    let request: ScaleBody = parse_body(&body)?;
    let group = request
        .target
        .get("Group")
        .cloned()
        .ok_or_else(|| ApiError::BadRequest("scaling target needs a \"Group\"".to_string()))?;
    if let Some(named) = request.target.get("Job")
        && named != &job_id
    {
        return Err(ApiError::BadRequest(format!(
            "scaling target job {named:?} does not match {job_id:?} in the URL"
        )));
    }
    if request.message.len() > MAX_SCALE_MESSAGE {
        return Err(ApiError::BadRequest(format!(
            "scaling message is longer than {MAX_SCALE_MESSAGE} bytes"
        )));
    }
    let result = state
        .server
        .scale_job(
            options.single_namespace(),
            &job_id,
            server::ScaleRequest {
                group,
                count: request.count,
                message: request.message,
                error: request.error,
                meta: request.meta.unwrap_or_default(),
            },
        )
        .await?;
    let body = api_types::JobRegisterResponse {
        eval_id: result.eval_id.unwrap_or_default(),
        eval_create_index: result.eval_create_index,
        job_modify_index: result.job_modify_index,
        warnings: result.warnings,
        index: result.index,
        last_contact: 0,
        known_leader: true,
    };
    reply(&state, result.index, &body)
}

/// `GET /v1/job/:id/scale`: each group's counts and scaling events.
pub async fn job_scale_status(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    let snapshot = options.read(&state).await?;
    let namespace = options.single_namespace();
    let job = snapshot
        .job(namespace, &job_id)
        .ok_or_else(|| ApiError::NotFound(format!("job {job_id:?}")))?;
    let allocs = snapshot.allocs_by_job(namespace, &job_id);
    let mut groups = serde_json::Map::new();
    for group in &job.task_groups {
        let mine: Vec<_> = allocs
            .iter()
            .filter(|alloc| alloc.task_group == group.name && alloc.job_version == job.version)
            .filter(|alloc| !alloc.is_terminal())
            .collect();
        let health = |wanted: bool| {
            mine.iter()
                .filter(|alloc| {
                    alloc
                        .deployment_status
                        .as_ref()
                        .is_some_and(|status| status.healthy == Some(wanted))
                })
                .count()
        };
        let events: Vec<serde_json::Value> = snapshot
            .scaling_events(namespace, &job_id, &group.name)
            .iter()
            .rev()
            .map(|event| {
                serde_json::json!({
                    "Time": event.time,
                    "Count": event.count,
                    "PreviousCount": event.previous_count,
                    "Message": event.message,
                    "Error": event.error,
                    "Meta": event.meta,
                    "EvalID": event.eval_id,
                    "CreateIndex": event.create_index,
                })
            })
            .collect();
        groups.insert(
            group.name.clone(),
            serde_json::json!({
                "Desired": group.count,
                "Placed": mine.len(),
                "Running": mine.iter().filter(|alloc| alloc.client_status == types::AllocClientStatus::Running).count(),
                "Healthy": health(true),
                "Unhealthy": health(false),
                "Events": events,
            }),
        );
    }
    let body = serde_json::json!({
        "JobID": job.id,
        "Namespace": job.namespace,
        "JobCreateIndex": job.create_index,
        "JobModifyIndex": job.job_modify_index,
        "JobStopped": job.stop,
        "TaskGroups": groups,
    });
    reply(&state, job.modify_index, &body)
}

// ----- node eligibility ----------------------------------------------------

/// `POST /v1/node/:id/eligibility` body.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct EligibilityBody {
    #[serde(rename = "Eligibility")]
    eligibility: String,
}

pub async fn node_eligibility(State(state): State<AppState>, Path(id): Path<String>, body: Bytes) -> Answer {
    let request: EligibilityBody = parse_body(&body)?;
    let eligible = match request.eligibility.as_str() {
        "eligible" => true,
        "ineligible" => false,
        other => {
            return Err(ApiError::BadRequest(format!(
                "Eligibility {other:?} must be \"eligible\" or \"ineligible\""
            )));
        }
    };
    let index = state.server.set_node_eligibility(&id, eligible).await?;
    let body = serde_json::json!({
        "EvalIDs": null,
        "EvalCreateIndex": 0,
        "NodeModifyIndex": index,
        "Index": index,
    });
    reply(&state, index, &body)
}
