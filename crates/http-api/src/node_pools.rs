//! Node pools, read-only: `/v1/node/pools`, `/v1/node/pool/:name` and its
//! `jobs` and `nodes`, plus `GET /v1/evaluations/count`.
//!
//! Drover keeps no node-pool objects: the pools are the built-in `all`
//! (every node) and `default`, and every pool a node or a job names (as
//! Nomad creates a pool a client's configuration names). Creating,
//! updating and deleting pools (`PUT`/`DELETE`) are not served, so a
//! request for them gets 405, never a silent success. Pool reads need
//! `node:read` (Drover's policies have no `node_pool` rule); a pool's
//! jobs are filtered by the token's `read-job` per namespace.

use crate::AppState;
use crate::error::ApiError;
use crate::handlers::{Answer, reply};
use crate::query::{QueryOptions, block_until};
use axum::Extension;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};
use server::{Caller, StateSnapshot};
use std::collections::BTreeSet;

const ALL: &str = "all";

/// Every pool name: the built-ins and those nodes and jobs name.
pub(crate) fn pool_names(snapshot: &StateSnapshot) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = [ALL.to_string(), types::DEFAULT_NODE_POOL.to_string()].into();
    names.extend(snapshot.nodes().map(|node| node.node_pool.clone()));
    names.extend(snapshot.jobs(None).iter().map(|job| job.node_pool.clone()));
    names.retain(|name| !name.is_empty());
    names
}

fn pool_json(name: &str) -> Value {
    let description = match name {
        ALL => "Built-in pool holding every node of the cluster.",
        types::DEFAULT_NODE_POOL => "Built-in pool of nodes that name no other pool.",
        _ => "",
    };
    json!({
        "Name": name,
        "Description": description,
        "Meta": null,
        "SchedulerConfiguration": null,
        "CreateIndex": 1,
        "ModifyIndex": 1,
    })
}

fn existing(snapshot: &StateSnapshot, name: &str) -> Result<(), ApiError> {
    if pool_names(snapshot).contains(name) {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("node pool {name:?}")))
    }
}

/// `GET /v1/node/pools`.
pub async fn list(State(state): State<AppState>, Query(options): Query<QueryOptions>) -> Answer {
    let snapshot = options.read(&state).await?;
    let body: Vec<Value> = pool_names(&snapshot)
        .iter()
        .filter(|name| name.starts_with(options.prefix()))
        .map(|name| pool_json(name))
        .collect();
    reply(
        &state,
        snapshot.table_indexes().nodes.max(snapshot.table_indexes().jobs),
        &body,
    )
}

/// `GET /v1/node/pool/:name`.
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    let snapshot = options.read(&state).await?;
    existing(&snapshot, &name)?;
    reply(&state, snapshot.table_indexes().nodes, &pool_json(&name))
}

/// `GET /v1/node/pool/:name/nodes`.
pub async fn nodes(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().nodes).await?;
    let snapshot = options.read(&state).await?;
    existing(&snapshot, &name)?;
    let body: Vec<api_types::NodeListStub> = snapshot
        .nodes()
        .filter(|node| name == ALL || node.node_pool == name)
        .filter(|node| node.id.starts_with(options.prefix()))
        .map(|node| api_types::node_stub(node))
        .collect();
    reply(&state, snapshot.table_indexes().nodes, &body)
}

/// `GET /v1/node/pool/:name/jobs`.
pub async fn jobs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().jobs).await?;
    let snapshot = options.read(&state).await?;
    existing(&snapshot, &name)?;
    let body: Vec<api_types::JobListStub> = snapshot
        .jobs(options.namespace())
        .iter()
        .filter(|job| name == ALL || job.node_pool == name)
        .filter(|job| job.id.starts_with(options.prefix()))
        .filter(|job| caller.acl.allow_namespace_op(&job.namespace, "read-job"))
        .map(|job| api_types::job_stub(job, crate::handlers::summary_of(&snapshot, &job.namespace, &job.id)))
        .collect();
    reply(&state, snapshot.table_indexes().jobs, &body)
}

/// `GET /v1/evaluations/count`: `{"Count": N}` over the namespace asked
/// for (`*`: every namespace the token may read).
pub async fn eval_count(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().evals).await?;
    let snapshot = options.read(&state).await?;
    let namespace = options.namespace();
    let count = snapshot
        .evals()
        .filter(|eval| eval.id.starts_with(options.prefix()))
        .filter(|eval| namespace.is_none_or(|wanted| wanted == eval.namespace))
        .filter(|eval| caller.acl.allow_namespace_op(&eval.namespace, "read-job"))
        .count();
    reply(&state, snapshot.table_indexes().evals, &json!({ "Count": count }))
}
