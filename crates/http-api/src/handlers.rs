//! Handlers for jobs, allocations, evaluations, nodes, status and agent.

use crate::AppState;
use crate::error::ApiError;
use crate::limits::Limits;
use crate::query::{Order, QueryOptions, Row, block_until, index_headers, list_reply};
use api_types::state_summary::JobSummaryView;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use server::Caller;
use std::collections::BTreeMap;
use std::sync::Arc;
use types::{Job, JobType};

pub(crate) type Answer = Result<axum::response::Response, ApiError>;

pub(crate) fn reply<T: serde::Serialize>(state: &AppState, index: u64, body: &T) -> Answer {
    let headers = index_headers(index, &state.server);
    Ok((headers, Json(body)).into_response())
}

/// Parses a request body as JSON, turning every failure into a 400.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::BadRequest("request body is empty".to_string()));
    }
    serde_json::from_slice(body).map_err(|error| ApiError::BadRequest(format!("invalid JSON body: {error}")))
}

/// Reads the job out of a `{"Job": {...}}` register body.
fn job_from_body(body: &Bytes) -> Result<Job, ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| ApiError::BadRequest("request body is not UTF-8".to_string()))?;
    let value: Value = parse_body(body)?;
    match value.get("Job") {
        Some(Value::Object(_)) => {}
        Some(_) => return Err(ApiError::BadRequest("field \"Job\" must be an object".to_string())),
        None => return Err(ApiError::BadRequest("request body has no \"Job\" object".to_string())),
    }
    jobspec::parse_json(text).map_err(|diagnostics| ApiError::BadRequest(diagnostics.to_string()))
}

pub(crate) fn summary_of(
    state: &server::StateSnapshot,
    namespace: &str,
    job_id: &str,
) -> Option<api_types::JobSummary> {
    let summary = state.job_summary(namespace, job_id)?;
    Some(api_types::job_summary(&JobSummaryView {
        job_id: summary.job_id,
        namespace: summary.namespace,
        groups: summary
            .summary
            .into_iter()
            .map(|(group, counts)| {
                (
                    group,
                    api_types::TaskGroupSummary {
                        queued: counts.queued,
                        complete: counts.complete,
                        failed: counts.failed,
                        running: counts.running,
                        starting: counts.starting,
                        lost: counts.lost,
                        unknown: counts.unknown,
                    },
                )
            })
            .collect(),
        create_index: summary.create_index,
        modify_index: summary.modify_index,
    }))
}

/// Turns a prefix lookup into the object, a 400 for an ambiguous prefix, or
/// a 404 naming what was missing.
pub(crate) fn found<T>(lookup: Result<Option<T>, server::StateError>, kind: &str, id: &str) -> Result<T, ApiError> {
    lookup
        .map_err(|error| ApiError::BadRequest(error.to_string()))?
        .ok_or_else(|| ApiError::NotFound(format!("{kind} {id:?}")))
}

fn find_job(state: &server::StateSnapshot, options: &QueryOptions, id: &str) -> Result<Arc<Job>, ApiError> {
    state
        .job(options.single_namespace(), id)
        .ok_or_else(|| ApiError::NotFound(format!("job {id:?}")))
}

// ----- jobs --------------------------------------------------------------

pub async fn list_jobs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().jobs).await?;
    let snapshot = options.read(&state).await?;
    let rows: Vec<Row<api_types::JobListStub>> = snapshot
        .jobs(options.namespace())
        .iter()
        .filter(|job| job.id.starts_with(options.prefix()))
        .filter(|job| caller.acl.allow_namespace_op(&job.namespace, "list-jobs"))
        .map(|job| {
            Row::by_id(
                format!("{}.{}", job.namespace, job.id),
                api_types::job_stub(job, summary_of(&snapshot, &job.namespace, &job.id)),
            )
        })
        .collect();
    list_reply(&state, &options, snapshot.table_indexes().jobs, Order::ById, rows)
}

/// `EnforceIndex` and `JobModifyIndex` of a register body: the index the
/// stored job must have for the registration to go ahead.
fn enforced_index(body: &Bytes) -> Result<Option<u64>, ApiError> {
    let value: Value = parse_body(body)?;
    let enforce = match value.get("EnforceIndex") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(enforce)) => *enforce,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "field \"EnforceIndex\" must be a boolean".to_string(),
            ));
        }
    };
    if !enforce {
        return Ok(None);
    }
    match value.get("JobModifyIndex") {
        None | Some(Value::Null) => Ok(Some(0)),
        Some(index) => index
            .as_u64()
            .map(Some)
            .ok_or_else(|| ApiError::BadRequest("field \"JobModifyIndex\" must be an unsigned integer".to_string())),
    }
}

async fn register(state: &AppState, job: Job, enforce_index: Option<u64>) -> Answer {
    let result = state.server.register_job_enforcing(job, enforce_index).await?;
    let body = api_types::JobRegisterResponse {
        eval_id: result.eval_id.unwrap_or_default(),
        eval_create_index: result.eval_create_index,
        job_modify_index: result.job_modify_index,
        warnings: result.warnings,
        index: result.index,
        last_contact: 0,
        known_leader: true,
    };
    reply(state, result.index, &body)
}

pub async fn register_jobs(
    State(state): State<AppState>,
    Extension(limits): Extension<Arc<Limits>>,
    body: Bytes,
) -> Answer {
    let (job, enforce_index) = limits
        .parse(move || Ok((job_from_body(&body)?, enforced_index(&body)?)))
        .await?;
    register(&state, job, enforce_index).await
}

pub async fn register_job_by_id(
    State(state): State<AppState>,
    Extension(limits): Extension<Arc<Limits>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    let (job, enforce_index) = limits
        .parse(move || Ok((job_from_body(&body)?, enforced_index(&body)?)))
        .await?;
    if job.id != id {
        return Err(ApiError::BadRequest(format!(
            "job ID {:?} in the body does not match {id:?} in the URL",
            job.id
        )));
    }
    register(&state, job, enforce_index).await
}

/// `POST /v1/jobs/parse`: HCL in, the API JSON job out, as Nomad answers it.
/// `Canonicalize: false` gives the job as written (no defaults applied);
/// `true` applies Nomad's defaults. `Variables` is var-file content (HCL).
/// `file()` is not available here, as in Nomad. The job is not validated:
/// only syntax, evaluation and schema errors give a 400. The HCL is
/// untrusted: it is evaluated off the async runtime under the evaluation
/// budget and the parse deadline ([`crate::ApiLimits`]).
pub async fn parse_job(
    State(state): State<AppState>,
    Extension(limits): Extension<Arc<Limits>>,
    body: Bytes,
) -> Answer {
    let request: api_types::JobsParseRequest = parse_body(&body)?;
    if request.job_hcl.trim().is_empty() {
        return Err(ApiError::BadRequest("JobHCL is empty".to_string()));
    }
    let now = server::now_nanos();
    let budget = limits.limits.eval_budget;
    let job = limits
        .parse(move || {
            let mut options = jobspec::ParseOptions {
                now,
                budget,
                ..jobspec::ParseOptions::default()
            };
            if !request.variables.trim().is_empty() {
                options
                    .var_files
                    .push(("variables.hcl".to_string(), request.variables.clone()));
            }
            jobspec::parse_hcl_to_api(&request.job_hcl, "input.hcl", &options, request.canonicalize)
                .map_err(|diagnostics| ApiError::BadRequest(diagnostics.render(&request.job_hcl, "input.hcl")))
        })
        .await?;
    reply(&state, state.server.state().index(), &job)
}

/// `PUT /v1/validate/job`: a `{"Job": {...}}` body is checked as a
/// submission would be (driver configs included) and the answer lists every
/// problem; an invalid job is still a 200, as in Nomad.
pub async fn validate_job(
    State(state): State<AppState>,
    Extension(limits): Extension<Arc<Limits>>,
    body: Bytes,
) -> Answer {
    let response = limits.parse(move || validate_body(&body)).await?;
    reply(&state, state.server.state().index(), &response)
}

fn validate_body(body: &Bytes) -> Result<api_types::JobValidateResponse, ApiError> {
    let value: Value = parse_body(body)?;
    match value.get("Job") {
        Some(Value::Object(_)) => {}
        Some(_) => return Err(ApiError::BadRequest("field \"Job\" must be an object".to_string())),
        None => return Err(ApiError::BadRequest("Job must be specified".to_string())),
    }
    let text = std::str::from_utf8(body).map_err(|_| ApiError::BadRequest("request body is not UTF-8".to_string()))?;
    let response = match jobspec::parse_json(text) {
        Ok(job) => match job.check_supported() {
            Ok(()) => api_types::JobValidateResponse {
                driver_config_validated: true,
                ..Default::default()
            },
            Err(errors) => api_types::JobValidateResponse {
                driver_config_validated: true,
                error: errors.to_string(),
                validation_errors: errors.0.iter().map(ToString::to_string).collect(),
                warnings: String::new(),
            },
        },
        Err(diagnostics) => {
            let errors: Vec<String> = diagnostics.0.iter().map(ToString::to_string).collect();
            api_types::JobValidateResponse {
                driver_config_validated: true,
                error: diagnostics.to_string(),
                validation_errors: errors,
                warnings: String::new(),
            }
        }
    };
    Ok(response)
}

pub async fn get_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    let namespace = options.single_namespace().to_string();
    block_until(&state, &options, |snapshot| {
        snapshot.job(&namespace, &id).map(|job| job.modify_index).unwrap_or(0)
    })
    .await?;
    let snapshot = options.read(&state).await?;
    let job = find_job(&snapshot, &options, &id)?;
    reply(&state, job.modify_index, &jobspec::job_to_api(&job))
}

pub async fn job_versions(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().jobs).await?;
    let snapshot = options.read(&state).await?;
    let job = find_job(&snapshot, &options, &id)?;
    let versions: Vec<Value> = snapshot
        .job_versions(&job.namespace, &job.id)
        .iter()
        .map(|version| jobspec::job_to_api(version))
        .collect();
    // Newest first: diff i takes version i+1 to version i.
    let diffs = if options.diffs()? {
        json!(
            versions
                .windows(2)
                .map(|pair| api_types::job_diff::job_diff(Some(&pair[1]), &pair[0]))
                .collect::<Vec<_>>()
        )
    } else {
        Value::Null
    };
    reply(
        &state,
        job.modify_index,
        &json!({ "Versions": versions, "Diffs": diffs }),
    )
}

/// `POST /v1/job/:id/revert` body.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct RevertBody {
    #[serde(rename = "JobVersion")]
    job_version: Option<u64>,
    #[serde(rename = "EnforcePriorVersion")]
    enforce_prior_version: Option<u64>,
}

pub async fn revert_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(options): Query<QueryOptions>,
    body: Bytes,
) -> Answer {
    let request: RevertBody = parse_body(&body)?;
    let version = request
        .job_version
        .ok_or_else(|| ApiError::BadRequest("revert needs \"JobVersion\"".to_string()))?;
    let result = state
        .server
        .revert_job(options.single_namespace(), &id, version, request.enforce_prior_version)
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

/// `POST /v1/job/:id/stable` body.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct StableBody {
    #[serde(rename = "JobVersion")]
    job_version: Option<u64>,
    #[serde(rename = "Stable")]
    stable: bool,
}

pub async fn job_stable(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(options): Query<QueryOptions>,
    body: Bytes,
) -> Answer {
    let request: StableBody = parse_body(&body)?;
    let version = request
        .job_version
        .ok_or_else(|| ApiError::BadRequest("stable needs \"JobVersion\"".to_string()))?;
    let index = state
        .server
        .set_job_stability(options.single_namespace(), &id, version, request.stable)
        .await?;
    reply(&state, index, &json!({ "Index": index, "JobModifyIndex": index }))
}

pub async fn deregister_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    let result = state
        .server
        .deregister_job(options.single_namespace(), &id, options.purge()?)
        .await?;
    let body = api_types::JobDeregisterResponse {
        eval_id: result.eval_id.unwrap_or_default(),
        eval_create_index: result.eval_create_index,
        job_modify_index: result.job_modify_index,
        index: result.index,
    };
    reply(&state, result.index, &body)
}

pub async fn job_allocations(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().allocs).await?;
    let snapshot = options.read(&state).await?;
    let job = find_job(&snapshot, &options, &id)?;
    let rows: Vec<Row<api_types::AllocListStub>> = snapshot
        .allocs_by_job(&job.namespace, &job.id)
        .iter()
        .map(|alloc| alloc_row(alloc, Some(job.job_type)))
        .collect();
    list_reply(
        &state,
        &options,
        snapshot.table_indexes().allocs,
        Order::ByCreateIndex,
        rows,
    )
}

pub async fn job_evaluations(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().evals).await?;
    let snapshot = options.read(&state).await?;
    let job = find_job(&snapshot, &options, &id)?;
    let rows: Vec<Row<api_types::Evaluation>> = snapshot
        .evals_by_job(&job.namespace, &job.id)
        .iter()
        .map(|eval| Row::by_index(eval.create_index, eval.id.clone(), api_types::Evaluation::from(&**eval)))
        .collect();
    // Newest first, as Nomad lists a job's evaluations.
    let newest_first = QueryOptions {
        reverse: Some((!options.reverse()?).to_string()),
        ..options
    };
    list_reply(
        &state,
        &newest_first,
        snapshot.table_indexes().evals,
        Order::ByCreateIndex,
        rows,
    )
}

pub async fn job_summary(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().allocs).await?;
    let snapshot = options.read(&state).await?;
    let job = find_job(&snapshot, &options, &id)?;
    let summary = summary_of(&snapshot, &job.namespace, &job.id)
        .ok_or_else(|| ApiError::NotFound(format!("job summary for {id:?}")))?;
    reply(&state, summary.modify_index, &summary)
}

// ----- allocations -------------------------------------------------------

fn job_type_of(snapshot: &server::StateSnapshot, alloc: &types::Allocation) -> Option<JobType> {
    snapshot.job(&alloc.namespace, &alloc.job_id).map(|job| job.job_type)
}

/// An allocation's list stub, ordered by creation index.
pub(crate) fn alloc_row(alloc: &types::Allocation, job_type: Option<JobType>) -> Row<api_types::AllocListStub> {
    Row::by_index(
        alloc.create_index,
        alloc.id.clone(),
        api_types::alloc_stub(alloc, job_type),
    )
}

pub async fn list_allocations(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().allocs).await?;
    let snapshot = options.read(&state).await?;
    let namespace = options.namespace();
    let rows: Vec<Row<api_types::AllocListStub>> = snapshot
        .allocs()
        .filter(|alloc| alloc.id.starts_with(options.prefix()))
        .filter(|alloc| namespace.is_none_or(|wanted| wanted == alloc.namespace))
        .filter(|alloc| caller.acl.allow_namespace_op(&alloc.namespace, "read-job"))
        .map(|alloc| alloc_row(alloc, job_type_of(&snapshot, alloc)))
        .collect();
    list_reply(
        &state,
        &options,
        snapshot.table_indexes().allocs,
        Order::ByCreateIndex,
        rows,
    )
}

pub async fn get_allocation(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| {
        snapshot.alloc(&id).map(|alloc| alloc.modify_index).unwrap_or(0)
    })
    .await?;
    let snapshot = options.read(&state).await?;
    let alloc = found(snapshot.alloc_by_prefix(&id), "allocation", &id)?;
    crate::authz::require_namespace_op(&caller, &alloc.namespace, "read-job")?;
    let job = snapshot
        .job_version(&alloc.namespace, &alloc.job_id, alloc.job_version)
        .or_else(|| snapshot.job(&alloc.namespace, &alloc.job_id))
        .map(|job| jobspec::job_to_api(&job));
    reply(&state, alloc.modify_index, &api_types::allocation(&alloc, job))
}

// ----- evaluations -------------------------------------------------------

pub async fn list_evaluations(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().evals).await?;
    let snapshot = options.read(&state).await?;
    let namespace = options.namespace();
    let rows: Vec<Row<api_types::Evaluation>> = snapshot
        .evals()
        .filter(|eval| eval.id.starts_with(options.prefix()))
        .filter(|eval| namespace.is_none_or(|wanted| wanted == eval.namespace))
        .filter(|eval| caller.acl.allow_namespace_op(&eval.namespace, "read-job"))
        .map(|eval| Row::by_index(eval.create_index, eval.id.clone(), api_types::Evaluation::from(&**eval)))
        .collect();
    list_reply(
        &state,
        &options,
        snapshot.table_indexes().evals,
        Order::ByCreateIndex,
        rows,
    )
}

pub async fn get_evaluation(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().evals).await?;
    let snapshot = options.read(&state).await?;
    let eval = found(snapshot.eval_by_prefix(&id), "evaluation", &id)?;
    crate::authz::require_namespace_op(&caller, &eval.namespace, "read-job")?;
    reply(&state, eval.modify_index, &api_types::Evaluation::from(&*eval))
}

pub async fn evaluation_allocations(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().allocs).await?;
    let snapshot = options.read(&state).await?;
    let eval = found(snapshot.eval_by_prefix(&id), "evaluation", &id)?;
    crate::authz::require_namespace_op(&caller, &eval.namespace, "read-job")?;
    let rows: Vec<Row<api_types::AllocListStub>> = snapshot
        .allocs_by_job(&eval.namespace, &eval.job_id)
        .iter()
        .filter(|alloc| alloc.eval_id == eval.id)
        .map(|alloc| alloc_row(alloc, job_type_of(&snapshot, alloc)))
        .collect();
    list_reply(
        &state,
        &options,
        snapshot.table_indexes().allocs,
        Order::ByCreateIndex,
        rows,
    )
}

// ----- nodes -------------------------------------------------------------

pub async fn list_nodes(State(state): State<AppState>, Query(options): Query<QueryOptions>) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().nodes).await?;
    let snapshot = options.read(&state).await?;
    let rows: Vec<Row<api_types::NodeListStub>> = snapshot
        .nodes()
        .filter(|node| node.id.starts_with(options.prefix()))
        .map(|node| Row::by_id(node.id.clone(), api_types::node_stub(node)))
        .collect();
    list_reply(&state, &options, snapshot.table_indexes().nodes, Order::ById, rows)
}

pub async fn get_node(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().nodes).await?;
    let snapshot = options.read(&state).await?;
    let node = found(snapshot.node_by_prefix(&id), "node", &id)?;
    reply(&state, node.modify_index, &api_types::node(&node))
}

pub async fn node_allocations(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().allocs).await?;
    let snapshot = options.read(&state).await?;
    let node = found(snapshot.node_by_prefix(&id), "node", &id)?;
    let rows: Vec<Row<api_types::AllocListStub>> = snapshot
        .allocs_by_node(&node.id)
        .iter()
        .filter(|alloc| caller.acl.allow_namespace_op(&alloc.namespace, "read-job"))
        .map(|alloc| alloc_row(alloc, job_type_of(&snapshot, alloc)))
        .collect();
    list_reply(
        &state,
        &options,
        snapshot.table_indexes().allocs,
        Order::ByCreateIndex,
        rows,
    )
}

// ----- namespaces --------------------------------------------------------

/// `GET /v1/namespaces[?prefix=]`: every namespace, `default` included.
pub async fn list_namespaces(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().namespaces).await?;
    let snapshot = options.read(&state).await?;
    let rows: Vec<Row<api_types::Namespace>> = snapshot
        .namespaces()
        .iter()
        .filter(|namespace| namespace.name.starts_with(options.prefix()))
        .filter(|namespace| caller.acl.allow_namespace(&namespace.name))
        .map(|namespace| Row::by_id(namespace.name.clone(), api_types::namespace(namespace)))
        .collect();
    list_reply(&state, &options, snapshot.table_indexes().namespaces, Order::ById, rows)
}

/// `GET /v1/namespace/:name`.
pub async fn get_namespace(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    if !caller.acl.allow_namespace(&name) {
        return Err(ApiError::PermissionDenied(format!("namespace {name}")));
    }
    block_until(&state, &options, |snapshot| {
        snapshot
            .namespace(&name)
            .map(|namespace| namespace.modify_index)
            .unwrap_or(0)
    })
    .await?;
    let namespace = options
        .read(&state)
        .await?
        .namespace(&name)
        .ok_or_else(|| ApiError::NotFound(format!("namespace {name:?}")))?;
    reply(&state, namespace.modify_index, &api_types::namespace(&namespace))
}

/// `PUT`/`POST /v1/namespace`: creates or updates the namespace the body
/// names.
pub async fn apply_namespace(State(state): State<AppState>, body: Bytes) -> Answer {
    write_namespace(&state, None, &body).await
}

/// `PUT`/`POST /v1/namespace/:name`: creates or updates `name`; a body
/// without a name takes it from the path.
pub async fn apply_namespace_by_name(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Answer {
    write_namespace(&state, Some(name), &body).await
}

async fn write_namespace(state: &AppState, path_name: Option<String>, body: &Bytes) -> Answer {
    let request: api_types::Namespace = parse_body(body)?;
    let mut namespace = api_types::namespace_from_api(&request).map_err(ApiError::BadRequest)?;
    match path_name {
        Some(name) if namespace.name.is_empty() => namespace.name = name,
        Some(name) if namespace.name != name => {
            return Err(ApiError::BadRequest(format!(
                "namespace name {:?} in the body does not match {name:?} in the path",
                namespace.name
            )));
        }
        _ => {}
    }
    let index = state.server.upsert_namespaces(vec![namespace]).await?;
    let headers = index_headers(index, &state.server);
    Ok((headers, ()).into_response())
}

/// `DELETE /v1/namespace/:name`: refused for `default` and while the
/// namespace holds a job that is not dead.
pub async fn delete_namespace(State(state): State<AppState>, Path(name): Path<String>) -> Answer {
    let index = state.server.delete_namespace(&name).await?;
    let headers = index_headers(index, &state.server);
    Ok((headers, ()).into_response())
}

// ----- operator -----------------------------------------------------------

/// `GET /v1/operator/scheduler/configuration`.
pub async fn get_scheduler_config(State(state): State<AppState>, Query(options): Query<QueryOptions>) -> Answer {
    let snapshot = options.read(&state).await?;
    let config = snapshot.scheduler_config();
    let body = api_types::SchedulerConfigurationResponse {
        scheduler_config: api_types::scheduler_config(config),
        index: config.modify_index,
        known_leader: state.server.leader().is_some(),
        last_contact: 0,
    };
    reply(&state, config.modify_index, &body)
}

/// `PUT`/`POST /v1/operator/scheduler/configuration[?cas=N]`.
pub async fn set_scheduler_config(
    State(state): State<AppState>,
    Query(options): Query<QueryOptions>,
    body: Bytes,
) -> Answer {
    let cas = options.cas()?;
    let request: api_types::SchedulerConfiguration = parse_body(&body)?;
    let config = api_types::scheduler_config_from_api(&request).map_err(ApiError::BadRequest)?;
    let (updated, index) = state.server.set_scheduler_config(config, cas).await?;
    reply(
        &state,
        index,
        &api_types::SchedulerSetConfigurationResponse { updated, index },
    )
}

// ----- status and agent --------------------------------------------------

pub async fn status_leader(State(state): State<AppState>) -> Answer {
    let leader = state.server.leader().unwrap_or_default();
    reply(&state, state.server.state().index(), &leader)
}

pub async fn status_peers(State(state): State<AppState>) -> Answer {
    reply(&state, state.server.state().index(), &state.server.peers())
}

pub async fn regions(State(state): State<AppState>) -> Answer {
    reply(&state, state.server.state().index(), &vec![state.agent.region.clone()])
}

pub async fn agent_health(State(state): State<AppState>) -> Answer {
    let body = json!({
        "server": { "ok": state.server.leader().is_some(), "message": "ok" },
        "client": { "ok": state.agent.client_node_id.is_some(), "message": "ok" },
    });
    reply(&state, state.server.state().index(), &body)
}

pub async fn agent_self(State(state): State<AppState>) -> Answer {
    let agent = &state.agent;
    let (pending, unacked) = state.server.broker_stats();
    let snapshot = state.server.state();
    let body = json!({
        "config": {
            "Region": agent.region,
            "Datacenter": agent.datacenter,
            "NodeName": agent.node_name,
            "DataDir": agent.data_dir,
            "DevMode": agent.dev_mode,
            "Version": { "Version": agent.version, "VersionPrerelease": "", "Revision": "" },
            "Addresses": { "HTTP": agent.http_addr, "RPC": agent.rpc_addr },
            "Server": { "Enabled": true },
            "Client": { "Enabled": agent.client_node_id.is_some() },
        },
        "member": {
            "Name": format!("{}.{}", agent.node_name, agent.region),
            "Addr": agent.rpc_addr.rsplit_once(':').map(|(host, _)| host).unwrap_or(""),
            "Port": agent.rpc_addr.rsplit_once(':').and_then(|(_, port)| port.parse::<u16>().ok()).unwrap_or(0),
            "Status": "alive",
            "Tags": { "region": agent.region, "dc": agent.datacenter, "role": "nomad", "build": agent.version },
        },
        "stats": {
            "raft": { "applied_index": snapshot.index().to_string(), "state": if state.server.is_leader() { "Leader" } else { "Follower" } },
            "broker": { "total_ready": pending.to_string(), "total_unacked": unacked.to_string() },
            "client": { "node_id": agent.client_node_id.clone().unwrap_or_default() },
            "nomad": { "leader": state.server.is_leader().to_string(), "known_regions": "1" },
        },
    });
    reply(&state, snapshot.index(), &body)
}

pub async fn not_found(method: Method, uri: Uri, _headers: HeaderMap) -> ApiError {
    ApiError::NotFound(format!("{method} {}", uri.path()))
}

// ----- job plan ------------------------------------------------------------

/// `PUT /v1/job/:id/plan`: the scheduler's dry run, with Nomad's
/// `Annotations.DesiredTGUpdates`, `FailedTGAllocs`, the `JobModifyIndex`
/// to pass to `job run -check-index`, and (with `"Diff": true`) the
/// `JobDiff` from the stored job, each group carrying its counts.
pub async fn plan_job(
    State(state): State<AppState>,
    Extension(limits): Extension<Arc<Limits>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    let (job, want_diff) = limits
        .parse(move || {
            let value: Value = parse_body(&body)?;
            let want_diff = match value.get("Diff") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(diff)) => *diff,
                Some(_) => return Err(ApiError::BadRequest("field \"Diff\" must be a boolean".to_string())),
            };
            Ok((job_from_body(&body)?, want_diff))
        })
        .await?;
    if job.id != id {
        return Err(ApiError::BadRequest(format!(
            "job ID {:?} in the body does not match {id:?} in the URL",
            job.id
        )));
    }
    let planned = state.server.plan_job(job).await?;
    let mut desired = serde_json::Map::new();
    for (group, updates) in &planned.updates {
        desired.insert(
            group.clone(),
            json!({
                "Ignore": updates.ignore,
                "Place": updates.place,
                "Migrate": updates.migrate,
                "Stop": updates.stop,
                "InPlaceUpdate": updates.in_place_update,
                "DestructiveUpdate": updates.destructive_update,
                "Canary": updates.canary,
                "Preemptions": updates.preemptions,
            }),
        );
    }
    let diff = want_diff.then(|| {
        let old = planned.old_job.as_ref().map(|job| jobspec::job_to_api(job));
        let mut diff = api_types::job_diff::job_diff(old.as_ref(), &jobspec::job_to_api(&planned.new_job));
        for group in &mut diff.task_groups {
            let Some(updates) = planned.updates.get(&group.name) else {
                continue;
            };
            for (name, count) in [
                ("create", updates.place),
                ("destroy", updates.stop),
                ("migrate", updates.migrate),
                ("in-place update", updates.in_place_update),
                ("create/destroy update", updates.destructive_update),
                ("canary", updates.canary),
                ("ignore", updates.ignore),
            ] {
                if count > 0 {
                    group.updates.insert(name.to_string(), count);
                }
            }
            let annotation = if updates.destructive_update > 0 || updates.canary > 0 {
                Some("forces create/destroy update")
            } else if updates.in_place_update > 0 {
                Some("forces in-place update")
            } else {
                None
            };
            for task in &mut group.tasks {
                if task.diff_type == api_types::job_diff::EDITED
                    && let Some(annotation) = annotation
                {
                    task.annotations.push(annotation.to_string());
                }
            }
        }
        diff
    });
    let failed: BTreeMap<String, api_types::AllocationMetric> = planned
        .failed_tg_allocs
        .iter()
        .map(|(group, metric)| (group.clone(), api_types::AllocationMetric::from(metric)))
        .collect();
    let body = json!({
        "Annotations": { "DesiredTGUpdates": desired, "PreemptedAllocs": null },
        "FailedTGAllocs": if failed.is_empty() { Value::Null } else { json!(failed) },
        "JobModifyIndex": planned.job_modify_index,
        "CreatedEvals": null,
        "Diff": diff,
        "NextPeriodicLaunch": "0001-01-01T00:00:00Z",
        "Warnings": "",
        "Index": planned.index,
    });
    reply(&state, planned.index, &body)
}
