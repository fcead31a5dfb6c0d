//! Scaling policies: `/v1/scaling/policies` and `/v1/scaling/policy/:id`,
//! read from the `scaling` blocks of the jobs' task groups. Drover keeps
//! no table of its own for them: a policy's ID is derived from its
//! namespace, job and group (a name-based UUID), so it is the same on
//! every server and across restarts, and changes only when the group is
//! renamed.

use crate::AppState;
use crate::error::ApiError;
use crate::handlers::{Answer, reply};
use crate::query::{QueryOptions, block_until};
use axum::extract::{Extension, Path, Query, State};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use types::Job;

/// The policies of the jobs the snapshot holds, as (ID, JSON), in ID order.
fn policies(jobs: &[std::sync::Arc<Job>]) -> BTreeMap<String, Value> {
    let mut found = BTreeMap::new();
    for job in jobs {
        if job.is_template() && job.stop {
            continue;
        }
        for group in &job.task_groups {
            let Some(scaling) = &group.scaling else {
                continue;
            };
            let id = server::scaling_policy_id(&job.namespace, &job.id, &group.name);
            let policy = json!({
                "ID": id,
                "Type": "horizontal",
                "Namespace": job.namespace,
                "JobID": job.id,
                "Target": { "Namespace": job.namespace, "Job": job.id, "Group": group.name },
                "Policy": if scaling.policy.is_null() { json!({}) } else { scaling.policy.clone() },
                "Min": scaling.min.unwrap_or(u64::from(group.count)),
                "Max": scaling.max,
                "Enabled": scaling.enabled,
                "CreateIndex": job.create_index,
                "ModifyIndex": job.job_modify_index,
            });
            found.insert(id, policy);
        }
    }
    found
}

/// `GET /v1/scaling/policies` (`?job=` and `?type=` filter, as Nomad's).
pub async fn list_policies(
    State(state): State<AppState>,
    Extension(caller): Extension<server::Caller>,
    Query(options): Query<QueryOptions>,
    Query(filters): Query<BTreeMap<String, String>>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().jobs).await?;
    let snapshot = options.read(&state).await?;
    let jobs: Vec<_> = snapshot
        .jobs(options.namespace())
        .into_iter()
        .filter(|job| caller.acl.allow_namespace_op(&job.namespace, "list-scaling-policies"))
        .filter(|job| filters.get("job").is_none_or(|wanted| *wanted == job.id))
        .collect();
    if filters.get("type").is_some_and(|wanted| wanted != "horizontal") {
        return reply(&state, snapshot.table_indexes().jobs, &Vec::<Value>::new());
    }
    let stubs: Vec<Value> = policies(&jobs)
        .into_values()
        .map(|policy| {
            json!({
                "ID": policy["ID"],
                "Type": policy["Type"],
                "Enabled": policy["Enabled"],
                "Target": policy["Target"],
                "CreateIndex": policy["CreateIndex"],
                "ModifyIndex": policy["ModifyIndex"],
            })
        })
        .collect();
    reply(&state, snapshot.table_indexes().jobs, &stubs)
}

/// `GET /v1/scaling/policy/:id`.
pub async fn get_policy(
    State(state): State<AppState>,
    Extension(caller): Extension<server::Caller>,
    Path(id): Path<String>,
    Query(options): Query<QueryOptions>,
) -> Answer {
    block_until(&state, &options, |snapshot| snapshot.table_indexes().jobs).await?;
    let snapshot = options.read(&state).await?;
    let jobs = snapshot.jobs(None);
    let policy = policies(&jobs)
        .remove(&id)
        .ok_or_else(|| ApiError::NotFound(format!("scaling policy {id:?}")))?;
    let namespace = policy["Namespace"].as_str().unwrap_or_default().to_string();
    crate::authz::require_namespace_op(&caller, &namespace, "read-scaling-policy")?;
    reply(&state, snapshot.table_indexes().jobs, &policy)
}
