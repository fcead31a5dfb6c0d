//! Operator actions on deployments (Nomad's `/v1/deployment/*` writes):
//! promote canaries, fail (with the automatic revert when asked for), pause
//! and resume, and set allocation health by hand.

use crate::deployment_watcher;
use crate::{Server, ServerError, new_id, now_nanos};
use state::Command;
use std::sync::Arc;
use types::{Deployment, DeploymentStatus, DeploymentStatusUpdate, Evaluation, Index, deployment_description};

/// What a deployment write returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentUpdateResult {
    pub eval_id: Option<String>,
    pub eval_create_index: Index,
    pub deployment_modify_index: Index,
    /// The job version registered by a revert.
    pub reverted_job_version: Option<u64>,
    pub index: Index,
}

impl Server {
    async fn active_deployment(&self, id: &str) -> Result<Arc<Deployment>, ServerError> {
        let snapshot = self.read_state(false).await?;
        let deployment = snapshot
            .deployment(id)
            .ok_or_else(|| ServerError::NotFound(format!("deployment {id:?}")))?;
        if !deployment.active() {
            return Err(ServerError::BadRequest(format!(
                "deployment {id:?} is {} and can no longer change",
                deployment.status.as_str()
            )));
        }
        Ok(deployment)
    }

    fn deployment_eval(&self, deployment: &Deployment, now: types::UnixNanos) -> Option<Evaluation> {
        let job = self.state().job(&deployment.namespace, &deployment.job_id)?;
        let mut eval = Self::new_eval(&job, types::trigger::DEPLOYMENT_WATCHER, now);
        eval.deployment_id = deployment.id.clone();
        eval.job_modify_index = job.job_modify_index;
        Some(eval)
    }

    async fn write_deployment(
        &self,
        command: Command,
        eval_id: Option<String>,
    ) -> Result<DeploymentUpdateResult, ServerError> {
        let result = self.write(command).await?;
        if let Some(error) = result.error {
            return Err(ServerError::BadRequest(error));
        }
        Ok(DeploymentUpdateResult {
            eval_create_index: if eval_id.is_some() { result.index } else { 0 },
            eval_id,
            deployment_modify_index: result.index,
            reverted_job_version: result.job_version,
            index: result.index,
        })
    }

    /// Promotes the canaries of `groups` (every group when empty).
    pub async fn promote_deployment(
        &self,
        id: &str,
        groups: Vec<String>,
    ) -> Result<DeploymentUpdateResult, ServerError> {
        let deployment = self.active_deployment(id).await?;
        let now = now_nanos();
        let eval = self.deployment_eval(&deployment, now);
        let eval_id = eval.as_ref().map(|eval| eval.id.clone());
        self.write_deployment(
            Command::DeploymentPromote {
                deployment_id: deployment.id.clone(),
                groups,
                eval,
                now,
            },
            eval_id,
        )
        .await
    }

    /// Marks a deployment failed; with `auto_revert`, the job goes back to
    /// its last stable version.
    pub async fn fail_deployment(&self, id: &str) -> Result<DeploymentUpdateResult, ServerError> {
        let deployment = self.active_deployment(id).await?;
        let now = now_nanos();
        let snapshot = self.state();
        let mut ids = new_id;
        let (update, job, eval) = deployment_watcher::failure(
            &snapshot,
            &deployment,
            deployment_description::FAILED_BY_USER,
            &mut ids,
            now,
        );
        let eval = eval.or_else(|| self.deployment_eval(&deployment, now));
        let eval_id = eval.as_ref().map(|eval| eval.id.clone());
        self.write_deployment(Command::DeploymentStatusSet { update, job, eval, now }, eval_id)
            .await
    }

    /// Pauses (`pause`) or resumes a deployment.
    pub async fn pause_deployment(&self, id: &str, pause: bool) -> Result<DeploymentUpdateResult, ServerError> {
        let deployment = self.active_deployment(id).await?;
        let now = now_nanos();
        let (status, description) = if pause {
            (DeploymentStatus::Paused, deployment_description::PAUSED)
        } else if deployment.requires_promotion() {
            (
                DeploymentStatus::Running,
                deployment_description::RUNNING_NEEDS_PROMOTION,
            )
        } else {
            (DeploymentStatus::Running, deployment_description::RUNNING)
        };
        // Resuming needs an evaluation to place what the pause held back.
        let eval = if pause {
            None
        } else {
            self.deployment_eval(&deployment, now)
        };
        let eval_id = eval.as_ref().map(|eval| eval.id.clone());
        let update = DeploymentStatusUpdate {
            deployment_id: deployment.id.clone(),
            status,
            status_description: description.to_string(),
        };
        self.write_deployment(
            Command::DeploymentStatusSet {
                update,
                job: None,
                eval,
                now,
            },
            eval_id,
        )
        .await
    }

    /// Sets allocation health by hand (Nomad's `allocation-health`, meant
    /// for `health_check = "manual"`).
    pub async fn set_deployment_alloc_health(
        &self,
        id: &str,
        healthy: Vec<String>,
        unhealthy: Vec<String>,
    ) -> Result<DeploymentUpdateResult, ServerError> {
        let deployment = self.active_deployment(id).await?;
        if healthy.is_empty() && unhealthy.is_empty() {
            return Err(ServerError::BadRequest(
                "give at least one allocation in HealthyAllocationIDs or UnhealthyAllocationIDs".to_string(),
            ));
        }
        let snapshot = self.state();
        for alloc_id in healthy.iter().chain(unhealthy.iter()) {
            let belongs = snapshot
                .alloc(alloc_id)
                .is_some_and(|alloc| alloc.deployment_id == deployment.id);
            if !belongs {
                return Err(ServerError::BadRequest(format!(
                    "allocation {alloc_id:?} is not part of deployment {:?}",
                    deployment.id
                )));
            }
        }
        let now = now_nanos();
        let eval = self.deployment_eval(&deployment, now);
        let eval_id = eval.as_ref().map(|eval| eval.id.clone());
        self.write_deployment(
            Command::DeploymentAllocHealth {
                deployment_id: deployment.id.clone(),
                healthy,
                unhealthy,
                status: None,
                job: None,
                eval,
                now,
            },
            eval_id,
        )
        .await
    }
}

/// A scaling request (`POST /v1/job/:id/scale`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScaleRequest {
    pub group: String,
    pub count: Option<i64>,
    pub message: String,
    pub error: bool,
    pub meta: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Server {
    /// Changes a group's count within its `scaling { min, max }` (or only
    /// records the event when no count is given), as a new job version
    /// with its evaluation.
    pub async fn scale_job(
        &self,
        namespace: &str,
        job_id: &str,
        request: ScaleRequest,
    ) -> Result<crate::RegisterResult, ServerError> {
        let snapshot = self.read_state(false).await?;
        let job = snapshot
            .job(namespace, job_id)
            .ok_or_else(|| ServerError::NotFound(format!("job {job_id:?}")))?;
        let group = job
            .group(&request.group)
            .ok_or_else(|| ServerError::BadRequest(format!("job {job_id:?} has no task group {:?}", request.group)))?;
        let previous_count = i64::from(group.count);
        if let Some(count) = request.count {
            if count < 0 {
                return Err(ServerError::BadRequest(format!(
                    "scaling action count can't be negative: {count}"
                )));
            }
            if let Some(scaling) = &group.scaling {
                let max = i64::try_from(scaling.max).unwrap_or(i64::MAX);
                if count > max {
                    return Err(ServerError::BadRequest(format!(
                        "group count was greater than scaling policy maximum: {count} > {max}"
                    )));
                }
                if let Some(min) = scaling.min.map(|min| i64::try_from(min).unwrap_or(i64::MAX))
                    && count < min
                {
                    return Err(ServerError::BadRequest(format!(
                        "group count was less than scaling policy minimum: {count} < {min}"
                    )));
                }
            }
            if job.stop {
                return Err(ServerError::BadRequest(format!(
                    "job {job_id:?} is stopped; start it before scaling"
                )));
            }
        }
        let now = now_nanos();
        let (scaled, eval) = match request.count {
            Some(count) => {
                let mut scaled = (*job).clone();
                let count = u32::try_from(count)
                    .map_err(|_| ServerError::BadRequest(format!("scaling action count {count} is too large")))?;
                for candidate in &mut scaled.task_groups {
                    if candidate.name == request.group {
                        candidate.count = count;
                    }
                }
                scaled.validate().map_err(ServerError::InvalidJob)?;
                let eval = Self::new_eval(&scaled, types::trigger::JOB_SCALING, now);
                (Some(scaled), Some(eval))
            }
            None => (None, None),
        };
        let eval_id = eval.as_ref().map(|eval| eval.id.clone());
        let event = types::ScalingEvent {
            time: now,
            count: request.count,
            previous_count,
            message: request.message,
            error: request.error,
            meta: request.meta,
            eval_id: eval_id.clone(),
            create_index: 0,
        };
        let result = self
            .write(Command::JobScale {
                namespace: namespace.to_string(),
                job_id: job_id.to_string(),
                group: request.group,
                event,
                job: scaled,
                eval,
                now,
            })
            .await?;
        if let Some(error) = result.error {
            return Err(ServerError::BadRequest(error));
        }
        Ok(crate::RegisterResult {
            eval_create_index: if eval_id.is_some() { result.index } else { 0 },
            eval_id,
            job_modify_index: result.index,
            index: result.index,
            warnings: String::new(),
        })
    }
}

impl Server {
    /// Registers an earlier version's spec as the job's next version
    /// (Nomad's revert); with `enforce_prior_version`, only while the
    /// current version is that one.
    pub async fn revert_job(
        &self,
        namespace: &str,
        job_id: &str,
        version: u64,
        enforce_prior_version: Option<u64>,
    ) -> Result<crate::RegisterResult, ServerError> {
        let snapshot = self.read_state(false).await?;
        let current = snapshot
            .job(namespace, job_id)
            .ok_or_else(|| ServerError::NotFound(format!("job {job_id:?}")))?;
        if let Some(prior) = enforce_prior_version
            && prior != current.version
        {
            return Err(ServerError::BadRequest(format!(
                "current job has version {}; enforcing version {prior}",
                current.version
            )));
        }
        if version == current.version {
            return Err(ServerError::BadRequest(format!(
                "can't revert to the current version {version}"
            )));
        }
        let target = snapshot
            .job_version(namespace, job_id, version)
            .ok_or_else(|| ServerError::NotFound(format!("version {version} of job {job_id:?}")))?;
        let mut job = (*target).clone();
        job.stable = false;
        // Only the current job's modify index may be in place when the
        // revert is written, so a concurrent change makes it fail.
        self.register_job_enforcing(job, Some(current.job_modify_index)).await
    }

    /// Sets or clears a job version's stable flag.
    pub async fn set_job_stability(
        &self,
        namespace: &str,
        job_id: &str,
        version: u64,
        stable: bool,
    ) -> Result<Index, ServerError> {
        let result = self
            .write(Command::JobStability {
                namespace: namespace.to_string(),
                job_id: job_id.to_string(),
                version,
                stable,
            })
            .await?;
        match result.error {
            Some(error) => Err(ServerError::NotFound(error)),
            None => Ok(result.index),
        }
    }
}

impl Server {
    /// Marks a node eligible or ineligible for new placements (Nomad's
    /// `/v1/node/:id/eligibility`). Allocations already there stay. Marking
    /// it eligible re-evaluates blocked work, which may now fit.
    pub async fn set_node_eligibility(&self, node_id: &str, eligible: bool) -> Result<Index, ServerError> {
        let snapshot = self.read_state(false).await?;
        let node = snapshot
            .node_by_prefix(node_id)
            .map_err(|error| ServerError::BadRequest(error.to_string()))?
            .ok_or_else(|| ServerError::NotFound(format!("node {node_id:?}")))?;
        let result = self
            .write(Command::NodeEligibility {
                node_id: node.id.clone(),
                eligible,
                evals: Vec::new(),
                now: now_nanos(),
            })
            .await?;
        if let Some(error) = result.error {
            return Err(ServerError::NotFound(error));
        }
        if eligible && self.is_leader() {
            self.unblock_evals().await;
        }
        Ok(result.index)
    }
}
