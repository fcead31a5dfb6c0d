//! Forced evaluations: `/v1/job/:id/evaluate` (with Nomad's
//! `ForceReschedule`, which replaces failed allocations at once whatever
//! their reschedule policy) and `/v1/node/:id/evaluate` (an evaluation of
//! every job with work on the node, and of every system job).

use crate::{Server, ServerError, new_id, now_nanos};
use state::Command;
use types::{AllocClientStatus, AllocDesiredStatus, Evaluation, Index, Job, trigger};

/// The evaluations a forced evaluation wrote.
#[derive(Debug, Clone, Default)]
pub struct EvaluateResult {
    pub eval_ids: Vec<String>,
    pub index: Index,
}

fn eval_for(job: &Job, triggered_by: &str, node_id: &str) -> Evaluation {
    let now = now_nanos();
    Evaluation {
        id: new_id(),
        namespace: job.namespace.clone(),
        priority: job.priority,
        job_type: Some(job.job_type),
        triggered_by: triggered_by.to_string(),
        job_id: job.id.clone(),
        job_modify_index: job.job_modify_index,
        node_id: node_id.to_string(),
        status: types::EvalStatus::Pending,
        create_time: now,
        modify_time: now,
        ..Evaluation::default()
    }
}

impl Server {
    /// Creates an evaluation of a job; with `force_reschedule`, its failed
    /// allocations are replaced now.
    pub async fn evaluate_job(
        &self,
        namespace: &str,
        job_id: &str,
        force_reschedule: bool,
    ) -> Result<EvaluateResult, ServerError> {
        let snapshot = self.read_state(false).await?;
        let job = snapshot
            .job(namespace, job_id)
            .ok_or_else(|| ServerError::NotFound(format!("job {job_id:?}")))?;
        if job.is_template() {
            return Err(ServerError::BadRequest(format!(
                "can't evaluate periodic or parameterized job {job_id:?}; its children are evaluated"
            )));
        }
        let eval = eval_for(&job, trigger::JOB_REGISTER, "");
        let eval_id = eval.id.clone();
        let command = if force_reschedule {
            let failed: Vec<String> = snapshot
                .allocs_by_job(namespace, job_id)
                .iter()
                .filter(|alloc| {
                    alloc.desired_status == AllocDesiredStatus::Run && alloc.client_status == AllocClientStatus::Failed
                })
                .map(|alloc| alloc.id.clone())
                .collect();
            Command::AllocDesiredTransition {
                alloc_ids: failed,
                evals: vec![eval],
                now: now_nanos(),
                force_reschedule: true,
            }
        } else {
            Command::EvalUpsert { evals: vec![eval] }
        };
        let result = self.write(command).await?;
        if let Some(error) = result.error {
            return Err(ServerError::BadRequest(error));
        }
        Ok(EvaluateResult {
            eval_ids: vec![eval_id],
            index: result.index,
        })
    }

    /// Creates an evaluation of every job with allocations on the node,
    /// and of every system job.
    pub async fn evaluate_node(&self, node_id: &str) -> Result<EvaluateResult, ServerError> {
        let snapshot = self.read_state(false).await?;
        let node = snapshot
            .node_by_prefix(node_id)
            .map_err(|error| ServerError::BadRequest(error.to_string()))?
            .ok_or_else(|| ServerError::NotFound(format!("node {node_id:?}")))?;
        let mut jobs = std::collections::BTreeMap::new();
        for alloc in snapshot.allocs_by_node(&node.id) {
            if let Some(job) = snapshot.job(&alloc.namespace, &alloc.job_id) {
                jobs.insert((job.namespace.clone(), job.id.clone()), job);
            }
        }
        for job in snapshot.system_jobs() {
            jobs.insert((job.namespace.clone(), job.id.clone()), job.clone());
        }
        let evals: Vec<Evaluation> = jobs
            .values()
            .filter(|job| !job.is_template())
            .map(|job| eval_for(job, trigger::NODE_UPDATE, &node.id))
            .collect();
        let eval_ids = evals.iter().map(|eval| eval.id.clone()).collect();
        let result = self.write(Command::EvalUpsert { evals }).await?;
        Ok(EvaluateResult {
            eval_ids,
            index: result.index,
        })
    }
}
