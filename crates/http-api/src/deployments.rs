//! Handlers for deployments: `/v1/deployments`, `/v1/deployment/:id`, the
//! writes (`promote`, `fail`, `pause`, `allocation-health`, `unblock`),
//! `/v1/deployment/allocations/:id`, and a job's deployments.

use crate::AppState;
use crate::error::ApiError;
use crate::handlers::{Answer, found, parse_body, reply};
use crate::query::{QueryOptions, block_until};
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
    let body: Vec<api_types::Deployment> = snapshot
        .deployments(options.namespace())
        .iter()
        .filter(|deployment| deployment.id.starts_with(options.prefix()))
        // With `namespace=*`, only the namespaces the token may read.
        .filter(|deployment| caller.acl.allow_namespace_op(&deployment.namespace, "read-job"))
        .map(|deployment| api_types::Deployment::from(&**deployment))
        .collect();
    reply(&state, snapshot.table_indexes().deployments, &body)
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
    let stubs: Vec<api_types::AllocListStub> = snapshot
        .deployment_allocs(&deployment)
        .iter()
        .map(|alloc| api_types::alloc_stub(alloc, job_type))
        .collect();
    reply(&state, snapshot.table_indexes().allocs, &stubs)
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
    let body: Vec<api_types::Deployment> = snapshot
        .deployments_by_job(namespace, &job_id)
        .iter()
        .map(|deployment| api_types::Deployment::from(&**deployment))
        .collect();
    reply(&state, snapshot.table_indexes().deployments, &body)
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
