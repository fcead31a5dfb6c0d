//! `POST /v1/search` (prefix) and `POST /v1/search/fuzzy`, with Nomad's
//! shapes: `Matches` and `Truncations` per context, at most
//! [`LIMIT_PER_CONTEXT`] matches each (`Truncations` says when more
//! matched).
//!
//! Contexts Drover has: `jobs`, `evals`, `allocs`, `nodes`,
//! `deployment`, `namespaces`, `node_pools`, and `all` for every one of
//! them; fuzzy search's `jobs` also reports matching `groups` and
//! `tasks`. Contexts naming objects Drover does not keep (`plugins`,
//! `volumes`, `quotas`, `scaling_policy`, `variables`, `host_volumes`…)
//! are refused with a 400, never answered empty. Results are filtered by
//! the token: namespaced objects need `read-job` in their namespace,
//! nodes and pools `node:read`, namespaces any capability there.

use crate::AppState;
use crate::error::ApiError;
use crate::handlers::{Answer, reply};
use crate::query::QueryOptions;
use acl::Level;
use axum::Extension;
use axum::extract::{Query, State};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use server::{Caller, StateSnapshot};
use std::collections::{BTreeMap, BTreeSet};

/// Matches returned per context.
pub(crate) const LIMIT_PER_CONTEXT: usize = 20;
/// Longest prefix or text accepted.
const MAX_TERM_BYTES: usize = 1024;
/// Fuzzy text must be at least this long (Nomad's `min_term_length`).
const MIN_FUZZY_TERM: usize = 2;

const CONTEXTS: &[&str] = &[
    "allocs",
    "deployment",
    "evals",
    "jobs",
    "namespaces",
    "node_pools",
    "nodes",
];
const UNSUPPORTED: &[&str] = &[
    "plugins",
    "volumes",
    "quotas",
    "recommendations",
    "scaling_policy",
    "variables",
    "host_volumes",
    "services",
    "images",
    "commands",
    "classes",
];

#[derive(Debug, Deserialize)]
struct PrefixRequest {
    #[serde(rename = "Prefix", default)]
    prefix: String,
    #[serde(rename = "Context", default)]
    context: String,
}

#[derive(Debug, Deserialize)]
struct FuzzyRequest {
    #[serde(rename = "Text", default)]
    text: String,
    #[serde(rename = "Context", default)]
    context: String,
}

/// The contexts a request names, or a 400.
fn contexts(context: &str) -> Result<Vec<&'static str>, ApiError> {
    match context {
        "" | "all" => Ok(CONTEXTS.to_vec()),
        other => match CONTEXTS.iter().find(|known| **known == other) {
            Some(known) => Ok(vec![known]),
            None if UNSUPPORTED.contains(&other) => Err(ApiError::BadRequest(format!(
                "search context {other:?} is not supported by Drover (it keeps no such objects)"
            ))),
            None => Err(ApiError::BadRequest(format!(
                "invalid search context {other:?} (one of all, {})",
                CONTEXTS.join(", ")
            ))),
        },
    }
}

fn check_term(what: &str, term: &str) -> Result<(), ApiError> {
    if term.len() > MAX_TERM_BYTES {
        return Err(ApiError::BadRequest(format!(
            "{what} is longer than {MAX_TERM_BYTES} bytes"
        )));
    }
    Ok(())
}

/// The namespaces a search covers, readable by the caller.
fn readable(caller: &Caller, namespace: Option<&str>, object_namespace: &str) -> bool {
    namespace.is_none_or(|wanted| wanted == object_namespace)
        && caller.acl.allow_namespace_op(object_namespace, "read-job")
}

/// One object a context may match: its ID (what prefix search matches
/// and returns), its display name and the scope fuzzy search reports.
struct Candidate {
    id: String,
    name: String,
    scope: Vec<String>,
}

/// Every object of `context` the caller may see, sorted by ID.
fn candidates(snapshot: &StateSnapshot, caller: &Caller, namespace: Option<&str>, context: &str) -> Vec<Candidate> {
    let node_read = caller.acl.allow_node(Level::Read);
    let mut out: Vec<Candidate> = match context {
        "jobs" => snapshot
            .jobs(None)
            .into_iter()
            .filter(|job| readable(caller, namespace, &job.namespace))
            .map(|job| Candidate {
                id: job.id.clone(),
                name: job.name.clone(),
                scope: vec![job.namespace.clone(), job.id.clone()],
            })
            .collect(),
        "evals" => snapshot
            .evals()
            .filter(|eval| readable(caller, namespace, &eval.namespace))
            .map(|eval| Candidate {
                id: eval.id.clone(),
                name: eval.id.clone(),
                scope: vec![eval.namespace.clone(), eval.id.clone()],
            })
            .collect(),
        "allocs" => snapshot
            .allocs()
            .filter(|alloc| readable(caller, namespace, &alloc.namespace))
            .map(|alloc| Candidate {
                id: alloc.id.clone(),
                name: alloc.name.clone(),
                scope: vec![alloc.namespace.clone(), alloc.id.clone()],
            })
            .collect(),
        "deployment" => snapshot
            .deployments(namespace)
            .into_iter()
            .filter(|deployment| readable(caller, namespace, &deployment.namespace))
            .map(|deployment| Candidate {
                id: deployment.id.clone(),
                name: deployment.id.clone(),
                scope: vec![deployment.namespace.clone(), deployment.id.clone()],
            })
            .collect(),
        "nodes" if node_read => snapshot
            .nodes()
            .map(|node| Candidate {
                id: node.id.clone(),
                name: node.name.clone(),
                scope: vec![node.id.clone()],
            })
            .collect(),
        "node_pools" if node_read => crate::node_pools::pool_names(snapshot)
            .into_iter()
            .map(|pool| Candidate {
                id: pool.clone(),
                name: pool,
                scope: Vec::new(),
            })
            .collect(),
        "namespaces" => snapshot
            .namespaces()
            .into_iter()
            .filter(|ns| caller.acl.allow_namespace(&ns.name))
            .map(|ns| Candidate {
                id: ns.name.clone(),
                name: ns.name.clone(),
                scope: Vec::new(),
            })
            .collect(),
        _ => Vec::new(),
    };
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// `POST /v1/search`.
pub async fn prefix(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(options): Query<QueryOptions>,
    body: Bytes,
) -> Answer {
    let request: PrefixRequest = crate::handlers::parse_body(&body)?;
    check_term("Prefix", &request.prefix)?;
    let contexts = contexts(&request.context)?;
    let snapshot = options.read(&state).await?;
    let namespace = options.namespace();
    let mut matches = BTreeMap::new();
    let mut truncations = BTreeMap::new();
    for context in contexts {
        let found: Vec<String> = candidates(&snapshot, &caller, namespace, context)
            .into_iter()
            .filter(|candidate| candidate.id.starts_with(&request.prefix))
            .map(|candidate| candidate.id)
            .take(LIMIT_PER_CONTEXT + 1)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        truncations.insert(context, found.len() > LIMIT_PER_CONTEXT);
        matches.insert(context, found.into_iter().take(LIMIT_PER_CONTEXT).collect::<Vec<_>>());
    }
    reply(
        &state,
        snapshot.index(),
        &json!({ "Matches": matches, "Truncations": truncations }),
    )
}

/// `POST /v1/search/fuzzy`: case-insensitive substring matches on names
/// (a job's name and ID, a node's name, an allocation's name…), with
/// Nomad's `{"ID", "Scope"}` entries.
pub async fn fuzzy(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(options): Query<QueryOptions>,
    body: Bytes,
) -> Answer {
    let request: FuzzyRequest = crate::handlers::parse_body(&body)?;
    check_term("Text", &request.text)?;
    if request.text.chars().count() < MIN_FUZZY_TERM {
        return Err(ApiError::BadRequest(format!(
            "fuzzy search text must be at least {MIN_FUZZY_TERM} characters"
        )));
    }
    let contexts = contexts(&request.context)?;
    let snapshot = options.read(&state).await?;
    let namespace = options.namespace();
    let needle = request.text.to_lowercase();
    let mut matches = BTreeMap::new();
    let mut truncations = BTreeMap::new();
    for context in contexts {
        let found: Vec<Value> = candidates(&snapshot, &caller, namespace, context)
            .into_iter()
            .filter(|candidate| {
                candidate.name.to_lowercase().contains(&needle) || candidate.id.to_lowercase().contains(&needle)
            })
            .take(LIMIT_PER_CONTEXT + 1)
            .map(|candidate| json!({ "ID": candidate.name, "Scope": candidate.scope }))
            .collect();
        truncations.insert(context, found.len() > LIMIT_PER_CONTEXT);
        matches.insert(context, found.into_iter().take(LIMIT_PER_CONTEXT).collect::<Vec<_>>());
        if context == "jobs" {
            // As Nomad: the jobs context also matches task group and task
            // names inside the readable jobs.
            let (groups, tasks) = job_parts(&snapshot, &caller, namespace, &needle);
            for (name, found) in [("groups", groups), ("tasks", tasks)] {
                truncations.insert(name, found.len() > LIMIT_PER_CONTEXT);
                matches.insert(name, found.into_iter().take(LIMIT_PER_CONTEXT).collect());
            }
        }
    }
    reply(
        &state,
        snapshot.index(),
        &json!({ "Matches": matches, "Truncations": truncations }),
    )
}

/// Groups and tasks of readable jobs whose names contain `needle`, with
/// Nomad's scopes (`[namespace, job]`, `[namespace, job, group]`); at
/// most one past the limit of each.
fn job_parts(
    snapshot: &StateSnapshot,
    caller: &Caller,
    namespace: Option<&str>,
    needle: &str,
) -> (Vec<Value>, Vec<Value>) {
    let (mut groups, mut tasks) = (Vec::new(), Vec::new());
    let mut jobs = snapshot.jobs(None);
    jobs.sort_by(|a, b| (&a.namespace, &a.id).cmp(&(&b.namespace, &b.id)));
    for job in jobs.iter().filter(|job| readable(caller, namespace, &job.namespace)) {
        for group in &job.task_groups {
            if groups.len() <= LIMIT_PER_CONTEXT && group.name.to_lowercase().contains(needle) {
                groups.push(json!({ "ID": group.name, "Scope": [job.namespace, job.id] }));
            }
            for task in &group.tasks {
                if tasks.len() <= LIMIT_PER_CONTEXT && task.name.to_lowercase().contains(needle) {
                    tasks.push(json!({ "ID": task.name, "Scope": [job.namespace, job.id, group.name] }));
                }
            }
        }
        if groups.len() > LIMIT_PER_CONTEXT && tasks.len() > LIMIT_PER_CONTEXT {
            break;
        }
    }
    (groups, tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_are_known_or_refused() {
        assert_eq!(contexts("all").expect("all").len(), CONTEXTS.len());
        assert_eq!(contexts("jobs").expect("jobs"), vec!["jobs"]);
        assert!(matches!(contexts("volumes"), Err(ApiError::BadRequest(message)) if message.contains("not supported")));
        assert!(matches!(contexts("nope"), Err(ApiError::BadRequest(_))));
        assert!(check_term("Prefix", &"x".repeat(MAX_TERM_BYTES + 1)).is_err());
    }
}
